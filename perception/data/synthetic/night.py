"""Night (:class:`~.scene.Night`): the light that street lamps and the ego vehicle's low beams add to
a night frame, and the glow of the lamps themselves.

Only the image changes: the codes, and so every label, are the day frame's (a lamp's halo over the
sky is still sky, as in a real labelled night frame).

- Light: every street lamp is a point light under its head, brightest straight down; the low beams
  are two point lights in front of the camera, brightest just below the horizon and fading
  sideways. Each adds ``intensity * cos / distance²`` to the shade of what it reaches (no shadows:
  see docs/synthetic-data.md, Limits), computed on every second pixel (light varies slowly) and
  resized.
- Glow: the faces of lamp parts (street lamp heads, lit signal lamps) and the head and tail lamps
  of the vehicles in ``Night.lit`` (discs on their lamp parts' outer faces, z-tested, so a car
  facing away shows red and an oncoming one white) are emissive, and so are the façade panes
  lit from inside (:mod:`.surfaces`, ``Night.windows`` of them); a narrow bloom and a wide, faint
  halo (lens glare) spread them.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from perception.data.synthetic.geometry import level_to_camera, thing_to_level
from perception.data.synthetic.scene import Night, Scene

STREET_CUTOFF = 0.2  # a street lamp's light sideways and up, relative to straight down
BEAM_HEIGHT, BEAM_AHEAD, BEAM_APART = 0.7, 1.5, 0.65  # metres: the low beams relative to the camera
LAMP_LIGHT = {"head": np.array([1.0, 0.95, 0.85]), "tail": np.array([1.0, 0.12, 0.08])}
LAMP_RADIUS = 0.11  # metres, a vehicle lamp's disc
LAMP_GLOW = {"street": 900.0, "signal": 500.0}  # grey levels a lamp part's faces add (saturated cores)
VEHICLE_GLOW = {"head": 1200.0, "tail": 500.0}
WINDOW_RGB = np.array([1.0, 0.8, 0.55])  # a room's warm light through a pane
WINDOW_GLOW = 110.0  # grey levels a lit pane of mean brightness adds
STREET_REACH = 70.0  # metres
MAX_SHADE = 1.5  # the most lamp light a surface gets (a knee, not a clip): about a sunny face's


def street_lamps(scene: Scene, reach: float) -> np.ndarray:
    """Level-frame positions [N, 3] of the street lamps within ``reach`` metres of the camera's
    view (the ground under one 60 m away gets about 1 % of its light)."""
    points = []
    for thing in scene.things:
        for part in thing.parts:
            if part.light == "street":
                centre = np.array([[(part.lo[0] + part.hi[0]) / 2, part.lo[1] - 0.05, (part.lo[2] + part.hi[2]) / 2]])
                points.append(thing_to_level(thing.x, thing.z, thing.yaw, centre, scene.camera.height_m)[0])
    lamps = np.array(points).reshape(-1, 3)
    near = (lamps[:, 2] > -reach / 3) & (np.hypot(lamps[:, 0], lamps[:, 2]) < reach)
    return lamps[near]


def _beam_pattern(tx: np.ndarray, ty: np.ndarray, tz: np.ndarray) -> np.ndarray:
    """Low-beam intensity along unit directions (level frame, y down): a sharp cut just above the
    horizon, the peak just below it, a weak spill near the car, fading sideways."""
    up = -ty
    ahead = np.maximum(tz, np.float32(1e-3))
    side = np.arctan2(tx, ahead)
    vertical = np.exp(-np.square((up + np.float32(0.015)) / np.float32(0.03)))
    vertical += np.float32(0.08) * np.exp(-np.square((up + np.float32(0.06)) / np.float32(0.05)))  # the near road
    cut = np.float32(1.0) / (np.float32(1.0) + np.exp(np.minimum((up - np.float32(0.005)) / np.float32(0.004), 50)))
    across = np.exp(-np.square(side / np.float32(0.4))) + np.float32(0.1) * np.exp(-np.square(side / np.float32(1.0)))
    return vertical * cut * across * (tz > 0)


def lamp_shade(scene: Scene, m: np.ndarray, codes: np.ndarray, zbuf: np.ndarray,
               normals: np.ndarray) -> np.ndarray:  # fmt: skip
    """float32 [H, W, 3]: the shade the night's lamps add to every pixel (0 on the sky and the bonnet).
    ``m`` maps pixels to rays (:func:`.geometry.pixel_to_level`), ``normals`` [C, 3] is each code's
    surface normal in the level frame."""
    night: Night = scene.night
    height, width = codes.shape
    us = np.arange(0, width, 2, dtype=np.float32)
    vs = np.arange(0, height, 2, dtype=np.float32)
    zinv = zbuf[::2, ::2]
    hit = zinv > 0
    z = np.where(hit, np.float32(1.0) / np.maximum(zinv, np.float32(1e-6)), np.float32(0.0))
    px, py, pz = ((np.float32(r[0]) * us + np.float32(r[1]) * vs[:, None] + np.float32(r[2])) * z for r in m)
    n = np.take(normals.astype(np.float32), codes[::2, ::2], axis=0)
    shade = np.zeros((len(vs), len(us), 3), np.float32)
    h = scene.camera.height_m
    sources = [(p, night.street, np.asarray(night.street_rgb), False) for p in street_lamps(scene, STREET_REACH)]
    beams = [np.array([x, h - BEAM_HEIGHT, BEAM_AHEAD]) for x in (-BEAM_APART, BEAM_APART)]
    sources += [(p, night.beams, LAMP_LIGHT["head"], True) for p in beams]
    for pos, intensity, rgb, beam in sources:
        dx, dy, dz = (np.float32(pos[i]) - p for i, p in enumerate((px, py, pz)))
        d2 = np.maximum(dx * dx + dy * dy + dz * dz, np.float32(0.25))
        inv = np.float32(1.0) / np.sqrt(d2)
        cos = np.maximum((n[..., 0] * dx + n[..., 1] * dy + n[..., 2] * dz) * inv, np.float32(0.0))
        if beam:  # the direction from the lamp to the point is -(dx, dy, dz)
            # not Lambertian: asphalt seen and lit at grazing angles sends much of the beam back
            power = _beam_pattern(-dx * inv, -dy * inv, -dz * inv) * (np.float32(0.6) + np.float32(0.4) * cos)
        else:
            down = np.maximum(-dy * inv, np.float32(0.0))  # the point is below the lamp
            power = (np.float32(STREET_CUTOFF) + np.float32(1 - STREET_CUTOFF) * down) * cos
        shade += (power * np.float32(intensity) / d2 * hit)[..., None] * rgb.astype(np.float32)
    shade = np.float32(MAX_SHADE) * (np.float32(1.0) - np.exp(shade * np.float32(-1.0 / MAX_SHADE)))  # soft knee
    return cv2.resize(shade, (width, height), interpolation=cv2.INTER_LINEAR)


def vehicle_lamps(scene: Scene) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(level-frame position, RGB, glow) of the head and tail lamps of the vehicles in ``Night.lit``:
    the middle of each lamp part's outer face."""
    lamps = []
    for i in scene.night.lit:
        thing = scene.things[i]
        for part in thing.parts:
            if part.light not in VEHICLE_GLOW:
                continue
            outer = part.hi[2] if part.light == "head" else part.lo[2]
            local = np.array([[(part.lo[0] + part.hi[0]) / 2, (part.lo[1] + part.hi[1]) / 2, outer]])
            (point,) = thing_to_level(thing.x, thing.z, thing.yaw, local, scene.camera.height_m)
            lamps.append((point, LAMP_LIGHT[part.light], VEHICLE_GLOW[part.light]))
    return lamps


def glow(
    scene: Scene,
    codes: np.ndarray,
    zbuf: np.ndarray,
    emission: np.ndarray,
    windows: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """float32 [H, W, 3] grey levels the lamps add: the lamp parts' faces (``emission`` [C, 3] per
    code), the vehicle lamps' discs and the lit windows (``windows``: flat pixel indices and how lit
    each is, from :func:`.surfaces.surface_gain`), with bloom and glare."""
    height, width = codes.shape
    cam, night = scene.camera, scene.night
    light = np.zeros((height, width, 3), np.float32)
    lit = np.flatnonzero(np.take(emission.any(1), codes))
    light.reshape(-1, 3)[lit] = emission[codes.reshape(-1)[lit]]
    if windows is not None:
        idx, amount = windows
        seen = amount * np.exp(np.float32(-scene.effects.fog_density) / np.maximum(zbuf.reshape(-1)[idx], 1e-6))
        light.reshape(-1, 3)[idx] += seen[:, None] * (WINDOW_RGB * WINDOW_GLOW).astype(np.float32)
    for pos, rgb, strength in vehicle_lamps(scene):
        p = level_to_camera(cam, pos)
        if p[2] < 1.0:
            continue
        u, v = cam.fx * p[0] / p[2] + cam.cx, cam.fy * p[1] / p[2] + cam.cy
        iu, iv = round(float(u)), round(float(v))
        if not (0 <= iu < width and 0 <= iv < height):
            continue
        surface = 1.0 / zbuf[iv, iu] if zbuf[iv, iu] > 0 else math.inf
        if p[2] > surface + 0.3 + 0.02 * p[2]:  # something nearer, or the vehicle's own other end, hides it
            continue
        radius = LAMP_RADIUS * cam.fx / p[2]
        colour = rgb * strength * min(1.0, radius * radius) * math.exp(-scene.effects.fog_density * p[2])
        centre = (round(float(u) * 16), round(float(v) * 16))
        cv2.circle(light, centre, round(max(float(radius), 0.5) * 16), colour.tolist(), -1, cv2.LINE_AA, 4)
    sigma = max(width / 400.0, 0.7)
    bloom = cv2.GaussianBlur(light, (0, 0), sigma)
    small = cv2.resize(light, (max(width // 4, 1), max(height // 4, 1)), interpolation=cv2.INTER_AREA)
    halo = cv2.GaussianBlur(small, (0, 0), max(width / 200.0, 1.0))
    halo = cv2.resize(halo, (width, height), interpolation=cv2.INTER_LINEAR)
    return light * np.float32(0.5) + bloom * np.float32(0.5) + halo * np.float32(night.glare * 4.0)


def emission_table(scene: Scene, parts: list, n_codes: int, face0: int) -> np.ndarray:
    """float32 [C, 3]: what each code's pixels emit at night (lamp parts' faces; 0 elsewhere)."""
    table = np.zeros((n_codes, 3), np.float32)
    for pi, (_, part) in enumerate(parts):
        if part.light == "street":
            rgb = np.asarray(scene.night.street_rgb) * LAMP_GLOW["street"]
        elif part.light == "signal":
            rgb = np.asarray(part.rgb) / 255.0 * LAMP_GLOW["signal"]
        else:
            continue
        table[face0 + 6 * pi : face0 + 6 * pi + 6] = rgb
    return table
