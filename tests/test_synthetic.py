"""Label checks for the synthetic driving world: the labels must follow from the geometry exactly."""

from __future__ import annotations

import json
import math
from copy import deepcopy
from dataclasses import replace
from functools import cache

import cv2
import numpy as np
import pytest

from perception.classes import DETECTION_CLASSES, IGNORE_INDEX, SEGMENTATION_CLASSES, seg_index
from perception.data.sample import Camera, Sample
from perception.data.synthetic import SPLIT_SEEDS, SyntheticDataset, SynthFolderDataset, make_scene, render, surfaces
from perception.data.synthetic import scene as sc
from perception.data.synthetic.export import write_dataset
from perception.data.synthetic.geometry import level_to_camera, thing_to_level
from perception.data.synthetic.surfaces import SHOP_MULLION_M, SHOP_RISER_M

SMALL = {"height": 96, "width": 160}
MID = {"height": 192, "width": 320}
GROUND = [seg_index(n) for n in ("road", "lane_marking", "sidewalk", "terrain")]
ALLOWED = {  # semantic classes an instance's pixels may carry
    "car": {"vehicle"},
    "truck": {"vehicle"},
    "bus": {"vehicle"},
    "pedestrian": {"person"},
    "cyclist": {"person", "vehicle"},
    "traffic_light": {"pole_sign"},
    "traffic_sign": {"pole_sign"},
}


@cache
def small_samples(count: int = 40) -> list[Sample]:
    ds = SyntheticDataset("train", count, **SMALL)
    return [ds[i] for i in range(count)]


@cache
def full_samples(count: int = 50) -> list[Sample]:
    ds = SyntheticDataset("val", count)
    return [ds[i] for i in range(count)]


def all_samples() -> list[Sample]:
    return small_samples() + full_samples()[:12]


def test_sample_types():
    s = SyntheticDataset("train", 2)[1]
    n = len(s.boxes)
    assert s.image.shape == (384, 640, 3) and s.image.dtype == np.uint8
    assert s.semantic.shape == (384, 640) and s.semantic.dtype == np.uint8
    assert s.depth.shape == (384, 640) and s.depth.dtype == np.float32
    assert s.boxes.shape == (n, 4) and s.boxes.dtype == np.float32
    assert s.labels.shape == (n,) and s.labels.dtype == np.int64
    assert s.extras["instance"].dtype == np.int32
    assert s.extras["truncation"].shape == s.extras["occlusion"].shape == (n,)
    assert s.extras["source"] == "synthetic" and s.extras["id"] == "train-s0-0000001"
    assert set(np.unique(s.semantic).tolist()) <= set(range(len(SEGMENTATION_CLASSES))) | {IGNORE_INDEX}
    assert isinstance(s.camera, Camera) and s.camera.height_m > 1.0


def test_deterministic():
    a = SyntheticDataset("train", 10, **SMALL)[7]
    b = SyntheticDataset("train", 10, **SMALL)[7]
    for key in ("image", "semantic", "depth", "boxes", "labels"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    np.testing.assert_array_equal(a.extras["instance"], b.extras["instance"])
    assert a.camera == b.camera
    c = SyntheticDataset("train", 10, seed=1, **SMALL)[7]
    assert not np.array_equal(a.image, c.image)


def test_splits_disjoint():
    names = list(SPLIT_SEEDS)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ra, rb = SPLIT_SEEDS[a], SPLIT_SEEDS[b]
            assert ra.stop <= rb.start or rb.stop <= ra.start, (a, b)
    frames = {split: SyntheticDataset(split, 3, **SMALL)[0].image for split in names}
    assert not np.array_equal(frames["train"], frames["val"])
    assert not np.array_equal(frames["val"], frames["test"])
    with pytest.raises(ValueError):
        SyntheticDataset("train", len(SPLIT_SEEDS["train"]) + 1)


@pytest.mark.slow
def test_boxes_are_tight_around_visible_instance_pixels():
    for s in all_samples():
        inst = s.extras["instance"]
        assert set(np.unique(inst)) <= set(range(len(s.boxes) + 1))
        for i, box in enumerate(s.boxes):
            ys, xs = np.nonzero(inst == i + 1)
            assert len(ys) >= 12, s.extras["id"]
            np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def test_semantics_agree_with_instances_and_depth():
    for s in all_samples():
        inst = s.extras["instance"]
        for i, label in enumerate(s.labels):
            classes = {SEGMENTATION_CLASSES[c] for c in np.unique(s.semantic[inst == i + 1])}
            assert classes <= ALLOWED[DETECTION_CLASSES[label]], (s.extras["id"], DETECTION_CLASSES[label], classes)
        sky = s.semantic == seg_index("sky")
        assert (s.depth[sky] == 0).all()
        assert (s.depth >= 0).all() and s.depth.max() <= 200.0
        bonnet = s.semantic == IGNORE_INDEX  # the ego vehicle's bonnet: no depth, no instance
        assert (s.depth[bonnet] == 0).all() and (inst[bonnet] == 0).all()
        # Every other pixel that is not sky has a depth unless it is beyond the 200 m range, or seen
        # between the twigs of a bare crown (labelled vegetation, no depth).
        vegetation = s.semantic == seg_index("vegetation")
        assert (s.depth[~sky & ~bonnet & ~vegetation] > 0).mean() > 0.9


def analytic_ground_depth(camera: Camera, height: int, width: int) -> np.ndarray:
    """Ray / ground-plane distance (camera z) from the documented camera model, computed from scratch."""
    p, r = camera.pitch_rad, camera.roll_rad
    rot_pitch = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    rot_roll = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones_like(u)], -1)
    down = (rays @ (rot_pitch @ rot_roll).T)[..., 1]  # level-frame y (down) of a ray with camera z = 1
    with np.errstate(divide="ignore"):
        return np.where(down > 0, camera.height_m / down, np.inf)


def test_road_depth_is_the_analytic_plane_distance():
    checked = 0
    for s in all_samples():
        ground = np.isin(s.semantic, [seg_index(n) for n in ("road", "lane_marking", "sidewalk", "terrain")])
        ground &= s.depth > 0
        expected = analytic_ground_depth(s.camera, *s.size)
        np.testing.assert_allclose(s.depth[ground], expected[ground], rtol=2e-4)
        road = (s.semantic == seg_index("road")) & (s.depth > 0)
        checked += road.sum()
        assert np.isinf(expected[s.semantic == seg_index("sky")]).all()  # sky only above the horizon
    assert checked > 10_000


def two_car_scene(width: int = 320, height: int = 192) -> sc.Scene:
    """Three cars in an empty world: one ahead, one behind it and off to the side, one cut by the border."""
    scene = make_scene("train", 0, **{"height": height, "width": width})
    rng = np.random.default_rng(0)
    scene.things = [
        sc.place(sc.car(rng), 0.0, 9.0, 0.0),
        sc.place(sc.car(rng), 1.2, 16.0, 0.0),
        sc.place(sc.car(rng), 4.0, 4.5, 0.0),
    ]
    scene.effects.fog_density = 0.0
    scene.bonnet = None
    return scene


def test_occlusion_and_truncation_from_geometry():
    scene = two_car_scene()
    frame = render(scene)
    assert len(frame.boxes) == 3
    order = np.argsort(frame.boxes[:, 3] - frame.boxes[:, 1])  # smallest (farthest) first
    far, near, side = order[0], order[1], order[2]
    assert frame.occlusion[far] > 0.1
    assert frame.occlusion[near] == pytest.approx(0.0, abs=1e-6)
    assert frame.truncation[near] == 0.0 and frame.truncation[far] == 0.0
    assert frame.truncation[side] > 0.05 and frame.boxes[side, 2] == scene.width
    # Without the nearer car the farther one is whole, and its box only grows.
    alone = sc.Scene(**{**scene.__dict__, "things": [scene.things[1]]})
    solo = render(alone)
    assert len(solo.boxes) == 1 and solo.occlusion[0] == pytest.approx(0.0, abs=1e-6)
    assert (solo.boxes[0, :2] <= frame.boxes[far, :2]).all() and (solo.boxes[0, 2:] >= frame.boxes[far, 2:]).all()


def test_truncation_and_occlusion_occur_in_sampled_frames():
    truncated = occluded = 0
    for s in full_samples():
        h, w = s.size
        border = (s.boxes[:, 0] == 0) | (s.boxes[:, 1] == 0) | (s.boxes[:, 2] == w) | (s.boxes[:, 3] == h)
        truncated += int((s.extras["truncation"][border] > 0).sum())
        occluded += int((s.extras["occlusion"] > 0.3).sum())
        assert ((s.extras["truncation"] >= 0) & (s.extras["truncation"] <= 1)).all()
        assert ((s.extras["occlusion"] >= 0) & (s.extras["occlusion"] <= 1)).all()
    assert truncated >= 5 and occluded >= 5


def test_variety_over_fifty_frames():
    samples = full_samples()
    furniture = [DETECTION_CLASSES.index(n) for n in ("traffic_light", "traffic_sign")]
    counts = np.array([(~np.isin(s.labels, furniture)).sum() for s in samples])  # road users
    heights = np.concatenate([s.boxes[:, 3] - s.boxes[:, 1] for s in samples])
    labels = np.concatenate([s.labels for s in samples])
    kinds = {make_scene("val", i).kind for i in range(len(samples))}
    assert (counts <= 2).sum() >= 2, counts  # empty or nearly empty roads
    assert (counts >= 15).sum() >= 3, counts  # crowded ones
    assert (heights < 16).sum() >= 20  # small, far objects
    assert (heights > 100).sum() >= 3  # large, near ones
    assert set(labels.tolist()) == set(range(len(DETECTION_CLASSES)))
    assert {"curve", "crossing", "t_junction", "straight"} <= kinds
    present = set(np.concatenate([np.unique(s.semantic) for s in samples]).tolist())
    assert present - {IGNORE_INDEX} == set(range(len(SEGMENTATION_CLASSES)))
    focal = [s.camera.fx for s in samples]
    assert max(focal) / min(focal) > 1.5
    brightness = [s.image.mean() for s in samples]
    assert max(brightness) - min(brightness) > 40


def test_colour_alone_does_not_separate_classes():
    """Vehicles and roads, vegetation and terrain share colours: their colour ranges overlap."""
    samples = full_samples()[:20]

    def colours(name: str) -> np.ndarray:
        return np.concatenate([s.image[s.semantic == seg_index(name)] for s in samples]).astype(np.float32)

    for a, b in (("vehicle", "road"), ("vegetation", "terrain"), ("building", "sidewalk")):
        ca, cb = colours(a).mean(1), colours(b).mean(1)
        lo, hi = max(np.percentile(ca, 10), np.percentile(cb, 10)), min(np.percentile(ca, 90), np.percentile(cb, 90))
        assert hi > lo, (a, b)


def test_people_dress_mostly_dark_and_neutral_as_in_the_street():
    """Real pedestrians wear black, grey, navy and denim far more than bright colours; people painted
    any colour teach that a person is a bright block."""
    rng = np.random.default_rng(0)
    people = [sc.pedestrian(rng) for _ in range(400)]
    trousers, tops = (np.array([p.parts[i].rgb for p in people]) for i in (0, 1))
    dark = (luminance(trousers) < 110).mean()
    bright = (tops.max(1) - tops.min(1) > 90).mean()
    assert dark > 0.75, dark
    assert bright < 0.15, bright
    assert np.ptp(luminance(tops)) > 150  # from black coats to white shirts


def test_clothes_change_person_pixels_only(monkeypatch):
    """The clothes draw as many random numbers as the paint they replace: the same scenes, the same
    labels, new colours on people only."""
    changed_person = 0
    for i in range(6):
        frame = render(make_scene("train", i, **MID))
        with monkeypatch.context() as m:
            m.setattr(sc, "clothing_colour", lambda rng, palette: sc.any_colour(rng))
            painted = render(make_scene("train", i, **MID))
        for key in ("semantic", "depth", "instance", "boxes", "labels"):
            np.testing.assert_array_equal(getattr(frame, key), getattr(painted, key), err_msg=key)
        changed = (frame.image != painted.image).any(-1)
        person = (frame.semantic == seg_index("person")).astype(np.uint8)
        near = cv2.dilate(person, np.ones((33, 33), np.uint8)) > 0  # the camera's blur and JPEG blocks reach
        assert not (changed & ~near).any()
        changed_person += int((changed & (person > 0)).sum())
    assert changed_person > 1000


def test_same_world_at_any_resolution():
    small = SyntheticDataset("test", 4, **SMALL)[2]
    large = SyntheticDataset("test", 4, height=192, width=320)[2]
    assert large.camera.fx == pytest.approx(2 * small.camera.fx)
    agree = (large.semantic[1::2, 1::2] == small.semantic).mean()  # 2x2 block centres vs pixel centres
    assert agree > 0.85


def test_export_and_read_back(tmp_path):
    from perception.cli import main

    out = tmp_path / "synth"
    assert (
        main(
            [
                "data",
                "synth",
                "--out",
                str(out),
                "--count",
                "4",
                "--split",
                "val",
                "--width",
                "160",
                "--height",
                "96",
                "--workers",
                "2",
            ]
        )
        == 0
    )
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["count"] == 4 and meta["split"] == "val" and len(meta["generator_hash"]) == 16
    folder = SynthFolderDataset(out)
    memory = SyntheticDataset("val", 4, **SMALL)
    assert len(folder) == 4
    for i in range(4):
        a, b = memory[i], folder[i]
        assert a.extras["id"] == b.extras["id"]
        np.testing.assert_array_equal(a.image, b.image)  # same JPEG bytes
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.semantic, b.semantic)
        np.testing.assert_array_equal(a.extras["instance"], b.extras["instance"])
        np.testing.assert_allclose(a.depth, b.depth, atol=1 / 512 + 1e-6)
        np.testing.assert_allclose(a.extras["truncation"], b.extras["truncation"], atol=1e-4)
        np.testing.assert_allclose(a.extras["occlusion"], b.extras["occlusion"], atol=1e-4)
        assert a.camera == b.camera


def test_write_dataset_single_process(tmp_path):
    meta = write_dataset(tmp_path, 2, "test", 64, 96, workers=1)
    assert meta["ids"] == ["test-s0-0000000", "test-s0-0000001"]
    s = SynthFolderDataset(tmp_path)[1]
    assert s.image.shape == (64, 96, 3) and s.depth.dtype == np.float32


def test_things_beside_the_camera_are_clipped_not_dropped():
    """A car level with the camera (partly behind it) is drawn clipped at the near plane, truncated."""
    scene = two_car_scene()
    scene.camera = replace(scene.camera, fx=scene.width / 2, fy=scene.width / 2)  # 90 degrees wide
    scene.things = [sc.place(sc.car(np.random.default_rng(1)), -3.0, 1.0, 0.0)]
    frame = render(scene)
    assert len(frame.boxes) == 1 and frame.boxes[0, 0] == 0
    assert frame.truncation[0] > 0.2
    np.testing.assert_array_equal(frame.boxes[0], box_of(frame.instance == 1))


def box_of(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


# ----------------------------------------------------------------------------------------------
# Sun shadows and the ego vehicle's bonnet: they change the image only / occlude exactly.

LABEL_FIELDS = ("semantic", "depth", "instance", "boxes", "labels", "truncation", "occlusion")


def scenes_where(keep, count: int, split: str = "train") -> list[sc.Scene]:
    """The first ``count`` scenes of ``split`` (at MID size) for which ``keep(scene)`` holds."""
    found, index = [], 0
    while len(found) < count:
        scene = make_scene(split, index, **MID)
        if keep(scene):
            found.append(scene)
        index += 1
    return found


def no_shadows(scene: sc.Scene) -> sc.Scene:
    return replace(scene, lighting=replace(scene.lighting, shadows=False))


def luminance(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def test_shadows_only_on_sunny_frames():
    scenes = [make_scene("train", i, **SMALL) for i in range(80)]
    assert 10 < sum(not s.lighting.shadows for s in scenes if s.night is None) < 40  # overcast: about 30 %
    for s in scenes:  # overcast skies weaken the sun to at most 0.15, clear ones to at least 0.35
        assert s.lighting.shadows == (s.lighting.sun_strength > 0.25)


def test_sun_shadows_change_the_image_only():
    darkened = 0
    for scene in scenes_where(lambda s: s.lighting.shadows and len(s.things) > 10, 6):
        on, off = render(scene), render(no_shadows(scene))
        for key in LABEL_FIELDS:
            np.testing.assert_array_equal(getattr(on, key), getattr(off, key), err_msg=key)
        # Only the ground darkens (and the bonnet, which mirrors it); pixels far from both (blur spreads a
        # little) stay the same.
        ground = np.isin(on.semantic, GROUND).astype(np.uint8)
        near_ground = cv2.dilate(ground | (on.semantic == IGNORE_INDEX), np.ones((13, 13), np.uint8)) > 0
        np.testing.assert_array_equal(on.image[~near_ground], off.image[~near_ground])
        assert (on.image.astype(int) <= off.image.astype(int) + 1).all()  # shadows never brighten
        shadow = (luminance(off.image) - luminance(on.image) > 12) & (ground > 0)
        darkened += shadow.sum()
        if shadow.sum() > 200:  # sky-lit shade is bluer than sunlit ground
            ratio = (on.image[shadow].astype(float) + 1) / (off.image[shadow].astype(float) + 1)
            assert ratio[:, 2].mean() > ratio[:, 0].mean() + 0.02
    assert darkened > 2000


def test_sun_shadow_depth_follows_the_light():
    """In full shadow the ground keeps only the sky's light: 1 - sun / (ambient + sun) of it."""
    scene = scenes_where(lambda s: s.lighting.shadows and s.lighting.dusk < 0.3 and len(s.things) > 10, 1)[0]
    scene.effects = replace(
        scene.effects, noise_sigma=0.0, blur_sigma=0.0, motion_blur=0, vignette=0.0, fog_density=0.0
    )
    scene.bonnet = None
    light = scene.lighting
    direct = light.sun_strength * light.sun[1]
    expected = 1.0 - direct / (light.ambient + direct)
    on, off = render(scene), render(no_shadows(scene))
    road = (on.semantic == seg_index("road")) & (luminance(off.image) > 40)
    ratio = luminance(on.image)[road] / luminance(off.image)[road]
    full = np.abs(ratio - expected) < 0.03
    assert full.sum() > 300, (expected, np.percentile(ratio, [1, 10, 50]))
    assert ratio.min() > expected - 0.05  # nothing darker than a full shadow


def pole_scene(sun_azimuth: float) -> sc.Scene:
    """One 8 m pole 15 m ahead in an otherwise empty sunny scene, the sun 35 degrees up at ``sun_azimuth``."""
    scene = scenes_where(lambda s: s.lighting.shadows and s.lighting.dusk < 0.3, 1)[0]
    elevation = np.deg2rad(35.0)
    sun = (np.cos(elevation) * np.sin(sun_azimuth), np.sin(elevation), np.cos(elevation) * np.cos(sun_azimuth))
    scene.lighting = replace(scene.lighting, sun=tuple(float(c) for c in sun))
    scene.things = [sc.Thing(-1, 0.0, 15.0, 0.0, [sc.pole(0.0, 0.0, 8.0, 0.4, (120.0, 120.0, 120.0))])]
    scene.effects = replace(scene.effects, fog_density=0.0)
    scene.bonnet = None
    return scene


def test_shadows_fall_away_from_the_sun():
    for azimuth, side in ((np.pi / 2, -1), (-np.pi / 2, 1)):  # sun on the right: shadow to the left
        scene = pole_scene(azimuth)
        on, off = render(scene), render(no_shadows(scene))
        shadow = (luminance(off.image) - luminance(on.image) > 8) & np.isin(on.semantic, GROUND)
        pole_u = np.nonzero(on.semantic == seg_index("pole_sign"))[1].mean()
        assert shadow.sum() > 50
        assert side * (np.nonzero(shadow)[1].mean() - pole_u) > 10


def bonnet_mask(bonnet: sc.Bonnet, height: int, width: int) -> np.ndarray:
    """The documented bonnet outline, from scratch: rows at or below its edge."""
    x = (np.arange(width) - bonnet.centre * width) / (width / 2)
    edge = height * (1.0 - bonnet.top + bonnet.drop * x**2 + bonnet.tilt * x)
    return np.arange(height)[:, None] >= edge[None, :]


def assert_boxes_tight(frame) -> None:
    for i, box in enumerate(frame.boxes):
        np.testing.assert_array_equal(box, box_of(frame.instance == i + 1))


def test_bonnet_is_ignored_and_occludes_exactly():
    bonnets = scenes_where(lambda s: s.bonnet is not None, 8)
    shrunk = 0
    for scene in bonnets:
        on, off = render(scene), render(replace(scene, bonnet=None))
        mask = bonnet_mask(scene.bonnet, scene.height, scene.width)
        centre = int(scene.bonnet.centre * scene.width)
        assert 0.05 * scene.height - 1 <= mask[:, centre].sum() <= 0.15 * scene.height + 1
        assert (on.semantic[mask] == IGNORE_INDEX).all() and (on.semantic[~mask] != IGNORE_INDEX).all()
        assert (on.depth[mask] == 0).all() and (on.instance[mask] == 0).all()
        np.testing.assert_array_equal(on.semantic[~mask], off.semantic[~mask])
        np.testing.assert_array_equal(on.depth[~mask], off.depth[~mask])
        assert_boxes_tight(on)
        # Each box of the bonnet-free frame keeps exactly its pixels above the bonnet, or is dropped
        # when fewer than 12 remain or a side falls under 3 px, as for any occluder.
        kept = 0
        for j, label in enumerate(off.labels):
            visible = (off.instance == j + 1) & ~mask
            ys, xs = np.nonzero(visible)
            survives = len(ys) >= 12 and min(np.ptp(xs), np.ptp(ys)) + 1 >= 3
            matches = [i for i in range(len(on.boxes)) if np.array_equal(on.instance == i + 1, visible)]
            assert len(matches) == int(survives), (scene.kind, j)
            if survives:
                i = matches[0]
                assert on.labels[i] == label and on.truncation[i] == off.truncation[j]
                assert on.occlusion[i] >= off.occlusion[j] - 1e-6
                shrunk += int(not np.array_equal(on.boxes[i], off.boxes[j]))
                kept += 1
        assert kept == len(on.boxes)
    assert shrunk >= 1


def test_bonnet_crops_a_near_car():
    scene = two_car_scene()
    scene.bonnet = sc.Bonnet(0.4, 0.0, 0.5, 0.0, (20.0, 20.0, 22.0), 0.8, 0.3, 0.3)  # taller than sampled ones
    frame, free = render(scene), render(replace(scene, bonnet=None))
    assert_boxes_tight(frame)
    edge = int(np.ceil(scene.height * 0.6))
    assert (frame.boxes[:, 3] <= edge).all() and (free.boxes[:, 3] > edge).any()
    assert (frame.semantic[edge:] == IGNORE_INDEX).all() and (frame.depth[edge:] == 0).all()


def test_bonnet_frames_vary_and_stay_in_range():
    bonnets = [make_scene("val", i, **SMALL).bonnet for i in range(120)]
    present = [b for b in bonnets if b is not None]
    assert 0.12 < len(present) / len(bonnets) < 0.4  # about a quarter of the frames
    assert all(0.05 <= b.top <= 0.15 for b in present)
    assert len({round(b.top, 3) for b in present}) > 5


def test_shadow_and_bonnet_frames_are_deterministic():
    scenes = (make_scene("train", i, **MID) for i in range(100))
    index = next(i for i, s in enumerate(scenes) if s.bonnet is not None and s.lighting.shadows)
    a = SyntheticDataset("train", 100, **MID)[index]
    b = SyntheticDataset("train", 100, **MID)[index]
    for key in ("image", "semantic", "depth", "boxes", "labels"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    np.testing.assert_array_equal(a.extras["instance"], b.extras["instance"])
    assert (a.semantic == IGNORE_INDEX).any()


# ----------------------------------------------------------------------------------------------
# Surface detail (façade windows, foliage): drawn in each face's metres, the windows and leaves in
# the image only; the crowns' ragged outlines cut into the codes, so what shows through is labelled.

BUILDING, VEGETATION = seg_index("building"), seg_index("vegetation")


def without_surfaces(scene: sc.Scene, kind: type = object) -> sc.Scene:
    """``scene`` with the surface detail of ``kind`` (every kind by default) taken off its parts."""
    bare = deepcopy(scene)
    for thing in bare.things:
        for part in thing.parts:
            if isinstance(part.surface, kind):
                part.surface = None
    return bare


def is_winter(scene: sc.Scene) -> bool:
    return any(isinstance(p.surface, sc.Foliage) and p.surface.bare for t in scene.things for p in t.parts)


def test_facade_windows_change_the_image_only():
    changed = 0
    # (in summer: a building seen between the twigs of a bare crown is labelled part of the tree)
    for scene in scenes_where(lambda s: s.setting == "urban" and len(s.things) > 10 and not is_winter(s), 4):
        scene.effects = replace(scene.effects, blur_sigma=0.0, motion_blur=0)  # which spread colours far
        if scene.night is not None:  # lit windows glow beyond their panes (tests/test_synthetic_night.py)
            scene.night = replace(scene.night, windows=0.0)
        on, off = render(scene), render(without_surfaces(scene, sc.Facade))
        for key in LABEL_FIELDS:
            np.testing.assert_array_equal(getattr(on, key), getattr(off, key), err_msg=key)
        detail = np.isin(on.semantic, [BUILDING, IGNORE_INDEX]).astype(np.uint8)  # the bonnet mirrors
        near = cv2.dilate(detail, np.ones((3, 3), np.uint8)) > 0  # anti-aliased face edges
        np.testing.assert_array_equal(on.image[~near], off.image[~near])
        changed += (np.abs(luminance(on.image) - luminance(off.image)) > 12).sum()
    assert changed > 5000, changed


def tree_before_a_wall(leafy: bool) -> sc.Scene:
    """A tree (crown 5 m wide and tall) 9 m ahead of a plain wall 14 m away; its crown leafy or bare."""
    scene, _ = facade_scene(None)
    trunk = sc.Box((-0.2, 0.0, -0.2), (0.2, 2.5, 0.2), sc.S_VEGETATION, (80, 60, 45))
    crown = sc.Box((-2.5, 2.5, -2.5), (2.5, 7.5, 2.5), sc.S_VEGETATION, (60, 110, 50))
    crown.surface = sc.Foliage() if leafy else None
    scene.things.append(sc.place(sc.Thing(-1, 0.0, 0.0, 0.0, [trunk, crown]), 0.5, 9.0, 0.4))
    return scene


def test_a_leafy_crown_is_ragged_and_what_shows_through_is_labelled():
    leafy, bare = render(tree_before_a_wall(True)), render(tree_before_a_wall(False))
    no_tree = tree_before_a_wall(False)
    no_tree.things.pop()
    behind = render(no_tree)
    box = bare.semantic == VEGETATION  # the crown's and trunk's box outline
    cut = box & (leafy.semantic != VEGETATION)
    assert 0.08 < cut.sum() / box.sum() < 0.5  # a ragged fringe and a few gaps, most of the crown left
    # Through a cut pixel the wall or the sky shows, with the wall's or the sky's own labels.
    for key in ("semantic", "depth"):
        np.testing.assert_array_equal(getattr(leafy, key)[cut], getattr(behind, key)[cut], err_msg=key)
        np.testing.assert_array_equal(getattr(leafy, key)[~box], getattr(bare, key)[~box], err_msg=key)
    kept = box & ~cut
    np.testing.assert_array_equal(leafy.depth[kept], bare.depth[kept])  # the crown itself did not move
    # The fringe is ragged: the outline is far longer than the box's, and gaps open inside the crown.
    outline = cv2.morphologyEx((leafy.semantic == VEGETATION).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3)))
    box_outline = cv2.morphologyEx(box.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3)))
    assert outline.sum() > 1.8 * box_outline.sum()
    inner = cv2.erode(box.astype(np.uint8), np.ones((91, 91), np.uint8)) > 0  # 45 px: over 1 m inside
    assert 0.01 < cut[inner].mean() < 0.2


def test_a_bare_crown_is_labelled_whole_and_shows_what_is_behind():
    """A winter crown: twigs over the wall, the pixels between them the wall's colour but the tree's
    label (as annotators draw a leafless tree) and no depth; the twigs at the crown's own depth."""
    scene = tree_before_a_wall(True)
    crown = scene.things[-1].parts[1]
    crown.surface, crown.rgb = sc.Foliage(bare=True), sc.BARK
    quiet = replace(scene.effects, noise_sigma=0.0, blur_sigma=0.0, motion_blur=0)
    scene.effects = quiet
    bare, leafy = render(scene), render(tree_before_a_wall(True))
    behind_scene = tree_before_a_wall(False)
    behind_scene.things.pop()
    behind_scene.effects = quiet
    behind = render(behind_scene)
    tree = leafy.semantic == VEGETATION
    outline = bare.semantic == VEGETATION
    assert (outline == tree).mean() > 0.99  # the same ragged outline (only its gaps are not cut)
    twigs = outline & (bare.depth > 0)
    between = outline & (bare.depth == 0)
    assert 0.1 < twigs.sum() / outline.sum() < 0.7 and between.sum() > 5000
    np.testing.assert_array_equal(bare.depth[twigs], render(tree_before_a_wall(False)).depth[twigs])
    np.testing.assert_array_equal(bare.image[between], behind.image[between])  # the wall shows through
    assert (bare.instance[outline] == 0).all()
    twig_luma, wall_luma = luminance(bare.image)[twigs].mean(), luminance(behind.image)[twigs].mean()
    assert abs(twig_luma - wall_luma) > 10  # the twigs are drawn, not the wall


def test_winter_frames_are_summer_frames_with_bare_trees(monkeypatch):
    scenes = [make_scene("train", i, **MID) for i in range(120)]
    winter = [i for i, s in enumerate(scenes) if is_winter(s)]
    assert 20 <= len(winter) <= 65  # 35 % of the frames (those with trees)
    with monkeypatch.context() as m:
        m.setattr(sc, "WINTER_SHARE", 0.0)
        for i in winter[:6]:
            summer, frame = make_scene("train", i, **MID), scenes[i]
            assert not is_winter(summer) and summer.camera == frame.camera and summer.night == frame.night
            crowns = [
                (a, b)
                for t, u in zip(frame.things, summer.things, strict=True)
                for a, b in zip(t.parts, u.parts, strict=True)
                if a != b
            ]
            assert crowns and all(a.surface.bare and a.lo == b.lo and a.hi == b.hi for a, b in crowns)


def facade_scene(facade: sc.Facade, distance: float = 14.0) -> tuple[sc.Scene, float]:
    """One building straight ahead, its wall facing the camera ``distance`` m away and starting at world
    X = left; nothing else, no noise, blur, fog or vignetting, level camera."""
    scene = make_scene("train", 0, height=384, width=640)
    scene.camera = replace(scene.camera, pitch_rad=0.02, roll_rad=0.0)
    scene.bonnet = None
    scene.effects = replace(
        scene.effects, fog_density=0.0, noise_sigma=0.0, blur_sigma=0.0, motion_blur=0, vignette=0.0
    )
    scene.lighting = replace(scene.lighting, shadows=False)
    length, depth, height, left = 30.0, 8.0, 12.0, -15.0
    wall = sc.Box((-depth / 2, 0.0, -length / 2), (depth / 2, height, length / 2), sc.S_BUILDING, (150, 150, 150))
    wall.texture, wall.surface = 0.0, facade
    # Turned by 90°: the thing's +x face looks at the camera, its z axis runs along world X.
    scene.things = [sc.place(sc.Thing(-1, 0.0, 0.0, 0.0, [wall]), left + length / 2, distance + depth / 2, np.pi / 2)]
    return scene, left


def wall_points(scene: sc.Scene, frame, left: float) -> tuple[np.ndarray, ...]:
    """Rows, columns and wall coordinates (metres along the wall from its left end, height) of the
    building pixels of a :func:`facade_scene` frame: each pixel's world point from the documented
    camera model, computed from scratch."""
    cam = scene.camera
    p = cam.pitch_rad
    rot_pitch = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    v, u = np.nonzero((frame.semantic == BUILDING) & (frame.depth > 0))
    rays = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u, dtype=float)], -1)
    level = (rays @ rot_pitch.T) * frame.depth[v, u][:, None]
    return v, u, level[:, 0] - left, cam.height_m - level[:, 1]


def test_windows_sit_where_the_facade_puts_them_in_metres():
    facade = sc.Facade(floor_m=3.0, column_m=2.0, width=0.5, height=0.5, glass=0.3, spread=0.0)
    scene, left = facade_scene(facade)
    on, off = render(scene), render(without_surfaces(scene))
    v, u, s, t = wall_points(scene, on, left)
    assert v.size > 50_000
    col, row = np.floor(s / 2.0), np.floor(t / 3.0)
    pane = (np.abs(s / 2.0 - col - 0.5) < 0.25) & (np.abs(t / 3.0 - row - 0.55) < 0.25)
    pane &= (s > 0.5) & (s < 29.5) & (t > 0.8) & (t < 11.4)
    darker = (luminance(on.image)[v, u] + 1) / (luminance(off.image)[v, u] + 1) < 0.6
    assert 0.15 < pane.mean() < 0.3  # a quarter of the wall is glass, less the margins
    assert (darker == pane).mean() > 0.98  # only pane edges, rounded to pixels, may disagree
    expected = set(zip(col[pane].tolist(), row[pane].tolist(), strict=True))  # one per column and storey
    assert len(expected) >= 8
    assert set(zip(col[pane & darker].tolist(), row[pane & darker].tolist(), strict=True)) == expected


def test_far_windows_fade_instead_of_aliasing():
    """A façade whose columns are under a few pixels wide is drawn at its mean shade, not as moiré."""
    facade = sc.Facade(floor_m=3.0, column_m=2.0, width=0.5, height=0.5, glass=0.3, spread=0.0)
    spread = {}
    for distance in (14.0, 1.3 * facade_scene(facade)[0].camera.fx):  # far: 2.6 px per column
        scene, _ = facade_scene(facade, distance)
        on = render(scene)
        inner = cv2.erode((on.semantic == BUILDING).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert inner.sum() > 20
        lum = luminance(on.image)[inner]
        spread[distance] = lum.std() / lum.mean()
    near, far = spread.values()
    assert near > 0.3 and far < 0.02, spread


def close_wall(monkeypatch, brick: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per wall pixel of a :func:`facade_scene` wall of ``brick`` or render 4 m from the camera (about
    90 pixels per metre), its frames painted: its height up the wall, where it lies (1 a pane's frame
    band, 6 cm just inside its edge; 2 its glass; 3 the bare wall; 0 in between) and the image's gain
    there (frame with detail over frame without)."""
    monkeypatch.setattr(surfaces, "BRICK_SHARE", 1.0 if brick else 0.0)
    monkeypatch.setattr(surfaces, "FRAME_LIGHT_SHARE", 1.0)
    facade = sc.Facade(floor_m=3.0, column_m=2.0, width=0.5, height=0.5, glass=0.3, spread=0.0)
    scene, left = facade_scene(facade, distance=4.0)
    on, off = render(scene), render(without_surfaces(scene))
    v, u, s, t = wall_points(scene, on, left)
    ratio = (luminance(on.image)[v, u] + 1) / (luminance(off.image)[v, u] + 1)
    across, above = np.abs(s / 2.0 - np.floor(s / 2.0) - 0.5) * 2.0, np.abs(t / 3.0 - np.floor(t / 3.0) - 0.55) * 3.0
    inside = (across < 0.5) & (above < 0.75) & (t > 0.8)  # a pane, frame and all: 1 m x 1.5 m
    glass = (across < 0.5 - 0.1) & (above < 0.75 - 0.1) & (across > 0.1)  # clear of the frame and mullion
    band = inside & ((across > 0.5 - 0.05) | (above > 0.75 - 0.05))
    wall = (across > 0.5 + 0.2) | (above > 0.75 + 0.2)
    return t, np.select([band, glass & inside, wall], [1, 2, 3], 0), ratio


def test_a_wall_up_close_is_brick_in_courses_or_render_never_flat_paint(monkeypatch):
    for brick in (True, False):
        t, where, ratio = close_wall(monkeypatch, brick)
        wall = ratio[where == 3]
        assert wall.size > 20_000
        assert abs(np.median(wall) - 1.0) < 0.1  # the wall keeps its shade ...
        assert 0.08 < wall.std() < 0.35  # ... with its material's grain on it
        if brick:  # horizontal mortar joints, one course apart: the strongest period up the wall
            bins = np.floor(t[where == 3] / 0.005).astype(int)
            profile = np.bincount(bins, wall) / np.maximum(np.bincount(bins), 1)
            spectrum = np.abs(np.fft.rfft(profile - profile.mean()))
            cycles_per_m = np.fft.rfftfreq(profile.size, 0.005)
            useful = (cycles_per_m > 2.0) & (cycles_per_m < 40.0)
            course = 1.0 / cycles_per_m[useful][np.argmax(spectrum[useful])]
            expected = 256 / surfaces.COURSES_PER_TILE / surfaces.BRICK_TEXELS_PER_M
            assert abs(course - expected) < 0.1 * expected, (course, expected)


def test_each_pane_sits_in_a_frame(monkeypatch):
    _, where, ratio = close_wall(monkeypatch, brick=False)
    frame, glass = ratio[where == 1], ratio[where == 2]
    assert frame.size > 2_000 and glass.size > 10_000
    assert np.median(glass) < 0.45  # dark glass (0.3) ...
    assert np.median(frame) > 1.1  # ... in a painted frame, brighter than the wall


def shopfront_scene() -> tuple[sc.Scene, float, sc.Facade]:
    """:func:`facade_scene` with a shopfront along the wall facing the camera (plain grey panes above
    it), and its façade."""
    facade = sc.Facade(floor_m=3.0, column_m=2.0, width=0.5, height=0.5, glass=0.5, spread=0.0)
    scene, left = facade_scene(facade)
    (thing,) = scene.things
    scene.things += sc.shopfront(np.random.default_rng(3), thing, thing.parts[0], front=1)
    return scene, left, thing.parts[0].surface


def test_a_shopfront_is_dark_glass_in_bays_under_a_fascia_all_building():
    scene, left, shop = shopfront_scene()
    (fascias,) = scene.things[1:]
    on, off = render(scene), render(without_surfaces(scene))
    assert set(np.unique(on.semantic)) - {BUILDING} <= set(GROUND) | {seg_index("sky")}
    v, u, s, t = wall_points(scene, on, left)
    ratio = (luminance(on.image)[v, u] + 1) / (luminance(off.image)[v, u] + 1)
    in_bay = np.abs(s / shop.bay_m - np.floor(s / shop.bay_m) - 0.5) < 0.5 - SHOP_MULLION_M / shop.bay_m - 0.05
    glazing = in_bay & (t > SHOP_RISER_M + 0.1) & (t < shop.shop_m - 0.2) & (s > 0.5) & (s < 29.5)
    frames = ~in_bay & (np.abs(s / shop.bay_m - np.round(s / shop.bay_m)) < 0.03) & (t > 1.0) & (t < 3.0)
    assert glazing.sum() > 10_000 and frames.sum() > 200
    assert (ratio[glazing] < 0.6).mean() > 0.95  # plate glass, darker than the upper floors' panes (0.5) ...
    assert np.median(ratio[glazing]) < 0.4
    assert (ratio[frames] > 0.8).mean() > 0.9  # ... between frames of the wall's own colour
    # the fascias: coloured bands over the glazing, proud of the wall, building like it
    wall_start = scene.things[0].parts[0].lo[2]  # s is 0 there
    along = [(p.lo[2] - wall_start + 0.05, p.hi[2] - wall_start - 0.05) for p in fascias.parts]
    fascia = (t > shop.shop_m + 0.05) & (t < fascias.parts[0].hi[1] - 0.05)
    fascia &= np.any([(s > a) & (s < b) for a, b in along], axis=0)
    colours = {p.rgb for p in fascias.parts}
    assert len(colours) >= 2 and np.isclose(fascias.parts[0].lo[1], shop.shop_m)
    assert (np.abs(on.image[v, u][fascia].astype(int) - 150).max(-1) > 30).mean() > 0.8  # not the grey wall
    wall = render(replace(scene, things=scene.things[:1]))
    np.testing.assert_allclose((wall.depth - on.depth)[v, u][fascia], sc.FASCIA_PROUD_M, atol=0.005)
    # the upper floors' windows start above the shop: none in the fascia or just over it
    above = (t > shop.shop_m) & (t < fascias.parts[0].hi[1] + 0.3)
    assert (ratio[above & ~fascia] > 0.7).mean() > 0.95  # (the wall's own grain: within about ±0.3)


def test_shopfronts_line_town_streets_and_change_only_building_pixels(monkeypatch):
    shops = moved = 0
    for i in range(1, 7):
        scene = make_scene("train", i, **MID)
        frame = render(scene)
        with monkeypatch.context() as m:
            m.setattr(sc, "SHOPFRONTS", dict.fromkeys(sc.SHOPFRONTS, 0.0))
            without = make_scene("train", i, **MID)
            plain = render(without)
        assert len(without.things) < len(scene.things) or scene.setting != "urban"
        changed = frame.semantic != plain.semantic
        assert (frame.semantic[changed] == BUILDING).all()  # a fascia hides what is beside its wall's edge
        nearer = frame.depth != plain.depth
        assert (frame.depth[nearer] < plain.depth[nearer] + 1e-3).all()  # ... and is nearer than it
        for key in ("instance", "boxes", "labels"):
            np.testing.assert_array_equal(getattr(frame, key), getattr(plain, key), err_msg=key)
        shops += sum(getattr(p.surface, "shop_m", 0.0) > 0 for t in scene.things for p in t.parts)
        moved += int(changed.sum())
    assert shops > 20
    assert moved < 0.002 * 6 * MID["height"] * MID["width"]  # fascias are thin: labels all but the same


def test_street_furniture_adds_pole_sign_in_front_and_changes_nothing_else(monkeypatch):
    pole_sign = seg_index("pole_sign")
    monkeypatch.setattr(sc, "SHOPFRONTS", dict.fromkeys(sc.SHOPFRONTS, 0.0))  # drawn after the furniture
    changed = 0
    for i in range(8):
        frame = render(make_scene("train", i, **MID))
        with monkeypatch.context() as m:
            m.setattr(sc, "WALL_SIGNS_PER_M", dict.fromkeys(sc.WALL_SIGNS_PER_M, 0.0))
            m.setattr(sc, "KERB_POSTS", dict.fromkeys(sc.KERB_POSTS, 0.0))
            bare = render(make_scene("train", i, **MID))
        moved = frame.semantic != bare.semantic
        assert (frame.semantic[moved] == pole_sign).all()  # furniture is pole_sign and hides what is behind it
        hidden = moved & ~np.isin(bare.semantic, GROUND)  # where a post meets the ground, the ground's
        closer = (bare.depth[hidden] == 0) | (frame.depth[hidden] < bare.depth[hidden])  # pixel spans its foot
        assert closer.all()  # ... which was sky, or farther away
        changed += int(moved.sum())
    assert changed > 0.004 * 8 * 192 * 320


def to_road(scene: sc.Scene, thing: sc.Thing, lx: float, lz: float) -> float:
    """How far the point (lx, lz) of ``thing``'s frame lies from the nearest road's centre line."""
    ((x, _, z),) = thing_to_level(thing.x, thing.z, thing.yaw, np.array([[lx, 0.0, lz]]), 0.0)
    return sc.road_distance(scene.roads, x, z)


def test_wall_signs_hang_from_the_wall_over_the_street():
    signs = 0
    for i in range(30):
        scene = make_scene("train", i, height=384, width=640)
        walls = {(t.x, t.z, t.yaw): p for t in scene.things for p in t.parts if isinstance(p.surface, sc.Facade)}
        hung = [t for t in scene.things if (t.x, t.z, t.yaw) in walls and t.parts[0].sem == sc.S_POLE]
        for sign in hung:  # placed where its building is, in the building's frame
            wall, bracket = walls[sign.x, sign.z, sign.yaw], sign.parts[0]
            assert {p.sem for p in sign.parts} == {sc.S_POLE}
            ends = (bracket.lo[0], bracket.hi[0])
            on_wall = [x for x in ends if x in (wall.lo[0], wall.hi[0])]
            assert len(on_wall) == 1  # one end on the wall ...
            outer, mid = ends[1] if on_wall[0] == ends[0] else ends[0], (wall.lo[2] + wall.hi[2]) / 2
            assert to_road(scene, sign, outer, mid) < to_road(scene, sign, on_wall[0], mid)  # ... on the road's side
            assert 2.0 < bracket.hi[1] <= wall.hi[1]
            signs += 1
    assert signs > 30


# ----------------------------------------------------------------------------------------------
# Wheels: a car stands on four of them, in arches cut into its body, and no ray sees through it.


def lone_car_scene(thing: sc.Thing, yaw: float, z: float = 8.0) -> sc.Scene:
    """``thing`` alone at ``z`` metres ahead, turned by ``yaw``, a level camera, no fog or bonnet."""
    scene = make_scene("train", 0, height=384, width=640)
    scene.camera = replace(scene.camera, pitch_rad=0.0, roll_rad=0.0)
    scene.things = [sc.place(thing, 0.0, z, yaw)]
    scene.effects.fog_density = 0.0
    scene.bonnet, scene.night = None, None
    return scene


def to_image(scene: sc.Scene, thing: sc.Thing, local: np.ndarray) -> np.ndarray:
    """Pixel (u, v) and camera depth of points of ``thing``'s frame, [N, 3]."""
    cam = level_to_camera(scene.camera, thing_to_level(thing.x, thing.z, thing.yaw, local, scene.camera.height_m))
    return np.stack(
        [
            scene.camera.cx + scene.camera.fx * cam[:, 0] / cam[:, 2],
            scene.camera.cy + scene.camera.fy * cam[:, 1] / cam[:, 2],
            cam[:, 2],
        ],
        -1,
    )


def end_face_pixel(scene: sc.Scene, thing: sc.Thing, part: sc.Box, front: bool) -> tuple[int, int]:
    """(row, column) of the middle of ``part``'s front (+z) or back (-z) face."""
    end = part.hi[2] if front else part.lo[2]
    centre = np.array([[(part.lo[0] + part.hi[0]) / 2, (part.lo[1] + part.hi[1]) / 2, end]])
    ((u, v, _),) = to_image(scene, thing, centre)
    return round(float(v)), round(float(u))


def test_a_car_seen_from_the_side_shows_dark_wheels_under_its_arches():
    length, width, clear, top, radius = 4.5, 1.8, 0.3, 0.95, 0.31
    thing = sc.Thing(sc.CAR, 0.0, 0.0, 0.0, sc.car_body(length, width, clear, top, radius, (225.0, 225.0, 225.0)))
    scene = lone_car_scene(thing, math.pi / 2)
    frame = render(scene)
    luma = luminance(frame.image)
    wheels = [p for p in thing.parts if p.faces]
    assert len(wheels) == 4 and all(p.lo[1] == 0.0 and p.hi[1] == 2 * radius for p in wheels)
    height = (clear + 2 * radius) / 2  # between the sills and the wheel tops: wheel, body, wheel
    near = [p for p in wheels if p.hi[0] > 0]  # the side that faces the camera
    spans = []
    for p in near:
        ends = np.array([[p.hi[0], height, p.lo[2]], [p.hi[0], height, p.hi[2]]])
        (u0, v, _), (u1, _, _) = to_image(scene, thing, ends)
        spans.append(sorted((u0, u1)))
    spans.sort()
    row = round(float(v))
    wheel_px = np.concatenate([luma[row, int(a) + 2 : int(b) - 1] for a, b in spans])
    body_px = luma[row, int(spans[0][1]) + 2 : int(spans[1][0]) - 1]
    assert wheel_px.size > 20 and body_px.size > 20
    assert np.median(wheel_px) < 0.5 * np.median(body_px)
    assert (frame.semantic[row, int(spans[0][0]) + 2 : int(spans[1][1]) - 1] == seg_index("vehicle")).all()


@pytest.mark.parametrize("yaw", [0.0, 0.6, math.pi / 2, 2.3, math.pi, -1.0])
def test_no_ray_sees_through_a_car(yaw):
    """What shows inside a car's outline is the car, or the ground under its sills: never anything
    beyond its far side."""
    thing = sc.car(np.random.default_rng(3))
    scene = lone_car_scene(thing, yaw, z=6.0)
    frame = render(scene)
    mask = (frame.instance == 1).astype(np.uint8)
    outline = np.zeros_like(mask)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(outline, contours, -1, 1, cv2.FILLED)
    inside = (outline == 1) & (mask == 0)
    lo = np.min([p.lo for p in thing.parts], 0)
    hi = np.max([p.hi for p in thing.parts], 0)
    corners = np.array([[x, 0.0, z] for x in (lo[0], hi[0]) for z in (lo[2], hi[2])])
    far = to_image(scene, thing, corners)[:, 2].max()
    assert (frame.depth[inside] > 0).all() and (frame.depth[inside] < far).all()
    assert np.isin(frame.semantic[inside], GROUND).all()


@pytest.mark.parametrize(("yaw", "seen"), [(0.0, "tail"), (math.pi, "head")])
def test_a_car_shows_its_lamps_at_its_corners_and_a_plate_in_the_middle(yaw, seen):
    """By day, from behind: red tail lamps at the back corners; from the front: pale head lamps. A
    light number plate between them; all of it labelled vehicle."""
    thing = sc.car(np.random.default_rng(5))
    for p in thing.parts:  # a dark blue car, so that lamps and plate stand out from the paint
        if p.rgb not in (sc.TYRE, sc.PLATE_RGB) and p.light is None:
            p.rgb = (30.0, 45.0, 110.0)
    scene = lone_car_scene(thing, yaw)
    frame = render(scene)
    lamps = [p for p in thing.parts if p.light == seen]
    plates = [p for p in thing.parts if p.rgb == sc.PLATE_RGB and (p.lo[2] > 0) == (seen == "head")]
    assert len(lamps) == 2 and len(plates) == 1
    for part in lamps + plates:
        row, col = end_face_pixel(scene, thing, part, front=seen == "head")
        r, g, b = frame.image[row, col].astype(float)
        assert frame.semantic[row, col] == seg_index("vehicle")
        if part.light == "tail":
            assert r > 2 * g and r > 2 * b
        else:  # head lamps and plates: pale, unlike the blue paint
            assert min(r, g, b) > 0.7 * max(r, g, b) and r > 80
