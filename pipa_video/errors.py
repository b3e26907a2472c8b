"""The kinds of failure a user can cause, their exit codes, and the one error line every command prints.

Every command (``pipa-video <cmd>``, ``data_tools/prepare_*.py``, ``data_tools/convert_mit_checkpoint.py``)
ends a failure the same way: one line on stderr,

    <prog>: error: <path or key>: <what was expected>

and an exit code naming the kind (``--debug`` prints the traceback first):

==== =================== ==========================================================================
code kind                raised as
==== =================== ==========================================================================
0    success
1    a bug               any other exception: Python's traceback, please report it
2    config / usage      ``ConfigError`` (a key or value; argparse's usage errors use 2 as well)
3    data                ``DatasetError``, ``FileNotFoundError`` (missing, corrupt or mislaid input)
4    checkpoint          ``CheckpointError`` (unreadable, not ours, not matching the config)
5    non-finite          ``NonFiniteError`` (a NaN/inf loss or weight stopped training)
6    I/O                 ``OSError`` other than a missing file (disk full, read-only, permission)
7    work dir            ``WorkDirError`` (another run holds the lock, or the dir holds another run)
130  interrupted         ``KeyboardInterrupt``
==== =================== ==========================================================================

Code raises the family member that fits (``DatasetError`` for a file that does not decode, ...); the
classes live here, with no imports, so every layer (data, models, engine, cli) can raise them. The
usual modules re-export them (``pipa_video.config.ConfigError``, ``pipa_video.data.index.DatasetError``,
``pipa_video.models.checkpoint.CheckpointError``).
"""
from __future__ import annotations

import contextlib
import errno
import sys
import traceback
import warnings
from enum import IntEnum
from typing import Callable, Iterator


class ExitCode(IntEnum):
    OK = 0
    BUG = 1
    CONFIG = 2
    DATA = 3
    CHECKPOINT = 4
    NON_FINITE = 5
    IO = 6
    WORK_DIR = 7
    INTERRUPTED = 130


class PipaError(Exception):
    """Base of the errors a user can cause; ``exit_code`` says which kind."""

    exit_code = ExitCode.BUG


class ConfigError(PipaError, ValueError):
    """A config key or value is wrong; the message names the dotted key."""

    exit_code = ExitCode.CONFIG


class DatasetError(PipaError, ValueError):
    """A dataset root, index or file is not what the layout expects; the message names it."""

    exit_code = ExitCode.DATA


class CheckpointError(PipaError, ValueError):
    """A checkpoint is missing, unreadable, not ours or does not fit the model or config; names the file/keys."""

    exit_code = ExitCode.CHECKPOINT


class NonFiniteError(PipaError, FloatingPointError):
    """A loss term or a tensor of the training state became NaN or infinite."""

    exit_code = ExitCode.NON_FINITE


class WorkDirError(PipaError, RuntimeError):
    """A work dir is locked by another run, or holds another run's outputs."""

    exit_code = ExitCode.WORK_DIR


class WriteError(PipaError, OSError):
    """Writing an output failed (disk full, read-only, permission); the message names the file."""

    exit_code = ExitCode.IO


_MISSING_INPUT = (FileNotFoundError, NotADirectoryError, IsADirectoryError)
# Appended to the system's text for the I/O errors a user can fix.
_OS_HINTS = {
    errno.ENOSPC: "expected free space on that device; a file being replaced is left intact",
    errno.EROFS: "expected a writable location",
    errno.EACCES: "expected a location you may read or write",
    errno.EPERM: "expected a location you may read or write",
    errno.EDQUOT: "expected free space within your quota",
}


def exit_code(err: BaseException) -> ExitCode:
    """The exit code of ``err``'s kind (``BUG`` for anything that is not a user's error)."""
    if isinstance(err, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(err, PipaError):
        return err.exit_code
    if isinstance(err, _MISSING_INPUT):
        return ExitCode.DATA
    if isinstance(err, OSError):
        return ExitCode.IO
    return ExitCode.BUG


def os_error_text(err: OSError, *, path: object | None = None) -> str:
    """``<path>: <system text>; <hint>`` for an ``OSError`` (the path from ``err`` when not given)."""
    where = path if path is not None else err.filename
    what = err.strerror or str(err)
    hint = _OS_HINTS.get(err.errno or 0)
    text = f"{where}: {what}" if where is not None else what
    return f"{text} ({hint})" if hint else text


def find_os_error(err: BaseException) -> OSError | None:
    """The ``OSError`` behind ``err`` (itself, or one it was raised from), e.g. under torch's writer."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


@contextlib.contextmanager
def writing(path: object) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``path`` (also one under torch's writer) into ``WriteError``."""
    try:
        yield
    except WriteError:
        raise
    except Exception as err:  # noqa: BLE001  (only I/O errors are translated; the rest re-raised)
        found = find_os_error(err)
        if found is None:
            raise
        write_error = WriteError(os_error_text(found, path=path))
        write_error.errno = found.errno
        raise write_error from err


def one_line(err: BaseException) -> str:
    """The error's message as one line (a DataLoader worker's wrapped traceback reduced to its last line)."""
    if isinstance(err, OSError) and not isinstance(err, PipaError):
        text = os_error_text(err)
    else:
        text = str(err) or type(err).__name__
    if "Original Traceback" in text:  # re-raised from a DataLoader worker: keep the original message
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if last.split(": ", 1)[0].endswith("Error") else last
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def report(err: BaseException, *, prog: str, debug: bool = False) -> int:
    """Print ``err`` as the one error line (traceback first with ``debug``); return its exit code."""
    if debug:
        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
    print(f"{prog}: error: {one_line(err)}", file=sys.stderr, flush=True)
    return int(exit_code(err))


def run_command(fn: Callable[[], int], *, prog: str, debug: bool = False) -> int:
    """Run a command's body; a user's error becomes one line and its exit code, a bug keeps its traceback.

    Warnings print as one line too, ``<prog>: warning: <message>``, not Python's two lines that quote
    our source code (restored when the command returns)."""
    # catch_warnings restores filters and showwarning, not formatwarning: put it back by hand.
    previous = warnings.formatwarning
    warnings.formatwarning = lambda message, *_args, **_kw: f"{prog}: warning: {message}\n"
    try:
        return _run(fn, prog=prog, debug=debug)
    finally:
        warnings.formatwarning = previous


def _run(fn: Callable[[], int], *, prog: str, debug: bool) -> int:
    try:
        return fn()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        return int(ExitCode.INTERRUPTED)
    except Exception as err:  # noqa: BLE001  (sorted by kind below; bugs re-raised)
        if exit_code(err) is ExitCode.BUG:
            raise
        return report(err, prog=prog, debug=debug)
