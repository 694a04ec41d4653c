"""Operating the service: batching, deadlines, back-pressure, metrics, roll-outs, draining (keys: test_security)."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from perception.contract import CHECKSUM_FILE, MODEL_FILE, sha256
from tests.servers import metric, stop_server

# Every test here serves the tiny model, trained with torch, and writes new versions of it with onnx.
onnx = pytest.importorskip(
    "onnx", reason="the tiny model and its new versions need the train extra: pip install -e '.[train]'"
)

JPEG = {"Content-Type": "image/jpeg"}


def copy_version(src, dst, version: str, corrupt: str | None = None):
    """A copy of an exported model folder whose metadata says ``version``."""
    model = onnx.load(src / MODEL_FILE)
    for prop in model.metadata_props:
        if prop.key == "version":
            prop.value = version
    dst.mkdir(parents=True)
    onnx.save_model(model, dst / MODEL_FILE)
    (dst / CHECKSUM_FILE).write_text(f"{sha256(dst / MODEL_FILE)}  {MODEL_FILE}\n")
    if corrupt == "truncated":
        data = (dst / MODEL_FILE).read_bytes()
        (dst / MODEL_FILE).write_bytes(data[: len(data) // 2])
        (dst / CHECKSUM_FILE).write_text(f"{sha256(dst / MODEL_FILE)}  {MODEL_FILE}\n")
    elif corrupt == "checksum":
        (dst / CHECKSUM_FILE).write_text("0" * 64 + f"  {MODEL_FILE}\n")
    return dst


@pytest.fixture(scope="module")
def models_dir(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("repo") / "tiny"
    shutil.copytree(tiny_model / "1", root / "1")
    return root


@pytest.fixture(scope="module")
def server(models_dir, serve):
    env = {
        "PERCEPTION_MODEL": str(models_dir),
        "PERCEPTION_API_KEYS": "key-one,key-two",
        "PERCEPTION_ADMIN_KEY": "admin-secret",
        "PERCEPTION_MAX_QUEUE_DELAY_MS": "40",
        "PERCEPTION_MAX_BATCH": "8",
        "PERCEPTION_MAX_QUEUE": "12",
    }
    return serve(env)


AUTH = {"Authorization": "Bearer key-two"}
ADMIN = {"Authorization": "Bearer admin-secret"}


def test_concurrent_frames_share_inference_runs_and_keep_their_own_answers(server, frames):
    runs_before = metric(server.url, "perception_inference_runs_total")
    bodies = [frames[i % len(frames)].read_bytes() for i in range(8)]
    barrier = threading.Barrier(len(bodies))

    def post(body):
        barrier.wait()
        return httpx.post(server.url + "/v1/perceive", content=body, headers={**JPEG, **AUTH}, timeout=60)

    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(post, bodies))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
    runs = metric(server.url, "perception_inference_runs_total") - runs_before
    assert runs < len(bodies), f"{len(bodies)} concurrent frames took {runs} runs"
    assert max(a.json()["frames"][0]["batch_size"] for a in answers) > 1
    # Each answer is its own frame's: the same image always gives the same detections.
    by_image: dict[int, list] = {}
    for i, a in enumerate(answers):
        by_image.setdefault(i % len(frames), []).append(a.json()["frames"][0]["detections"])
    for dets in by_image.values():
        assert all(d == dets[0] for d in dets)


def test_multipart_frames_come_back_in_order_from_one_run(server, frames):
    files = [("frames", (p.name, p.read_bytes(), "image/jpeg")) for p in frames[:3]]
    meta = '[{"camera_id": "front"}, {"camera_id": "left", "focal_px": 1000}, {"camera_id": "right"}]'
    runs_before = metric(server.url, "perception_inference_runs_total")
    r = httpx.post(server.url + "/v1/perceive", files=files, data={"metadata": meta}, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    assert [f["camera_id"] for f in r.json()["frames"]] == ["front", "left", "right"]
    assert metric(server.url, "perception_inference_runs_total") - runs_before == 1


def test_expired_deadline_is_504_and_not_run(server, frames):
    expired_before = metric(server.url, "perception_frames_rejected_total", reason="deadline")
    r = httpx.post(server.url + "/v1/perceive", content=frames[0].read_bytes(),
                   headers={**JPEG, **AUTH, "X-Deadline-Ms": "1"}, timeout=30)  # fmt: skip
    assert r.status_code == 504, r.text
    assert r.json()["request_id"] == r.headers["x-request-id"]
    assert metric(server.url, "perception_frames_rejected_total", reason="deadline") == expired_before + 1


def test_full_queue_is_503_with_retry_after_at_once(server, frames):
    files = [("frames", (f"{i}.jpg", frames[0].read_bytes(), "image/jpeg")) for i in range(13)]  # queue holds 12
    started = time.monotonic()
    r = httpx.post(server.url + "/v1/perceive", files=files, headers=AUTH, timeout=30)
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
    assert time.monotonic() - started < 5
    assert metric(server.url, "perception_frames_rejected_total", reason="queue_full") >= 13


def test_metrics_cover_requests_stages_batches_and_model(server):
    text = httpx.get(server.url + "/metrics").text
    for name in (
        "perception_requests_total",
        "perception_stage_seconds_bucket",
        "perception_batch_size_bucket",
        "perception_queue_depth",
        "perception_frames_total",
        'perception_model_info{name="drivenet"',
    ):
        assert name in text, name  # fmt: skip
    assert 'route="/v1/perceive",status="200"' in text


def test_roll_out_switches_and_refuses_broken_models(server, models_dir):
    copy_version(models_dir / "1", models_dir / "2", "2")
    r = httpx.post(server.url + "/v1/models/load", json={"path": "2"}, headers=ADMIN, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == "2"
    for version, damage in (("3", "truncated"), ("4", "checksum")):
        copy_version(models_dir / "1", models_dir / version, version, corrupt=damage)
        r = httpx.post(server.url + "/v1/models/load", json={"path": version}, headers=ADMIN, timeout=60)
        assert r.status_code == 409, r.text
        assert "still serving drivenet 2" in r.json()["detail"]
    outside = httpx.post(server.url + "/v1/models/load", json={"path": "/etc"}, headers=ADMIN)
    assert outside.status_code == 409 and "outside" in outside.json()["detail"]
    assert httpx.get(server.url + "/v1/models", headers=AUTH).json()["version"] == "2"
    assert metric(server.url, "perception_model_rollouts_total", result="refused") >= 2


@pytest.mark.slow
def test_sigterm_drains_accepted_requests(tiny_model, frames, serve):
    # every frame waits out a 3 s window (an idle frame would start at once), so SIGTERM finds six queued
    srv = serve({"PERCEPTION_MODEL": str(tiny_model), "PERCEPTION_MAX_QUEUE_DELAY_MS": "3000",
                 "PERCEPTION_MAX_BATCH": "8", "PERCEPTION_WAIT_WHEN_IDLE": "true"})  # fmt: skip
    body = frames[0].read_bytes()
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(httpx.post, srv.url + "/v1/perceive", content=body, headers=JPEG, timeout=60)
                   for _ in range(6)]  # fmt: skip
        end = time.monotonic() + 20
        while metric(srv.url, "perception_queue_depth") < 6 and time.monotonic() < end:
            time.sleep(0.05)  # until all six frames wait in the batcher's 3 s window
        assert metric(srv.url, "perception_queue_depth") == 6
        srv.process.send_signal(signal.SIGTERM)
        answers = [f.result() for f in futures]
    assert [a.status_code for a in answers] == [200] * 6
    assert srv.process.wait(30) in (0, -signal.SIGTERM)


@pytest.mark.slow
def test_watched_folder_rolls_out_new_versions_and_skips_broken_ones(tiny_model, tmp_path, serve):
    root = tmp_path / "tiny"
    shutil.copytree(tiny_model / "1", root / "1")
    env = {"PERCEPTION_MODEL": str(root), "PERCEPTION_WATCH_MODEL": "true", "PERCEPTION_WATCH_INTERVAL_S": "0.2"}
    srv = serve(env)
    try:

        def version() -> str:
            return httpx.get(srv.url + "/v1/models").json()["version"]

        def wait_for(check, timeout_s: float = 20.0) -> bool:
            end = time.monotonic() + timeout_s
            while time.monotonic() < end:
                if check():
                    return True
                time.sleep(0.2)
            return False

        copy_version(root / "1", root / "7", "7")
        assert wait_for(lambda: version() == "7")
        copy_version(root / "1", root / "8", "8", corrupt="truncated")
        assert wait_for(lambda: metric(srv.url, "perception_model_rollouts_total", result="refused") >= 1)
        time.sleep(1.0)  # several more polls: the broken file is not retried, version 7 keeps serving
        assert metric(srv.url, "perception_model_rollouts_total", result="refused") == 1
        assert version() == "7"
    finally:
        stop_server(srv)
