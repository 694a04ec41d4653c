"""The trainer's quick held-out evaluation: every ``train.eval_every`` steps the EMA weights score a
few dozen frames of each set in ``train.eval_sets`` (same protocols and code as ``perception eval``)
and the headline figures go to TensorBoard and the metrics CSV.

A set is a table ``{dataset = "camvid", split = "val", count = 32, root = ""}`` (split: the
protocol's default; root: the registry's default folder). A set whose data is absent is skipped with
one warning. Frames are read and letterboxed once, at the first evaluation, and kept in memory.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from perception.data.sample import Sample
from perception.evaluate.protocols import Protocol, protocol_for
from perception.evaluate.reference import reference_outputs
from perception.evaluate.runners import evaluate, held_out_samples
from perception.model import MultiTaskNet

HEADLINE = (("detection", "mAP50"), ("segmentation", "mIoU"), ("depth", "AbsRel"))


@dataclass(frozen=True)
class EvalSet:
    """One held-out set of the periodic evaluation."""

    dataset: str
    split: str = ""  # "": the protocol's default split
    count: int = 32
    root: str = ""  # "": the registry's default folder

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"train.eval_sets: {self.dataset!r} needs count >= 1, got {self.count}")

    @property
    def protocol(self) -> Protocol:
        return protocol_for(self.dataset)

    @property
    def name(self) -> str:
        return f"{self.dataset}_{self.split or self.protocol.split}"


def parse_eval_sets(tables: list[dict]) -> list[EvalSet]:
    """``train.eval_sets`` as EvalSets; ValueError names an unknown or missing key."""
    sets = []
    for table in tables:
        if not isinstance(table, dict) or "dataset" not in table:
            raise ValueError(f"train.eval_sets: each entry is a table with a dataset, got {table!r}")
        if bad := set(table) - {"dataset", "split", "count", "root"}:
            raise ValueError(f"train.eval_sets: unknown keys {sorted(bad)} in {table!r}")
        sets.append(EvalSet(**table))
    return sets


def headline(metrics: dict) -> dict[str, float]:
    """mAP50, mIoU and AbsRel, those the set scores."""
    return {key: float(metrics[task][key]) for task, key in HEADLINE if task in metrics}


class PeriodicEval:
    """``due(step)`` says when; ``__call__(net)`` scores the network on every available set and returns
    ``{"eval/<set>/<metric>": value}`` (the metrics CSV's columns, TensorBoard's tags)."""

    def __init__(self, every: int, sets: list[EvalSet], height: int, width: int):
        self.every, self.sets, self.height, self.width = every, sets, height, width
        self._frames: dict[EvalSet, list[Sample]] | None = None

    def due(self, step: int) -> bool:
        return self.every > 0 and bool(self.sets) and step % self.every == 0

    def frames(self) -> dict[EvalSet, list[Sample]]:
        """Each available set's letterboxed frames, read on first use; absent ones warned about once."""
        if self._frames is None:
            self._frames = {}
            for s in self.sets:
                root = Path(s.root) if s.root else None
                try:
                    split = s.split or s.protocol.split
                    self._frames[s] = list(held_out_samples(s.dataset, root, split, s.count, self.height, self.width))
                except FileNotFoundError as error:
                    warnings.warn(f"periodic evaluation skips {s.name}: {error}", stacklevel=2)
        return self._frames

    def __call__(self, net: MultiTaskNet) -> dict[str, float]:
        row: dict[str, float] = {}
        for s, samples in self.frames().items():
            metrics = evaluate(lambda images, focal: reference_outputs(net, images, focal), samples,
                               protocol=s.protocol)  # fmt: skip
            row |= {f"eval/{s.name}/{key}": value for key, value in headline(metrics).items()}
        return row
