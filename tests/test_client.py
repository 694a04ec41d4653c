"""The Python client and ``perception infer`` against the real server over loopback."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from perception.cli import main as cli
from perception.client import (
    PerceptionClient,
    PerceptionError,
    batched,
    decode_depth,
    decode_segmentation,
    input_frames,
    render_overlay,
    run_lengths,
    summary,
    unique_name,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def client(bundled_server):
    with PerceptionClient(bundled_server.url) as c:
        yield c


def rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_import_leaves_torch_out():
    code = "import sys, perception.client; assert 'torch' not in sys.modules, 'perception.client imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_api_key_is_sent_as_bearer():
    with PerceptionClient("http://127.0.0.1:9", api_key="k3y") as c:
        assert c.http.headers["authorization"] == "Bearer k3y"


def test_single_frame(client, frames):
    answer = client.perceive([frames[0]])
    assert answer["model"]["name"] and answer["request_id"]
    (frame,) = answer["frames"]
    assert (frame["width"], frame["height"], frame["index"]) == (1280, 720, 0)
    assert isinstance(frame["detections"], list)
    assert decode_segmentation(frame["segmentation"]).shape == (360, 640)  # the model's resolution
    assert decode_depth(frame["depth"]).shape == (360, 640)
    assert frame["timings"]["total_ms"] > 0


def test_several_frames_in_one_request(client, frames):
    """Multipart with metadata: answers come back in request order with their camera ids. The
    frames have different sizes (path, array, PNG bytes) so the order shows in the answer."""
    small = cv2.resize(rgb(frames[1]), (640, 360))
    ok, png = cv2.imencode(".png", cv2.resize(cv2.imread(str(frames[2])), (320, 180)))
    assert ok
    metadata = [{"camera_id": "front"}, {"camera_id": "left", "frame_id": "7"}, {"camera_id": "right"}]
    answer = client.perceive([frames[0], small, png.tobytes()], metadata=metadata, outputs=["detections"])
    got = [(f["index"], f["camera_id"], f["width"], f["height"]) for f in answer["frames"]]
    assert got == [(0, "front", 1280, 720), (1, "left", 640, 360), (2, "right", 320, 180)]
    assert answer["frames"][1]["frame_id"] == "7"
    assert all("segmentation" not in f and "depth" not in f for f in answer["frames"])


def test_rle_decoder_is_column_major():
    class_map = np.random.default_rng(0).integers(0, 4, (7, 5)).astype(np.uint8)
    class_map[:, 2] = 3  # some long runs
    flat = class_map.T.ravel()
    counts = run_lengths(class_map)
    values = flat[np.cumsum([0, *counts[:-1]])].tolist()
    seg = {"encoding": "rle", "width": 5, "height": 7, "counts": counts, "values": values, "classes": []}
    np.testing.assert_array_equal(decode_segmentation(seg), class_map)


def test_rle_and_png_segmentations_agree(client, frames):
    png = client.perceive([frames[3]], outputs="segmentation")["frames"][0]["segmentation"]
    rle = client.perceive([frames[3]], outputs="segmentation", segmentation_encoding="rle")["frames"][0]
    rle = rle["segmentation"]
    class_map = decode_segmentation(png)
    assert (rle["width"], rle["height"]) == (png["width"], png["height"])
    assert rle["classes"] == png["classes"]
    assert rle["counts"] == run_lengths(class_map)  # same runs, column-major, from the first pixel
    np.testing.assert_array_equal(decode_segmentation(rle), class_map)


def test_png16_and_float16_depths_agree(client, frames):
    png16 = client.perceive([frames[4]], outputs="depth", depth_encoding="png16")["frames"][0]["depth"]
    half = client.perceive([frames[4]], outputs="depth")["frames"][0]["depth"]  # the default
    assert (png16["encoding"], half["encoding"]) == ("png16", "float16")
    a, b = decode_depth(png16), decode_depth(half)
    assert a.shape == b.shape == (360, 640) and a.dtype == b.dtype == np.float32
    assert np.isfinite(b).all() and (b > 0).mean() > 0.99
    unclipped = a < 65535 / 256  # png16 saturates at 256 m
    tolerance = png16["scale"] / 2 + np.abs(b) * 2.0**-11 + 1e-6  # png16 rounding + float16 half-ulp
    assert np.all(np.abs(a - b)[unclipped] <= tolerance[unclipped])


def test_error_carries_status_and_detail(client):
    with pytest.raises(PerceptionError) as caught:
        client.perceive([b"definitely not a jpeg"])
    assert caught.value.status == 400 and "decode" in caught.value.detail
    with pytest.raises(PerceptionError) as caught:
        client.perceive([b"\xff\xd8"], outputs="colours")
    assert caught.value.status == 422 and "outputs" in caught.value.detail


def test_overlay_draws_everything(client, frames):
    image = rgb(frames[0])
    frame = client.perceive([image], score_threshold=0.05)["frames"][0]
    overlay = render_overlay(image, frame)
    assert overlay.shape == (720, 2560, 3) and overlay.dtype == np.uint8
    assert not np.array_equal(overlay[:, :1280], image)  # segmentation blended, boxes drawn
    assert len(np.unique(overlay[:, 1280:].reshape(-1, 3), axis=0)) > 20  # a depth colour map, not a flat fill
    without_depth = render_overlay(image, {k: v for k, v in frame.items() if k != "depth"})
    assert without_depth.shape == image.shape


def test_cli_on_a_folder(bundled_server, frames, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli(["infer", str(frames[0].parent), "--url", bundled_server.url, "--out", str(out), "--overlay",
                "--batch", "4", "--camera-id", "front"])  # fmt: skip
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [f.stem for f in frames]
    assert all("total" in line and "ms" in line for line in lines)
    for f in frames:
        doc = json.loads((out / f"{f.stem}.json").read_text())
        assert doc["source"] == f.stem and doc["camera_id"] == "front" and doc["frame_id"] == f.name
        assert doc["width"] == 1280 and "timings" in doc
        overlay = cv2.imread(str(out / f"{f.stem}.overlay.png"))
        assert overlay.shape == (720, 2560, 3)
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{f.stem}.json" for f in frames] +
                                                           [f"{f.stem}.overlay.png" for f in frames])  # fmt: skip


def test_cli_on_a_video(bundled_server, frames, tmp_path, capsys):
    video = tmp_path / "drive.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 180))
    assert writer.isOpened()
    for f in frames[:5]:
        writer.write(cv2.resize(cv2.imread(str(f)), (320, 180)))
    writer.release()
    out = tmp_path / "out"
    code = cli(["infer", str(video), "--url", bundled_server.url, "--out", str(out), "--every", "2", "--batch", "2"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["drive_000000", "drive_000002", "drive_000004"]
    docs = [json.loads((out / f"drive_{i:06d}.json").read_text()) for i in (0, 2, 4)]
    assert [d["frame_id"] for d in docs] == ["0", "2", "4"]
    assert all((d["width"], d["height"]) == (320, 180) for d in docs)
    assert [d["timestamp"] for d in docs] == pytest.approx([0.0, 0.2, 0.4], abs=1e-3)


def test_cli_bad_input_fails_with_the_servers_detail(bundled_server, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    run = subprocess.run([sys.executable, "-m", "perception.cli", "infer", str(bad), "--url", bundled_server.url],
                         capture_output=True, text=True, cwd=REPO, timeout=60)  # fmt: skip
    assert run.returncode != 0
    assert "400" in run.stderr and "could not be decoded" in run.stderr, run.stderr
    missing = subprocess.run([sys.executable, "-m", "perception.cli", "infer", str(tmp_path / "nope.mp4")],
                             capture_output=True, text=True, cwd=REPO, timeout=60)  # fmt: skip
    assert missing.returncode != 0 and "no such file" in missing.stderr


def test_package_exports_its_public_names():
    """``perception.client`` is a package split by job; the names callers import from it stay there,
    including the ``perception infer`` handler that ``perception.cli`` looks up by name."""
    package = importlib.import_module("perception.client")
    assert len(package.__all__) == len(set(package.__all__))
    for name in package.__all__:
        assert getattr(package, name) is not None, name
    by_job = {
        name: importlib.import_module(f"perception.client.{name}")
        for name in ("answers", "cli", "http", "inputs", "overlay")
    }
    assert package.PerceptionClient is by_job["http"].PerceptionClient is PerceptionClient
    assert package.decode_depth is by_job["answers"].decode_depth
    assert package.render_overlay is by_job["overlay"].render_overlay
    assert package.input_frames is by_job["inputs"].input_frames
    assert package.infer_command is by_job["cli"].infer_command  # perception.cli's "perception.client:infer_command"


def test_input_frames_from_a_folder_in_batches(tmp_path):
    for name in ("b.png", "a.jpg", "c.JPEG"):
        assert cv2.imwrite(str(tmp_path / name), np.full((4, 6, 3), 128, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    frames = list(input_frames([tmp_path], every=1, camera_id="front"))
    assert [f.name for f in frames] == ["a", "b", "c"]  # sorted, other files skipped
    assert frames[0].meta == {"camera_id": "front", "frame_id": "a.jpg"}
    assert frames[1].rgb().shape == (4, 6, 3) and frames[1].pixels_bgr is None
    assert [[f.name for f in b] for b in batched(iter(frames), 2)] == [["a", "b"], ["c"]]
    with pytest.raises(ValueError, match="no such file"):
        list(input_frames([tmp_path / "missing.mp4"], 1, None))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no \.jpg"):
        list(input_frames([tmp_path / "empty"], 1, None))


def test_unique_names_and_summary_line():
    used: set[str] = set()
    assert [unique_name(n, used) for n in ("f", "f", "g", "f")] == ["f", "f-2", "g", "f-3"]
    frame = {
        "detections": [{"class_name": "car"}, {"class_name": "person"}, {"class_name": "car"}],
        "timings": {"decode_ms": 1.0, "queue_ms": 0.5, "inference_ms": 10.0, "encode_ms": 2.0, "total_ms": 14.3},
        "batch_size": 3,
    }
    assert (
        summary("f", frame)
        == "f: 2 car, 1 person | total 14.3 ms (decode 1.0, queue 0.5, inference 10.0, encode 2.0; batch 3)"
    )
    assert summary("g", {**frame, "detections": []}).startswith("g: no detections | total")
