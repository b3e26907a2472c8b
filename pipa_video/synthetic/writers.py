"""Writing frames in the real on-disk layouts, each file atomically (temp file, then rename).

Source frames follow the VIPER layout (``img`` jpg/png, ``cls`` palette PNGs of VIPER ids); target
frames follow Cityscapes-Seq (``leftImg8bit_sequence`` PNGs, ``gtFine`` labelIds PNGs); the paths
come from ``pipa_video.data.sources.layouts``, which the readers parse.
"""
from __future__ import annotations

from io import BytesIO
from pathlib import Path

import cv2
import numpy as np

from pipa_video.atomic import atomic_write_bytes
from pipa_video.data.classes import VIPER_PALETTE
from pipa_video.data.index import DatasetError
from pipa_video.data.io import write_png
from pipa_video.data.sources import layouts
from pipa_video.synthetic.plan import Job
from pipa_video.synthetic.spec import SOURCE_DIR, TARGET_DIR, Domain, SyntheticSpec, raw_id_table

JPEG_QUALITY = 90


def write_frame(job: Job, n: int, image: np.ndarray, classes: np.ndarray, *, labelled: bool,
                 spec: SyntheticSpec, root: Path) -> int:
    """Write frame ``n`` of ``job``: ``image`` (H, W, 3) uint8 RGB and, when ``labelled``, its label
    from ``classes`` (H, W) uint8 scene classes in the domain's raw ids. Returns the files written."""
    raw = raw_id_table(job.domain)[classes]
    if job.domain is Domain.SOURCE:
        base = root / SOURCE_DIR
        _write_image(base / layouts.viper_image(job.split, job.sequence, n, spec.source_ext), image)
        if labelled:
            _write_palette_png(base / layouts.viper_label(job.split, job.sequence, n), raw)
    else:
        base = root / TARGET_DIR
        write_png(base / layouts.cityscapes_seq_image(job.split, job.city, job.sequence, n), image[..., ::-1])
        if labelled:
            write_png(base / layouts.cityscapes_label(job.split, job.city, job.sequence, n), raw)
    return 1 + int(labelled)


def _write_image(path: Path, rgb: np.ndarray) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if path.suffix == ".jpg" else []
    ok, buf = cv2.imencode(path.suffix, rgb[..., ::-1], params)
    if not ok:
        raise DatasetError(f"cannot encode {path}")
    atomic_write_bytes(path, buf.tobytes())


_VIPER_PALETTE_FLAT = [c for rgb in VIPER_PALETTE for c in rgb]


def _write_palette_png(path: Path, ids: np.ndarray) -> None:
    """A VIPER label: mode "P", palette index = VIPER id, palette = VIPER's class colours."""
    from PIL import Image

    image = Image.fromarray(ids.astype(np.uint8))
    image.putpalette(_VIPER_PALETTE_FLAT)
    buf = BytesIO()
    image.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())

