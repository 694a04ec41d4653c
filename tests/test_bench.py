"""The benchmark suite: its smallest run on the tiny model (every section runs and every result file is
written with the expected keys, each verdict the measured value held against its goal), the core-pinning
plan, the service configuration it measures, the plain FastAPI + ONNX Runtime baseline's answer, and the
targets' verdicts on made-up figures. Speed targets are measured by ``perception bench``, never asserted
here."""

from __future__ import annotations

import argparse
import json
import operator
import os
import subprocess
import sys

import httpx
import pytest

from perception.bench.load import start_plain, stop_server
from perception.bench.pinning import (
    PinError,
    PinPlan,
    cpu_list,
    parse_cpu_list,
    pin_plan,
    pin_process,
    pinned,
    process_cores,
)
from perception.bench.report import TARGETS, evaluate_targets
from perception.bench.run import PLAIN_SCRIPT, main
from perception.bench.service_config import service_config
from perception.runtime import allowed_cores
from service.engine import choose_providers
from service.policy import batch_policy
from service.settings import Settings

TWO_CORES = pytest.mark.skipif(len(allowed_cores()) < 2, reason="pinning needs two cores this process may run on")


@pytest.mark.slow
def test_bench_tiny_writes_json_markdown_and_plot(tiny_model, tmp_path):
    out = tmp_path / "results"
    assert main(["--model", str(tiny_model / "1"), "--tiny", "--out", str(out), "--name", "smoke"]) == 0

    report = json.loads((out / "smoke.json").read_text())
    assert {"machine", "model", "settings", "model_only", "tasks", "service", "plain", "eager", "targets"} <= set(
        report
    )
    assert {"cpu", "cores", "load_average_start", "versions"} <= set(report["machine"])
    assert report["machine"]["cpu"].startswith(f"{os.cpu_count()} cores of ")  # cards name machines alike
    assert report["model"]["input"] == [96, 160]
    assert {"fp32", "int8"} <= set(report["model_only"]["1"])
    assert report["model_only"]["1"]["int8"]["frames_per_s_in_flight"] > 0  # the service's 2 runs in flight
    assert report["tasks"]["ratio"] > 0
    pin = pin_plan("auto", allowed_cores())
    assert ("service_pinned" in report) is (pin is not None)
    loads = ["service", "plain", "eager"] + (["service_pinned"] if pin else [])
    for rows in [report[k]["single"] for k in loads] + [report["service"]["multi"]]:
        assert rows and all(r["requests"] > 0 and r["errors"] == 0 for r in rows)
        assert {"frames_per_s", "p50_ms", "p95_ms", "p99_ms"} <= set(rows[0])
    assert [r["concurrency"] for r in report["plain"]["single"]] == [
        r["concurrency"] for r in report["service"]["single"]
    ]
    assert report["plain"]["model"] == report["service"]["model"]  # the same file as the service serves
    assert report["service"]["multi"][0]["frames_per_request"] == 4
    assert {"inference_ms", "encode_ms"} <= set(report["service"]["single"][0]["server_stage_mean_ms"])
    # the service ran in its own default configuration: the policy it resolves with nothing set
    defaults, _ = batch_policy(report["settings"]["provider"], Settings())
    assert (report["settings"]["max_batch"], report["settings"]["concurrent_batches"]) == (
        defaults.max_batch, defaults.concurrent_batches)  # fmt: skip
    assert "PERCEPTION_MAX_BATCH" not in report["service"]["env"]
    # where the CPU goes: the server's threads and event loop (/proc counts 10 ms ticks: a tiny level
    # may show none), the load generator, the raw model
    cpu = report["service"]["single"][-1]["cpu_ms_per_frame"]
    assert cpu["server"] >= cpu["server_event_loop"] >= 0 and cpu["load_generator"] > 0
    assert report["service"]["raw_cpu_ms_per_frame"] > 0
    assert all(v > 0 for v in report["service"]["frame_work_cpu_ms"].values())
    if pin:  # the server's threads and the load generator were found on the cores the plan gave them
        pinned_run = report["service_pinned"]
        assert pinned_run["cores"]["server_read_back"] == list(pin.server) == pinned_run["cores"]["server"]
        assert all(r["load_generator_cores"] == list(pin.load) for r in pinned_run["single"] + pinned_run["multi"])
        assert pinned_run["threads"] == len(pin.server)
        assert pinned_run["env"]["PERCEPTION_INTRA_OP_THREADS"] == str(len(pin.server))
        assert pinned_run["raw_frames_per_s"]["mean"] > 0
    assert all(r["load_generator_cores"] == list(allowed_cores()) for r in report["service"]["single"])

    names = {t["name"] for t in report["targets"]}
    assert len(names) == (7 if pin else 6) and all(t["pass"] in (True, False) for t in report["targets"])
    measured = measured_against_goals(report)
    assert names == set(measured)
    for target in report["targets"]:  # each verdict is the measured value held against the goal
        value, verdict = measured[target["name"]]
        assert target["value"] == pytest.approx(value, abs=0.051), target["name"]
        assert target["pass"] is verdict, target["name"]

    markdown = (out / "smoke.md").read_text()
    assert "| target | goal | measured | verdict |" in markdown and "smoke.png" in markdown
    for target in report["targets"]:
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {target['name']} |"))
        assert row.endswith(f"| {'PASS' if measured[target['name']][1] else 'MISS'} |"), row
    assert "int8 frames/s, 2 in flight" in markdown
    assert "| · event loop: HTTP, FastAPI, JSON |" in markdown and "budget per frame at 0.90 × raw" in markdown
    assert "| cores shared |" in markdown and ("| pinned |" in markdown) is (pin is not None)
    assert "| plain FastAPI + ORT | 1 |" in markdown
    assert (out / "smoke.png").read_bytes().startswith(b"\x89PNG")


def measured_against_goals(report: dict) -> dict[str, tuple[float, bool]]:
    """{target name: (measured value, whether it meets the goal)}, recomputed from the report's raw
    sections and ``TARGETS``, independently of ``perception.bench.report.evaluate_targets``."""
    service, eager, model_only, tasks = report["service"], report["eager"], report["model_only"], report["tasks"]
    served = report["settings"]["served_variant"]
    at_least, at_most = operator.ge, operator.le
    raw = service["saturation_frames_per_s"] / service["raw_frames_per_s"]["mean"]
    overhead = service["single"][0]["p50_ms"] - model_only["1"][served]["latency_ms"]
    ours = {r["concurrency"]: r for r in service["single"]}

    def versus(other: dict, goal: float) -> tuple[float, bool]:
        theirs = [r for r in other["single"] if r["concurrency"] in ours][-1]
        mine = ours[theirs["concurrency"]]
        ratio = mine["frames_per_s"] / theirs["frames_per_s"]
        return ratio, at_least(ratio, goal) and mine["p99_ms"] <= theirs["p99_ms"]

    best = {v: max(max(row[v]["frames_per_s"], row[v]["frames_per_s_in_flight"]) for row in model_only.values())
            for v in ("fp32", "int8")}  # fmt: skip
    int8 = best["int8"] / best["fp32"]
    measured = {
        "service vs raw model, cores shared": (raw, at_least(raw, TARGETS["service_vs_raw"])),
        "single-frame p50 latency": (overhead, at_most(overhead, TARGETS["latency_overhead_ms"])),
        "service vs plain FastAPI + ORT": versus(report["plain"], TARGETS["vs_plain"]),
        "service vs PyTorch eager": versus(eager, TARGETS["vs_eager"]),
        "multi-task vs three single-task": (tasks["ratio"], at_most(tasks["ratio"], TARGETS["multi_task_ratio"])),
        "INT8 vs FP32": (int8, at_least(int8, TARGETS["int8_speedup"])),
    }
    if pinned_run := report.get("service_pinned"):
        ratio = pinned_run["saturation_frames_per_s"] / pinned_run["raw_frames_per_s"]["mean"]
        measured["service vs raw model, pinned"] = (ratio, at_least(ratio, TARGETS["service_vs_raw_pinned"]))
    return measured


# --- the pin plan ---------------------------------------------------------------------------------


def test_auto_pins_the_load_generator_to_the_last_core_and_the_server_to_the_rest():
    assert pin_plan("auto", [0]) is None  # one core: nothing to pin apart, only the shared figure
    assert pin_plan("auto", [0, 1]) == PinPlan(server=(0,), load=(1,))
    assert pin_plan("auto", range(16)) == PinPlan(server=tuple(range(15)), load=(15,))
    assert pin_plan("AUTO", [7, 3]) == PinPlan(server=(3,), load=(7,))  # the cores allowed, not 0..n-1
    assert pin_plan("off", range(16)) is None


def test_explicit_pin_plans_name_both_core_sets():
    assert pin_plan("0:1", [0, 1]) == PinPlan((0,), (1,))
    assert pin_plan("1:0", [0, 1]) == PinPlan((1,), (0,))
    assert pin_plan("0-2,5:3,4", range(8)) == PinPlan((0, 1, 2, 5), (3, 4))
    assert pin_plan(" 4-7 : 0 ", range(8)) == PinPlan((4, 5, 6, 7), (0,))
    assert parse_cpu_list("0,2,4-6") == (0, 2, 4, 5, 6) and cpu_list((0, 1, 2, 5, 7, 8)) == "0-2,5,7-8"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("0:0", "overlap (0)"),
        ("0-3:2-5", "overlap (2-3)"),
        ("0:2", "cores 2 are not available"),
        ("0", "SERVER_CORES:LOAD_CORES"),
        (":1", "SERVER_CORES:LOAD_CORES"),
        ("0:", "SERVER_CORES:LOAD_CORES"),
        ("a:1", "not a CPU list"),
        ("3-1:0", "not a core number or an increasing range"),
        ("-1:0", "not a CPU list"),
        ("yes", "SERVER_CORES:LOAD_CORES"),
    ],
)
def test_invalid_pin_plans_are_refused_with_the_reason(spec, message):
    with pytest.raises(PinError) as caught:
        pin_plan(spec, [0, 1])
    assert message in str(caught.value), str(caught.value)


def test_bench_refuses_an_invalid_pin_before_measuring_anything(tmp_path):
    with pytest.raises(SystemExit, match="overlap"):
        main(["--model", str(tmp_path / "absent"), "--pin", "0:0", "--out", str(tmp_path)])


@TWO_CORES
def test_pinning_moves_threads_and_processes_and_restores_the_calling_thread():
    cores = allowed_cores()
    with pinned(cores[:1]):
        assert os.sched_getaffinity(0) == {cores[0]}
    assert tuple(sorted(os.sched_getaffinity(0))) == cores
    child = subprocess.Popen([sys.executable, "-c", "import threading, time; threading.Thread(target=time.sleep, "
                              "args=(30,)).start(); time.sleep(30)"])  # fmt: skip
    try:
        pin_process(child.pid, cores[-1:])
        assert process_cores(child.pid) == cores[-1:]
    finally:
        child.kill()
        child.wait()


# --- the service configuration measured -----------------------------------------------------------


def bench_args(**given) -> argparse.Namespace:
    flags = {"threads": None, "max_batch": None, "concurrent_batches": None, "max_queue_delay_ms": None}
    return argparse.Namespace(**(flags | given))


def test_bench_measures_the_services_own_defaults_unless_a_flag_overrides_them(monkeypatch):
    for name in ("PERCEPTION_MAX_BATCH", "PERCEPTION_CONCURRENT_BATCHES", "PERCEPTION_MAX_QUEUE_DELAY_MS",
                 "PERCEPTION_INTRA_OP_THREADS", "PERCEPTION_PROVIDERS"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    config = service_config(bench_args())
    defaults, _ = batch_policy(choose_providers("auto")[0], Settings())  # what the service resolves unset
    assert (config.max_batch, config.concurrent_batches, config.max_queue_delay_ms) == (
        defaults.max_batch, defaults.concurrent_batches, defaults.max_queue_delay_ms)  # fmt: skip
    assert config.threads == (Settings().intra_op_threads or os.cpu_count())
    assert set(config.sources.values()) == {"service default"}
    assert config.env() == {"PERCEPTION_LOG_LEVEL": "WARNING"}  # the service is left to its own defaults

    config = service_config(bench_args(max_batch=defaults.max_batch + 3, max_queue_delay_ms=0.0, threads=1))
    assert (config.max_batch, config.max_queue_delay_ms, config.threads) == (defaults.max_batch + 3, 0.0, 1)
    assert config.concurrent_batches == defaults.concurrent_batches
    assert config.sources["max_batch"] == "--max-batch" and config.sources["concurrent_batches"] == "service default"
    env = config.env()
    assert env["PERCEPTION_MAX_BATCH"] == str(defaults.max_batch + 3) and env["PERCEPTION_MAX_QUEUE_DELAY_MS"] == "0.0"
    assert "PERCEPTION_CONCURRENT_BATCHES" not in env and config.env(threads=2)["PERCEPTION_INTRA_OP_THREADS"] == "2"

    monkeypatch.setenv("PERCEPTION_MAX_BATCH", "5")  # what the service itself would read
    config = service_config(bench_args())
    assert config.max_batch == 5 and config.sources["max_batch"] == "$PERCEPTION_MAX_BATCH"


# --- the plain FastAPI + ONNX Runtime baseline ----------------------------------------------------


def shape(value):
    """The JSON's structure: keys and value types, lists by their first element."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


@pytest.fixture(scope="module")
def plain_server(tiny_model, tmp_path_factory):
    server = start_plain(PLAIN_SCRIPT, tiny_model / "1" / "model.onnx", tmp_path_factory.mktemp("plain") / "log", 1)
    yield server
    stop_server(server)


@pytest.mark.slow
def test_plain_server_answers_a_frame_in_the_services_shape(plain_server, serve, tiny_model, frames):
    service = serve({"PERCEPTION_MODEL": str(tiny_model)})
    data = frames[0].read_bytes()
    headers = {"content-type": "image/jpeg"}
    ours = httpx.post(service.url + "/v1/perceive", content=data, headers=headers, timeout=60)
    plain = httpx.post(plain_server.url + "/v1/perceive", content=data, headers=headers, timeout=60)
    assert ours.status_code == plain.status_code == 200
    a, b = ours.json(), plain.json()
    if not (a["frames"][0]["detections"] and b["frames"][0]["detections"]):  # the tiny model may find nothing
        a["frames"][0]["detections"] = b["frames"][0]["detections"] = []
    assert shape(b) == shape(a)
    frame, want = b["frames"][0], a["frames"][0]
    assert b["model"] == a["model"] and (frame["width"], frame["height"]) == (want["width"], want["height"])
    for output in ("segmentation", "depth"):  # dense outputs at the size and in the encoding the service sends
        assert {k: frame[output][k] for k in ("encoding", "width", "height")} == {
            k: want[output][k] for k in ("encoding", "width", "height")}  # fmt: skip
    assert frame["segmentation"]["classes"] == want["segmentation"]["classes"]
    assert frame["batch_size"] == 1
    refused = httpx.post(plain_server.url + "/v1/perceive", content=b"not an image", headers=headers, timeout=60)
    assert refused.status_code == 400


# --- the targets' verdicts ------------------------------------------------------------------------


def level(concurrency: int, frames_per_s: float, p50: float, p99: float) -> dict:
    return {"concurrency": concurrency, "frames_per_request": 1, "frames_per_s": frames_per_s, "p50_ms": p50,
            "p99_ms": p99}  # fmt: skip


def made_up_report(service_fps=(40.0, 60.0), service_p99=300.0, plain_fps=(30.0, 48.0), plain_p99=400.0,
                   p50=25.0, model_ms=16.0, raw=70.0, pinned_fps=65.0, pinned=True) -> dict:  # fmt: skip
    """A report with just the figures the targets read: single frames at c=1 and c=16."""
    service = {"single": [level(1, service_fps[0], p50, p50 + 5), level(16, service_fps[1], 250.0, service_p99)],
               "multi": [], "saturation_frames_per_s": max(service_fps),
               "raw_frames_per_s": {"before": raw, "after": raw, "mean": raw}}  # fmt: skip
    report = {
        "settings": {"served_variant": "int8"},
        "service": service,
        "plain": {"single": [level(1, plain_fps[0], 33.0, 40.0), level(16, plain_fps[1], 330.0, plain_p99)]},
        "model_only": {
            "1": {
                "int8": {"latency_ms": model_ms, "frames_per_s": 62.0},
                "fp32": {"latency_ms": 33.0, "frames_per_s": 30.0},
            }
        },
    }
    if pinned:
        report["service_pinned"] = {"saturation_frames_per_s": pinned_fps, "cores": {"server": [0],
                                    "load_generator": [1]}, "raw_frames_per_s": {"mean": raw}}  # fmt: skip
    return report


def verdicts(report: dict) -> dict[str, bool | None]:
    return {t["name"]: t["pass"] for t in evaluate_targets(report)}


def test_target_verdicts_follow_from_the_numbers():
    base = verdicts(made_up_report())
    assert base == {
        "service vs raw model, cores shared": False,  # 60 / 70 = 0.86
        "service vs raw model, pinned": True,  # 65 / 70 = 0.93
        "single-frame p50 latency": True,  # 25 - 16 = 9 ms ≤ 10
        "service vs plain FastAPI + ORT": True,  # 60 / 48 = 1.25 at c=16, p99 300 ≤ 400
        "INT8 vs FP32": True,  # 62 / 30
    }
    plain = next(t for t in evaluate_targets(made_up_report()) if t["name"] == "service vs plain FastAPI + ORT")
    assert plain["value"] == 1.25 and "c=16" in plain["measured"] and "p50 25.0 vs 33.0 ms" in plain["measured"]
    assert not verdicts(made_up_report(plain_fps=(30.0, 52.0)))["service vs plain FastAPI + ORT"]  # 1.15 < 1.2
    assert not verdicts(made_up_report(service_p99=450.0))["service vs plain FastAPI + ORT"]  # faster, worse p99
    assert verdicts(made_up_report(service_p99=400.0))["service vs plain FastAPI + ORT"]  # equal p99 is enough
    assert not verdicts(made_up_report(p50=26.5))["single-frame p50 latency"]  # +10.5 ms
    assert not verdicts(made_up_report(pinned_fps=62.0))["service vs raw model, pinned"]  # 0.886
    assert verdicts(made_up_report(raw=66.0))["service vs raw model, cores shared"]  # 60 / 66 = 0.91
    # not pinned (one core, or --pin off): the shared figure only
    assert "service vs raw model, pinned" not in verdicts(made_up_report(pinned=False))
