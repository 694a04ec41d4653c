"""Rendering a :class:`~.scene.Scene` to an image and exact labels.

Every pixel gets one *material code*: 0 sky, 1..7 ground materials (ordered by priority, so two
roads combine with a maximum), 8 the ego vehicle's bonnet and ``FACE0 + 6 * part + face`` for a box
face. Labels, colour and depth are all looked up from that one code map, so they cannot disagree.

- Ground: inverse depth on the ground plane is affine in (u, v) (see :mod:`.geometry`); from it come
  the world position of every ground pixel and, from the road's lateral offset and arc length, the
  road / curb / sidewalk / gravel / terrain cross-section and the lane markings.
- Boxes: each visible face is a convex polygon (``cv2.fillConvexPoly``) whose inverse depth is also
  affine in (u, v). Each thing is drawn into its own region (its parts ordered by separating planes)
  and then z-tested per pixel against the depth buffer, so occlusion between things is exact.
- Boxes of things come from their visible pixels (pixel-edge convention: a box (x1, y1, x2, y2)
  covers columns x1 .. x2 - 1); occlusion = 1 - visible / own pixels in the image; truncation =
  1 - (projected hull inside the image) / (whole projected hull).
- Bonnet: on some frames the ego vehicle's bonnet covers the bottom rows after the things are drawn,
  so it occludes them like any nearer surface: semantic IGNORE_INDEX, depth 0, no instance.
- Image: albedo x lighting per code, world-space ground texture, screen-space texture, façade
  windows and foliage in each face's own metres (:mod:`.surfaces`), sky gradient
  and clouds, sun shadows cast on the ground (each box's corners projected along the sun onto the
  ground, their convex hull filled, softened), on night frames the lamps' light and glow
  (:mod:`.night`), fog by depth, vignetting, sensor noise and blur. JPEG is applied by the caller.
  Shadows, night and the bonnet's paint change colours only, never a code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

import cv2
import numpy as np

from perception.classes import IGNORE_INDEX, seg_index
from perception.data.sample import Camera
from perception.data.synthetic.geometry import ground_inverse_depth, level_to_camera, pixel_to_level, thing_to_level
from perception.data.synthetic.night import emission_table, glow, lamp_shade
from perception.data.synthetic.scene import (
    BUS,
    CAR,
    CYCLIST,
    DASHED_STYLES,
    DOUBLE_YELLOW,
    NONE,
    PEDESTRIAN,
    TRUCK,
    VEHICLE_LABELS,
    YELLOW_STYLES,
    Bonnet,
    Box,
    Effects,
    Lighting,
    Road,
    Scene,
    Thing,
)
from perception.data.synthetic.surfaces import (
    FOLIAGE,
    FaceRows,
    Foliage,
    SurfaceDetail,
    Veil,
    cut_foliage,
    face_rows,
    surface_gain,
)

SKY, TERRAIN, GRAVEL, SIDEWALK, CURB, ROAD, WHITE, YELLOW, BONNET = range(9)
FACE0 = 9
# Semantics of the codes below FACE0: sky, the ground materials, the bonnet (ignored, as real data sets do).
GROUND_SEMANTIC = [seg_index(n) for n in ("sky", "terrain", "terrain", "sidewalk", "sidewalk", "road")]
GROUND_SEMANTIC += [seg_index("lane_marking")] * 2 + [IGNORE_INDEX]
GROUND_TEXTURE = [0.0, 0.35, 0.3, 0.12, 0.08, 0.16, 0.1, 0.1, 0.02]  # ... and the bonnet's paint
MATERIAL_NAMES = ["sky", "terrain", "gravel", "sidewalk", "curb", "road", "white", "yellow"]

MAX_DEPTH = 200.0  # metres; farther surfaces get depth 0 (invalid) but keep their semantics
SKY_LEVELS = 96  # quantisation of the sky gradient (hidden by noise)
NEAR = 0.3  # things with a corner closer than this (camera z) are not drawn
MIN_PIXELS, MIN_SIDE = 12, 3  # smaller things keep their semantics but get no box
STACKED = (CAR, TRUCK, BUS, PEDESTRIAN, CYCLIST)  # parts piled up: one shadow (hull of all parts) per thing
MIN_CASTER = 0.3  # metres; smaller parts of other things (signal lamps) cast no shadow of their own
MIN_DARKNESS = 0.05  # share of the ground's light that the sun must provide for shadows to be drawn
SHADOW_TINT = np.array([0.9, 1.0, 1.2])  # sky light in a full shadow, relative to sunlit ground (bluer)

# Box corners: bit 0 -> x, bit 1 -> y, bit 2 -> z (0 = lo, 1 = hi). Faces as corner loops.
CORNER_BITS = np.array([[(i >> 0) & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=bool)
FACES = np.array([[0, 2, 6, 4], [1, 3, 7, 5], [0, 1, 5, 4], [2, 3, 7, 6], [0, 1, 3, 2], [4, 5, 7, 6]])
NORMALS = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], dtype=np.float64)


@dataclass
class Frame:
    """What :func:`render` returns: the clean image (before JPEG) and its labels."""

    image: np.ndarray  # uint8 [H, W, 3] RGB
    semantic: np.ndarray  # uint8 [H, W]
    depth: np.ndarray  # float32 [H, W] metres, 0 invalid
    instance: np.ndarray  # int32 [H, W], 0 background, i + 1 = box i
    boxes: np.ndarray  # float32 [N, 4]
    labels: np.ndarray  # int64 [N]
    truncation: np.ndarray  # float32 [N]
    occlusion: np.ndarray  # float32 [N]
    camera: Camera
    jpeg_quality: int


# ----------------------------------------------------------------------------------------------
# What the passes of :func:`render` hand each other.


@dataclass(frozen=True)
class PixelGrid:
    """The pixel coordinates of the image and ``m`` (:func:`.geometry.pixel_to_level`), which turns them into rays."""

    m: np.ndarray
    us: np.ndarray  # float32 [W] column coordinates
    vs: np.ndarray  # float32 [H] row coordinates

    @classmethod
    def of(cls, scene: Scene) -> PixelGrid:
        us, vs = np.arange(scene.width, dtype=np.float32), np.arange(scene.height, dtype=np.float32)
        return cls(pixel_to_level(scene.camera), us, vs)


@dataclass(frozen=True)
class Raster:
    """The frame's material code and inverse depth per pixel, filled in place: the ground first, then
    every thing z-tested in; and what the ground pass found on the way."""

    codes: np.ndarray  # int32 [H, W]
    zbuf: np.ndarray  # float32 [H, W] inverse depth (1 / camera z), 0 where nothing is hit
    top: int  # first row that sees ground
    horizon: float  # lowest image row of the horizon (sub-pixel): rows above it may see sky
    tex_a: np.ndarray | None  # float32 [H - top, W] ground position along the main road (texture coordinate)
    tex_b: np.ndarray | None  # ... and across it; both None when no row sees ground


@dataclass(frozen=True)
class CodeTables:
    """Lookup tables indexed by material code (the ground materials, then ``FACE0 + 6 * part + face``)."""

    coef: np.ndarray  # float32 [C, 3] a face's inverse depth is coef . (u, v, 1); 0 for the ground
    semantic: np.ndarray  # uint8 [C]
    instance: np.ndarray  # int32 [C] raw instance id (1 + index among the labelled things), 0 none
    albedo: np.ndarray  # float64 [C, 3] RGB
    shade: np.ndarray  # float64 [C] lighting
    tex_amp: np.ndarray  # float32 [C] texture amplitude


@dataclass(frozen=True)
class PartGeometry:
    """Every box part of every thing placed and projected: P parts, 8 corners, 6 faces. The parts of
    one thing are consecutive."""

    owner: np.ndarray  # int [P] index of the part's thing
    lo: np.ndarray  # float64 [P, 3] box corners in the thing's frame
    hi: np.ndarray
    pc: np.ndarray  # [P, 8, 3] corners in camera coordinates
    pu: np.ndarray  # [P, 8] corners in pixels (those behind the near plane projected as if at NEAR)
    pv: np.ndarray
    level: np.ndarray  # [P, 8, 3] corners in the level frame (see :mod:`.geometry`)
    polys: np.ndarray  # int32 [P, 6, 4, 2] face polygons in 1/16 px
    normals: np.ndarray  # [P, 6, 3] face normals, world frame
    planes: np.ndarray  # [P, 6, 3] inverse-depth coefficients of each face (see CodeTables.coef)
    visible: list[list[bool]]  # [P][6] faces that look at the camera


@dataclass
class Instances:
    """Per labelled thing, indexed by raw instance id (index 0 unused): what drawing it found; and the
    veils of the bare crowns drawn on the way."""

    rois: dict[int, tuple[int, int, int, int]]  # the region (x0, y0, x1, y1) it was drawn into
    own: np.ndarray  # int64: its pixels before the z-test against other things
    truncation: np.ndarray  # float32
    veils: list[Veil]

    @classmethod
    def empty(cls, n_labelled: int) -> Instances:
        return cls({}, np.zeros(n_labelled + 1, np.int64), np.zeros(n_labelled + 1, np.float32), [])


@dataclass(frozen=True)
class Boxes:
    """The detection labels: one row per box, and ``final`` mapping raw instance ids to box numbers."""

    final: np.ndarray  # int32 [labelled + 1]: 1 + box index, 0 for things that got no box
    boxes: np.ndarray  # float32 [N, 4]
    labels: np.ndarray  # int64 [N]
    truncation: np.ndarray  # float32 [N]
    occlusion: np.ndarray  # float32 [N]


@dataclass(frozen=True)
class BonnetPixels:
    """Where the bonnet covers the frame: rows ``y0`` and below."""

    y0: int
    edge: np.ndarray  # float32 [W] :func:`bonnet_edge`
    mask: np.ndarray  # bool [H - y0, W]
    below: np.ndarray  # float32 [H - y0, W] rows below its edge, in units of the bonnet's height


@dataclass(frozen=True)
class Shading:
    """What image formation needs besides the scene."""

    raster: Raster
    tables: CodeTables
    grid: PixelGrid
    shadows: np.ndarray | None  # uint8 [H, W] contact shadows under vehicles, or None
    sun_shadows: np.ndarray | None = None  # uint8 [H, W] cast shadows (255 full, softened edges), or None
    bonnet: BonnetPixels | None = None
    surface: SurfaceDetail | None = None  # windows and foliage
    night: tuple[np.ndarray, np.ndarray] | None = None  # (shade the lamps add, glow) [H, W, 3] (:mod:`.night`)


# ----------------------------------------------------------------------------------------------
# Fixed textures, made once per process from a fixed seed (so rendering stays deterministic).


def _periodic_noise(rng: np.random.Generator, size: int, falloff: float) -> np.ndarray:
    """Tileable noise with a 1/f^falloff spectrum, scaled to zero mean and unit std."""
    f = np.fft.fftfreq(size)
    radius = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    radius[0, 0] = 1.0
    spectrum = np.fft.fft2(rng.standard_normal((size, size))) / radius**falloff
    spectrum[0, 0] = 0.0
    noise = np.real(np.fft.ifft2(spectrum))
    return ((noise - noise.mean()) / noise.std()).astype(np.float32)


@lru_cache(maxsize=1)
def ground_texture() -> np.ndarray:
    rng = np.random.default_rng(1234)
    return 0.5 * _periodic_noise(rng, 256, 1.0) + 0.5 * rng.standard_normal((256, 256)).astype(np.float32)


@lru_cache(maxsize=4)
def screen_fields(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(texture [H+256, W+256], sensor noise [H+64, W+64], vignette falloff [H, W]) for a size."""
    rng = np.random.default_rng(5678)
    tile = 0.8 * _periodic_noise(rng, 256, 0.8) + 0.2 * rng.standard_normal((256, 256)).astype(np.float32)
    reps = (-(-(height + 256) // 256), -(-(width + 256) // 256))
    texture = np.ascontiguousarray(np.tile(tile, reps)[: height + 256, : width + 256])
    noise = rng.standard_normal((height + 64, width + 64)).astype(np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xs - width / 2) ** 2 + (ys - height / 2) ** 2) / ((width / 2) ** 2 + (height / 2) ** 2)
    return texture, noise, r2.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Ground.


def _affine(row: np.ndarray, us: np.ndarray, vs: np.ndarray) -> np.ndarray:
    """row . (u, v, 1) over the pixel grid, float32 [len(vs), len(us)]."""
    return (np.float32(row[0]) * us)[None, :] + (np.float32(row[1]) * vs + np.float32(row[2]))[:, None]


def _cross_section(road: Road, d: np.ndarray) -> np.ndarray:
    """Material code of each lateral offset (road, curb, sidewalk, gravel shoulder, terrain)."""
    left, right, c, w, sh = road.left_edge, road.right_edge, road.curb, road.sidewalk, road.shoulder
    breaks = np.array(
        [
            -(left + c + w + sh),
            -(left + c + w),
            -(left + c),
            -left,
            right,
            right + c,
            right + c + w,
            right + c + w + sh,
        ],
        dtype=np.float32,
    )
    codes = np.array([TERRAIN, GRAVEL, SIDEWALK, CURB, ROAD, CURB, SIDEWALK, GRAVEL, TERRAIN], dtype=np.int32)
    index = np.zeros(d.shape, np.uint8)
    for edge in breaks:  # cheaper than searchsorted for a handful of breaks
        index += d > edge
    return np.take(codes, index, mode="clip")


def _markings(road: Road, a: np.ndarray, b: np.ndarray, d: np.ndarray, allowed: np.ndarray, out: np.ndarray) -> None:
    """Paint this road's lane lines (solid / dashed / double, white / yellow) into ``out``."""
    n_lines = road.lanes_left + road.lanes_right
    half = road.marking_width / 2
    q = (d + np.float32(road.lanes_left * road.lane_width)) * np.float32(1.0 / road.lane_width)
    k = np.rint(q)
    dist = np.abs(q - k) * np.float32(road.lane_width)
    cand = (dist < road.marking_width + 0.1) & allowed & (k >= 0) & (k <= n_lines)
    idx = np.flatnonzero(cand)
    if idx.size == 0:
        return
    styles = np.asarray(road.styles, dtype=np.int32)[k.flat[idx].astype(np.int32)]
    dd = dist.flat[idx]
    on = np.where(styles == DOUBLE_YELLOW, np.abs(dd - (half + 0.07)) < half, dd < half) & (styles != NONE)
    dashed = np.isin(styles, DASHED_STYLES)
    if dashed.any():
        s = road.arc(a.flat[idx], b.flat[idx])
        on &= ~dashed | (np.mod(s - road.dash_phase, road.dash_period) < road.dash_length)
    out.flat[idx[on]] = np.where(np.isin(styles[on], YELLOW_STYLES), YELLOW, WHITE)


def _ground(scene: Scene, m: np.ndarray, zinv: np.ndarray, us: np.ndarray, vs: np.ndarray):
    """Material codes and world-space texture coordinates of the ground rows ``vs``."""
    t = 1.0 / np.maximum(zinv, np.float32(1e-4))  # metres along the ray (camera z), capped far away
    codes, parts = [], []
    for road in scene.roads:
        sh, ch = np.sin(road.heading), np.cos(road.heading)
        a = _affine(m[0] * sh + m[2] * ch, us, vs) * t - np.float32(road.x0 * sh + road.z0 * ch)
        b = _affine(m[0] * ch - m[2] * sh, us, vs) * t - np.float32(road.x0 * ch - road.z0 * sh)
        d = road.lateral(a, b)
        mat = _cross_section(road, d)
        if road.curvature != 0.0:
            mat[~road.ahead(a, b)] = TERRAIN
        parts.append((a, b, d))
        codes.append(mat)
    main_d = parts[0][2]
    if len(codes) == 2 and scene.roads[1].side_of != 0:
        codes[1][main_d * scene.roads[1].side_of <= 0] = TERRAIN
    combined = codes[0] if len(codes) == 1 else np.maximum(codes[0], codes[1])
    for i, (road, (a, b, d)) in enumerate(zip(scene.roads, parts, strict=True)):
        allowed = codes[i] == ROAD
        if len(codes) == 2:
            other = codes[1 - i]
            allowed &= other < SIDEWALK
            if scene.setting != "rural":  # zebra crossings where the other road's sidewalk would be
                zebra = np.flatnonzero((codes[i] == ROAD) & ((other == SIDEWALK) | (other == CURB)))
                stripes = np.mod(d.flat[zebra], 1.2) < 0.6
                combined.flat[zebra[stripes]] = WHITE
        _markings(road, a, b, d, allowed, combined)
    combined[zinv <= 0] = SKY
    return combined, parts[0][0], parts[0][1]


def _ground_raster(scene: Scene, grid: PixelGrid) -> Raster:
    """Ground inverse depth (0 where the ray misses the ground), the first row that sees ground, and
    the ground's material codes; things are drawn into it later."""
    height, width, cam = scene.height, scene.width, scene.camera
    g = ground_inverse_depth(cam)
    zbuf = np.maximum(_affine(g, grid.us, grid.vs), np.float32(0.0))
    horizon = max(-(g[2] + g[0] * u) / g[1] for u in (0.0, width - 1.0))
    top = int(np.clip(np.floor(min(-(g[2] + g[0] * u) / g[1] for u in (0.0, width - 1.0))), 0, height))
    codes = np.zeros((height, width), np.int32)
    tex_a = tex_b = None
    if top < height:
        codes[top:], tex_a, tex_b = _ground(scene, grid.m, zbuf[top:], grid.us, grid.vs[top:])
    return Raster(codes, zbuf, top, horizon, tex_a, tex_b)


# ----------------------------------------------------------------------------------------------
# Things.


def _paint_order(lo: np.ndarray, hi: np.ndarray, eye: np.ndarray) -> list[int]:
    """Back-to-front order of a thing's non-overlapping boxes, from separating planes."""
    n = len(lo)
    if n == 1:
        return [0]
    lo_l, hi_l, eye_l = lo.tolist(), hi.tolist(), eye.tolist()
    after: list[list[int]] = [[] for _ in range(n)]  # after[i]: boxes that must be painted after i
    blockers = [0] * n  # how many boxes must be painted before i
    for i in range(n):
        for j in range(i + 1, n):
            for ax in range(3):
                if hi_l[i][ax] <= lo_l[j][ax] + 1e-6:
                    i_front = eye_l[ax] < hi_l[i][ax]
                elif hi_l[j][ax] <= lo_l[i][ax] + 1e-6:
                    i_front = eye_l[ax] > lo_l[i][ax]
                else:
                    continue
                back, front = (j, i) if i_front else (i, j)
                after[back].append(front)
                blockers[front] += 1
                break
    dist = (((lo + hi) / 2 - eye) ** 2).sum(1).tolist()
    order, left = [], set(range(n))
    while left:
        ready = [i for i in left if blockers[i] == 0] or list(left)  # a cycle cannot happen; be safe
        pick = max(ready, key=dist.__getitem__)
        order.append(pick)
        left.remove(pick)
        for k in after[pick]:
            blockers[k] -= 1
    return order


def _shade(scene: Scene, normals_world: np.ndarray) -> np.ndarray:
    light = scene.lighting
    sun = np.asarray(light.sun)
    return light.ambient * (0.75 + 0.25 * normals_world[..., 1]) + light.sun_strength * np.maximum(
        normals_world @ sun, 0.0
    )


def _part_geometry(scene: Scene, grid: PixelGrid, parts: list[tuple[int, Box]]) -> PartGeometry:
    """Box geometry for all parts at once: corners in the world, the camera and the image; faces'
    normals, planes and visibility. ``parts`` is (thing index, box) for every part, not empty."""
    cam = scene.camera
    owner = np.array([ti for ti, _ in parts])
    lo = np.array([p.lo for _, p in parts], np.float64)
    hi = np.array([p.hi for _, p in parts], np.float64)
    yaw = np.array([scene.things[ti].yaw for ti in owner])
    pos = np.array([(scene.things[ti].x, scene.things[ti].z) for ti in owner])
    local = np.where(CORNER_BITS[None], hi[:, None], lo[:, None])  # [P, 8, 3]
    cy, sy = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    wx = pos[:, :1] + local[..., 0] * cy + local[..., 2] * sy
    wz = pos[:, 1:] - local[..., 0] * sy + local[..., 2] * cy
    level = np.stack([wx, cam.height_m - local[..., 1], wz], -1)
    pc = level_to_camera(cam, level)
    safe_z = np.maximum(pc[..., 2], NEAR)  # corners behind the near plane only matter through _clip_near
    pu, pv = cam.fx * pc[..., 0] / safe_z + cam.cx, cam.fy * pc[..., 1] / safe_z + cam.cy
    polys = np.round(np.stack([pu[:, FACES], pv[:, FACES]], -1) * 16).astype(np.int32, order="C")
    nw = np.stack(
        [
            NORMALS[None, :, 0] * cy + NORMALS[None, :, 2] * sy,
            np.broadcast_to(NORMALS[:, 1], (len(parts), 6)),
            -NORMALS[None, :, 0] * sy + NORMALS[None, :, 2] * cy,
        ],
        -1,
    )
    nl = nw * np.array([1.0, -1.0, 1.0])
    offset = (level[:, FACES[:, 0]] * nl).sum(-1)  # [P, 6]; < 0 where the face looks at the camera
    visible = offset < -1e-9
    planes = (nl @ grid.m) / np.where(visible, offset, -1.0)[..., None]
    return PartGeometry(owner, lo, hi, pc, pu, pv, level, polys, nw, planes, visible.tolist())


def _code_tables(
    scene: Scene, parts: list[tuple[int, Box]], geometry: PartGeometry | None, raw_id: dict[int, int]
) -> CodeTables:
    """The per-code tables: ground materials from the scene, then six faces per part."""
    n_codes = FACE0 + 6 * len(parts)
    light = scene.lighting
    coef = np.zeros((n_codes, 3), np.float32)
    semantic = np.zeros(n_codes, np.uint8)
    semantic[:FACE0] = GROUND_SEMANTIC
    instance = np.zeros(n_codes, np.int32)
    albedo = np.zeros((n_codes, 3), np.float64)
    for i, name in enumerate(MATERIAL_NAMES[1:], start=1):
        albedo[i] = scene.materials[name]
    shade = np.zeros(n_codes, np.float64)
    shade[1:FACE0] = light.ambient + light.sun_strength * max(light.sun[1], 0.0)
    if scene.bonnet is not None:
        albedo[BONNET] = scene.bonnet.rgb
        shade[BONNET] = light.ambient + 0.6 * light.sun_strength
    tex_amp = np.zeros(n_codes, np.float32)
    tex_amp[:FACE0] = GROUND_TEXTURE
    tex_amp[SKY] = light.clouds  # the sky's texture is its clouds
    if geometry is not None:
        coef[FACE0:] = geometry.planes.reshape(-1, 3)
        shade[FACE0:] = _shade(scene, geometry.normals).reshape(-1)
        albedo[FACE0:] = np.repeat(np.array([p.rgb for _, p in parts], np.float64), 6, axis=0)
        semantic[FACE0:] = np.repeat(np.array([p.sem for _, p in parts], np.uint8), 6)
        tex_amp[FACE0:] = np.repeat(np.array([p.texture for _, p in parts], np.float32), 6)
        part_inst = [raw_id.get(ti, 0) if p.instance else 0 for ti, p in parts]
        instance[FACE0:] = np.repeat(np.array(part_inst, np.int32), 6)
        for pi, (_, p) in enumerate(parts):
            for f, rgb in (p.faces or {}).items():
                albedo[FACE0 + 6 * pi + f] = rgb
    return CodeTables(coef, semantic, instance, albedo, shade, tex_amp)


def _draw_things(
    scene: Scene,
    grid: PixelGrid,
    geometry: PartGeometry,
    tables: CodeTables,
    rows: FaceRows,
    raster: Raster,
    raw_id: dict[int, int],
) -> Instances:
    """Draw each thing into its own region (parts back to front, foliage cut ragged), z-test it into
    ``raster``, and measure the labelled ones."""
    width, height, cam = scene.width, scene.height, scene.camera
    found = Instances.empty(len(raw_id))
    pu, pv, pz = geometry.pu, geometry.pv, geometry.pc[..., 2]
    first = np.flatnonzero(np.diff(geometry.owner, prepend=-1))
    bounds = [*first.tolist(), len(geometry.owner)]  # each thing's parts
    # Per-thing extent in the image and in depth, to skip things out of view cheaply.
    t_umin, t_umax = np.minimum.reduceat(pu.min(1), first), np.maximum.reduceat(pu.max(1), first)
    t_vmin, t_vmax = np.minimum.reduceat(pv.min(1), first), np.maximum.reduceat(pv.max(1), first)
    t_zmin, t_zmax = np.minimum.reduceat(pz.min(1), first), np.maximum.reduceat(pz.max(1), first)
    for n, (start, stop) in enumerate(pairwise(bounds)):
        ti = int(geometry.owner[start])
        if t_zmax[n] < NEAR:
            continue  # wholly behind the camera
        clipped = None
        if t_zmin[n] < NEAR:  # partly behind the camera: clip each face at the near plane
            clipped = _clip_faces(geometry, start, stop, cam)
            if not clipped:
                continue
            pts = np.concatenate(list(clipped.values()))
            umin, vmin = pts.min(0)
            umax, vmax = pts.max(0)
        else:
            umin, umax, vmin, vmax = t_umin[n], t_umax[n], t_vmin[n], t_vmax[n]
        x0, x1 = max(int(np.floor(umin)), 0), min(int(np.ceil(umax)) + 1, width)
        y0, y1 = max(int(np.floor(vmin)), 0), min(int(np.ceil(vmax)) + 1, height)
        if x0 >= x1 or y0 >= y1:
            continue
        region = (x0, y0, x1, y1)
        roi = _paint_thing(scene.things[ti], cam, geometry, start, stop, region, clipped)
        if (rows.kind[FACE0 + 6 * start : FACE0 + 6 * stop] >= FOLIAGE).any():
            veil = cut_foliage(roi, (x0, y0), tables.coef, rows, cam.fx)
            if veil is not None:
                found.veils.append(veil)
        _z_test(raster, tables.coef, grid, roi, region)
        if ti in raw_id:
            rid = raw_id[ti]
            found.rois[rid] = region
            found.own[rid] = np.count_nonzero(np.take(tables.instance, roi, mode="clip") == rid)
            if x0 == 0 or y0 == 0 or x1 == width or y1 == height:  # else wholly inside the image
                pts = _hull_points(geometry, tables, start, stop, clipped)
                found.truncation[rid] = _truncation(pts, width, height)
    return found


def _clip_faces(geometry: PartGeometry, start: int, stop: int, cam: Camera) -> dict[tuple[int, int], np.ndarray]:
    """Pixel polygons of the visible faces of parts ``start:stop`` clipped at the near plane, by
    (part - start, face); faces wholly behind it are left out."""
    clipped = {}
    for pi in range(start, stop):
        for f, seen in enumerate(geometry.visible[pi]):
            poly = _clip_near(geometry.pc[pi, FACES[f]], cam) if seen else None
            if poly is not None:
                clipped[pi - start, f] = poly
    return clipped


def _paint_thing(
    thing: Thing,
    cam: Camera,
    geometry: PartGeometry,
    start: int,
    stop: int,
    region: tuple[int, int, int, int],
    clipped: dict[tuple[int, int], np.ndarray] | None,
) -> np.ndarray:
    """The material codes of one thing (parts ``start:stop``) over ``region``, painted back to front."""
    x0, y0, x1, y1 = region
    c, s = math.cos(thing.yaw), math.sin(thing.yaw)
    eye = np.array([-thing.x * c + thing.z * s, cam.height_m, -thing.x * s - thing.z * c])  # in its frame
    roi = np.zeros((y1 - y0, x1 - x0), np.int32)
    origin = np.array([x0 * 16, y0 * 16], np.int32)
    local_polys = geometry.polys[start:stop] - origin
    for k in _paint_order(geometry.lo[start:stop], geometry.hi[start:stop], eye):
        pi = start + k
        for f, seen in enumerate(geometry.visible[pi]):
            if not seen:
                continue
            if clipped is None:
                poly = local_polys[k, f]
            elif (k, f) in clipped:
                poly = np.round(clipped[k, f] * 16).astype(np.int32) - origin
            else:
                continue
            cv2.fillConvexPoly(roi, poly, FACE0 + 6 * pi + f, cv2.LINE_8, 4)
    return roi


def _z_test(
    raster: Raster, coef: np.ndarray, grid: PixelGrid, roi: np.ndarray, region: tuple[int, int, int, int]
) -> None:
    """Write the codes and inverse depths of ``roi`` into ``raster`` where they are closer."""
    x0, y0, x1, y1 = region
    face_coef = np.take(coef, roi, axis=0, mode="clip")
    zi = face_coef[..., 0] * grid.us[x0:x1] + face_coef[..., 1] * grid.vs[y0:y1, None] + face_coef[..., 2]
    zview, cview = raster.zbuf[y0:y1, x0:x1], raster.codes[y0:y1, x0:x1]
    closer = (roi >= FACE0) & ((zi > zview) | (cview < FACE0))  # things stand on the ground, never behind it
    np.copyto(zview, zi, where=closer)
    np.copyto(cview, roi, where=closer)


def _hull_points(
    geometry: PartGeometry,
    tables: CodeTables,
    start: int,
    stop: int,
    clipped: dict[tuple[int, int], np.ndarray] | None,
) -> np.ndarray:
    """Projected corners (or clipped face polygons) of the parts of one thing that make its box."""
    keep = tables.instance[FACE0 + 6 * np.arange(start, stop)] > 0
    if clipped is None:
        return np.stack([geometry.pu[start:stop][keep].ravel(), geometry.pv[start:stop][keep].ravel()], -1)
    return np.concatenate([p for (k, _), p in clipped.items() if keep[k]] or [np.zeros((0, 2))])


def render(scene: Scene) -> Frame:
    """Render ``scene``; see the module docstring."""
    grid = PixelGrid.of(scene)
    raster = _ground_raster(scene, grid)
    parts = [(ti, p) for ti, thing in enumerate(scene.things) for p in thing.parts]
    labelled = [ti for ti, thing in enumerate(scene.things) if thing.label >= 0]
    raw_id = {ti: i + 1 for i, ti in enumerate(labelled)}
    geometry = _part_geometry(scene, grid, parts) if parts else None
    tables = _code_tables(scene, parts, geometry, raw_id)
    if geometry is None:
        found = Instances.empty(len(labelled))
    else:
        rows = face_rows(geometry.level, grid.m, [p.surface for _, p in parts], FACE0)
        found = _draw_things(scene, grid, geometry, tables, rows, raster, raw_id)
    bonnet = _paint_bonnet(scene, grid, raster)
    label_codes, label_zbuf = _veiled(raster, found.veils)
    boxes = _boxes(scene, label_codes, tables.instance, labelled, found)
    shadows = _contact_shadows(scene, scene.height, scene.width)
    sun_shadows, surface = None, None
    if geometry is not None:
        sun_shadows = _cast_shadows(scene, geometry, raster)
        lit_share = scene.night.windows if scene.night is not None else None
        surface = surface_gain(raster.codes, raster.zbuf, scene.camera.fx, rows, lit_share)
    lamps = _night(scene, grid, raster, tables, parts, geometry, surface) if scene.night is not None else None
    image = _shade_image(scene, Shading(raster, tables, grid, shadows, sun_shadows, bonnet, surface, lamps))
    return Frame(
        image=image,
        semantic=np.take(tables.semantic, label_codes, mode="clip"),
        depth=_metric_depth(label_zbuf),
        instance=np.take(boxes.final[tables.instance], label_codes, mode="clip"),
        boxes=boxes.boxes,
        labels=boxes.labels,
        truncation=boxes.truncation,
        occlusion=boxes.occlusion,
        camera=scene.camera,
        jpeg_quality=scene.effects.jpeg_quality,
    )


def _night(
    scene: Scene,
    grid: PixelGrid,
    raster: Raster,
    tables: CodeTables,
    parts: list,
    geometry: PartGeometry | None,
    surface: SurfaceDetail | None,
) -> tuple[np.ndarray, np.ndarray]:
    """What the night's lamps add (:mod:`.night`): the shade of every pixel and the glow of the lamps
    and the lit windows."""
    normals = np.zeros((len(tables.shade), 3))
    normals[1:FACE0] = (0.0, -1.0, 0.0)  # the ground faces up (level y points down)
    if geometry is not None:
        normals[FACE0:] = (geometry.normals * np.array([1.0, -1.0, 1.0])).reshape(-1, 3)
    shade = lamp_shade(scene, grid.m, raster.codes, raster.zbuf, normals)
    emission = emission_table(scene, parts, len(tables.shade), FACE0)
    windows = (surface.idx, surface.lit) if surface is not None and surface.lit is not None else None
    return shade, glow(scene, raster.codes, raster.zbuf, emission, windows)


# ----------------------------------------------------------------------------------------------
# Labels.


def _veiled(raster: Raster, veils: list[Veil]) -> tuple[np.ndarray, np.ndarray]:
    """The codes and inverse depths the labels read: the raster's, but where a bare crown's veil lies in
    front of what the image shows there, the crown's code and no depth (the sky and the street seen
    between its twigs are labelled part of the tree, as annotators draw one; a LiDAR's returns there
    mix twigs and what is behind, so no depth is claimed). Nearer veils win."""
    if not veils:
        return raster.codes, raster.zbuf
    v, u, code, zi = (np.concatenate([getattr(w, k) for w in veils]) for k in ("v", "u", "code", "zi"))
    order = np.argsort(zi, kind="stable")  # far to near: the nearest veil is written last
    v, u, code, zi = v[order], u[order], code[order], zi[order]
    behind = (raster.zbuf[v, u] < zi) & (raster.codes[v, u] != BONNET)
    codes, zbuf = raster.codes.copy(), raster.zbuf.copy()
    codes[v[behind], u[behind]] = code[behind]
    zbuf[v[behind], u[behind]] = 0.0
    return codes, zbuf


def _boxes(scene: Scene, codes: np.ndarray, inst_lut: np.ndarray, labelled: list[int], found: Instances) -> Boxes:
    """Boxes from visible pixels; small things keep their semantics but lose their instance."""
    code_counts = np.bincount(codes.ravel(), minlength=len(inst_lut))
    visible_px = np.bincount(inst_lut, weights=code_counts, minlength=len(labelled) + 1)
    final = np.zeros(len(labelled) + 1, np.int32)
    boxes, labels, trunc, occl = [], [], [], []
    for rid, (x0, y0, x1, y1) in found.rois.items():
        if visible_px[rid] < MIN_PIXELS:
            continue
        mask = (np.take(inst_lut, codes[y0:y1, x0:x1], mode="clip") == rid).astype(np.uint8)
        bx, by, bw, bh = cv2.boundingRect(mask)
        if min(bw, bh) < MIN_SIDE:
            continue
        final[rid] = len(boxes) + 1
        boxes.append((x0 + bx, y0 + by, x0 + bx + bw, y0 + by + bh))
        labels.append(scene.things[labelled[rid - 1]].label)
        trunc.append(found.truncation[rid])
        occl.append(max(0.0, 1.0 - visible_px[rid] / max(found.own[rid], 1)))
    return Boxes(
        final=final,
        boxes=np.array(boxes, np.float32).reshape(-1, 4),
        labels=np.array(labels, np.int64),
        truncation=np.array(trunc, np.float32),
        occlusion=np.array(occl, np.float32),
    )


def _metric_depth(zbuf: np.ndarray) -> np.ndarray:
    """Metres from inverse depth; 0 (invalid) for the sky and beyond MAX_DEPTH."""
    depth = np.zeros_like(zbuf)
    np.divide(np.float32(1.0), zbuf, out=depth, where=zbuf > np.float32(1.0 / MAX_DEPTH))
    return depth


def _contact_shadows(scene: Scene, height: int, width: int) -> np.ndarray | None:
    """uint8 mask of the ground under each vehicle's footprint (grown by 15 cm), or None."""
    cam, mask = scene.camera, None
    for thing in scene.things:
        if thing.label not in VEHICLE_LABELS:
            continue
        lo = np.min([p.lo for p in thing.parts], 0) - 0.15
        hi = np.max([p.hi for p in thing.parts], 0) + 0.15
        footprint = np.array([[lo[0], 0.0, lo[2]], [hi[0], 0.0, lo[2]], [hi[0], 0.0, hi[2]], [lo[0], 0.0, hi[2]]])
        level = thing_to_level(thing.x, thing.z, thing.yaw, footprint, cam.height_m)
        p = level_to_camera(cam, level)
        if p[:, 2].min() < NEAR:
            continue
        pts = np.stack([cam.fx * p[:, 0] / p[:, 2] + cam.cx, cam.fy * p[:, 1] / p[:, 2] + cam.cy], -1)
        if pts[:, 0].max() < 0 or pts[:, 0].min() >= width or pts[:, 1].max() < 0 or pts[:, 1].min() >= height:
            continue
        if mask is None:
            mask = np.zeros((height, width), np.uint8)
        cv2.fillConvexPoly(mask, np.round(pts * 16).astype(np.int32), 1, cv2.LINE_8, 4)
    return mask


# ----------------------------------------------------------------------------------------------
# The bonnet and sun shadows.


def bonnet_edge(bonnet: Bonnet, height: int, width: int) -> np.ndarray:
    """float32 [W]: the row of the bonnet's top edge in each column; pixel rows at or below it are bonnet."""
    x = (np.arange(width, dtype=np.float32) - np.float32(bonnet.centre * width)) / np.float32(width / 2)
    shape = np.float32(1.0 - bonnet.top) + (np.float32(bonnet.drop) * x + np.float32(bonnet.tilt)) * x
    return np.float32(height) * shape


def _paint_bonnet(scene: Scene, grid: PixelGrid, raster: Raster) -> BonnetPixels | None:
    """Cover the bottom rows with the bonnet's code and depth 0; after the things, so it hides them."""
    if scene.bonnet is None:
        return None
    edge = bonnet_edge(scene.bonnet, scene.height, scene.width)
    y0 = int(np.clip(np.ceil(edge.min()), 0, scene.height))
    if y0 >= scene.height:
        return None
    below = (grid.vs[y0:, None] - edge) / np.float32(scene.bonnet.top * scene.height)
    mask = below >= 0
    np.copyto(raster.codes[y0:], BONNET, where=mask)
    np.copyto(raster.zbuf[y0:], np.float32(0.0), where=mask)
    return BonnetPixels(y0, edge, mask, below)


def _sun_darkness(light: Lighting) -> float:
    """Share of the ground's light that comes straight from the sun, which a shadow takes away; 0
    without direct sun."""
    if not light.shadows or light.sun[1] <= 0.0:
        return 0.0
    direct = light.sun_strength * light.sun[1]
    return direct / (light.ambient + direct)


def _shadow_casters(scene: Scene, geometry: PartGeometry) -> list[tuple[int, int]]:
    """Part ranges that cast one shadow each: a whole vehicle or person (its parts are piled up, so
    the hull of their shadows is about their union), else each part of at least MIN_CASTER but bare
    crowns."""
    owner = geometry.owner.tolist()
    first = np.flatnonzero(np.diff(geometry.owner, prepend=-1)).tolist()
    big = ((geometry.hi - geometry.lo).max(1) >= MIN_CASTER).tolist()
    bare = [isinstance(p.surface, Foliage) and p.surface.bare for thing in scene.things for p in thing.parts]
    big = [b and not leafless for b, leafless in zip(big, bare, strict=True)]  # twigs cast no solid shadow
    casters = []
    for start, stop in pairwise([*first, len(owner)]):
        if scene.things[owner[start]].label in STACKED:
            casters.append((start, stop))
        else:
            casters.extend((pi, pi + 1) for pi in range(start, stop) if big[pi])
    return casters


def _near_shadow(ground: np.ndarray, cam: Camera) -> np.ndarray | None:
    """Pixel polygon of the hull of shadow points (level frame [..., 3], on the ground) clipped at the
    near plane; None where it lies wholly behind it."""
    hull = cv2.convexHull(ground[..., ::2].reshape(-1, 2).astype(np.float32))[:, 0].astype(np.float64)
    level = np.stack([hull[:, 0], np.full(len(hull), cam.height_m), hull[:, 1]], -1)
    return _clip_near(level_to_camera(cam, level), cam)


def _cast_shadows(scene: Scene, geometry: PartGeometry, raster: Raster) -> np.ndarray | None:
    """uint8 [H, W]: 255 on the ground that some caster hides from the sun, softened at the edges, 0
    elsewhere (also on everything that is not ground); None without direct sun. A caster's shadow is
    the convex hull of its corners projected along the sun onto the ground."""
    light, cam, height, width = scene.lighting, scene.camera, scene.height, scene.width
    if _sun_darkness(light) < MIN_DARKNESS or raster.top >= height:
        return None
    sx, sy, sz = light.sun
    up = cam.height_m - geometry.level[..., 1]  # height of each corner above the ground
    gx, gz = geometry.level[..., 0] - up * (sx / sy), geometry.level[..., 2] - up * (sz / sy)
    ground = np.stack([gx, np.full_like(gx, cam.height_m), gz], -1)
    pc = level_to_camera(cam, ground)
    z = np.maximum(pc[..., 2], NEAR)
    pix = np.stack([cam.fx * pc[..., 0] / z + cam.cx, cam.fy * pc[..., 1] / z + cam.cy], -1)  # [P, 8, 2]
    lo, hi = pix.min(1), pix.max(1)
    seen = ((hi[:, 0] >= 0) & (lo[:, 0] < width) & (hi[:, 1] >= raster.top) & (lo[:, 1] < height)).tolist()
    pix16 = np.round(pix * 16).astype(np.int32)  # 1/16 px, what fillConvexPoly takes with shift 4
    near, behind = (pc[..., 2].min(1) < NEAR).tolist(), (pc[..., 2].max(1) < NEAR).tolist()
    mask = np.zeros((height, width), np.uint8)
    for start, stop in _shadow_casters(scene, geometry):
        if all(behind[start:stop]):
            continue
        if any(near[start:stop]):
            poly = _near_shadow(ground[start:stop], cam)
            if poly is None:
                continue
            poly = np.round(poly * 16).astype(np.int32)
        elif any(seen[start:stop]):
            poly = cv2.convexHull(pix16[start:stop].reshape(-1, 2))
        else:
            continue
        cv2.fillConvexPoly(mask, poly, 255, cv2.LINE_8, 4)
    k = 2 * max(1, round(width / 320)) + 1  # penumbra: about 1 % of the width, at any resolution
    rows, codes = mask[raster.top :], raster.codes[raster.top :]
    rows[:] = cv2.blur(rows, (k, k))
    np.copyto(rows, np.uint8(0), where=(codes == SKY) | (codes >= BONNET))
    return mask


def _truncation(points: np.ndarray, width: int, height: int) -> float:
    """Share of the convex hull of a thing's projected points that falls outside the image."""
    if len(points) < 3:
        return 0.0
    hull = cv2.convexHull(points.astype(np.float32))
    area = cv2.contourArea(hull)
    if area <= 0:
        return 0.0
    frame = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]], np.float32)
    inside, _ = cv2.intersectConvexConvex(hull, frame)
    return float(np.clip(1.0 - inside / area, 0.0, 1.0))


def _clip_near(corners: np.ndarray, cam: Camera) -> np.ndarray | None:
    """Pixel polygon of a face (corners [4, 3] in camera coordinates) clipped to z >= NEAR."""
    out = []
    for i in range(len(corners)):
        a, b = corners[i], corners[(i + 1) % len(corners)]
        if a[2] >= NEAR:
            out.append(a)
        if (a[2] >= NEAR) != (b[2] >= NEAR):
            out.append(a + (NEAR - a[2]) / (b[2] - a[2]) * (b - a))
    if len(out) < 3:
        return None
    p = np.array(out)
    return np.stack([cam.fx * p[:, 0] / p[:, 2] + cam.cx, cam.fy * p[:, 1] / p[:, 2] + cam.cy], -1)


# ----------------------------------------------------------------------------------------------
# Image formation.


def _shade_image(scene: Scene, shading: Shading) -> np.ndarray:
    """Colour per code x texture x shadows x vignetting, sky gradient, fog, the bonnet's paint, then
    sensor noise and blur.

    Memory traffic dominates here, so full-colour passes are kept to a minimum: the sky gradient
    is quantised into extra colour codes, and fog and noise are grey, added in one pass.
    """
    colour = _colour_table(scene, shading.tables)
    colour_codes = _shadow_codes(shading, _sky_codes(shading))
    image = np.take(colour, colour_codes, axis=0, mode="clip")
    if shading.night is not None:  # albedo x the lamps' shade, before texture and fog as any light
        image += np.take(_albedo_table(scene, shading.tables), colour_codes, axis=0, mode="clip") * shading.night[0]
    mult, add = _grey_gain_and_offset(scene, shading, colour_codes)
    image *= mult[..., None]
    image += add[..., None]
    if shading.night is not None:
        image += shading.night[1]
    if shading.bonnet is not None:
        _mirror_on_bonnet(image, scene.bonnet, shading.bonnet)
    image = cv2.convertScaleAbs(image)  # saturates at 255; the few slightly negative values flip sign
    return _optics(image, scene.effects)


def _camera_gain(light: Lighting) -> np.ndarray:
    """RGB gain from reflected light to grey levels: white balance times exposure."""
    return np.asarray(light.tint) * light.exposure * 1.15


def _colour_table(scene: Scene, tables: CodeTables) -> np.ndarray:
    """float32 RGB of every code (albedo x shade x camera gain), then SKY_LEVELS sky colours from
    the horizon up to the zenith, then the codes below BONNET lit by the sky alone (bluer; the
    darkening itself is a grey gain, so that shadow edges can be soft)."""
    light = scene.lighting
    wobble = 1.0 + 0.05 * np.sin(np.arange(len(tables.shade)) * 12.9898)  # fixed per-face brightness jitter
    gain = _camera_gain(light)
    sky_gain = light.exposure / max(light.exposure, 0.6)
    levels = np.linspace(0.0, 1.0, SKY_LEVELS)[:, None]
    sky = (np.asarray(light.horizon) + (np.asarray(light.zenith) - np.asarray(light.horizon)) * levels) * sky_gain
    lit = tables.albedo * (tables.shade * wobble)[:, None] * gain
    tint = 1.0 + _sun_darkness(light) * (SHADOW_TINT - 1.0)
    tint /= tint @ np.array([0.299, 0.587, 0.114])  # same brightness, other hue
    return np.concatenate([lit, sky, lit[:BONNET] * tint]).astype(np.float32)


def _albedo_table(scene: Scene, tables: CodeTables) -> np.ndarray:
    """float32 RGB albedo x camera gain of every colour code (0 for the sky), for light added per pixel."""
    albedo = tables.albedo * _camera_gain(scene.lighting)
    return np.concatenate([albedo, np.zeros((SKY_LEVELS, 3)), albedo[:BONNET]]).astype(np.float32)


def _sky_codes(shading: Shading) -> np.ndarray:
    """The code map with the sky above the horizon turned into sky-gradient codes (``n_codes + level``)."""
    codes, grid = shading.raster.codes, shading.grid
    colour_codes = codes
    sky_rows = int(np.clip(np.ceil(shading.raster.horizon) + 1, 0, codes.shape[0]))
    if sky_rows > 0:  # gradient from the horizon up; clouds come with the texture below
        up = -_affine(grid.m[1], grid.us, grid.vs[:sky_rows])
        level = np.sqrt(np.clip(up * np.float32(2.5), 0.0, 1.0)) * np.float32(SKY_LEVELS - 1) + np.float32(0.5)
        colour_codes = codes.copy()
        top_codes = colour_codes[:sky_rows]
        np.copyto(top_codes, level.astype(np.int32) + len(shading.tables.shade), where=top_codes == SKY)
    return colour_codes


def _shadow_codes(shading: Shading, colour_codes: np.ndarray) -> np.ndarray:
    """The colour codes with the ground in full sun shadow turned into its sky-lit codes
    (``n_codes + SKY_LEVELS + code``)."""
    if shading.sun_shadows is None:
        return colour_codes
    if colour_codes is shading.raster.codes:
        colour_codes = colour_codes.copy()
    top = shading.raster.top
    rows = colour_codes[top:]
    np.add(rows, len(shading.tables.shade) + SKY_LEVELS, out=rows, where=shading.sun_shadows[top:] >= 128)
    return colour_codes


def _bonnet_light(scene: Scene, px: BonnetPixels) -> tuple[np.ndarray, np.ndarray]:
    """Grey gain and additive highlight over the bonnet's rows: brighter towards its edge, where the
    paint is seen at a grazing angle, and a glossy band parallel to the edge, strongest mid-frame."""
    bonnet, width = scene.bonnet, scene.width
    gain = np.exp(px.below * np.float32(-2.5)) * np.float32(0.6) + np.float32(0.55)
    x = (np.arange(width, dtype=np.float32) - np.float32(bonnet.centre * width)) / np.float32(width / 2)
    across = np.exp(x * x * np.float32(-1.5)) * np.float32(bonnet.gloss * 70.0 * scene.lighting.exposure)
    band = np.exp(-np.square((px.below - np.float32(bonnet.highlight)) * np.float32(10.0))) * across
    band[~px.mask] = 0.0
    return gain, band


def _mirror_on_bonnet(image: np.ndarray, bonnet: Bonnet, px: BonnetPixels) -> None:
    """Blend a blurred, upside-down copy of the scene above the bonnet's edge into its paint (in place),
    most near the edge."""
    height, width = image.shape[:2]
    rows = np.arange(px.y0, height, dtype=np.float32)[:, None]
    map_y = np.clip(px.edge - (rows - px.edge) * np.float32(2.0), 0.0, height - 1.0)
    map_x = np.broadcast_to(np.arange(width, dtype=np.float32), map_y.shape)
    mirror = cv2.remap(image, np.ascontiguousarray(map_x), map_y, cv2.INTER_LINEAR)
    k = 2 * max(1, round(width / 160)) + 1
    mirror = cv2.blur(mirror, (k, k))
    share = np.exp(px.below * np.float32(-2.0)) * np.float32(bonnet.reflect)
    share[~px.mask] = 0.0
    region = image[px.y0 :]
    region += (mirror - region) * share[..., None]


def _texture_field(scene: Scene, raster: Raster) -> np.ndarray:
    """float32 [H, W] texture: the screen-space field, with the world-space ground texture below ``top``."""
    height, width = raster.codes.shape
    texture, _, _ = screen_fields(height, width)
    oy, ox = scene.effects.texture_offset
    field = texture[oy : oy + height, ox : ox + width].copy()
    if raster.tex_a is not None:
        scale = np.float32(6.0)
        half = cv2.remap(
            ground_texture(),
            raster.tex_b[::2, ::2] * scale,
            raster.tex_a[::2, ::2] * scale,
            cv2.INTER_LINEAR,
            None,
            cv2.BORDER_WRAP,
        )  # half resolution: the texture is smooth
        field[raster.top :] = cv2.resize(half, (width, height - raster.top), interpolation=cv2.INTER_LINEAR)
    return field


def _grey_gain_and_offset(scene: Scene, shading: Shading, colour_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel grey gain (texture, contact and sun shadows, the bonnet's shading, vignetting, fog) and
    offset (sensor noise, the bonnet's highlight, fog)."""
    raster, light, fx = shading.raster, scene.lighting, scene.effects
    height, width = raster.codes.shape
    _, noise, r2 = screen_fields(height, width)
    tex_amp = shading.tables.tex_amp
    tex_amp = np.concatenate([tex_amp, np.full(SKY_LEVELS, light.clouds, np.float32), tex_amp[:BONNET]])
    mult = np.take(tex_amp, colour_codes, mode="clip")
    mult *= _texture_field(scene, raster)
    mult += np.float32(1.0)
    if shading.surface is not None:  # façade windows and foliage, in the faces' own metres
        idx, gain = shading.surface.idx, shading.surface.gain
        mult.reshape(-1)[idx] *= gain
    if shading.shadows is not None:  # darken the ground under vehicles (the image only; labels are unaffected)
        np.multiply(mult, np.float32(0.5), out=mult, where=(shading.shadows > 0) & (raster.codes < BONNET))
    if shading.sun_shadows is not None:  # the sun's share of the light, less where the ground is in shadow
        lut = 1.0 - np.arange(256, dtype=np.float32) * np.float32(_sun_darkness(light) / 255.0)
        mult[raster.top :] *= np.take(lut, shading.sun_shadows[raster.top :])
    bonnet = shading.bonnet
    if bonnet is not None:
        gain, band = _bonnet_light(scene, bonnet)
        np.multiply(mult[bonnet.y0 :], gain, out=mult[bonnet.y0 :], where=bonnet.mask)
    if fx.vignette > 0:
        mult -= np.float32(fx.vignette) * r2
    ny, nx = fx.noise_offset
    add = noise[ny : ny + height, nx : nx + width] * np.float32(fx.noise_sigma)
    if bonnet is not None:
        add[bonnet.y0 :] += band
    if fx.fog_density > 0:
        keep = np.exp(np.float32(-fx.fog_density) / np.maximum(raster.zbuf, np.float32(1.0 / 400.0)))
        if bonnet is not None:  # depth 0 means "too far" elsewhere; the bonnet is right in front
            np.copyto(keep[bonnet.y0 :], np.float32(1.0), where=bonnet.mask)
        mult *= keep
        fog = float(np.mean(fx.fog_rgb)) * min(light.exposure * 1.1, 1.0)
        add += np.float32(fog) - np.float32(fog) * keep
    return mult, add


def _optics(image: np.ndarray, fx: Effects) -> np.ndarray:
    """Motion blur, then gaussian blur: after the noise, as a camera's optics and demosaicing would."""
    if fx.motion_blur:
        kernel = np.zeros((fx.motion_blur, fx.motion_blur), np.float32)
        kernel[fx.motion_blur // 2] = 1.0
        rot = cv2.getRotationMatrix2D(((fx.motion_blur - 1) / 2, (fx.motion_blur - 1) / 2), fx.motion_angle, 1.0)
        kernel = cv2.warpAffine(kernel, rot, kernel.shape[::-1])
        image = cv2.filter2D(image, -1, kernel / max(kernel.sum(), 1e-6))
    if fx.blur_sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), fx.blur_sigma)
    return image
