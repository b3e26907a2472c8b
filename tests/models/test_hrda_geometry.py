"""HRDA crop geometry: detail crops inside the input, divisibility, grids, the same crop for a clip."""
import pytest
import torch
import torch.nn.functional as F

from pipa_video.models.hrda import Box, FeatureGrid, required_divisor, sample_detail_box, window_grid

from _hrda_toys import cell_hrda


def test_required_divisor_is_stride_over_context_scale():
    assert required_divisor(feature_stride=4, context_scale=0.5) == 8  # HRDA's crop_coord_divisible
    assert required_divisor(feature_stride=4, context_scale=0.25) == 16
    with pytest.raises(ValueError, match="not an integer"):
        required_divisor(feature_stride=4, context_scale=0.3)


def test_detail_boxes_lie_inside_with_corners_divisible_and_reach_every_aligned_offset():
    gen = torch.Generator().manual_seed(0)
    boxes = [sample_detail_box((1024, 1024), (512, 512), divisible=8, generator=gen) for _ in range(3000)]
    whole = Box.whole((1024, 1024))
    assert all(whole.contains(b) and (b.height, b.width) == (512, 512) for b in boxes)
    assert all(b.top % 8 == 0 and b.left % 8 == 0 for b in boxes)
    # 0, 8, ..., 512: the crop can touch the bottom/right border (HRDA's draw stops at 504).
    assert {b.top for b in boxes} == set(range(0, 513, 8))
    assert {b.left for b in boxes} == set(range(0, 513, 8))


def test_detail_box_of_a_crop_sized_input_is_the_whole_input():
    assert sample_detail_box((64, 96), (64, 96), divisible=8) == Box(0, 0, 64, 96)


def test_detail_box_draws_from_the_global_generator_so_resume_repeats_it():
    torch.manual_seed(3)
    first = [sample_detail_box((1024, 2048), (512, 512), divisible=8) for _ in range(5)]
    torch.manual_seed(3)
    assert [sample_detail_box((1024, 2048), (512, 512), divisible=8) for _ in range(5)] == first


@pytest.mark.parametrize("image, crop, divisible, message", [
    ((256, 256), (512, 512), 8, "must fit"),
    ((1024, 1024), (500, 512), 8, "multiple of crop_divisible"),
])
def test_detail_box_rejects_bad_crops(image, crop, divisible, message):
    with pytest.raises(ValueError, match=message):
        sample_detail_box(image, crop, divisible=divisible)


def test_scaled_down_refuses_fractional_cells():
    assert Box(8, 16, 32, 24).scaled_down(8) == Box(1, 2, 4, 3)
    with pytest.raises(ValueError, match="not aligned to 8"):
        Box(4, 16, 32, 24).scaled_down(8)


def test_grid_sample_equals_nearest_downsampling_of_the_whole_map_at_the_same_cells():
    torch.manual_seed(0)
    label = torch.randint(0, 19, (2, 64, 96))
    label[0, :5] = 255
    box = Box(top=16, left=40, height=32, width=48)
    for stride in (4, 8):
        grid = FeatureGrid(region=box, stride=stride)
        whole_cells = F.interpolate(label[:, None].float(), size=(64 // stride, 96 // stride), mode="nearest")[:, 0]
        expected = box.scaled_down(stride).crop(whole_cells).long()  # the whole map's cells under the box
        assert grid.shape == (32 // stride, 48 // stride)
        assert torch.equal(grid.sample(label), expected)
        assert torch.equal(grid.crop(label), label[:, 16:48, 40:88])


def test_grid_cells_of_a_sub_box_are_relative_to_the_region():
    grid = FeatureGrid(region=Box(16, 8, 32, 32), stride=4)
    assert grid.cells_of(Box(24, 16, 8, 16)) == Box(2, 2, 2, 4)
    with pytest.raises(ValueError, match="not inside"):
        grid.cells_of(Box(0, 0, 8, 8))


@pytest.mark.parametrize("size, window, stride", [
    ((90, 70), (64, 64), (32, 32)), ((1024, 2048), (1024, 1024), (512, 512)), ((21, 34), (10, 16), (6, 7)),
    ((30, 40), (64, 64), (32, 32)),
])
def test_every_window_of_the_grid_has_the_window_size(size, window, stride):
    # evaluation.inference.slide_windows is this grid (one implementation); its coverage is tested there.
    boxes = window_grid(size, window=window, stride=stride)
    assert {(b.height, b.width) for b in boxes} == {tuple(min(w, s) for w, s in zip(window, size))}


def test_every_frame_of_a_clip_gets_the_same_detail_crop():
    model = cell_hrda().eval()
    torch.manual_seed(0)
    clip = torch.randn(2, 3, 3, 64, 96)  # (B, T, 3, H, W)
    box = model.sample_detail_box((64, 96))
    with torch.no_grad():
        flat = model(clip.flatten(0, 1), detail_box=box, return_features=True)
        frames = [model(clip[:, t], detail_box=box, return_features=True) for t in range(3)]
    assert flat.detail_box == box and all(f.detail_box == box for f in frames)
    per_frame = flat.detail.output.features.unflatten(0, (2, 3))
    for t, out in enumerate(frames):
        torch.testing.assert_close(per_frame[:, t], out.detail.output.features)
        # the detail branch saw exactly this box of frame t
        torch.testing.assert_close(out.detail.output.features, model.single_scale(box.crop(clip[:, t]),
                                                                                   return_features=True).features)


def test_without_a_box_the_forward_draws_one_reproducibly():
    model = cell_hrda().eval()
    img = torch.randn(1, 3, 64, 96)
    torch.manual_seed(5)
    first = model(img).detail_box
    torch.manual_seed(5)
    assert model(img).detail_box == first
    assert {model(img).detail_box for _ in range(20)} != {first}  # it does vary
