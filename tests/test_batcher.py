"""The batcher on its own, with a stand-in engine: concurrent runs, every frame its own answer,
nothing left behind on stop."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from service.batcher import Batcher, InferenceFailed
from service.engine import Outputs


class RecordingEngine:
    """Answers each frame with its own first pixel; records how many runs overlap."""

    def __init__(self, hold_s: float = 0.0, gate: threading.Event | None = None):
        self.hold_s, self.gate = hold_s, gate
        self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()

    def run(self, images: np.ndarray, focal_px: np.ndarray) -> Outputs:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                self.gate.wait(10)
            threading.Event().wait(self.hold_s)
            return Outputs({"first_pixel": images[:, 0, 0, 0].copy(), "focal": focal_px.copy()})
        finally:
            with self._lock:
                self.in_flight -= 1


def frame(value: int) -> tuple[np.ndarray, float]:
    return np.full((3, 4, 4), value, np.uint8), float(value)


async def answer_all(batcher: Batcher, engine: RecordingEngine, requests: list[list[int]]) -> list[list[int]]:
    """Submit each request's frames at once; the first pixel each frame was answered with."""
    futures = [batcher.submit_many(engine, [frame(v) for v in values], None) for values in requests]
    return [[int((await f).outputs["first_pixel"]) for f in request] for request in futures]


@pytest.mark.parametrize("concurrency", [1, 2])
def test_runs_overlap_up_to_the_concurrency_and_each_frame_gets_its_own_answer(concurrency):
    async def scenario():
        engine = RecordingEngine(hold_s=0.05)
        batcher = Batcher(max_batch=2, max_delay_s=0.0, max_queue=64, concurrency=concurrency)
        batcher.start()
        requests = [[i] for i in range(12)] + [[100, 101, 102]]
        answers = await answer_all(batcher, engine, requests)
        depth = batcher.depth
        await batcher.stop()
        return engine, requests, answers, depth

    engine, requests, answers, depth = asyncio.run(scenario())
    assert answers == requests  # every frame, its own answer, none lost or swapped
    assert engine.most_in_flight == concurrency
    assert depth == 0


def test_stop_answers_every_frame_it_holds():
    """Frames running and frames waiting when the service stops each get an answer."""
    gate = threading.Event()

    async def scenario():
        engine = RecordingEngine(gate=gate)
        batcher = Batcher(max_batch=2, max_delay_s=5.0, max_queue=64, concurrency=2)
        batcher.start()
        futures = batcher.submit_many(engine, [frame(v) for v in range(7)], None)
        await asyncio.sleep(0.2)  # two batches running (held at the gate), the rest waiting
        stopping = asyncio.create_task(batcher.stop())
        await asyncio.sleep(0.1)
        gate.set()
        await stopping
        return await asyncio.gather(*futures, return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert len(outcomes) == 7
    for outcome in outcomes:
        assert isinstance(outcome, InferenceFailed) or int(outcome.outputs["first_pixel"]) in range(7)
    assert any(isinstance(o, InferenceFailed) for o in outcomes)


class GatedEngine:
    """Records the frames of every run; each run starts (``started``), then waits for a permit the test
    gives (``release``), so the test decides when runs end and never waits on a clock."""

    def __init__(self):
        self.batches: list[list[int]] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)

    def run(self, images: np.ndarray, focal_px: np.ndarray) -> Outputs:
        self.batches.append([int(v) for v in images[:, 0, 0, 0]])
        self.started.release()
        assert self.release.acquire(timeout=10), "the test never released this run"
        return Outputs({"first_pixel": images[:, 0, 0, 0].copy()})


async def run_started(engine: GatedEngine) -> bool:
    """True once a run has started (False if none did within 5 s, half the 10 s queue delay used here)."""
    return await asyncio.to_thread(engine.started.acquire, True, 5)


async def settle() -> None:
    """Let the batcher's loop take whatever it can take now."""
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_lone_frame_starts_at_once_whatever_the_queue_delay():
    async def scenario():
        engine = GatedEngine()
        batcher = Batcher(max_batch=8, max_delay_s=10.0, max_queue=64, concurrency=2)
        batcher.start()
        (future,) = batcher.submit_many(engine, [frame(7)], None)
        started = await run_started(engine)  # a 10 s delay cannot have elapsed by then
        engine.release.release()
        result = await future
        await batcher.stop()
        return started, engine.batches, result

    started, batches, result = asyncio.run(scenario())
    assert started and batches == [[7]]
    assert result.batch_size == 1 and int(result.outputs["first_pixel"]) == 7


def test_frames_that_arrive_while_a_run_is_in_flight_join_one_batch():
    async def scenario():
        engine = GatedEngine()
        batcher = Batcher(max_batch=3, max_delay_s=10.0, max_queue=64, concurrency=2)
        batcher.start()
        first = batcher.submit_many(engine, [frame(1)], None)
        assert await run_started(engine)
        later = []
        for value in (2, 3, 4):  # three requests, one after another, while the first run is held
            later += batcher.submit_many(engine, [frame(value)], None)
            await settle()
        assert await run_started(engine)  # the batch filled: it went without waiting out the delay
        for _ in range(2):
            engine.release.release()
        results = await asyncio.gather(*first, *later)
        await batcher.stop()
        return engine.batches, results

    batches, results = asyncio.run(scenario())
    assert batches == [[1], [2, 3, 4]]
    assert [int(r.outputs["first_pixel"]) for r in results] == [1, 2, 3, 4]
    assert [r.batch_size for r in results] == [1, 3, 3, 3]


def test_a_waiting_batch_starts_when_the_runs_in_flight_end_not_after_the_delay():
    async def scenario():
        engine = GatedEngine()
        batcher = Batcher(max_batch=8, max_delay_s=10.0, max_queue=64, concurrency=2)
        batcher.start()
        (first,) = batcher.submit_many(engine, [frame(1)], None)
        assert await run_started(engine)
        (second,) = batcher.submit_many(engine, [frame(2)], None)
        await settle()
        held = batcher.in_flight, list(engine.batches)  # the second frame waits for company while one runs
        engine.release.release()
        await first
        assert await run_started(engine)  # nothing runs any more: it starts, long before its 10 s
        engine.release.release()
        await second
        await batcher.stop()
        return held, engine.batches

    held, batches = asyncio.run(scenario())
    assert held == (1, [[1]])
    assert batches == [[1], [2]]


def test_wait_when_idle_holds_a_lone_frame_for_company():
    """The opt-in old behaviour: every batch waits out the delay (or fills), even with nothing running."""

    async def scenario():
        engine = GatedEngine()
        batcher = Batcher(max_batch=2, max_delay_s=10.0, max_queue=64, concurrency=2, wait_when_idle=True)
        batcher.start()
        futures = batcher.submit_many(engine, [frame(1)], None)
        await settle()
        held = batcher.in_flight, batcher.depth
        futures += batcher.submit_many(engine, [frame(2)], None)
        assert await run_started(engine)
        engine.release.release()
        results = await asyncio.gather(*futures)
        await batcher.stop()
        return held, engine.batches, results

    held, batches, results = asyncio.run(scenario())
    assert held == (0, 1)  # not run, still waiting
    assert batches == [[1, 2]] and [r.batch_size for r in results] == [2, 2]
