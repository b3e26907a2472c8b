"""Patch-crop geometry: corresponding feature cells of two crops look at the same image content.

The image stores its own pixel coordinates (channel 0 = row, channel 1 = column); "features" are those
coordinates average-pooled at the stride, like a stride-s network would see them. A correct
correspondence maps every overlap cell of crop 1 to a crop-2 cell holding the same coordinates.
"""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from pipa_video.uda.contrast.crops import (CropBox, CropPair, apply_crop, crop_feature_map, crop_size,
                                           overlap_correspondence, sample_crop_in_view, sample_crop_pair)

H, W = 96, 128


def _coordinate_image():
    rows, cols = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                                indexing="ij")
    return torch.stack([rows, cols])[None]  # (1, 2, H, W)


def _features(pair_box, flip, stride):
    crop = apply_crop(_coordinate_image(), box=pair_box, flip=flip)
    return F.avg_pool2d(crop, stride).flatten(2)[0]  # (2, h*w): mean (row, col) of each cell


def _matches_same_content(pair, corr, stride):
    f1 = _features(pair.box1, pair.flip1, stride)
    f2 = _features(pair.box2, pair.flip2, stride)
    if corr.idx2.max() >= f2.shape[1]:
        return False
    return torch.equal(f1[:, corr.idx1][:, corr.valid], f2[:, corr.idx2][:, corr.valid])


@pytest.mark.parametrize("stride", [4, 8])
def test_correspondence_points_at_identical_image_coordinates(stride):
    g = torch.Generator().manual_seed(stride)
    crop_hw = crop_size((H, W), ratio=0.7, align=stride)
    feat_hw = (crop_hw[0] // stride, crop_hw[1] // stride)
    for _ in range(6):
        sampled = sample_crop_pair(image_hw=(H, W), crop_hw=crop_hw, iou_range=(0.1, 1.0), flip_prob=0.5,
                                   generator=g, align=stride)
        for flip1, flip2 in [(False, False), (True, False), (False, True), (True, True)]:
            pair = dataclasses.replace(sampled, flip1=flip1, flip2=flip2)
            corr = overlap_correspondence(pair, stride=stride, feat_hw=feat_hw)
            assert _matches_same_content(pair, corr, stride)
            # Every cell of the overlap is matched, and only those.
            assert int(corr.valid.sum()) * stride * stride == pair.box1.intersection(pair.box2)


def test_the_check_catches_a_wrong_stride_or_ignored_flips():
    """The test above is not vacuous: a stride or flip mistake (PiPa defect 2) fails it."""
    stride = 4
    pair = CropPair(box1=CropBox(8, 16, 64, 64), box2=CropBox(24, 40, 64, 64), flip1=True, flip2=False)
    good = overlap_correspondence(pair, stride=stride, feat_hw=(16, 16))
    assert _matches_same_content(pair, good, stride)
    # Overlap sliced with stride 8 while the features have stride 4.
    wrong_stride = overlap_correspondence(pair, stride=8, feat_hw=(8, 8))
    assert not _matches_same_content(pair, wrong_stride, stride)
    # Flips not undone.
    unflipped = overlap_correspondence(dataclasses.replace(pair, flip1=False), stride=stride, feat_hw=(16, 16))
    assert not _matches_same_content(pair, unflipped, stride)


def test_sampled_pairs_respect_iou_range_alignment_and_size():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        pair = sample_crop_pair(image_hw=(H, W), crop_hw=(64, 96), iou_range=(0.3, 0.6), flip_prob=0.0,
                                generator=g, align=8)
        assert 0.3 <= pair.iou <= 0.6
        assert not pair.flip1 and not pair.flip2
        for box in (pair.box1, pair.box2):
            assert (box.height, box.width) == (64, 96)
            assert box.top % 8 == 0 and box.left % 8 == 0
            assert box.top + box.height <= H and box.left + box.width <= W


def test_sampling_is_reproducible_with_a_generator():
    kwargs = dict(image_hw=(H, W), crop_hw=(48, 64), iou_range=(0.1, 1.0), flip_prob=0.5, align=4)
    a = sample_crop_pair(generator=torch.Generator().manual_seed(3), **kwargs)
    b = sample_crop_pair(generator=torch.Generator().manual_seed(3), **kwargs)
    assert a == b
    always = sample_crop_pair(generator=torch.Generator().manual_seed(3), **{**kwargs, "flip_prob": 1.0})
    assert always.flip1 and always.flip2


def test_impossible_iou_range_raises():
    with pytest.raises(ValueError, match="IoU in"):
        sample_crop_pair(image_hw=(H, W), crop_hw=(H, W // 2), iou_range=(0.0, 0.0), flip_prob=0.0, max_tries=20)


def test_misaligned_boxes_and_grid_mismatch_raise():
    pair = CropPair(box1=CropBox(2, 0, 32, 32), box2=CropBox(0, 0, 32, 32), flip1=False, flip2=False)
    with pytest.raises(ValueError, match="not a multiple of stride"):
        overlap_correspondence(pair, stride=4, feat_hw=(8, 8))
    aligned = dataclasses.replace(pair, box1=CropBox(4, 0, 32, 32))
    with pytest.raises(ValueError, match="feat_hw"):
        overlap_correspondence(aligned, stride=4, feat_hw=(16, 16))


def test_apply_crop_crops_and_flips_the_last_two_dims():
    x = torch.arange(2 * 6 * 8).reshape(2, 6, 8)
    box = CropBox(1, 2, 3, 4)
    assert torch.equal(apply_crop(x, box=box, flip=False), x[:, 1:4, 2:6])
    assert torch.equal(apply_crop(x, box=box, flip=True), x[:, 1:4, 2:6].flip(-1))
    with pytest.raises(ValueError, match="does not fit"):
        apply_crop(x, box=CropBox(4, 0, 3, 4), flip=False)


@pytest.mark.parametrize("stride", [4, 8])
def test_view_cells_under_a_crop_hold_the_same_content_as_the_crop(stride):
    """'mixed_and_crop' views: the whole view's feature cells under the crop box, laid out like the crop."""
    g = torch.Generator().manual_seed(stride)
    view_features = F.avg_pool2d(_coordinate_image(), stride)  # (1, 2, H/s, W/s)
    for flip_prob in (0.0, 1.0):
        pair = sample_crop_in_view(image_hw=(H, W), crop_hw=crop_size((H, W), ratio=0.5, align=stride),
                                   iou_range=(0.1, 1.0), flip_prob=flip_prob, generator=g, align=stride)
        assert pair.box1 == CropBox(0, 0, H, W) and not pair.flip1 and pair.flip2 == bool(flip_prob)
        cells = crop_feature_map(view_features, box=pair.box2, flip=pair.flip2, stride=stride)
        crop_features = F.avg_pool2d(apply_crop(_coordinate_image(), box=pair.box2, flip=pair.flip2), stride)
        assert torch.equal(cells, crop_features)
        if pair.flip2:  # not vacuous: ignoring the flip would not match
            assert not torch.equal(crop_feature_map(view_features, box=pair.box2, flip=False, stride=stride),
                                   crop_features)


def test_crop_in_view_checks_range_and_alignment():
    with pytest.raises(ValueError, match="outside iou_range"):
        sample_crop_in_view(image_hw=(H, W), crop_hw=(24, 32), iou_range=(0.1, 1.0), flip_prob=0.5, align=4)
    with pytest.raises(ValueError, match="not aligned"):
        crop_feature_map(torch.zeros(1, 2, H // 4, W // 4), box=CropBox(2, 0, 48, 64), flip=False, stride=4)
