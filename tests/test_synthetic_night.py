"""Night frames of the synthetic world: the world and its labels are the day frame's, and the light
comes from where the lamps are."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from perception.classes import seg_index
from perception.data.synthetic import make_scene, night, render, surfaces
from perception.data.synthetic import scene as sc
from perception.data.synthetic.geometry import level_to_camera
from perception.data.synthetic.surfaces import Facade
from tests.test_synthetic import LABEL_FIELDS, MID, end_face_pixel, luminance, shopfront_scene, wall_points


def night_scenes(count: int) -> list[tuple[int, sc.Scene]]:
    found, index = [], 0
    while len(found) < count:
        scene = make_scene("train", index, **MID)
        if scene.night is not None:
            found.append((index, scene))
        index += 1
    return found


def day_of(index: int, monkeypatch: pytest.MonkeyPatch) -> sc.Scene:
    """The same frame with night switched off."""
    with monkeypatch.context() as m:
        m.setattr(sc, "NIGHT_SHARE", 0.0)
        return make_scene("train", index, **MID)


def quiet(scene: sc.Scene) -> sc.Scene:
    """No noise, blur, fog or vignetting, so that light is all that differs between renders."""
    effects = replace(scene.effects, noise_sigma=0.0, blur_sigma=0.0, motion_blur=0, vignette=0.0, fog_density=0.0)
    return replace(scene, effects=effects, bonnet=None)


def test_night_share_and_lighting():
    scenes = [make_scene("train", i, height=48, width=80) for i in range(200)]
    nights = [s for s in scenes if s.night is not None]
    assert 15 <= len(nights) <= 45  # 15 %
    for s in nights:
        assert s.lighting.sun_strength == 0 and not s.lighting.shadows and s.lighting.ambient < 0.1
        assert max(s.lighting.zenith) < 20 and set(s.night.lit) <= {
            i for i, t in enumerate(s.things) if t.label in sc.VEHICLE_LABELS
        }


def test_night_is_the_day_frames_world_with_the_same_labels(monkeypatch):
    brightness = []
    for index, scene in night_scenes(4):
        day = day_of(index, monkeypatch)
        assert repr(scene.things) == repr(day.things) and repr(scene.roads) == repr(day.roads)
        assert scene.camera == day.camera and scene.bonnet == day.bonnet
        at_night, by_day = render(scene), render(day)
        for key in LABEL_FIELDS:
            np.testing.assert_array_equal(getattr(at_night, key), getattr(by_day, key), err_msg=key)
        sky = at_night.semantic == seg_index("sky")
        brightness.append((luminance(at_night.image).mean(), luminance(by_day.image).mean()))
        assert np.median(luminance(at_night.image)[sky]) < 50
    night, day = np.mean(brightness, 0)
    assert night < 0.6 * day  # some day frames are at dusk already


def test_night_lamps_only_change_the_image():
    for _, scene in night_scenes(3):
        lit, unlit = render(scene), render(replace(scene, night=None))  # the same dark lighting, no lamps
        for key in LABEL_FIELDS:
            np.testing.assert_array_equal(getattr(lit, key), getattr(unlit, key), err_msg=key)
        assert (luminance(lit.image) > luminance(unlit.image) + 10).mean() > 0.02  # the beams at least


def lamp_scene(things: list[sc.Thing], beams: float = 0.0) -> sc.Scene:
    """A night scene on a straight road holding only ``things``, quiet, with the given low beams."""
    _, scene = night_scenes(1)[0]
    scene = quiet(scene)
    scene.roads = scene.roads[:1]
    scene.roads[0].curvature = 0.0
    scene.things = things
    vehicles = tuple(i for i, t in enumerate(things) if t.label in sc.VEHICLE_LABELS)
    scene.night = replace(scene.night, beams=beams, glare=0.2, lit=vehicles)
    return scene


def road_pixel(scene: sc.Scene, x: float, z: float) -> tuple[int, int]:
    """(row, column) of the ground point (x, z) of the level frame."""
    cam = scene.camera
    p = level_to_camera(cam, np.array([x, cam.height_m, z]))
    return round(float(cam.fy * p[1] / p[2] + cam.cy)), round(float(cam.fx * p[0] / p[2] + cam.cx))


def test_a_street_lamp_lights_the_road_below_it():
    scene = lamp_scene([])
    road = scene.roads[0]
    x, z, heading = road.frame(35.0, road.right_edge + road.curb + 0.5)  # on the kerb ...
    scene.things = [sc.place(sc.streetlight(np.random.default_rng(0)), x, z, heading)]  # ... its arm over the road
    ((x, _, z),) = night.street_lamps(scene, reach=70.0)
    frame = render(scene)
    lum = luminance(frame.image)
    road = frame.semantic == seg_index("road")
    below, beyond = road_pixel(scene, x, z), road_pixel(scene, x, z + 20.0)
    assert road[below] and road[beyond]
    assert lum[below] > 2 * lum[beyond] + 10
    assert lum[frame.semantic == seg_index("pole_sign")].max() >= 250  # the lamp's head glows


def test_the_low_beams_light_the_road_ahead_and_not_the_sky():
    dark, beams = render(lamp_scene([])), render(lamp_scene([], beams=400.0))
    gain = luminance(beams.image) - luminance(dark.image)
    scene = lamp_scene([])
    near, far = road_pixel(scene, 0.0, 15.0), road_pixel(scene, 0.0, 80.0)
    assert gain[near] > 20 and gain[near] > 4 * max(gain[far], 1.0)
    assert np.abs(gain[beams.semantic == seg_index("sky")]).max() <= 1


@pytest.mark.parametrize(("yaw", "seen"), [(0.0, "tail"), (np.pi, "head")])
def test_vehicles_show_red_tail_lamps_and_white_head_lamps(yaw, seen):
    """A car 10 m ahead driving away shows its red tail lamps; one coming towards the camera its white head lamps."""
    car = sc.place(sc.car(np.random.default_rng(1)), 0.0, 10.0, yaw)
    lit, unlit = render(lamp_scene([car])), render(replace(lamp_scene([car]), night=None))
    added = lit.image.astype(float) - unlit.image.astype(float)
    glowing = added.sum(-1) > 150
    assert glowing.sum() > 10
    red, green, blue = (added[glowing][:, c].mean() for c in range(3))
    if seen == "tail":
        assert red > 2 * green and red > 2 * blue
    else:
        assert min(red, green, blue) > 0.7 * max(red, green, blue)
    scene, strength = lamp_scene([car]), added.sum(-1)
    for part in (p for p in car.parts if p.light == seen):  # each lamp glows brightest where it is
        row, col = end_face_pixel(scene, car, part, front=seen == "head")
        near = strength[row - 3 : row + 4, col - 3 : col + 4]
        assert near.max() >= 0.9 * strength.max()


def window_scenes(count: int) -> list[sc.Scene]:
    """Quiet urban night scenes whose buildings carry windows."""
    found = []
    for _, scene in night_scenes(4 * count):
        facades = [p for t in scene.things for p in t.parts if isinstance(p.surface, Facade)]
        if scene.setting == "urban" and facades:
            found.append(quiet(scene))
        if len(found) == count:
            break
    return found


def test_lit_windows_glow_on_buildings_and_change_no_label():
    for scene in window_scenes(3):
        frames = {share: render(replace(scene, night=replace(scene.night, windows=share))) for share in (0.0, 0.2, 0.6)}
        for key in LABEL_FIELDS:
            for share in (0.2, 0.6):
                np.testing.assert_array_equal(getattr(frames[share], key), getattr(frames[0.0], key), err_msg=key)
        building = frames[0.0].semantic == seg_index("building")
        dark = luminance(frames[0.0].image)
        # a lit pane adds far more than 40 grey levels; its halo, spilling onto the sky, less
        lit = {share: luminance(frames[share].image) - dark > 40 for share in (0.2, 0.6)}
        assert lit[0.2].sum() > 0.001 * dark.size
        assert building[lit[0.2]].mean() > 0.9 and building[lit[0.6]].mean() > 0.9
        assert lit[0.6].sum() > 1.5 * lit[0.2].sum()  # more panes lit, more light


def test_shops_are_lit_at_night_behind_their_glass(monkeypatch):
    scene, left, shop = shopfront_scene()
    ((_, dark),) = night_scenes(1)
    scene = quiet(replace(scene, night=replace(dark.night, windows=0.0, lit=()), lighting=dark.lighting))
    frames = {}
    for share in (0.0, 1.0):
        monkeypatch.setattr(surfaces, "SHOP_LIT_SHARE", share)
        frames[share] = render(scene)
    for key in LABEL_FIELDS:
        np.testing.assert_array_equal(getattr(frames[1.0], key), getattr(frames[0.0], key), err_msg=key)
    v, u, _, t = wall_points(scene, frames[0.0], left)
    lit = (luminance(frames[1.0].image) - luminance(frames[0.0].image))[v, u] > 40
    assert lit.sum() > 5000
    assert (t[lit] < shop.shop_m).mean() > 0.8  # the shop's glazing glows (its bloom spills on the fascia) ...
    fascia_top = scene.things[1].parts[0].hi[1]
    assert (t[lit] < fascia_top + 0.3).mean() > 0.97  # ... the floors above stay dark
