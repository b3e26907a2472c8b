"""Flicker rate, flow-warped consistency with DIS flow, occlusion masking, stable-pixel accuracy."""
import cv2
import numpy as np
import pytest

from pipa_video.evaluation.temporal import (TemporalConsistency, fb_consistent_mask, inside_mask,
                                            pair_consistency, resize_nearest, warp_nearest)

H, W = 72, 96
SHIFT_X, SHIFT_Y = 4, 2  # the scene moves right and down between t-1 and t
PAD = 12
NUM_CLASSES = 5


def rgb(grey):
    return np.repeat(grey[..., None], 3, axis=-1)


@pytest.fixture
def translated_pair(rng):
    """(frame t-1, labels t-1, frame t, labels t) of a textured scene under a pure translation."""
    noise = cv2.GaussianBlur(rng.integers(0, 256, (H + 2 * PAD, W + 2 * PAD)).astype(np.float32), (0, 0), 2.0)
    texture = cv2.normalize(noise, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    ys, xs = np.mgrid[0:H + 2 * PAD, 0:W + 2 * PAD]
    labels = ((xs // 15 + ys // 11) % NUM_CLASSES).astype(np.uint8)
    prev = (slice(PAD, PAD + H), slice(PAD, PAD + W))
    cur = (slice(PAD - SHIFT_Y, PAD - SHIFT_Y + H), slice(PAD - SHIFT_X, PAD - SHIFT_X + W))
    return rgb(texture[prev]), labels[prev], rgb(texture[cur]), labels[cur]


def test_identical_predictions_are_perfectly_consistent(translated_pair):
    frame, label, _, _ = translated_pair
    tc = TemporalConsistency(num_classes=NUM_CLASSES)
    assert tc.process(frame, label, sequence="s") is None  # a first frame has no pair
    pair = tc.process(frame, label, label, sequence="s")
    assert pair["flicker"] == 0.0
    assert pair["tc_miou"] == pytest.approx(100.0)
    assert pair["agreement"] == pytest.approx(100.0)
    assert pair["valid_share"] > 99.0
    assert pair["acc"] == 100.0 and pair["stable_acc"] == 100.0


def test_translation_is_consistent_after_warping_but_flickers(translated_pair):
    frame0, label0, frame1, label1 = translated_pair
    tc = TemporalConsistency(num_classes=NUM_CLASSES, keep_valid_masks=True)
    tc.process(frame0, label0, sequence="s", frame=0)
    pair = tc.process(frame1, label1, sequence="s", frame=1)
    assert pair["flicker"] > 10.0  # without motion compensation the moving scene flickers
    assert pair["agreement"] > 99.0
    assert pair["tc_miou"] > 98.0
    valid = tc.valid_masks[0]
    # Pixels of t whose source at t-1 lies left of / above the image are masked out.
    assert valid[:, :SHIFT_X].mean() < 0.1
    assert valid[:SHIFT_Y, :].mean() < 0.1
    assert valid[SHIFT_Y + 3:-3, SHIFT_X + 3:-3].mean() > 0.98
    assert pair["gap"] == 1


def test_random_predictions_are_inconsistent(translated_pair, rng):
    frame0, _, frame1, _ = translated_pair
    tc = TemporalConsistency(num_classes=NUM_CLASSES)
    tc.process(frame0, rng.integers(0, NUM_CLASSES, (H, W)), sequence="s")
    pair = tc.process(frame1, rng.integers(0, NUM_CLASSES, (H, W)), sequence="s")
    assert pair["agreement"] < 35.0  # chance level is 1 / 5
    assert pair["tc_miou"] < 20.0
    assert pair["flicker"] > 65.0


def test_out_of_image_and_forward_backward_masks():
    # Flow t -> t-1 points 3 px left everywhere; the flow t-1 -> t undoes it except in a block of
    # frame t-1 (x in 20..29) where it disagrees, as for a region that is occluded at t.
    flow_back = np.zeros((10, 40, 2), np.float32)
    flow_back[..., 0] = -3.0
    flow_fwd = np.zeros((10, 40, 2), np.float32)
    flow_fwd[..., 0] = 3.0
    flow_fwd[:, 20:30, 0] = -5.0
    inside = inside_mask(flow_back)
    assert not inside[:, :3].any() and inside[:, 3:].all()
    consistent = fb_consistent_mask(flow_back, flow_fwd)
    expected = np.ones((10, 40), bool)
    expected[:, 23:33] = False  # x - 3 lands in the disagreeing block (x - 3 in 20..29)
    # Bilinear sampling at integer positions: exact, except the border column replicated from x=0.
    np.testing.assert_array_equal(consistent[:, 3:], expected[:, 3:])
    # Small absolute disagreement passes (|a + b|^2 < 0.01 (|a|^2 + |b|^2) + 0.5).
    flow_fwd_noisy = np.full_like(flow_fwd, 0.0)
    flow_fwd_noisy[..., 0] = 3.5
    assert fb_consistent_mask(flow_back, flow_fwd_noisy)[:, 5:].all()
    flow_fwd_noisy[..., 0] = 4.0
    assert not fb_consistent_mask(flow_back, flow_fwd_noisy)[:, 5:].any()


def test_masked_pixels_do_not_count(rng):
    pred_prev = rng.integers(0, 3, (10, 40)).astype(np.uint8)
    flow_back = np.zeros((10, 40, 2), np.float32)
    flow_back[..., 0] = -3.0
    flow_fwd = -flow_back
    pred = warp_nearest(pred_prev, flow_back)
    pred[:, :3] = 2  # arbitrary where the source is outside the image
    stats, matrix, valid = pair_consistency(pred_prev, pred, flow_t_to_prev=flow_back, flow_prev_to_t=flow_fwd,
                                            num_classes=3)
    assert stats.valid == 10 * 37 and matrix.sum() == 10 * 37
    assert stats.agree == stats.valid  # the out-of-image columns would have broken this
    assert not valid[:, :3].any()


def test_stable_pixel_accuracy_and_pixel_weighted_overall():
    zero_flow = lambda a, b: np.zeros((*a.shape, 2), np.float32)  # noqa: E731
    tc = TemporalConsistency(num_classes=3, flow_fn=zero_flow)
    frame = np.zeros((2, 4, 3), np.uint8)
    tc.process(frame, np.array([[0, 0, 1, 1], [2, 2, 2, 2]]), sequence="a")
    label = np.array([[0, 1, 1, 255], [2, 2, 0, 0]], np.uint8)
    pair = tc.process(frame, np.array([[0, 0, 1, 2], [2, 2, 2, 0]]), label, sequence="a")
    # changed: (0,3) and (1,3) -> 2 of 8; stable = agreeing pixels: 6 of 8.
    assert pair["flicker"] == pytest.approx(25.0)
    assert pair["agreement"] == pytest.approx(75.0)
    # labelled: 7; correct: (0,0) (0,2) (1,0) (1,1) (1,3) -> 5; stable & labelled: 6 minus (1,3) -> 5 pixels
    # [(0,0),(0,1),(0,2),(1,0),(1,1),(1,2)]; stable & correct: (0,0) (0,2) (1,0) (1,1) -> 4.
    assert pair["acc"] == pytest.approx(100 * 5 / 7)
    assert pair["stable_share"] == pytest.approx(100 * 6 / 7)
    assert pair["stable_acc"] == pytest.approx(100 * 4 / 6)
    # A second, larger sequence: overall numbers weight pixels, not sequences.
    big = np.zeros((4, 8, 3), np.uint8)
    tc.process(big, np.zeros((4, 8), int), sequence="b")
    tc.process(big, np.zeros((4, 8), int), sequence="b")
    out = tc.evaluate()
    assert [s["sequence"] for s in out["per_sequence"]] == ["a", "b"]
    assert out["overall"]["flicker"] == pytest.approx(100 * 2 / (8 + 32))
    assert out["overall"]["pairs"] == 2 and out["overall"]["frames"] == 4
    assert out["per_sequence"][1]["flicker"] == 0.0


def test_sequence_rules():
    zero_flow = lambda a, b: np.zeros((*a.shape, 2), np.float32)  # noqa: E731
    tc = TemporalConsistency(num_classes=3, flow_fn=zero_flow)
    frame = np.zeros((2, 2, 3), np.uint8)
    tc.process(frame, np.zeros((2, 2), int), sequence="a")
    assert tc.process(frame, np.ones((2, 2), int), sequence="b") is None  # no pair across sequences
    with pytest.raises(ValueError, match="'a' was already processed"):
        tc.process(frame, np.zeros((2, 2), int), sequence="a")
    with pytest.raises(ValueError, match="outside the train ids"):
        tc.process(frame, np.full((2, 2), 3), sequence="b")
    with pytest.raises(ValueError, match="label"):
        tc.process(frame, np.zeros((2, 2), int), np.zeros((3, 3), np.uint8), sequence="b")


def test_size_wh_computes_on_resized_frames_predictions_and_labels():
    shapes = []

    def recording_flow(grey_from, grey_to):
        shapes.append((grey_from.shape, grey_to.shape))
        return np.zeros((*grey_from.shape, 2), np.float32)

    small = np.array([[0, 1, 2, 0], [2, 2, 1, 0]])
    full = np.kron(small, np.ones((4, 4), int))  # (8, 16): each id a 4x4 block
    assert np.array_equal(resize_nearest(full, (4, 2)), small)
    frame = np.zeros((8, 16, 3), np.uint8)
    tc = TemporalConsistency(num_classes=3, flow_fn=recording_flow, keep_valid_masks=True, size_wh=(4, 2))
    tc.process(frame, full, full, sequence="s")
    changed = full.copy()
    changed[:4, :4] = 1  # one block, i.e. one of the 8 resized pixels
    pair = tc.process(frame, changed, full, sequence="s")
    assert shapes == [((2, 4), (2, 4))] * 2  # both flows ran on (h, w) = (2, 4) grey frames
    assert tc.valid_masks[0].shape == (2, 4)
    assert pair["flicker"] == pytest.approx(100 / 8) and pair["acc"] == pytest.approx(100 * 7 / 8)
    assert tc.evaluate()["resolution"] == dict(size_wh=[4, 2], computed_wh=[[4, 2]])
    at_full = TemporalConsistency(num_classes=3, flow_fn=recording_flow)
    at_full.process(frame, full, sequence="s")
    assert at_full.evaluate()["resolution"] == dict(size_wh=None, computed_wh=[[16, 8]])
    with pytest.raises(ValueError, match="two positive ints"):
        TemporalConsistency(num_classes=3, size_wh=(4, 0))
