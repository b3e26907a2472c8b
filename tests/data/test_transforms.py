import cv2
import numpy as np
import pytest
import torch

from pipa_video.data.classes import IGNORE_INDEX
from pipa_video.data.transforms import (ClassRequirement, Clip, ClipTransform, EvalTransform, FrameCrop, Normalize,
                                        PhotoMetricDistortion, RandomCrop, RandomFlip,
                                        RandomRescale, Resize, max_class_share)

IDENTITY = Normalize(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
H, W, BLOCK = 48, 64, 8
X_STEP, Y_STEP, FRAME_STEP = 3, 4, 20  # R = 3x, G = 4y, B = 60 + 20t


def coordinate_clip(num_frames: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames whose R/G channels are linear in x/y (bilinear resampling keeps them exact) and whose B
    channel tells the frame apart; labels are 8x8 block ids, identical for every frame."""
    ys, xs = np.mgrid[0:H, 0:W]
    frames = [np.stack([xs * X_STEP, ys * Y_STEP, np.full_like(xs, 60 + FRAME_STEP * t)], -1).astype(np.uint8)
              for t in range(num_frames)]
    label = ((ys // BLOCK) * (W // BLOCK) + xs // BLOCK).astype(np.uint8)
    return frames, [label.copy() for _ in range(num_frames)]


def run(transform, frames, labels, seed):
    img, label = transform(frames, labels, np.random.default_rng(seed))
    return img.numpy().transpose(0, 2, 3, 1), label.numpy()


GEOMETRY = [RandomRescale(base_size=None, ratio_range=(0.5, 2.0)), RandomCrop(crop_size=(40, 56)),
            RandomFlip(prob=0.5)]


@pytest.mark.parametrize("seed", range(8))
def test_geometry_is_shared_by_every_frame_and_labels_follow_images(seed):
    frames, labels = coordinate_clip(3)
    img, label = run(ClipTransform(GEOMETRY, normalize=IDENTITY), frames, labels, seed)
    assert img.shape == (3, 40, 56, 3) and label.shape == (3, 40, 56)
    for t in range(1, 3):
        np.testing.assert_array_equal(img[t, ..., :2], img[0, ..., :2])  # same x/y everywhere
        np.testing.assert_array_equal(label[t], label[0])
        inside = label[0] != IGNORE_INDEX
        np.testing.assert_allclose(img[t, ..., 2][inside] - img[0, ..., 2][inside], FRAME_STEP * t, atol=1)
    inside = label[0] != IGNORE_INDEX
    assert inside.mean() > 0.2
    # padding (image smaller than the crop after a small rescale) is 0 in the image, 255 in labels
    assert np.all(img[0][~inside] == 0)
    # the label at every pixel is the block of the source coordinate the image encodes
    src_x, src_y = img[0, ..., 0] / X_STEP, img[0, ..., 1] / Y_STEP
    expected = (np.rint(src_y).astype(int) // BLOCK) * (W // BLOCK) + np.rint(src_x).astype(int) // BLOCK
    near_border = (np.abs((src_x + 0.5) % BLOCK - BLOCK / 2) > BLOCK / 2 - 1.5) | \
                  (np.abs((src_y + 0.5) % BLOCK - BLOCK / 2) > BLOCK / 2 - 1.5)
    check = inside & ~near_border
    assert check.sum() > 100
    np.testing.assert_array_equal(label[0][check], expected[check])


def test_flip_and_crop_without_scaling_are_exact():
    frames, labels = coordinate_clip(2)
    t = ClipTransform([RandomCrop(crop_size=(H, W)), RandomFlip(prob=1.0)], normalize=IDENTITY)
    img, label = run(t, frames, labels, 0)
    np.testing.assert_array_equal(img[1], frames[1][:, ::-1])
    np.testing.assert_array_equal(label[0], labels[0][:, ::-1])


def test_crop_larger_than_image_pads_bottom_right():
    frames, labels = coordinate_clip(2)
    img, label = run(ClipTransform([RandomCrop(crop_size=(60, 70))], normalize=IDENTITY), frames, labels, 3)
    assert img.shape == (2, 60, 70, 3)
    np.testing.assert_array_equal(img[1, :H, :W], frames[1])
    np.testing.assert_array_equal(label[0, :H, :W], labels[0])
    assert np.all(img[:, H:] == 0) and np.all(img[:, :, W:] == 0)
    assert np.all(label[:, H:] == IGNORE_INDEX) and np.all(label[:, :, W:] == IGNORE_INDEX)


@pytest.mark.parametrize("ratio", [0.37, 1.9])
def test_labels_use_nearest_no_new_ids(ratio):
    rng = np.random.default_rng(1)
    label = rng.choice(np.array([1, 7, 42], np.uint8), size=(30, 40))
    frame = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    t = ClipTransform([RandomRescale(base_size=None, ratio_range=(ratio, ratio)), RandomCrop(crop_size=(24, 24))],
                      normalize=IDENTITY)
    _, out = run(t, [frame], [label], 0)
    assert set(np.unique(out)) <= {1, 7, 42, IGNORE_INDEX}
    assert {1, 7, 42} <= set(np.unique(out))


def test_resize_matches_cv2_resize_including_edges():
    rng = np.random.default_rng(2)
    frame = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (80, 60), interpolation=cv2.INTER_CUBIC)
    for size in [(40, 30), (160, 120), (123, 77)]:
        img, _ = run(ClipTransform([Resize(size=size)], normalize=IDENTITY), [frame], [None], 0)
        reference = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
        assert np.abs(img[0] - reference).max() <= 1, size


def test_random_rescale_follows_mmcv_keep_ratio_rule():
    # GTA5's 1914x1052 to fit 1280x720 with the aspect kept -> 1280x704 (mmcv.rescale_size)
    clip = Clip([np.zeros((1052, 1914, 3), np.uint8)], [None])
    RandomRescale(base_size=(1280, 720), ratio_range=(1.0, 1.0))(clip, np.random.default_rng(0))
    assert clip.size == (1280, 704)
    clip = Clip([np.zeros((720, 1280, 3), np.uint8)], [None])
    RandomRescale(base_size=None, ratio_range=(0.5, 0.5))(clip, np.random.default_rng(0))
    assert clip.size == (640, 360)
    sizes = set()
    for seed in range(20):
        clip = Clip([np.zeros((10, 20, 3), np.uint8)], [None])
        RandomRescale(base_size=(200, 100), ratio_range=(0.5, 2.0))(clip, np.random.default_rng(seed))
        w, h = clip.size
        assert 100 <= w <= 400 and abs(w / h - 2) < 0.05
        sizes.add(clip.size)
    assert len(sizes) > 10


def test_photometric_differs_per_frame_but_geometry_does_not():
    frames, labels = coordinate_clip(1)
    frame = np.ascontiguousarray(np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8))
    clip_frames = [frame, frame, frame.copy()]  # a clamped clip passes the same array twice
    with_jitter = ClipTransform(GEOMETRY + [PhotoMetricDistortion()], normalize=IDENTITY)
    without = ClipTransform(GEOMETRY, normalize=IDENTITY)
    differing = 0
    for seed in range(6):
        img, label = run(with_jitter, clip_frames, labels * 3, seed)
        plain, plain_label = run(without, clip_frames, labels * 3, seed)
        # geometry is drawn before jitter: same seed, same geometry, whatever the jitter drew
        np.testing.assert_array_equal(label, plain_label)
        np.testing.assert_array_equal(label[1], label[0])
        differing += int(not np.array_equal(img[0], img[1])) + int(not np.array_equal(img[1], img[2]))
        assert img.min() >= 0 and img.max() <= 255
    assert differing >= 8  # each frame has its own draws (all four coins off: p = 1/16 per frame)


def test_photometric_single_steps():
    frame = np.full((4, 4, 3), 100, np.uint8)
    jitter = PhotoMetricDistortion()
    outputs = {jitter.distort(frame, np.random.default_rng(s)).tobytes() for s in range(30)}
    assert len(outputs) > 20
    grey = jitter.distort(frame, np.random.default_rng(0))
    assert grey.dtype == np.uint8 and grey.shape == frame.shape


def test_cat_max_ratio_respected_when_possible():
    # class 0 everywhere, class 1 in a 26-wide column at the right: a crop passes when at least
    # 2 of its 32 columns are class 1, i.e. for 25 of the 65 offsets (p = 0.38 per try).
    label = np.zeros((32, 96), np.uint8)
    label[:, 70:] = 1
    frame = np.zeros((32, 96, 3), np.uint8)
    shares = {}
    for ratio in (0.95, 1.0):
        t = ClipTransform([RandomCrop(crop_size=(32, 32), cat_max_ratio=ratio)], normalize=IDENTITY)
        shares[ratio] = [max_class_share(run(t, [frame], [label], seed)[1][0]) for seed in range(40)]
    passed = np.mean([s < 0.95 for s in shares[0.95]])
    assert passed >= 0.9  # ten tries fail with p = 0.62 ** 10 < 1%
    assert np.mean([s < 0.95 for s in shares[1.0]]) < 0.6  # without the rule: about 38%


def test_max_class_share_ignores_255():
    label = np.array([[0, 0, 1, 255, 255, 255]], np.uint8)
    assert max_class_share(label) == pytest.approx(2 / 3)
    assert max_class_share(np.full((2, 2), 255, np.uint8)) == 1.0


def test_normalize_and_eval_transform_keep_label_resolution():
    frames, labels = coordinate_clip(1)
    norm = Normalize(mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 5.0))
    img, label = EvalTransform(resize=(32, 24), normalize=norm)(frames, labels, np.random.default_rng(0))
    assert img.dtype == torch.float32 and img.shape == (1, 3, 24, 32) and img.is_contiguous()
    assert label.dtype == torch.int64 and label.shape == (1, H, W)
    np.testing.assert_array_equal(label[0].numpy(), labels[0])
    resized = cv2.resize(frames[0], (32, 24), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    expected = (resized - np.array([10, 20, 30])) / np.array([2, 4, 5])
    np.testing.assert_allclose(img[0].numpy().transpose(1, 2, 0), expected, atol=0.5 / 2 + 1e-4)
    _, missing = EvalTransform(resize=None, normalize=norm)(frames, [None], np.random.default_rng(0))
    assert missing.shape == (1, H, W) and bool((missing == IGNORE_INDEX).all())


@pytest.mark.parametrize("seed", range(6))
def test_valid_marks_exactly_the_pixels_inside_the_frame(seed):
    """``valid`` is False on padding, so a crop that is half padding says so pixel for pixel."""
    frames, labels = coordinate_clip(2)
    t = ClipTransform([RandomRescale(base_size=None, ratio_range=(0.5, 1.5)), RandomCrop(crop_size=(40, 56)),
                       RandomFlip(prob=0.5), PhotoMetricDistortion()], normalize=IDENTITY)
    out = t.apply(frames, labels, np.random.default_rng(seed))
    assert out.valid.shape == (2, 40, 56) and out.valid.dtype == torch.bool
    assert torch.equal(out.valid[0], out.valid[1])
    np.testing.assert_array_equal(out.valid[0].numpy(), out.label[0].numpy() != IGNORE_INDEX)  # labels cover H x W
    assert torch.equal(out.pseudo_valid, out.valid[0])  # no margins configured: only the padding


def test_a_crop_half_padding_is_half_invalid():
    frames, labels = coordinate_clip(1)
    out = ClipTransform([RandomCrop(crop_size=(H, 2 * W))], normalize=IDENTITY).apply(
        frames, labels, np.random.default_rng(0))
    assert out.valid[0, :, :W].all() and not out.valid[0, :, W:].any()


def test_crop_aware_pseudo_margins_only_bite_at_the_frame_edge():
    """HRDA: the margin mask is built on the full frame and cropped with it (crop_pseudo_margins)."""
    frames, labels = coordinate_clip(1)
    t = ClipTransform([Resize(size=(W // 2, H // 2)), RandomCrop(crop_size=(12, 32))], normalize=IDENTITY,
                      pseudo_margins=(4, 8, 0, 0))
    seen = set()
    for seed in range(30):
        clip = t._geometry(frames, labels, np.random.default_rng(seed))
        y0 = int(-clip.matrix[1, 2])  # the crop's top row on the half-size frame
        out = t.apply(frames, labels, np.random.default_rng(seed))
        rows = out.pseudo_valid.all(dim=1).numpy()
        frame_rows = np.arange(y0, y0 + 12)  # 4 and 8 stored rows are 2 and 4 rows at half size
        np.testing.assert_array_equal(rows, (frame_rows >= 2) & (frame_rows < H // 2 - 4))
        seen.add(y0)
    assert {0, 12} <= seen  # crops at both edges and in between were checked


def test_frame_crop_cuts_rows_before_everything_else():
    frames, labels = coordinate_clip(2)
    frames[1] = frames[0]  # a clamped clip repeats one array
    t = ClipTransform([FrameCrop(borders=(0, 8, 0, 0)), RandomCrop(crop_size=(H, W))], normalize=IDENTITY)
    out = t.apply(frames, [labels[0], None], np.random.default_rng(0))
    assert out.img.shape == (2, 3, H, W)
    np.testing.assert_array_equal(out.img[0].numpy().transpose(1, 2, 0)[:H - 8], frames[0][:H - 8])
    assert not out.valid[0, H - 8:].any() and out.valid[0, :H - 8].all()  # the cut rows are padding now
    assert (out.label[0, H - 8:] == IGNORE_INDEX).all()
    with pytest.raises(ValueError, match="first op"):
        ClipTransform([Resize(size=(W // 2, H)), FrameCrop(borders=(0, 8, 0, 0))], normalize=IDENTITY).apply(
            frames, labels, np.random.default_rng(0))


def test_resize_keep_ratio_is_mmseg_img_scale():
    clip = Clip([np.zeros((1052, 1914, 3), np.uint8)], [None])
    Resize(size=(1280, 720), keep_ratio=True)(clip, np.random.default_rng(0))
    assert clip.size == (1280, 704)
    clip = Clip([np.zeros((1052, 1914, 3), np.uint8)], [None])
    Resize(size=(1280, 720))(clip, np.random.default_rng(0))
    assert clip.size == (1280, 720)


def test_rare_class_requirement_redraws_the_crop_until_the_class_is_in_it():
    """DAFormer's min_crop_ratio: re-draw (up to 10 times) until the crop holds > min_pixels of the class."""
    label = np.zeros((16, 160), np.uint8)
    label[:, 150:] = 3  # class 3 only in the last 10 columns
    frame = np.zeros((16, 160, 3), np.uint8)
    t = ClipTransform([RandomCrop(crop_size=(16, 16))], normalize=IDENTITY)
    need = ClassRequirement(class_id=3, min_pixels=8)
    hits = [int((t.apply([frame], [label], np.random.default_rng(s), require=need).label == 3).sum()) > 8
            for s in range(40)]
    plain = [int((t.apply([frame], [label], np.random.default_rng(s)).label == 3).sum()) > 8 for s in range(40)]
    assert np.mean(plain) < 0.2  # 10 of 145 offsets pass
    assert np.mean(hits) > 0.35  # 1 - (135 / 145) ** 11 = 0.54 expected
    assert np.mean(hits) > np.mean(plain) + 0.2


def test_geometric_ops_must_come_first():
    with pytest.raises(ValueError, match="geometric ops must come before"):
        ClipTransform([PhotoMetricDistortion(), RandomFlip()], normalize=IDENTITY)
