"""One frame: ground, rasterised scene, shading (grain, markings, windows, sky) and the sensor.

``render_frame`` returns the RGB image and the scene-class map of frame ``n``; the domain's
``Style`` decides the look (palette, sun, grain, blur, noise, vignette, bonnet).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from pipa_video.synthetic.camera import CameraPath, FrameGeometry, Pose
from pipa_video.synthetic.raster import rasterise
from pipa_video.synthetic.scene import ROAD_ID, SIDEWALK_ID, SKY_ID, TERRAIN_ID, Kind, Scene, Street
from pipa_video.synthetic.spec import SceneClass
from pipa_video.synthetic.style import Style


@dataclass(frozen=True)
class Textures:
    """Per-sequence random fields sampled by the shading passes (so they move with the world)."""

    grain: np.ndarray  # (N, N) in [0, 1]: asphalt, grass, paving grain
    clouds: np.ndarray  # (CLOUD_H, CLOUD_W) in [0, 1], indexed by azimuth and elevation
    mottle: np.ndarray  # (H, W) in [-1, 1]: screen-space illumination unevenness

    @classmethod
    def draw(cls, rng: np.random.Generator, style: Style, *, width: int, height: int) -> Textures:
        """The textures of one drive; ``width`` x ``height`` is the frame size in pixels."""
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
    rasterise(scene, n, pose, geo, ids, camera.height)
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
