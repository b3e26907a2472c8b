"""The world's data: a street's cross-section, and the primitives, polygons and spheres of a scene.

Coordinates are metres: x to the right of the street's centre line, y up from the road, z along
the street. ``SceneBuilder`` collects shapes object by object; ``Scene`` holds them as flat arrays
for the per-frame transforms of ``raster``.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple, Sequence

import numpy as np

from pipa_video.synthetic.spec import SceneClass
from pipa_video.synthetic.style import RGB, Style

SIDES = (-1, 1)  # left and right of the street


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


def draw_street(rng: np.random.Generator) -> Street:
    """A random street: road and sidewalk widths, parking, verge and how densely it is built."""
    road_half = float(rng.uniform(3.5, 7.0))
    return Street(road_half=road_half, sidewalk=float(rng.uniform(1.8, 3.6)),
                  parking=road_half >= PARKED_ROAD_HALF, verge=float(rng.choice([0.0, rng.uniform(1.0, 4.0)])),
                  building_prob=float(rng.uniform(0.55, 0.95)), tree_prob=float(rng.uniform(0.2, 0.8)),
                  fence_prob=float(rng.uniform(0.0, 0.5)))


def lane_centre(street: Street) -> float:
    """Lateral position of the camera's lane (right-hand traffic); the oncoming lane mirrors it."""
    return (street.road_half - (PARKING_WIDTH if street.parking else 0.0)) / 2



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
        """A new primitive of class ``cls`` and 0..255 colour ``rgb``; ``params`` (up to N_PARAMS)
        feed its ``kind``'s shading pass. Returns its id."""
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
        """A new object at ``center`` (metres) bounding ``radius``, moving ``vel`` metres per frame,
        legs swinging at ``gait`` = (radians per frame, phase). Returns its id."""
        self.obj_center.append(np.asarray(center, np.float64))
        self.obj_vel.append(np.asarray(vel, np.float64))
        self.obj_gait.append(gait)
        self.obj_layer.append(int(layer))
        self.obj_radius.append(float(radius))
        return len(self.obj_center) - 1

    def poly(self, obj: int, prim: int, verts: np.ndarray, *, normal: Sequence[float] = (0, 0, 0),
             swing: np.ndarray | None = None, detail: Detail = Detail.ALWAYS) -> None:
        """A flat polygon: ``verts`` (k, 3) metres; ``swing`` (k, 3) displacement at full gait."""
        verts = np.asarray(verts, np.float64)
        swing = np.zeros_like(verts) if swing is None else np.asarray(swing, np.float64)
        self.polys.append(_Poly(verts, swing, prim, obj, np.asarray(normal, np.float64), self._order, int(detail)))
        self._order += 1

    def sphere(self, obj: int, prim: int, center: Sequence[float], radius: float, *,
               detail: Detail = Detail.ALWAYS) -> None:
        """A sphere (drawn as a disc) at ``center`` with ``radius``, metres."""
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
        """The collected shapes as a ``Scene``."""
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
        """Flatten a builder's shapes into arrays (vertices of every polygon back to back)."""
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
