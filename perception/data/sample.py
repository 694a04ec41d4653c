"""The sample type every data source returns, synthetic or real.

A target that a source does not label is ``None``; losses and metrics skip it for that sample.
Torch-free: collation into tensors happens in the training loader.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics in pixels of the image they belong to, and the camera's pose.

    ``height_m`` is the optical centre's height above the ground plane, ``pitch_rad`` the
    downward tilt (positive looks down), ``roll_rad`` the roll; unknown pose fields are ``None``.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    height_m: float | None = None
    pitch_rad: float | None = None
    roll_rad: float | None = None

    def scaled(self, sx: float, sy: float, dx: float = 0.0, dy: float = 0.0) -> Camera:
        """The intrinsics after scaling the image by (sx, sy) and shifting it by (dx, dy)."""
        return replace(self, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx + dx, cy=self.cy * sy + dy)


@dataclass
class Sample:
    """One camera frame and the targets its source has.

    image     uint8 [H, W, 3] RGB
    boxes     float32 [N, 4] x1, y1, x2, y2 in image pixels (None: not labelled)
    labels    int64 [N] indices into DETECTION_CLASSES (present exactly when boxes is)
    semantic  uint8 [H, W] indices into SEGMENTATION_CLASSES, IGNORE_INDEX where unlabelled
    depth     float32 [H, W] metres along the optical axis (z), 0 where invalid (sky, no return)
    extras    per-source additions, e.g. "truncation" and "occlusion" float32 [N] arrays,
              "instance" int32 [H, W] instance ids, "source", "id"
    """

    image: np.ndarray
    camera: Camera
    boxes: np.ndarray | None = None
    labels: np.ndarray | None = None
    semantic: np.ndarray | None = None
    depth: np.ndarray | None = None
    extras: dict = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the image."""
        return self.image.shape[0], self.image.shape[1]

    @property
    def has_boxes(self) -> bool:
        return self.boxes is not None

    @property
    def has_semantic(self) -> bool:
        return self.semantic is not None

    @property
    def has_depth(self) -> bool:
        return self.depth is not None
