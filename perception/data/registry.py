"""``open_dataset``: one name → one data set, through a table of "module:Class" entries.

Adding a layout is one line in ``DATASETS``. Each adapter is imported only when its name is opened,
so opening one layout never imports another (or the synthetic renderer). Every class is called as
``Class(root, split)``; the procedural ``synthetic`` world is the one exception (it has no folder,
and takes a length, a size and a seed instead).

The real labelled frames kept beside the repository (``../shared/realdata``, or wherever the
``PERCEPTION_REALDATA`` environment variable points) are each layout's default root
(``DEFAULT_ROOTS``), so ``open_dataset("camvid", None, "val")`` needs no folder.
"""

from __future__ import annotations

import importlib
import os
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
    "camvid": "perception.data.camvid:CamVidDataset",
    "camvid_lanes": "perception.data.camvid:CamVidLanesDataset",
    "kitti_semantics": "perception.data.kitti_semantics:KittiSemanticsDataset",
    "nuscenes": "perception.data.nuscenes:NuScenesDataset",
}
DATASET_NAMES = tuple(DATASETS)

# The terms each data set's frames come under; a model card lists those of the sets its model trained on.
LICENCES: dict[str, str] = {
    "synthetic": "the project's own procedural world",
    "synthdir": "the project's own procedural world",
    "cityscapes": "Cityscapes terms of use (non-commercial)",
    "kitti": "CC BY-NC-SA 3.0 (non-commercial)",
    "kitti_depth": "CC BY-NC-SA 3.0 (non-commercial)",
    "kitti_semantics": "CC BY-NC-SA 3.0 (non-commercial)",
    "bdd100k": "BDD100K licence (non-commercial)",
    "camvid": "CC BY-NC 4.0 (non-commercial)",
    "camvid_lanes": "CC BY-NC 4.0 (non-commercial)",
    "nuscenes": "CC BY-NC-SA 4.0 (non-commercial)",
}

REALDATA_ENV = "PERCEPTION_REALDATA"
# Where each layout sits under the real-data folder, for names opened without a root.
DEFAULT_ROOTS: dict[str, str] = {
    "camvid": "camvid",
    "camvid_lanes": "camvid",
    "kitti": "kitti",
    "kitti_semantics": "kitti/semantics",
    "nuscenes": "nuscenes",
}


def realdata_root() -> Path:
    """``$PERCEPTION_REALDATA``, else ``../shared/realdata`` beside the repository root."""
    return Path(os.environ.get(REALDATA_ENV) or Path(__file__).resolve().parents[2].parent / "shared" / "realdata")


def default_root(name: str) -> Path:
    """The folder ``name`` is read from when no root is given; FileNotFoundError if it is missing."""
    if name not in DEFAULT_ROOTS:
        raise ValueError(f"data set {name!r} needs a root folder")
    root = realdata_root() / DEFAULT_ROOTS[name]
    if not root.is_dir():
        raise FileNotFoundError(
            f"data set {name!r}: no root given and its default folder {root} does not exist; "
            f"pass a root, or set {REALDATA_ENV} to the folder holding the real data"
        )
    return root


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
    """The data set called ``name`` (one of DATASETS). ``root`` is required for every layout on disk
    except those in DEFAULT_ROOTS, which default to their folder of real data; ``length``, ``size``
    (height, width) and ``seed`` only shape the procedural ``synthetic`` set (real layouts keep their
    own image sizes: the transforms letterbox them)."""
    cls = dataset_class(name)
    if name == "synthetic":
        return cls(split=split, length=length, height=size[0], width=size[1], seed=seed)
    return cls(Path(root) if root is not None else default_root(name), split)
