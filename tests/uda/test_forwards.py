"""The one forward rule (uda/forwards.py): DDP wrapping per stage, BatchNorm statistics, the forward context."""
import contextlib

import pytest
import torch

from pipa_video.uda.build import build_method
from pipa_video.uda.forwards import ViewKind
from pipa_video.uda.student import Head
from test_step import _cfg, _clips, _norm_statistics


class _CountingWrapper(torch.nn.Module):
    """Stands in for DDP: records every call, forwards to the module."""

    def __init__(self, module):
        super().__init__()
        self.module, self.calls = module, 0

    def forward(self, *args, **kwargs):
        self.calls += 1
        return self.module(*args, **kwargs)


def _method(**kwargs):
    torch.manual_seed(0)
    return build_method(_cfg(contrast_weight=0.1, **kwargs))


def test_only_the_first_forward_of_a_stage_goes_through_the_wrapper():
    method = _method()
    wrappers = []
    method.wrap_student(lambda m: wrappers.append(_CountingWrapper(m)) or wrappers[-1])
    img = _clips()["img"][:, 0]
    stage = method.forwards.stage()
    stage.forward(img, kind=ViewKind.TRAINING)
    stage.forward(img, kind=ViewKind.AUXILIARY)
    stage.forward(img, kind=ViewKind.AUXILIARY)
    assert wrappers[0].calls == 1
    method.forwards.stage().forward(img, kind=ViewKind.TRAINING)  # a new stage: a new wrapped forward
    assert wrappers[0].calls == 2


def test_every_stage_of_a_step_makes_exactly_one_wrapped_forward():
    """Source and mixed stage, and the two-crop patch stage: one wrapped forward per backward (DDP's rule)."""
    method = _method(patch_contrast={"views": "two_crops"}, temporal_contrast={"reference": "student"})
    wrapper = _CountingWrapper(method.student)
    method.wrap_student(lambda m: wrapper)
    method.train_step(_clips(), _clips(seed=1), iteration=0)
    assert wrapper.calls == 3  # source, mixed, two-crop patch (the student reference frame is a bare forward)


@pytest.mark.parametrize("kind, moves", [(ViewKind.TRAINING, True), (ViewKind.AUXILIARY, False)])
def test_auxiliary_views_freeze_batchnorm_statistics_training_views_move_them(kind, moves):
    method = _method()
    before = _norm_statistics(method)
    method.forwards.stage().forward(_clips()["img"][:, 0], kind=kind, project=(Head.PATCH,))
    changed = any(not torch.equal(a, b) for a, b in zip(before, _norm_statistics(method)))
    assert changed is moves


def test_an_unused_wrapped_forward_is_tied_into_the_backward():
    """A stage whose loss ignores the wrapped forward's logits still gives the classifier a (zero) gradient,
    so DDP does not wait for it."""
    method = _method()
    stage = method.forwards.stage()
    out = stage.forward(_clips()["img"][:, 0], kind=ViewKind.AUXILIARY, project=(Head.PATCH,))
    method.student.zero_grad(set_to_none=True)
    stage.backward(out.proj[Head.PATCH].mean(), logits_in_loss=False)
    classifier = method.student.segmentor.decode_head.conv_seg.weight
    assert classifier.grad is not None and not classifier.grad.any()


def test_forwards_run_in_the_forward_context_and_backwards_never_do():
    """Phase-2 interface 1: set_forward_context(factory); factory() around every student and teacher
    forward, never around a backward (checked from inside the gradient hooks of every parameter)."""
    method = _method(patch_contrast={"views": "two_crops"})
    state = {"inside": False, "entered": 0}

    @contextlib.contextmanager
    def context():
        state["inside"], state["entered"] = True, state["entered"] + 1
        try:
            yield
        finally:
            state["inside"] = False

    seen_in_backward = []
    for p in method.student.parameters():
        p.register_hook(lambda g: seen_in_backward.append(state["inside"]) or g)
    teacher_calls = []
    method.teacher.model.register_forward_pre_hook(lambda *_: teacher_calls.append(state["inside"]))
    method.student.register_forward_pre_hook(lambda *_: teacher_calls.append(("student", state["inside"])))
    method.set_forward_context(context)
    method.train_step(_clips(), _clips(seed=1), iteration=0)
    assert state["entered"] >= 6  # teacher views, source, mixed, patch crops...
    assert seen_in_backward and not any(seen_in_backward)
    assert teacher_calls and all(c is True or c == ("student", True) for c in teacher_calls)

