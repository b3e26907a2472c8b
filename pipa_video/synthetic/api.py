"""Generating the whole benchmark: ``make_synthetic``, ``ensure_synthetic`` and completeness checks.

``root/SYNTHETIC_INFO.json`` is written last and ``root/.SYNTHETIC_IN_PROGRESS`` is present while a
generation runs, so an interrupted generation is detected and regenerated.
"""
from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

from pipa_video.atomic import atomic_write_bytes
from pipa_video.data.index import DatasetError
from pipa_video.synthetic.camera import draw_camera
from pipa_video.synthetic.plan import Job, job_rng, plan_jobs
from pipa_video.synthetic.render import Textures, render_frame
from pipa_video.synthetic.scene import draw_street
from pipa_video.synthetic.spec import SOURCE_DIR, TARGET_CITIES, TARGET_DIR, Domain, SyntheticSpec
from pipa_video.synthetic.street import build_scene
from pipa_video.synthetic.style import SOURCE_STYLE, STYLES, TARGET_STYLE
from pipa_video.synthetic.writers import write_frame

GENERATOR_VERSION = 1
INFO_FILE = "SYNTHETIC_INFO.json"
IN_PROGRESS_FILE = ".SYNTHETIC_IN_PROGRESS"  # present while a generation runs (or was interrupted)


def run_job(job: Job, *, seed: int, spec: SyntheticSpec, root: str, city_index: int = 0) -> int:
    """Render and write every frame of ``job``; returns the number of files written."""
    style = STYLES[job.domain]
    rng = job_rng(seed, job, city_index)
    street = draw_street(rng)
    camera = draw_camera(rng, street, style, height=spec.height)
    textures = Textures.draw(rng, style, width=spec.width, height=spec.height)
    exposure = float(rng.uniform(1 - style.exposure_jitter, 1 + style.exposure_jitter))
    written = 0
    for window in job.windows:
        crossings = tuple(camera.pose(window.frames.start).z + rng.uniform(20, 120, int(rng.integers(0, 2))))
        here = replace(street, crosswalks=crossings)
        scene = build_scene(rng, street=here, camera=camera, style=style, frames=window.frames)
        for n in window.frames:
            image, classes = render_frame(scene, here, camera, style, textures, n, width=spec.width,
                                          height=spec.height, exposure=exposure, rng=rng)
            written += write_frame(job, n, image, classes, labelled=n in window.labels, spec=spec, root=Path(root))
    return written


def make_synthetic(root: str | os.PathLike, *, seed: int = 0, spec: SyntheticSpec | None = None,
                   workers: int | None = None) -> Path:
    """Generate the benchmark under ``root`` (replacing an earlier synthetic one); returns ``root``.

    ``workers`` processes render the drives (default: up to 2); the files do not depend on it.
    Raises ValueError for a seed that is not a non-negative int, and DatasetError when ``root``
    holds ``source`` / ``target`` folders but no generation marker (foreign data is never replaced).
    """
    spec = spec or SyntheticSpec()
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    root = Path(root)
    _clear_previous(root)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(root / IN_PROGRESS_FILE, b"generation started; SYNTHETIC_INFO.json is written last\n")
    jobs = plan_jobs(spec, seed=seed)
    workers = min(workers or min(2, os.cpu_count() or 1), len(jobs))
    kwargs = dict(seed=seed, spec=spec, root=str(root))
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(run_job, job, city_index=ci, **kwargs) for job, ci in jobs]
            n_files = sum(f.result() for f in futures)
    else:
        n_files = sum(run_job(job, city_index=ci, **kwargs) for job, ci in jobs)
    info = _info(spec, seed=seed, jobs=[j for j, _ in jobs], n_files=n_files)
    atomic_write_bytes(root / INFO_FILE, json.dumps(info, indent=2).encode())
    (root / IN_PROGRESS_FILE).unlink()
    return root


def _clear_previous(root: Path) -> None:
    """Remove an earlier (complete or interrupted) generation; refuse to touch anything else."""
    ours = (root / INFO_FILE).exists() or (root / IN_PROGRESS_FILE).exists()
    present = [root / d for d in (SOURCE_DIR, TARGET_DIR) if (root / d).exists()]
    if present and not ours:
        raise DatasetError(
            f"{root} holds {[p.name for p in present]} but no {INFO_FILE} or {IN_PROGRESS_FILE}: "
            f"it is not a synthetic benchmark root, so it is not overwritten; choose an empty folder"
        )
    (root / INFO_FILE).unlink(missing_ok=True)  # first: from here on the root reads as incomplete
    for path in present:
        shutil.rmtree(path)


def _info(spec: SyntheticSpec, *, seed: int, jobs: list[Job], n_files: int) -> dict:
    splits: dict[str, dict[str, dict[str, int]]] = {d.value: {} for d in Domain}
    for job in jobs:
        entry = splits[job.domain.value].setdefault(job.split, dict(sequences=0, frames=0, labelled=0))
        entry["sequences"] += 1
        entry["frames"] += sum(len(w.frames) for w in job.windows)
        entry["labelled"] += sum(len(w.labels) for w in job.windows)
    return dict(
        version=GENERATOR_VERSION, seed=seed, spec=asdict(spec),
        layouts={SOURCE_DIR: "viper", TARGET_DIR: "cityscapes_seq"},
        id_spaces={SOURCE_DIR: "viper", TARGET_DIR: "cityscapes"},
        styles={SOURCE_DIR: SOURCE_STYLE.name, TARGET_DIR: TARGET_STYLE.name},
        splits=splits, files=n_files,
        target_cities={split: [c for c, _ in cities] for split, cities in TARGET_CITIES.items()},
    )


def read_info(root: str | os.PathLike) -> dict | None:
    """The recorded SYNTHETIC_INFO.json of ``root``, or None when absent or unreadable."""
    try:
        return json.loads((Path(root) / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None


def _count_files(root: Path) -> int:
    return sum(1 for d in (SOURCE_DIR, TARGET_DIR) for p in (root / d).rglob("*")
               if p.is_file() and not p.name.startswith("."))


def is_complete(root: str | os.PathLike, *, seed: int | None = None, spec: SyntheticSpec | None = None) -> bool:
    """True when ``root`` holds a finished generation of this generator version (and of ``seed`` /
    ``spec`` when given) with every recorded file present."""
    root = Path(root)
    info = read_info(root)
    if info is None or (root / IN_PROGRESS_FILE).exists() or info.get("version") != GENERATOR_VERSION:
        return False
    if seed is not None and info.get("seed") != seed:
        return False
    if spec is not None and info.get("spec") != asdict(spec):
        return False
    return _count_files(root) == info.get("files")


def ensure_synthetic(root: str | os.PathLike, *, seed: int = 0, spec: SyntheticSpec | None = None,
                     workers: int | None = None) -> Path:
    """``root`` with a complete benchmark of ``seed`` and ``spec``, generating it only when needed."""
    spec = spec or SyntheticSpec()
    if not is_complete(root, seed=seed, spec=spec):
        make_synthetic(root, seed=seed, spec=spec, workers=workers)
    return Path(root)
