"""The service end to end: a real JPEG in, all three answers out, from one inference run."""

from __future__ import annotations

import base64
import json

import cv2
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from perception.client import decode_depth
from service.app import create_app
from service.settings import Settings
from tests.conftest import BUNDLED_MODEL


def decode_png(data: str, flags=cv2.IMREAD_UNCHANGED) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), flags)


def check_frame_answer(frame: dict, width: int, height: int, classes: list[str], map_size: tuple[int, int]) -> None:
    """``map_size``: (width, height) the dense outputs should have."""
    assert (frame["width"], frame["height"]) == (width, height)
    for det in frame["detections"]:
        x1, y1, x2, y2 = det["box"]
        assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
        assert det["class_name"] == classes[det["class_id"]]
    seg = frame["segmentation"]
    semantic = decode_png(seg["data"])
    assert semantic.shape == map_size[::-1] and semantic.dtype == np.uint8
    assert semantic.max() < len(seg["classes"])
    depth = frame["depth"]
    depth_m = decode_depth(depth)
    assert depth_m.shape == map_size[::-1] and depth_m.max() > 0
    assert set(frame["timings"]) >= {"decode_ms", "queue_ms", "inference_ms", "postprocess_ms", "encode_ms", "total_ms"}


@pytest.fixture(scope="module")
def client():
    app = create_app(Settings(model=BUNDLED_MODEL))
    with TestClient(app) as c:
        yield c


def test_one_jpeg_gives_all_three_outputs_from_one_run(client, frames):
    engine = client.app.state.perception.engine
    runs_before = engine.runs
    body = frames[0].read_bytes()
    r = client.post("/v1/perceive", content=body, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text
    assert engine.runs == runs_before + 1, "detections, segmentation and depth must come from one run"
    answer = r.json()
    assert answer["model"] == {"name": engine.name, "version": engine.version}
    assert r.headers["x-request-id"] == answer["request_id"]
    (frame,) = answer["frames"]
    # dense outputs come at the model's resolution over the image: 640x384 input, 1280x720 frame
    check_frame_answer(frame, 1280, 720, engine.metadata.detection_classes, (640, 360))


def test_dense_outputs_at_the_asked_scale(client, frames):
    """output_scale=1 gives maps aligned pixel for pixel with the image; 0.25 a quarter of it; a
    small image's maps are never larger than the image."""
    body = frames[0].read_bytes()
    for query, size in (("output_scale=1", (1280, 720)), ("output_scale=0.25", (320, 180))):
        r = client.post(f"/v1/perceive?{query}", content=body, headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 200, r.text
        (frame,) = r.json()["frames"]
        check_frame_answer(frame, 1280, 720, client.app.state.perception.engine.metadata.detection_classes, size)
    small = cv2.imencode(".png", cv2.resize(cv2.imread(str(frames[0])), (320, 180)))[1].tobytes()
    r = client.post("/v1/perceive", content=small, headers={"Content-Type": "image/png"})
    (frame,) = r.json()["frames"]
    check_frame_answer(frame, 320, 180, client.app.state.perception.engine.metadata.detection_classes, (320, 180))


def test_real_server_over_loopback(bundled_server, frames):
    for path in frames[:2]:
        r = httpx.post(bundled_server.url + "/v1/perceive", content=path.read_bytes(),
                       headers={"Content-Type": "image/jpeg"}, timeout=30)  # fmt: skip
        assert r.status_code == 200, r.text
        frame = r.json()["frames"][0]
        image = cv2.imread(str(path))
        models = httpx.get(bundled_server.url + "/v1/models").json()
        h, w = image.shape[:2]
        check_frame_answer(frame, w, h, models["detection_classes"], (round(w * 384 / h), 384) if w / h < 640 / 384 else
                           (640, round(h * 640 / w)))  # fmt: skip
    assert httpx.get(bundled_server.url + "/healthz").json() == {"status": "ok"}
    assert json.loads(httpx.get(bundled_server.url + "/readyz").text)["status"] == "ready"


def test_io_binding_path_gives_the_same_answers(frames):
    """The GPU path binds inputs and outputs; it must return exactly what a plain run returns."""
    from service.engine import Engine

    engine = Engine(BUNDLED_MODEL)
    md = engine.metadata
    images = np.random.default_rng(0).integers(0, 256, (2, 3, md.input_height, md.input_width), dtype=np.uint8)
    focal = np.array([400.0, 600.0], np.float32)
    plain = engine.run(images, focal).arrays
    engine.io_binding = True
    bound = engine.run(images, focal).arrays
    for name, value in plain.items():
        np.testing.assert_array_equal(bound[name], value)


def test_dashcam_jpegs_are_decoded_at_half_size(frames, monkeypatch):
    """A 1280x720 JPEG into the 640x384 model needs only libjpeg's half-size decode (640x360, half the
    time); the letterboxed pixels are within a few levels of a full decode resized down."""
    from service import pipeline
    from service.engine import Engine

    engine = Engine(BUNDLED_MODEL)
    reductions = []
    decode = pipeline.decode_image
    monkeypatch.setattr(pipeline, "decode_image", lambda *a: reductions.append(a[2]) or decode(*a))
    data = frames[0].read_bytes()
    prepared = pipeline.prepare(pipeline.FrameInput(data), engine, 10**8)
    assert reductions == [2]
    full = pipeline.Letterbox.fit(1280, 720, 640, 384).apply(decode(data, 10**8, 1)).transpose(2, 0, 1)
    assert np.abs(prepared.pixels.astype(int) - full).mean() < 3


def test_float16_depth_rounds_as_numpy_does():
    """The answer's float16 depth (OpenCV's conversion, twice as fast) is bit for bit NumPy's, from
    denormals to overflow and NaN, on a non-contiguous crop like the one the letterbox gives, and on
    the maps of images a pixel or two across."""
    from service.imaging import float16

    rng = np.random.default_rng(0)
    specials = [np.inf, -np.inf, np.nan, 7e4, 1e-8, -0.0] * 106 + [0] * 4
    plane = np.concatenate([rng.lognormal(2, 3, (383, 640)), [specials]])
    crop = plane.astype(np.float32)[12:372]
    with np.errstate(over="ignore"):
        expected = crop.astype("<f2")
    got = float16(crop)
    assert got.dtype == np.dtype("<f2") and got.flags.c_contiguous
    np.testing.assert_array_equal(got.view(np.uint16), expected.view(np.uint16))
    for shape in ((1, 1), (2, 1), (1, 3)):  # OpenCV takes a one-element array for a scalar (4x1 back)
        plane = rng.lognormal(2, 3, shape).astype(np.float32)
        np.testing.assert_array_equal(float16(plane).view(np.uint16), plane.astype("<f2").view(np.uint16))
