"""Populating a street: ``build_scene`` and the static furniture (ground, buildings, trees, poles, fences).

Every random draw goes through the one generator passed in, in a fixed order, so a seed gives the
same scene on every run. Distances are metres (see ``scene`` for the axes).
"""
from __future__ import annotations

import math
from enum import Enum

import numpy as np

from pipa_video.synthetic.camera import CameraPath
from pipa_video.synthetic.scene import (
    ROAD_ID, SIDES, SIDEWALK_ID, SKY_ID, TERRAIN_ID, Detail, Kind, Layer, Scene, SceneBuilder, Street,
)
from pipa_video.synthetic.spec import SceneClass
from pipa_video.synthetic.style import Style
from pipa_video.synthetic.traffic import add_crossing_pedestrians, add_pedestrians, add_vehicles

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
        add_pedestrians(b, street, side, z_lo, z_hi)
    add_vehicles(b, street, camera, z_lo, z_hi, frames)
    add_crossing_pedestrians(b, street, camera, frames)
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
    """What stands on a pole by the kerb."""

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
