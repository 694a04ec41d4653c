"""The benchmark suite's smallest run on the tiny model: every section runs and every result file is
written with the expected keys. Speed targets are measured by ``perception bench``, never asserted here."""

from __future__ import annotations

import json
import os

from perception.cli import main


def test_bench_tiny_writes_json_markdown_and_plot(tiny_model, tmp_path):
    out = tmp_path / "results"
    assert main(["bench", "--model", str(tiny_model / "1"), "--tiny", "--out", str(out), "--name", "smoke"]) == 0

    report = json.loads((out / "smoke.json").read_text())
    assert {"machine", "model", "settings", "model_only", "tasks", "service", "eager", "targets"} <= set(report)
    assert {"cpu", "cores", "load_average_start", "versions"} <= set(report["machine"])
    assert report["machine"]["cpu"].startswith(f"{os.cpu_count()} cores of ")  # cards name machines alike
    assert report["model"]["input"] == [96, 160]
    assert {"fp32", "int8"} <= set(report["model_only"]["1"])
    assert report["model_only"]["1"]["int8"]["frames_per_s_in_flight"] > 0  # the service's 2 runs in flight
    assert report["tasks"]["ratio"] > 0
    for rows in (report["service"]["single"], report["service"]["multi"], report["eager"]["single"]):
        assert rows and all(r["requests"] > 0 and r["errors"] == 0 for r in rows)
        assert {"frames_per_s", "p50_ms", "p95_ms", "p99_ms"} <= set(rows[0])
    assert report["service"]["multi"][0]["frames_per_request"] == 4
    assert {"inference_ms", "encode_ms"} <= set(report["service"]["single"][0]["server_stage_mean_ms"])
    # where the CPU goes: the server's threads and event loop (/proc counts 10 ms ticks: a tiny level
    # may show none), the load generator, the raw model
    cpu = report["service"]["single"][-1]["cpu_ms_per_frame"]
    assert cpu["server"] >= cpu["server_event_loop"] >= 0 and cpu["load_generator"] > 0
    assert report["service"]["raw_cpu_ms_per_frame"] > 0
    assert all(v > 0 for v in report["service"]["frame_work_cpu_ms"].values())
    names = {t["name"] for t in report["targets"]}
    assert len(names) == 5 and all(t["pass"] in (True, False) for t in report["targets"])

    markdown = (out / "smoke.md").read_text()
    assert "| target | goal | measured | verdict |" in markdown and "smoke.png" in markdown
    assert "int8 frames/s, 2 in flight" in markdown
    assert "| · event loop: HTTP, FastAPI, JSON |" in markdown and "budget per frame at 0.90 × raw" in markdown
    assert (out / "smoke.png").read_bytes().startswith(b"\x89PNG")


def test_load_generator_finds_each_frames_outputs_and_timings():
    """An answer counts only when every frame has every output: a missing map is seen, and a class
    or camera named like an output is not mistaken for one."""
    from perception.bench.load import answer_parts

    frame = {"camera_id": "depth", "detections": [{"class_name": "segmentation"}], "segmentation": {"data": "AAAA"},
             "depth": {"data": "BBBB"}, "timings": {"decode_ms": 1.5, "encode_ms": 0.5}}  # fmt: skip
    partial = {k: v for k, v in frame.items() if k != "depth"}
    found = answer_parts(json.dumps({"frames": [frame, partial]}, separators=(",", ":")).encode())
    assert sorted(found["keys"]) == [b"depth", b"detections", b"detections", b"segmentation", b"segmentation"]
    assert [json.loads(t) for t in found["timings"]] == [frame["timings"]] * 2
