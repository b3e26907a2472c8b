"""The embedded synthetic benchmark: procedural street video in two styles, in the real layouts.

``make_synthetic(root, seed=0)`` writes
- ``root/source``: the VIPER layout (``{train,val}/img`` frames, ``cls`` palette PNGs of VIPER ids),
  rendered in a saturated, sunny, crisp "game" style;
- ``root/target``: the Cityscapes-Seq layout (30-frame ``leftImg8bit_sequence`` snippets, ``gtFine``
  labelIds for the annotated frame only, train/val/test), rendered in an overcast, soft, noisy
  "camera" style with a different palette, vignetting and an ego-vehicle bonnet;
- ``root/SYNTHETIC_INFO.json`` last, so an interrupted run is detectable (``is_complete``).

Both domains come from one scene generator: a street with a vanishing point, sidewalks, terrain,
buildings with windows, trees, hedges, poles with signs and traffic lights, fences, and cars and
persons that move while the camera drives forward and pans. Only the look differs, so a model
trained on the source loses accuracy on the target while the target stays learnable from shape and
layout. Everything is deterministic in the seed: the same seed gives byte-identical files (with the
same NumPy, OpenCV and Pillow builds), whatever the number of worker processes.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from enum import Enum, IntEnum
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import numpy as np

from pipa_video.data.classes import VIPER_PALETTE
from pipa_video.data.index import DatasetError
from pipa_video.data.io import write_png
from pipa_video.data.sources import layouts

GENERATOR_VERSION = 1
INFO_FILE = "SYNTHETIC_INFO.json"
IN_PROGRESS_FILE = ".SYNTHETIC_IN_PROGRESS"  # present while a generation runs (or was interrupted)
SOURCE_DIR = "source"
TARGET_DIR = "target"
SOURCE_SPLITS = ("train", "val")
TARGET_SPLITS = ("train", "val", "test")
JPEG_QUALITY = 90


class Domain(str, Enum):
    SOURCE = "source"
    TARGET = "target"


# --- classes ------------------------------------------------------------------------------------
class SceneClass(IntEnum):
    """What the generator draws; each maps to one raw id per id space."""

    SKY = 0
    ROAD = 1
    SIDEWALK = 2
    TERRAIN = 3
    BUILDING = 4
    VEGETATION = 5
    TREE = 6
    POLE = 7
    SIGN = 8
    LIGHT = 9
    FENCE = 10
    PERSON = 11
    CAR = 12
    EGO_VEHICLE = 13  # the target camera's bonnet, ignored like Cityscapes' "ego vehicle"
    TRUCK = 14
    BUS = 15
    BICYCLE = 16
    MOTORCYCLE = 17
    RIDER = 18  # VIPER has no rider class (person); Cityscapes does (25), merged or ignored by protocol


# VIPER ids (classes.VIPER_NAMES): a pole is "infrastructure", outside the 15 benchmark classes,
# as Cityscapes' pole (17) is. A tree is VIPER "tree" (7) and Cityscapes "vegetation" (21).
VIPER_IDS = {
    SceneClass.SKY: 2, SceneClass.ROAD: 3, SceneClass.SIDEWALK: 4, SceneClass.TERRAIN: 6,
    SceneClass.BUILDING: 9, SceneClass.VEGETATION: 8, SceneClass.TREE: 7, SceneClass.POLE: 10,
    SceneClass.SIGN: 14, SceneClass.LIGHT: 13, SceneClass.FENCE: 11, SceneClass.PERSON: 20,
    SceneClass.CAR: 24, SceneClass.EGO_VEHICLE: 0, SceneClass.TRUCK: 27, SceneClass.BUS: 26,
    SceneClass.BICYCLE: 22, SceneClass.MOTORCYCLE: 23, SceneClass.RIDER: 20,
}
CITYSCAPES_LABELIDS = {
    SceneClass.SKY: 23, SceneClass.ROAD: 7, SceneClass.SIDEWALK: 8, SceneClass.TERRAIN: 22,
    SceneClass.BUILDING: 11, SceneClass.VEGETATION: 21, SceneClass.TREE: 21, SceneClass.POLE: 17,
    SceneClass.SIGN: 20, SceneClass.LIGHT: 19, SceneClass.FENCE: 13, SceneClass.PERSON: 24,
    SceneClass.CAR: 26, SceneClass.EGO_VEHICLE: 1, SceneClass.TRUCK: 27, SceneClass.BUS: 28,
    SceneClass.BICYCLE: 33, SceneClass.MOTORCYCLE: 32, SceneClass.RIDER: 25,
}


def raw_id_table(domain: Domain | str) -> np.ndarray:
    """(len(SceneClass),) uint8: scene class -> raw id written by ``domain`` (VIPER id or labelId)."""
    ids = VIPER_IDS if Domain(domain) is Domain.SOURCE else CITYSCAPES_LABELIDS
    return np.array([ids[c] for c in SceneClass], np.uint8)


class AnchorRule(str, Enum):
    """How a target city numbers its annotated frames (the real data has both)."""

    FIXED = "fixed"  # every snippet is its own sequence, annotated at frame 000019
    ARBITRARY = "arbitrary"  # several snippets share a sequence, annotated at e.g. 000294, 000576


# Invented cities; each split has one with arbitrary anchors, as Cityscapes' train and val do.
TARGET_CITIES: dict[str, tuple[tuple[str, AnchorRule], ...]] = {
    "train": (("aldmoor", AnchorRule.FIXED), ("brenwick", AnchorRule.ARBITRARY),
              ("corvale", AnchorRule.FIXED)),
    "val": (("dunhallow", AnchorRule.ARBITRARY), ("elmsby", AnchorRule.ARBITRARY)),
    "test": (("fenholt", AnchorRule.ARBITRARY), ("glenrast", AnchorRule.FIXED)),
}
SNIPPET_BEFORE, SNIPPET_AFTER = layouts.CS_SEQ_BEFORE, layouts.CS_SEQ_AFTER
SNIPPET_LENGTH = SNIPPET_BEFORE + 1 + SNIPPET_AFTER


# --- what to generate -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SyntheticSpec:
    """Sizes and counts of one generation (recorded in SYNTHETIC_INFO.json)."""

    width: int = 256
    height: int = 128
    source_train_sequences: int = 8
    source_val_sequences: int = 2
    source_frames: int = 50  # frames per source sequence
    source_label_step: int = 1  # write a cls label for every n-th source frame
    source_ext: str = "jpg"  # VIPER ships jpg; some copies png
    target_train_snippets: int = 12
    # One labelled frame per snippet (the Cityscapes-Seq layout). 6 labelled frames were too few:
    # the demo's methods differed by 1-2 mIoU, as much as one method moved between seeds (measured).
    target_val_snippets: int = 24
    target_test_snippets: int = 24

    def __post_init__(self) -> None:
        if self.width < 32 or self.height < 16:
            raise ValueError(f"frame size must be at least 32x16, got {self.width}x{self.height}")
        counts = {f.name: getattr(self, f.name) for f in fields(self) if f.name.endswith(("sequences", "snippets"))}
        for name, value in counts.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.source_frames < 2:
            raise ValueError(f"source_frames must be >= 2 (motion needs two frames), got {self.source_frames}")
        if self.source_label_step < 1:
            raise ValueError(f"source_label_step must be >= 1, got {self.source_label_step}")
        if self.source_ext not in ("jpg", "png"):
            raise ValueError(f"source_ext must be 'jpg' or 'png', got {self.source_ext!r}")

    def scaled(self, scale: float) -> SyntheticSpec:
        """The same benchmark with every sequence / snippet count times ``scale`` (at least 1)."""
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        counts = {f.name: max(1, round(getattr(self, f.name) * scale))
                  for f in fields(self) if f.name.endswith(("sequences", "snippets"))}
        return replace(self, **counts)

    def source_sequences(self, split: str) -> int:
        return {"train": self.source_train_sequences, "val": self.source_val_sequences}[split]

    def target_snippets(self, split: str) -> int:
        return {"train": self.target_train_snippets, "val": self.target_val_snippets,
                "test": self.target_test_snippets}[split]


# --- looks -----------------------------------------------------------------------------------------
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Style:
    """The look of one domain: palette, lighting, texture and sensor. Colours are 0..255 RGB."""

    name: str
    sky_top: RGB
    sky_horizon: RGB
    cloud: RGB
    cloud_amount: float  # 0: clear sky, 1: overcast
    road: RGB
    marking: RGB
    sidewalk: RGB
    kerb: RGB
    terrain: RGB
    buildings: tuple[RGB, ...]
    window: RGB
    vegetation: tuple[RGB, ...]
    trunk: RGB
    pole: RGB
    fence: RGB
    signs: tuple[RGB, ...]
    light_housing: RGB
    lamps: tuple[RGB, ...]
    cars: tuple[RGB, ...]  # also trucks
    buses: tuple[RGB, ...]
    bikes: tuple[RGB, ...]  # bicycle and motorcycle frames
    glass: RGB
    tyre: RGB
    clothes: tuple[RGB, ...]
    skin: tuple[RGB, ...]
    hood: RGB
    # Brightness of a face by outward normal (+x, -x, top, +z, -z): the sun's direction and strength.
    face_shade: tuple[float, float, float, float, float]
    instance_jitter: float  # per-object multiplicative colour spread
    texture: float  # amplitude of surface grain (asphalt, grass, paving)
    grain_fine: float  # share of fine speckle (vs. coarse blotches) in that grain
    exposure_jitter: float  # per-sequence brightness spread
    flicker: float  # per-frame brightness spread
    cast: tuple[float, float, float]  # white balance
    saturation: float
    contrast: float
    gamma: float
    vignette: float
    mottle: float  # low-frequency illumination unevenness (clouds' shadows)
    blur_sigma: float  # optics, in pixels at 256 px width
    noise_sigma: float  # sensor noise, 0..255 units
    horizon: tuple[float, float]  # range of the principal point's row, as a fraction of the height
    ego_hood: bool


SOURCE_STYLE = Style(  # a sunny video game: saturated, hard shading, crisp, clean
    name="game", sky_top=(40, 105, 215), sky_horizon=(150, 195, 245), cloud=(250, 250, 255),
    cloud_amount=0.15, road=(78, 76, 84), marking=(240, 240, 230), sidewalk=(196, 178, 150),
    kerb=(215, 210, 200), terrain=(120, 160, 50),
    buildings=((170, 85, 60), (210, 185, 135), (125, 125, 140), (185, 150, 115), (150, 70, 90)),
    window=(110, 165, 215), vegetation=((40, 140, 35), (70, 160, 30), (30, 115, 50)),
    trunk=(100, 65, 35), pole=(150, 150, 160), fence=(165, 120, 75),
    signs=((215, 25, 30), (25, 70, 210), (245, 205, 20)), light_housing=(45, 45, 40),
    lamps=((255, 40, 30), (255, 190, 0), (40, 255, 80)),
    cars=((210, 25, 30), (25, 60, 210), (235, 235, 235), (30, 30, 35), (235, 190, 25), (60, 170, 70)),
    buses=((230, 120, 20), (30, 150, 200), (200, 30, 60)), bikes=((220, 30, 30), (20, 20, 20), (30, 80, 220)),
    glass=(50, 70, 100), tyre=(25, 25, 25),
    clothes=((220, 40, 40), (40, 90, 220), (240, 200, 40), (40, 160, 70), (60, 50, 120)),
    skin=((235, 190, 160), (190, 130, 90)), hood=(0, 0, 0),
    face_shade=(0.62, 1.0, 1.2, 0.82, 0.9), instance_jitter=0.12, texture=0.10, grain_fine=0.7,
    exposure_jitter=0.06, flicker=0.0, cast=(1.0, 1.0, 1.0), saturation=1.15, contrast=1.1,
    gamma=1.0, vignette=0.0, mottle=0.0, blur_sigma=0.0, noise_sigma=0.0,
    horizon=(0.47, 0.53), ego_hood=False,
)
TARGET_STYLE = Style(  # an overcast dash camera: grey-green cast, low contrast, soft, noisy
    name="camera", sky_top=(165, 188, 212), sky_horizon=(212, 220, 226), cloud=(175, 180, 184),
    cloud_amount=0.55, road=(100, 103, 99), marking=(190, 188, 160), sidewalk=(168, 142, 128),
    kerb=(168, 165, 158), terrain=(128, 142, 80),
    buildings=((178, 168, 152), (142, 96, 80), (202, 192, 170), (110, 112, 122), (162, 146, 114)),
    window=(45, 52, 58), vegetation=((58, 96, 44), (84, 108, 50), (48, 82, 46)),
    trunk=(66, 58, 50), pole=(84, 90, 92), fence=(104, 104, 98),
    signs=((160, 50, 45), (50, 75, 140), (190, 170, 70)), light_housing=(28, 30, 30),
    lamps=((230, 90, 70), (230, 180, 90), (120, 230, 150)),
    cars=((64, 64, 72), (152, 152, 150), (22, 24, 28), (120, 36, 36), (44, 52, 92), (196, 196, 190)),
    buses=((210, 205, 190), (150, 40, 40), (60, 90, 120)), bikes=((30, 30, 32), (90, 90, 95), (120, 50, 45)),
    glass=(30, 36, 42), tyre=(20, 20, 20),
    clothes=((40, 40, 46), (74, 62, 56), (92, 92, 112), (120, 110, 96), (150, 60, 60)),
    skin=((200, 160, 140), (140, 105, 85)), hood=(34, 38, 42),
    face_shade=(0.9, 0.94, 1.06, 0.92, 0.96), instance_jitter=0.10, texture=0.22, grain_fine=0.15,
    exposure_jitter=0.10, flicker=0.02, cast=(0.95, 1.03, 0.97), saturation=0.8, contrast=0.85,
    gamma=1.1, vignette=0.35, mottle=0.12, blur_sigma=0.8, noise_sigma=3.5,
    horizon=(0.40, 0.45), ego_hood=True,
)
STYLES = {Domain.SOURCE: SOURCE_STYLE, Domain.TARGET: TARGET_STYLE}


# --- camera ------------------------------------------------------------------------------------------
NEAR = 0.3  # metres: polygons are clipped here
FOCAL_PER_WIDTH = 0.75  # focal length in pixels per image width: a 67 degree horizontal view


@dataclass(frozen=True)
class Pose:
    x: float
    z: float
    yaw: float  # radians, positive turns to +x
    cy: float  # principal point row (pitch bobbing moves it)


@dataclass(frozen=True)
class CameraPath:
    """A car-mounted camera driving along +z and panning; ``pose(n)`` at any frame number."""

    height: float
    x: float
    z0: float
    speed: float  # metres per frame
    yaw_bias: float
    yaw_amp: float
    yaw_period: float  # frames
    yaw_phase: float
    sway: float  # lateral wobble, metres
    cy: float  # pixels
    bob: float  # pixels

    def pose(self, n: int) -> Pose:
        angle = 2 * math.pi * n / self.yaw_period + self.yaw_phase
        return Pose(x=self.x + self.sway * math.sin(0.7 * angle),
                    z=self.z0 + self.speed * n,
                    yaw=self.yaw_bias + self.yaw_amp * math.sin(angle),
                    cy=self.cy + self.bob * math.sin(1.9 * n))


@dataclass(frozen=True)
class Street:
    """The static cross-section of one street (metres)."""

    road_half: float
    sidewalk: float
    parking: bool  # a parking lane along each kerb (wide streets only)
    verge: float  # terrain strip between sidewalk and buildings
    building_prob: float  # share of the street front that is built up
    tree_prob: float
    fence_prob: float
    crosswalks: tuple[float, ...] = ()  # z of zebra crossings


PARKING_WIDTH = 2.2  # metres
PARKED_ROAD_HALF = 5.6  # half-width from which a street has parking lanes


def _draw_street(rng: np.random.Generator) -> Street:
    road_half = float(rng.uniform(3.5, 7.0))
    return Street(road_half=road_half, sidewalk=float(rng.uniform(1.8, 3.6)),
                  parking=road_half >= PARKED_ROAD_HALF, verge=float(rng.choice([0.0, rng.uniform(1.0, 4.0)])),
                  building_prob=float(rng.uniform(0.55, 0.95)), tree_prob=float(rng.uniform(0.2, 0.8)),
                  fence_prob=float(rng.uniform(0.0, 0.5)))


def lane_centre(street: Street) -> float:
    """Lateral position of the camera's lane (right-hand traffic); the oncoming lane mirrors it."""
    return (street.road_half - (PARKING_WIDTH if street.parking else 0.0)) / 2


def _draw_camera(rng: np.random.Generator, street: Street, style: Style, *, height: int) -> CameraPath:
    return CameraPath(
        height=float(rng.uniform(1.3, 1.7)), x=lane_centre(street), z0=0.0,
        speed=float(rng.uniform(0.25, 0.8)), yaw_bias=float(rng.uniform(-0.04, 0.04)),
        yaw_amp=float(rng.uniform(0.01, 0.07)), yaw_period=float(rng.uniform(40, 120)),
        yaw_phase=float(rng.uniform(0, 2 * math.pi)), sway=float(rng.uniform(0.0, 0.3)),
        cy=float(rng.uniform(*style.horizon)) * height, bob=float(rng.uniform(0.0, 0.004)) * height,
    )


# --- scene geometry -------------------------------------------------------------------------------------
class Kind(IntEnum):
    """How a primitive's pixels are shaded after rasterisation."""

    FLAT = 0
    SKY = 1
    GROUND = 2
    FACADE = 3  # windows from the facade plane's coordinates
    FENCE = 4  # slats from the fence plane's coordinates


class Detail(IntEnum):
    """Level of detail: parts drawn only near (wheels, legs) or only far (a person's silhouette box)."""

    ALWAYS = 0
    NEAR = 1
    FAR = 2


LOD_PIXELS = 10.0  # an object whose projected radius is below this is drawn with its FAR parts


class Layer(IntEnum):
    """Drawing order before depth: the backdrop, then buildings, then everything in the street."""

    BACKDROP = 0
    BUILDING = 1
    STREET = 2


# Primitive ids reserved for the per-pixel passes.
SKY_ID, ROAD_ID, SIDEWALK_ID, TERRAIN_ID = 0, 1, 2, 3
N_PARAMS = 8
# Outward normals of a box's faces, in Style.face_shade order.
_NORMALS = np.array([(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, -1)], np.float64)


class _Poly(NamedTuple):
    verts: np.ndarray  # (k, 3) world coordinates at the reference frame
    swing: np.ndarray  # (k, 3) displacement at full gait amplitude (legs)
    prim: int
    obj: int
    normal: np.ndarray  # outward normal for back-face culling; zero: double-sided
    order: int  # drawing order within an object
    detail: int


class _Sphere(NamedTuple):
    center: np.ndarray
    radius: float
    prim: int
    obj: int
    order: int
    detail: int


class SceneBuilder:
    """Collects primitives (class, colour, shading) and the polygons and spheres that draw them.

    Every shape belongs to an object with a velocity (metres per frame from the reference frame)
    and an optional gait (leg swing); static objects have zero velocity.
    """

    def __init__(self, style: Style, rng: np.random.Generator, *, ref_frame: int) -> None:
        self.style, self.rng, self.ref_frame = style, rng, ref_frame
        self.prim_cls: list[int] = []
        self.prim_rgb: list[np.ndarray] = []
        self.prim_kind: list[int] = []
        self.prim_param: list[np.ndarray] = []
        self.obj_center: list[np.ndarray] = []
        self.obj_vel: list[np.ndarray] = []
        self.obj_gait: list[tuple[float, float]] = []
        self.obj_layer: list[int] = []
        self.obj_radius: list[float] = []
        self.polys: list[_Poly] = []
        self.spheres: list[_Sphere] = []
        self._order = 0

    # primitives
    def prim(self, cls: SceneClass, rgb: Sequence[float], *, kind: Kind = Kind.FLAT,
             params: Sequence[float] = ()) -> int:
        self.prim_cls.append(int(cls))
        self.prim_rgb.append(np.clip(np.asarray(rgb, np.float32) / 255.0, 0, 1.5))
        self.prim_kind.append(int(kind))
        padded = np.zeros(N_PARAMS, np.float64)
        padded[: len(params)] = params
        self.prim_param.append(padded)
        return len(self.prim_cls) - 1

    def jitter(self, rgb: RGB, amount: float | None = None) -> np.ndarray:
        """An instance colour: ``rgb`` scaled by a random brightness and a small per-channel tint."""
        amount = self.style.instance_jitter if amount is None else amount
        gain = self.rng.uniform(1 - amount, 1 + amount)
        tint = self.rng.uniform(1 - amount / 3, 1 + amount / 3, 3)
        return np.asarray(rgb, np.float64) * gain * tint

    # objects and shapes
    def obj(self, center: Sequence[float], *, layer: Layer = Layer.STREET, radius: float = 1.0,
            vel: Sequence[float] = (0, 0, 0), gait: tuple[float, float] = (0.0, 0.0)) -> int:
        self.obj_center.append(np.asarray(center, np.float64))
        self.obj_vel.append(np.asarray(vel, np.float64))
        self.obj_gait.append(gait)
        self.obj_layer.append(int(layer))
        self.obj_radius.append(float(radius))
        return len(self.obj_center) - 1

    def poly(self, obj: int, prim: int, verts: np.ndarray, *, normal: Sequence[float] = (0, 0, 0),
             swing: np.ndarray | None = None, detail: Detail = Detail.ALWAYS) -> None:
        verts = np.asarray(verts, np.float64)
        swing = np.zeros_like(verts) if swing is None else np.asarray(swing, np.float64)
        self.polys.append(_Poly(verts, swing, prim, obj, np.asarray(normal, np.float64), self._order, int(detail)))
        self._order += 1

    def sphere(self, obj: int, prim: int, center: Sequence[float], radius: float, *,
               detail: Detail = Detail.ALWAYS) -> None:
        self.spheres.append(_Sphere(np.asarray(center, np.float64), float(radius), prim, obj, self._order, int(detail)))
        self._order += 1

    def box(self, obj: int, cls: SceneClass, rgb: np.ndarray, lo: Sequence[float], hi: Sequence[float],
            *, swing_bottom: Sequence[float] | None = None, detail: Detail = Detail.ALWAYS) -> None:
        """An axis-aligned box (no bottom face), one primitive per face, shaded by the sun."""
        (x0, y0, z0), (x1, y1, z1) = lo, hi
        faces = (
            [(x1, y0, z0), (x1, y0, z1), (x1, y1, z1), (x1, y1, z0)],  # +x
            [(x0, y0, z0), (x0, y0, z1), (x0, y1, z1), (x0, y1, z0)],  # -x
            [(x0, y1, z0), (x1, y1, z0), (x1, y1, z1), (x0, y1, z1)],  # top
            [(x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1)],  # +z
            [(x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0)],  # -z
        )
        for normal, shade, face in zip(_NORMALS, self.style.face_shade, faces):
            verts = np.asarray(face, np.float64)
            swing = None
            if swing_bottom is not None:  # legs pivot at the hip: only the bottom corners swing
                swing = np.where((verts[:, 1] == y0)[:, None], np.asarray(swing_bottom, np.float64), 0.0)
            self.poly(obj, self.prim(cls, rgb * shade), verts, normal=normal, swing=swing, detail=detail)

    def finish(self) -> Scene:
        return Scene.from_builder(self)


@dataclass
class Scene:
    """A built window of a street, as flat arrays ready for per-frame transforms."""

    ref_frame: int
    prim_cls: np.ndarray
    prim_rgb: np.ndarray
    prim_kind: np.ndarray
    prim_param: np.ndarray
    obj_center: np.ndarray
    obj_vel: np.ndarray
    obj_gait: np.ndarray
    obj_layer: np.ndarray
    obj_radius: np.ndarray
    verts: np.ndarray  # (V, 3)
    swing: np.ndarray  # (V, 3)
    vert_obj: np.ndarray  # (V,)
    poly_start: np.ndarray  # (P,)
    poly_prim: np.ndarray
    poly_obj: np.ndarray
    poly_normal: np.ndarray  # (P, 3); zero: double-sided
    poly_order: np.ndarray
    poly_detail: np.ndarray
    sph_center: np.ndarray
    sph_radius: np.ndarray
    sph_prim: np.ndarray
    sph_obj: np.ndarray
    sph_order: np.ndarray
    sph_detail: np.ndarray

    @classmethod
    def from_builder(cls, b: SceneBuilder) -> Scene:
        polys, spheres = b.polys, b.spheres
        sizes = np.array([len(p.verts) for p in polys], np.int64)
        poly_obj = np.array([p.obj for p in polys], np.int64)

        def column(items, name, dtype=np.int64):
            return np.array([getattr(i, name) for i in items], dtype)

        return cls(
            ref_frame=b.ref_frame,
            prim_cls=np.array(b.prim_cls, np.uint8), prim_rgb=np.stack(b.prim_rgb).astype(np.float32),
            prim_kind=np.array(b.prim_kind, np.uint8), prim_param=np.stack(b.prim_param),
            obj_center=np.stack(b.obj_center), obj_vel=np.stack(b.obj_vel),
            obj_gait=np.array(b.obj_gait, np.float64).reshape(-1, 2),
            obj_layer=np.array(b.obj_layer, np.int64), obj_radius=np.array(b.obj_radius),
            verts=np.concatenate([p.verts for p in polys]), swing=np.concatenate([p.swing for p in polys]),
            vert_obj=np.repeat(poly_obj, sizes), poly_start=np.concatenate([[0], np.cumsum(sizes)[:-1]]),
            poly_prim=column(polys, "prim"), poly_obj=poly_obj,
            poly_normal=np.stack([p.normal for p in polys]), poly_order=column(polys, "order"),
            poly_detail=column(polys, "detail"),
            sph_center=np.array([sp.center for sp in spheres], np.float64).reshape(-1, 3),
            sph_radius=column(spheres, "radius", np.float64), sph_prim=column(spheres, "prim"),
            sph_obj=column(spheres, "obj"), sph_order=column(spheres, "order"),
            sph_detail=column(spheres, "detail"),
        )


# --- populating a street ----------------------------------------------------------------------------------
SIDES = (-1, 1)
FAR = 160.0  # metres of street generated beyond the last camera position


def build_scene(rng: np.random.Generator, *, street: Street, camera: CameraPath, style: Style,
                frames: range) -> Scene:
    """Everything visible from ``camera`` during ``frames``: static street furniture and movers."""
    z_lo = camera.pose(frames.start).z - 20.0
    z_hi = camera.pose(frames.stop - 1).z + FAR
    b = SceneBuilder(style, rng, ref_frame=frames.start)
    _add_ground_prims(b, street)
    for side in SIDES:
        setback = _add_buildings(b, street, side, z_lo, z_hi)
        _add_backdrop(b, side, setback, z_lo, z_hi)
        _add_trees(b, street, side, z_lo, z_hi)
        _add_poles(b, street, side, z_lo, z_hi)
        _add_fences(b, street, side, z_lo, z_hi)
        _add_pedestrians(b, street, side, z_lo, z_hi)
    _add_cars(b, street, camera, z_lo, z_hi, frames)
    _add_crossing_pedestrians(b, street, camera, frames)
    return b.finish()


def _add_ground_prims(b: SceneBuilder, street: Street) -> None:
    s = b.style
    for pid, cls, rgb in ((SKY_ID, SceneClass.SKY, s.sky_horizon), (ROAD_ID, SceneClass.ROAD, s.road),
                          (SIDEWALK_ID, SceneClass.SIDEWALK, s.sidewalk),
                          (TERRAIN_ID, SceneClass.TERRAIN, s.terrain)):
        kind = Kind.SKY if pid == SKY_ID else Kind.GROUND
        got = b.prim(cls, b.jitter(rgb, s.instance_jitter / 2), kind=kind)
        assert got == pid  # the per-pixel passes rely on these ids


def _add_buildings(b: SceneBuilder, street: Street, side: int, z_lo: float, z_hi: float) -> float:
    """Facades along one side; returns the largest setback (where the backdrop goes)."""
    rng, s = b.rng, b.style
    base = street.road_half + street.sidewalk + street.verge
    z = z_lo - rng.uniform(0, 25)
    max_setback = base + 2.0
    while z < z_hi:
        if rng.random() > street.building_prob:  # an open lot: the backdrop shows through
            z += rng.uniform(10, 35)
            continue
        length, height = rng.uniform(8, 30), rng.uniform(6, 24)
        setback = base + rng.uniform(0, 2.0)
        max_setback = max(max_setback, setback)
        x = side * setback
        obj = b.obj((x, height / 2, z), layer=Layer.BUILDING, radius=length + height)
        rgb = b.jitter(s.buildings[rng.integers(len(s.buildings))])
        # facade params: plane x, start z, window pitch along z and y, window fill, ground floor, top
        params = (x, z, rng.uniform(2.2, 4.0), rng.uniform(2.8, 3.6), rng.uniform(0.35, 0.7),
                  rng.uniform(0.35, 0.6), rng.uniform(2.5, 4.5), height)
        facade = np.array([(x, 0, z), (x, 0, z + length), (x, height, z + length), (x, height, z)])
        b.poly(obj, b.prim(SceneClass.BUILDING, rgb * _shade(s, -side), kind=Kind.FACADE, params=params),
               facade, normal=(-side, 0, 0))
        depth = side * rng.uniform(10, 16)
        end_wall = np.array([(x, 0, z), (x + depth, 0, z), (x + depth, height, z), (x, height, z)])
        b.poly(obj, b.prim(SceneClass.BUILDING, rgb * _shade(s, 4)), end_wall, normal=(0, 0, -1))
        z += length + (rng.uniform(1, 8) if rng.random() < 0.3 else 0.0)
    return max_setback


def _shade(style: Style, normal: int) -> float:
    """Face brightness: ``normal`` is +1/-1 for the x faces, or an index into face_shade."""
    if normal in (1, -1):
        return style.face_shade[0 if normal == 1 else 1]
    return style.face_shade[normal]


def _add_backdrop(b: SceneBuilder, side: int, setback: float, z_lo: float, z_hi: float) -> None:
    """A distant tree line behind the buildings, seen through gaps and open lots."""
    rng, s = b.rng, b.style
    if rng.random() < 0.25:
        return
    x = side * (setback + rng.uniform(15, 30))
    z = z_lo
    while z < z_hi + 60:
        r = rng.uniform(3, 6)
        obj = b.obj((x, r, z), layer=Layer.BACKDROP, radius=2 * r)
        rgb = b.jitter(s.vegetation[rng.integers(len(s.vegetation))], 0.2)
        b.sphere(obj, b.prim(SceneClass.VEGETATION, rgb), (x, rng.uniform(2, 2 * r), z), r)
        b.sphere(obj, b.prim(SceneClass.VEGETATION, rgb * 0.85), (x + side * 2, r * 0.8, z + r), r * 0.9)
        z += rng.uniform(4, 9)


def _add_trees(b: SceneBuilder, street: Street, side: int, z_lo: float, z_hi: float) -> None:
    rng, s = b.rng, b.style
    if street.verge > 1.5:
        x_line = street.road_half + street.sidewalk + street.verge / 2
    else:
        x_line = street.road_half + street.sidewalk * 0.75
    z = z_lo + rng.uniform(0, 10)
    while z < z_hi:
        z += rng.uniform(7, 16)
        if rng.random() > street.tree_prob:
            continue
        if rng.random() < 0.25:  # a hedge instead of a tree
            _add_hedge(b, street, side, z)
            continue
        x = side * x_line
        trunk_h, crown = rng.uniform(1.8, 3.2), rng.uniform(1.3, 2.6)
        obj = b.obj((x, trunk_h, z), radius=trunk_h + 2 * crown)
        b.box(obj, SceneClass.TREE, b.jitter(s.trunk), (x - 0.15, 0, z - 0.15), (x + 0.15, trunk_h + crown, z + 0.15))
        leaf = b.jitter(s.vegetation[rng.integers(len(s.vegetation))], 0.15)
        b.sphere(obj, b.prim(SceneClass.TREE, leaf), (x, trunk_h + crown, z), crown * 0.8)
        for _ in range(int(rng.integers(3, 7))):  # clumps of leaves in light and shadow
            offset = rng.normal(0, crown * 0.45, 3) * (1, 0.7, 1)
            center = (x + offset[0], trunk_h + crown + offset[1], z + offset[2])
            b.sphere(obj, b.prim(SceneClass.TREE, leaf * rng.uniform(0.75, 1.2)), center,
                     crown * rng.uniform(0.5, 0.8), detail=Detail.NEAR)


def _add_hedge(b: SceneBuilder, street: Street, side: int, z: float) -> None:
    rng, s = b.rng, b.style
    x = side * (street.road_half + street.sidewalk + 0.5)
    length, height = rng.uniform(3, 10), rng.uniform(0.8, 1.6)
    obj = b.obj((x, height / 2, z + length / 2), radius=length)
    rgb = b.jitter(s.vegetation[rng.integers(len(s.vegetation))], 0.15)
    b.box(obj, SceneClass.VEGETATION, rgb, (x - 0.5, 0, z), (x + 0.5, height, z + length))


class PoleKind(str, Enum):
    LAMP = "lamp"
    SIGN = "sign"
    TRAFFIC_LIGHT = "traffic_light"


def _add_poles(b: SceneBuilder, street: Street, side: int, z_lo: float, z_hi: float) -> None:
    rng = b.rng
    x = side * (street.road_half + 0.45)
    z = z_lo + rng.uniform(0, 15)
    while z < z_hi:
        z += rng.uniform(12, 35)
        kind = PoleKind(rng.choice([k.value for k in PoleKind], p=[0.3, 0.45, 0.25]))
        height = {PoleKind.LAMP: rng.uniform(5.5, 7.5), PoleKind.SIGN: rng.uniform(2.6, 3.4),
                  PoleKind.TRAFFIC_LIGHT: rng.uniform(3.2, 4.2)}[kind]
        obj = b.obj((x, height / 2, z), radius=height)
        rgb = b.jitter(b.style.pole)
        b.box(obj, SceneClass.POLE, rgb, (x - 0.07, 0, z - 0.07), (x + 0.07, height, z + 0.07))
        if kind is PoleKind.LAMP:
            arm = -side * rng.uniform(1.0, 2.0)
            lo_x, hi_x = sorted((x, x + arm))
            b.box(obj, SceneClass.POLE, rgb, (lo_x, height - 0.12, z - 0.06), (hi_x, height, z + 0.06))
        elif kind is PoleKind.SIGN:
            _add_sign(b, obj, x, height, z)
        else:
            _add_traffic_light(b, obj, x, height, z)


def _add_sign(b: SceneBuilder, obj: int, x: float, top: float, z: float) -> None:
    rng, s = b.rng, b.style
    size = rng.uniform(0.55, 0.85)
    cx, cy, zf = x, top - size / 2, z - 0.09
    sides = int(rng.choice([3, 4, 12]))  # triangle, square (diamond when turned), disc
    turn = math.pi / 4 if sides == 4 and rng.random() < 0.5 else (math.pi / 2 if sides == 3 else 0.0)
    angles = turn + 2 * math.pi * np.arange(sides) / sides
    radius = size / 2 * (1.15 if sides == 3 else 1.0)
    verts = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles), np.full(sides, zf)], 1)
    rgb = b.jitter(s.signs[rng.integers(len(s.signs))])
    b.poly(obj, b.prim(SceneClass.SIGN, rgb), verts, normal=(0, 0, -1))
    inner = verts.copy()
    inner[:, :2] = (verts[:, :2] - (cx, cy)) * 0.6 + (cx, cy)  # a light centre, as real signs have
    b.poly(obj, b.prim(SceneClass.SIGN, np.minimum(rgb * 0.3 + 170, 255)), inner - (0, 0, 0.01), normal=(0, 0, -1))


def _add_traffic_light(b: SceneBuilder, obj: int, x: float, top: float, z: float) -> None:
    rng, s = b.rng, b.style
    w, h = 0.32, 0.95
    housing = b.jitter(s.light_housing)
    b.box(obj, SceneClass.LIGHT, housing, (x - w / 2, top - h, z - 0.25), (x + w / 2, top, z + 0.05))
    lit = int(rng.integers(3))
    for i in range(3):
        rgb = np.asarray(s.lamps[i], np.float64) * (1.0 if i == lit else 0.3)
        b.sphere(obj, b.prim(SceneClass.LIGHT, rgb), (x, top - 0.17 - i * 0.3, z - 0.27), 0.1)


def _add_fences(b: SceneBuilder, street: Street, side: int, z_lo: float, z_hi: float) -> None:
    rng, s = b.rng, b.style
    x = side * (street.road_half + street.sidewalk - 0.05)
    z = z_lo
    while z < z_hi:
        z += rng.uniform(10, 40)
        if rng.random() > street.fence_prob:
            continue
        length, height = rng.uniform(8, 35), rng.uniform(0.9, 1.4)
        obj = b.obj((x, height / 2, z + length / 2), radius=length)
        params = (x, rng.uniform(0.18, 0.35), height)
        verts = np.array([(x, 0, z), (x, 0, z + length), (x, height, z + length), (x, height, z)])
        b.poly(obj, b.prim(SceneClass.FENCE, b.jitter(s.fence), kind=Kind.FENCE, params=params), verts)
        z += length


class VehicleKind(str, Enum):
    CAR = "car"
    TRUCK = "truck"
    BUS = "bus"


VEHICLE_MIX = {VehicleKind.CAR: 0.78, VehicleKind.TRUCK: 0.13, VehicleKind.BUS: 0.09}


def _add_wheels(b: SceneBuilder, obj: int, cls: SceneClass, x: float, z: float, half_width: float,
                axle: float, radius: float) -> None:
    """Four tyres (near detail only), drawn before the body so that it covers their tops."""
    for dx in (-1, 1):
        for dz in (-1, 1):
            wx, wz = x + dx * (half_width - 0.12), z + dz * axle
            b.box(obj, cls, np.asarray(b.style.tyre, np.float64), (wx - 0.13, 0, wz - radius),
                  (wx + 0.13, 2 * radius, wz + radius), detail=Detail.NEAR)


def _add_vehicle(b: SceneBuilder, x: float, z: float, vz: float, kind: VehicleKind | None = None) -> None:
    """A vehicle centred at (x, z) at the reference frame, driving along z at ``vz`` metres per frame."""
    if kind is None:
        kind = VehicleKind(b.rng.choice([k.value for k in VEHICLE_MIX], p=list(VEHICLE_MIX.values())))
    {VehicleKind.CAR: _add_car, VehicleKind.TRUCK: _add_truck, VehicleKind.BUS: _add_bus}[kind](b, x, z, vz)


def _add_car(b: SceneBuilder, x: float, z: float, vz: float) -> None:
    rng, s = b.rng, b.style
    width, length = rng.uniform(1.65, 1.95), rng.uniform(3.8, 4.9)
    body_h, cabin_h = rng.uniform(0.85, 1.05), rng.uniform(0.5, 0.65)
    obj = b.obj((x, 0.8, z), radius=length, vel=(0, 0, vz))
    paint = b.jitter(s.cars[rng.integers(len(s.cars))])
    hw, hl = width / 2, length / 2
    _add_wheels(b, obj, SceneClass.CAR, x, z, hw, hl - 0.75, 0.31)
    b.box(obj, SceneClass.CAR, paint, (x - hw, 0.3, z - hl), (x + hw, body_h, z + hl), detail=Detail.NEAR)
    b.box(obj, SceneClass.CAR, paint, (x - hw, 0.0, z - hl), (x + hw, body_h, z + hl), detail=Detail.FAR)
    cabin_z = z + rng.uniform(-0.3, 0.1) * length * np.sign(vz or 1.0)
    cl = length * rng.uniform(0.25, 0.32)
    glass = b.jitter(s.glass, 0.1)
    b.box(obj, SceneClass.CAR, glass, (x - hw + 0.1, body_h, cabin_z - cl), (x + hw - 0.1, body_h + cabin_h, cabin_z + cl))


def _add_truck(b: SceneBuilder, x: float, z: float, vz: float) -> None:
    """A box truck: a cab at the front, a taller cargo box behind."""
    rng, s = b.rng, b.style
    width, length, height = rng.uniform(2.2, 2.5), rng.uniform(6.0, 8.5), rng.uniform(2.8, 3.4)
    obj = b.obj((x, height / 2, z), radius=length, vel=(0, 0, vz))
    hw, hl = width / 2, length / 2
    front = np.sign(vz or 1.0)  # parked trucks face +z
    cab_len = 1.9
    cab_z0, cab_z1 = sorted((z + front * hl, z + front * (hl - cab_len)))
    box_z0, box_z1 = sorted((z + front * (hl - cab_len - 0.1), z - front * hl))
    _add_wheels(b, obj, SceneClass.TRUCK, x, z, hw, hl - 1.0, 0.45)
    cab = b.jitter(s.cars[rng.integers(len(s.cars))])
    cargo = b.jitter(s.buses[rng.integers(len(s.buses))] if rng.random() < 0.3 else (205, 205, 200))
    b.box(obj, SceneClass.TRUCK, cab, (x - hw, 0.45, cab_z0), (x + hw, height * 0.8, cab_z1))
    b.box(obj, SceneClass.TRUCK, b.jitter(s.glass, 0.1), (x - hw + 0.05, height * 0.55, cab_z0 + 0.2),
          (x + hw - 0.05, height * 0.78, cab_z1 - 0.2), detail=Detail.NEAR)
    b.box(obj, SceneClass.TRUCK, cargo, (x - hw - 0.05, 0.5, box_z0), (x + hw + 0.05, height, box_z1))


def _add_bus(b: SceneBuilder, x: float, z: float, vz: float) -> None:
    """A city bus: a long box with a band of windows."""
    rng, s = b.rng, b.style
    width, length, height = 2.5, rng.uniform(10.0, 12.5), rng.uniform(2.9, 3.2)
    obj = b.obj((x, height / 2, z), radius=length, vel=(0, 0, vz))
    hw, hl = width / 2, length / 2
    _add_wheels(b, obj, SceneClass.BUS, x, z, hw, hl - 2.2, 0.5)
    paint = b.jitter(s.buses[rng.integers(len(s.buses))])
    b.box(obj, SceneClass.BUS, paint, (x - hw, 0.3, z - hl), (x + hw, height, z + hl))
    b.box(obj, SceneClass.BUS, b.jitter(s.glass, 0.1), (x - hw - 0.03, 1.3, z - hl + 0.4),
          (x + hw + 0.03, height - 0.35, z + hl - 0.4), detail=Detail.NEAR)


def _add_two_wheeler(b: SceneBuilder, x: float, z: float, vz: float, *, motor: bool) -> None:
    """A bicycle or motorcycle along z with its rider (a "rider" in Cityscapes, a person in VIPER)."""
    rng, s = b.rng, b.style
    cls = SceneClass.MOTORCYCLE if motor else SceneClass.BICYCLE
    length, width = (2.0, 0.7) if motor else (1.75, 0.5)
    obj = b.obj((x, 0.9, z), radius=2.0, vel=(0, 0, vz))
    frame = b.jitter(s.bikes[rng.integers(len(s.bikes))])
    tyre = np.asarray(s.tyre, np.float64)
    for end in (-1, 1):  # wheels: thin and tall, at both ends
        wz = z + end * (length / 2 - 0.35)
        b.box(obj, cls, tyre, (x - 0.05, 0, wz - 0.34), (x + 0.05, 0.68, wz + 0.34))
    b.box(obj, cls, frame, (x - width / 4, 0.35, z - length / 2 + 0.4),
          (x + width / 4, 0.75 if motor else 0.95, z + length / 2 - 0.4))
    height = rng.uniform(1.6, 1.85)
    clothes = b.jitter(s.clothes[rng.integers(len(s.clothes))])
    seat = 0.8 if motor else 0.95
    b.box(obj, SceneClass.RIDER, clothes * 0.8, (x - 0.18, 0.35, z - 0.2), (x + 0.18, seat, z + 0.2))  # legs
    b.box(obj, SceneClass.RIDER, clothes, (x - 0.22, seat, z - 0.15), (x + 0.22, seat + 0.32 * height, z + 0.15))
    head = b.jitter(s.skin[rng.integers(len(s.skin))]) if not motor else b.jitter(s.bikes[0])  # helmet
    b.sphere(obj, b.prim(SceneClass.RIDER, head), (x, seat + 0.38 * height, z), 0.12)


def _add_cars(b: SceneBuilder, street: Street, camera: CameraPath, z_lo: float, z_hi: float,
              frames: range) -> None:
    """Traffic ahead in the camera's lane, oncoming traffic, parked vehicles and two-wheelers."""
    rng = b.rng
    lane = lane_centre(street)
    z_cam = camera.pose(frames.start).z
    n = len(frames)
    # Ahead in the camera's lane: never closer than 10 m over the whole window.
    for _ in range(int(rng.integers(0, 3))):
        rel = rng.uniform(-0.08, 0.25)
        start = z_cam + rng.uniform(10, 45) + max(0.0, -rel) * n
        _add_vehicle(b, camera.x + rng.normal(0, 0.15), start, camera.speed + rel)
    # Oncoming traffic.
    z = z_lo + rng.uniform(0, 30)
    while z < z_hi + 40:
        _add_vehicle(b, -lane + rng.normal(0, 0.15), z, -rng.uniform(0.3, 0.9))
        z += rng.uniform(15, 60)
    # Parked vehicles along the kerbs (no buses).
    for side in SIDES if street.parking else ():
        x = side * (street.road_half - PARKING_WIDTH / 2)
        z = z_lo + rng.uniform(0, 10)
        while z < z_hi:
            if rng.random() < 0.5:
                _add_vehicle(b, x, z, 0.0, VehicleKind.TRUCK if rng.random() < 0.1 else VehicleKind.CAR)
            z += rng.uniform(5.5, 14)
    # Two-wheelers keep to the right edge of their lane (lanes are 2 * lane wide), starting ahead.
    lane_edge = 2 * lane - 0.6
    for _ in range(int(rng.integers(0, 3))):
        direction = float(rng.choice([-1, 1]))
        speed = rng.uniform(0.2, 0.55)
        _add_two_wheeler(b, direction * lane_edge, z_cam + rng.uniform(12, 60), direction * speed,
                         motor=bool(rng.random() < 0.4))


def _add_person(b: SceneBuilder, x: float, z: float, vel: tuple[float, float]) -> None:
    """A person standing at (x, z) at the reference frame, walking with ``vel`` (vx, vz)."""
    rng, s = b.rng, b.style
    height = rng.uniform(1.55, 1.95)
    speed = math.hypot(*vel)
    direction = np.array([vel[0], 0, vel[1]]) / speed if speed > 0 else np.zeros(3)
    stride = 0.22 * height
    omega = 2 * math.pi * speed / (2 * stride) if speed > 0 else 0.0
    obj = b.obj((x, height / 2, z), radius=height, vel=(vel[0], 0, vel[1]),
                gait=(omega, rng.uniform(0, 2 * math.pi)))
    trousers = b.jitter(s.clothes[rng.integers(len(s.clothes))])
    shirt = b.jitter(s.clothes[rng.integers(len(s.clothes))])
    skin = b.jitter(s.skin[rng.integers(len(s.skin))])
    hip, shoulder = 0.52 * height, 0.82 * height
    for sign in (-1, 1):
        lx = x + sign * 0.09
        b.box(obj, SceneClass.PERSON, trousers, (lx - 0.07, 0, z - 0.07), (lx + 0.07, hip, z + 0.07),
              swing_bottom=sign * stride / 2 * direction, detail=Detail.NEAR)
    b.box(obj, SceneClass.PERSON, shirt, (x - 0.22, hip, z - 0.13), (x + 0.22, shoulder, z + 0.13), detail=Detail.NEAR)
    b.sphere(obj, b.prim(SceneClass.PERSON, skin), (x, shoulder + 0.1 * height, z), 0.075 * height, detail=Detail.NEAR)
    # Far away a person is a few pixels: one box in the average colour of the clothes.
    b.poly(obj, b.prim(SceneClass.PERSON, (trousers + shirt) / 2),
           [(x - 0.2, 0, z), (x + 0.2, 0, z), (x + 0.2, height, z), (x - 0.2, height, z)], detail=Detail.FAR)


def _add_pedestrians(b: SceneBuilder, street: Street, side: int, z_lo: float, z_hi: float) -> None:
    rng = b.rng
    z = z_lo + rng.uniform(0, 10)
    while z < z_hi:
        z += rng.uniform(6, 30)
        x = side * (street.road_half + rng.uniform(0.4, street.sidewalk - 0.3))
        walking = rng.random() < 0.8
        vz = rng.choice([-1, 1]) * rng.uniform(0.05, 0.1) if walking else 0.0
        _add_person(b, x, z, (0.0, float(vz)))


def _add_crossing_pedestrians(b: SceneBuilder, street: Street, camera: CameraPath, frames: range) -> None:
    """A few people crossing the road ahead, so movers also cross the image horizontally."""
    rng = b.rng
    for _ in range(int(rng.integers(0, 3))):
        z = camera.pose(frames.start).z + rng.uniform(15, 50) + camera.speed * len(frames)
        x = rng.uniform(-street.road_half, street.road_half)
        _add_person(b, x, z, (float(rng.choice([-1, 1]) * rng.uniform(0.05, 0.09)), 0.0))


# --- rendering ------------------------------------------------------------------------------------------------
SHIFT = 4  # sub-pixel bits for OpenCV's polygon filling
_ONE = 1 << SHIFT
MIN_PIXELS = 0.35  # objects projecting smaller than this are not drawn


@dataclass
class FrameGeometry:
    """Per-pixel camera rays of one frame (pixel centres at integer coordinates)."""

    xr: np.ndarray  # (W,) camera-space x of each column's ray (per unit forward)
    dx: np.ndarray  # world x of the ray direction (per unit forward)
    dz: np.ndarray
    down: np.ndarray  # ray's downward slope: ground hit at distance height / down
    focal: float
    cx: float
    cy: float

    @classmethod
    def at(cls, pose: Pose, *, width: int, height: int) -> FrameGeometry:
        focal = FOCAL_PER_WIDTH * width
        cx = (width - 1) / 2
        xr = (np.arange(width, dtype=np.float64) - cx) / focal
        yr = (np.arange(height, dtype=np.float64) - pose.cy) / focal
        c, s = math.cos(pose.yaw), math.sin(pose.yaw)
        dx = np.broadcast_to(xr * c + s, (height, width))
        dz = np.broadcast_to(-xr * s + c, (height, width))
        down = np.broadcast_to(yr[:, None], (height, width))
        return cls(xr=xr, dx=dx, dz=dz, down=down, focal=focal, cx=cx, cy=pose.cy)


def _to_camera(points: np.ndarray, pose: Pose, cam_height: float) -> np.ndarray:
    """World (N, 3) -> camera (N, 3): x right, y down, z forward."""
    rx, rz = points[:, 0] - pose.x, points[:, 2] - pose.z
    c, s = math.cos(pose.yaw), math.sin(pose.yaw)
    return np.stack([rx * c - rz * s, cam_height - points[:, 1], rx * s + rz * c], 1)


def _clip_near(poly: np.ndarray) -> np.ndarray | None:
    """Sutherland-Hodgman clip of a camera-space polygon to z >= NEAR."""
    out = []
    for a, b in zip(poly, np.roll(poly, -1, axis=0)):
        if a[2] >= NEAR:
            out.append(a)
        if (a[2] >= NEAR) != (b[2] >= NEAR):
            out.append(a + (NEAR - a[2]) / (b[2] - a[2]) * (b - a))
    return np.array(out) if len(out) >= 3 else None


def _project(cam: np.ndarray, geo: FrameGeometry) -> np.ndarray:
    """Camera-space points (N, 3) with z >= NEAR -> fixed-point pixel coordinates (N, 2) int32."""
    z = np.maximum(cam[:, 2], NEAR)
    screen = np.stack([geo.cx + geo.focal * cam[:, 0] / z, geo.cy + geo.focal * cam[:, 1] / z], 1)
    return np.clip(np.rint(screen * _ONE), -(1 << 26), 1 << 26).astype(np.int32)


def _rasterise(scene: Scene, n: int, pose: Pose, geo: FrameGeometry, ids: np.ndarray, cam_height: float) -> None:
    """Draw every visible polygon and sphere into ``ids`` (primitive ids), far to near."""
    dt = n - scene.ref_frame
    gait = np.sin(scene.obj_gait[:, 0] * n + scene.obj_gait[:, 1])
    cam_centers = _to_camera(scene.obj_center + scene.obj_vel * dt, pose, cam_height)
    depth = cam_centers[:, 2]
    lateral_limit = (ids.shape[1] / 2 / geo.focal) * np.maximum(depth, 0) + scene.obj_radius
    visible = ((depth + scene.obj_radius > NEAR) & (np.abs(cam_centers[:, 0]) < lateral_limit + 1)
               & (scene.obj_radius * geo.focal > MIN_PIXELS * np.maximum(depth, NEAR)))

    # Level of detail by the object's projected radius.
    near = scene.obj_radius * geo.focal >= LOD_PIXELS * np.maximum(depth, NEAR)
    lod_ok = np.array([np.ones_like(near), near, ~near])  # indexed by Detail, then object

    # Polygons: move, cull back faces and whatever is behind the camera, project in one go.
    verts = scene.verts + scene.obj_vel[scene.vert_obj] * dt + scene.swing * gait[scene.vert_obj, None]
    cam = _to_camera(verts, pose, cam_height)
    zmax = np.maximum.reduceat(cam[:, 2], scene.poly_start)
    zmin = np.minimum.reduceat(cam[:, 2], scene.poly_start)
    eye = np.array([pose.x, cam_height, pose.z])
    facing = np.einsum("pk,pk->p", scene.poly_normal, eye - verts[scene.poly_start]) > 0
    facing |= ~scene.poly_normal.any(1)  # double-sided
    poly_idx = np.flatnonzero(visible[scene.poly_obj] & lod_ok[scene.poly_detail, scene.poly_obj]
                              & facing & (zmax > NEAR))
    screen = _project(cam, geo)
    ends = np.append(scene.poly_start[1:], len(verts))

    # Spheres project to discs.
    sph = _to_camera(scene.sph_center + scene.obj_vel[scene.sph_obj] * dt, pose, cam_height)
    sph_r = geo.focal * scene.sph_radius / np.maximum(sph[:, 2], NEAR)
    sph_idx = np.flatnonzero(visible[scene.sph_obj] & lod_ok[scene.sph_detail, scene.sph_obj]
                             & (sph[:, 2] > NEAR + scene.sph_radius) & (sph_r >= MIN_PIXELS))
    sph_xy = _project(sph, geo)
    sph_r = np.rint(sph_r * _ONE).astype(np.int64)

    obj = np.concatenate([scene.poly_obj[poly_idx], scene.sph_obj[sph_idx]])
    order = np.concatenate([scene.poly_order[poly_idx], scene.sph_order[sph_idx]])
    # Buildings sort by their near end (world z), so a facade reaching behind the camera is nearest.
    key = np.where(scene.obj_layer[obj] == Layer.BUILDING, -scene.obj_center[obj, 2], -depth[obj])
    sequence = np.lexsort((order, key, scene.obj_layer[obj]))
    # Plain Python lists: the loop below only feeds OpenCV.
    n_poly = len(poly_idx)
    starts, stops = scene.poly_start[poly_idx].tolist(), ends[poly_idx].tolist()
    prims, clip = scene.poly_prim[poly_idx].tolist(), (zmin[poly_idx] < NEAR).tolist()
    discs = list(zip(sph_xy[sph_idx, 0].tolist(), sph_xy[sph_idx, 1].tolist(), sph_r[sph_idx].tolist(),
                     scene.sph_prim[sph_idx].tolist()))
    for item in sequence.tolist():
        if item < n_poly:
            if clip[item]:  # crosses the near plane: clip it first
                clipped = _clip_near(cam[starts[item]:stops[item]])
                if clipped is None:
                    continue
                pts = _project(clipped, geo)
            else:
                pts = screen[starts[item]:stops[item]]
            cv2.fillPoly(ids, [pts], prims[item], cv2.LINE_8, SHIFT)
        else:
            x, y, r, prim = discs[item - n_poly]
            cv2.circle(ids, (x, y), r, prim, -1, cv2.LINE_8, SHIFT)


@dataclass(frozen=True)
class Textures:
    """Per-sequence random fields sampled by the shading passes (so they move with the world)."""

    grain: np.ndarray  # (N, N) in [0, 1]: asphalt, grass, paving grain
    clouds: np.ndarray  # (CLOUD_H, CLOUD_W) in [0, 1], indexed by azimuth and elevation
    mottle: np.ndarray  # (H, W) in [-1, 1]: screen-space illumination unevenness

    @classmethod
    def draw(cls, rng: np.random.Generator, style: Style, *, width: int, height: int) -> Textures:
        # Fine speckle plus coarse blotches (patched asphalt, worn grass).
        fine = style.grain_fine
        grain = fine * rng.random((128, 128)).astype(np.float32) + (1 - fine) * _smooth_noise(rng, (128, 128), 3.0)
        clouds = _smooth_noise(rng, (48, 256), 12)
        mottle = _smooth_noise(rng, (height, width), max(4.0, width / 12)) * 2 - 1
        return cls(grain=grain, clouds=clouds, mottle=mottle)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    field_ = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), sigma)
    lo, hi = field_.min(), field_.max()
    return (field_ - lo) / max(hi - lo, 1e-6)


CLOUD_AZIMUTH = 1.6  # radians covered by the cloud texture's width, each side of straight ahead
CLOUD_ELEVATION = 0.7


def render_frame(scene: Scene, street: Street, camera: CameraPath, style: Style, textures: Textures,
                 n: int, *, width: int, height: int, exposure: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``n``: (RGB uint8 (H, W, 3), scene classes uint8 (H, W))."""
    pose = camera.pose(n)
    geo = FrameGeometry.at(pose, width=width, height=height)
    ground = geo.down > 1e-3
    t = np.where(ground, camera.height / np.maximum(geo.down, 1e-3), 0.0)
    gx, gz = pose.x + t * geo.dx, pose.z + t * geo.dz
    ids = _ground_ids(np.abs(gx), ground, street)
    _rasterise(scene, n, pose, geo, ids, camera.height)
    classes = scene.prim_cls[ids]
    rgb = scene.prim_rgb[ids]
    kind = scene.prim_kind[ids]
    _shade_ground(rgb, ids, gx, gz, street, style, textures)
    _shade_planes(rgb, ids, kind, scene, pose, geo, camera.height, style)
    _shade_sky(rgb, ids, pose, geo, style, textures)
    if style.ego_hood:
        hood = _hood_mask(width, height)
        classes[hood] = SceneClass.EGO_VEHICLE
        rgb[hood] = _hood_colour(style, hood.shape)[hood]
    image = _finish(rgb, style, textures, exposure=exposure * (1 + style.flicker * rng.normal()), rng=rng)
    return image, classes


def _ground_ids(abs_x: np.ndarray, ground: np.ndarray, street: Street) -> np.ndarray:
    ids = np.where(abs_x < street.road_half, ROAD_ID,
                   np.where(abs_x < street.road_half + street.sidewalk, SIDEWALK_ID, TERRAIN_ID))
    return np.where(ground, ids, SKY_ID).astype(np.int32)


# Metres per texel of the grain texture on each ground class (finer on asphalt).
_GRAIN_SCALE = np.array([1.0, 9.0, 6.0, 4.0], np.float64)


def _shade_ground(rgb: np.ndarray, ids: np.ndarray, gx: np.ndarray, gz: np.ndarray, street: Street,
                  style: Style, textures: Textures) -> None:
    """Grain, lane markings, zebra crossings, paving joints and kerbs, in world coordinates."""
    rows = np.flatnonzero(((ids >= ROAD_ID) & (ids <= TERRAIN_ID)).any(1))
    if not len(rows):
        return
    below = slice(rows.min(), None)  # work on the rows that show ground only
    ids, rgb = ids[below], rgb[below]
    gx, gz = gx[below].astype(np.float32), gz[below].astype(np.float32)
    is_ground = (ids >= ROAD_ID) & (ids <= TERRAIN_ID)
    road, sidewalk, terrain = ids == ROAD_ID, ids == SIDEWALK_ID, ids == TERRAIN_ID
    scale = _GRAIN_SCALE[np.where(is_ground, ids, 0)].astype(np.float32)
    n = textures.grain.shape[0]
    grain = textures.grain[(gz * scale).astype(np.int64) % n, (gx * scale).astype(np.int64) % n]
    strength = np.where(terrain, np.float32(1.8 * style.texture), np.float32(style.texture))
    shade = np.where(is_ground, 1 + strength * (grain - 0.5), np.float32(1.0))
    ax = np.abs(gx)
    joints = sidewalk & ((np.mod(gx, 0.9) < 0.06) | (np.mod(gz, 0.9) < 0.06))
    shade[joints] *= 0.8
    rgb *= shade[..., None]
    paint = road & (((ax < 0.08) & (np.mod(gz, 9.0) < 4.0))
                    | ((ax > street.road_half - 0.35) & (ax < street.road_half - 0.22)))
    for zc in street.crosswalks:
        paint |= road & (gz > zc) & (gz < zc + 3.0) & (np.mod(gx, 1.0) < 0.5)
    kerb = sidewalk & (ax < street.road_half + 0.18)
    for mask, colour in ((paint, style.marking), (kerb, style.kerb)):
        if mask.any():
            rgb[mask] = np.asarray(colour, np.float32) / 255 * (0.9 + 0.2 * grain[mask, None])


def _shade_planes(rgb: np.ndarray, ids: np.ndarray, kind: np.ndarray, scene: Scene, pose: Pose,
                  geo: FrameGeometry, cam_height: float, style: Style) -> None:
    """Windows on facades and slats on fences, from where each pixel's ray meets the plane x = const."""
    for plane_kind in (Kind.FACADE, Kind.FENCE):
        mask = kind == plane_kind
        if not mask.any():
            continue
        params = scene.prim_param[ids[mask]]
        dx = geo.dx[mask]
        t = (params[:, 0] - pose.x) / np.where(np.abs(dx) < 1e-6, 1e-6, dx)
        t = np.maximum(t, 0)
        z = pose.z + t * geo.dz[mask]
        y = cam_height - t * geo.down[mask]
        colour = rgb[mask]
        if plane_kind is Kind.FACADE:
            z0, pitch_z, pitch_y, fill_z, fill_y, ground_floor, top = params[:, 1:8].T
            along = np.mod(z - z0, pitch_z) / pitch_z
            up = np.mod(y - ground_floor, pitch_y) / pitch_y
            window = ((np.abs(along - 0.5) < fill_z / 2) & (up > 0.2) & (up < 0.2 + fill_y)
                      & (y > ground_floor) & (y < top - 0.8))
            # Each window column reflects a little differently.
            column = np.floor((z[window] - z0[window]) / pitch_z[window])
            glass = np.asarray(style.window, np.float32) / 255
            colour[window] = glass * (0.85 + 0.3 * np.mod(column * 0.37, 1.0))[:, None]
            colour[np.abs(y - ground_floor) < 0.25] *= 0.8  # a cornice above the shop fronts
        else:
            pitch, top = params[:, 1], params[:, 2]
            colour[np.mod(z, pitch) / pitch < 0.35] *= 0.6
            colour[y > top - 0.1] *= 1.15
        rgb[mask] = colour


def _shade_sky(rgb: np.ndarray, ids: np.ndarray, pose: Pose, geo: FrameGeometry, style: Style,
               textures: Textures) -> None:
    """A vertical gradient with clouds fixed in the world (they pan with the camera's yaw)."""
    mask = ids == SKY_ID
    rows = np.flatnonzero(mask.any(1))
    if not len(rows):
        return
    top_row = rows.max() + 1
    elevation = np.clip(-geo.down[:top_row, 0], 0, None)
    blend = np.clip(elevation / 0.5, 0, 1)[:, None, None].astype(np.float32)
    top, horizon = (np.asarray(c, np.float32) / 255 for c in (style.sky_top, style.sky_horizon))
    gradient = horizon * (1 - blend) + top * blend
    h, w = textures.clouds.shape
    azimuth = pose.yaw + np.arctan(geo.xr)
    col = ((azimuth / CLOUD_AZIMUTH + 1) / 2 * (w - 1)).astype(np.int64).clip(0, w - 1)
    row = (elevation / CLOUD_ELEVATION * (h - 1)).astype(np.int64).clip(0, h - 1)
    cover = np.clip((textures.clouds[row[:, None], col[None, :]] - (1 - style.cloud_amount)) * 2.5, 0, 1)
    sky = gradient * (1 - cover[..., None]) + np.asarray(style.cloud, np.float32) / 255 * cover[..., None]
    part = rgb[:top_row]
    np.copyto(part, sky, where=mask[:top_row, :, None])


@lru_cache(maxsize=8)
def _vignette(width: int, height: int, strength: float) -> np.ndarray:
    yy, xx = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    out = (1 - strength * 0.5 * (xx ** 2 + yy ** 2)).astype(np.float32)
    out.setflags(write=False)  # shared by every frame through the cache
    return out


@lru_cache(maxsize=8)
def _hood_mask(width: int, height: int) -> np.ndarray:
    """The bonnet of the target car: a flat arc across the bottom rows."""
    x = (np.arange(width) - (width - 1) / 2) / (width * 0.62)
    top = height * (1 - 0.09 * np.clip(1 - x ** 2, 0, 1))
    mask = np.arange(height)[:, None] >= top[None, :]
    mask.setflags(write=False)  # shared by every frame through the cache
    return mask


def _hood_colour(style: Style, shape: tuple[int, int]) -> np.ndarray:
    height = shape[0]
    ramp = np.linspace(1.3, 0.7, height, dtype=np.float32)[:, None, None]
    return np.broadcast_to(np.asarray(style.hood, np.float32) / 255 * ramp, (*shape, 3))


def _finish(rgb: np.ndarray, style: Style, textures: Textures, *, exposure: float,
            rng: np.random.Generator) -> np.ndarray:
    """Sensor and post-processing: white balance, saturation, contrast, vignette, blur, noise."""
    height, width = rgb.shape[:2]
    img = rgb * np.asarray(style.cast, np.float32) * exposure
    if style.mottle:
        img *= (1 + style.mottle * textures.mottle)[..., None]
    grey = img.mean(axis=2, keepdims=True)
    img = grey + style.saturation * (img - grey)
    img = (img - 0.5) * style.contrast + 0.5
    if style.vignette:
        img *= _vignette(width, height, style.vignette)[..., None]
    img = np.clip(img, 0, 1) ** style.gamma
    if style.blur_sigma:
        img = cv2.GaussianBlur(img, (0, 0), style.blur_sigma * width / 256)
    img = img * 255
    if style.noise_sigma:
        # Luminance grain at half resolution (demosaiced and compressed footage has no
        # pixel-independent noise; it also keeps the PNGs small).
        half = rng.normal(0, style.noise_sigma, ((height + 1) // 2, (width + 1) // 2)).astype(np.float32)
        img += cv2.resize(half, (width, height), interpolation=cv2.INTER_LINEAR)[..., None]
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# --- one sequence, start to end -------------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """Consecutive frames of one drive rendered as one scene; ``labels`` are the frames to label."""

    frames: range
    labels: tuple[int, ...]


@dataclass(frozen=True)
class Job:
    """One drive: a source sequence or a target (city, sequence) with one or more snippets."""

    domain: Domain
    split: str
    sequence: int
    windows: tuple[Window, ...]
    city: str = ""


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


_DOMAIN_KEY = {Domain.SOURCE: 1, Domain.TARGET: 2}
_SPLIT_KEY = {"train": 1, "val": 2, "test": 3}
_PLAN_KEY = 7


def _job_rng(seed: int, job: Job, city_index: int) -> np.random.Generator:
    return _rng(seed, _DOMAIN_KEY[job.domain], _SPLIT_KEY[job.split], city_index, job.sequence)


def run_job(job: Job, *, seed: int, spec: SyntheticSpec, root: str, city_index: int = 0) -> int:
    """Render and write every frame of ``job``; returns the number of files written."""
    style = STYLES[job.domain]
    rng = _job_rng(seed, job, city_index)
    street = _draw_street(rng)
    camera = _draw_camera(rng, street, style, height=spec.height)
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
            written += _write_frame(job, n, image, classes, labelled=n in window.labels, spec=spec, root=Path(root))
    return written


def _write_frame(job: Job, n: int, image: np.ndarray, classes: np.ndarray, *, labelled: bool,
                 spec: SyntheticSpec, root: Path) -> int:
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone gives 0600


def _write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_image(path: Path, rgb: np.ndarray) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if path.suffix == ".jpg" else []
    ok, buf = cv2.imencode(path.suffix, rgb[..., ::-1], params)
    if not ok:
        raise DatasetError(f"cannot encode {path}")
    _write_bytes(path, buf.tobytes())


_VIPER_PALETTE_FLAT = [c for rgb in VIPER_PALETTE for c in rgb]


def _write_palette_png(path: Path, ids: np.ndarray) -> None:
    """A VIPER label: mode "P", palette index = VIPER id, palette = VIPER's class colours."""
    from PIL import Image

    image = Image.fromarray(ids.astype(np.uint8))
    image.putpalette(_VIPER_PALETTE_FLAT)
    buf = BytesIO()
    image.save(buf, format="PNG")
    _write_bytes(path, buf.getvalue())


# --- planning -------------------------------------------------------------------------------------------------
def plan_jobs(spec: SyntheticSpec, *, seed: int) -> list[tuple[Job, int]]:
    """Every drive of a generation with its city index (the key of its random stream)."""
    jobs: list[tuple[Job, int]] = []
    for split in SOURCE_SPLITS:
        every = range(spec.source_frames)
        labels = tuple(n for n in every if n % spec.source_label_step == 0)
        for seq in range(1, spec.source_sequences(split) + 1):
            jobs.append((Job(Domain.SOURCE, split, seq, (Window(every, labels),)), 0))
    for split in TARGET_SPLITS:
        jobs.extend(_plan_target_split(split, spec.target_snippets(split), seed=seed))
    return jobs


def _plan_target_split(split: str, n_snippets: int, *, seed: int) -> list[tuple[Job, int]]:
    cities = TARGET_CITIES[split]
    per_city = [len(range(i, n_snippets, len(cities))) for i in range(len(cities))]
    jobs = []
    for city_index, ((city, rule), count) in enumerate(zip(cities, per_city)):
        rng = _rng(seed, _DOMAIN_KEY[Domain.TARGET], _SPLIT_KEY[split], city_index, _PLAN_KEY)
        for seq, anchors in enumerate(_anchor_groups(rng, rule, count)):
            windows = tuple(Window(range(a - SNIPPET_BEFORE, a + SNIPPET_AFTER + 1), (a,)) for a in anchors)
            jobs.append((Job(Domain.TARGET, split, seq, windows, city=city), city_index))
    return jobs


def _anchor_groups(rng: np.random.Generator, rule: AnchorRule, count: int) -> list[tuple[int, ...]]:
    """Annotated frame numbers per sequence: all 19 (FIXED), or up to 3 arbitrary ones per sequence."""
    if rule is AnchorRule.FIXED:
        return [(SNIPPET_BEFORE,)] * count
    groups = []
    while count > 0:
        size = min(count, int(rng.integers(1, 4)))
        anchor = int(rng.integers(40, 400))
        anchors = []
        for _ in range(size):
            anchors.append(anchor)
            anchor += int(rng.integers(SNIPPET_LENGTH + 10, 500))
        groups.append(tuple(anchors))
        count -= size
    return groups


# --- the whole benchmark -------------------------------------------------------------------------------------
def make_synthetic(root: str | os.PathLike, *, seed: int = 0, spec: SyntheticSpec | None = None,
                   workers: int | None = None) -> Path:
    """Generate the benchmark under ``root`` (replacing an earlier synthetic one); returns ``root``."""
    spec = spec or SyntheticSpec()
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    root = Path(root)
    _clear_previous(root)
    root.mkdir(parents=True, exist_ok=True)
    _write_bytes(root / IN_PROGRESS_FILE, b"generation started; SYNTHETIC_INFO.json is written last\n")
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
    _write_bytes(root / INFO_FILE, json.dumps(info, indent=2).encode())
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


# --- command line --------------------------------------------------------------------------------------------
def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 256x128, got {text!r}") from None
    return width, height


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="make_synthetic.py",
        description="Write the synthetic benchmark: ROOT/source (VIPER layout), ROOT/target "
                    "(Cityscapes-Seq layout, train/val/test) and ROOT/SYNTHETIC_INFO.json.")
    d = SyntheticSpec()
    p.add_argument("root", help="output folder (an earlier synthetic benchmark there is replaced)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=_parse_size, default=(d.width, d.height), help="WIDTHxHEIGHT (default 256x128)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every sequence/snippet count")
    for name in ("source_train_sequences", "source_val_sequences", "source_frames", "source_label_step",
                 "target_train_snippets", "target_val_snippets", "target_test_snippets"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    p.add_argument("--source-ext", choices=("jpg", "png"), default=d.source_ext)
    p.add_argument("--workers", type=int, default=None, help="processes (default: up to 2)")
    p.add_argument("--if-missing", action="store_true",
                   help="do nothing when ROOT already holds a complete benchmark of this seed and spec")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    counts = {f.name: getattr(args, f.name) for f in fields(SyntheticSpec) if hasattr(args, f.name)}
    spec = SyntheticSpec(width=args.size[0], height=args.size[1], **counts)
    if args.scale != 1.0:
        spec = spec.scaled(args.scale)
    start = time.perf_counter()
    if args.if_missing and is_complete(args.root, seed=args.seed, spec=spec):
        print(f"{args.root}: complete synthetic benchmark (seed {args.seed}) already there")
        return 0
    root = make_synthetic(args.root, seed=args.seed, spec=spec, workers=args.workers)
    info = read_info(root)
    size_mb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2 ** 20
    for domain, splits in info["splits"].items():
        for split, c in splits.items():
            print(f"{domain:6s} {split:5s}: {c['sequences']:3d} sequences, {c['frames']:5d} frames, "
                  f"{c['labelled']:4d} labelled")
    print(f"wrote {info['files']} files ({size_mb:.1f} MB) to {root} in {time.perf_counter() - start:.1f} s")
    return 0
