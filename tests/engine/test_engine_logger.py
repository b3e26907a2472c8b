import csv

from pipa_video.engine.logger import CsvLog, TrainLogger


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_header_from_first_row_and_new_keys_become_columns(tmp_path):
    log = CsvLog(tmp_path / "log.csv")
    log.append({"iteration": 1, "loss_src": 0.5})
    log.append({"iteration": 2, "loss_src": 0.4, "loss_pixel": 0.1})
    log.append({"iteration": 3, "loss_pixel": 0.2})
    assert _rows(tmp_path / "log.csv") == [
        ["iteration", "loss_src", "loss_pixel"], ["1", "0.5", ""], ["2", "0.4", "0.1"], ["3", "", "0.2"]]
    # a new writer on the same file appends under the existing header
    CsvLog(tmp_path / "log.csv").append({"iteration": 4, "loss_src": 0.3, "loss_pixel": 0.0})
    assert _rows(tmp_path / "log.csv")[-1] == ["4", "0.3", "0.0"]


def test_truncate_after_drops_rows_of_a_crashed_run(tmp_path):
    log = CsvLog(tmp_path / "log.csv")
    for it in (10, 20, 30):
        log.append({"iteration": it, "loss": it / 10})
    log.truncate_after(20)
    assert [r[0] for r in _rows(tmp_path / "log.csv")] == ["iteration", "10", "20"]


class FakeWriter:
    def __init__(self, log_dir):
        self.log_dir, self.scalars, self.closed = log_dir, [], False

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_train_logger_writes_csv_console_and_tensorboard(tmp_path, caplog):
    writers = []

    def factory():
        def make(log_dir):
            writers.append(FakeWriter(log_dir))
            return writers[-1]
        return make

    logger = TrainLogger(tmp_path, total_iters=100, writer_factory=factory)
    with caplog.at_level("INFO", logger="pipa_video"):
        logger.log_train(50, {"loss_src": 1.0, "lr/head": 6e-4}, seconds_per_iter=2.0)
        logger.log_eval(50, {"mIoU": 42.0})
    assert "iter 50/100" in caplog.text and "eta: 0:01:40" in caplog.text and "mIoU: 42.0000" in caplog.text
    assert ("train/loss_src", 1.0, 50) in writers[0].scalars and ("val/mIoU", 42.0, 50) in writers[0].scalars
    assert writers[0].log_dir.endswith("tensorboard")
    logger.close()
    assert writers[0].closed
    assert _rows(tmp_path / "train_log.csv")[0] == ["iteration", "loss_src", "lr/head", "time_per_iter"]
    assert _rows(tmp_path / "eval_log.csv")[1] == ["50", "42.0"]


def test_train_logger_without_tensorboard(tmp_path):
    logger = TrainLogger(tmp_path, total_iters=10, writer_factory=lambda: None)
    logger.log_train(1, {"loss_src": 1.0}, seconds_per_iter=0.1)
    assert logger.tb_writer is None and (tmp_path / "train_log.csv").is_file()


def test_disabled_logger_writes_nothing(tmp_path):
    logger = TrainLogger(tmp_path / "rank1", total_iters=10, enabled=False)
    logger.log_train(1, {"loss_src": 1.0}, seconds_per_iter=0.1)
    logger.log_eval(1, {"mIoU": 1.0})
    assert not (tmp_path / "rank1").exists()


def test_training_curves_are_drawn_beside_the_csv_when_training_ends(tmp_path, monkeypatch):
    import os
    import stat

    from pipa_video.engine import logger as logger_module

    drawn = []
    real = logger_module.plot_training_curves
    monkeypatch.setattr(logger_module, "plot_training_curves", lambda *a: drawn.append(a) or real(*a))
    log = TrainLogger(tmp_path, total_iters=30, tensorboard=False)
    for it in (10, 20, 30):
        log.log_train(it, {"loss_src": 1.0 / it, "loss_mix": 0.5, "pseudo_weight": it / 40, "lr/head": 6e-4,
                           "lr/backbone": 6e-5}, seconds_per_iter=0.1)
    assert drawn == []  # within CURVES_EVERY_S of the start: not redrawn at every log line
    old = os.umask(0o022)
    try:
        log.close()
    finally:
        os.umask(old)
    png = tmp_path / "train_curves.png"
    assert len(drawn) == 1 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stat.S_IMODE(png.stat().st_mode) == 0o644
    assert logger_module.plot_training_curves(tmp_path / "missing.csv", tmp_path / "x.png") is None


def test_training_curves_have_a_panel_per_kind(tmp_path):
    import pandas as pd

    from pipa_video.engine.logger import curve_panels

    log = pd.DataFrame([{"iteration": 10, "loss_src": 1.0, "loss_mix": 0.4, "pseudo_weight": 0.3, "lr/head": 1e-3,
                         "lr/backbone": 1e-4, "time_per_iter": 0.2}])
    assert curve_panels(log) == [("loss", ["loss_src", "loss_mix"]), ("pseudo-label weight", ["pseudo_weight"]),
                                 ("learning rate", ["lr/head", "lr/backbone"])]
    assert curve_panels(log.drop(columns=["pseudo_weight"]))[1][0] == "learning rate"  # source-only: no weight
