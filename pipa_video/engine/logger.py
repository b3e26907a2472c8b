"""Training logs: a console line with ETA, a CSV of every logged scalar, TensorBoard when installed,
and ``train_curves.png`` beside the CSV: each loss term, the pseudo-label weight and the learning
rates against the iteration, drawn from the CSV when training ends (and at most once a minute
while it runs), never inside the training step.

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
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from pipa_video.atomic import atomic_path, atomic_write_text

LOGGER_NAME = "pipa_video"
TRAIN_CSV = "train_log.csv"
EVAL_CSV = "eval_log.csv"
TENSORBOARD_DIR = "tensorboard"
ITERATION_COLUMN = "iteration"
CURVES_PNG = "train_curves.png"
CURVES_EVERY_S = 60.0  # redraw the curves while training at most this often (a redraw costs ~0.3 s)
PSEUDO_WEIGHT_COLUMN = "pseudo_weight"
LR_PREFIX = "lr/"


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
        self._last_plot = time.monotonic()
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
        if time.monotonic() - self._last_plot >= CURVES_EVERY_S:
            self.plot_curves()

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

    def plot_curves(self) -> Path | None:
        """Redraw ``train_curves.png`` from the CSV; None when nothing is logged yet."""
        if not self.enabled:
            return None
        self._last_plot = time.monotonic()
        return plot_training_curves(self.work_dir / TRAIN_CSV, self.work_dir / CURVES_PNG)

    def close(self) -> None:
        if self.enabled:
            self.plot_curves()
        if self.tb_writer is not None:
            self.tb_writer.close()
            self.tb_writer = None


def _format_value(value: float) -> str:
    return f"{value:.3e}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"


def plot_training_curves(csv_path: str | os.PathLike, png_path: str | os.PathLike) -> Path | None:
    """Panels against the iteration: every ``loss*`` column, the pseudo-label weight (share of confident
    target pixels) and every ``lr/*`` group; returns ``png_path``, or None when the CSV has no rows."""
    import pandas as pd

    csv_path = Path(csv_path)
    if not csv_path.is_file() or csv_path.stat().st_size == 0:
        return None
    log = pd.read_csv(csv_path)
    if log.empty or ITERATION_COLUMN not in log:
        return None
    panels = curve_panels(log)
    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(8.0, 2.6 * len(panels)), sharex=True, squeeze=False)
    for ax, (title, columns) in zip(axes[:, 0], panels):
        for column in columns:
            ax.plot(log[ITERATION_COLUMN], log[column], marker="." if len(log) < 30 else None, linewidth=1,
                    label=column)
        if title == "loss" and (log[columns].stack() > 0).all() and _spans_decades(log[columns]):
            ax.set_yscale("log")
        ax.set_ylabel(title)
        ax.legend(fontsize=7, loc="best", ncol=2 if len(columns) > 4 else 1)
    axes[-1, 0].set_xlabel("iteration")
    axes[0, 0].set_title(f"training curves ({csv_path.name})", fontsize=9)
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(png_path)


def curve_panels(log) -> list[tuple[str, list[str]]]:
    """(y label, columns) of each panel that has columns: losses, pseudo-label weight, learning rates."""
    panels = [("loss", [c for c in log.columns if c.startswith("loss")]),
              ("pseudo-label weight", [c for c in log.columns if c == PSEUDO_WEIGHT_COLUMN]),
              ("learning rate", [c for c in log.columns if c.startswith(LR_PREFIX)])]
    return [(title, columns) for title, columns in panels if columns]


def _spans_decades(frame) -> bool:
    values = frame.to_numpy().ravel()
    values = values[values > 0]
    return values.size > 0 and math.log10(values.max() / values.min()) > 2


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt
