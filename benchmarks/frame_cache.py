"""Disk cost, encode and decode time and exactness of the frame-cache formats, on generated frames.

A frame of ``loader.fake_frame`` (a smooth colour field plus mild noise) at 2048x1024 is stored as
PNG, then resized to the cache size (1024x512, cv2.INTER_LINEAR as the cache does) and stored in
each candidate format. For each: bytes per frame, CPU ms to encode it (once, at prepare time), CPU
ms to decode it (median of --repeats), and the largest pixel error after decoding (0 = exact). The
cache uses PNG: exact, fast to write, a quarter of the original's decode time; the other formats
are listed to show what they would save or cost.

    python benchmarks/frame_cache.py
    python benchmarks/frame_cache.py --frames 6 --repeats 9 --out /tmp/frame_cache.json
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, write_report  # noqa: E402
from loader import fake_frame  # noqa: E402

ORIGINAL = (2048, 1024)
CACHE = (1024, 512)
# name, extension, encoder parameters; 'npy' is raw uncompressed pixels
FORMATS = (
    ("PNG (cv2 default, level 1)", ".png", []),
    ("PNG level 9", ".png", [cv2.IMWRITE_PNG_COMPRESSION, 9]),
    ("WebP lossless", ".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),
    ("JPEG quality 100", ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 100]),
    ("JPEG quality 95", ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95]),
    ("raw pixels (.npy)", ".npy", None),
)


def encode(img: np.ndarray, ext: str, params) -> bytes:
    if ext == ".npy":
        return img.tobytes()
    ok, buf = cv2.imencode(ext, img, params)
    assert ok, ext
    return buf.tobytes()


def decode(data: bytes, ext: str, shape) -> np.ndarray:
    if ext == ".npy":
        return np.frombuffer(data, np.uint8).reshape(shape).copy()
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def cpu_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(1e3 * (time.process_time() - start))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/frame_cache.json")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    frames = [fake_frame(rng, ORIGINAL) for _ in range(args.frames)]
    rows = []
    originals = [encode(f, ".png", []) for f in frames]
    rows.append(dict(format=f"original PNG {ORIGINAL[0]}x{ORIGINAL[1]}", kib=np.mean([len(b) for b in originals]) / 1024,
                     encode_cpu_ms=np.mean([cpu_ms(lambda f=f: encode(f, ".png", []), 1) for f in frames]),
                     decode_cpu_ms=np.mean([cpu_ms(lambda b=b: decode(b, ".png", None), args.repeats)
                                            for b in originals]), max_error=0))
    small = [cv2.resize(f, CACHE, interpolation=cv2.INTER_LINEAR) for f in frames]
    for name, ext, params in FORMATS:
        blobs = [encode(s, ext, params) for s in small]
        errors = [int(np.abs(decode(b, ext, s.shape).astype(int) - s).max()) for b, s in zip(blobs, small)]
        rows.append(dict(format=f"{name} {CACHE[0]}x{CACHE[1]}", kib=np.mean([len(b) for b in blobs]) / 1024,
                         encode_cpu_ms=np.mean([cpu_ms(lambda s=s: encode(s, ext, params), 1) for s in small]),
                         decode_cpu_ms=np.mean([cpu_ms(lambda b=b, s=s: decode(b, ext, s.shape), args.repeats)
                                                for b, s in zip(blobs, small)]), max_error=max(errors)))
    base = rows[0]
    for r in rows:
        r["size_vs_original"] = r["kib"] / base["kib"]
        r["decode_speedup"] = base["decode_cpu_ms"] / r["decode_cpu_ms"]
    print(f"{args.frames} generated frames, 1 OpenCV thread, load average {os.getloadavg()[0]:.1f}")
    print(markdown_table(rows, ["format", "kib", "size_vs_original", "encode_cpu_ms", "decode_cpu_ms", "decode_speedup",
                                "max_error"]))
    report = {"frames": args.frames, "repeats": args.repeats, "opencv": cv2.__version__, "rows": rows,
              "load_average": os.getloadavg()[0]}
    write_report(args.out, report)
    return report


if __name__ == "__main__":
    main()
