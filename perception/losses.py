"""Per-task losses, each averaged over the samples that carry that task's label.

Detection: task-aligned assignment (TOOD, Feng et al. 2021) with a quality focal loss on the
classification scores and torchvision's complete-IoU loss on the boxes. Segmentation: cross-entropy
over labelled pixels. Depth: scale-invariant log loss (Eigen et al. 2014) with lambda < 1, so the
absolute scale is still learned, over valid pixels, in the canonical camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_iou, complete_box_iou_loss

from perception.classes import IGNORE_INDEX
from perception.model.net import distances_to_boxes


@dataclass
class Targets:
    """A collated batch's labels. Lists hold one entry per image; flags say who has what."""

    boxes: list[Tensor]  # [N_i, 4] model pixels
    labels: list[Tensor]  # [N_i]
    has_boxes: Tensor  # bool [B]
    semantic: Tensor  # long [B, H, W], IGNORE_INDEX where unlabelled
    has_semantic: Tensor  # bool [B]
    depth: Tensor  # float [B, H, W] metres, 0 where invalid
    has_depth: Tensor  # bool [B]
    focal_px: Tensor  # float [B] at model resolution


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

    centres = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2  # [N, 2]
    half = torch.maximum((gt_boxes[:, None, 2:] - gt_boxes[:, None, :2]) / 2, strides[None, :, None] / 2)  # [N, A, 2]
    # <=: a centre midway between two points (a box edge on the grid's pixel) keeps both rather than neither
    inside = ((points[None] - centres[:, None]).abs() <= half).all(-1)  # [N, A]

    ious = box_iou(gt_boxes, boxes).clamp(min=0)  # [N, A]
    cls_scores = scores[:, gt_labels].T  # [N, A]
    alignment = cls_scores.pow(alpha) * ious.pow(beta) * inside
    k = min(top_k, num_points)
    top = alignment.topk(k, dim=1).indices  # [N, k]
    candidate = torch.zeros_like(inside).scatter_(1, top, True) & inside
    # A point claimed by several boxes goes to the one it overlaps most.
    overlap = torch.where(candidate, ious, torch.full_like(ious, -1.0))
    best_iou, best_gt = overlap.max(0)
    positive = best_iou >= 0
    assigned[positive] = best_gt[positive]

    # Soft targets: alignment normalised per box so its best point's target is its best IoU.
    align_pos = torch.where(candidate, alignment, torch.zeros_like(alignment))
    max_align = align_pos.amax(1, keepdim=True).clamp(min=1e-9)
    max_iou = torch.where(candidate, ious, torch.zeros_like(ious)).amax(1, keepdim=True)
    normalised = (align_pos / max_align * max_iou).amax(0)  # [A]
    weights = torch.where(positive, normalised, torch.zeros_like(normalised))
    cls_targets[positive, gt_labels[best_gt[positive]]] = weights[positive]
    return assigned, cls_targets, weights


def quality_focal_loss(logits: Tensor, targets: Tensor, beta: float = 2.0) -> Tensor:
    """Quality focal loss (Li et al. 2020): BCE against soft IoU targets, modulated by |t - p|^beta."""
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (bce * (targets - logits.sigmoid()).abs().pow(beta)).sum()


def detection_loss(outputs: dict[str, Tensor], targets: Targets) -> dict[str, Tensor]:
    logits = outputs["det_logits"].float()
    distances = outputs["det_distances"].float()
    points, strides = outputs["det_points"], outputs["det_strides"]
    boxes = distances_to_boxes(points, distances)
    cls_loss = logits.new_zeros(())
    box_loss = logits.new_zeros(())
    norm = logits.new_zeros(())
    for i in torch.nonzero(targets.has_boxes).flatten().tolist():
        gt_boxes, gt_labels = targets.boxes[i], targets.labels[i]
        assigned, cls_targets, weights = task_aligned_assign(
            logits[i].detach().sigmoid(), boxes[i].detach(), points, strides, gt_boxes, gt_labels
        )
        cls_loss = cls_loss + quality_focal_loss(logits[i], cls_targets)
        positive = assigned >= 0
        if positive.any():
            w = weights[positive]
            iou_loss = complete_box_iou_loss(boxes[i][positive], gt_boxes[assigned[positive]], reduction="none")
            box_loss = box_loss + (iou_loss * w).sum()
        norm = norm + weights.sum()
    norm = norm.clamp(min=1.0)
    return {"det_cls": cls_loss / norm, "det_box": 2.0 * box_loss / norm}


def segmentation_loss(outputs: dict[str, Tensor], targets: Targets) -> Tensor:
    has = targets.has_semantic
    if not has.any():
        return outputs["seg_logits"].sum() * 0.0
    logits = outputs["seg_logits"][has].float()
    labels = targets.semantic[has]
    if (labels == IGNORE_INDEX).all():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)


def depth_loss(outputs: dict[str, Tensor], targets: Targets, canonical_focal_px: float, lam: float = 0.85) -> Tensor:
    """Scale-invariant log loss per image over valid pixels, averaged over images with depth."""
    log_pred = outputs["log_depth"][:, 0].float()
    losses = []
    for i in torch.nonzero(targets.has_depth).flatten().tolist():
        valid = targets.depth[i] > 0
        if valid.sum() < 16:
            continue
        canonical = targets.depth[i][valid] * (canonical_focal_px / targets.focal_px[i])
        d = log_pred[i][valid] - canonical.log()
        losses.append(torch.sqrt((d.pow(2).mean() - lam * d.mean().pow(2)).clamp(min=1e-8)))
    if not losses:
        return log_pred.sum() * 0.0
    return torch.stack(losses).mean()


def task_losses(outputs: dict[str, Tensor], targets: Targets, canonical_focal_px: float) -> dict[str, Tensor]:
    """Every loss term the model's tasks produce; ``task_of`` maps a term to its task."""
    losses: dict[str, Tensor] = {}
    if "det_logits" in outputs:
        losses.update(detection_loss(outputs, targets))
    if "seg_logits" in outputs:
        losses["seg"] = segmentation_loss(outputs, targets)
    if "log_depth" in outputs:
        losses["depth"] = depth_loss(outputs, targets, canonical_focal_px)
    return losses


def task_of(term: str) -> str:
    return {"det_cls": "detection", "det_box": "detection", "seg": "segmentation", "depth": "depth"}[term]
