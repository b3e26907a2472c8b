"""The car-mounted camera: its drive (trajectory, panning, bobbing) and the pinhole projection.

World coordinates are metres (x right, y up, z along the street); camera coordinates are metres
with x right, y down, z forward; image coordinates are pixels with pixel centres at integers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipa_video.synthetic.scene import Street, lane_centre
from pipa_video.synthetic.style import Style

NEAR = 0.3  # metres: polygons are clipped here
FOCAL_PER_WIDTH = 0.75  # focal length in pixels per image width: a 67 degree horizontal view
SHIFT = 4  # sub-pixel bits of the fixed-point pixel coordinates (OpenCV's polygon filling)
FIXED_ONE = 1 << SHIFT  # one pixel in fixed point


@dataclass(frozen=True)
class Pose:
    """Where the camera is at one frame: position (metres), heading and principal point row (pixels)."""

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
        """The camera at frame ``n`` (any integer: target snippets start far into a drive)."""
        angle = 2 * math.pi * n / self.yaw_period + self.yaw_phase
        return Pose(x=self.x + self.sway * math.sin(0.7 * angle),
                    z=self.z0 + self.speed * n,
                    yaw=self.yaw_bias + self.yaw_amp * math.sin(angle),
                    cy=self.cy + self.bob * math.sin(1.9 * n))


def draw_camera(rng: np.random.Generator, street: Street, style: Style, *, height: int) -> CameraPath:
    """A random drive in the camera's lane of ``street``; ``height`` is the image height in pixels."""
    return CameraPath(
        height=float(rng.uniform(1.3, 1.7)), x=lane_centre(street), z0=0.0,
        speed=float(rng.uniform(0.25, 0.8)), yaw_bias=float(rng.uniform(-0.04, 0.04)),
        yaw_amp=float(rng.uniform(0.01, 0.07)), yaw_period=float(rng.uniform(40, 120)),
        yaw_phase=float(rng.uniform(0, 2 * math.pi)), sway=float(rng.uniform(0.0, 0.3)),
        cy=float(rng.uniform(*style.horizon)) * height, bob=float(rng.uniform(0.0, 0.004)) * height,
    )


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
        """The rays of a ``width`` x ``height`` pixel frame seen from ``pose``."""
        focal = FOCAL_PER_WIDTH * width
        cx = (width - 1) / 2
        xr = (np.arange(width, dtype=np.float64) - cx) / focal
        yr = (np.arange(height, dtype=np.float64) - pose.cy) / focal
        c, s = math.cos(pose.yaw), math.sin(pose.yaw)
        dx = np.broadcast_to(xr * c + s, (height, width))
        dz = np.broadcast_to(-xr * s + c, (height, width))
        down = np.broadcast_to(yr[:, None], (height, width))
        return cls(xr=xr, dx=dx, dz=dz, down=down, focal=focal, cx=cx, cy=pose.cy)


def to_camera(points: np.ndarray, pose: Pose, cam_height: float) -> np.ndarray:
    """World (N, 3) -> camera (N, 3): x right, y down, z forward."""
    rx, rz = points[:, 0] - pose.x, points[:, 2] - pose.z
    c, s = math.cos(pose.yaw), math.sin(pose.yaw)
    return np.stack([rx * c - rz * s, cam_height - points[:, 1], rx * s + rz * c], 1)


def clip_near(poly: np.ndarray) -> np.ndarray | None:
    """Sutherland-Hodgman clip of a camera-space polygon to z >= NEAR."""
    out = []
    for a, b in zip(poly, np.roll(poly, -1, axis=0)):
        if a[2] >= NEAR:
            out.append(a)
        if (a[2] >= NEAR) != (b[2] >= NEAR):
            out.append(a + (NEAR - a[2]) / (b[2] - a[2]) * (b - a))
    return np.array(out) if len(out) >= 3 else None


def project(cam: np.ndarray, geo: FrameGeometry) -> np.ndarray:
    """Camera-space points (N, 3) with z >= NEAR -> fixed-point pixel coordinates (N, 2) int32."""
    z = np.maximum(cam[:, 2], NEAR)
    screen = np.stack([geo.cx + geo.focal * cam[:, 0] / z, geo.cy + geo.focal * cam[:, 1] / z], 1)
    return np.clip(np.rint(screen * FIXED_ONE), -(1 << 26), 1 << 26).astype(np.int32)
