"""Servers in subprocesses and a load generator in its own process (asyncio + aiohttp), bounded by a
request count and a time limit, each optionally pinned to a set of cores. Latencies are measured per
request, client side. aiohttp, not httpx: unpinned, the load generator shares the server's cores, and
httpx's pure-Python HTTP parser spent 4.4 ms of CPU reading each 630 KB answer against aiohttp's
0.34 ms (same loopback server, 400 requests)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import aiohttp
import httpx

from perception.bench.pinning import pin_process, process_cores

BOUNDARY = "perception-bench-boundary"
# Every output's key and each frame's stage timings, found in one pass over the answer: the load
# generator shares the server's cores, and three bytes.count() scans of a 630 KB answer cost 0.6 ms.
OUTPUT_KEYS = (b"detections", b"segmentation", b"depth")
ANSWER_PARTS = re.compile(rb'"(detections|segmentation|depth)":|"timings":(\{[^}]*\})')


# --- servers -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path
    cores: tuple[int, ...] | None = None  # where every thread of it may run, when pinned (read back)


def start_server(command: list[str], env: dict[str, str], port: int, log: Path, ready_path: str,
                 timeout_s: float = 120.0, cores: tuple[int, ...] | None = None) -> Server:  # fmt: skip
    """``command`` in a subprocess (output to ``log``), on ``cores`` when given; returns once
    ``ready_path`` answers 200."""
    handle = log.open("w")
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT)
    if cores:  # at once, before the interpreter starts threads (they inherit it) ...
        pin_process(process.pid, cores)
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"{command[:3]} exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url + ready_path, timeout=1).status_code == 200:
                if cores:  # ... and again over every thread, should one have been quicker
                    pin_process(process.pid, cores)
                return Server(process, url, log, process_cores(process.pid) if cores else None)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{command[:3]} not ready in {timeout_s} s: {log.read_text()[-3000:]}")


def start_service(model: Path, log: Path, env: dict[str, str], cores: tuple[int, ...] | None = None) -> Server:
    """``python -m service`` serving ``model`` on a free loopback port (on ``cores`` when given)."""
    port = free_port()
    env = {"PERCEPTION_MODEL": str(model), "PERCEPTION_HOST": "127.0.0.1", "PERCEPTION_PORT": str(port), **env}
    return start_server([sys.executable, "-m", "service"], env, port, log, "/readyz", cores=cores)


def start_plain(script: Path, model: Path, log: Path, threads: int) -> Server:
    """The plain FastAPI + ONNX Runtime baseline (``benchmarks/plain_ort_server.py``) on a free port."""
    port = free_port()
    command = [sys.executable, str(script), str(model), "--port", str(port), "--threads", str(threads)]
    return start_server(command, {}, port, log, "/healthz")


def start_eager(script: Path, model_dir: Path, log: Path, threads: int) -> Server:
    """The PyTorch-eager baseline (``benchmarks/eager_server.py``) on a free loopback port."""
    port = free_port()
    command = [sys.executable, str(script), str(model_dir), "--port", str(port), "--threads", str(threads)]
    return start_server(command, {}, port, log, "/healthz")


def stop_server(server: Server) -> int:
    server.process.terminate()
    try:
        return server.process.wait(30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        return server.process.wait()


# --- requests ------------------------------------------------------------------------------------


def request_body(images: list[bytes]) -> tuple[bytes, str]:
    """A raw JPEG body for one frame, multipart/form-data ("frames" parts) for several."""
    if len(images) == 1:
        return images[0], "image/jpeg"
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="frames"; filename="cam{i}.jpg"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode()
        + data
        + b"\r\n"
        for i, data in enumerate(images)
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


@dataclass
class LoadSpec:
    url: str
    images: list[bytes]  # the JPEGs to cycle through
    frames_per_request: int
    concurrency: int
    max_requests: int
    max_seconds: float
    warmup_requests: int = 0
    server_pid: int | None = None  # to read the server's CPU time (Linux /proc), when on this machine


def cpu_seconds(pid: int | None) -> tuple[float, float] | None:
    """(all threads, main thread) CPU seconds of process ``pid`` from /proc; None where there is
    none. A uvicorn server's main thread is its event loop: HTTP, the framework, JSON."""
    if pid is None:
        return None
    try:
        stats = [Path(f"/proc/{pid}/stat").read_text(), Path(f"/proc/{pid}/task/{pid}/stat").read_text()]
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    fields = [stat.rsplit(")", 1)[1].split() for stat in stats]  # utime, stime: fields 14, 15
    return tuple((int(f[11]) + int(f[12])) / tick for f in fields)


async def _drive(spec: LoadSpec) -> dict:
    bodies = [
        request_body([spec.images[(i + k) % len(spec.images)] for k in range(spec.frames_per_request)])
        for i in range(len(spec.images))
    ]
    latencies: list[float] = []
    errors: list[str] = []
    stages: dict[str, list[float]] = {}
    connector = aiohttp.TCPConnector(limit=spec.concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(spec.url, connector=connector, timeout=timeout) as client:

        async def one(i: int) -> float | None:
            body, content_type = bodies[i % len(bodies)]
            started = time.perf_counter()
            try:
                async with client.post("/v1/perceive", data=body, headers={"content-type": content_type}) as response:
                    status, content = response.status, await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors.append(type(exc).__name__)
                return None
            elapsed = time.perf_counter() - started
            if status != 200:
                errors.append(str(status))
                return None
            found = answer_parts(content)
            if any(found["keys"].count(key) < spec.frames_per_request for key in OUTPUT_KEYS):
                errors.append("missing output")
                return None
            for timings in found["timings"]:
                for stage, ms in json.loads(timings).items():
                    stages.setdefault(stage, []).append(ms)
            return elapsed

        await asyncio.gather(*(one(i) for i in range(spec.warmup_requests)))
        errors.clear()
        stages.clear()
        issued = 0
        server_cpu, client_cpu = cpu_seconds(spec.server_pid), time.process_time()
        started = time.perf_counter()
        end = started + spec.max_seconds

        async def worker() -> None:
            nonlocal issued
            while issued < spec.max_requests and time.perf_counter() < end:
                issued += 1
                latency = await one(issued)
                if latency is not None:
                    latencies.append(latency)

        await asyncio.gather(*(worker() for _ in range(spec.concurrency)))
        seconds = time.perf_counter() - started
        client_cpu = time.process_time() - client_cpu
        server_after = cpu_seconds(spec.server_pid)
    summary = summarise(latencies, errors, seconds, spec, stages)
    frames = issued * spec.frames_per_request
    if frames:  # CPU per frame sent, on the cores server and load generator share
        ms = {"load_generator": 1000 * client_cpu / frames}
        if server_cpu and server_after:
            ms |= {"server": 1000 * (server_after[0] - server_cpu[0]) / frames,
                   "server_event_loop": 1000 * (server_after[1] - server_cpu[1]) / frames}  # fmt: skip
        summary["cpu_ms_per_frame"] = {k: round(v, 2) for k, v in ms.items()}
    return summary


def answer_parts(content: bytes) -> dict[str, list[bytes]]:
    """The output keys (detections, segmentation, depth) and the timings objects in an answer."""
    found: dict[str, list[bytes]] = {"keys": [], "timings": []}
    for key, timings in ANSWER_PARTS.findall(content):
        found["keys" if key else "timings"].append(key or timings)
    return found


def summarise(
    latencies: list[float], errors: list[str], seconds: float, spec: LoadSpec, stages: dict[str, list[float]]
) -> dict:
    ms = sorted(1000 * x for x in latencies)

    def pct(q: float) -> float | None:
        return round(ms[min(len(ms) - 1, round(q * (len(ms) - 1)))], 1) if ms else None

    return {
        "concurrency": spec.concurrency,
        "frames_per_request": spec.frames_per_request,
        "requests": len(ms),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "seconds": round(seconds, 2),
        "frames_per_s": round(len(ms) * spec.frames_per_request / seconds, 2) if seconds else 0.0,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_ms": round(statistics.fmean(ms), 1) if ms else None,
        "server_stage_mean_ms": {stage: round(statistics.fmean(v), 1) for stage, v in stages.items()},
    }


def run_load(spec: LoadSpec) -> dict:
    """One load level, in the calling process."""
    return asyncio.run(_drive(spec))


def load_generator_cores() -> list[int]:
    """The cores the load generator's process may run on."""
    return sorted(os.sched_getaffinity(0))


class LoadGenerator:
    """Runs load levels in one separate process, so the client never shares a GIL with the
    benchmark's own work; on ``cores`` when given (unpinned, it shares the machine's cores with the
    server). Each result says where it ran (``load_generator_cores``)."""

    def __init__(self, cores: tuple[int, ...] | None = None):
        pin = (os.sched_setaffinity, (0, set(cores))) if cores else (None, ())
        self.pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=pin[0], initargs=pin[1])

    def run(self, spec: LoadSpec) -> dict:
        result = self.pool.submit(run_load, spec).result()
        return result | {"load_generator_cores": self.pool.submit(load_generator_cores).result()}

    def close(self) -> None:
        self.pool.shutdown()
