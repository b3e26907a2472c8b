"""Training logs: a console line with ETA, a CSV of every logged scalar, TensorBoard when installed.

The CSV has one row per logged iteration (``iteration`` first, then every loss term, learning rate
and timing). Its header comes from the first row; a key first seen later is added as a new column
by rewriting the file (earlier rows get an empty cell), so no value is ever dropped or misaligned.
TensorBoard is optional: without ``tensorboard`` installed the event files are simply not written.
"""
from __future__ import annotations

import csv
import datetime
import io
import logging
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from pipa_video.data.index import atomic_write_text

LOGGER_NAME = "pipa_video"
TRAIN_CSV = "train_log.csv"
EVAL_CSV = "eval_log.csv"
TENSORBOARD_DIR = "tensorboard"
ITERATION_COLUMN = "iteration"


def get_logger() -> logging.Logger:
    """The package logger; prints to the console once configured by ``setup_console_logging``."""
    return logging.getLogger(LOGGER_NAME)


def setup_console_logging(*, is_main: bool, level: int = logging.INFO) -> logging.Logger:
    """Console handler on the main process only (other ranks log warnings and errors)."""
    logger = get_logger()
    logger.setLevel(level if is_main else logging.WARNING)
    if not any(getattr(h, "_pipa_console", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        handler._pipa_console = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    return logger


class CsvLog:
    """Append-only CSV whose header grows when a new key appears (the file is then rewritten)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.columns: list[str] = self._read_header()

    def _read_header(self) -> list[str]:
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return []
        with open(self.path, newline="") as f:
            return next(csv.reader(f), [])

    def _read_rows(self) -> list[dict[str, str]]:
        if not self.columns:
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def append(self, row: Mapping[str, Any]) -> None:
        new_keys = [k for k in row if k not in self.columns]
        if not self.columns:
            self.columns = list(row)
            self._rewrite([])
        elif new_keys:
            rows = self._read_rows()
            self.columns = self.columns + new_keys
            self._rewrite(rows)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, restval="").writerow(dict(row))

    def truncate_after(self, iteration: int) -> None:
        """Drop rows logged after ``iteration`` (a resumed run repeats them)."""
        if not self.columns or ITERATION_COLUMN not in self.columns:
            return
        rows = self._read_rows()
        kept = [r for r in rows if int(r[ITERATION_COLUMN]) <= iteration]
        if len(kept) != len(rows):
            self._rewrite(kept)

    def _rewrite(self, rows: list[Mapping[str, Any]]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path, buffer.getvalue())


def _tensorboard_writer_factory() -> Callable[[str], Any] | None:
    try:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
    except ImportError:
        return None
    return SummaryWriter


def format_duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(round(seconds))))


class TrainLogger:
    """Console, CSV and (optional) TensorBoard output of one training run; main process only."""

    def __init__(self, work_dir: str | os.PathLike, *, total_iters: int, enabled: bool = True,
                 tensorboard: bool = True,
                 writer_factory: Callable[[], Callable[[str], Any] | None] = _tensorboard_writer_factory) -> None:
        self.enabled = enabled
        self.total_iters = total_iters
        self.work_dir = Path(work_dir)
        self.console = get_logger()
        self.train_csv = CsvLog(self.work_dir / TRAIN_CSV) if enabled else None
        self.eval_csv = CsvLog(self.work_dir / EVAL_CSV) if enabled else None
        self.tb_writer = None
        if enabled and tensorboard:
            factory = writer_factory()
            if factory is None:
                self.console.info("tensorboard is not installed: writing the CSV logs only")
            else:
                self.tb_writer = factory(str(self.work_dir / TENSORBOARD_DIR))

    def resume_from(self, iteration: int) -> None:
        """Forget rows of a crashed run logged after the checkpoint that training resumes from."""
        if self.enabled:
            self.train_csv.truncate_after(iteration)
            self.eval_csv.truncate_after(iteration)

    def log_train(self, iteration: int, scalars: Mapping[str, float], *, seconds_per_iter: float) -> None:
        """``iteration`` counts completed iterations; ``scalars`` are losses and learning rates."""
        if not self.enabled:
            return
        eta = seconds_per_iter * (self.total_iters - iteration)
        row = {ITERATION_COLUMN: iteration, **scalars, "time_per_iter": seconds_per_iter}
        self.train_csv.append(row)
        self._to_tensorboard("train", iteration, {**scalars, "time_per_iter": seconds_per_iter})
        values = "  ".join(f"{k}: {_format_value(v)}" for k, v in scalars.items())
        self.console.info(f"iter {iteration}/{self.total_iters}  {values}  "
                          f"time/iter: {seconds_per_iter:.3f}s  eta: {format_duration(eta)}")

    def log_eval(self, iteration: int, metrics: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        self.eval_csv.append({ITERATION_COLUMN: iteration, **metrics})
        self._to_tensorboard("val", iteration, metrics)
        values = "  ".join(f"{k}: {_format_value(v)}" for k, v in metrics.items())
        self.console.info(f"evaluation at iter {iteration} on data.val: {values}")

    def _to_tensorboard(self, prefix: str, iteration: int, scalars: Mapping[str, float]) -> None:
        if self.tb_writer is None:
            return
        for key, value in scalars.items():
            self.tb_writer.add_scalar(f"{prefix}/{key}", value, iteration)
        self.tb_writer.flush()

    def close(self) -> None:
        if self.tb_writer is not None:
            self.tb_writer.close()
            self.tb_writer = None


def _format_value(value: float) -> str:
    return f"{value:.3e}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"
