"""``open_dataset``: one name → one data set, plus the small file readers the adapters share.

Adapters are imported inside ``open_dataset`` so that opening one layout never imports another
(or the synthetic renderer).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from perception.data.sample import Sample

DATASET_NAMES = ("synthetic", "synthdir", "cityscapes", "kitti", "kitti_depth", "bdd100k")


class Dataset(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


def open_dataset(
    name: str,
    root: Path | None,
    split: str,
    length: int = 10_000,
    size: tuple[int, int] = (384, 640),
    seed: int = 0,
) -> Dataset:
    """The data set called ``name`` (one of DATASET_NAMES). ``root`` is required for every layout
    on disk; ``length``, ``size`` (height, width) and ``seed`` only shape the procedural
    ``synthetic`` set (real layouts keep their own image sizes: the transforms letterbox them)."""
    if name == "synthetic":
        from perception.data.synthetic import SyntheticDataset

        # seed is passed only if the synthetic world takes one
        extra = {"seed": seed} if "seed" in inspect.signature(SyntheticDataset).parameters else {}
        return SyntheticDataset(split=split, length=length, height=size[0], width=size[1], **extra)
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown data set {name!r}; expected one of {', '.join(DATASET_NAMES)}")
    if root is None:
        raise ValueError(f"data set {name!r} needs a root folder")
    root = Path(root)
    if name == "synthdir":
        from perception.data.synthetic import SynthFolderDataset

        return SynthFolderDataset(root)
    if name == "cityscapes":
        from perception.data.cityscapes import CityscapesDataset

        return CityscapesDataset(root, split)
    if name == "kitti":
        from perception.data.kitti import KittiDataset

        return KittiDataset(root, split)
    if name == "kitti_depth":
        from perception.data.kitti import KittiDepthDataset

        return KittiDepthDataset(root, split)
    from perception.data.bdd100k import Bdd100kDataset

    return Bdd100kDataset(root, split)


def read_rgb(path: Path) -> np.ndarray:
    """uint8 [H, W, 3] RGB; raises FileNotFoundError (OpenCV would return None silently)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_plane(path: Path) -> np.ndarray:
    """A single-channel PNG exactly as stored (uint8 or uint16)."""
    plane = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if plane is None:
        raise FileNotFoundError(f"cannot read {path}")
    if plane.ndim == 3:  # a label PNG saved as RGB with equal channels
        plane = plane[..., 0]
    return plane


def check_split_exists(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"{what}: expected folder {folder}")
