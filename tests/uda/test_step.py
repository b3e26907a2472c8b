"""The composed training step on the tiny MiT: terms, gradients, one-frame clips, checkpoint state."""
import pytest
import torch

from pipa_video.config import validate
from pipa_video.uda.build import build_method
from pipa_video.uda.step import Method
from pipa_video.uda.student import Head
from pipa_video.uda.teacher import teacher_views

NUM_CLASSES = 15


def _cfg(method="self_training", contrast_weight=0.0, patch_contrast=None, pixel_contrast=None, **uda):
    w = contrast_weight
    cfg = validate({
        "class_set": "viper15",
        "model": {"backbone": {"type": "mit_demo", "pretrained": None}, "decode_head": {"type": "segformer", "channels": 32}},
        "uda": {"method": method, "pseudo_threshold": 0.0,
                "pixel_contrast": {"weight": w, "proj_dim": 16, "anchors_per_class": 8, "bank_size": 16},
                "patch_contrast": {"weight": w, "proj_dim": 16, "num_anchors": 64},
                "temporal_contrast": {"weight": w, "proj_dim": 16, "num_anchors": 64, "confidence": 0.0}, **uda},
    })
    cfg.uda.patch_contrast.update(patch_contrast or {})
    cfg.uda.pixel_contrast.update(pixel_contrast or {})
    return cfg


def _clips(frames=2, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, NUM_CLASSES, (2, frames, size, size), generator=g)
    label[:, :, :4] = 255
    return {"img": torch.randn(2, frames, 3, size, size, generator=g), "label": label,
            "has_label": torch.ones(2, frames, dtype=torch.bool)}


def _backbone_grad(method):
    grads = [p.grad for p in method.student.segmentor.backbone.parameters() if p.grad is not None]
    return sum(float(g.abs().sum()) for g in grads)


def _context(method, source, target):
    """The step's context with the teacher views filled in, as ``train_step`` builds it."""
    ctx = method._context(source, target)
    if target is not None:
        ctx.teacher = teacher_views(method.teacher, method._teacher_requests(ctx), method.forwards.context)
    return ctx


def test_source_only_has_no_teacher_and_trains_on_source():
    torch.manual_seed(0)
    method = build_method(_cfg("source_only"))
    assert method.teacher is None and method.settings.method is Method.SOURCE_ONLY
    losses = method.train_step(_clips(), None, iteration=0)
    assert set(losses) == {"loss_src"}
    assert _backbone_grad(method) > 0


def test_self_training_terms_and_teacher_update():
    torch.manual_seed(0)
    method = build_method(_cfg())
    losses = method.train_step(_clips(), _clips(seed=1), iteration=0)
    assert {"loss_src", "loss_mix", "pseudo_weight"} <= set(losses)
    assert all(torch.isfinite(v) and not v.requires_grad for v in losses.values())
    with torch.no_grad():
        for p in method.student.parameters():
            p.add_(0.5)
    method.after_step(iteration=0)  # alpha 0: the teacher becomes the student
    for t, s in zip(method.teacher.model.parameters(), method.student.parameters()):
        torch.testing.assert_close(t, s)


def test_self_training_without_target_is_a_clear_error():
    method = build_method(_cfg())
    with pytest.raises(ValueError, match="needs a target batch"):
        method.train_step(_clips(), None, iteration=0)


def test_pipa_logs_every_term_on_its_own():
    torch.manual_seed(0)
    method = build_method(_cfg(contrast_weight=0.1))
    losses = method.train_step(_clips(), _clips(seed=1), iteration=0)
    assert {"loss_src", "loss_mix", "loss_pixel_src", "loss_patch", "loss_temporal"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())


def test_teacher_projects_each_head_only_on_its_frames_with_the_same_result():
    """The reference frame (temporal) and the source frame (pixel) are projected each alone; that must
    equal slicing the projections of one batched forward, with non-trivial head statistics.
    (Running statistics: ``teacher_norm='ema'``, where the whole-frame views share one forward.)"""
    torch.manual_seed(0)
    method = build_method(_cfg(contrast_weight=0.1, teacher_norm="ema"))
    for m in method.teacher.model.heads.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    source, target = _clips(), _clips(seed=1)
    ctx = _context(method, source, target)
    frames = torch.cat([target["img"][:, 0], target["img"][:, 1], source["img"][:, 0]])
    out = method.teacher(frames, project=(Head.TEMPORAL, Head.PIXEL))
    torch.testing.assert_close(ctx.teacher["target"].logits, out.logits[:2])
    assert ctx.teacher["temporal_key"] is ctx.teacher["target"]  # one forward serves both
    project = method.teacher.model.project_features
    torch.testing.assert_close(project(ctx.teacher["temporal_reference"].features, head=Head.TEMPORAL),
                               out.proj[Head.TEMPORAL][2:4])
    torch.testing.assert_close(project(ctx.teacher["pixel_source"].features, head=Head.PIXEL), out.proj[Head.PIXEL][4:])


def test_batch_statistics_teacher_normalises_each_part_by_itself_like_daformer():
    """DAFormer's teacher runs BatchNorm in train mode on the target batch alone: the pseudo-label logits
    must equal a teacher forward of the target key frames by themselves, whatever else the stage forwards."""
    torch.manual_seed(0)
    method = build_method(_cfg(contrast_weight=0.1))
    assert method.settings.teacher_norm.value == "batch"
    norms = [m for m in method.teacher.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    drops = [m for m in method.teacher.model.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
    method.train()
    assert norms and drops and all(m.training for m in norms) and not any(m.training for m in drops)
    source, target = _clips(), _clips(seed=1)
    logits = _context(method, source, target).teacher["target"].logits
    alone = method.teacher(target["img"][:, 0])
    torch.testing.assert_close(logits, alone.logits)
    together = method.teacher(torch.cat([target["img"][:, 0], source["img"][:, 0]]))
    assert not torch.allclose(logits, together.logits[:2])  # batch statistics do matter


def test_one_frame_clips_give_no_temporal_term_and_no_error():
    torch.manual_seed(0)
    method = build_method(_cfg(contrast_weight=0.1))
    losses = method.train_step(_clips(frames=1), _clips(frames=1, seed=1), iteration=0)
    assert "loss_temporal" not in losses and "loss_patch" in losses


def test_two_crop_patch_stage_trains_the_segmentation_backbone():
    """PiPa defect 1: patch features must come from the student, so the backbone gets gradients."""
    torch.manual_seed(0)
    method = build_method(_cfg(contrast_weight=0.1, patch_contrast={"views": "two_crops"}))
    clip = _clips(seed=2)
    ctx = _context(method, _clips(), clip)
    method.student.zero_grad()
    loss = method.term("patch_contrast").two_crops(ctx, img=clip["img"][:, 0], label=clip["label"][:, 0])
    assert torch.isfinite(loss) and loss > 0
    assert _backbone_grad(method) > 0


def test_patch_against_the_mixed_view_trains_the_segmentation_backbone_through_both_views():
    torch.manual_seed(0)
    method = build_method(_cfg(contrast_weight=0.1))
    clip = _clips(seed=2)
    ctx = _context(method, _clips(), clip)
    img = clip["img"][:, 0].requires_grad_(True)  # stands in for the view's path to the backbone
    stage = method.forwards.stage()
    view = stage.forward(img, kind="training", project=(Head.PATCH,))
    method.student.zero_grad()
    loss = method.term("patch_contrast").against_view(ctx, stage, view_feat=view.proj[Head.PATCH],
                                                      img=clip["img"][:, 0], label=clip["label"][:, 0])
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert _backbone_grad(method) > 0
    assert img.grad is not None and img.grad.abs().sum() > 0  # the view's features are in the loss


@pytest.mark.parametrize("term,extra", [
    ("pixel_contrast", {}),
    ("temporal_contrast", {}),
    ("patch_contrast", {"views": "mixed_and_crop"}),
    ("patch_contrast", {"views": "two_crops"}),
])
def test_each_contrast_changes_the_backbone_gradient(term, extra):
    """With the same RNG, turning one contrast on must change the backbone gradient."""
    grads = []
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        cfg = _cfg(contrast_weight=0.0)
        cfg.uda[term].update(extra, weight=weight)
        method = build_method(cfg)
        torch.manual_seed(1)
        method.train_step(_clips(), _clips(seed=1), iteration=0)
        grads.append(torch.cat([p.grad.flatten() for p in method.student.segmentor.backbone.parameters()]))
    assert not torch.allclose(grads[0], grads[1])


def _norm_statistics(method):
    return [b.clone() for m in method.student.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            for b in (m.running_mean, m.running_var)]


@pytest.mark.parametrize("views", ["mixed_and_crop", "two_crops"])
def test_auxiliary_views_leave_batchnorm_running_statistics_alone(views):
    """Patch crops must not move the statistics inference uses."""
    torch.manual_seed(0)
    method = build_method(_cfg(contrast_weight=0.1, patch_contrast={"views": views}))
    assert _norm_statistics(method), "the tiny model must have BatchNorm layers for this test to mean anything"
    clip = _clips(seed=2)
    ctx = _context(method, _clips(), clip)
    img, label = clip["img"][:, 0], clip["label"][:, 0]
    term = method.term("patch_contrast")
    before = _norm_statistics(method)
    if views == "mixed_and_crop":
        stage = method.forwards.stage()
        view = stage.forward(img, kind="auxiliary", project=(Head.PATCH,))  # stands in for the mixed view
        term.against_view(ctx, stage, view_feat=view.proj[Head.PATCH], img=img, label=label)
    else:
        term.two_crops(ctx, img=img, label=label)
    for a, b in zip(before, _norm_statistics(method)):
        assert torch.equal(a, b)
    assert all(m.momentum == 0.1 for m in method.student.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))  # restored
    method.student(img)  # an ordinary train-mode forward does move them: the check is not vacuous
    assert any(not torch.equal(a, b) for a, b in zip(before, _norm_statistics(method)))


def test_student_reference_frame_leaves_batchnorm_running_statistics_alone():
    """With the same seeds, a step whose temporal reference goes through the student must leave the
    student's running statistics exactly where the teacher-reference step leaves them."""
    stats = {}
    for reference in ("teacher", "student"):
        torch.manual_seed(0)
        cfg = _cfg(contrast_weight=0.1)
        cfg.uda.temporal_contrast["reference"] = reference
        method = build_method(cfg)
        torch.manual_seed(1)
        method.train_step(_clips(), _clips(seed=1), iteration=0)
        stats[reference] = _norm_statistics(method)
    assert len(stats["student"]) == len(stats["teacher"]) > 0
    for a, b in zip(stats["teacher"], stats["student"]):
        assert torch.equal(a, b)


def test_target_pixel_contrast_never_writes_student_features_to_the_bank():
    """The bank holds teacher projections of source frames (method.md); the target term only reads it."""
    torch.manual_seed(0)
    method = build_method(_cfg(contrast_weight=0.1, pixel_contrast={"use_target": True}))
    pushed = []
    bank = method.term("pixel_contrast").bank
    original_push = bank.push
    bank.push = lambda **kw: (pushed.append(kw["features"].shape[0]), original_push(**kw))[1]
    losses = method.train_step(_clips(), _clips(seed=1), iteration=0)
    assert "loss_pixel_tgt" in losses
    assert len(pushed) == 1  # the source stage's teacher features only


def test_checkpoint_state_round_trip():
    torch.manual_seed(0)
    method = build_method(_cfg(contrast_weight=0.1))
    method.train_step(_clips(), _clips(seed=1), iteration=0)
    method.after_step(iteration=0)
    state = method.checkpoint_state()
    assert {"model", "teacher", "extra"} <= set(state) and "pixel_bank" in state["extra"]
    torch.manual_seed(5)
    other = build_method(_cfg(contrast_weight=0.1))
    other.load_checkpoint_state(state)
    for a, b in zip(other.state_dict().values(), method.state_dict().values()):
        assert torch.equal(a, b)
