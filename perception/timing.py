"""Timing ONNX models in this process, the one way the benchmark, ``export-variants``, the study and
the model card all use: the service's session options (``perception.runtime``), interleaved repeats
(a busy neighbour slows every model alike), medians; one run at a time, or several in flight on one
session as the service's batcher keeps them."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from perception.contract import INPUT_FOCAL, INPUT_IMAGES, Letterbox
from perception.runtime import cpu_session

FRAMES_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "frames"  # the real frames timings run on
REPEATS = 5  # interleaved repeats of a full measurement (``perception bench``, the study's latency)
MIN_SECONDS = 0.4  # shortest timing loop of a full measurement


def letterboxed_frames(height: int, width: int) -> np.ndarray:
    """The real test frames letterboxed to the model's input, uint8 [N, 3, H, W]."""
    frames = []
    for path in sorted(FRAMES_DIR.glob("*.jpg")):
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        frames.append(Letterbox.fit(image.shape[1], image.shape[0], width, height).apply(image))
    return np.ascontiguousarray(np.stack(frames).transpose(0, 3, 1, 2))


def onnx_latency_ms(model_path: Path, height: int, width: int, repeats: int = 15, threads: int = 0) -> float:
    """Median wall time of one batch-1 ONNX Runtime CPU run (after warm-up)."""
    session = cpu_session(model_path, threads)
    feed = {
        INPUT_IMAGES: np.random.default_rng(0).integers(0, 256, (1, 3, height, width), dtype=np.uint8),
        INPUT_FOCAL: np.array([500.0], np.float32),
    }
    for _ in range(3):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def batch_feed(frames: np.ndarray, focal: float, batch: int) -> dict[str, np.ndarray]:
    """A batch of ``batch`` of ``frames`` (uint8 [N, 3, H, W], cycled) with one focal length."""
    images = np.stack([frames[i % len(frames)] for i in range(batch)])
    return {INPUT_IMAGES: images, INPUT_FOCAL: np.full(batch, focal, np.float32)}


def throughput(paths: dict[str, Path], frames: np.ndarray, focal: float, batch_sizes: tuple[int, ...],
               repeats: int, min_seconds: float, threads: int) -> dict:  # fmt: skip
    """{batch: {model: {latency_ms, frames_per_s}}}, one run at a time; each repeat at least
    ``min_seconds`` long."""
    sessions = {name: cpu_session(path, threads) for name, path in paths.items()}
    result = {}
    for batch in batch_sizes:
        feed = batch_feed(frames, focal, batch)
        runs = {}
        for name, sess in sessions.items():  # warm up, and size each timing loop
            sess.run(None, feed)
            start = time.perf_counter()
            sess.run(None, feed)
            runs[name] = max(1, round(min_seconds / max(time.perf_counter() - start, 1e-4)))
        seconds: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(repeats):
            for name, sess in sessions.items():
                start = time.perf_counter()
                for _ in range(runs[name]):
                    sess.run(None, feed)
                seconds[name].append((time.perf_counter() - start) / runs[name])
        result[str(batch)] = {
            name: {"latency_ms": round(1000 * statistics.median(s), 2),
                   "frames_per_s": round(batch / statistics.median(s), 2)}
            for name, s in seconds.items()
        }  # fmt: skip
    return result


def in_flight_rates(sessions: dict[str, ort.InferenceSession], feed: dict, batch: int, concurrency: int,
                    repeats: int, min_seconds: float) -> dict[str, dict[str, float]]:  # fmt: skip
    """{name: {frames_per_s, cpu_ms_per_frame}} with ``concurrency`` runs of ``batch`` frames in flight
    on each session; each repeat at least ``min_seconds`` long. CPU is this process's, every thread."""

    def frames_until(sess: ort.InferenceSession, end: float) -> int:
        runs = 0
        while time.perf_counter() < end or runs == 0:
            sess.run(None, feed)
            runs += 1
        return runs * batch

    rates: dict[str, list[float]] = {name: [] for name in sessions}
    cpu: dict[str, list[float]] = {name: [] for name in sessions}
    with ThreadPoolExecutor(concurrency) as pool:
        for _ in range(repeats):
            for name, sess in sessions.items():
                start, cpu_start = time.perf_counter(), time.process_time()
                done = sum(pool.map(frames_until, [sess] * concurrency, [start + min_seconds] * concurrency))
                rates[name].append(done / (time.perf_counter() - start))
                cpu[name].append(1000 * (time.process_time() - cpu_start) / done)
    return {name: {"frames_per_s": round(statistics.median(rates[name]), 2),
                   "cpu_ms_per_frame": round(statistics.median(cpu[name]), 2)} for name in sessions}  # fmt: skip


def in_flight_throughput(paths: dict[str, Path], frames: np.ndarray, focal: float, batch_sizes: tuple[int, ...],
                         concurrency: int, repeats: int, min_seconds: float, threads: int) -> dict:  # fmt: skip
    """{batch: {model: {frames_per_s, cpu_ms_per_frame}}} with ``concurrency`` runs in flight. ``repeats``
    and ``min_seconds`` are those of the one-at-a-time timing: in flight takes half the repeats, each
    twice as long."""
    sessions = {name: cpu_session(path, threads) for name, path in paths.items()}
    for sess in sessions.values():
        sess.run(None, batch_feed(frames, focal, 1))
    repeats, min_seconds = max(1, repeats // 2), 2 * min_seconds
    return {str(b): in_flight_rates(sessions, batch_feed(frames, focal, b), b, concurrency, repeats, min_seconds)
            for b in batch_sizes}  # fmt: skip


def throughput_and_in_flight(paths: dict[str, Path], frames: np.ndarray, focal: float, batch_sizes: tuple[int, ...],
                             concurrency: int, repeats: int, min_seconds: float, threads: int) -> dict:  # fmt: skip
    """``throughput`` with ``frames_per_s_in_flight`` added to each row when ``concurrency`` > 1 (that
    many runs in flight, as the service's batcher keeps them)."""
    result = throughput(paths, frames, focal, batch_sizes, repeats, min_seconds, threads)
    if concurrency > 1:
        rates = in_flight_throughput(paths, frames, focal, batch_sizes, concurrency, repeats, min_seconds, threads)
        for batch, row in rates.items():
            for name, rate in row.items():
                result[batch][name]["frames_per_s_in_flight"] = rate["frames_per_s"]
    return result
