"""What one application instance shares between requests (settings, keys, metrics, the model, the
batcher), and its start-up and shut-down."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from perception.runtime import usable_cores
from service.batcher import Batcher
from service.engine import Engine
from service.metrics import Metrics
from service.pipeline import Pipeline
from service.policy import batch_policy
from service.problems import ProblemError
from service.rollout import ModelManager
from service.security import Keys
from service.settings import Settings

log = logging.getLogger("service")


@dataclass
class State:
    settings: Settings
    models: ModelManager
    metrics: Metrics
    keys: Keys
    batcher: Batcher | None = None
    pipeline: Pipeline | None = None
    ready: bool = False
    draining: bool = False
    tasks: list = field(default_factory=list)

    @classmethod
    def create(cls, settings: Settings) -> State:
        metrics = Metrics()
        return cls(settings, ModelManager(settings, metrics), metrics, Keys(settings))

    @property
    def engine(self) -> Engine | None:
        return self.models.current

    def require_engine(self) -> Engine:
        """The engine a request runs on, or a 503 while the model is still loading. While draining, the
        server stops accepting connections SETTLE_S after the signal (service/__main__.py); requests it
        holds are answered in full."""
        if self.engine is None or not self.ready:
            raise ProblemError(503, "Not ready", "the model is still loading", {"Retry-After": "1"})
        return self.engine


async def start(state: State) -> None:
    """Load, check and warm the model (raises if it cannot serve), then start batching."""
    settings, m = state.settings, state.metrics
    engine = await state.models.load(None)
    policy, described = batch_policy(engine.provider, settings)
    log.info("batching on %s: %s", engine.provider, described)
    state.batcher = Batcher(
        policy.max_batch,
        policy.max_queue_delay_ms / 1000,
        settings.max_queue,
        policy.concurrent_batches,
        settings.wait_when_idle,
        on_batch=lambda size, seconds: (m.inference_runs.inc(), m.batch_size.observe(size)),
        on_expired=lambda n: m.rejected.labels("deadline").inc(n),
        on_failure=lambda exc: (m.inference_runs.inc(), m.inference_failures.inc()),
    )
    state.batcher.start()
    m.queue_depth.set_function(lambda: state.batcher.depth)
    state.pipeline = Pipeline(state.batcher, settings.max_pixels, usable_cores())
    if settings.watch_model:
        state.tasks.append(asyncio.create_task(state.models.watch(), name="model-watch"))
    state.ready = True
    if state.keys.inference_open:
        log.warning("no API keys configured: inference is open to anyone who can reach %s", settings.host)


async def shutdown(state: State) -> None:
    """Stop taking work, answer everything already accepted, then release the model."""
    state.draining = True
    for task in state.tasks:
        task.cancel()
    finished = await state.batcher.drain(state.settings.drain_timeout_s)
    if not finished:
        log.error("drain timed out with %d frame(s) left; they are answered 500", state.batcher.depth)
    await state.batcher.stop()
    state.pipeline.close()
