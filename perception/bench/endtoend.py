"""The end-to-end sections: the service over loopback (cores shared, and pinned apart from the load
generator), with the raw in-process model under the same batch policy before and after it, and the
two plain servers (FastAPI + ONNX Runtime, FastAPI + PyTorch eager) under the same load levels."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np

from perception.bench.load import (
    LoadGenerator,
    LoadSpec,
    Server,
    start_eager,
    start_plain,
    start_service,
    stop_server,
)
from perception.bench.pinning import PinPlan, pinned
from perception.bench.plan import Plan
from perception.bench.service_config import ServiceConfig
from perception.timing import in_flight_throughput
from service.batcher import Result
from service.engine import Engine
from service.pipeline import FrameInput, Options, finish, prepare


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


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
                concurrencies: tuple[int, ...], plan: Plan, label: str) -> list[dict]:  # fmt: skip
    rows = []
    for concurrency in concurrencies:
        spec = LoadSpec(server.url, images, frames_per_request, concurrency, plan.level_requests, plan.level_seconds,
                        min(concurrency, plan.level_requests), server.process.pid)  # fmt: skip
        rows.append(generator.run(spec))
        r = rows[-1]
        say(f"{label} ×{frames_per_request} c={concurrency}: {r['frames_per_s']} frames/s, p50 {r['p50_ms']} ms, "
            f"p99 {r['p99_ms']} ms, {r['errors']} errors")  # fmt: skip
    return rows


def service_section(model: Path, frames: np.ndarray, focal: float, config: ServiceConfig, plan: Plan,
                    images: list[bytes], multi_frames: int, generator: LoadGenerator, log: Path,
                    pin: PinPlan | None = None) -> dict:  # fmt: skip
    """The service at every load level, between two raw in-process measurements of the same file under
    the same batch policy. With ``pin``, the server and the raw model run on ``pin.server`` with one
    intra-op thread per core (``generator`` is then expected on ``pin.load``)."""
    threads = len(pin.server) if pin else config.threads
    where = (lambda: pinned(pin.server)) if pin else contextlib.nullcontext
    label = "service (pinned)" if pin else "service"
    policy = (config.max_batch, config.concurrent_batches)
    say(f"{label}: raw in-process throughput, {policy[1]} runs of batch {policy[0]} in flight, {threads} threads")
    with where():
        raw_before = raw_throughput(model, frames, focal, *policy, plan, threads)
    say(f"{label} on {model}" + (f", {pin.describe()}" if pin else ""))
    server = start_service(model, log, config.env(threads), pin.server if pin else None)
    try:
        single = load_levels(generator, server, images, 1, plan.concurrency, plan, label)
        multi = load_levels(generator, server, images, multi_frames, plan.multi_concurrency, plan, label)
    finally:
        stop_server(server)
    say(f"{label}: raw in-process throughput (after the service run)")
    with where():
        raw_after = raw_throughput(model, frames, focal, *policy, plan, threads)
    rates = [raw_before["frames_per_s"], raw_after["frames_per_s"]]
    section = {
        "model": str(model),
        "env": config.env(threads),
        "threads": threads,
        "single": single,
        "multi": multi,
        "raw_frames_per_s": {"before": rates[0], "after": rates[1], "mean": round(sum(rates) / 2, 2)},
        "raw_cpu_ms_per_frame": round((raw_before["cpu_ms_per_frame"] + raw_after["cpu_ms_per_frame"]) / 2, 2),
        "saturation_frames_per_s": max(r["frames_per_s"] for r in single + multi),
    }
    if pin:  # what was asked, and what the server's threads and the load generator were found on
        section["cores"] = {"server": list(pin.server), "load_generator": list(pin.load),
                            "server_read_back": list(server.cores or ()),
                            "load_generator_read_back": single[0]["load_generator_cores"]}  # fmt: skip
    return section


def plain_section(script: Path, model: Path, threads: int, plan: Plan, images: list[bytes],
                  generator: LoadGenerator, log: Path) -> dict:  # fmt: skip
    """The plain FastAPI + ONNX Runtime server on the same file, single frames at the service's levels."""
    server = start_plain(script, model, log, threads)
    try:
        single = load_levels(generator, server, images, 1, plan.concurrency, plan, "plain ORT")
    finally:
        stop_server(server)
    return {"model": str(model), "threads": threads, "single": single,
            "saturation_frames_per_s": max(r["frames_per_s"] for r in single)}  # fmt: skip


def eager_section(script: Path, model_dir: Path, threads: int, plan: Plan, images: list[bytes],
                  generator: LoadGenerator, log: Path) -> dict:  # fmt: skip
    server = start_eager(script, model_dir, log, threads)
    try:
        single = load_levels(generator, server, images, 1, plan.eager_concurrency, plan, "eager")
    finally:
        stop_server(server)
    return {"single": single, "saturation_frames_per_s": max(r["frames_per_s"] for r in single),
            "threads": threads}  # fmt: skip
