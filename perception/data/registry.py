"""``open_dataset``: one name → one data set, through a table of "module:Class" entries.

Adding a layout is one line in ``DATASETS``. Each adapter is imported only when its name is opened,
so opening one layout never imports another (or the synthetic renderer). Every class is called as
``Class(root, split)``; the procedural ``synthetic`` world is the one exception (it has no folder,
and takes a length, a size and a seed instead).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

from perception.data.sample import Sample

DATASETS: dict[str, str] = {
    "synthetic": "perception.data.synthetic:SyntheticDataset",
    "synthdir": "perception.data.synthetic:SynthFolderDataset",
    "cityscapes": "perception.data.cityscapes:CityscapesDataset",
    "kitti": "perception.data.kitti:KittiDataset",
    "kitti_depth": "perception.data.kitti:KittiDepthDataset",
    "bdd100k": "perception.data.bdd100k:Bdd100kDataset",
}
DATASET_NAMES = tuple(DATASETS)


class Dataset(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


def dataset_class(name: str) -> type:
    """The adapter class registered as ``name`` (imported on first use)."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)}")
    module, _, cls = DATASETS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def open_dataset(
    name: str,
    root: Path | None,
    split: str,
    length: int = 10_000,
    size: tuple[int, int] = (384, 640),
    seed: int = 0,
) -> Dataset:
    """The data set called ``name`` (one of DATASETS). ``root`` is required for every layout on disk;
    ``length``, ``size`` (height, width) and ``seed`` only shape the procedural ``synthetic`` set (real
    layouts keep their own image sizes: the transforms letterbox them)."""
    cls = dataset_class(name)
    if name == "synthetic":
        return cls(split=split, length=length, height=size[0], width=size[1], seed=seed)
    if root is None:
        raise ValueError(f"data set {name!r} needs a root folder")
    return cls(Path(root), split)
