"""Checking a video before indexing it: which frames decode, whether random access is exact, its rate.

Why each check exists (measured on OpenCV's sample videos, Debian package opencv-doc):
- decord's random access seeks by timestamp. On MPEG-4 Part 2 AVIs with B-frames (XviD's packed
  bitstream: ``Megamind.avi``; or any mpeg4-in-AVI with B-frames) the demuxer leaves frames without
  timestamps and decord silently returns other frames (asked for 262, got 160). A sequential
  decode is right (decord's own, OpenCV's and PyAV's agree), so sampled frames are compared with
  PyAV's; a video that fails is read from frames extracted once, in order (``index.EXTRACTED``).
- A truncated file decodes up to the cut packet; decoders then either fail ("Error sending packet";
  decord's threaded reader can raise it several frames early, even at frame 0) or return a partly
  grey last frame without a word. Only frames before the first error of PyAV's synchronous decode
  are indexed; when the last packet runs to the end of the file although the header promises more
  frames, the file was cut and that last frame is dropped as well.
- A header's frame rate can be wrong: ``tree.avi`` says 15 fps, but its 68 frames span 29.5 s of
  stream timestamps (2.3 fps). The rate is measured from the packets' timestamps (PyAV demux, no
  decoding); where it differs from the header's by more than ``FPS_TOLERANCE`` the measured rate is
  used, with a warning.

FFmpeg's own log lines (``[msmpeg4 @ 0x...] Error at MB: 1004``, ``[mjpeg @ 0x...] No JPEG data found``)
are silenced (``io.quiet_decoders``, in ``io.open_video``): the probe's warning reports damaged frames, one line per video.
They come from decord's bundled FFmpeg (its own libavutil, so its own log level); PyAV's bundled
FFmpeg is silent unless a caller enables PyAV's logging, which is left as the caller set it.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from pipa_video.data.index import DatasetError
from pipa_video.data.io import open_video

NUM_SAMPLES = 6  # key frames checked per video, each with its predecessor (a clip's t and t-1)
FPS_TOLERANCE = 0.02  # relative difference between header and measured rate that is reported
SAME_FRAME_TOLERANCE = 4  # max per-pixel difference between two decoders' RGB of one frame


@functools.cache
@dataclass(frozen=True)
class StreamStats:
    """What the container says and what its packets show (PyAV demux, no decoding)."""

    header_frames: int  # the container's frame count; 0 where it has none (Matroska)
    header_fps: float | None
    measured_fps: float | None  # (frames - 1) / (last - first packet timestamp); None under 2 frames
    packets: int
    cut_at_end: bool  # the last packet runs to the end of the file and the header promises more

    @property
    def fps(self) -> float | None:
        """The measured rate where the header's disagrees with it (or is missing), else the header's."""
        header, measured = self.header_fps, self.measured_fps
        if measured is None or (header and abs(measured - header) <= FPS_TOLERANCE * header):
            return header
        return measured


@dataclass(frozen=True)
class VideoProbe:
    """The verdict on one video: how many frames to index, how to read them, at what rate."""

    path: str
    frames: int  # frames to index: decodable, in order, from 0
    decoder_frames: int  # frames the container holds (packets), or decoded where that is more
    stream: StreamStats
    random_access_exact: bool
    wrong_frames: tuple[tuple[int, int | None], ...] = ()  # (asked, returned; None = not a sampled frame)
    decode_error: str = ""  # the sequential decode's first error, "" when none
    sampled: int = 0  # frames random access was checked on
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def fps(self) -> float | None:
        return self.stream.fps

    def warnings(self) -> list[str]:
        """One line per problem, naming the file."""
        out = []
        if self.frames < self.decoder_frames or self.stream.cut_at_end:
            why = f"decoding stopped at frame {self.frames}: {self.decode_error}" if self.decode_error else (
                "the file ends inside its last frame (truncated)")
            out.append(f"{self.path}: {self.frames} of {self.decoder_frames} frames decodable ({why}); "
                       f"indexing frames 0-{self.frames - 1}")
        if self.fps is not None and self.fps != self.stream.header_fps:
            out.append(f"{self.path}: the header says {self.stream.header_fps or 0:.3f} fps, the stream's "
                       f"timestamps give {self.fps:.3f} fps; using {self.fps:.3f}")
        if not self.random_access_exact:
            asked, got = self.wrong_frames[0]
            out.append(f"{self.path}: random access returned wrong frames ({len(self.wrong_frames)} of {self.sampled} "
                       f"sampled, "
                       f"e.g. frame {asked} gave {'frame ' + str(got) if got is not None else 'another frame'}); "
                       f"its frames are extracted in order and read from the index")
        return out


def stream_stats(path: str | os.PathLike) -> StreamStats:
    """Frame count and rate from the header, and the rate measured from packet timestamps."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.base_rate
            stamps, last_end, packets = [], 0, 0
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the flush packet
                packets += 1
                if packet.pts is not None:
                    stamps.append(float(packet.pts * packet.time_base))
                if packet.pos is not None and packet.pos >= 0:
                    last_end = max(last_end, packet.pos + packet.size)
    except (av.FFmpegError, IndexError) as err:
        reason = "no video stream" if isinstance(err, IndexError) else getattr(err, "strerror", None) or str(err)
        raise DatasetError(f"cannot read video {path}: {reason}; expected a video file FFmpeg can open, "
                           "with a video stream") from None
    measured = (len(stamps) - 1) / (max(stamps) - min(stamps)) if len(stamps) > 1 and max(stamps) > min(stamps) else None
    header_frames = int(stream.frames or 0)
    cut = last_end >= os.path.getsize(path) and header_frames > packets
    return StreamStats(header_frames=header_frames, header_fps=float(rate) if rate else None,
                       measured_fps=measured, packets=packets, cut_at_end=cut)


def sample_frames(num_frames: int, *, num_samples: int = NUM_SAMPLES, seed: int = 0) -> list[int]:
    """Frames to check, in the order a clip loader asks for them: random keys t, each followed by t-1,
    and the last frame (random access must reach the end)."""
    if num_frames < 2:
        return list(range(num_frames))
    keys = np.random.default_rng(seed).choice(np.arange(1, num_frames), size=min(num_samples, num_frames - 1),
                                              replace=False)
    return [int(f) for k in keys for f in (k, k - 1)] + [num_frames - 1]


def decode_in_order(path: str | os.PathLike) -> Iterator[tuple[int, np.ndarray | None, str]]:
    """(frame number, RGB frame, "") for every frame in presentation order, then, if decoding fails,
    (number of the frame that failed, None, the decoder's message) once. PyAV decodes synchronously,
    so an error belongs to the packet that caused it (decord's threaded reader can raise it frames
    early)."""
    import av

    number = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                for frame in packet.decode():
                    yield number, frame.to_ndarray(format="rgb24"), ""
                    number += 1
    except (av.FFmpegError, IndexError) as err:
        yield number, None, getattr(err, "strerror", None) or str(err)


def iter_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Every frame of a video as RGB uint8, in order, exactly (sequential decode); a decoder error is a
    ``DatasetError`` naming the file and the frame."""
    for number, frame, error in decode_in_order(path):
        if frame is None:
            raise DatasetError(f"{path}: cannot decode frame {number}: {error}")
        yield frame


def same_frame(a: np.ndarray, b: np.ndarray) -> bool:
    """Two decodes of one frame: decord's and PyAV's YUV->RGB conversions differ by up to 2 levels
    (measured on vtest.avi); another frame differs far more somewhere (moving objects, noise)."""
    return a.shape == b.shape and int(np.abs(a.astype(np.int16) - b).max()) <= SAME_FRAME_TOLERANCE


def _random_access_mismatches(path: str | os.PathLike,
                              expected: dict[int, np.ndarray]) -> tuple[tuple[int, int | None], ...]:
    """Sampled frames (in sampling order) that decord's random access gets wrong, with what it returned."""
    try:
        reader = open_video(path)  # a fresh reader: the check starts from where training starts
    except DatasetError:
        return tuple((f, None) for f in expected)
    wrong = []
    for frame, truth in expected.items():
        try:
            got = reader[frame].asnumpy() if frame < len(reader) else None
        except Exception:  # a frame random access cannot decode is as wrong as another frame
            got = None
        if got is None or not same_frame(got, truth):
            match = next((f for f, t in expected.items() if got is not None and same_frame(got, t)), None)
            wrong.append((frame, match))
    return tuple(wrong)


def probe_video(path: str | os.PathLike, *, num_samples: int = NUM_SAMPLES, seed: int = 0) -> VideoProbe:
    """Decode ``path`` in order (counting decodable frames), then compare decord's random access with
    it on sampled frames; see the module docstring. Costs one sequential decode of the video."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"video {path} not found")
    stats = stream_stats(path)
    wanted = set(sample_frames(stats.packets, num_samples=num_samples, seed=seed))
    kept: dict[int, np.ndarray] = {}
    decoded, error = 0, ""
    for number, frame, error in decode_in_order(path):
        if frame is None:
            break
        decoded = number + 1
        if number in wanted:
            kept[number] = frame
    frames = decoded - 1 if stats.cut_at_end and not error and decoded == stats.packets else decoded
    if frames < 1:
        raise DatasetError(f"cannot decode video {path}: no decodable frame ({error or 'cut inside its first frame'})")
    order = [f for f in sample_frames(stats.packets, num_samples=num_samples, seed=seed) if f < frames]
    if frames - 1 not in order and frames - 1 in kept:
        order.append(frames - 1)
    wrong = _random_access_mismatches(path, {f: kept[f] for f in order})
    return VideoProbe(path=str(path), frames=frames, decoder_frames=max(stats.packets, decoded), stream=stats,
                      random_access_exact=not wrong, wrong_frames=wrong, decode_error=error, sampled=len(order))
