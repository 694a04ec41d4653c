"""KITTI semantics (the KITTI-2015 semantic benchmark): Cityscapes label ids on KITTI frames.

    {root}/training/image_2/{frame}_10.png     8-bit RGB
    {root}/training/semantic/{frame}_10.png    uint8 Cityscapes label ids (mapped by the Cityscapes LUT)
    {root}/testing/image_2/{frame}_10.png      no labels

Splits: ``train``/``training``, ``test``/``testing``. Semantic only: boxes and depth are ``None``
(``instance/`` and ``semantic_rgb/`` are not read).

Label alignment: in the official release a label map has its image's size. In the copy in
``../shared/realdata`` images are 1224x370 and labels 1242x375, and the images are the
*bottom-right* 1224x370 of the frames the labels were drawn on: label edges fall on image edges
at an offset of (18, 5) px, while a nearest-neighbour resize leaves them up to 18 px off at the
left edge. So a label map larger than its image is cropped to the image's bottom-right
(``label_alignment="bottom_right"``, the default); ``"resize"`` resamples it nearest-neighbour
instead (OpenCV's INTER_NEAREST_EXACT, pixel centres aligned).

Camera: the semantics come without calibration: KITTI's nominal P2, its principal point moved by
the crop, and ``extras["intrinsics_known"]`` False.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from perception.data import taxonomy
from perception.data.kitti import CAMERA_HEIGHT_M, NOMINAL_P2
from perception.data.readers import check_split_exists, read_plane, read_rgb
from perception.data.sample import Camera, Sample

_SPLIT_FOLDERS = {"train": "training", "training": "training", "test": "testing", "testing": "testing"}
ALIGNMENTS = ("bottom_right", "resize")


def align_labels(labels: np.ndarray, size: tuple[int, int], how: str) -> tuple[np.ndarray, tuple[int, int]]:
    """(label map of ``size`` (height, width), (dx, dy) offset of the image in the label frame)."""
    height, width = size
    if labels.shape == (height, width):
        return labels, (0, 0)
    if how == "resize":
        return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST_EXACT), (0, 0)
    if how != "bottom_right":
        raise ValueError(f"label_alignment must be one of {ALIGNMENTS}, got {how!r}")
    dy, dx = labels.shape[0] - height, labels.shape[1] - width
    if dx < 0 or dy < 0:
        raise ValueError(f"labels {labels.shape} are smaller than the image {size}: use label_alignment='resize'")
    return labels[dy:, dx:], (dx, dy)


class KittiSemanticsDataset:
    """KITTI semantics ``split`` under ``root``; see the module docstring."""

    def __init__(self, root: Path, split: str, label_alignment: str = "bottom_right"):
        if split not in _SPLIT_FOLDERS:
            raise FileNotFoundError(f"KITTI semantics split {split!r}: expected one of {', '.join(_SPLIT_FOLDERS)}")
        if label_alignment not in ALIGNMENTS:
            raise ValueError(f"label_alignment must be one of {ALIGNMENTS}, got {label_alignment!r}")
        self.root = Path(root)
        self.folder = self.root / _SPLIT_FOLDERS[split]
        check_split_exists(self.folder / "image_2", "KITTI semantics images")
        self.images = sorted((self.folder / "image_2").glob("*.png"))
        self.label_alignment = label_alignment
        self._lut = taxonomy.cityscapes_semantic_lut()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Sample:
        path = self.images[index]
        image = read_rgb(path)
        extras: dict = {"source": "kitti_semantics", "id": path.stem, "intrinsics_known": False}
        semantic, (dx, dy) = None, (0, 0)
        label_path = self.folder / "semantic" / path.name
        if label_path.is_file():
            labels, (dx, dy) = align_labels(read_plane(label_path), image.shape[:2], self.label_alignment)
            semantic = self._lut[labels]
        fx, fy, cx, cy = NOMINAL_P2
        camera = Camera(fx=fx, fy=fy, cx=cx - dx, cy=cy - dy, height_m=CAMERA_HEIGHT_M)
        return Sample(image, camera, None, None, semantic, None, extras)
