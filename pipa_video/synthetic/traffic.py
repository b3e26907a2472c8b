"""What moves in a street: vehicles (cars, trucks, buses), two-wheelers with riders, and pedestrians.

Movers keep a constant velocity in metres per frame from the scene's reference frame; people also
swing their legs (a gait phase per person). Distances are metres (see ``scene`` for the axes).
"""
from __future__ import annotations

import math
from enum import Enum

import numpy as np

from pipa_video.synthetic.camera import CameraPath
from pipa_video.synthetic.scene import PARKING_WIDTH, SIDES, Detail, SceneBuilder, Street, lane_centre
from pipa_video.synthetic.spec import SceneClass

class VehicleKind(str, Enum):
    """A vehicle's body (``VEHICLE_MIX`` gives their shares in traffic)."""

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


def add_vehicles(b: SceneBuilder, street: Street, camera: CameraPath, z_lo: float, z_hi: float,
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


def add_pedestrians(b: SceneBuilder, street: Street, side: int, z_lo: float, z_hi: float) -> None:
    """People standing or walking along the sidewalk of ``side`` (-1 left, +1 right) between ``z_lo`` and ``z_hi``."""
    rng = b.rng
    z = z_lo + rng.uniform(0, 10)
    while z < z_hi:
        z += rng.uniform(6, 30)
        x = side * (street.road_half + rng.uniform(0.4, street.sidewalk - 0.3))
        walking = rng.random() < 0.8
        vz = rng.choice([-1, 1]) * rng.uniform(0.05, 0.1) if walking else 0.0
        _add_person(b, x, z, (0.0, float(vz)))


def add_crossing_pedestrians(b: SceneBuilder, street: Street, camera: CameraPath, frames: range) -> None:
    """A few people crossing the road ahead, so movers also cross the image horizontally."""
    rng = b.rng
    for _ in range(int(rng.integers(0, 3))):
        z = camera.pose(frames.start).z + rng.uniform(15, 50) + camera.speed * len(frames)
        x = rng.uniform(-street.road_half, street.road_half)
        _add_person(b, x, z, (float(rng.choice([-1, 1]) * rng.uniform(0.05, 0.09)), 0.0))

