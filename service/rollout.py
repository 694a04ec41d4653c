"""Model roll-outs: load a new version beside the serving one, check it, switch atomically.

A candidate must pass every check (checksum, input/output signature, metadata, a test inference)
before it replaces the current engine; otherwise the current one keeps serving. Requests hold the
engine they started with, so in-flight frames finish on it. Every load, at start-up, on request and
from the folder watcher, picks the precision variant the same way (service/variants.py).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from service.engine import Engine, ModelError, choose_providers
from service.metrics import Metrics
from service.settings import Settings
from service.variants import Choice, choose

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

    def named(self, requested: str | None) -> Path:
        """What a roll-out request names (a version folder or a model.onnx under the root; None: the
        configured model); refuses paths outside the root."""
        if not requested:
            return Path(self.settings.model)
        candidate = Path(requested)
        candidate = (candidate if candidate.is_absolute() else self.root / candidate).resolve()
        if not candidate.is_relative_to(self.root):
            raise ModelError(f"{requested!r} is outside the model folder {self.root}")
        return candidate

    def choose(self, requested: str | None, provider: str) -> Choice:
        """The file to serve for a request on ``provider``: the variant that suits it (or the forced one)."""
        return choose(self.named(requested), provider, self.settings.variant, self.settings.tolerance)

    def relative(self, path: Path) -> str:
        """``path`` as the roll-out API names it: relative to the root when inside it."""
        path = Path(path).resolve()
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else path.name

    def _load_and_check(self, requested: str | None) -> Engine:
        planned = choose_providers(self.settings.providers)[0]
        choice = self.choose(requested, planned)
        engine = self._engine(choice)
        if engine.provider != planned:  # ONNX Runtime fell back (a GPU that failed to start): choose again
            log.warning("%s came up on %s, not %s", choice.path, engine.provider, planned)
            fallback = self.choose(requested, engine.provider)
            if fallback.path != choice.path:
                engine = self._engine(fallback)
        for _ in range(2):  # the second run measures a warm model
            engine.self_test()
        return engine

    def _engine(self, choice: Choice) -> Engine:
        engine = Engine(choice.path, self.settings.providers, self.settings.intra_op_threads)
        engine.variant = choice.variant or engine.variant  # an explicit file is what its metadata says
        engine.selection = f"{engine.variant}: {choice.reason}"
        return engine

    async def load(self, requested: str | None = None) -> Engine:
        """Load, check and switch to a model; raises ModelError and keeps the current one on failure."""
        async with self._lock:
            try:
                engine = await asyncio.to_thread(self._load_and_check, requested)
            except ModelError as exc:
                self.metrics.rollouts.labels("refused").inc()
                log.error("roll-out refused, still serving %s: %s", self.describe(), exc)
                raise
            previous = self.describe()
            self.current = engine  # atomic: the next request sees the new engine
            self.metrics.serving(engine.name, engine.version, engine.variant, self.relative(engine.path),
                                 engine.selection)  # fmt: skip
            self.metrics.rollouts.labels("switched").inc()
            log.info("serving %s %s (%s) on %s, %s; was %s", engine.name, engine.version, engine.path,
                     engine.provider, engine.selection, previous)  # fmt: skip
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
                provider = self.current.provider if self.current else choose_providers(self.settings.providers)[0]
                newest = self.choose(None, provider).path.resolve()  # the file a roll-out would serve now
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
