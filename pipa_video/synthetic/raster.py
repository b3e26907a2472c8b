"""Rasterisation: every visible polygon and sphere of a scene into a map of primitive ids, far to near.

Objects move by their velocity from the scene's reference frame; shapes crossing the near plane are
clipped; small objects switch to their far level of detail; OpenCV fills polygons and discs in
fixed point (``camera.SHIFT`` sub-pixel bits).
"""
from __future__ import annotations

import cv2
import numpy as np

from pipa_video.synthetic.camera import NEAR, SHIFT, FIXED_ONE, FrameGeometry, Pose, clip_near, project, to_camera
from pipa_video.synthetic.scene import LOD_PIXELS, Layer, Scene

MIN_PIXELS = 0.35  # objects projecting smaller than this are not drawn


def rasterise(scene: Scene, n: int, pose: Pose, geo: FrameGeometry, ids: np.ndarray, cam_height: float) -> None:
    """Draw every visible polygon and sphere into ``ids`` (primitive ids), far to near."""
    dt = n - scene.ref_frame
    gait = np.sin(scene.obj_gait[:, 0] * n + scene.obj_gait[:, 1])
    cam_centers = to_camera(scene.obj_center + scene.obj_vel * dt, pose, cam_height)
    depth = cam_centers[:, 2]
    lateral_limit = (ids.shape[1] / 2 / geo.focal) * np.maximum(depth, 0) + scene.obj_radius
    visible = ((depth + scene.obj_radius > NEAR) & (np.abs(cam_centers[:, 0]) < lateral_limit + 1)
               & (scene.obj_radius * geo.focal > MIN_PIXELS * np.maximum(depth, NEAR)))

    # Level of detail by the object's projected radius.
    near = scene.obj_radius * geo.focal >= LOD_PIXELS * np.maximum(depth, NEAR)
    lod_ok = np.array([np.ones_like(near), near, ~near])  # indexed by Detail, then object

    # Polygons: move, cull back faces and whatever is behind the camera, project in one go.
    verts = scene.verts + scene.obj_vel[scene.vert_obj] * dt + scene.swing * gait[scene.vert_obj, None]
    cam = to_camera(verts, pose, cam_height)
    zmax = np.maximum.reduceat(cam[:, 2], scene.poly_start)
    zmin = np.minimum.reduceat(cam[:, 2], scene.poly_start)
    eye = np.array([pose.x, cam_height, pose.z])
    facing = np.einsum("pk,pk->p", scene.poly_normal, eye - verts[scene.poly_start]) > 0
    facing |= ~scene.poly_normal.any(1)  # double-sided
    poly_idx = np.flatnonzero(visible[scene.poly_obj] & lod_ok[scene.poly_detail, scene.poly_obj]
                              & facing & (zmax > NEAR))
    screen = project(cam, geo)
    ends = np.append(scene.poly_start[1:], len(verts))

    # Spheres project to discs.
    sph = to_camera(scene.sph_center + scene.obj_vel[scene.sph_obj] * dt, pose, cam_height)
    sph_r = geo.focal * scene.sph_radius / np.maximum(sph[:, 2], NEAR)
    sph_idx = np.flatnonzero(visible[scene.sph_obj] & lod_ok[scene.sph_detail, scene.sph_obj]
                             & (sph[:, 2] > NEAR + scene.sph_radius) & (sph_r >= MIN_PIXELS))
    sph_xy = project(sph, geo)
    sph_r = np.rint(sph_r * FIXED_ONE).astype(np.int64)

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
                clipped = clip_near(cam[starts[item]:stops[item]])
                if clipped is None:
                    continue
                pts = project(clipped, geo)
            else:
                pts = screen[starts[item]:stops[item]]
            cv2.fillPoly(ids, [pts], prims[item], cv2.LINE_8, SHIFT)
        else:
            x, y, r, prim = discs[item - n_poly]
            cv2.circle(ids, (x, y), r, prim, -1, cv2.LINE_8, SHIFT)
