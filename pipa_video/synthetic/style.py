"""The look of each domain: palette, sun, surface grain and sensor (the domain shift lives here).

The source ("game") and the target ("camera") share one scene generator; only these parameters
differ, so a model trained on the source loses accuracy on the target while the target stays
learnable from shape and layout.
"""
from __future__ import annotations

from dataclasses import dataclass

from pipa_video.synthetic.spec import Domain

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
