"""How much a benchmark run measures: the full run, ``--quick`` and ``--tiny`` (the smoke test's)."""

from __future__ import annotations

from dataclasses import dataclass

from perception import timing


@dataclass
class Plan:
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8)
    repeats: int = timing.REPEATS
    min_seconds: float = timing.MIN_SECONDS  # per timing loop
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16)  # the service's and the plain ORT server's
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
