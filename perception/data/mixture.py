"""Training on several sources at once: each sample's source drawn by weight (``data.sources``).

``MixtureDataset`` is a ``Sequence[Sample]`` like any single source, so the loader, its transform
and its workers need nothing new: a sample keeps the labels its source has and ``None`` for the
others, and collation turns those into the per-sample task masks (``has_boxes``, ``has_semantic``,
``has_depth``) that the losses read. A CamVid frame in a batch with synthetic ones trains
segmentation only; a synthetic one all three tasks.

Which source and frame sample ``i`` is depends only on ``(seed, i)``: the sources of all ``length``
indices are drawn up front from a generator seeded with ``seed`` (each with probability weight /
sum of weights), and each source's frames are dealt out to its indices in shuffled rounds (every
frame once before any twice). So a source with a handful of frames (KITTI's 4) repeats them
evenly, the same seed gives the same sequence in every process (data-loader workers, distributed
ranks), and the loader's shuffling still gives every epoch a new order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from perception.data.registry import Dataset, open_dataset
from perception.data.sample import Sample

if TYPE_CHECKING:
    from perception.config import Config

_STREAM = 0x6D6978  # "mix": keeps the mixture's draws apart from other generators seeded with the same seed


class MixtureDataset:
    """``length`` samples from ``sources``, each drawn with probability ``weights[k] / sum(weights)``."""

    def __init__(self, sources: Sequence[Dataset], weights: Sequence[float], length: int, seed: int = 0):
        if len(sources) != len(weights) or not sources:
            raise ValueError(f"need one weight per source, got {len(sources)} sources and {len(weights)} weights")
        p = np.asarray(weights, dtype=np.float64)
        if not (p > 0).all():
            raise ValueError(f"source weights must be > 0, got {list(weights)}")
        if empty := [k for k, source in enumerate(sources) if len(source) == 0]:
            raise ValueError(f"sources {empty} of the mixture have no frames")
        self.sources = list(sources)
        self.weights = p / p.sum()
        rng = np.random.default_rng([seed, _STREAM])
        self.source_of = rng.choice(len(sources), size=length, p=self.weights).astype(np.int32)
        self.frame_of = np.empty(length, dtype=np.int64)
        for k, source in enumerate(self.sources):
            indices = np.flatnonzero(self.source_of == k)
            rounds = -(-len(indices) // len(source))
            dealt = [rng.permutation(len(source)) for _ in range(rounds)]
            self.frame_of[indices] = np.concatenate(dealt)[: len(indices)] if dealt else []

    def __len__(self) -> int:
        return len(self.source_of)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self.sources[self.source_of[index]][int(self.frame_of[index])]

    def counts(self) -> np.ndarray:
        """How many of the ``length`` samples each source gives."""
        return np.bincount(self.source_of, minlength=len(self.sources))


def open_training_data(config: Config) -> Dataset:
    """The training samples ``config.data`` names: its one source as it is, or a ``MixtureDataset`` of
    ``data.sources`` with ``data.train_length`` samples. Real layouts without a root read their
    default folder (``registry.DEFAULT_ROOTS``); the synthetic world renders at the model's size."""
    data = config.data
    specs = data.training_sources()
    opened = [
        open_dataset(
            spec.dataset,
            Path(spec.root) if spec.root else None,
            spec.split,
            length=data.train_length,
            size=(config.model.input_height, config.model.input_width),
            seed=data.seed,
        )
        for spec in specs
    ]
    if len(opened) == 1:
        return opened[0]
    return MixtureDataset(opened, [spec.weight for spec in specs], data.train_length, seed=data.seed)
