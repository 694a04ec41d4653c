"""The small file readers every on-disk adapter shares (OpenCV returns None on a bad path; these raise)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


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
