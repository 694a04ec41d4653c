"""Every transform keeps every target on the image's pixels and the camera true to the image."""

from __future__ import annotations

import numpy as np
import pytest

from perception.classes import IGNORE_INDEX, seg_index
from perception.contract import LETTERBOX_FILL
from perception.contract import Letterbox as LetterboxGeometry
from perception.data.sample import Camera, Sample
from perception.data.transforms import (
    Compose,
    Letterbox,
    PhotometricJitter,
    RandomHorizontalFlip,
    RandomScaleJitter,
    eval_transform,
    is_sparse_depth,
    resize_depth,
    resize_nearest,
    training_transform,
)

H, W = 60, 80
BOX = (20, 34, 44, 52)  # x1, y1, x2, y2 in pixel edges
CAM_HEIGHT = 1.5
VEHICLE = seg_index("vehicle")
RED = np.array([255, 0, 0], np.uint8)


def scene() -> Sample:
    """A red box on grey, the same box in the semantic map and instance map, depth of a flat
    ground plane seen by a level camera (z = fy·h / (v − cy) below the horizon)."""
    camera = Camera(fx=50.0, fy=50.0, cx=(W - 1) / 2, cy=(H - 1) / 2, height_m=CAM_HEIGHT, pitch_rad=0.0, roll_rad=0.1)
    x1, y1, x2, y2 = BOX
    image = np.full((H, W, 3), 128, np.uint8)
    image[y1:y2, x1:x2] = RED
    semantic = np.zeros((H, W), np.uint8)
    semantic[y1:y2, x1:x2] = VEHICLE
    instance = np.zeros((H, W), np.int32)
    instance[y1:y2, x1:x2] = 26001
    rows = np.arange(H, dtype=np.float32)[:, None] - camera.cy
    depth = np.where(rows > 0.5, camera.fy * CAM_HEIGHT / np.maximum(rows, 1e-3), 0).astype(np.float32)
    depth = np.repeat(depth, W, axis=1)
    boxes = np.array([BOX, (70, 2, 73, 5)], np.float32)  # the second is small
    extras = {"instance": instance, "truncation": np.array([0.0, 0.5], np.float32), "id": "x"}
    return Sample(image, camera, boxes, np.array([0, 6], np.int64), semantic, depth, extras)


def _extent(mask: np.ndarray) -> np.ndarray:
    """Pixel-edge bounding box of a mask."""
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def assert_aligned(s: Sample) -> None:
    """Image, semantic, instance and box 0 mark the same pixels (±1 px of interpolation), and
    the depth is still the ground plane of the (updated) camera."""
    h, w = s.size
    assert s.image.dtype == np.uint8 and s.semantic.shape == s.depth.shape == (h, w)
    red = (s.image[..., 0] > 190) & (s.image[..., 1] < 64)
    box = s.boxes[0]
    np.testing.assert_allclose(_extent(red), box, atol=1.0)
    np.testing.assert_allclose(_extent(s.semantic == VEHICLE), box, atol=1.0)
    assert np.array_equal(s.semantic == VEHICLE, s.extras["instance"] == 26001)
    # ground plane: z = fy · h / (v − cy), checked > 8 source rows below the horizon, where half a
    # source row of nearest-neighbour resampling is a small error
    v = np.arange(h, dtype=np.float64)[:, None] - s.camera.cy
    far_enough = (v > 8 * s.camera.fy / 50.0) & (s.depth > 0) & (s.semantic != IGNORE_INDEX)
    expected = s.camera.fy * CAM_HEIGHT / np.where(far_enough, v, 1)
    np.testing.assert_allclose(s.depth[far_enough], np.broadcast_to(expected, s.depth.shape)[far_enough], rtol=0.1)
    assert far_enough.any()


def blob_sample(u: float, v: float) -> Sample:
    """A Gaussian dot centred on pixel-centre coordinates (u, v), the projection of a point."""
    ys, xs = np.mgrid[0:H, 0:W]
    dot = np.exp(-((xs - u) ** 2 + (ys - v) ** 2) / (2 * 2.5**2))
    image = np.zeros((H, W, 3), np.uint8)
    image[..., 0] = (dot * 255).round()  # red on black: grey padding has no red excess
    return Sample(image, Camera(fx=50.0, fy=55.0, cx=37.3, cy=31.8))


def centroid(image: np.ndarray) -> tuple[float, float]:
    weight = image[..., 0].astype(np.float64) - image[..., 1]
    weight[weight < 10] = 0
    ys, xs = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    return float((xs * weight).sum() / weight.sum()), float((ys * weight).sum() / weight.sum())


def check_projection(transform, rng: np.random.Generator, mirrored: bool = False) -> None:
    """Project a 3D point with the old camera, draw it, transform, and find the dot where the new
    camera projects the same point: the principal point and focal length moved with the pixels."""
    point = np.array([-0.3, 0.2, 1.0])
    cam = blob_sample(0, 0).camera
    u, v = cam.fx * point[0] / point[2] + cam.cx, cam.fy * point[1] / point[2] + cam.cy
    out = transform(blob_sample(u, v), rng)
    c = out.camera
    x = -point[0] if mirrored else point[0]  # a mirrored image shows the mirrored world
    expected = (c.fx * x / point[2] + c.cx, c.fy * point[1] / point[2] + c.cy)
    np.testing.assert_allclose(centroid(out.image), expected, atol=0.15)


# --- letterbox -------------------------------------------------------------------------------------
def test_letterbox_matches_the_service_geometry():
    s = scene()
    out = Letterbox(48, 48)(s)
    geometry = LetterboxGeometry.fit(W, H, 48, 48)
    assert out.size == (48, 48)
    assert np.array_equal(out.image, geometry.apply(s.image))
    np.testing.assert_allclose(out.boxes, geometry.boxes_to_model(s.boxes))
    np.testing.assert_allclose(out.boxes[0], [12, 26.4, 26.4, 37.2], atol=1e-5)
    # focal scales with the image; the principal point follows pixel centres and the padding
    assert out.camera.fx == pytest.approx(50 * 0.6) and out.camera.fy == pytest.approx(50 * 0.6)
    assert out.camera.cy == pytest.approx((s.camera.cy + 0.5) * 0.6 - 0.5 + geometry.pad_y)
    # padding: grey image, ignored semantics, invalid depth
    pad = slice(0, geometry.pad_y)
    assert (out.image[pad] == LETTERBOX_FILL).all() and (out.semantic[pad] == IGNORE_INDEX).all()
    assert (out.depth[pad] == 0).all() and (out.extras["instance"][pad] == 0).all()
    assert out.extras["truncation"].tolist() == [0.0, 0.5] and out.extras["id"] == "x"
    assert_aligned(out)


def test_letterbox_upscales_and_round_trips_to_source():
    s = scene()
    out = Letterbox(180, 320)(s)
    assert out.camera.fx == pytest.approx(150.0)
    assert_aligned(out)
    geometry = LetterboxGeometry.fit(W, H, 320, 180)
    np.testing.assert_allclose(geometry.boxes_to_source(out.boxes), s.boxes, atol=1e-4)
    back = geometry.map_to_source(out.semantic, nearest=True)
    assert (back == s.semantic).mean() > 0.99


@pytest.mark.parametrize("size", [(48, 48), (180, 320), (37, 101)])
def test_letterbox_keeps_projections(size):
    check_projection(Letterbox(*size), np.random.default_rng(0))


# --- flip ------------------------------------------------------------------------------------------------
def test_flip_mirrors_everything():
    s = scene()
    out = RandomHorizontalFlip(p=1.0)(s, np.random.default_rng(0))
    x1, y1, x2, y2 = BOX
    assert out.boxes[0].tolist() == [W - x2, y1, W - x1, y2]
    assert out.camera.cx == W - 1 - s.camera.cx and out.camera.roll_rad == -0.1
    assert np.array_equal(out.image, s.image[:, ::-1]) and np.array_equal(out.depth, s.depth[:, ::-1])
    assert_aligned(out)
    twice = RandomHorizontalFlip(p=1.0)(out, np.random.default_rng(0))
    assert np.array_equal(twice.boxes, s.boxes) and twice.camera == s.camera
    assert np.array_equal(twice.semantic, s.semantic)
    assert RandomHorizontalFlip(p=0.0)(s, np.random.default_rng(0)) is s


def test_flip_keeps_projections():
    check_projection(RandomHorizontalFlip(p=1.0), np.random.default_rng(0), mirrored=True)


# --- scale jitter --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_scale_jitter_keeps_alignment(seed):
    s = scene()
    out = RandomScaleJitter(0.7, 1.4)(s, np.random.default_rng(seed))
    assert out.size == (H, W)
    assert 0.7 * 50 - 1 < out.camera.fx < 1.4 * 50 + 1
    assert out.camera.fx / s.camera.fx == pytest.approx(out.camera.fy / s.camera.fy, rel=0.03)
    assert (out.boxes[:, 0::2] >= 0).all() and (out.boxes[:, 0::2] <= W).all()
    assert len(out.extras["truncation"]) == len(out.boxes) == len(out.labels)
    if len(out.boxes) and out.labels[0] == 0 and (out.semantic == VEHICLE).sum() > 40:
        box = out.boxes[0]
        if box[0] > 0 and box[1] > 0 and box[2] < W and box[3] < H:  # unclipped: exact check
            assert_aligned(out)


@pytest.mark.parametrize("seed", range(4))
def test_scale_jitter_keeps_projections(seed):
    check_projection(RandomScaleJitter(0.8, 1.2), np.random.default_rng(seed))


def test_scale_jitter_focal_is_the_image_scale():
    s = scene()
    out = RandomScaleJitter(0.5, 0.5)(s, np.random.default_rng(1))
    assert out.camera.fx == pytest.approx(25.0) and out.camera.fy == pytest.approx(25.0)
    assert_aligned(out)
    # the 3 px box became 1.5 px: dropped with its label and truncation
    assert out.labels.tolist() == [0] and out.extras["truncation"].tolist() == [0.0]
    # the padding is ignore / invalid
    assert (out.semantic == IGNORE_INDEX).sum() == H * W - 40 * 30


def test_scale_jitter_clips_boxes_when_cropping():
    s = scene()
    s.boxes[0] = (0, 0, 80, 60)
    out = RandomScaleJitter(2.0, 2.0)(s, np.random.default_rng(3))
    assert out.boxes[0].tolist() == [0, 0, W, H]


# --- photometric and compose ---------------------------------------------------------------------------------
def test_photometric_touches_the_image_only():
    s = scene()
    out = PhotometricJitter(0.3, 0.3, 0.3, 0.05, 4.0)(s, np.random.default_rng(0))
    assert out.image.dtype == np.uint8 and out.image.shape == s.image.shape
    assert not np.array_equal(out.image, s.image)
    assert out.boxes is s.boxes and out.semantic is s.semantic and out.depth is s.depth and out.camera == s.camera
    neutral = PhotometricJitter(0, 0, 0, 0, 0)(s, np.random.default_rng(0))
    assert np.array_equal(neutral.image, s.image)


def test_compose_of_everything_stays_aligned():
    pipeline = Compose(
        [RandomHorizontalFlip(0.5), RandomScaleJitter(0.9, 1.1), Letterbox(72, 128), PhotometricJitter(noise=0)]
    )
    for seed in range(4):
        out = pipeline(scene(), np.random.default_rng(seed))
        assert out.size == (72, 128)
        np.testing.assert_allclose(_extent(out.semantic == VEHICLE), out.boxes[0], atol=1.0)


def test_resize_nearest_is_centre_aligned():
    plane = np.arange(8, dtype=np.uint8)[None, :]
    assert resize_nearest(plane, 4, 1).tolist() == [[1, 3, 5, 7]]  # centres 0.5 → source 1, …
    assert resize_nearest(plane, 16, 1).tolist() == [np.repeat(np.arange(8), 2).tolist()]


def test_training_transform_follows_the_config():
    from perception.config import Config

    config = Config()
    config.model.input_height, config.model.input_width = 72, 128
    pipeline = training_transform(config)
    kinds = [type(t) for t in pipeline.transforms]
    assert kinds == [Letterbox, RandomScaleJitter, RandomHorizontalFlip, PhotometricJitter]
    out = pipeline(scene(), np.random.default_rng(0))
    assert out.size == (72, 128)
    config.data.flip, config.data.photometric, config.data.scale_jitter = False, False, [1.0, 1.0]
    assert [type(t) for t in training_transform(config).transforms] == [Letterbox]
    assert eval_transform(config)(scene(), np.random.default_rng(0)).size == (72, 128)


# --- sparse depth (LiDAR) ----------------------------------------------------------------------------------
def sparse_points(h: int, w: int, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` distinct pixels (rows, cols) of an h x w map and a distinct depth for each."""
    rng = np.random.default_rng(seed)
    flat = rng.choice(h * w, count, replace=False)
    return flat // w, flat % w, rng.uniform(2.0, 80.0, count).astype(np.float32)


def test_sparse_depth_is_scattered_with_the_nearest_return_kept():
    depth = np.zeros((6, 8), np.float32)
    depth[0, 0], depth[1, 1] = 30.0, 20.0  # both land on output pixel (0, 0): the nearer (20 m) wins
    depth[4, 5] = 7.0  # → (2, 2)
    down = resize_depth(depth, 4, 3)
    assert {(int(r), int(c)): float(down[r, c]) for r, c in zip(*np.nonzero(down), strict=True)} == {
        (0, 0): 20.0,
        (2, 2): 7.0,
    }
    assert (resize_nearest(depth, 4, 3) > 0).sum() == 1  # sampling keeps one of the three by luck
    up = resize_depth(depth, 16, 12)  # each return on the one pixel its centre maps to: none copied
    assert {(int(r), int(c)): float(up[r, c]) for r, c in zip(*np.nonzero(up), strict=True)} == {
        (1, 1): 30.0,
        (3, 3): 20.0,
        (9, 11): 7.0,
    }


def test_dense_depth_is_still_sampled_nearest():
    depth = scene().depth
    assert not is_sparse_depth(depth)
    for size in ((30, 40), (120, 160)):
        assert np.array_equal(resize_depth(depth, size[1], size[0]), resize_nearest(depth, size[1], size[0]))


def test_letterbox_keeps_lidar_returns_of_a_kitti_sized_frame():
    h, w = 375, 1242
    rows, cols, values = sparse_points(h, w, 18_600)  # KITTI's 4 % of pixels
    depth = np.zeros((h, w), np.float32)
    depth[rows, cols] = values
    assert is_sparse_depth(depth)
    sample = Sample(np.zeros((h, w, 3), np.uint8), Camera(721.5, 721.5, 609.6, 172.9), depth=depth)
    out = Letterbox(384, 640)(sample)
    kept = (out.depth > 0).sum()
    geometry = LetterboxGeometry.fit(w, h, 640, 384)
    sampled = (resize_nearest(depth, geometry.new_w, geometry.new_h) > 0).sum()
    assert kept > 0.9 * len(values) and sampled < 0.35 * len(values)  # nearest sampling keeps about 27 %
    # merged returns keep the nearest: every output value is the minimum of the returns mapped there
    s = geometry.new_w / w
    out_r = ((rows + 0.5) * (geometry.new_h / h)).astype(int) + geometry.pad_y
    out_c = ((cols + 0.5) * s).astype(int) + geometry.pad_x
    nearest = np.full(out.depth.shape, np.inf, np.float32)
    np.minimum.at(nearest, (out_r, out_c), values)
    assert np.array_equal(out.depth, np.where(np.isinf(nearest), 0, nearest))


@pytest.mark.parametrize("transform", [Letterbox(384, 640), Letterbox(96, 160), RandomScaleJitter(1.3, 1.6)])
def test_scattered_returns_sit_where_the_new_camera_projects_their_points(transform):
    """LiDAR-like points projected into a 375 x 1242 frame, transformed: each point's depth is found
    within a pixel of where the transformed camera projects the point."""
    from perception.data.lidar import project_to_depth

    h, w = 375, 1242
    camera = Camera(721.5, 721.5, 609.6, 172.9)
    rng = np.random.default_rng(0)
    z = rng.uniform(5, 60, 150)
    points = np.stack([rng.uniform(-0.8, 0.8, 150) * z, rng.uniform(-0.2, 0.2, 150) * z, z], 1)
    k = np.array([[camera.fx, 0, camera.cx], [0, camera.fy, camera.cy], [0, 0, 1]])
    depth = project_to_depth(points, np.eye(4), k, (h, w))
    out = transform(Sample(np.zeros((h, w, 3), np.uint8), camera, depth=depth), np.random.default_rng(1))
    c = out.camera
    found = exact = 0
    for x, y, zz in points:
        u, v = c.fx * x / zz + c.cx, c.fy * y / zz + c.cy
        col, row = int(np.floor(u + 0.5)), int(np.floor(v + 0.5))
        if not (1 <= row < out.size[0] - 1 and 1 <= col < out.size[1] - 1):
            continue
        window = out.depth[row - 1 : row + 2, col - 1 : col + 2]
        returns = window[window > 0]
        assert returns.size and returns.min() <= zz * (1 + 1e-5)  # its return, or a nearer one merged with it
        exact += bool(np.isclose(returns, zz, rtol=1e-5).any())
        found += 1
    assert found > 50 and exact >= 0.9 * found
