"""How the detection head's outputs become boxes: the point grid, the distance parameterisation and
the decoding to corners. Training (the losses) and the exported graph (``MultiTaskNet.predict``, whose
boxes the ONNX NMS reads) both decode through this module, so there is one copy of the geometry.

Boxes are corners ``x1, y1, x2, y2`` in input pixels; each point predicts its distances to the box's
left, top, right and bottom edges (anchor-free, FCOS/TOOD style).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# ONNX NonMaxSuppression's ``center_point_box``: 0 reads boxes as corners, the format ``distances_to_boxes``
# returns (torchvision's NMS takes corners too).
ONNX_CENTER_POINT_BOX = 0


def grid_points(height: int, width: int, stride: int, device: torch.device) -> Tensor:
    """Pixel centres of a feature map's cells in input pixels, row-major, [H*W, 2] (x, y)."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), 1)


def raw_to_distances(raw: Tensor, stride: int) -> Tensor:
    """The box branch's raw output → (l, t, r, b) distances in input pixels: softplus keeps them
    positive, the level's stride scales them."""
    return F.softplus(raw) * stride


def distances_to_boxes(points: Tensor, distances: Tensor) -> Tensor:
    """(x, y) points [A, 2] and (l, t, r, b) distances [..., A, 4] → x1, y1, x2, y2 [..., A, 4]."""
    return torch.cat((points - distances[..., :2], points + distances[..., 2:]), -1)
