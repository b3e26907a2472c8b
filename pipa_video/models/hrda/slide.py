"""Sliding-window averaging, batched: HRDA's detail slide (pseudo-labels) and its test-time slide.

Both follow mmseg's ``slide_inference`` with ``batched_slide=True``: every window of every image goes
through the model in one batch (window-major: all images of window 0, then window 1, ...), and the
outputs are summed into place and divided by the number of windows covering each cell.

Source: lhoyer/HRDA ``mmseg/models/segmentors/hrda_encoder_decoder.py`` (``extract_slide_feat``),
``mmseg/models/decode_heads/hrda_head.py`` (``decode_hr``), ``mmseg/models/segmentors/encoder_decoder.py``
(``slide_inference``, ``batched_slide``).
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pipa_video.models.hrda.geometry import Box, window_grid

WindowFn = Callable[[Tensor], Tensor]


def slide_average(fn: WindowFn, img: Tensor, *, windows: Sequence[Box], out_stride: int = 1,
                  batched: bool = True) -> Tensor:
    """Average of ``fn`` over ``windows`` of ``img`` (B, 3, H, W), on ``fn``'s output grid.

    ``fn`` maps windows (n, 3, h, w) to maps (n, C, h / out_stride, w / out_stride). Returns
    (B, C, H / out_stride, W / out_stride). Window corners and sizes must be multiples of
    ``out_stride`` (``ValueError`` otherwise); every cell must be covered by a window.
    """
    b = img.shape[0]
    out = Box.whole(img.shape[-2:]).scaled_down(out_stride)
    cells = [w.scaled_down(out_stride) for w in windows]
    total = count = None
    for cell, chunk in zip(cells, _window_outputs(fn, img, windows, batched=batched)):
        if tuple(chunk.shape[-2:]) != (cell.height, cell.width) or chunk.shape[0] != b:
            raise ValueError(f"slide window of {cell.height}x{cell.width} cells (stride {out_stride}) got an output "
                             f"of shape {tuple(chunk.shape)}; the model's output stride is not {out_stride}")
        if total is None:
            total = chunk.new_zeros((b, chunk.shape[1], out.height, out.width))
            count = chunk.new_zeros((1, 1, out.height, out.width))
        total[..., cell.top:cell.bottom, cell.left:cell.right] += chunk
        count[..., cell.top:cell.bottom, cell.left:cell.right] += 1
    if total is None:
        raise ValueError("slide_average: no windows")
    return total / count


def _window_outputs(fn: WindowFn, img: Tensor, windows: Sequence[Box], *, batched: bool) -> Iterable[Tensor]:
    if not batched:
        return (fn(w.crop(img)) for w in windows)
    return fn(torch.cat([w.crop(img) for w in windows])).split(img.shape[0])


def slide_logits(fn: WindowFn, img: Tensor, *, window: Sequence[int], stride: Sequence[int],
                 batched: bool = True) -> Tensor:
    """Test-time slide: ``fn`` maps windows (n, 3, h, w) to logits at their own size (n, C, h, w).

    Returns (B, C, H, W) logits averaged over mmseg's window grid (``window_grid``); any image
    size works (the last windows are shifted back to the border, windows are clipped to small
    images). HRDA's test config: window 1024x1024, stride 512x512, batched.
    """
    windows = window_grid(img.shape[-2:], window=window, stride=stride)
    return slide_average(fn, img, windows=windows, out_stride=1, batched=batched)


def pad_to_multiple(img: Tensor, divisor: int) -> tuple[Tensor, tuple[int, int]]:
    """Replicate-pad (B, 3, H, W) at the bottom and right to multiples of ``divisor``.

    Returns the padded image and the original (H, W). Sizes already aligned are returned as is.
    """
    h, w = img.shape[-2:]
    pad_h, pad_w = -h % divisor, -w % divisor
    if pad_h == 0 and pad_w == 0:
        return img, (h, w)
    return F.pad(img, (0, pad_w, 0, pad_h), mode="replicate"), (h, w)
