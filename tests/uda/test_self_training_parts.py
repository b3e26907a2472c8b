"""EMA teacher, pseudo-labels, ClassMix and strong augmentation."""
import torch
from torch import nn

from pipa_video.uda.mix import class_mix, class_mix_masks, gaussian_blur, strong_augment
from pipa_video.uda.pseudo import make_pseudo_labels
from pipa_video.uda.teacher import EMATeacher, ema_alpha, ema_horizon_warning


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Conv2d(4, 2, 1))


def test_ema_averages_parameters_and_buffers_and_stays_in_eval():
    student = _net()
    teacher = EMATeacher(student, max_alpha=0.9, norm="ema")
    teacher.train()
    assert not teacher.model.training and not any(p.requires_grad for p in teacher.parameters())
    before = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    student.train()
    student(torch.randn(4, 3, 8, 8))  # moves BN running stats
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    teacher.update(student, iteration=100)  # alpha = 0.9
    s_state = student.state_dict()
    for key, value in teacher.model.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.9 * before[key] + 0.1 * s_state[key])
        else:
            assert torch.equal(value, s_state[key]), key


def test_batch_norm_teacher_averages_parameters_only_like_daformer():
    """DAFormer's _update_ema walks parameters(); BatchNorm buffers are the teacher's own, and its
    BatchNorm runs in train mode (batch statistics) while dropout stays off."""
    student = _net()
    teacher = EMATeacher(student, max_alpha=0.9)
    teacher.eval()
    assert teacher.model[1].training and not teacher.model[2].training and not teacher.model[0].training
    buffers = {k: v.clone() for k, v in teacher.model.state_dict().items() if "running" in k}
    params = [p.clone() for p in teacher.model.parameters()]
    student.train()
    student(torch.randn(4, 3, 8, 8))  # moves the student's running statistics
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    teacher.update(student, iteration=100)
    for before, after, s in zip(params, teacher.model.parameters(), student.parameters()):
        torch.testing.assert_close(after, 0.9 * before + 0.1 * s)
    for key, value in buffers.items():
        assert torch.equal(teacher.model.state_dict()[key], value), key
    x = torch.randn(2, 3, 8, 8) * 3 + 5
    out = teacher(x)
    assert torch.equal(out, teacher(x))  # deterministic: no dropout
    teacher.model[1].eval()
    assert not torch.allclose(out, teacher.model(x))  # and batch statistics were used


def test_ema_first_iteration_copies_student():
    assert ema_alpha(0, max_alpha=0.999) == 0.0
    assert ema_alpha(10_000, max_alpha=0.999) == 0.999
    student = _net()
    teacher = EMATeacher(student, max_alpha=0.999)
    with torch.no_grad():
        student[0].weight.mul_(3)
    teacher.update(student, iteration=0)
    torch.testing.assert_close(teacher.model[0].weight, student[0].weight)


def test_ema_horizon_longer_than_the_run_is_flagged_with_the_papers_share():
    # The paper: alpha 0.999 over 40k iterations; its teacher reaches alpha at iteration 999.
    assert ema_horizon_warning(max_alpha=0.999, iters=40_000) is None
    message = ema_horizon_warning(max_alpha=0.999, iters=400)
    assert "schedule.iters=400" in message and "0.9 keeps the paper's horizon" in message
    # A run shorter than 1/(1 - alpha) never leaves the ramp: its teacher is the plain average of all students.
    assert all(ema_alpha(it, max_alpha=0.999) < 0.999 for it in range(400))
    assert ema_horizon_warning(max_alpha=0.9, iters=400) is None
    # Two iterations: no rate gives a horizon shorter than the run; 0.5 (the rule's floor) is not flagged.
    assert ema_horizon_warning(max_alpha=0.5, iters=2) is None
    assert "0.5 keeps the paper's horizon" in ema_horizon_warning(max_alpha=0.9, iters=2)


def test_building_a_short_self_training_run_warns_about_its_teacher(caplog):
    from pipa_video.config import validate
    from pipa_video.uda.build import build_method

    cfg = {"class_set": "viper15", "schedule": {"iters": 400, "warmup_iters": 30},
           "model": {"backbone": {"type": "mit_demo", "pretrained": None}, "decode_head": {"type": "segformer", "channels": 16}},
           "uda": {"method": "self_training", "ema_alpha": 0.999}}
    with caplog.at_level("WARNING", logger="pipa_video.uda.build"):
        build_method(validate(cfg))
    assert "uda.ema_alpha=0.999" in caplog.text
    caplog.clear()
    cfg["uda"]["ema_alpha"] = 0.9
    with caplog.at_level("WARNING", logger="pipa_video.uda.build"):
        build_method(validate(cfg))
    assert "ema_alpha" not in caplog.text


def test_teacher_forward_is_deterministic_and_gradient_free():
    teacher = EMATeacher(_net(), max_alpha=0.99)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    a, b = teacher(x), teacher(x)
    assert torch.equal(a, b) and not a.requires_grad  # dropout off, no graph


def test_pseudo_labels_image_weight_and_margins():
    logits = torch.zeros(2, 3, 4, 4)
    logits[0, 1] = 10.0  # image 0: confident everywhere
    logits[1, 2, :2] = 10.0  # image 1: confident in the top half only
    pl = make_pseudo_labels(logits, size=(8, 8), threshold=0.9, weight_mode="image", ignore_bottom=2)
    assert pl.label.shape == (2, 8, 8) and (pl.label[0] == 1).all()
    assert torch.allclose(pl.weight[0, :6], torch.ones(6, 8))
    assert (pl.weight[:, 6:] == 0).all()
    assert 0.3 < pl.weight[1, 0, 0] < 0.7  # about half of image 1 is confident
    px = make_pseudo_labels(logits, size=(8, 8), threshold=0.9, weight_mode="pixel")
    assert set(px.weight.unique().tolist()) <= {0.0, 1.0}


def test_class_mix_takes_half_of_the_source_classes_never_ignore():
    torch.manual_seed(0)
    label = torch.tensor([0, 1, 2, 3, 255]).repeat_interleave(4).reshape(1, 4, 5).repeat(8, 1, 1)
    label = label.reshape(8, 4, 5)
    masks = class_mix_masks(label, classes="image")
    for m, lbl in zip(masks, label):
        pasted = lbl[m].unique()
        assert 255 not in pasted.tolist()
        assert len(pasted) == 2  # ceil(4 / 2) of the 4 present classes
        for c in pasted:  # whole classes are pasted
            assert m[lbl == c].all()
    assert len({tuple(m.flatten().tolist()) for m in masks}) > 1  # random across images


def test_class_mix_batch_mode_draws_from_the_whole_batch_255_included_like_daformer():
    """DAFormer's get_class_masks: torch.unique over the whole batch ``labels`` (255 too), ceil(n / 2) per image."""
    torch.manual_seed(0)
    a = torch.tensor([0, 1, 255]).repeat_interleave(4).reshape(1, 3, 4).expand(20, 3, 4)
    b = torch.tensor([2, 3, 4]).repeat_interleave(4).reshape(1, 3, 4).expand(20, 3, 4)
    label = torch.stack([a[0], b[0]] * 20)  # 40 images, the batch holds 6 ids: 0 1 2 3 4 255
    masks = class_mix_masks(label, classes="batch")
    pasted_ids = set()
    for m, lbl in zip(masks, label):
        ids = lbl[m].unique().tolist()
        pasted_ids |= set(ids)
        assert len(ids) <= 3  # 3 of the batch's 6 ids, some of which the image may not hold
        for c in ids:
            assert m[lbl == c].all()
    assert 255 in pasted_ids and {0, 1, 2, 3, 4} <= pasted_ids
    counts = [len(lbl[m].unique()) for m, lbl in zip(masks, label)]
    assert 0 in counts or 1 in counts  # images often get fewer than half of their own classes


def test_class_mix_labels_and_weights():
    torch.manual_seed(1)
    src = torch.ones(2, 3, 4, 4)
    tgt = torch.zeros(2, 3, 4, 4)
    slabel = torch.tensor([[0, 0, 1, 1]] * 4).repeat(2, 1, 1)
    pseudo = torch.full((2, 4, 4), 7)
    pweight = torch.full((2, 4, 4), 0.5)
    mixed = class_mix(source_img=src, source_label=slabel, target_img=tgt, pseudo_label=pseudo,
                      pseudo_weight=pweight)
    m = mixed.mask
    assert torch.equal(mixed.img[:, 0] == 1, m)
    assert torch.equal(mixed.label[m], slabel[m]) and (mixed.label[~m] == 7).all()
    assert (mixed.weight[m] == 1).all() and (mixed.weight[~m] == 0.5).all()


def test_strong_augment_changes_colours_and_keeps_range():
    torch.manual_seed(0)
    mean, std = torch.tensor([123.675, 116.28, 103.53]), torch.tensor([58.395, 57.12, 57.375])
    raw = torch.rand(4, 3, 16, 16) * 255
    img = (raw - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    out = strong_augment(img, mean=mean, std=std, jitter_strength=0.2, jitter_prob=1.0, blur=False)
    back = out * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)
    assert back.min() >= -1e-3 and back.max() <= 255 + 1e-3
    assert not torch.allclose(out, img, atol=1e-3)
    same = strong_augment(img, mean=mean, std=std, jitter_strength=0.2, jitter_prob=0.0, blur=False)
    torch.testing.assert_close(same, img, atol=1e-4, rtol=1e-4)


def test_gaussian_blur_smooths_and_keeps_constant_images():
    torch.manual_seed(0)
    const = torch.full((2, 3, 20, 20), 0.3)
    torch.testing.assert_close(gaussian_blur(const, prob=1.0), const)
    noise = torch.rand(2, 3, 64, 64)  # kernel of 7 taps at this size
    assert gaussian_blur(noise, prob=1.0).std() < noise.std()
