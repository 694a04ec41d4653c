"""``perception bench`` / ``benchmarks/run.py``: model-only, multi-task vs single-task, the service end
to end, and a PyTorch-eager server, measured on this machine; JSON, Markdown and a PNG plot.

    .venv/bin/perception bench --random-init --out benchmarks/results        # ~6 minutes on 2 cores
    .venv/bin/perception bench --model models/drivenet --quick                # ~2 minutes, newest version

Ratios are measured side by side in one process with interleaved repeats (medians), so a busy
neighbour slows both sides alike; absolute figures on a shared machine are noisy, and the load
average at the start is recorded with them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from perception import timing
from perception.bench.load import LoadGenerator, LoadSpec, Server, start_eager, start_service, stop_server
from perception.bench.report import evaluate_targets, write_markdown, write_plot
from perception.contract import MODEL_FILE, ModelMetadata, resolve_model_path
from perception.export.single_task import export_random_init, multi_vs_single_task
from perception.export.variants import make_int8
from perception.machine import hardware
from perception.timing import FRAMES_DIR, in_flight_throughput, letterboxed_frames, throughput_and_in_flight
from service.batcher import Result
from service.engine import Engine
from service.pipeline import FrameInput, Options, finish, prepare

REPO = Path(__file__).resolve().parents[2]
EAGER_SCRIPT = REPO / "benchmarks" / "eager_server.py"
SECTIONS = ("model", "tasks", "service", "eager")


@dataclass
class Plan:
    """How much to measure: the full run, ``--quick`` and ``--tiny`` (the smoke test's)."""

    batch_sizes: tuple[int, ...] = (1, 2, 4, 8)
    repeats: int = timing.REPEATS
    min_seconds: float = timing.MIN_SECONDS  # per timing loop
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16)
    multi_concurrency: tuple[int, ...] = (1, 2, 4)
    eager_concurrency: tuple[int, ...] = (1, 2, 4, 8, 16)
    level_seconds: float = 10.0
    level_requests: int = 2000
    calibration_frames: int = 32


PLANS = {
    "full": Plan(),
    "quick": Plan(repeats=3, min_seconds=0.25, concurrency=(1, 4, 16), multi_concurrency=(2,),
                  eager_concurrency=(1, 4, 16), level_seconds=5.0, calibration_frames=16),
    "tiny": Plan(batch_sizes=(1, 2), repeats=1, min_seconds=0.02, concurrency=(1, 2), multi_concurrency=(1,),
                 eager_concurrency=(1, 2), level_seconds=1.0, level_requests=6, calibration_frames=2),
}  # fmt: skip


def bench_command(args: argparse.Namespace) -> int:
    plan = PLANS["tiny" if args.tiny else "quick" if args.quick else "full"]
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    if unknown := set(sections) - set(SECTIONS):
        raise SystemExit(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    if not args.model and not args.random_init:
        raise SystemExit("give --model DIR or --random-init")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="perception-bench-") as tmp:
        report = run(args, plan, sections, Path(tmp))
    json_path, md_path, png_path = (args.out / f"{args.name}.{ext}" for ext in ("json", "md", "png"))
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    markdown = write_markdown(report, md_path, png_path.name)
    write_plot(report, png_path)
    print(markdown)
    print(f"wrote {json_path}, {md_path} and {png_path}")
    return 0


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(args: argparse.Namespace, plan: Plan, sections: list[str], tmp: Path) -> dict:
    started = time.time()
    threads = args.threads or os.cpu_count() or 1
    notes: list[str] = []
    report: dict = {"machine": machine(), "settings": {}, "notes": notes, "sections": sections}
    say(f"{report['machine']['cpu']}, load average {report['machine']['load_average_start']}")

    model_dir = model_folder(args, tmp, notes)
    paths = {"fp32": model_dir / MODEL_FILE}
    session = ort.InferenceSession(str(paths["fp32"]), providers=["CPUExecutionProvider"])
    meta = ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map)
    del session
    report["model"] = {"path": str(model_dir), "name": meta.name, "version": meta.version,
                       "input": [meta.input_height, meta.input_width], "random_init": args.random_init,
                       "recipe_hash": meta.recipe_hash}  # fmt: skip

    gpu = "CUDAExecutionProvider" in ort.get_available_providers() and Path("/dev/nvidiactl").exists()
    if not gpu:
        notes.append("FP16 and TensorRT skipped: no GPU on this machine (FP16 on a CPU runs through casts)")
    paths |= precision_variants(args.variant, model_dir, gpu, plan, tmp)
    served = args.variant if args.variant != "auto" else "int8" if "int8" in paths else "fp32"
    report["settings"] = {"threads": threads, "max_batch": args.max_batch, "gpu": gpu, "served_variant": served,
                          "concurrent_batches": args.concurrent_batches,
                          "max_queue_delay_ms": args.max_queue_delay_ms, "plan": plan.__dict__}  # fmt: skip

    notes.append("in-process sessions use the service's ONNX Runtime options (perception/runtime.py), spinning off")
    if "eager" in sections:
        notes.append(f"eager baseline: torch intra-op threads {args.eager_threads or 'default'} (on this shared "
                     "machine torch's default of one OpenMP thread per core ran about 10× slower)")  # fmt: skip
    frames = letterboxed_frames(meta.input_height, meta.input_width)
    if "model" in sections:
        say(f"model only: {', '.join(paths)} at batch {plan.batch_sizes}")
        report["model_only"] = model_only(paths, frames, meta.canonical_focal_px, plan, threads,
                                          args.concurrent_batches)  # fmt: skip
    if "tasks" in sections:
        say("multi-task vs three single-task networks")
        report["tasks"] = tasks_section(model_dir, paths["fp32"], frames, meta.canonical_focal_px, plan, threads, tmp)
    images = [p.read_bytes() for p in sorted(FRAMES_DIR.glob("*.jpg"))]
    generator = LoadGenerator() if {"service", "eager"} & set(sections) else None
    try:
        if "service" in sections:
            report["service"] = service_section(args, plan, paths[served], frames, meta.canonical_focal_px,
                                                threads, images, generator, tmp)  # fmt: skip
        if "eager" in sections:
            if (model_dir / "model.safetensors").is_file() and EAGER_SCRIPT.is_file():
                say("PyTorch-eager baseline")
                report["eager"] = eager_section(model_dir, plan, args.eager_threads, images, generator, tmp)
            else:
                notes.append("eager baseline skipped: needs model.safetensors beside the model and benchmarks/")
    finally:
        if generator:
            generator.close()
    report["targets"] = evaluate_targets(report)
    report["machine"]["load_average_end"] = list(os.getloadavg())
    report["seconds"] = round(time.time() - started, 1)
    return report


def model_folder(args: argparse.Namespace, tmp: Path, notes: list[str]) -> Path:
    """The version folder measured: ``--model`` (a model.onnx, a version folder, or a model folder
    whose newest version is taken, as the service does), or the default architecture exported from
    random weights with ``--random-init``."""
    if not args.random_init:
        return resolve_model_path(args.model).parent
    say("exporting the default architecture from random weights")
    notes.append("model: the default architecture exported from random-init weights (same cost as trained)")
    return export_random_init(tmp / "random-init")


def precision_variants(variant: str, model_dir: Path, gpu: bool, plan: Plan, tmp: Path) -> dict[str, Path]:
    """The variants measured beside FP32: INT8 on a CPU (or when asked; made in ``tmp`` if the folder
    lacks it), FP16 on a GPU when the folder has it."""
    paths = {}
    if variant == "int8" or (variant == "auto" and not gpu):
        existing = model_dir / "int8" / MODEL_FILE
        if existing.is_file():
            paths["int8"] = existing
        else:
            say("making the INT8 variant (static QDQ, synthetic calibration frames) in a temporary folder")
            paths["int8"] = make_int8(model_dir, tmp / "int8", plan.calibration_frames)
    if gpu:
        existing = model_dir / "fp16" / MODEL_FILE
        if existing.is_file():
            paths["fp16"] = existing
    return paths


# --- machine -------------------------------------------------------------------------------------


def machine() -> dict:
    versions = {"python": platform.python_version(), "onnxruntime": ort.__version__, "numpy": np.__version__}
    for module in ("torch", "cv2", "fastapi", "uvicorn", "httpx"):
        with contextlib.suppress(ImportError):
            versions[module] = __import__(module).__version__
    return {
        "cpu": hardware(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "git": git_revision(),
    }


def git_revision() -> str:
    """The checkout's commit, with "+changes" when tracked files differ from it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True)  # fmt: skip
    except OSError:
        return "unknown"
    return commit.stdout.strip() + ("+changes" if dirty.stdout.strip() else "") if commit.returncode == 0 else "unknown"


# --- sections ------------------------------------------------------------------------------------


def model_only(paths: dict[str, Path], frames: np.ndarray, focal: float, plan: Plan, threads: int,
               concurrency: int) -> dict:  # fmt: skip
    """{batch: {variant: {latency_ms, frames_per_s, frames_per_s_in_flight}}}: one run at a time, and
    (when ``concurrency`` > 1) that many in flight, as the service runs them; interleaved, medians."""
    return throughput_and_in_flight(paths, frames, focal, plan.batch_sizes, concurrency, plan.repeats,
                                    plan.min_seconds, threads)  # fmt: skip


def tasks_section(model_dir: Path, multi: Path, frames: np.ndarray, focal: float, plan: Plan, threads: int,
                  tmp: Path) -> dict:  # fmt: skip
    """One multi-task pass against the three single-task networks (all FP32, batch 1)."""
    return multi_vs_single_task(model_dir, multi, frames, focal, threads, tmp, plan.repeats, plan.min_seconds)


def raw_throughput(path: Path, frames: np.ndarray, focal: float, batch: int, concurrency: int, plan: Plan,
                   threads: int) -> dict[str, float]:  # fmt: skip
    """In-process {frames_per_s, cpu_ms_per_frame} under the service's batch policy."""
    rates = in_flight_throughput({"raw": path}, frames, focal, (batch,), concurrency, plan.repeats,
                                 plan.min_seconds, threads)  # fmt: skip
    return rates[str(batch)]["raw"]


def frame_work_cpu(model: Path, images: list[bytes], repeats: int) -> dict[str, float]:
    """CPU ms per frame of the service's own work around inference, each step timed alone in this
    process on the benchmark's JPEGs: decode + letterbox, and mapping back + encoding every output."""
    engine = Engine(model, intra_op_threads=1)
    inputs = [FrameInput(data) for data in images]
    prepared = [prepare(frame, engine, 10**9) for frame in inputs]
    results = [Result(engine.run(p.pixels[None], np.array([p.focal_px], np.float32)).frame(0), engine, 0.0, 0.0, 1)
               for p in prepared]  # fmt: skip
    cpu = {"decode_letterbox": 0.0, "map_encode": 0.0}
    for _ in range(repeats):
        for frame, prep, result in zip(inputs, prepared, results, strict=True):
            started = time.process_time()
            prepare(frame, engine, 10**9)
            middle = time.process_time()
            finish(frame, 0, prep, result, Options())
            cpu["decode_letterbox"] += middle - started
            cpu["map_encode"] += time.process_time() - middle
    return {k: round(1000 * v / (repeats * len(images)), 2) for k, v in cpu.items()}


def load_levels(generator: LoadGenerator, server: Server, images: list[bytes], frames_per_request: int,
                levels: tuple[int, ...], plan: Plan, label: str) -> list[dict]:  # fmt: skip
    rows = []
    for concurrency in levels:
        spec = LoadSpec(server.url, images, frames_per_request, concurrency, plan.level_requests, plan.level_seconds,
                        min(concurrency, plan.level_requests), server.process.pid)  # fmt: skip
        rows.append(generator.run(spec))
        r = rows[-1]
        say(f"{label} ×{frames_per_request} c={concurrency}: {r['frames_per_s']} frames/s, p50 {r['p50_ms']} ms, "
            f"p99 {r['p99_ms']} ms, {r['errors']} errors")  # fmt: skip
    return rows


def service_section(args, plan: Plan, model: Path, frames: np.ndarray, focal: float, threads: int,
                    images: list[bytes], generator: LoadGenerator, tmp: Path) -> dict:  # fmt: skip
    env = {
        "PERCEPTION_INTRA_OP_THREADS": str(threads),
        "PERCEPTION_MAX_BATCH": str(args.max_batch),
        "PERCEPTION_CONCURRENT_BATCHES": str(args.concurrent_batches),
        "PERCEPTION_MAX_QUEUE_DELAY_MS": str(args.max_queue_delay_ms),
        "PERCEPTION_LOG_LEVEL": "WARNING",
    }
    policy = (args.max_batch, args.concurrent_batches)
    say(f"raw in-process throughput, {policy[1]} runs of batch {policy[0]} in flight (before the service run)")
    raw_before = raw_throughput(model, frames, focal, *policy, plan, threads)
    say(f"service on {model}")
    server = start_service(model, tmp / "service.log", env)
    try:
        single = load_levels(generator, server, images, 1, plan.concurrency, plan, "service")
        multi = load_levels(generator, server, images, args.multi_frames, plan.multi_concurrency, plan, "service")
    finally:
        stop_server(server)
    say("raw in-process throughput (after the service run)")
    raw_after = raw_throughput(model, frames, focal, *policy, plan, threads)
    say("the service's decode and encode, each timed alone")
    rates = [raw_before["frames_per_s"], raw_after["frames_per_s"]]
    return {
        "model": str(model),
        "env": env,
        "single": single,
        "multi": multi,
        "raw_frames_per_s": {"before": rates[0], "after": rates[1], "mean": round(sum(rates) / 2, 2)},
        "raw_cpu_ms_per_frame": round((raw_before["cpu_ms_per_frame"] + raw_after["cpu_ms_per_frame"]) / 2, 2),
        "frame_work_cpu_ms": frame_work_cpu(model, images, plan.repeats),
        "saturation_frames_per_s": max(r["frames_per_s"] for r in single + multi),
    }


def eager_section(model_dir: Path, plan: Plan, threads: int, images: list[bytes], generator: LoadGenerator,
                  tmp: Path) -> dict:  # fmt: skip
    server = start_eager(EAGER_SCRIPT, model_dir, tmp / "eager.log", threads)
    try:
        single = load_levels(generator, server, images, 1, plan.eager_concurrency, plan, "eager")
    finally:
        stop_server(server)
    return {"single": single, "saturation_frames_per_s": max(r["frames_per_s"] for r in single),
            "threads": threads}  # fmt: skip
