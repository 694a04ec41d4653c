"""Scene description and the random scene sampler.

A :class:`Scene` is plain data: the camera, one or two roads (a crossing or T-junction adds the
second), lighting, image effects, a list of :class:`Thing` s built from boxes and, on some frames,
the ego vehicle's :class:`Bonnet` and :class:`Night`. Everything is
sampled from one ``numpy.random.Generator``, so a frame is a pure function of its seed. Nothing here
depends on the image size except the camera intrinsics: the same seed gives the same world at any
resolution. Coordinates are the world frame of :mod:`.geometry` (X right, Y up, Z forward).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from perception.classes import det_index, seg_index
from perception.data.sample import Camera
from perception.data.synthetic.geometry import thing_to_level
from perception.data.synthetic.surfaces import Facade, Foliage, sample_facade

# Marking styles of a lane line.
NONE, SOLID_WHITE, DASHED_WHITE, SOLID_YELLOW, DASHED_YELLOW, DOUBLE_YELLOW = range(6)
YELLOW_STYLES = (SOLID_YELLOW, DASHED_YELLOW, DOUBLE_YELLOW)
DASHED_STYLES = (DASHED_WHITE, DASHED_YELLOW)

CAR, TRUCK, BUS, PEDESTRIAN, CYCLIST, TRAFFIC_LIGHT, TRAFFIC_SIGN = (
    det_index(n) for n in ("car", "truck", "bus", "pedestrian", "cyclist", "traffic_light", "traffic_sign")
)
VEHICLE_LABELS = (CAR, TRUCK, BUS)
S_BUILDING, S_VEGETATION, S_POLE, S_VEHICLE, S_PERSON = (
    seg_index(n) for n in ("building", "vegetation", "pole_sign", "vehicle", "person")
)

Rgb = tuple[float, float, float]


@dataclass
class Road:
    """A road whose centre line passes (x0, z0) with ``heading`` (rad from +Z towards +X) and
    constant ``curvature`` (1/m, positive bends right, 0 straight).

    Lateral offset d is positive to the right of the direction of travel. Lane lines k = 0 ..
    lanes_left + lanes_right sit at d = (k - lanes_left) * lane_width; parking strips widen the
    surface beyond the outer lines, then come the curb and sidewalk (or a gravel shoulder).
    """

    x0: float
    z0: float
    heading: float
    curvature: float
    lane_width: float
    lanes_left: int
    lanes_right: int
    styles: tuple[int, ...]
    parking_left: float = 0.0
    parking_right: float = 0.0
    sidewalk: float = 0.0
    curb: float = 0.0
    shoulder: float = 0.0
    marking_width: float = 0.15
    dash_length: float = 3.0
    dash_period: float = 9.0
    dash_phase: float = 0.0
    side_of: int = 0  # T-junction arm: exists only where side_of * (lateral offset of road 0) > 0

    @property
    def left_edge(self) -> float:
        return self.lanes_left * self.lane_width + self.parking_left

    @property
    def right_edge(self) -> float:
        return self.lanes_right * self.lane_width + self.parking_right

    def half_corridor(self, sign: float) -> float:
        """Distance from the centre line to the outer edge of sidewalk / shoulder on one side."""
        edge = self.right_edge if sign > 0 else self.left_edge
        return edge + self.curb + self.sidewalk + self.shoulder

    def along_across(self, x, z):
        """(a, b): the position relative to (x0, z0) along the initial heading and to its right."""
        sh, ch = np.sin(self.heading), np.cos(self.heading)
        qx, qz = x - self.x0, z - self.z0
        return qx * sh + qz * ch, qx * ch - qz * sh

    def lateral(self, a, b):
        """Signed distance d from the centre line, from ``along_across``; exact on the circle."""
        k = self.curvature
        if k == 0.0:
            return b
        q2 = a * a + b * b
        return (2.0 * b - k * q2) / (1.0 + np.sqrt(np.maximum(1.0 - 2.0 * k * b + k * k * q2, 0.0)))

    def arc(self, a, b):
        """Arc length s of the closest centre-line point (valid within a half turn)."""
        k = self.curvature
        if k == 0.0:
            return a
        return np.arctan2(k * a, 1.0 - k * b) / k

    def ahead(self, a, b):
        """False on the far half of a curve's circle (which is not part of this road)."""
        return 1.0 - self.curvature * b > 0.0

    def frame(self, s: float, d: float) -> tuple[float, float, float]:
        """World (X, Z) at arc length s and offset d, and the heading there."""
        k, h = self.curvature, self.heading
        if k == 0.0:
            px, pz = self.x0 + s * np.sin(h), self.z0 + s * np.cos(h)
        else:
            px = self.x0 + (np.cos(h) - np.cos(h + k * s)) / k
            pz = self.z0 + (np.sin(h + k * s) - np.sin(h)) / k
        hs = h + k * s
        return float(px + d * np.cos(hs)), float(pz - d * np.sin(hs)), float(hs)


@dataclass
class Box:
    """An axis-aligned box in its thing's frame (x right, y up, z forward), from ``lo`` to ``hi``.

    ``instance`` parts form the thing's detection box (a traffic light's pole does not); ``faces``
    overrides the colour of some faces (0 -x, 1 +x, 2 -y, 3 +y, 4 -z, 5 +z). ``light`` marks a part
    that shines at night (:mod:`.night`): "street" a street lamp's head, which lights the street
    below it, "signal" a lit signal lamp, which glows in its own colour, "head" and "tail" a
    vehicle's lamps, which glow when the vehicle's lights are on (``Night.lit``).
    """

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    sem: int
    rgb: Rgb
    instance: bool = True
    faces: dict[int, Rgb] | None = None
    texture: float = 0.08  # amplitude of the screen-space texture on this box
    surface: Facade | Foliage | None = None  # detail drawn in the face's own metres (:mod:`.surfaces`)
    light: str | None = None  # None, "street", "signal", or a vehicle's "head" or "tail" lamp


@dataclass
class Thing:
    """A labelled object (``label`` indexes DETECTION_CLASSES) or stuff (``label`` -1) at (x, z)
    on the ground, turned by ``yaw`` (rad from +Z towards +X)."""

    label: int
    x: float
    z: float
    yaw: float
    parts: list[Box]


@dataclass
class Lighting:
    dusk: float  # 0 midday .. 1 dusk
    sun: tuple[float, float, float]  # unit vector towards the sun, world frame
    sun_strength: float
    ambient: float
    tint: Rgb  # per-channel gain (white balance, dusk warmth)
    exposure: float
    zenith: Rgb
    horizon: Rgb
    clouds: float
    shadows: bool = False  # direct sun (not overcast): things cast shadows on the ground


@dataclass
class Effects:
    fog_density: float  # 1/m; transmittance exp(-density * depth)
    fog_rgb: Rgb
    noise_sigma: float  # grey levels
    blur_sigma: float  # 0: no gaussian blur
    motion_blur: int  # kernel length in pixels, 0: none
    motion_angle: float
    vignette: float
    jpeg_quality: int
    texture_offset: tuple[int, int]  # into the cached texture fields, so frames differ
    noise_offset: tuple[int, int]


@dataclass
class Bonnet:
    """The ego vehicle's bonnet across the bottom of the frame, in fractions of the image size (so a
    seed gives the same bonnet at any resolution). Its top edge is the row ``height * (1 - top +
    drop * x**2 + tilt * x)`` with x = (u - centre * width) / (width / 2)."""

    top: float  # share of the image height it covers at its highest point
    drop: float  # how much lower (share of the height) its edge is half a width away from the centre
    centre: float  # column of its highest point, share of the width
    tilt: float
    rgb: Rgb  # paint
    gloss: float  # strength of the highlight band
    highlight: float  # distance of the band below the edge, share of the bonnet's height
    reflect: float  # share of the scene above that its paint mirrors near the edge


@dataclass
class Night:
    """Night on this frame: the sky and the ambient light dark, street lamps and the ego vehicle's
    low beams lighting what they reach, lamps glowing with a halo (see :mod:`.night`)."""

    street: float  # a street lamp's intensity: the shade of a surface facing it 1 m away
    street_rgb: Rgb  # its colour (sodium orange or white LED), mean 1
    beams: float  # the ego vehicle's low beams' peak intensity, likewise
    glare: float  # share of a lamp's light the lens spreads into a wide halo
    lit: tuple[int, ...]  # indices into ``Scene.things`` of the vehicles whose lamps are on
    windows: float = 0.0  # share of the façades' window panes lit from inside


@dataclass
class Scene:
    camera: Camera
    width: int
    height: int
    roads: list[Road]
    materials: dict[str, Rgb]  # ground albedo: road, white, yellow, sidewalk, curb, terrain, gravel
    lighting: Lighting
    effects: Effects
    things: list[Thing] = field(default_factory=list)
    kind: str = "straight"  # straight, curve, crossing, t_junction
    setting: str = "urban"  # urban, suburban, rural
    bonnet: Bonnet | None = None
    night: Night | None = None


# ----------------------------------------------------------------------------------------------
# Colours. Every class draws from wide, overlapping ranges so colour alone does not separate them.

CAR_COLOURS: list[Rgb] = [
    (235, 235, 235),
    (25, 25, 28),
    (150, 152, 155),
    (95, 97, 100),
    (160, 30, 30),
    (30, 60, 140),
    (40, 90, 50),
    (200, 190, 160),
    (210, 170, 40),
    (110, 60, 40),
    (70, 110, 150),
    (120, 130, 90),
]


def jitter(rng: np.random.Generator, rgb: Rgb, amount: float = 0.12) -> Rgb:
    """Multiplicative brightness jitter plus a little per-channel hue noise."""
    r = rng.random(4).tolist()  # one call: this runs a few hundred times per scene
    g = 1.0 + amount * (2.0 * r[0] - 1.0)
    return tuple(min(max(c * g * (1.0 + amount * (r[i + 1] - 0.5)), 3.0), 252.0) for i, c in enumerate(rgb))


def random_grey(rng: np.random.Generator, lo: float, hi: float, tint: float = 0.06) -> Rgb:
    return jitter(rng, (rng.uniform(lo, hi),) * 3, tint)


def vehicle_colour(rng: np.random.Generator) -> Rgb:
    return jitter(rng, CAR_COLOURS[rng.integers(len(CAR_COLOURS))])


def any_colour(rng: np.random.Generator) -> Rgb:
    """Paint (a bicycle frame, a cargo box): anything, with a bias towards dull colours."""
    c = rng.uniform(15, 235, 3)
    c = c.mean() + (c - c.mean()) * rng.uniform(0.1, 1.0)
    return float(c[0]), float(c[1]), float(c[2])


# What people wear, (colour, share) (rough shares read off street scenes: most trousers and coats are
# black, grey, navy or denim; bright colours are a minority, mostly on tops). Synthetic people in
# arbitrary paint colours taught "a person is a bright block", and real, darkly dressed pedestrians
# in front of a façade were called building.
BLACK, CHARCOAL, NAVY = (28, 28, 30), (55, 55, 58), (35, 40, 62)  # what most people wear, top and bottom
TROUSERS: tuple[tuple[Rgb, float], ...] = (
    (BLACK, 0.28),
    (CHARCOAL, 0.17),
    (NAVY, 0.12),
    ((58, 72, 100), 0.20),  # denim
    ((105, 105, 108), 0.08),  # grey
    ((150, 135, 105), 0.08),  # khaki
    ((80, 62, 48), 0.05),  # brown
    ((200, 200, 195), 0.02),  # light
)
TOPS: tuple[tuple[Rgb, float], ...] = (
    (BLACK, 0.22),
    (CHARCOAL, 0.14),
    ((120, 120, 122), 0.10),  # grey
    ((215, 215, 210), 0.12),  # white
    (NAVY, 0.10),
    ((170, 150, 120), 0.07),  # beige
    ((85, 62, 48), 0.06),  # brown
    ((75, 80, 55), 0.05),  # olive
    ((150, 35, 38), 0.06),  # red
    ((50, 80, 150), 0.05),  # blue
    ((40, 95, 60), 0.02),  # green
    ((200, 150, 40), 0.01),  # yellow
)


def clothing_colour(rng: np.random.Generator, palette: tuple[tuple[Rgb, float], ...]) -> Rgb:
    """A colour from ``palette`` by its shares, a little lighter or darker and tinted. Draws four
    numbers, as many as ``any_colour``, so that every later draw of the scene (and every label) is
    as it was when people wore arbitrary colours."""
    pick, shade, red, blue = rng.random(4).tolist()
    shares = np.cumsum([share for _, share in palette])
    rgb = palette[min(int(np.searchsorted(shares, pick * shares[-1], side="right")), len(palette) - 1)][0]
    g = 1.0 + 0.25 * (2.0 * shade - 1.0)
    tint = (1.0 + 0.1 * (red - 0.5), 1.0, 1.0 + 0.1 * (blue - 0.5))
    return tuple(min(max(c * g * t, 3.0), 252.0) for c, t in zip(rgb, tint, strict=True))


def green(rng: np.random.Generator) -> Rgb:
    base = [(60, 95, 35), (40, 70, 30), (95, 120, 50), (120, 110, 50), (150, 100, 40), (70, 80, 60)]
    return jitter(rng, base[rng.choice(len(base), p=[0.3, 0.25, 0.2, 0.1, 0.05, 0.1])], 0.2)


GLASS: Rgb = (40, 48, 58)
TYRE: Rgb = (25, 25, 25)
RIM: Rgb = (62, 63, 66)  # the outer wall of a wheel: tyre and rim, at the resolutions rendered here


# ----------------------------------------------------------------------------------------------
# Builders. Parts of one thing must not overlap (the renderer orders them by separating planes).


def car(rng: np.random.Generator) -> Thing:
    kind = rng.choice(["sedan", "suv", "van"], p=[0.6, 0.28, 0.12])
    length = {"sedan": rng.uniform(3.7, 4.9), "suv": rng.uniform(4.2, 5.0), "van": rng.uniform(4.8, 5.6)}[kind]
    width = rng.uniform(1.65, 1.95)
    body_h = {"sedan": rng.uniform(0.5, 0.65), "suv": rng.uniform(0.7, 0.85), "van": rng.uniform(1.3, 1.6)}[kind]
    colour = vehicle_colour(rng)
    clear = rng.uniform(0.25, 0.35)
    glass = jitter(rng, GLASS, 0.25)
    top = clear + body_h  # the waist, where the cabin starts
    parts = car_body(length, width, clear, top, WHEEL_RADIUS_M[kind], colour)
    cab_l = length * (rng.uniform(0.42, 0.55) if kind == "sedan" else rng.uniform(0.6, 0.72))
    cab_h = rng.uniform(0.42, 0.55) if kind != "van" else rng.uniform(0.35, 0.5)
    cab_z = -length / 2 + 0.15 + rng.uniform(0.1, 0.25) * (length - cab_l)
    windows = {0: glass, 1: glass, 4: glass, 5: glass}
    parts.append(
        Box((-width * 0.44, top, cab_z), (width * 0.44, top + cab_h, cab_z + cab_l), S_VEHICLE, colour, faces=windows)
    )
    parts += lamps_and_plates(width / 2, length / 2, min(top - 0.2, 0.75), clear + 0.12)
    return Thing(CAR, 0.0, 0.0, 0.0, parts)


WHEEL_RADIUS_M = {"sedan": 0.31, "suv": 0.36, "van": 0.34}
WHEEL_WIDTH_M, WHEEL_INSET_M = 0.22, 0.04  # a tyre's tread, and how far its wall sits inside the body's side
AXLES = (0.22, 0.19)  # rear and front overhang beyond the axles, shares of the length


def car_body(length: float, width: float, clear: float, top: float, radius: float, colour: Rgb) -> list[Box]:
    """A car from the ground to its waist: four wheels in their arches, the body round them down to
    the sills at ``clear`` above the ground, a dark under-body between the wheels. Drawn from no
    random numbers, so a car's wheels leave every other draw of the world as it was.

    The body is three sections from the sills to ``top`` (behind, between and ahead of the axles)
    and a block over each axle down to the wheel tops; the wheels fill the arches' outer strips and
    the under-body the space between them, so no ray sees into the car through an arch. Every
    section ends at ``top``, so no horizontal seam crosses a side (a seam's crack would show a lit
    top face)."""
    half, inner = width / 2, width / 2 - WHEEL_INSET_M - WHEEL_WIDTH_M
    rear, front = -length / 2 + AXLES[0] * length, length / 2 - AXLES[1] * length
    arch = 2 * radius
    parts = [Box((-inner, 0.0, -length / 2 + 0.35), (inner, clear, length / 2 - 0.35), S_VEHICLE, TYRE)]
    for z0, z1 in ((-length / 2, rear - radius), (rear + radius, front - radius), (front + radius, length / 2)):
        parts.append(Box((-half, clear, z0), (half, top, z1), S_VEHICLE, colour))
    for axle in (rear, front):
        parts.append(Box((-half, arch, axle - radius), (half, top, axle + radius), S_VEHICLE, colour))
        for side, face in ((-1, 0), (1, 1)):
            x0, x1 = sorted((side * inner, side * (half - WHEEL_INSET_M)))
            parts.append(Box((x0, 0.0, axle - radius), (x1, arch, axle + radius), S_VEHICLE, TYRE, faces={face: RIM}))
    return parts


LAMP_M, PLATE_M = (0.3, 0.14), (0.52, 0.12)  # a lamp's and a number plate's width and height
PROUD_M = 0.02  # how far both stand out of the body
LAMP_RGB = {"head": (205.0, 205.0, 200.0), "tail": (165.0, 28.0, 30.0)}  # the lenses by day
PLATE_RGB: Rgb = (225.0, 225.0, 215.0)


def lamps_and_plates(half: float, end: float, lamp_y: float, plate_y: float) -> list[Box]:
    """Head lamps at the front corners (z = ``end``) and tail lamps at the back ones (z = -``end``),
    their lenses from ``lamp_y`` up, ``half`` out from the centre line at most, and a number plate in the
    middle of each end from ``plate_y`` up: thin boxes standing proud of the body, drawn from no random
    numbers. At night the lit vehicles' lamps glow where these are (:func:`.night.vehicle_lamps`)."""
    w, h = LAMP_M
    parts = []
    for light, z0, z1 in (("head", end, end + PROUD_M), ("tail", -end - PROUD_M, -end)):
        for side in (-1, 1):
            x0, x1 = sorted((side * (half - 0.04), side * (half - 0.04 - w)))
            parts.append(Box((x0, lamp_y, z0), (x1, lamp_y + h, z1), S_VEHICLE, LAMP_RGB[light], light=light))
        plate = (-PLATE_M[0] / 2, plate_y, z0), (PLATE_M[0] / 2, plate_y + PLATE_M[1], z1)
        parts.append(Box(*plate, S_VEHICLE, PLATE_RGB, texture=0.02))
    return parts


def truck(rng: np.random.Generator) -> Thing:
    width, cab_l, cargo_l = rng.uniform(2.3, 2.55), rng.uniform(1.9, 2.4), rng.uniform(4.5, 9.5)
    cab_h, cargo_h = rng.uniform(2.6, 3.2), rng.uniform(3.0, 4.0)
    total = cab_l + 0.3 + cargo_l
    z0 = -total / 2
    cab_colour, cargo_colour = vehicle_colour(rng), any_colour(rng) if rng.random() < 0.5 else vehicle_colour(rng)
    glass = jitter(rng, GLASS, 0.2)
    parts = [
        Box((-width / 2 + 0.15, 0.0, z0), (width / 2 - 0.15, 0.9, z0 + cargo_l), S_VEHICLE, TYRE),
        Box((-width / 2, 0.9, z0), (width / 2, 0.9 + cargo_h, z0 + cargo_l), S_VEHICLE, cargo_colour),
        Box((-width / 2 + 0.15, 0.0, z0 + cargo_l), (width / 2 - 0.15, 0.5, total / 2), S_VEHICLE, TYRE),
        Box(
            (-width / 2 + 0.05, 0.5, z0 + cargo_l + 0.3),
            (width / 2 - 0.05, 0.5 + cab_h, total / 2),
            S_VEHICLE,
            cab_colour,
            faces={5: glass},
        ),
    ]
    parts += lamps_and_plates(width / 2 - 0.05, total / 2, 0.95, 0.95)
    return Thing(TRUCK, 0.0, 0.0, 0.0, parts)


def bus(rng: np.random.Generator) -> Thing:
    length, width = rng.uniform(9.5, 13.0), 2.55
    colour = jitter(
        rng, [(220, 200, 40), (200, 40, 35), (235, 235, 235), (40, 90, 160), (60, 130, 70)][rng.integers(5)]
    )
    glass = jitter(rng, GLASS, 0.2)
    lo, hi = -length / 2, length / 2
    parts = [
        Box((-width / 2 + 0.1, 0.0, lo + 0.6), (width / 2 - 0.1, 0.35, hi - 0.6), S_VEHICLE, TYRE),
        Box((-width / 2, 0.35, lo), (width / 2, 1.25, hi), S_VEHICLE, colour),
        Box((-width / 2, 1.25, lo), (width / 2, 2.45, hi), S_VEHICLE, colour, faces={0: glass, 1: glass, 5: glass}),
        Box((-width / 2, 2.45, lo), (width / 2, rng.uniform(2.9, 3.2), hi), S_VEHICLE, colour),
    ]
    parts += lamps_and_plates(width / 2, hi, 0.75, 0.45)
    return Thing(BUS, 0.0, 0.0, 0.0, parts)


def person_parts(rng: np.random.Generator, height: float, base: float = 0.0, legs: bool = True) -> list[Box]:
    w = height * rng.uniform(0.22, 0.27)
    d = w * 0.6
    leg_h, torso_h = height * 0.47, height * 0.37
    head = height - leg_h - torso_h
    skin = jitter(rng, [(230, 190, 160), (190, 140, 100), (120, 80, 55), (80, 55, 40)][rng.integers(4)], 0.1)
    trousers = (-w * 0.4, base, -d * 0.45), (w * 0.4, base + leg_h, d * 0.45)
    parts = [] if not legs else [Box(*trousers, S_PERSON, clothing_colour(rng, TROUSERS))]
    y = base + leg_h
    parts.append(Box((-w / 2, y, -d / 2), (w / 2, y + torso_h, d / 2), S_PERSON, clothing_colour(rng, TOPS)))
    hair = jitter(rng, [(30, 25, 20), (90, 60, 30), (200, 170, 110), (120, 120, 120)][rng.integers(4)], 0.2)
    parts.append(
        Box(
            (-head * 0.38, y + torso_h, -head * 0.42),
            (head * 0.38, height + base, head * 0.42),
            S_PERSON,
            skin,
            faces={3: hair, 4: hair},
        )
    )
    return parts


def pedestrian(rng: np.random.Generator) -> Thing:
    height = rng.uniform(1.55, 1.95) if rng.random() < 0.85 else rng.uniform(1.0, 1.4)
    return Thing(PEDESTRIAN, 0.0, 0.0, 0.0, person_parts(rng, height))


def cyclist(rng: np.random.Generator) -> Thing:
    motor = rng.random() < 0.3
    length = rng.uniform(1.9, 2.2) if motor else rng.uniform(1.6, 1.8)
    width = rng.uniform(0.4, 0.6) if motor else 0.12
    frame = vehicle_colour(rng) if motor else any_colour(rng)
    seat, wheel = (0.75, 0.7) if motor else (0.9, 0.68)
    gap = 0.22
    parts = [
        Box((-width / 2, 0.0, -length / 2), (width / 2, wheel, -gap), S_VEHICLE, frame),
        Box((-width / 2, 0.0, gap), (width / 2, wheel + 0.25, length / 2), S_VEHICLE, frame),
        Box((-0.17, 0.3, -gap), (0.17, seat, gap), S_PERSON, clothing_colour(rng, TROUSERS)),
    ]
    rider = person_parts(rng, rng.uniform(0.75, 0.95), base=seat, legs=False)
    return Thing(CYCLIST, 0.0, 0.0, 0.0, parts + rider)


def pole(x: float, z: float, height: float, width: float, colour: Rgb) -> Box:
    return Box(
        (x - width / 2, 0.0, z - width / 2), (x + width / 2, height, z + width / 2), S_POLE, colour, instance=False
    )


def traffic_light(rng: np.random.Generator, arm: float = 0.0) -> Thing:
    """A pole with a signal head facing +z; with ``arm`` > 0 the head hangs from an arm towards +x."""
    metal = random_grey(rng, 60, 150)
    height = rng.uniform(2.6, 3.6) if arm == 0 else rng.uniform(5.0, 6.2)
    parts = [pole(0.0, 0.0, height, 0.14, metal)]
    hx = 0.0
    if arm > 0:
        parts.append(Box((0.07, height - 0.25, -0.06), (arm, height - 0.12, 0.06), S_POLE, metal, instance=False))
        hx = arm - 0.4
    housing = jitter(rng, (35, 35, 35) if rng.random() < 0.7 else (160, 140, 30), 0.2)
    top = height - (0.3 if arm > 0 else -0.95)
    lit = rng.integers(3)
    parts.append(Box((hx - 0.17, top - 0.95, 0.07), (hx + 0.17, top, 0.4), S_POLE, housing))
    for i, lamp in enumerate([(255, 40, 30), (255, 190, 20), (40, 255, 120)]):
        y = top - 0.3 * (i + 1) + 0.02
        rgb = lamp if i == lit else tuple(c * 0.25 for c in lamp)
        light = "signal" if i == lit else None
        parts.append(Box((hx - 0.1, y, 0.4), (hx + 0.1, y + 0.2, 0.45), S_POLE, rgb, texture=0.02, light=light))
    return Thing(TRAFFIC_LIGHT, 0.0, 0.0, 0.0, parts)


def traffic_sign(rng: np.random.Generator) -> Thing:
    """A plate facing +z on a pole; the plate's front colour varies like real signs."""
    size = rng.uniform(0.45, 0.9)
    wide = rng.uniform(1.0, 2.0) if rng.random() < 0.25 else 1.0
    height = rng.uniform(1.7, 2.6)
    front = jitter(
        rng,
        [(200, 30, 30), (30, 70, 170), (235, 235, 235), (230, 190, 30), (30, 120, 60)][
            rng.choice(5, p=[0.3, 0.25, 0.2, 0.15, 0.1])
        ],
        0.15,
    )
    back = random_grey(rng, 110, 180)
    parts = [
        pole(0.0, 0.0, height, 0.07, back),
        Box((-size * wide / 2, height, 0.04), (size * wide / 2, height + size, 0.08), S_POLE, back, faces={5: front}),
    ]
    return Thing(TRAFFIC_SIGN, 0.0, 0.0, 0.0, parts)


def building(rng: np.random.Generator, length: float, depth: float, setting: str) -> Thing:
    height = {"urban": rng.uniform(6, 30), "suburban": rng.uniform(4, 9), "rural": rng.uniform(3.5, 8)}[setting]
    base = [(150, 150, 150), (190, 180, 160), (160, 90, 70), (110, 100, 95), (220, 215, 205), (90, 95, 105)]
    colour = jitter(rng, base[rng.integers(len(base))], 0.2)
    faces = {3: random_grey(rng, 50, 140)}
    return Thing(
        -1,
        0.0,
        0.0,
        0.0,
        [
            Box(
                (-depth / 2, 0.0, -length / 2),
                (depth / 2, height, length / 2),
                S_BUILDING,
                colour,
                faces=faces,
                texture=0.12,
            )
        ],
    )


def tree(rng: np.random.Generator) -> Thing:
    trunk_h, trunk_w = rng.uniform(1.2, 3.0), rng.uniform(0.2, 0.45)
    crown_w, crown_h = rng.uniform(2.0, 6.0), rng.uniform(2.0, 6.0)
    leaf = green(rng)
    parts = [
        Box(
            (-trunk_w / 2, 0.0, -trunk_w / 2),
            (trunk_w / 2, trunk_h, trunk_w / 2),
            S_VEGETATION,
            jitter(rng, (80, 60, 45), 0.2),
            texture=0.1,
        ),
        Box(
            (-crown_w / 2, trunk_h, -crown_w / 2),
            (crown_w / 2, trunk_h + crown_h, crown_w / 2),
            S_VEGETATION,
            leaf,
            texture=0.3,
            surface=Foliage(),
        ),
    ]
    if rng.random() < 0.5:
        w = crown_w * rng.uniform(0.5, 0.75)
        y = trunk_h + crown_h
        parts.append(
            Box(
                (-w / 2, y, -w / 2),
                (w / 2, y + crown_h * rng.uniform(0.3, 0.6), w / 2),
                S_VEGETATION,
                jitter(rng, leaf, 0.08),
                texture=0.3,
                surface=Foliage(),
            )
        )
    return Thing(-1, 0.0, 0.0, 0.0, parts)


def hedge(rng: np.random.Generator, length: float) -> Thing:
    w, h = rng.uniform(0.6, 1.5), rng.uniform(0.6, 1.8)
    return Thing(
        -1,
        0.0,
        0.0,
        0.0,
        [
            Box(
                (-w / 2, 0.0, -length / 2),
                (w / 2, h, length / 2),
                S_VEGETATION,
                green(rng),
                texture=0.3,
                surface=Foliage(),
            )
        ],
    )


def wall(rng: np.random.Generator, length: float) -> Thing:
    w, h = rng.uniform(0.15, 0.4), rng.uniform(0.8, 2.5)
    colour = random_grey(rng, 90, 210) if rng.random() < 0.7 else jitter(rng, (150, 100, 70), 0.2)
    return Thing(
        -1, 0.0, 0.0, 0.0, [Box((-w / 2, 0.0, -length / 2), (w / 2, h, length / 2), S_BUILDING, colour, texture=0.15)]
    )


def streetlight(rng: np.random.Generator) -> Thing:
    """A lamp post at x = 0 with its arm reaching towards -x (over the road when turned so)."""
    metal = random_grey(rng, 70, 170)
    h, arm = rng.uniform(6.0, 9.0), rng.uniform(1.0, 2.5)
    return Thing(
        -1,
        0.0,
        0.0,
        0.0,
        [
            pole(0.0, 0.0, h, 0.18, metal),
            Box((-arm, h - 0.15, -0.07), (-0.09, h, 0.07), S_POLE, metal, instance=False),
            Box(
                (-arm - 0.5, h - 0.25, -0.15),
                (-arm, h, 0.15),
                S_POLE,
                random_grey(rng, 150, 230),
                instance=False,
                light="street",
            ),
        ],
    )


# ----------------------------------------------------------------------------------------------
# The sampler.


def sample_camera(rng: np.random.Generator, width: int, height: int) -> Camera:
    hfov = np.deg2rad(rng.uniform(48.0, 100.0))
    fx = width / (2.0 * np.tan(hfov / 2.0))
    cam_h = rng.uniform(1.2, 1.8) if rng.random() < 0.8 else rng.uniform(1.8, 2.8)
    return Camera(
        fx=float(fx),
        fy=float(fx),
        cx=float(width / 2 + rng.normal(0, 0.01) * width),
        cy=float(height / 2 + rng.normal(0, 0.015) * height),
        height_m=float(cam_h),
        pitch_rad=float(np.clip(rng.normal(0.035, 0.03), -0.03, 0.14)),
        roll_rad=float(np.clip(rng.normal(0.0, 0.008), -0.025, 0.025)),
    )


def sample_styles(rng: np.random.Generator, left: int, right: int, setting: str) -> tuple[int, ...]:
    edge = SOLID_WHITE if setting != "rural" or rng.random() < 0.6 else NONE
    lanes = DASHED_WHITE if rng.random() < 0.85 else SOLID_WHITE
    if left == 0:
        centre = edge
    elif rng.random() < 0.5:  # yellow centre line (North America) or white (Europe)
        centre = rng.choice([DOUBLE_YELLOW, SOLID_YELLOW, DASHED_YELLOW], p=[0.5, 0.25, 0.25])
    else:
        centre = rng.choice([DASHED_WHITE, SOLID_WHITE, NONE], p=[0.6, 0.3, 0.1])
    styles = []
    for k in range(left + right + 1):
        styles.append(edge if k in (0, left + right) else centre if k == left else lanes)
    if left > 0 and left + right > 0:
        styles[left] = int(centre)
    return tuple(int(s) for s in styles)


def sample_road(rng: np.random.Generator, setting: str, curvature: float) -> Road:
    left = int(rng.choice([0, 1, 2, 3], p=[0.12, 0.5, 0.28, 0.1]))
    right = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
    lane_w = rng.uniform(2.9, 3.8)
    urban = setting != "rural"
    return Road(
        x0=0.0,
        z0=0.0,
        heading=0.0,
        curvature=curvature,
        lane_width=lane_w,
        lanes_left=left,
        lanes_right=right,
        styles=sample_styles(rng, left, right, setting),
        parking_left=rng.uniform(2.1, 2.6) if urban and left > 0 and rng.random() < 0.3 else 0.0,
        parking_right=rng.uniform(2.1, 2.6) if urban and rng.random() < 0.35 else 0.0,
        sidewalk=rng.uniform(2.0, 5.0) if setting == "urban" else rng.uniform(1.2, 2.5) if urban else 0.0,
        curb=rng.uniform(0.15, 0.35) if urban else 0.0,
        shoulder=0.0 if urban else rng.uniform(0.0, 1.8),
        marking_width=rng.uniform(0.1, 0.22),
        dash_length=rng.uniform(1.5, 4.5),
        dash_period=rng.uniform(6.0, 13.0),
        dash_phase=rng.uniform(0.0, 13.0),
    )


def sample_lighting(rng: np.random.Generator) -> Lighting:
    dusk = float(rng.beta(0.7, 1.6))
    overcast = rng.random() < 0.3
    elev = np.deg2rad(60.0 - 57.0 * dusk)
    az = rng.uniform(-np.pi, np.pi)
    sun = (float(np.cos(elev) * np.sin(az)), float(np.sin(elev)), float(np.cos(elev) * np.cos(az)))
    warm = np.array([1.0 + 0.15 * dusk, 1.0 - 0.05 * dusk, 1.0 - 0.3 * dusk]) * rng.uniform(0.93, 1.07, 3)
    day_zenith, dusk_zenith = np.array([70, 125, 205]), np.array([45, 55, 105])
    day_horizon, dusk_horizon = np.array([185, 205, 228]), np.array([235, 150, 95])
    zenith = (1 - dusk) * day_zenith + dusk * dusk_zenith
    horizon = (1 - dusk) * day_horizon + dusk * dusk_horizon
    if overcast:
        grey = rng.uniform(150, 215)
        zenith = 0.25 * zenith + 0.75 * grey
        horizon = 0.25 * horizon + 0.75 * (grey + 15)
    return Lighting(
        dusk=dusk,
        sun=sun,
        sun_strength=float((0.15 if overcast else 0.7) * (1 - 0.5 * dusk)),
        ambient=float((0.8 if overcast else 0.45) * (1 - 0.35 * dusk)),
        tint=tuple(float(c) for c in warm),
        exposure=float(rng.uniform(0.95, 1.25) * (1 - 0.45 * dusk)),
        zenith=tuple(float(c) for c in jitter(rng, tuple(zenith), 0.08)),
        horizon=tuple(float(c) for c in jitter(rng, tuple(horizon), 0.06)),
        clouds=float(rng.uniform(0.0, 0.15)),
        shadows=not overcast,
    )


def sample_effects(rng: np.random.Generator, lighting: Lighting) -> Effects:
    fog = 0.0 if rng.random() < 0.55 else float(rng.choice([rng.uniform(0.002, 0.01), rng.uniform(0.01, 0.04)]))
    fog_rgb = np.asarray(lighting.horizon) * 0.6 + rng.uniform(150, 210) * 0.4
    return Effects(
        fog_density=fog,
        fog_rgb=tuple(float(c) for c in fog_rgb),
        noise_sigma=float(rng.uniform(0.5, 4.0) + 6.0 * lighting.dusk * rng.random()),
        blur_sigma=float(rng.uniform(0.3, 1.3)) if rng.random() < 0.45 else 0.0,
        motion_blur=int(rng.integers(3, 10)) if rng.random() < 0.15 else 0,
        motion_angle=float(rng.normal(0.0, 20.0)),
        vignette=float(rng.uniform(0.0, 0.35)),
        jpeg_quality=int(rng.integers(40, 96)),
        texture_offset=(int(rng.integers(0, 256)), int(rng.integers(0, 256))),
        noise_offset=(int(rng.integers(0, 64)), int(rng.integers(0, 64))),
    )


BONNET_COLOURS: list[Rgb] = [(18, 18, 20), (30, 32, 36), (60, 62, 66), (120, 122, 126), (200, 200, 202), (90, 20, 20)]


def sample_bonnet(rng: np.random.Generator) -> Bonnet | None:
    """The ego vehicle's bonnet on a quarter of the frames (mostly dark paint), else None."""
    if rng.random() >= 0.25:
        return None
    colour = BONNET_COLOURS[rng.choice(len(BONNET_COLOURS), p=[0.3, 0.25, 0.15, 0.1, 0.1, 0.1])]
    return Bonnet(
        top=float(rng.uniform(0.05, 0.15)),
        drop=float(rng.uniform(0.01, 0.1)),
        centre=float(rng.uniform(0.42, 0.58)),
        tilt=float(rng.normal(0.0, 0.006)),
        rgb=jitter(rng, colour, 0.1),
        gloss=float(rng.uniform(0.3, 1.0)),
        highlight=float(rng.uniform(0.15, 0.45)),
        reflect=float(rng.uniform(0.15, 0.4)),
    )


def sample_materials(rng: np.random.Generator, setting: str) -> dict[str, Rgb]:
    asphalt = random_grey(rng, 55, 135, 0.05)
    terrain = [(95, 125, 55), (125, 120, 70), (150, 130, 90), (110, 105, 95), (70, 100, 45)]
    return {
        "road": asphalt,
        "white": random_grey(rng, 175, 240, 0.03),
        "yellow": jitter(rng, (215, 175, 45), 0.12),
        "sidewalk": random_grey(rng, 105, 195) if rng.random() < 0.8 else jitter(rng, (170, 110, 90), 0.15),
        "curb": random_grey(rng, 140, 215),
        "terrain": jitter(rng, terrain[rng.integers(len(terrain))], 0.15),
        "gravel": jitter(rng, (135, 125, 110), 0.15),
    }


class Placer:
    """Keeps dynamic things and roadside objects from overlapping (circles on the ground)."""

    def __init__(self) -> None:
        self.circles = np.zeros((4096, 3))  # x, z, radius; more than any scene needs
        self.count = 0

    def free(self, x: float, z: float, r: float) -> bool:
        c = self.circles[: self.count]
        return not bool((((c[:, 0] - x) ** 2 + (c[:, 1] - z) ** 2) <= (c[:, 2] + r) ** 2).any())

    def take(self, x: float, z: float, r: float) -> None:
        if self.count < len(self.circles):
            self.circles[self.count] = x, z, r
            self.count += 1

    @staticmethod
    def _circles(x: float, z: float, yaw: float, length: float, width: float) -> list[tuple[float, float, float]]:
        """A length x width footprint as a row of circles along its heading."""
        r = width / 2 + 0.3
        n = max(1, int(np.ceil(length / width)))
        offsets = np.linspace(-(length - width) / 2, (length - width) / 2, n) if n > 1 else [0.0]
        return [(x + o * np.sin(yaw), z + o * np.cos(yaw), r) for o in offsets]

    def free_box(self, x: float, z: float, yaw: float, length: float, width: float) -> bool:
        return all(self.free(*c) for c in self._circles(x, z, yaw, length, width))

    def take_box(self, x: float, z: float, yaw: float, length: float, width: float) -> None:
        for c in self._circles(x, z, yaw, length, width):
            self.take(*c)


def in_corridor(roads: list[Road], x, z, margin: float = 0.0, skip: int = -1) -> bool:
    """Whether any of the points (x, z) lies on a road's surface, curb or sidewalk (plus ``margin``)."""
    x, z = np.atleast_1d(x), np.atleast_1d(z)
    for i, road in enumerate(roads):
        if i == skip:
            continue
        a, b = road.along_across(x, z)
        d = road.lateral(a, b)
        hit = (d > -road.half_corridor(-1) - margin) & (d < road.half_corridor(1) + margin) & road.ahead(a, b)
        if road.side_of != 0:
            a0, b0 = roads[0].along_across(x, z)
            hit &= road.side_of * roads[0].lateral(a0, b0) > 0
        if hit.any():
            return True
    return False


def exists(roads: list[Road], road: Road, x: float, z: float) -> bool:
    """False for points on the missing side of a T-junction's arm."""
    if road.side_of == 0:
        return True
    a, b = roads[0].along_across(x, z)
    return road.side_of * float(roads[0].lateral(a, b)) > 0


def place(thing: Thing, x: float, z: float, yaw: float) -> Thing:
    thing.x, thing.z, thing.yaw = x, z, yaw
    return thing


def sample_scene(rng: np.random.Generator, width: int, height: int) -> Scene:
    """One random driving scene; see the module docstring."""
    camera = sample_camera(rng, width, height)
    setting = str(rng.choice(["urban", "suburban", "rural"], p=[0.45, 0.3, 0.25]))
    kind = str(rng.choice(["straight", "curve", "crossing", "t_junction"], p=[0.3, 0.3, 0.22, 0.18]))
    if setting == "rural" and kind != "curve" and rng.random() < 0.5:
        kind = "curve"
    curvature = 0.0
    if kind == "curve":
        curvature = float(rng.choice([-1, 1]) / rng.uniform(60.0, 500.0))
    main = sample_road(rng, setting, curvature)
    # Put the camera in one of the right-hand lanes, slightly turned against the road.
    ego_d = (rng.integers(main.lanes_right) + 0.5) * main.lane_width + rng.normal(0.0, 0.25)
    main.heading = float(rng.normal(0.0, 0.03))
    main.x0 = float(-ego_d * np.cos(main.heading))
    main.z0 = float(ego_d * np.sin(main.heading))
    roads = [main]
    if kind in ("crossing", "t_junction"):
        s_cross = rng.uniform(12.0, 75.0)
        cx, cz, h = main.frame(s_cross, 0.0)
        cross = sample_road(rng, setting, 0.0)
        cross.lanes_left, cross.lanes_right = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        cross.styles = sample_styles(rng, cross.lanes_left, cross.lanes_right, setting)
        cross.parking_left = cross.parking_right = 0.0
        cross.x0, cross.z0 = cx, cz
        cross.heading = float(h + np.pi / 2 + rng.normal(0.0, 0.12))
        if kind == "t_junction":
            cross.side_of = int(rng.choice([-1, 1]))
        roads.append(cross)
    lighting = sample_lighting(rng)
    scene = Scene(
        camera=camera,
        width=width,
        height=height,
        roads=roads,
        materials=sample_materials(rng, setting),
        lighting=lighting,
        effects=sample_effects(rng, lighting),
        kind=kind,
        setting=setting,
    )
    crowd = float(rng.choice([0.0, 0.25, 0.7, 1.4, 2.5], p=[0.1, 0.2, 0.3, 0.25, 0.15]))
    populate(rng, scene, crowd)
    scene.bonnet = sample_bonnet(rng)  # drawn after the world: every earlier draw, and so the world, is as before
    sample_facades(rng, scene)  # ... and so is the bonnet
    sample_season(rng, scene)  # ... and so are the façades: a winter frame is a summer frame's world, leafless
    street = np.random.default_rng(int(rng.integers(2**62)))  # ... and so is the season, from a stream of their own:
    sample_furniture(street, scene)
    sample_shopfronts(street, scene)  # ... after the furniture, so the furniture is as without them
    sample_night(rng, scene)  # ... and so are the furniture and shops: a night frame is a day frame's world at night
    return scene


def sample_facades(rng: np.random.Generator, scene: Scene) -> None:
    """Windows for every building: a building-class part at least 3 m tall (walls are lower)."""
    for thing in scene.things:
        for part in thing.parts:
            if part.sem == S_BUILDING and part.hi[1] - part.lo[1] >= 3.0:
                part.surface = sample_facade(rng)


NIGHT_SHARE = 0.15  # of the frames; BDD100K, the largest public dash-camera set, is about a quarter night
WINDOWS_LIT = {"urban": (0.15, 0.5), "suburban": (0.1, 0.35), "rural": (0.05, 0.25)}  # share of panes
STREET_LAMPS: list[Rgb] = [(1.45, 0.95, 0.6), (1.05, 1.0, 0.95), (1.15, 1.0, 0.85)]  # sodium, LED, warm LED


def sample_night(rng: np.random.Generator, scene: Scene) -> None:
    """Night on NIGHT_SHARE of the frames: sets ``scene.night`` and darkens ``scene.lighting`` and
    ``scene.effects`` (no sun, a dark sky with the glow of a town on its horizon, more sensor noise).
    Drawn after everything else, so the world is the day frame's."""
    if rng.random() >= NIGHT_SHARE:
        return
    vehicles = [i for i, thing in enumerate(scene.things) if thing.label in VEHICLE_LABELS]
    lit = tuple(i for i, on in zip(vehicles, rng.random(len(vehicles)) < 0.75, strict=True) if on)  # parked: off
    glow = np.array([34.0, 27.0, 22.0]) if scene.setting != "rural" else np.array([10.0, 10.0, 13.0])
    light = scene.lighting
    scene.lighting = replace(
        light,
        dusk=1.0,
        sun_strength=0.0,
        ambient=float(rng.uniform(0.02, 0.08)),
        tint=tuple(float(c) for c in np.array([1.05, 1.0, 0.92]) * rng.uniform(0.95, 1.05, 3)),
        exposure=float(rng.uniform(1.0, 1.5)),
        zenith=jitter(rng, (4.0, 5.0, 9.0), 0.3),
        horizon=jitter(rng, tuple(glow * rng.uniform(0.5, 1.6)), 0.15),
        clouds=float(rng.uniform(0.0, 0.1)),
        shadows=False,
    )
    fx = scene.effects
    scene.effects = replace(
        fx,
        fog_rgb=tuple(float(c) * 0.8 for c in scene.lighting.horizon),
        noise_sigma=float(max(fx.noise_sigma, rng.uniform(3.0, 9.0))),
        motion_blur=fx.motion_blur or (int(rng.integers(3, 8)) if rng.random() < 0.15 else 0),
    )
    scene.night = Night(
        street=float(rng.uniform(25.0, 60.0)),
        street_rgb=STREET_LAMPS[rng.choice(len(STREET_LAMPS), p=[0.45, 0.35, 0.2])],
        beams=float(rng.uniform(250.0, 500.0)),
        glare=float(rng.uniform(0.1, 0.5)),
        lit=lit,
        windows=float(rng.uniform(*WINDOWS_LIT[scene.setting])),
    )


WINTER_SHARE = 0.35  # frames whose trees are bare (CamVid's validation sequence was filmed in winter)
EVERGREEN_SHARE = 0.2  # trees that keep their leaves in winter
BARK: Rgb = (95, 85, 75)


def sample_season(rng: np.random.Generator, scene: Scene) -> None:
    """Winter on WINTER_SHARE of the frames: the crowns of the trees bare (but for the evergreens)
    and bark-coloured, hedges leafy still. Drawn after the world, so the world is the summer frame's,
    from a stream of its own that takes one draw from ``rng``, so the night drawn next is the same
    whatever the season."""
    rng = np.random.default_rng(int(rng.integers(2**62)))
    if rng.random() >= WINTER_SHARE:
        return
    for thing in scene.things:
        crowns = [p for p in thing.parts if isinstance(p.surface, Foliage) and p.lo[1] > 0.0]  # hedges: on the ground
        if crowns and rng.random() >= EVERGREEN_SHARE:
            bark = jitter(rng, BARK, 0.25)
            for part in crowns:
                part.surface, part.rgb = Foliage(bare=True), bark


WALL_SIGNS_PER_M = {"urban": 1 / 7, "suburban": 1 / 25, "rural": 0.0}  # of façade facing a road
KERB_POSTS = {"urban": 2.5, "suburban": 1.2, "rural": 0.3}  # sign posts a road side, besides place_signs'
SHOP_SIGNS: list[Rgb] = [(200, 40, 40), (30, 60, 140), (235, 235, 225), (40, 40, 45), (30, 110, 60), (220, 170, 40)]


def sample_furniture(rng: np.random.Generator, scene: Scene) -> None:
    """Street furniture: signs hanging from the façades that face a road, and more sign posts by the
    kerbs, all pole_sign (a town street in CamVid has about 1.6 % pole_sign pixels, the world had
    0.9 %). Drawn after the season, from a stream of its own (``make_scene``'s ``street``), so the
    world and season are the frame's without it."""
    for thing in list(scene.things):
        for part in thing.parts:
            if isinstance(part.surface, Facade):
                front = road_side(scene.roads, thing, part)
                count = rng.poisson(WALL_SIGNS_PER_M[scene.setting] * (part.hi[2] - part.lo[2]))
                for z in rng.uniform(part.lo[2] + 0.6, part.hi[2] - 0.6, count):
                    scene.things.append(wall_sign(rng, thing, part, front, float(z)))
    for ri, road in enumerate(scene.roads):
        for side in (1, -1):
            edge = (road.right_edge if side > 0 else road.left_edge) + road.curb
            for _ in range(rng.poisson(KERB_POSTS[scene.setting])):
                s = rng.uniform(3.0, 100.0) if ri == 0 else rng.uniform(-80.0, 80.0)
                x, z, h = road.frame(float(s), side * (edge + rng.uniform(0.3, 0.8) + road.shoulder))
                if in_corridor(scene.roads, x, z, 0.5, skip=ri) or not exists(scene.roads, road, x, z):
                    continue
                if any(covers(thing, x, z, 0.5) for thing in scene.things):
                    continue
                scene.things.append(place(*roadside_sign(rng, x, z, h, side)))


SHOPFRONTS = {"urban": 0.6, "suburban": 0.15, "rural": 0.0}  # share of the façades facing a road


def sample_shopfronts(rng: np.random.Generator, scene: Scene) -> None:
    """Shopfronts along the ground floor of some façades that face a road (CamVid's and most town
    streets are lined with them: dark plate glass under a coloured fascia, all building). Drawn after
    the furniture, from its stream, so the frame is the same without them."""
    for thing in list(scene.things):
        for part in thing.parts:
            tall_enough = part.hi[1] - part.lo[1] >= SHOP_FLOOR_M[1] + FASCIA_M[1] + 2.0
            on_the_ground = isinstance(part.surface, Facade) and part.lo[1] == 0.0 and tall_enough
            if on_the_ground and rng.random() < SHOPFRONTS[scene.setting]:
                scene.things.extend(shopfront(rng, thing, part, road_side(scene.roads, thing, part)))


SHOP_FLOOR_M, FASCIA_M, SHOP_UNIT_M = (2.8, 3.8), (0.5, 0.9), (5.0, 12.0)  # glazing, sign band, one shop's frontage
FASCIA_PROUD_M = 0.06


def shopfront(rng: np.random.Generator, thing: Thing, part: Box, front: int) -> list[Thing]:
    """Give ``part``'s façade a shopfront on its ``front`` x face and return the fascias over it: one
    coloured band per shop, proud of the wall, in ``thing``'s frame (so placed where it is)."""
    glazing, fascia = rng.uniform(*SHOP_FLOOR_M), rng.uniform(*FASCIA_M)
    part.surface = replace(part.surface, shop_m=float(glazing), shop_side=front, bay_m=float(rng.uniform(1.8, 4.0)))
    wall = part.lo[0] if front < 0 else part.hi[0]
    x0, x1 = sorted((wall, wall + front * FASCIA_PROUD_M))
    bands, z = [], part.lo[2]
    while z < part.hi[2] - 1.0:
        end = min(z + rng.uniform(*SHOP_UNIT_M), part.hi[2])
        colour = jitter(rng, SHOP_SIGNS[rng.integers(len(SHOP_SIGNS))], 0.2)
        bands.append(Box((x0, glazing, z + 0.1), (x1, glazing + fascia, end - 0.1), S_BUILDING, colour, instance=False))
        z = end
    return [Thing(-1, thing.x, thing.z, thing.yaw, bands)]


def road_side(roads: list[Road], thing: Thing, part: Box) -> int:
    """Which of ``part``'s x faces (-1 or +1, in ``thing``'s frame) looks at the nearest road."""
    mid = (part.lo[2] + part.hi[2]) / 2
    faces = thing_to_level(thing.x, thing.z, thing.yaw, np.array([[part.lo[0], 0.0, mid], [part.hi[0], 0.0, mid]]), 0.0)
    low, high = (road_distance(roads, x, z) for x, _, z in faces)
    return -1 if low < high else 1


def road_distance(roads: list[Road], x: float, z: float) -> float:
    """How far (x, z) lies from the centre line of the nearest road that is there (a T-junction's
    arm is on one side of the main road only)."""
    near = [
        abs(float(road.lateral(a, b)))
        for road in roads
        for a, b in [road.along_across(x, z)]
        if road.ahead(a, b) and exists(roads, road, x, z)
    ]
    return min(near, default=float("inf"))


def wall_sign(rng: np.random.Generator, thing: Thing, part: Box, front: int, z: float) -> Thing:
    """A plate hanging from a bracket on the ``front`` x face of ``thing``'s ``part``, at ``z`` along
    it; in the thing's own frame, so placed where the thing is."""
    wall = part.lo[0] if front < 0 else part.hi[0]
    out = rng.uniform(0.5, 1.0)
    top = min(rng.uniform(2.6, 4.5), part.hi[1] - 0.3)
    tall = rng.uniform(0.35, 0.9)
    colour, metal = jitter(rng, SHOP_SIGNS[rng.integers(len(SHOP_SIGNS))], 0.2), random_grey(rng, 40, 90)

    def across(a: float, b: float) -> tuple[float, float]:
        return tuple(sorted((wall + front * a, wall + front * b)))

    (bx0, bx1), (px0, px1) = across(0.0, out), across(0.08, out)
    parts = [
        Box((bx0, top - 0.05, z - 0.02), (bx1, top, z + 0.02), S_POLE, metal, instance=False),
        Box(
            (px0, top - 0.05 - tall, z - 0.025),
            (px1, top - 0.05, z + 0.025),
            S_POLE,
            colour,
            instance=False,
            texture=0.05,
        ),
    ]
    return Thing(-1, thing.x, thing.z, thing.yaw, parts)


def covers(thing: Thing, x: float, z: float, margin: float) -> bool:
    """Whether (x, z) lies within ``margin`` of the footprint of one of ``thing``'s parts."""
    dx, dz = x - thing.x, z - thing.z
    c, s = np.cos(thing.yaw), np.sin(thing.yaw)
    lx, lz = dx * c - dz * s, dx * s + dz * c
    return any(
        p.lo[0] - margin < lx < p.hi[0] + margin and p.lo[2] - margin < lz < p.hi[2] + margin for p in thing.parts
    )


@dataclass
class Layout:
    """What the placement steps of :func:`populate` share: the scene's roads and things, how
    crowded it is, the :class:`Placer`, the camera's lane and the stretch of each road that gets things."""

    roads: list[Road]
    things: list[Thing]
    setting: str
    crowd: float
    placer: Placer
    ego_lane: int  # lane index of the camera on the main road, floor(lateral offset / lane width)
    ranges: list[tuple[float, float]]  # arc-length range (s_lo, s_hi) of each road

    @classmethod
    def of(cls, scene: Scene, crowd: float) -> Layout:
        placer = Placer()
        placer.take_box(0.0, 0.8, 0.0, 4.8, 1.9)  # the ego vehicle: the camera sits 1.5 m behind its front
        main = scene.roads[0]
        ego_lane = int(np.floor(main.lateral(*main.along_across(0.0, 0.0)) / main.lane_width))
        ranges = [(-20.0, 190.0)] + [(-110.0, 110.0)] * (len(scene.roads) - 1)
        return cls(scene.roads, scene.things, scene.setting, crowd, placer, ego_lane, ranges)

    def on_other_road(self, x, z, own: int, margin: float = 0.5) -> bool:
        """Whether (x, z) lies on the corridor of a road other than ``own`` (plus ``margin``)."""
        return in_corridor(self.roads, x, z, margin, skip=own)

    def exists(self, road: Road, x: float, z: float) -> bool:
        return exists(self.roads, road, x, z)

    def add(self, thing: Thing, x: float, z: float, yaw: float) -> None:
        self.things.append(place(thing, x, z, yaw))


def populate(rng: np.random.Generator, scene: Scene, crowd: float) -> None:
    """Fill ``scene.things``. The steps run in a fixed order: it is the order of the random draws."""
    layout = Layout.of(scene, crowd)
    place_vehicles(rng, layout)
    place_cyclists(rng, layout)
    place_pedestrians(rng, layout)
    place_traffic_lights(rng, layout)
    place_roadside(rng, layout)


def place_vehicles(rng: np.random.Generator, layout: Layout) -> None:
    """Vehicles in every lane and parked along the curb."""
    for ri in range(len(layout.roads)):
        place_lane_traffic(rng, layout, ri)
        place_parked_cars(rng, layout, ri)


def place_lane_traffic(rng: np.random.Generator, layout: Layout, ri: int) -> None:
    """Cars, trucks and buses in each lane of road ``ri``, in both directions."""
    road, (s_lo, s_hi) = layout.roads[ri], layout.ranges[ri]
    lanes = [(j + 0.5) * road.lane_width for j in range(road.lanes_right)]
    lanes += [-(j + 0.5) * road.lane_width for j in range(road.lanes_left)]
    for d_lane in lanes:
        count = rng.poisson(layout.crowd * rng.uniform(1.0, 4.0) * (0.6 if layout.setting == "rural" else 1.0))
        for s in np.sort(rng.uniform(-8.0 if ri == 0 else s_lo, s_hi, count)):
            maker = [car, truck, bus][rng.choice(3, p=[0.8, 0.12, 0.08])]
            thing = maker(rng)
            d = d_lane + rng.normal(0.0, 0.2)
            x, z, h = road.frame(float(s), d)
            if layout.on_other_road(x, z, ri, -0.5) or not layout.exists(road, x, z):
                continue
            yaw = h + (np.pi if d_lane < 0 else 0.0) + rng.normal(0.0, 0.03)
            length = max(p.hi[2] for p in thing.parts) * 2 + 1.0
            width = max(p.hi[0] for p in thing.parts) * 2
            if ri == 0 and int(np.floor(d_lane / road.lane_width)) == layout.ego_lane and s < 0:
                continue  # nothing behind the camera in its own lane
            if not layout.placer.free_box(x, z, yaw, length, width):
                continue
            layout.placer.take_box(x, z, yaw, length, width)
            layout.add(thing, x, z, yaw)


def place_parked_cars(rng: np.random.Generator, layout: Layout, ri: int) -> None:
    """Cars in the parking strips of road ``ri``, facing its direction on each side."""
    road, (s_lo, s_hi) = layout.roads[ri], layout.ranges[ri]
    for sign, park in ((1, road.parking_right), (-1, road.parking_left)):
        if park <= 0:
            continue
        for s in np.sort(rng.uniform(s_lo, s_hi, rng.poisson(layout.crowd * 8))):
            d = (
                sign * (road.lanes_right * road.lane_width + park / 2)
                if sign > 0
                else -(road.lanes_left * road.lane_width + park / 2)
            )
            x, z, h = road.frame(float(s), d + rng.normal(0.0, 0.1))
            thing = car(rng)
            if not layout.placer.free(x, z, 2.6) or layout.on_other_road(x, z, ri):
                continue
            layout.placer.take(x, z, 2.6)
            layout.add(thing, x, z, h + (0.0 if sign > 0 else np.pi) + rng.normal(0.0, 0.02))


def place_cyclists(rng: np.random.Generator, layout: Layout) -> None:
    """Cyclists near the right edge (either direction) and on the crossing road."""
    roads, placer = layout.roads, layout.placer
    for _ in range(rng.poisson(layout.crowd * 1.2)):
        ri = int(rng.integers(len(roads)))
        road = roads[ri]
        sign = 1 if rng.random() < 0.7 else -1
        edge = road.lanes_right * road.lane_width if sign > 0 else road.lanes_left * road.lane_width
        d = sign * (edge - rng.uniform(0.5, 1.2))
        x, z, h = road.frame(float(rng.uniform(3.0, 90.0) if ri == 0 else rng.uniform(-60, 60)), d)
        if road.lanes_left == 0 and sign < 0:
            continue
        if layout.on_other_road(x, z, ri, -0.5) or not placer.free(x, z, 1.2) or not layout.exists(road, x, z):
            continue
        placer.take(x, z, 1.2)
        layout.add(cyclist(rng), x, z, h + (0.0 if sign > 0 else np.pi) + rng.normal(0, 0.05))


def place_pedestrians(rng: np.random.Generator, layout: Layout) -> None:
    """Pedestrians on sidewalks / shoulders, some in groups, some crossing."""
    roads, placer = layout.roads, layout.placer
    for _ in range(rng.poisson(layout.crowd * (6.0 if layout.setting == "urban" else 2.5))):
        ri = int(rng.integers(len(roads)))
        road = roads[ri]
        sign = 1 if rng.random() < 0.5 else -1
        edge = road.right_edge if sign > 0 else road.left_edge
        width = max(road.sidewalk, 1.0)
        crossing = rng.random() < 0.12
        if crossing:
            d = rng.uniform(-road.left_edge, road.right_edge)
        else:
            d = sign * (edge + road.curb + rng.uniform(0.3, width - 0.2 if width > 0.6 else 0.6))
        s = rng.uniform(1.0, 70.0) if ri == 0 else rng.uniform(-50.0, 50.0)
        group = 1 if rng.random() < 0.7 else int(rng.integers(2, 5))
        for g in range(group):
            x, z, h = road.frame(float(s + g * rng.uniform(0.6, 1.2)), d + rng.normal(0.0, 0.3))
            if not layout.exists(road, x, z) or not placer.free(x, z, 0.35):
                continue
            placer.take(x, z, 0.35)
            yaw = h + (np.pi / 2 * sign if crossing else (0.0 if rng.random() < 0.5 else np.pi)) + rng.normal(0, 0.3)
            layout.add(pedestrian(rng), x, z, yaw)


def place_traffic_lights(rng: np.random.Generator, layout: Layout) -> None:
    """Traffic lights at the junction corners, facing the traffic that approaches them; without a
    junction, now and then one light by the main road."""
    roads, placer, main = layout.roads, layout.placer, layout.roads[0]
    if len(roads) > 1:
        cross = roads[1]
        for ri, road in enumerate(roads[:2]):
            other = roads[1 - ri]
            for sign in (1, -1):  # approach direction along this road
                if rng.random() < 0.15:
                    continue
                # corner on the approaching traffic's right side, before the other road
                s_at = 0.0 if ri == 1 else float(main.along_across(cross.x0, cross.z0)[0])
                back = other.half_corridor(1) + 0.5
                d = sign * (road.right_edge + road.curb + 0.4 if sign > 0 else road.left_edge + road.curb + 0.4)
                x, z, h = road.frame(s_at - sign * back, d)
                if not layout.exists(road, x, z) or not placer.free(x, z, 0.3):
                    continue
                placer.take(x, z, 0.3)
                arm = rng.uniform(2.5, 6.0) if rng.random() < 0.4 else 0.0
                light = traffic_light(rng, arm)
                yaw = h + (np.pi if sign > 0 else 0.0)  # +z of the light looks at the traffic
                layout.add(light, x, z, yaw)
    elif rng.random() < 0.15 * (layout.crowd > 0) + 0.1:
        s = rng.uniform(15.0, 80.0)
        x, z, h = main.frame(s, main.right_edge + main.curb + 0.4)
        if placer.free(x, z, 0.3):
            placer.take(x, z, 0.3)
            layout.add(traffic_light(rng, rng.uniform(2.5, 5.0) if rng.random() < 0.5 else 0.0), x, z, h + np.pi)


def place_roadside(rng: np.random.Generator, layout: Layout) -> None:
    """Signs, street lights, trees, hedges, walls and buildings along both sides of every road."""
    for ri, road in enumerate(layout.roads):
        for sign in (1, -1):
            edge = (road.right_edge if sign > 0 else road.left_edge) + road.curb
            place_signs(rng, layout, ri, sign, edge)
            place_streetlights(rng, layout, ri, sign, edge)
            place_trees(rng, layout, ri, sign, edge)
            place_buildings(rng, layout, ri, sign, edge)


def place_signs(rng: np.random.Generator, layout: Layout, ri: int, sign: int, edge: float) -> None:
    """Traffic signs just beyond ``edge`` (the outer side of the curb) on side ``sign`` of road ``ri``."""
    road, (s_lo, s_hi), placer = layout.roads[ri], layout.ranges[ri], layout.placer
    for _ in range(rng.poisson(1.5 if layout.setting != "rural" else 0.8)):
        s = rng.uniform(max(s_lo, 3.0), min(s_hi, 120.0))
        x, z, h = road.frame(float(s), sign * (edge + rng.uniform(0.3, 0.8) + road.shoulder))
        if not placer.free(x, z, 0.4) or layout.on_other_road(x, z, ri) or not layout.exists(road, x, z):
            continue
        placer.take(x, z, 0.4)
        layout.add(*roadside_sign(rng, x, z, h, sign))


def roadside_sign(
    rng: np.random.Generator, x: float, z: float, heading: float, side: int
) -> tuple[Thing, float, float, float]:
    """A traffic sign at (x, z) on ``side`` of a road whose heading there is ``heading``, and where to
    place it: on the right it faces the oncoming traffic, on the left either way."""
    facing = np.pi if side > 0 or rng.random() < 0.5 else 0.0
    return traffic_sign(rng), x, z, heading + facing + rng.normal(0.0, 0.1)


def place_streetlights(rng: np.random.Generator, layout: Layout, ri: int, sign: int, edge: float) -> None:
    """Evenly spaced street lights along one side (towns only, most roads)."""
    road, (s_lo, s_hi), placer = layout.roads[ri], layout.ranges[ri], layout.placer
    if layout.setting != "rural" and rng.random() < 0.6:
        step, s = rng.uniform(22.0, 40.0), s_lo + rng.uniform(0.0, 20.0)
        while s < s_hi:
            x, z, h = road.frame(float(s), sign * (edge + 0.5))
            if placer.free(x, z, 0.4) and not layout.on_other_road(x, z, ri) and layout.exists(road, x, z):
                placer.take(x, z, 0.4)
                layout.add(streetlight(rng), x, z, h + (0.0 if sign > 0 else np.pi))
            s += step


def place_trees(rng: np.random.Generator, layout: Layout, ri: int, sign: int, edge: float) -> None:
    """A row of trees with irregular gaps, on the sidewalk or beyond the shoulder."""
    road, (s_lo, s_hi), placer = layout.roads[ri], layout.ranges[ri], layout.placer
    tree_d = edge + (road.sidewalk * 0.75 if road.sidewalk > 0 else road.shoulder + rng.uniform(1.5, 6.0))
    tree_p = {"urban": 0.3, "suburban": 0.6, "rural": 0.7}[layout.setting]
    if rng.random() < tree_p:
        step, s = rng.uniform(6.0, 18.0), s_lo + rng.uniform(0.0, 10.0)
        while s < s_hi:
            x, z, h = road.frame(float(s), sign * (tree_d + rng.uniform(0.0, 1.0 if road.sidewalk else 8.0)))
            if (
                rng.random() < 0.8
                and placer.free(x, z, 1.0)
                and not layout.on_other_road(x, z, ri, 1.0)
                and layout.exists(road, x, z)
            ):
                placer.take(x, z, 1.0)
                layout.add(tree(rng), x, z, h + rng.uniform(0, np.pi))
            s += step * rng.uniform(0.6, 1.4)


def place_buildings(rng: np.random.Generator, layout: Layout, ri: int, sign: int, edge: float) -> None:
    """Buildings (or walls and hedges in the countryside) in slots along the road."""
    road, (s_lo, s_hi), setting = layout.roads[ri], layout.ranges[ri], layout.setting
    s = s_lo + rng.uniform(-5.0, 5.0)
    # all three are drawn whatever the setting (drawing only the one used would change every later draw)
    setback = {"urban": rng.uniform(0.0, 1.5), "suburban": rng.uniform(4.0, 12.0), "rural": rng.uniform(6.0, 25.0)}
    front = edge + road.sidewalk + road.shoulder + setback[setting]
    while s < s_hi:
        length = rng.uniform(8.0, 30.0) if setting == "urban" else rng.uniform(7.0, 16.0)
        gap = rng.uniform(0.0, 3.0) if setting == "urban" else rng.uniform(4.0, 25.0)
        r = rng.random()
        want = {"urban": 0.92, "suburban": 0.75, "rural": 0.3}[setting]
        if r < want:
            depth = rng.uniform(8.0, 20.0)
            thing = building(rng, length, depth, setting)
            dd = front + depth / 2 + rng.uniform(0.0, 1.0 if setting == "urban" else 4.0)
        elif r < want + 0.15:
            thing = (hedge if rng.random() < 0.6 else wall)(rng, length)
            dd = front - rng.uniform(0.0, 3.0 if setting != "urban" else 0.0) + 0.6
            depth = 1.5
        else:
            s += length + gap
            continue
        x, z, h = road.frame(float(s + length / 2), sign * dd)
        if layout.exists(road, x, z) and footprint_clear(layout.roads, x, z, h, length, depth):
            layout.add(thing, x, z, h)
        s += length + gap


def footprint_clear(roads: list[Road], x: float, z: float, yaw: float, length: float, depth: float) -> bool:
    """Whether all four corners (and the centre) of a depth x length footprint stay off every road corridor."""
    lx = np.array([-1.0, 1.0, -1.0, 1.0, 0.0]) * depth / 2
    lz = np.array([-1.0, -1.0, 1.0, 1.0, 0.0]) * length / 2
    cx, cz = x + lx * np.cos(yaw) + lz * np.sin(yaw), z - lx * np.sin(yaw) + lz * np.cos(yaw)
    return not in_corridor(roads, cx, cz, 0.3)
