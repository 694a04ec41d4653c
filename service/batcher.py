"""Dynamic batching: frames from concurrent requests are coalesced into single inference runs.

A batch takes every frame already waiting, up to ``max_batch``. A frame that arrives with no batch
running starts at once: nothing would be gained by holding it, the cores are idle. While other batches
are in flight, a batch that is not full waits at most ``max_delay_s`` for more frames (Triton's
"maximum queue delay"), and no longer than the others run: once none is running it starts. So
batching helps under load and costs a lone frame nothing (``wait_when_idle`` makes every batch wait
out the delay, as Triton does). A frame whose deadline has passed before its batch runs is answered
without running. When ``max_queue`` frames are waiting, new frames are refused at once (the caller answers 503).
Each frame carries the engine its request started with; a batch runs per engine, so in-flight
frames finish on the model they started with even while a new version is rolled out.

Up to ``concurrency`` batches run at once (ONNX Runtime sessions are thread-safe). Alone, a batch
has every intra-op thread; under load, two runs share them and keep the cores busy through each
other's serial stretches: on 2 CPU cores, 2 runs in flight gave 1.16x the frames per second of one
(benchmarks/results), at no cost to a lone frame's latency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from service.engine import Engine


class QueueFull(Exception):
    """Too many frames are waiting; retry after ``retry_after_s``."""

    def __init__(self, retry_after_s: float):
        super().__init__(f"inference queue is full; retry in {retry_after_s:.1f} s")
        self.retry_after_s = retry_after_s


class DeadlineExceeded(Exception):
    """The frame's deadline passed before it could be run."""


class InferenceFailed(Exception):
    """The inference run that held this frame raised."""


@dataclass(eq=False)  # a job is itself, never equal to another (and holds arrays)
class Job:
    engine: Engine
    image: np.ndarray  # uint8 [3, H, W], letterboxed for this engine
    focal_px: float  # at model resolution
    deadline: float | None  # time.monotonic() seconds
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)


@dataclass
class Result:
    outputs: dict[str, np.ndarray]  # this frame's slice of every output
    engine: Engine
    queue_s: float
    inference_s: float
    batch_size: int


class Batcher:
    def __init__(
        self,
        max_batch: int,
        max_delay_s: float,
        max_queue: int,
        concurrency: int = 2,
        wait_when_idle: bool = False,
        on_batch: Callable[[int, float], None] | None = None,
        on_expired: Callable[[int], None] | None = None,
        on_failure: Callable[[Exception], None] | None = None,
    ):
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self.concurrency = concurrency
        self.wait_when_idle = wait_when_idle
        self._on_batch = on_batch or (lambda size, seconds: None)
        self._on_expired = on_expired or (lambda count: None)
        self._on_failure = on_failure or (lambda exc: None)
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="inference")
        self._task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()
        self._batches: dict[int, list[Job]] = {}  # the batches being run, by id
        self._in_hand = 0  # frames taken off the queue and not yet answered
        self._changed = asyncio.Event()  # set when frames arrive or a batch finishes
        self._last_batch_s = 0.05

    @property
    def depth(self) -> int:
        """Frames waiting or running."""
        return self._queue.qsize() + self._in_hand

    @property
    def in_flight(self) -> int:
        """Batches being run."""
        return len(self._batches)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every accepted frame has been answered; True if it finished in time."""
        end = time.monotonic() + timeout_s
        while self.depth and time.monotonic() < end:
            await asyncio.sleep(0.01)
        return self.depth == 0

    async def stop(self) -> None:
        """Stop at once (call ``drain`` first for a graceful stop): every frame still held, running
        or waiting, is answered with InferenceFailed."""
        held = self._held
        tasks = [t for t in (self._task, *self._running) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for job in held + self._pending():
            if not job.future.done():
                job.future.set_exception(InferenceFailed("the service is shutting down"))
        await asyncio.to_thread(self._executor.shutdown, wait=True)  # runs already started finish

    def _pending(self) -> list[Job]:
        jobs = []
        while not self._queue.empty():
            jobs.append(self._queue.get_nowait())
        return jobs

    def submit_many(
        self, engine: Engine, frames: list[tuple[np.ndarray, float]], deadline: float | None
    ) -> list[asyncio.Future]:
        """Queue a request's frames (letterboxed pixels, focal length) together or not at all.
        Each future resolves to a ``Result`` or raises DeadlineExceeded / InferenceFailed.
        Raises QueueFull at once when they do not fit."""
        if self._queue.qsize() + len(frames) > self.max_queue:
            rounds_ahead = self._queue.qsize() / (self.max_batch * self.concurrency) + 1
            raise QueueFull(retry_after_s=max(0.1, rounds_ahead * self._last_batch_s))
        loop = asyncio.get_running_loop()
        futures = []
        for image, focal_px in frames:
            futures.append(loop.create_future())
            self._queue.put_nowait(Job(engine, image, focal_px, deadline, futures[-1]))
        self._changed.set()
        return futures

    async def _collect(self) -> list[Job]:
        """The next batch: the first waiting frame and every one behind it, up to ``max_batch``; while
        other batches run (or with ``wait_when_idle``), more frames for up to ``max_delay_s``."""
        batch = [await self._queue.get()]
        self._in_hand += 1
        until = batch[0].enqueued + self.max_delay_s  # a frame that waited for a slot has spent its delay
        try:
            while len(batch) < self.max_batch:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    self._in_hand += 1
                    continue
                remaining = until - time.monotonic()
                if remaining <= 0 or not (self._batches or self.wait_when_idle):
                    break  # the delay is spent, or nothing else runs: waiting would only idle the cores
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    break
        except asyncio.CancelledError:  # stopping: hand the frames back so stop() answers them
            for job in batch:
                self._queue.put_nowait(job)
            self._in_hand -= len(batch)
            raise
        return batch

    async def _loop(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        while True:
            await slots.acquire()  # a batch is collected only when it can run at once
            batch = await self._collect()
            self._batches[id(batch)] = batch  # held from now on, so stop() answers its frames
            task = asyncio.get_running_loop().create_task(self._run_then_release(batch, slots))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run_then_release(self, batch: list[Job], slots: asyncio.Semaphore) -> None:
        try:
            await self._run(batch)
        finally:
            del self._batches[id(batch)]
            self._in_hand -= len(batch)
            slots.release()
            self._changed.set()  # a batch collecting while this one ran may now start

    @property
    def _held(self) -> list[Job]:
        """Jobs of the batches being run."""
        return [job for batch in self._batches.values() for job in batch]

    async def _run(self, batch: list[Job]) -> None:
        now = time.monotonic()
        live = []
        for job in batch:
            if job.future.done():  # the client went away
                continue
            if job.deadline is not None and job.deadline <= now:
                job.future.set_exception(DeadlineExceeded("deadline passed before inference"))
                self._on_expired(1)
            else:
                live.append(job)
        groups: dict[int, list[Job]] = {}
        for job in live:  # normally one group; two only while a roll-out is in progress
            groups.setdefault(id(job.engine), []).append(job)
        for group in groups.values():
            await self._run_group(group)

    async def _run_group(self, live: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        engine = live[0].engine
        images = np.stack([job.image for job in live])
        focal = np.array([job.focal_px for job in live], np.float32)
        started = time.monotonic()
        try:
            outputs = await loop.run_in_executor(self._executor, engine.run, images, focal)
        except Exception as exc:  # one failed run fails only its own frames
            self._on_failure(exc)
            for job in live:
                if not job.future.done():
                    job.future.set_exception(InferenceFailed(f"inference failed: {type(exc).__name__}: {exc}"))
            return
        elapsed = time.monotonic() - started
        self._last_batch_s = elapsed
        self._on_batch(len(live), elapsed)
        for i, job in enumerate(live):
            if not job.future.done():
                job.future.set_result(Result(outputs.frame(i), engine, started - job.enqueued, elapsed, len(live)))
