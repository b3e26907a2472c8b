"""The one inference loop: a dataset of one-frame clips -> a predictor -> evaluators, in one pass.

``eval``, ``tc-report``, ``predict``, ``predict --format``, the periodic validation during training
and the demo all run ``inference_on_dataset`` (detectron2's function of that name): the frames are
read by the training code's ``ClipDataset`` (through a DataLoader with the config's workers), each
batch goes through the predictor once, and every evaluator sees the same predictions.

- ``Predictor``: a model with the configured inference (whole / slide, flip, scales) -> train ids
  (B, H, W) at the label's size (the frame's own size; ``evaluation.resize`` only sets the network
  input). ``scores`` gives the class scores (the server export's confidence).
- ``SavedPredictions``: train-id PNGs written before (``tc-report --predictions``), read as a predictor.
- ``Comm``: the collectives a multi-process run hands down (``engine.dist`` provides them); one
  process needs none. Evaluation never calls ``torch.distributed`` itself.

The model is put in eval mode for the loop and every module's mode restored afterwards
(``eval_mode``), so the trainer's periodic evaluation leaves training untouched.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from pipa_video.data.build import usable_workers, worker_init
from pipa_video.data.index import DatasetError
from pipa_video.data.io import read_train_ids
from pipa_video.evaluation.evaluator import DatasetEvaluator
from pipa_video.evaluation.inference import InferenceMode, predict_logits

PREDICTION_NAME = "{frame:06d}.png"  # <predictions_dir>/<sequence>/<frame:06d>.png, train ids


def _identity_sum(tensor: Tensor) -> Tensor:
    return tensor


def _one_rank(obj: object) -> list:
    return [obj]


@dataclass(frozen=True)
class Comm:
    """Rank, world size and the two collectives evaluators use: ``reduce_sum(tensor) -> tensor`` (sum over
    ranks) and ``gather_objects(obj) -> [obj of every rank]``. The default is one process."""

    rank: int = 0
    world_size: int = 1
    reduce_sum: Callable[[Tensor], Tensor] = field(default=_identity_sum)
    gather_objects: Callable[[object], list] = field(default=_one_rank)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


SINGLE_PROCESS = Comm()


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside; every module's own mode restored on exit."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes.items():
            module.training = training


@dataclass(frozen=True)
class InferenceSettings:
    """The configured inference (``evaluation`` section): mode, slide window/stride (h, w), flip, scales."""

    mode: InferenceMode = InferenceMode.WHOLE
    window: tuple[int, int] = (1024, 1024)
    stride: tuple[int, int] = (512, 512)
    flip: bool = False
    scales: tuple[float, ...] = (1.0,)


class PredictorLike(Protocol):
    def __call__(self, inputs: Mapping[str, Any]) -> Any: ...

    def predicting(self) -> contextlib.AbstractContextManager: ...


class Predictor:
    """A segmentor's ``inference`` with the configured test-time inference, on ``device``."""

    def __init__(self, model: nn.Module, *, settings: InferenceSettings = InferenceSettings(),
                 device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.settings = settings

    def predicting(self) -> contextlib.AbstractContextManager:
        return eval_mode(self.model)

    def scores(self, img: Tensor, out_size: Sequence[int]) -> Tensor:
        """Class scores (B, C, *out_size) of a normalised batch (B, 3, h, w): logits, or mean probabilities
        with test-time augmentation (``inference.predict_logits``)."""
        s = self.settings
        return predict_logits(self.model.inference, img.to(self.device, torch.float32), mode=s.mode,
                              window=s.window, stride=s.stride, flip=s.flip, scales=s.scales,
                              out_size=tuple(out_size))

    @property
    def passes(self) -> int:
        return len(self.settings.scales) * (2 if self.settings.flip else 1)

    def __call__(self, inputs: Mapping[str, Any]) -> Tensor:
        """(B, H, W) int64 train ids on the CPU, at the key frames' label size."""
        # max(dim).indices: same first-maximum rule as argmax, several times faster on CPU for (B, C, H, W).
        return self.scores(inputs["img"][:, 0], inputs["label"].shape[-2:]).max(dim=1).indices.cpu()


class SavedPredictions:
    """Train-id PNGs ``<dir>/<sequence>/<frame:06d>.png`` (``predict``'s ``OUT/train_ids``) as a predictor."""

    def __init__(self, predictions_dir: str | os.PathLike) -> None:
        self.dir = Path(predictions_dir)

    def predicting(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def read(self, sequence: str, frame: int) -> Tensor:
        path = self.dir / str(sequence) / PREDICTION_NAME.format(frame=int(frame))
        if not path.is_file():
            raise DatasetError(f"prediction {path} not found: --predictions must hold a train-id PNG "
                               f"<sequence>/<frame:06d>.png for every frame of the split (predict writes them "
                               f"to OUT/train_ids/)")
        return torch.from_numpy(read_train_ids(path)).long()

    def __call__(self, inputs: Mapping[str, Any]) -> Tensor:
        meta = inputs["meta"]
        return torch.stack([self.read(seq, int(f)) for seq, f in zip(meta["sequence"], meta["frames"][0])])


class _Numbered(Dataset):
    """``dataset[items[i]]`` with ``item`` (its position in ``dataset``) added."""

    def __init__(self, dataset: Dataset, items: Sequence[int]) -> None:
        self.dataset, self.items = dataset, list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return dict(self.dataset[self.items[i]], item=self.items[i])


def shard(dataset: Dataset, items: Sequence[int], comm: Comm, *, by_sequence: bool) -> list[int]:
    """This rank's items: every ``world_size``-th item, or (``by_sequence``: temporal metrics need a
    sequence's frames together, in order) every ``world_size``-th sequence's items. No item twice."""
    if not comm.distributed:
        return list(items)
    if not by_sequence:
        return list(items)[comm.rank::comm.world_size]
    table = dataset.key_frame_table()
    sequences = list(dict.fromkeys(str(table["sequence"].iat[i]) for i in items))
    mine = set(sequences[comm.rank::comm.world_size])
    return [i for i in items if str(table["sequence"].iat[i]) in mine]


def inference_on_dataset(predictor: PredictorLike, dataset: Dataset, evaluator: DatasetEvaluator, *,
                         comm: Comm = SINGLE_PROCESS, items: Sequence[int] | None = None,
                         by_sequence: bool = False, num_workers: int = 0, progress: str | None = None) -> dict:
    """Run ``predictor`` once over ``items`` of ``dataset`` (default all), feeding every batch to
    ``evaluator``; returns ``evaluator.evaluate()`` (every rank: the whole split's results).

    Samples are read by a DataLoader with ``num_workers`` workers, in order, one frame per batch
    (frames of a split may differ in size). ``progress`` names a progress bar (None: no bar).
    """
    from tqdm import tqdm

    mine = shard(dataset, range(len(dataset)) if items is None else items, comm, by_sequence=by_sequence)
    loader = DataLoader(_Numbered(dataset, mine), batch_size=1, num_workers=usable_workers(num_workers),
                        worker_init_fn=worker_init)
    evaluator.reset()
    with predictor.predicting(), torch.inference_mode():
        for inputs in tqdm(loader, desc=progress, disable=progress is None or comm.rank != 0):
            evaluator.process(inputs, predictor(inputs))
    return evaluator.evaluate()
