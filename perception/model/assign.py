"""Label assignment for the detection head: task-aligned assignment (TOOD, Feng et al. 2021).

Each ground-truth box takes the ``top_k`` points inside it whose alignment (classification score^alpha
x IoU^beta) is highest; a point claimed by several boxes goes to the one it overlaps most; the soft
class targets are the alignment normalised per box so that its best point's target is its best IoU.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_iou


@torch.no_grad()
def task_aligned_assign(
    scores: Tensor,
    boxes: Tensor,
    points: Tensor,
    strides: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    top_k: int = 13,
    alpha: float = 1.0,
    beta: float = 6.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Assign points to ground-truth boxes for one image.

    scores [A, C] sigmoid, boxes [A, 4] predicted, points [A, 2], strides [A].
    Returns (assigned ground-truth index [A] (-1 = background), soft class targets [A, C],
    box weights [A]). A box smaller than a point's stride is grown to that stride for the
    "point inside box" test, so tiny distant objects still get candidates.
    """
    num_points = scores.shape[0]
    assigned = torch.full((num_points,), -1, dtype=torch.long, device=scores.device)
    cls_targets = torch.zeros_like(scores)
    if gt_boxes.numel() == 0:
        return assigned, cls_targets, torch.zeros(num_points, device=scores.device)

    inside = points_inside(points, strides, gt_boxes)  # [N, A]
    ious = box_iou(gt_boxes, boxes).clamp(min=0)  # [N, A]
    cls_scores = scores[:, gt_labels].T  # [N, A]
    alignment = cls_scores.pow(alpha) * ious.pow(beta) * inside
    candidate = top_candidates(alignment, inside, top_k)
    best_gt, positive = resolve_claims(candidate, ious)
    assigned[positive] = best_gt[positive]
    weights = soft_targets(candidate, alignment, ious, positive)
    cls_targets[positive, gt_labels[best_gt[positive]]] = weights[positive]
    return assigned, cls_targets, weights


def points_inside(points: Tensor, strides: Tensor, gt_boxes: Tensor) -> Tensor:
    """bool [N, A]: point inside box, each box grown to at least the point's stride."""
    centres = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2  # [N, 2]
    half = torch.maximum((gt_boxes[:, None, 2:] - gt_boxes[:, None, :2]) / 2, strides[None, :, None] / 2)  # [N, A, 2]
    # <=: a centre midway between two points (a box edge on the grid's pixel) keeps both rather than neither
    return ((points[None] - centres[:, None]).abs() <= half).all(-1)


def top_candidates(alignment: Tensor, inside: Tensor, top_k: int) -> Tensor:
    """bool [N, A]: each box's ``top_k`` best-aligned points, of those inside it."""
    k = min(top_k, alignment.shape[1])
    top = alignment.topk(k, dim=1).indices  # [N, k]
    return torch.zeros_like(inside).scatter_(1, top, True) & inside


def resolve_claims(candidate: Tensor, ious: Tensor) -> tuple[Tensor, Tensor]:
    """A point claimed by several boxes goes to the one it overlaps most: (box index [A], positive [A])."""
    overlap = torch.where(candidate, ious, torch.full_like(ious, -1.0))
    best_iou, best_gt = overlap.max(0)
    return best_gt, best_iou >= 0


def soft_targets(candidate: Tensor, alignment: Tensor, ious: Tensor, positive: Tensor) -> Tensor:
    """Per point [A]: alignment normalised per box so its best point's target is its best IoU; 0 for
    background."""
    align_pos = torch.where(candidate, alignment, torch.zeros_like(alignment))
    max_align = align_pos.amax(1, keepdim=True).clamp(min=1e-9)
    max_iou = torch.where(candidate, ious, torch.zeros_like(ious)).amax(1, keepdim=True)
    normalised = (align_pos / max_align * max_iou).amax(0)  # [A]
    return torch.where(positive, normalised, torch.zeros_like(normalised))
