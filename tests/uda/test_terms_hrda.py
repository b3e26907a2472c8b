"""HRDA and MIC in the step, and the contrasts on HRDA: features and labels from the same crop at the same
stride (method.md defect 2), the same detail crop for a clip's frames, each term alone and all together."""
import sys
from pathlib import Path

import pytest
import torch

from pipa_video.config import validate
from pipa_video.models.hrda import Box
from pipa_video.uda.build import build_method
from pipa_video.uda.contrast.sampling import downsample_labels
from pipa_video.uda.step import BaseSettings, Method, SelfTrainingMethod
from pipa_video.uda.student import Head, StudentNet
from pipa_video.uda.terms import PatchContrastTerm, PixelContrastTerm
from pipa_video.uda.contrast.patch import PatchContrastLoss
from pipa_video.uda.contrast.pixel import PixelContrastLoss
from test_step import NUM_CLASSES, _clips

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from _hrda_toys import cell_hrda  # noqa: E402

SIZE = 64
TERMS = {
    "pixel": {"pixel_contrast": {"weight": 0.1, "use_target": True}},
    "patch_view": {"patch_contrast": {"weight": 0.1, "crop_ratio": 1.0}},  # of the 32 px detail crop: >= 32 px
    "patch_two_crops": {"patch_contrast": {"weight": 0.1, "views": "two_crops"}},
    "temporal_teacher": {"temporal_contrast": {"weight": 0.1}},
    "temporal_student": {"temporal_contrast": {"weight": 0.1, "reference": "student"}},
    "mic": {"mic": {"weight": 1.0, "block_size": 16}},
    "mic_source_and_target": {"mic": {"weight": 1.0, "block_size": 16, "images": "source_and_target",
                                      "color_augmentation": False}},
}
LOGGED = {"pixel": {"loss_pixel_src", "loss_pixel_tgt"}, "patch_view": {"loss_patch"},
          "patch_two_crops": {"loss_patch"},
          "temporal_teacher": {"loss_temporal"}, "temporal_student": {"loss_temporal"},
          "mic": {"loss_mic"}, "mic_source_and_target": {"loss_mic"}}


def _cfg(hrda=True, **uda):
    sections = {"pixel_contrast": {"proj_dim": 16, "anchors_per_class": 8, "bank_size": 16},
                "patch_contrast": {"proj_dim": 16, "num_anchors": 64},
                "temporal_contrast": {"proj_dim": 16, "num_anchors": 64, "confidence": 0.0}}
    for key, value in uda.items():
        sections[key] = {**sections.get(key, {}), **value}
    model = {"backbone": {"type": "mit_demo", "pretrained": None}, "decode_head": {"type": "segformer", "channels": 32}}
    if hrda:
        model.update(type="hrda", hrda={"detail_crop": (32, 32), "test_window": (64, 64), "test_stride": (32, 32)})
    return validate({"class_set": "viper15", "model": model, "data": {"source": {"crop_size": (SIZE, SIZE)},
                     "target": {"crop_size": (SIZE, SIZE)}}, "uda": {"method": "self_training", "pseudo_threshold": 0.0,
                                                                    **sections}})


def _grads(method):
    return {name: p.grad for name, p in method.student.named_parameters() if p.grad is not None}


TOGETHER = [["pixel", "patch_view", "temporal_teacher", "mic"],
            ["pixel", "patch_two_crops", "temporal_student", "mic_source_and_target"]]


@pytest.mark.parametrize("hrda", [True, False], ids=["hrda", "daformer"])
@pytest.mark.parametrize("names", [[n] for n in TERMS] + TOGETHER, ids=list(TERMS) + ["together", "together_alt"])
def test_each_term_alone_and_together_trains(names, hrda):
    uda = {}
    for name in names:
        for key, value in TERMS[name].items():
            uda[key] = {**uda.get(key, {}), **value}
    torch.manual_seed(0)
    method = build_method(_cfg(hrda, **uda))
    for iteration in range(2):
        method.student.zero_grad(set_to_none=True)
        losses = method.train_step(_clips(seed=iteration), _clips(seed=10 + iteration), iteration=iteration)
        method.after_step(iteration=iteration)
    expected = {"loss_src", "loss_mix"} | set().union(*(LOGGED[n] for n in names))
    if hrda:
        expected |= {f"{k}_detail" for k in expected if k in ("loss_src", "loss_mix", "loss_mic")}
    assert expected <= set(losses), sorted(losses)
    assert not any("detail" in k for k in losses) or hrda
    assert all(torch.isfinite(v) for v in losses.values()), losses
    grads = _grads(method)
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert any(g.abs().sum() > 0 for n, g in grads.items() if n.startswith("segmentor.backbone"))
    if hrda:
        assert any(g.abs().sum() > 0 for n, g in grads.items() if "scale_attention" in n)


def test_mic_changes_the_backbone_gradient():
    grads = []
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        method = build_method(_cfg(mic={"weight": weight, "block_size": 16}))
        torch.manual_seed(1)
        method.train_step(_clips(), _clips(seed=1), iteration=0)
        grads.append(torch.cat([p.grad.flatten() for p in method.student.segmentor.backbone.parameters()]))
    assert not torch.allclose(grads[0], grads[1])


def test_teacher_pseudo_labels_on_hrda_are_detail_slide_fused_with_context():
    torch.manual_seed(0)
    method = build_method(_cfg(mic={"weight": 1.0}))
    source, target = _clips(), _clips(seed=1)
    ctx = method._context(source, target)
    from pipa_video.uda.teacher import teacher_views
    views = teacher_views(method.teacher, method._teacher_requests(ctx), method.forwards.context)
    with torch.no_grad():
        expected = method.teacher.model.segmentor.predict(target["img"][:, 0])
    torch.testing.assert_close(views["target"].logits, expected)
    assert views["target"].logits.shape[-2:] == (SIZE // 4, SIZE // 4)  # the whole target crop


def test_mic_trains_on_the_masked_target_against_pseudo_labels_of_the_unmasked_one(monkeypatch):
    torch.manual_seed(0)
    method = build_method(_cfg(mic={"weight": 1.0, "block_size": 16}))
    term, seen = method.term("mic"), {}
    original = term.mic.masked_target

    def spy(img, *, pseudo_label, pseudo_weight):
        seen.update(img=img, label=pseudo_label, weight=pseudo_weight)
        seen["masked"] = original(img, pseudo_label=pseudo_label, pseudo_weight=pseudo_weight)
        return seen["masked"]

    monkeypatch.setattr(term.mic, "masked_target", spy)
    captured = {}
    monkeypatch.setattr(method, "_mixed_term_losses",
                        lambda ctx, out, stage: captured.setdefault("ctx", ctx) and [] or [])
    target = _clips(seed=1)
    method.train_step(_clips(), target, iteration=0)
    ctx = captured["ctx"]
    assert seen["img"] is target["img"][:, 0] or torch.equal(seen["img"], target["img"][:, 0])
    assert torch.equal(seen["label"], ctx.pseudo.label) and torch.equal(seen["weight"], ctx.pseudo.weight)
    masked = seen["masked"]
    assert 0.3 < float((masked.mask == 0).float().mean()) < 0.99  # 16 blocks of 16 px, 70% masked on average


def test_mic_source_and_target_takes_half_source_images_with_their_labels(monkeypatch):
    torch.manual_seed(0)
    method = build_method(_cfg(mic=TERMS["mic_source_and_target"]["mic"]))
    term, seen = method.term("mic"), {}
    original = term.mic.masked_target
    monkeypatch.setattr(term.mic, "masked_target",
                        lambda img, **kw: seen.update(img=img, **kw) or original(img, **kw))
    source, target = _clips(), _clips(seed=1)
    method.train_step(source, target, iteration=0)
    assert torch.equal(seen["img"][0], source["img"][0, 0]) and torch.equal(seen["img"][1], target["img"][0, 0])
    assert torch.equal(seen["pseudo_label"][0], source["label"][0, 0])
    assert (seen["pseudo_weight"][0] == 1).all()


# --- alignment: features and labels of the same crop at the same stride ----------------------------------
def _encode(label):
    """Images whose 4x4 cells carry their label as a colour direction (decodable after L2 normalisation)."""
    value = label.clamp_max(9).float() / 10
    return torch.stack([value, 1 - value, torch.full_like(value, 0.5)], dim=1)


def _decode(features):
    """(B, 3, h, w) projections of _encode's colours -> (B, h, w) labels."""
    return torch.round(10 * features[:, 0] / (features[:, 0] + features[:, 1])).long()


def _identity_student(hrda):
    """A pointwise model whose features are each cell's mean colour, with identity projection heads."""
    seg = cell_hrda(NUM_CLASSES, identity=True, detail_crop=(32, 32), test_window=(64, 64), test_stride=(32, 32))
    if not hrda:
        from pipa_video.models.segmentor import Segmentor
        seg = Segmentor(backbone=seg.backbone, decode_head=seg.decode_head, num_classes=NUM_CLASSES)
    student = StudentNet(segmentor=seg, proj_dims={Head.PIXEL: 3, Head.PATCH: 3})
    with torch.no_grad():
        for head in student.heads.values():
            head.proj[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            head.proj[1] = torch.nn.Identity()
            head.proj[3].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            head.proj[3].bias.zero_()
    return student


def _label_blocks(seed, size=SIZE, block=8):
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 9, (2, size // block, size // block), generator=g)
    label = label.repeat_interleave(block, 1).repeat_interleave(block, 2)
    label[:, :block] = 255
    return label


def _aligned_method(hrda, *, patch_views=None):
    student = _identity_student(hrda)
    terms = [PixelContrastTerm(loss=PixelContrastLoss(num_classes=NUM_CLASSES, tau=0.1, anchors_per_class=8,
                                                      hard_ratio=0.5), weight=0.1, proj_dim=3, use_target=False,
                               pseudo_threshold=0.0)]
    settings = BaseSettings(method=Method.SOURCE_ONLY, jitter_prob=0.0, blur=False)  # no colour change of crops
    return SelfTrainingMethod(student=student, settings=settings, ema_alpha=0.9, terms=terms)


@pytest.mark.parametrize("hrda", [True, False], ids=["hrda", "daformer"])
def test_pixel_contrast_features_and_labels_come_from_the_same_crop_at_the_same_stride(hrda, monkeypatch):
    method = _aligned_method(hrda)
    label = _label_blocks(0)
    source = {"img": _encode(label)[:, None], "label": label[:, None]}
    loss = method.term("pixel_contrast").loss
    calls = []
    original = loss.loss_and_anchors
    monkeypatch.setattr(loss, "loss_and_anchors", lambda **kw: calls.append(kw) or original(**kw))
    ctx = method._context(source, None)
    if hrda:
        ctx.src_box = Box(top=16, left=24, height=32, width=32)  # away from the origin: a shifted crop
    method._source_stage(ctx)
    (call,) = calls
    grid = call["features"].shape[-2:]
    cells = downsample_labels(call["labels"], grid)
    labelled = cells != 255
    assert labelled.sum() > 20
    assert torch.equal(_decode(call["features"])[labelled], cells[labelled])
    if hrda:
        assert tuple(grid) == (8, 8)  # the 32 px detail crop at stride 4
        # PiPa's HRDA code: labels of the whole image for the crop's features. They do not line up.
        whole = downsample_labels(label, grid)
        both = (whole != 255) & labelled
        assert not torch.equal(whole[both], cells[both])


def test_patch_crop_inside_the_hrda_detail_view_matches_cell_for_cell(monkeypatch):
    """The mixed view's cells under the patch crop and the crop's own cells see the same image cells."""
    method = _aligned_method(True)
    patch = PatchContrastTerm(loss=PatchContrastLoss(tau=0.1, num_anchors=64), weight=0.1, proj_dim=3,
                              views="mixed_and_crop", crop_ratio=0.5, iou_range=(0.1, 1.0))
    calls = []
    monkeypatch.setattr(patch.loss, "forward", lambda **kw: calls.append(kw) or torch.zeros(()))
    label = _label_blocks(1)
    img = _encode(label)
    ctx = method._context({"img": img[:, None], "label": label[:, None]}, None)
    box = Box(top=16, left=8, height=32, width=32)
    for seed in range(6):  # crops at several places, flipped or not
        torch.manual_seed(seed)
        stage = method.forwards.stage()
        view = stage.forward(img, kind="training", detail_box=box, project=(Head.PATCH,))
        assert view.region == box
        patch.against_view(ctx, stage, view_feat=view.proj[Head.PATCH], img=view.crop(img), label=view.crop(label))
    for call in calls:
        cells = downsample_labels(call["pseudo1"], call["feat1"].shape[-2:])
        labelled = cells != 255
        assert labelled.any()
        assert torch.equal(_decode(call["feat1"])[labelled], cells[labelled])
        assert torch.equal(_decode(call["feat2"])[labelled], cells[labelled])


def test_the_temporal_reference_frame_is_cut_to_the_key_frames_detail_crop(monkeypatch):
    torch.manual_seed(0)
    method = build_method(_cfg(temporal_contrast={"weight": 0.1, "reference": "student"}))
    requests, inputs = [], []
    original = method._teacher_requests
    monkeypatch.setattr(method, "_teacher_requests", lambda ctx: requests.extend(original(ctx)) or requests)
    method.student.register_forward_pre_hook(lambda module, args, kwargs: inputs.append((args[0], kwargs)),
                                             with_kwargs=True)
    captured = {}
    original_context = method._context
    monkeypatch.setattr(method, "_context", lambda s, t: captured.setdefault("ctx", original_context(s, t)))
    target = _clips(seed=1)
    method.train_step(_clips(), target, iteration=0)
    box = captured["ctx"].mix_box
    by_name = {r.name: r for r in requests}
    assert by_name["temporal_key"].region == box and by_name["temporal_reference"].region == box
    assert by_name["target"].region is None  # pseudo-labels: the whole crop, detail slide
    mixed_call = [kw for _, kw in inputs if kw.get("detail_box") == box]
    assert mixed_call  # the mixed view's detail crop is the box the reference frame is cut to
    ref_inputs = [img for img, kw in inputs if kw.get("single_scale") and Head.TEMPORAL in kw.get("project", ())]
    (ref,) = ref_inputs
    assert torch.equal(ref, box.crop(target["img"][:, 1]))
