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
