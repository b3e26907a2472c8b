"""Generated footage for the tests: videos with the faults of real files, photos.

``mpeg4_bframes_avi`` shows the fault of OpenCV's ``Megamind.avi`` (decord's random access returns
other frames); ``truncated_mjpeg_avi`` the cut file of issue 11 A3; ``write_av(..., pts_step=k)`` a
file whose header rate is k times its real one, like ``tree.avi``.
"""
from __future__ import annotations

import fractions
from pathlib import Path

import cv2
import numpy as np

from pipa_video.data.video_probe import iter_frames

W, H = 96, 64


def numbered_frames(n: int, *, w: int = W, h: int = H, seed: int = 0) -> list[np.ndarray]:
    """Textured frames that differ from each other far more than the coding error."""
    base = cv2.GaussianBlur(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8), (5, 5), 0)
    frames = []
    for i in range(n):
        frame = np.roll(base, 5 * i, axis=1).copy()
        cv2.putText(frame, str(i), (4, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
        frames.append(frame)
    return frames


def write_av(path: Path, frames: list[np.ndarray], *, codec: str, rate: int = 25, b_frames: int = 0,
             gop: int = 12, pts_step: int = 1, pix_fmt: str = "yuv420p") -> Path:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        stream.codec_context.gop_size, stream.codec_context.max_b_frames = gop, b_frames
        stream.codec_context.time_base = fractions.Fraction(1, rate)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i * pts_step, fractions.Fraction(1, rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def mpeg4_bframes_avi(path: Path, n: int = 60) -> Path:
    """MPEG-4 Part 2 with B-frames in AVI, keyframes every 30 frames: decord's seeks go wrong."""
    return write_av(path, numbered_frames(n), codec="mpeg4", b_frames=2, gop=30)


def sequential_frames(path: Path) -> list[np.ndarray]:
    return list(iter_frames(path))


def truncated_mjpeg_avi(path: Path, share: float, n: int = 40) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    for rgb in numbered_frames(n):
        writer.write(rgb)
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * share)])
    return path


def write_photo(path: Path, w: int, h: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), numbered_frames(1, w=w, h=h, seed=seed)[0])
    return path


def corrupt_mjpeg_avi(path: Path, *, frame: int = 10, n: int = 40) -> Path:
    """A whole MJPEG AVI whose JPEG of ``frame`` has its header zeroed: decoders fail at that frame."""
    truncated_mjpeg_avi(path, 1.0, n=n)
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    data[starts[frame] + 2:starts[frame] + 300] = bytes(298)
    path.write_bytes(bytes(data))
    return path


def damaged_msmpeg4_avi(path: Path, n: int = 40, *, flips: int = 40, seed: int = 0) -> Path:
    """An MS-MPEG-4 AVI with bytes flipped in its second two thirds: every frame still decodes (with
    concealment), but FFmpeg logs ``[msmpeg4 @ 0x...] Error at MB: ...`` lines while decoding it."""
    write_av(path, numbered_frames(n), codec="msmpeg4", gop=100)
    data = bytearray(path.read_bytes())
    for i in np.random.default_rng(seed).integers(len(data) // 3, len(data), flips):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path
