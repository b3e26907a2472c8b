"""Rasterisation: every visible polygon and sphere of a scene into a map of primitive ids, far to near.

Objects move by their velocity from the scene's reference frame; shapes crossing the near plane are
clipped; small objects switch to their far level of detail; OpenCV fills polygons and discs in
fixed point (``camera.SHIFT`` sub-pixel bits).
"""
from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from pipa_video.synthetic.camera import FIXED_ONE, NEAR, SHIFT, FrameGeometry, Pose, clip_near, project, to_camera
from pipa_video.synthetic.scene import LOD_PIXELS, Layer, Scene

MIN_PIXELS = 0.35  # objects projecting smaller than this are not drawn


def rasterise(scene: Scene, n: int, pose: Pose, geo: FrameGeometry, ids: np.ndarray, cam_height: float) -> None:
    """Draw every visible polygon and sphere of frame ``n`` into ``ids``, far to near.

    ``ids``: (H, W) int32 primitive ids, already holding the sky and ground; ``pose`` and ``geo``:
    the frame's camera; ``cam_height``: the camera's height above the road, metres.
    """
    dt = n - scene.ref_frame
    depth, drawn = _drawn_objects(scene, dt, pose, geo, cam_height, width=ids.shape[1])
    polygons = _polygons(scene, n, dt, pose, geo, cam_height, drawn)
    discs = _discs(scene, dt, pose, geo, cam_height, drawn)
    obj = np.concatenate([scene.poly_obj[polygons.idx], scene.sph_obj[discs.idx]])
    order = np.concatenate([scene.poly_order[polygons.idx], scene.sph_order[discs.idx]])
    # Buildings sort by their near end (world z), so a facade reaching behind the camera is nearest.
    key = np.where(scene.obj_layer[obj] == Layer.BUILDING, -scene.obj_center[obj, 2], -depth[obj])
    sequence = np.lexsort((order, key, scene.obj_layer[obj]))
    _fill(ids, sequence.tolist(), polygons, discs.items, geo)


def _drawn_objects(scene: Scene, dt: int, pose: Pose, geo: FrameGeometry, cam_height: float, *,
                   width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per object: the depth of its centre (O,) metres, and which parts are drawn (3, O) bool,
    indexed by ``Detail`` then object (in view, and at the level of detail of its projected radius)."""
    cam_centers = to_camera(scene.obj_center + scene.obj_vel * dt, pose, cam_height)
    depth = cam_centers[:, 2]
    lateral_limit = (width / 2 / geo.focal) * np.maximum(depth, 0) + scene.obj_radius
    visible = ((depth + scene.obj_radius > NEAR) & (np.abs(cam_centers[:, 0]) < lateral_limit + 1)
               & (scene.obj_radius * geo.focal > MIN_PIXELS * np.maximum(depth, NEAR)))
    near = scene.obj_radius * geo.focal >= LOD_PIXELS * np.maximum(depth, NEAR)
    lod_ok = np.array([np.ones_like(near), near, ~near])
    return depth, lod_ok & visible


class _Polygons(NamedTuple):
    """The polygons to draw (plain lists: the drawing loop only feeds OpenCV)."""

    idx: np.ndarray  # (p,) polygon indices
    cam: np.ndarray  # (V, 3) camera-space vertices of every polygon, metres
    screen: np.ndarray  # (V, 2) int32 their fixed-point pixel coordinates
    starts: list[int]  # per drawn polygon: its vertices are cam[start:stop]
    stops: list[int]
    prims: list[int]
    clip: list[bool]  # crosses the near plane


def _polygons(scene: Scene, n: int, dt: int, pose: Pose, geo: FrameGeometry, cam_height: float,
              drawn: np.ndarray) -> _Polygons:
    """Move the polygons to frame ``n``, cull back faces and whatever is behind the camera, project."""
    gait = np.sin(scene.obj_gait[:, 0] * n + scene.obj_gait[:, 1])
    verts = scene.verts + scene.obj_vel[scene.vert_obj] * dt + scene.swing * gait[scene.vert_obj, None]
    cam = to_camera(verts, pose, cam_height)
    zmax = np.maximum.reduceat(cam[:, 2], scene.poly_start)
    zmin = np.minimum.reduceat(cam[:, 2], scene.poly_start)
    eye = np.array([pose.x, cam_height, pose.z])
    facing = np.einsum("pk,pk->p", scene.poly_normal, eye - verts[scene.poly_start]) > 0
    facing |= ~scene.poly_normal.any(1)  # double-sided
    idx = np.flatnonzero(drawn[scene.poly_detail, scene.poly_obj] & facing & (zmax > NEAR))
    ends = np.append(scene.poly_start[1:], len(verts))
    return _Polygons(idx=idx, cam=cam, screen=project(cam, geo), starts=scene.poly_start[idx].tolist(),
                     stops=ends[idx].tolist(), prims=scene.poly_prim[idx].tolist(),
                     clip=(zmin[idx] < NEAR).tolist())


class _Discs(NamedTuple):
    idx: np.ndarray  # (s,) sphere indices
    items: list[tuple[int, int, int, int]]  # per drawn sphere: fixed-point x, y, radius; primitive id


def _discs(scene: Scene, dt: int, pose: Pose, geo: FrameGeometry, cam_height: float, drawn: np.ndarray) -> _Discs:
    """Spheres project to discs: the visible ones, wholly in front of the near plane."""
    sph = to_camera(scene.sph_center + scene.obj_vel[scene.sph_obj] * dt, pose, cam_height)
    sph_r = geo.focal * scene.sph_radius / np.maximum(sph[:, 2], NEAR)
    idx = np.flatnonzero(drawn[scene.sph_detail, scene.sph_obj]
                         & (sph[:, 2] > NEAR + scene.sph_radius) & (sph_r >= MIN_PIXELS))
    sph_xy = project(sph, geo)
    sph_r = np.rint(sph_r * FIXED_ONE).astype(np.int64)
    return _Discs(idx, list(zip(sph_xy[idx, 0].tolist(), sph_xy[idx, 1].tolist(), sph_r[idx].tolist(),
                                scene.sph_prim[idx].tolist())))


def _fill(ids: np.ndarray, sequence: list[int], polygons: _Polygons, discs: list[tuple[int, int, int, int]],
          geo: FrameGeometry) -> None:
    """Fill polygons (items below their count) and discs (the rest) into ``ids`` in ``sequence``."""
    n_poly = len(polygons.starts)
    for item in sequence:
        if item < n_poly:
            start, stop = polygons.starts[item], polygons.stops[item]
            if polygons.clip[item]:  # crosses the near plane: clip it first
                clipped = clip_near(polygons.cam[start:stop])
                if clipped is None:
                    continue
                pts = project(clipped, geo)
            else:
                pts = polygons.screen[start:stop]
            cv2.fillPoly(ids, [pts], polygons.prims[item], cv2.LINE_8, SHIFT)
        else:
            x, y, r, prim = discs[item - n_poly]
            cv2.circle(ids, (x, y), r, prim, -1, cv2.LINE_8, SHIFT)
