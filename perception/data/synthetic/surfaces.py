"""Surface detail in each box's own coordinates: façade windows in their frames (lit from inside on
some panes at night), the walls' brick or render between them, shopfronts along some ground floors,
foliage, and the ragged edges and gaps of crowns and hedges.

The screen-space texture on things looks the same at every distance, and a building is one flat
colour; real façades carry rows of framed windows on brick or stained render, and real crowns a leafy
texture, whose grain shrinks with distance. All are drawn here in metres on the face, so they recede
with perspective.

Windows and leaves change only the image: a grey gain for some pixels, never a code, so every label
stays what the code map says. A crown's ragged outline is cut into its codes before the depth test
(:func:`cut_foliage`), so what shows through a gap is whatever lies behind, labels and all.

A face's coordinates come from the same plane algebra as its inverse depth (:mod:`.geometry`): a
point at inverse depth ``zi`` along pixel (u, v) is ``M (u, v, 1) / zi`` in the level frame, so its
distance ``s`` along a unit edge direction ``D`` from the box's corner ``O`` is
``(D M) . (u, v, 1) / zi - D . O``: one affine row per face and axis, looked up by code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

FOLIAGE_TEXELS_PER_M = 10.0
FOLIAGE_AMPLITUDE = 0.45
FRINGE_M = 0.9  # how deep into a crown (from its outline) its ragged edge reaches at most
LOBE_TEXELS_PER_M = 10.0  # the lobes of that edge and the gaps: about a metre from one to the next
GAP_THRESHOLD = 0.93  # lobe field above this (about 5 % of a crown) is a gap: what is behind shows
MIN_WINDOW_PX = 3.0  # a window column or floor narrower than this many pixels fades to its mean shade
TWIG_TEXELS_PER_M, TWIG_M = 30.0, 0.025  # a bare crown's twigs: about 0.2 m apart, 2.5 cm thick
LIMB_TEXELS_PER_M, LIMB_M = 6.0, 0.1  # ... and its limbs: about 1 m apart, 10 cm thick
MIN_TWIG_PX = 0.8  # thinner branches than this many pixels are drawn this thick (a camera blurs them wider)
SHOP_RISER_M, SHOP_MULLION_M = 0.5, 0.15  # a shop window's sill above the pavement; the frame between bays
SHOP_DOOR_SHARE = 0.3  # bays that are a glazed door, down to the pavement
SHOP_GLASS = 0.55  # a shop window's grey gain relative to the façade's panes: darker, big plate glass
SHOP_GLAZED = 0.8  # about this share of a shopfront is glass (its shade and glow from afar)
DISPLAY_TEXELS_PER_M, DISPLAY_AMPLITUDE = 6.0, 0.35  # the clutter of displays and reflections behind it
SHOP_LIT_SHARE = 0.6  # shop windows lit at night (whatever share of the upper panes is)
BRICK_SHARE = 0.5  # façades of brick; the others are render or stone
BRICKS_PER_TILE, COURSES_PER_TILE = 8, 22  # so that the bond wraps in the texture
BRICK_TEXELS_PER_M = 142.0  # a brick and its joint 0.225 m along a course, a course 0.082 m high
RENDER_TEXELS_PER_M = 40.0
BRICK_AMPLITUDE, RENDER_AMPLITUDE = 0.5, 0.35  # their contrast (the textures are within about ±1)
GRAIN_LEVELS = 8  # the wall textures' pyramid: each level blurred twice as wide as the one before
FRAME_M = 0.06  # a window frame's width, and its mullion's; thinner than a pixel, they fade out
FRAME_LIGHT_SHARE, FRAME_LIGHT, FRAME_DARK = 0.6, 1.35, 0.55  # painted or dark frames, relative to the wall
FACADE, FOLIAGE, BRANCHES = 1, 2, 3  # FaceRows.kind: windows, leaves, a bare crown (0: none of them)


@dataclass(frozen=True)
class Facade:
    """Windows on a building's walls, in metres and shares of a floor / column."""

    floor_m: float  # storey height
    column_m: float  # window spacing along the wall
    width: float  # share of a column that is glass
    height: float  # share of a floor that is glass
    glass: float  # grey gain of a pane (< 1: darker than the wall)
    spread: float  # how much panes differ from each other (lit rooms, curtains, reflections)
    shop_m: float = 0.0  # a shopfront's glazing, this high, along the ground floor of one wall (0: none)
    shop_side: int = 0  # ... on the wall facing -x or +x of the part (-1, +1)
    bay_m: float = 3.0  # ... in bays this wide


@dataclass(frozen=True)
class Foliage:
    """A leafy texture on vegetation (where in the texture a part starts follows from its index, so
    that crowns differ). A ``bare`` crown is a winter tree's: twigs and limbs with the sky, or whatever
    lies behind, showing between them, labelled as one vegetation region as CamVid's and Cityscapes'
    annotators draw a leafless tree (see :func:`cut_foliage`)."""

    bare: bool = False


def sample_facade(rng: np.random.Generator) -> Facade | None:
    """Windows on about 85 % of the buildings."""
    if rng.random() >= 0.85:
        return None
    return Facade(
        floor_m=float(rng.uniform(2.8, 3.8)),
        column_m=float(rng.uniform(1.6, 3.8)),
        width=float(rng.uniform(0.3, 0.7)),
        height=float(rng.uniform(0.35, 0.65)),
        glass=float(rng.uniform(0.25, 0.65)),
        spread=float(rng.uniform(0.1, 0.6)),
    )


def _frequency_radius2(size: int = 256) -> np.ndarray:
    """Squared spatial frequency (cycles per texel) of each coefficient of a [size, size] FFT."""
    f = np.fft.fftfreq(size)
    return f[:, None] ** 2 + f[None, :] ** 2


@lru_cache(maxsize=1)
def foliage_texture() -> np.ndarray:
    """float32 [256, 256] leafy clumps (bright leaves, dark gaps), roughly zero mean and within ±1."""
    rng = np.random.default_rng(4321)
    radius = np.sqrt(_frequency_radius2())
    radius[0, 0] = 1.0
    spectrum = np.fft.fft2(rng.standard_normal((256, 256))) / radius**1.1
    spectrum[0, 0] = 0.0
    clumps = np.real(np.fft.ifft2(spectrum))
    clumps = (clumps - clumps.mean()) / clumps.std() + 0.6 * rng.standard_normal((256, 256))
    return np.tanh(1.2 * clumps).astype(np.float32)


@lru_cache(maxsize=1)
def lobe_texture() -> np.ndarray:
    """float32 [256, 256] smooth blobs within ±1, about ten texels from one to the next (plus a
    slower swell), sampled bilinearly: the lobes of a crown's ragged outline and its gaps."""
    rng = np.random.default_rng(8765)
    radius = np.sqrt(_frequency_radius2())
    band = np.exp(-(((radius - 0.1) / 0.05) ** 2)) + 0.5 * np.exp(-((radius / 0.02) ** 2))  # period ~10 texels
    band[0, 0] = 0.0
    blobs = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((256, 256))) * band))
    return np.tanh(blobs / blobs.std()).astype(np.float32)


def _periodic_blur(tile: np.ndarray, sigma: float) -> np.ndarray:
    """``tile`` blurred by a gaussian of ``sigma`` texels, wrapping (so it still tiles)."""
    radius2 = _frequency_radius2(tile.shape[0])
    return np.real(np.fft.ifft2(np.fft.fft2(tile) * np.exp(-2.0 * (np.pi * sigma) ** 2 * radius2)))


@lru_cache(maxsize=1)
def wall_textures() -> np.ndarray:
    """float32 [2, GRAIN_LEVELS, 256, 256]: the grain of render or stone (0: stains and speckle) and of
    brick (1: bricks of their own shades in stretcher bond, lighter mortar joints), zero mean and
    within about ±1, each as a pyramid whose level k is blurred over 2^k texels: what a pixel covering
    that many texels sees, so distant walls average their grain as a camera does instead of aliasing."""
    rng = np.random.default_rng(2468)
    radius = np.sqrt(_frequency_radius2())
    radius[0, 0] = 1.0
    broad = 1.0 - np.exp(-((radius / 0.03) ** 2))  # nothing broader than a tile's third: no visible repeats
    stains = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((256, 256))) * broad / radius**1.3))
    render = 0.5 * stains / stains.std() + 0.25 * rng.standard_normal((256, 256))
    courses, bricks = COURSES_PER_TILE, BRICKS_PER_TILE
    y, x = np.mgrid[0:256, 0:256] / 256.0
    row = np.floor(y * courses)
    along = x * bricks + 0.5 * (row % 2)  # every other course half a brick along
    shade = rng.standard_normal((courses, bricks))[row.astype(int), np.floor(along).astype(int) % bricks]
    joint = (y * courses - row < 0.12) | (along - np.floor(along) < 0.045)  # about 1 cm of mortar
    brick = np.where(joint, 1.2, 0.35 * np.clip(shade, -2.0, 2.0)) + 0.15 * rng.standard_normal((256, 256))
    pyramids = np.empty((2, GRAIN_LEVELS, 256, 256), np.float32)
    for m, tile in enumerate((render, brick)):
        tile = tile - tile.mean()
        pyramids[m, 0] = tile
        for k in range(1, GRAIN_LEVELS):
            pyramids[m, k] = _periodic_blur(tile, 0.5 * 2**k)
    return pyramids


def _wall_grain(s: np.ndarray, t: np.ndarray, px_per_m: np.ndarray, code: np.ndarray, brick: np.ndarray) -> np.ndarray:
    """Grey gain of a wall's own material at its pixels (nearest texel of the pyramid level that
    matches a pixel's footprint; each part starts elsewhere in the texture)."""
    material = brick.astype(np.intp)  # 0 render, 1 brick: as in :func:`wall_textures`
    texels_per_m = np.array([RENDER_TEXELS_PER_M, BRICK_TEXELS_PER_M], np.float32)[material]
    footprint = texels_per_m / np.maximum(px_per_m, np.float32(1e-3))  # texels under one pixel
    level = np.clip(np.ceil(np.log2(np.maximum(footprint, np.float32(1.0)))), 0, GRAIN_LEVELS - 1).astype(np.intp)
    offset = (code // 6) * 41
    iu = (np.floor(s * texels_per_m).astype(np.intp) + offset) & 255
    iv = (np.floor(t * texels_per_m).astype(np.intp) + 3 * offset) & 255
    grain = np.take(wall_textures().ravel(), ((material * GRAIN_LEVELS + level) * 256 + iv) * 256 + iu)
    amplitude = np.array([RENDER_AMPLITUDE, BRICK_AMPLITUDE], np.float32)[material]
    return 1.0 + amplitude * grain


@dataclass(frozen=True)
class FaceRows:
    """Per material code: which detail it gets (0 none, FACADE, FOLIAGE or BRANCHES), the affine rows giving its
    face coordinates ``s`` (along the face, horizontal where the face is vertical) and ``t`` (up a
    vertical face) times the inverse depth, the face's size along both, and its façade's parameters.

    Each table is stored field-major ([fields, C]): a per-pixel lookup is then one contiguous
    ``np.take`` per field, about twice as fast as gathering rows of a [C, fields] table."""

    kind: np.ndarray  # uint8 [C]
    rows: np.ndarray  # float32 [6, C]: the s row's three coefficients, then the t row's
    offsets: np.ndarray  # float32 [2, C]
    extents: np.ndarray  # float32 [2, C] metres
    facade: np.ndarray  # float32 [10, C] the Facade's fields in order (shop_m zero but on its wall), then the
    # wall's material (1 brick, 0 render) and its frames' gain; zero off façades

    @classmethod
    def from_code_major(cls, kind, rows, offsets, extents, facade) -> FaceRows:
        def fields(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(a.reshape(len(a), -1).T)

        return cls(kind, fields(rows), fields(offsets), fields(extents), fields(facade))


# A face's in-plane axes (s, t) by face (0 -x, 1 +x, 2 -y, 3 +y, 4 -z, 5 +z): x faces run along z,
# z faces along x, both with t up (y); the bottom and top faces use x and z.
S_AXIS = np.array([2, 2, 0, 0, 0, 0])
T_AXIS = np.array([1, 1, 2, 2, 1, 1])
ROOF = np.array([False, False, True, True, False, False])


def face_rows(level: np.ndarray, m: np.ndarray, surfaces: list[Facade | Foliage | None], face0: int) -> FaceRows:
    """The :class:`FaceRows` of every code from the parts' corners in the level frame ``level`` [P, 8, 3]
    (corner i has bit 0 -> x hi, bit 1 -> y hi, bit 2 -> z hi) and the pixel-to-ray matrix ``m``."""
    n_codes = face0 + 6 * len(surfaces)
    kind = np.zeros((n_codes,), np.uint8)
    rows = np.zeros((n_codes, 2, 3), np.float32)
    offsets = np.zeros((n_codes, 2), np.float32)
    extents = np.zeros((n_codes, 2), np.float32)
    facade = np.zeros((n_codes, 10), np.float32)
    parts = np.array([i for i, x in enumerate(surfaces) if x is not None], np.int64)
    if parts.size == 0:
        return FaceRows.from_code_major(kind, rows, offsets, extents, facade)
    origin = level[parts, 0]  # [Q, 3] the lo corner
    edges = level[parts][:, [1, 2, 4]] - origin[:, None]  # [Q, axis, 3]: lo -> hi along x, y, z
    sizes = np.linalg.norm(edges, axis=-1)
    units = edges / np.maximum(sizes, 1e-9)[..., None]
    codes = face0 + 6 * parts[:, None] + np.arange(6)  # [Q, 6]
    for j, axis in enumerate((S_AXIS, T_AXIS)):
        rows[codes, j] = (units @ m)[:, axis]  # [Q, 6, 3]: each axis's row D M
        offsets[codes, j] = np.einsum("qad,qd->qa", units, origin)[:, axis]
        extents[codes, j] = sizes[:, axis]
    is_facade = np.array([isinstance(surfaces[i], Facade) for i in parts])
    is_bare = np.array([isinstance(surfaces[i], Foliage) and surfaces[i].bare for i in parts])
    kind[codes] = np.where(is_facade[:, None], np.where(ROOF, 0, FACADE), np.where(is_bare, BRANCHES, FOLIAGE)[:, None])
    # A façade's material and frames from a hash of its part's index: no draw, so every scene stays as it was.
    brick = _hash01(parts) < BRICK_SHARE
    frame = np.where(_hash01(parts + 7919) < FRAME_LIGHT_SHARE, FRAME_LIGHT, FRAME_DARK)
    for q in np.flatnonzero(is_facade):
        f = surfaces[parts[q]]
        fields = (f.floor_m, f.column_m, f.width, f.height, f.glass, f.spread, 0.0, f.bay_m, brick[q], frame[q])
        facade[codes[q]] = fields
        if f.shop_side:
            facade[codes[q, 0 if f.shop_side < 0 else 1], 6] = f.shop_m
    return FaceRows.from_code_major(kind, rows, offsets, extents, facade)


def _hash01(*ints: np.ndarray) -> np.ndarray:
    """A deterministic pseudo-random value in [0, 1) per element of the integer arrays."""
    h = np.zeros_like(ints[0], dtype=np.uint32)
    for k, x in zip((73856093, 19349663, 83492791), ints, strict=False):
        h ^= x.astype(np.uint32) * np.uint32(k)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0x5BD1E995)
    h ^= h >> np.uint32(15)
    return (h & np.uint32(0xFFFF)).astype(np.float32) / np.float32(65536.0)


@dataclass(frozen=True)
class SurfaceDetail:
    """What :func:`surface_gain` found: the pixels showing a face with detail and what it does there."""

    idx: np.ndarray  # flat pixel indices
    gain: np.ndarray  # float32 grey gain at each
    lit: np.ndarray | None  # night only: how much of each pixel is a window lit from inside (mean 1 on a pane)


def _window_gain(
    s: np.ndarray, t: np.ndarray, px_per_m: np.ndarray, code: np.ndarray, rows: FaceRows, lit_share: float | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Grey gain on building wall pixels: panes in a grid of floors and columns, none within a margin
    of the wall's corners, the ground or the roof, each pane a little different from the next and in
    its frame, and the wall's brick or render between them (:func:`_wall_grain`). Under a
    wall's shopfront (``shop_m`` > 0) the grid starts above it, and the ground floor is plate glass in
    bays: dark, with displays and reflections behind it, some bays a door. With a ``lit_share``
    (night), also the light of the panes lit from inside: that share of them, each its own
    brightness (0.5-1.5), and of SHOP_LIT_SHARE of the shopfronts, whatever ``lit_share`` is."""
    floor, column, width, height, glass, spread, shop, bay, brick, frame_gain = (
        np.take(field, code) for field in rows.facade
    )
    length, top = (np.take(field, code) for field in rows.extents)
    up = t - shop  # the windows' grid starts above a shopfront
    col, row = np.floor(s / column), np.floor(up / floor)
    fs, ft = s / column - col, up / floor - row
    across, above = np.abs(fs - 0.5), np.abs(ft - 0.55)
    pane = (across < width / 2) & (above < height / 2)
    bottom = np.where(shop > 0, np.float32(0.3), np.float32(0.8))  # the lowest pane's sill
    pane &= (s > 0.5) & (s < length - 0.5) & (up > bottom) & (t < top - 0.6)
    cell = (col.astype(np.int32), row.astype(np.int32))
    variety = spread * (_hash01(*cell, code) - 0.5)
    gain = np.where(pane, glass * (1.0 + variety), np.float32(1.0))
    # Each pane in a frame, with a mullion down the middle of the wide ones; thinner than a pixel or
    # two they fade into the glass, so a far façade keeps the shade it had without them.
    frame_s, frame_t = FRAME_M / column, FRAME_M / floor
    glazed = (across < width / 2 - frame_s) & (above < height / 2 - frame_t)
    glazed &= ~((width * column > 1.2) & (across < frame_s / 2))
    in_frame = pane & ~glazed
    shown = np.clip(px_per_m * np.float32(FRAME_M) - 0.5, 0.0, 1.0)
    gain = np.where(in_frame, gain + shown * (frame_gain - gain), gain)
    mean = 1.0 + width * height * (glass - 1.0)
    in_shop = (t < shop) & (shop > 0)
    has_shop = bool(in_shop.any())
    if has_shop:
        along_bays = s / bay
        bay_index = np.floor(along_bays)
        bays = (bay_index.astype(np.int32), code.astype(np.int32))
        bay_hash = _hash01(*bays)  # one value per bay: whether it is a door, and its shade
        door = bay_hash < SHOP_DOOR_SHARE
        frame = SHOP_MULLION_M / bay
        shop_pane = in_shop & (np.abs(along_bays - bay_index - 0.5) < 0.5 - frame) & (t < shop - 0.1)
        shop_pane &= (t > np.where(door, 0.05, SHOP_RISER_M)) & (s > 0.3) & (s < length - 0.3)
        sky = 0.7 + 0.6 * t / np.maximum(shop, 1e-3)  # the sky's reflection brightens towards the top
        texels = DISPLAY_TEXELS_PER_M
        display = 1.0 + DISPLAY_AMPLITUDE * _bilinear(foliage_texture(), s * texels, t * texels)
        shop_gain = glass * SHOP_GLASS * (1.0 + spread * (bay_hash - 0.5)) * sky * display
        gain = np.where(shop_pane, shop_gain, np.where(in_shop, np.float32(1.0), gain))
        pane = np.where(in_shop, shop_pane, pane)
        mean = np.where(in_shop, 1.0 + SHOP_GLAZED * (glass * SHOP_GLASS - 1.0), mean)
    # Far away the grid is finer than the pixels: fade to the wall's mean shade instead of aliasing.
    sharp = np.clip(px_per_m * np.minimum(floor, column) / MIN_WINDOW_PX - 1.0, 0.0, 1.0)
    gain = mean + sharp * (gain - mean)
    # The wall's own material between the windows (and over all of a wall too far for its windows).
    bare_wall = np.where(pane, 1.0 - sharp, np.float32(1.0))
    gain *= 1.0 + bare_wall * (_wall_grain(s, t, px_per_m, code, brick) - 1.0)
    if lit_share is None:
        return gain, None
    on = pane & (_hash01(*cell, code + 1) < np.float32(lit_share))
    level = np.where(on, np.float32(0.5) + _hash01(*cell, code + 2), np.float32(0.0))
    level = np.where(in_frame, level * (1.0 - shown), level)  # the frames are not lit
    mean_lit = width * height * np.float32(lit_share)
    if has_shop:  # a shop is lit or dark as one: all of its bays on a wall
        shop_on = shop_pane & (_hash01(code.astype(np.int32), code + 1) < np.float32(SHOP_LIT_SHARE))
        level = np.where(in_shop, np.where(shop_on, np.float32(0.8) + _hash01(*bays, code + 2), 0.0), level)
        mean_lit = np.where(in_shop, np.float32(SHOP_GLAZED * SHOP_LIT_SHARE * 1.3), mean_lit)  # a lit bay: 0.8-1.8
    return gain, mean_lit + sharp * (level - mean_lit)


def _bilinear(texture: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``texture`` [256, 256] sampled bilinearly at texel coordinates (x, y), wrapping."""
    x0, y0 = np.floor(x), np.floor(y)
    wx, wy = (x - x0).astype(np.float32), (y - y0).astype(np.float32)
    ix, iy = x0.astype(np.intp) & 255, (y0.astype(np.intp) & 255) * 256
    ix1, iy1 = (ix + 1) & 255, (iy + 256) & 0xFFFF
    flat = texture.ravel()
    top = flat[iy + ix] + wx * (flat[iy + ix1] - flat[iy + ix])
    bottom = flat[iy1 + ix] + wx * (flat[iy1 + ix1] - flat[iy1 + ix])
    return top + wy * (bottom - top)


@dataclass(frozen=True)
class Veil:
    """Pixels of a bare crown through which something farther shows: image row and column, the crown's
    code and its inverse depth there. The image shows what is behind; the labels are the crown's."""

    v: np.ndarray
    u: np.ndarray
    code: np.ndarray
    zi: np.ndarray


def cut_foliage(roi: np.ndarray, origin: tuple[int, int], coef: np.ndarray, rows: FaceRows, fx: float) -> Veil | None:
    """Cut a ragged outline and a few gaps into the foliage of one thing's codes ``roi`` (in place: cut
    pixels become 0, nothing, so the thing's depth test leaves what is behind them). ``origin`` is the
    image pixel of ``roi[0, 0]`` and ``coef`` the codes' inverse-depth planes. A bare crown keeps its
    codes only on its twigs and limbs; the pixels between them inside its outline are cut too and
    returned as its :class:`Veil`.

    A pixel of a crown or hedge is cut when it lies closer to the thing's outline (in metres at its
    depth) than a lobed fringe up to ``FRINGE_M`` deep (less on a thin hedge), or where the same
    smooth lobe field is high (a gap). The field lies in the image, scaled to metres at the thing's
    mean distance: one continuous pattern over all of a crown's faces, the same at any resolution, and
    no stripes on the faces seen edge-on (the underside of a crown above the camera), which a pattern
    drawn on the faces themselves would squeeze into thin bands. Branches are thin lines along the
    zero crossings of the same field at two finer scales, at least ``MIN_TWIG_PX`` wide."""
    kinds = np.take(rows.kind, roi, mode="clip")
    leafy = kinds >= FOLIAGE
    if not leafy.any():
        return None
    inside = cv2.distanceTransform((roi > 0).astype(np.uint8), cv2.DIST_L2, 3)  # px to the outline
    np.minimum(inside, np.float32(1e4), out=inside)  # a thing filling its whole region has no outline in it
    vv, uu = np.nonzero(leafy)
    code = roi[vv, uu].astype(np.intp)
    u, v = (uu + origin[0]).astype(np.float32), (vv + origin[1]).astype(np.float32)
    plane = np.take(coef, code, axis=0)
    zi = np.maximum(plane[:, 0] * u + plane[:, 1] * v + plane[:, 2], np.float32(1e-6))
    m_per_px = np.float32(1.0) / (np.float32(fx) * zi.mean())  # at the thing's mean distance
    start = (code // 6) * 53  # each part elsewhere in the texture
    per_px = m_per_px * LOBE_TEXELS_PER_M
    lobes = _bilinear(lobe_texture(), u * per_px + start, v * per_px + 3 * start)
    thinnest = np.minimum(*(np.take(field, code) for field in rows.extents))
    fringe = np.minimum(np.float32(FRINGE_M), np.float32(0.35) * thinnest)
    depth_in = inside[vv, uu] / (np.float32(fx) * zi)  # metres from the outline
    outside = depth_in < fringe * 0.5 * (1.0 + lobes)
    bare = kinds[vv, uu] == BRANCHES
    cut = outside | ((lobes > GAP_THRESHOLD) & ~bare)
    between = bare & ~outside & ~_on_branch(u, v, m_per_px, start)
    roi[vv[cut | between], uu[cut | between]] = 0
    if not between.any():
        return None
    return Veil(v[between].astype(np.intp), u[between].astype(np.intp), code[between], zi[between])


def _on_branch(u: np.ndarray, v: np.ndarray, m_per_px: np.float32, start: np.ndarray) -> np.ndarray:
    """Whether pixels (u, v) of a bare crown lie on a twig or a limb: near a zero crossing of the lobe
    field at the twigs' and the limbs' scale (the field changes by about 0.6 a texel, so a line
    ``w`` texels wide is where it is within ``0.3 w`` of zero)."""
    on = np.zeros(u.shape, bool)
    for texels_per_m, thick_m, shift in ((TWIG_TEXELS_PER_M, TWIG_M, 17), (LIMB_TEXELS_PER_M, LIMB_M, 71)):
        per_px = m_per_px * texels_per_m
        field = _bilinear(lobe_texture(), u * per_px + start + shift, v * per_px + 3 * start + shift)
        width = max(thick_m * texels_per_m, MIN_TWIG_PX * float(per_px))  # texels
        on |= np.abs(field) < 0.3 * width
    return on


def _foliage_gain(s: np.ndarray, t: np.ndarray, px_per_m: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Grey gain of leafy clumps on vegetation pixels, sampled in metres (nearest texel; each part starts
    elsewhere in the texture); the contrast falls where a texel is smaller than a pixel, as a camera
    averages leaves it cannot resolve."""
    offset = (code // 6) * 37
    iu = (np.floor(s * FOLIAGE_TEXELS_PER_M).astype(np.intp) + offset) & 255  # wraps as % 256 does
    iv = (np.floor(t * FOLIAGE_TEXELS_PER_M).astype(np.intp) + 3 * offset) & 255
    amplitude = FOLIAGE_AMPLITUDE * np.clip(px_per_m / FOLIAGE_TEXELS_PER_M, 0.3, 1.0)
    return 1.0 + amplitude * np.take(foliage_texture().ravel(), iv * 256 + iu)


def surface_gain(
    codes: np.ndarray, zbuf: np.ndarray, fx: float, rows: FaceRows, lit_share: float | None = None
) -> SurfaceDetail | None:
    """The detail of every pixel showing a face with it, or None when none does; ``lit_share`` is the
    share of window panes lit from inside at night (None by day)."""
    flat = codes.ravel()
    kinds = np.take(rows.kind, flat, mode="clip")
    idx = np.flatnonzero(kinds)
    if idx.size == 0:
        return None
    code = flat[idx].astype(np.intp)  # np.take converts other index types on every call
    width = codes.shape[1]
    v, u = (x.astype(np.float32) for x in np.divmod(idx, width))
    zi = np.maximum(np.take(zbuf, idx), np.float32(1e-6))
    depth = np.float32(1.0) / zi
    r = [np.take(field, code) for field in rows.rows]  # the s row's coefficients, then the t row's
    off_s, off_t = (np.take(field, code) for field in rows.offsets)
    s = (r[0] * u + r[1] * v + r[2]) * depth - off_s
    t = (r[3] * u + r[4] * v + r[5]) * depth - off_t
    px_per_m = np.float32(fx) * zi  # pixels per metre at that depth (on a face turned to the camera)
    gain = np.empty(idx.size, np.float32)
    walls = kinds[idx] == FACADE
    gain[walls], lit_walls = _window_gain(s[walls], t[walls], px_per_m[walls], code[walls], rows, lit_share)
    leaves = ~walls
    gain[leaves] = _foliage_gain(s[leaves], t[leaves], px_per_m[leaves], code[leaves])
    lit = None
    if lit_walls is not None:
        lit = np.zeros(idx.size, np.float32)
        lit[walls] = lit_walls
    return SurfaceDetail(idx, gain, lit)
