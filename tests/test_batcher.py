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
