"""One training run per work dir: a lock while it runs, no silent reuse, no leftovers of killed writes.

- ``WorkDirLock``: ``fcntl.flock`` on ``WORK_DIR/.lock``, held by the main process for the whole run.
  A second run on the same dir fails at once naming the holder's pid. The kernel drops the lock when
  its process ends, however it ends (kill -9 included), so a dead run never blocks the next one; the
  file itself stays (deleting it would let two runs lock two different files).
- ``claim``: a fresh run (no ``--resume``) refuses a dir holding another run's checkpoints or logs,
  unless ``overwrite`` (then those files are deleted first; nothing else in the dir is touched).
- Temp files of interrupted atomic writes (``.<name>.<random>.tmp``, checkpoint-sized for a killed
  checkpoint write) are deleted once the lock is held: no other writer can be using them.
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
from pathlib import Path

from pipa_video.errors import WorkDirError

LOCK_NAME = ".lock"
TEMP_PATTERN = ".*.tmp"  # atomic writes' temp names: tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")
# What a training run writes (engine.checkpoint, engine.logger, trainer): a dir holding any of these
# holds a run. Evaluation reports written next to checkpoints are not part of it.
RUN_FILES = ("latest.pth", "best.pth", "train_log.csv", "eval_log.csv", "config.py")
RUN_GLOBS = ("iter_*.pth",)
RUN_DIRS = ("tensorboard",)


class WorkDirLock:
    """An exclusive, non-blocking ``flock`` on ``work_dir/.lock``; use as a context manager or acquire/release."""

    def __init__(self, work_dir: str | os.PathLike) -> None:
        self.work_dir = Path(work_dir)
        self.path = self.work_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "WorkDirLock":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise WorkDirError(f"{self.work_dir}: another training run ({holder}) is using this work dir; "
                               "expected a free one: wait for it to end or choose another --work-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WorkDirLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def run_files(work_dir: Path) -> list[Path]:
    """The files and folders of a training run in ``work_dir`` (empty for a fresh or missing dir)."""
    if not work_dir.is_dir():
        return []
    found = [work_dir / n for n in RUN_FILES + RUN_DIRS if (work_dir / n).exists()]
    return found + sorted(p for pattern in RUN_GLOBS for p in work_dir.glob(pattern))


def remove_temp_files(work_dir: Path) -> list[Path]:
    """Delete the temp files of interrupted atomic writes directly under ``work_dir``; returns them."""
    stale = sorted(work_dir.glob(TEMP_PATTERN)) if work_dir.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def check_reusable(work_dir: str | os.PathLike, *, resume: bool, overwrite: bool) -> list[Path]:
    """Another run's files in ``work_dir`` (``run_files``); ``WorkDirError`` when a fresh run (no ``resume``)
    meets them without ``overwrite``. ``claim`` runs it under the lock; a command that prepares data in
    the work dir before training (``adapt``) runs it first, so that a refused run changes nothing."""
    work_dir = Path(work_dir)
    previous = run_files(work_dir)
    if previous and not resume and not overwrite:
        names = ", ".join(p.name for p in previous[:6]) + (", ..." if len(previous) > 6 else "")
        resume_hint = ("--resume to continue it, " if (work_dir / "latest.pth").is_file()
                       else "(it holds no checkpoint to --resume) ")
        raise WorkDirError(f"{work_dir}: holds another run ({names}); expected an unused work dir: pass "
                           f"{resume_hint}--overwrite to delete it and start afresh, or choose another --work-dir")
    return previous


def claim(work_dir: str | os.PathLike, *, resume: bool, overwrite: bool) -> WorkDirLock:
    """Lock ``work_dir`` for a run, check it may be (re)used, delete stale temp files; returns the held lock.

    Raises ``WorkDirError`` when another run holds the lock, or when a fresh run (``resume`` false)
    meets another run's files without ``overwrite``.
    """
    work_dir = Path(work_dir)
    lock = WorkDirLock(work_dir).acquire()
    try:
        previous = check_reusable(work_dir, resume=resume, overwrite=overwrite)
        if previous and not resume:
            for path in previous:
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        remove_temp_files(work_dir)
    except BaseException:
        lock.release()
        raise
    return lock
