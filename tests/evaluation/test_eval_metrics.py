"""SegEvaluator against an independent per-class count, for both protocols."""
import numpy as np
import pytest
import torch

from pipa_video.data.classes import IGNORE_INDEX, SYNTHIASEQ12
from pipa_video.evaluation.metrics import Protocol, SegEvaluator, confusion_matrix

C = 6
EVAL_IDS = (0, 1, 2, 4, 5)  # class 3 is trained but not reported (like SYNTHIA-Seq's fence)


def reference_iou(preds, labels, *, num_classes, eval_ids, protocol):
    """Straight per-class TP/FP/FN counts with loops, independent of the confusion matrix."""
    tp = np.zeros(num_classes)
    fp = np.zeros(num_classes)
    fn = np.zeros(num_classes)
    for pred, label in zip(preds, labels):
        for p, g in zip(pred.ravel().tolist(), label.ravel().tolist()):
            if g == IGNORE_INDEX:
                continue
            if protocol == "unified" and (g not in eval_ids or p not in eval_ids):
                continue
            if p == g:
                tp[g] += 1
            else:
                fp[p] += 1
                fn[g] += 1
    iou = np.full(num_classes, np.nan)
    for c in range(num_classes):
        if tp[c] + fp[c] + fn[c] > 0:
            iou[c] = tp[c] / (tp[c] + fp[c] + fn[c])
    return 100 * iou, 100 * np.nanmean(iou[list(eval_ids)])


def random_split(rng, n=4, shape=(12, 15)):
    preds, labels = [], []
    for _ in range(n):
        # Class 4 is neither in the ground truth nor predicted (IoU nan); class 5 is predicted but
        # never in the ground truth (IoU 0, not nan).
        label = rng.choice([0, 1, 2, 3], size=shape).astype(np.uint8)
        label[rng.random(shape) < 0.15] = IGNORE_INDEX
        pred = rng.choice([0, 1, 2, 3, 5], size=shape).astype(np.int64)
        preds.append(pred)
        labels.append(label)
    return preds, labels


@pytest.mark.parametrize("protocol", ["davsn", "unified"])
def test_matches_independent_per_class_count(rng, protocol):
    preds, labels = random_split(rng)
    ev = SegEvaluator(num_classes=C, eval_ids=EVAL_IDS, protocol=protocol)
    for p, g in zip(preds, labels):
        ev.process(p, g)
    out = ev.evaluate()
    ref_iou, ref_miou = reference_iou(preds, labels, num_classes=C, eval_ids=EVAL_IDS, protocol=protocol)
    got_iou = np.array([row["IoU"] for row in out["per_class"]])
    np.testing.assert_allclose(got_iou, ref_iou, equal_nan=True)
    assert out["mIoU"] == pytest.approx(ref_miou)
    assert out["protocol"] == protocol
    assert np.isnan(got_iou[4])  # neither in ground truth nor predicted: nan, left out of the mean
    assert got_iou[5] == 0.0  # predicted but never in ground truth: a real 0
    assert out["evaluated_classes"] == [str(i) for i in EVAL_IDS]
    assert out["num_images"] == len(preds)


def test_protocols_differ_on_excluded_class():
    # label: road road sidewalk fence ; prediction: road fence sidewalk sidewalk; fence not reported.
    label = np.array([[0, 0, 1, 3]], np.uint8)
    pred = np.array([[0, 3, 1, 1]])
    davsn = SegEvaluator(num_classes=4, eval_ids=(0, 1), protocol=Protocol.DAVSN)
    unified = SegEvaluator(num_classes=4, eval_ids=(0, 1), protocol=Protocol.UNIFIED)
    davsn.process(pred, label)
    unified.process(pred, label)
    # DA-VSN: the fence prediction is a false negative of road, the fence pixel a false positive of sidewalk.
    assert davsn.evaluate()["mIoU"] == pytest.approx(50.0)
    # unified: both pixels that involve fence are dropped.
    assert unified.evaluate()["mIoU"] == pytest.approx(100.0)
    assert unified.matrix.sum() == 2 and davsn.matrix.sum() == 4


def test_batch_and_tensor_input_equal_single_images(rng):
    preds, labels = random_split(rng, n=3)
    single = SegEvaluator(num_classes=C, eval_ids=EVAL_IDS, protocol="davsn")
    for p, g in zip(preds, labels):
        single.process(p, g)
    batched = SegEvaluator(num_classes=C, eval_ids=EVAL_IDS, protocol="davsn")
    batched.process(torch.from_numpy(np.stack(preds)), torch.from_numpy(np.stack(labels)).long())
    np.testing.assert_array_equal(single.matrix, batched.matrix)
    assert batched.num_images == 3
    batched.reset()
    assert batched.matrix.sum() == 0 and batched.num_images == 0


def test_shape_mismatch_names_both_shapes():
    ev = SegEvaluator(num_classes=C, eval_ids=EVAL_IDS, protocol="davsn")
    with pytest.raises(ValueError, match=r"predictions whose size does not match the labels.*\(4, 5\).*\(8, 10\)"):
        ev.process(np.zeros((4, 5), int), np.zeros((8, 10), np.uint8))


def test_out_of_range_ids_are_errors():
    ev = SegEvaluator(num_classes=C, eval_ids=EVAL_IDS, protocol="davsn")
    with pytest.raises(ValueError, match=r"labels contain ids \[7\]"):
        ev.process(np.zeros((2, 2), int), np.full((2, 2), 7, np.uint8))
    with pytest.raises(ValueError, match=r"predictions contain ids \[6\]"):
        ev.process(np.full((2, 2), 6), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="eval_ids"):
        SegEvaluator(num_classes=3, eval_ids=(0, 3), protocol="davsn")


@pytest.mark.parametrize("in_place", [False, True])
def test_sum_across_ranks_with_fake_all_reduce(rng, in_place):
    preds, labels = random_split(rng, n=4)
    full = SegEvaluator(num_classes=C, eval_ids=EVAL_IDS, protocol="unified")
    ranks = [SegEvaluator(num_classes=C, eval_ids=EVAL_IDS, protocol="unified") for _ in range(2)]
    for i, (p, g) in enumerate(zip(preds, labels)):
        full.process(p, g)
        ranks[i % 2].process(p, g)
    # A fake all-reduce: collect every rank's tensor first, then hand each the sum.
    sent = []
    ranks[1].sum_across_ranks(lambda t: sent.append(t.clone()) or t)

    def all_reduce(t):
        if in_place:
            t += sent[0]
            return None
        return t + sent[0]

    ranks[0].sum_across_ranks(all_reduce)
    np.testing.assert_array_equal(ranks[0].matrix, full.matrix)
    assert ranks[0].num_images == 4
    assert ranks[0].evaluate()["mIoU"] == pytest.approx(full.evaluate()["mIoU"])


def test_synthia_seq_fence_counts_as_error_under_davsn():
    cs = SYNTHIASEQ12
    fence = cs.names.index("fence")
    road = cs.names.index("road")
    label = np.full((2, 2), road, np.uint8)
    pred = np.array([[road, road], [road, fence]])
    ev = SegEvaluator(num_classes=cs.num_classes, eval_ids=cs.eval_ids, protocol="davsn", class_names=cs.names)
    ev.process(pred, label)
    out = ev.evaluate()
    iou = {row["name"]: row["IoU"] for row in out["per_class"]}
    assert iou["road"] == pytest.approx(75.0)
    assert out["mIoU"] == pytest.approx(75.0)  # only road is present; fence is not reported
    assert "fence" not in out["evaluated_classes"] and len(out["evaluated_classes"]) == 11


def test_confusion_matrix_rows_are_ground_truth():
    m = confusion_matrix(np.array([1, 1, 0]), np.array([0, 1, 255]), num_classes=2)
    np.testing.assert_array_equal(m, [[0, 1], [0, 1]])
    assert m.dtype == np.int64
