"""The one rule for student forwards: DDP wrapping, BatchNorm statistics and the forward context.

A *stage* is a group of losses backpropagated together (the source losses, the mixed losses, MIC,
the two-crop patch contrast). DistributedDataParallel reduces gradients once per backward, so:

1. The FIRST forward of a stage goes through the DDP-wrapped student. DDP (with
   ``find_unused_parameters``) marks every parameter reachable from that forward's outputs as used
   and waits for its gradient; when the stage's losses do not use the forward's segmentation logits
   (a contrast-only view) the stage adds a zero that depends on them (:func:`ddp_tie`), or DDP would
   wait for the classifier's gradient forever.
2. Every FURTHER forward of the stage goes through the bare student: autograd sums its gradient into
   the same parameters before DDP's gradient hooks fire, so DDP still averages it. (A second wrapped
   forward would mark the parameters it does not reach, e.g. a projection head only the first forward
   uses, as unused although the stage's loss trains them.)
3. A view the model is trained to segment (source, mixed and MIC images: :attr:`ViewKind.TRAINING`)
   moves the BatchNorm running statistics; an auxiliary contrast view (a patch crop, a student
   reference frame: :attr:`ViewKind.AUXILIARY`) does not (:func:`frozen_norm_statistics`).
4. Every student and teacher forward runs inside the forward context (``set_context``: bf16
   autocast on CUDA when ``runtime.amp``); no backward does.

Terms never call the student themselves: they ask a :class:`Stage` for forwards, so adding a term
cannot break the rule.
"""
from __future__ import annotations

import contextlib
from enum import Enum
from typing import Callable, ContextManager, Iterator

from torch import Tensor, nn

from pipa_video.uda.student import StudentNet, StudentOutput

ContextFactory = Callable[[], ContextManager]


class ViewKind(str, Enum):
    TRAINING = "training"  # an image the model learns to segment: BatchNorm running statistics move
    AUXILIARY = "auxiliary"  # a contrast view: running statistics frozen


def ddp_tie(logits: Tensor) -> Tensor:
    """A zero that depends on ``logits``: keeps DDP from waiting for gradients of an unused output."""
    return 0.0 * logits.float().mean()


@contextlib.contextmanager
def frozen_norm_statistics(module: nn.Module) -> Iterator[None]:
    """Train-mode forwards inside leave every BatchNorm running mean/var of ``module`` unchanged.

    The contrasts' auxiliary views are not what the model segments; their statistics must not move the
    running statistics that inference and, through the EMA, the teacher's pseudo-labels use. Measured
    on the demo: with the contrast weights at 1e-6, the patch crop's forward alone cost ~2 mIoU when it
    updated them (docs/demo_findings.md, E). Batch statistics still normalise the view itself.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum


class StudentForwards:
    """Owns the bare student, its DDP wrapper and the forward context; hands out :class:`Stage` objects."""

    def __init__(self, student: StudentNet) -> None:
        self.student = student
        self.wrapped: Callable[..., StudentOutput] = student
        self.context_factory: ContextFactory = contextlib.nullcontext

    def wrap(self, wrapper: Callable[[nn.Module], nn.Module]) -> None:
        """The engine's DDP wrapper (``TrainMethod.wrap_student``)."""
        self.wrapped = wrapper(self.student)

    def set_context(self, factory: ContextFactory) -> None:
        """``factory()`` gives the context every forward runs in (phase-2 interface 1)."""
        self.context_factory = factory

    def context(self) -> ContextManager:
        """The forward context, for forwards outside a stage (teacher, ImageNet backbone)."""
        return self.context_factory()

    def stage(self) -> "Stage":
        return Stage(self)


class Stage:
    """The forwards of one backward (see the module docstring for the rule it applies)."""

    def __init__(self, forwards: StudentForwards) -> None:
        self._forwards = forwards
        self._first: StudentOutput | None = None

    def forward(self, img: Tensor, *, kind: ViewKind, **kwargs) -> StudentOutput:
        """``StudentNet.forward(img, **kwargs)`` under the rule; returns its :class:`StudentOutput`."""
        fw = self._forwards
        module = fw.wrapped if self._first is None else fw.student
        norms = frozen_norm_statistics(fw.student) if ViewKind(kind) is ViewKind.AUXILIARY else contextlib.nullcontext()
        with fw.context(), norms:
            out = module(img, **kwargs)
        if self._first is None:
            self._first = out
        return out

    def backward(self, total: Tensor, *, logits_in_loss: bool = True) -> None:
        """Backpropagate ``total``; ``logits_in_loss=False`` ties the wrapped forward's logits in (rule 1)."""
        if not logits_in_loss and self._first is not None:
            total = total + ddp_tie(self._first.seg.logits)
        total.backward()
