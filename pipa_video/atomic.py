"""Publishing outputs whole: every file and folder the package writes goes through this module.

A file is written to a temp name in its destination folder, then renamed onto its name by
``publish`` (the package's one ``os.replace`` of a file), so a crash, a full disk or a killed process
leaves the previous file or the new one, never half of one; a failed write raises ``WriteError``
naming the file and leaves no temp file. Its twins for folders live here too: ``replace_dir`` swaps a
finished folder in for an old one (the prepare tools' indexes, the server exports), and
``staged_dir`` collects a run's outputs beside their folder and moves them in only when the run
succeeds (``pipa-video predict``).

Temp names start with ``.<name>.`` and end in ``.tmp`` (``.tmp<suffix>`` where the writer needs the
suffix to pick a format, e.g. matplotlib or PyAV); ``TEMP_GLOBS`` matches both, so the engine can
delete what a killed write left (``engine.workdir``). New files get the mode ``open()`` would give
(0644 under the usual umask 022): ``mkstemp`` alone gives 0600.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pipa_video.errors import writing

TEMP_MARK = ".tmp"
TEMP_GLOBS = (f".*{TEMP_MARK}", f".*{TEMP_MARK}.*")  # what a killed atomic write leaves behind
PARTIAL = ".partial-"  # <parent>/.<out name>.partial-<pid>-<random>: a staged run's outputs


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open()`` gives a new file (0644 under the usual umask 022)."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """The mode ``mkdir`` gives a new folder (0755 under the usual umask 022); ``mkdtemp`` gives 0700."""
    return 0o777 & ~current_umask()


def temp_path(path: str | os.PathLike, *, keep_suffix: bool = False) -> Path:
    """A new, empty temp file beside ``path`` (its folder is created): ``.<name>.<random>.tmp``,
    or ``.<stem>.<random>.tmp<suffix>`` with ``keep_suffix`` (writers that pick the format by suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if keep_suffix:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f"{TEMP_MARK}{path.suffix}")
    else:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_MARK)
    os.close(fd)
    return Path(tmp)


def fsync_dir(directory: Path) -> None:
    """Persist a rename (the directory entry); not possible on every platform, hence best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def publish(tmp: Path, path: str | os.PathLike, *, mode: int | None = None, durable: bool = False) -> Path:
    """Rename the finished temp file ``tmp`` onto ``path`` with ``mode`` (default: ``file_mode()``).

    ``durable`` fsyncs the file before and its folder after the rename (checkpoints), so a power
    loss cannot leave a renamed but empty file. The package's one ``os.replace`` of a file.
    """
    path = Path(path)
    os.chmod(tmp, file_mode() if mode is None else mode)
    if durable:
        _fsync_file(tmp)
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)
    return path


@contextmanager
def atomic_path(path: str | os.PathLike, *, keep_suffix: bool = True, mode: int | None = None,
                durable: bool = False) -> Iterator[Path]:
    """A temp path beside ``path`` for a writer to fill; published onto ``path`` when the block succeeds.

    On failure the temp file is removed and an ``OSError`` (disk full, read-only, permission) becomes
    ``WriteError`` naming ``path``. ``keep_suffix`` (default) keeps the suffix, for writers that pick
    the format from it.
    """
    path = Path(path)
    with writing(path):
        tmp = temp_path(path, keep_suffix=keep_suffix)
        try:
            yield tmp
            publish(tmp, path, mode=mode, durable=durable)
        finally:
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, mode: int | None = None,
                       durable: bool = False) -> Path:
    """Write ``data`` to ``path`` whole (temp file, then rename); returns ``path``."""
    with atomic_path(path, keep_suffix=False, mode=mode, durable=durable) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` whole (temp file, then rename); returns ``path``."""
    return atomic_write_bytes(path, text.encode())


def link_or_copy(source: Path, target: Path) -> Path:
    """Atomically make ``target`` the same file as ``source`` (hard link; a durable copy where the file
    system has no hard links), e.g. ``latest.pth`` -> the newest ``iter_<N>.pth``."""
    with writing(target):
        tmp = temp_path(target)
        tmp.unlink()
        try:
            try:
                os.link(source, tmp)
            except OSError:  # file systems without hard links
                shutil.copyfile(source, tmp)
            publish(tmp, target, mode=os.stat(source).st_mode & 0o777, durable=True)
        finally:
            tmp.unlink(missing_ok=True)
    return target


# --- folders ---------------------------------------------------------------------------------------
def new_dir_beside(target: Path, *, tag: str) -> Path:
    """A fresh, empty folder beside ``target`` (``.<name><tag><pid>-<random>``) with a plain mkdir's mode."""
    target.parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}{tag}{os.getpid()}-"))
    path.chmod(dir_mode())
    return path


def replace_dir(new: str | os.PathLike, target: str | os.PathLike) -> None:
    """Make the folder ``new`` take ``target``'s place, then delete what was there.

    Both must be on one file system. On Linux the two are exchanged in one step (``renameat2`` with
    ``RENAME_EXCHANGE``), so ``target`` is never missing and an interrupted call leaves the old or the
    new folder there, never neither; elsewhere the old one is renamed aside first.
    """
    new, target = Path(new), Path(target)
    with writing(target):
        if not target.exists():
            os.rename(new, target)
        elif _exchange(new, target):
            shutil.rmtree(new)  # now the old folder
        else:
            aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
            os.rename(target, aside / target.name)
            os.rename(new, target)
            shutil.rmtree(aside)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False where not supported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_partials(out_dir: Path) -> None:
    """Staged folders of runs whose process is gone (killed before publishing)."""
    for stale in out_dir.parent.glob(f".{out_dir.name}{PARTIAL}*"):
        pid = stale.name[len(f".{out_dir.name}{PARTIAL}"):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _move_into(entry: Path, target: Path) -> None:
    """Move a staged file or folder onto ``target`` (a folder replaces a folder in one swap)."""
    if target.is_dir() and not target.is_symlink():
        replace_dir(entry, target)
    else:
        publish(entry, target, mode=os.stat(entry).st_mode & 0o777)  # written whole into the stage already


@contextmanager
def staged_dir(out_dir: str | os.PathLike, *, last: str | None = None) -> Iterator[Path]:
    """A fresh folder beside ``out_dir`` to write a run's outputs into.

    When the block succeeds each entry is moved into ``out_dir`` (``last``, e.g. the summary, at the
    end), replacing an entry of the same name and leaving other files alone; when it fails the folder
    is removed and ``out_dir`` is untouched, so a failed run leaves nothing half-written.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(out_dir)
    stage = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}{PARTIAL}{os.getpid()}-"))
    try:
        yield stage
        with writing(out_dir):
            out_dir.mkdir(exist_ok=True)
            for entry in sorted(stage.iterdir(), key=lambda e: e.name == last):
                _move_into(entry, out_dir / entry.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
