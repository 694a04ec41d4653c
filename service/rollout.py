"""Model roll-outs: load a new version beside the serving one, check it, switch atomically.

A candidate must pass every check (checksum, input/output signature, metadata, a test inference)
before it replaces the current engine; otherwise the current one keeps serving. Requests hold the
engine they started with, so in-flight frames finish on it.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from service.engine import Engine, ModelError, resolve_model_path
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger("service.rollout")


class ModelManager:
    def __init__(self, settings: Settings, metrics: Metrics):
        self.settings = settings
        self.metrics = metrics
        self.current: Engine | None = None
        self._lock = asyncio.Lock()

    @property
    def root(self) -> Path:
        """Where roll-outs may load from: the configured model folder (or the file's name folder)."""
        configured = Path(self.settings.model).resolve()
        return configured if configured.is_dir() else configured.parent.parent

    def resolve(self, requested: str | None) -> Path:
        """The model file a roll-out request names (a version, a path under the root, or None for
        the newest version); refuses paths outside the root."""
        if not requested:
            return resolve_model_path(Path(self.settings.model))
        candidate = Path(requested)
        candidate = (candidate if candidate.is_absolute() else self.root / candidate).resolve()
        if not candidate.is_relative_to(self.root):
            raise ModelError(f"{requested!r} is outside the model folder {self.root}")
        return resolve_model_path(candidate)

    def _load_and_check(self, path: Path) -> Engine:
        engine = Engine(path, self.settings.providers, self.settings.intra_op_threads)
        for _ in range(2):  # the second run measures a warm model
            engine.self_test()
        return engine

    async def load(self, requested: str | None = None) -> Engine:
        """Load, check and switch to a model; raises ModelError and keeps the current one on failure."""
        async with self._lock:
            try:
                path = self.resolve(requested)
                engine = await asyncio.to_thread(self._load_and_check, path)
            except ModelError as exc:
                self.metrics.rollouts.labels("refused").inc()
                log.error("roll-out refused, still serving %s: %s", self.describe(), exc)
                raise
            previous = self.describe()
            self.current = engine  # atomic: the next request sees the new engine
            self.metrics.serving(engine.name, engine.version)
            self.metrics.rollouts.labels("switched").inc()
            log.info("serving %s %s (%s) on %s; was %s", engine.name, engine.version, engine.path, engine.provider,
                     previous)  # fmt: skip
            return engine

    def describe(self) -> str:
        return f"{self.current.name} {self.current.version}" if self.current else "nothing"

    async def watch(self) -> None:
        """Roll out the newest version of the configured folder whenever it changes. A new file is
        loaded once it has stayed unchanged for a whole poll (so a copy in progress is never read),
        and a version that was refused is tried again only once its file changes."""
        refused: tuple | None = None
        previous: tuple | None = None
        while True:
            await asyncio.sleep(self.settings.watch_interval_s)
            try:
                newest = resolve_model_path(Path(self.settings.model)).resolve()
                checksum = newest.with_name(newest.name + ".sha256")
                stamp = (newest, newest.stat().st_mtime_ns, newest.stat().st_size,
                         checksum.stat().st_mtime_ns if checksum.exists() else None)  # fmt: skip
            except (ModelError, OSError):
                continue
            settled, previous = stamp == previous, stamp
            if not settled or stamp == refused or (self.current and newest == self.current.path.resolve()):
                continue
            try:
                await self.load(None)
            except ModelError:
                refused = stamp
