"""Per-task losses, each averaged over the samples that carry that task's label.

Detection: task-aligned assignment (TOOD, Feng et al. 2021; ``perception.model.assign``) with a
quality focal loss on the classification scores and torchvision's complete-IoU loss on the boxes.
Segmentation: cross-entropy over labelled pixels, optionally only the hardest share of them (online
hard-pixel mining, as Panoptic-DeepLab's top-k pixel loss): thin, rare classes (poles, signs,
people) are few pixels, and a plain mean lets road and sky drown them. Depth: scale-invariant log
loss (Eigen et al. 2014) with lambda < 1, so the absolute scale is still learned, over valid pixels,
in the canonical camera.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import complete_box_iou_loss

from perception.classes import IGNORE_INDEX
from perception.data.loader import Targets
from perception.model import distances_to_boxes, task_aligned_assign


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


def segmentation_loss(outputs: dict[str, Tensor], targets: Targets, hard_pixels: float = 1.0) -> Tensor:
    """Cross-entropy averaged over the ``hard_pixels`` share of labelled pixels in the batch with the
    largest loss (1.0: all of them)."""
    has = targets.has_semantic
    if not has.any():
        return outputs["seg_logits"].sum() * 0.0
    logits = outputs["seg_logits"][has].float()
    labels = targets.semantic[has]
    labelled = labels != IGNORE_INDEX
    if not labelled.any():
        return logits.sum() * 0.0
    if hard_pixels >= 1.0:
        return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
    per_pixel = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="none")[labelled]
    k = max(1, int(hard_pixels * per_pixel.numel()))
    return per_pixel.topk(k, sorted=False).values.mean()


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


def task_losses(
    outputs: dict[str, Tensor], targets: Targets, canonical_focal_px: float, seg_hard_pixels: float = 1.0
) -> dict[str, Tensor]:
    """Every loss term the model's tasks produce; ``task_of`` maps a term to its task."""
    losses: dict[str, Tensor] = {}
    if "det_logits" in outputs:
        losses.update(detection_loss(outputs, targets))
    if "seg_logits" in outputs:
        losses["seg"] = segmentation_loss(outputs, targets, seg_hard_pixels)
    if "log_depth" in outputs:
        losses["depth"] = depth_loss(outputs, targets, canonical_focal_px)
    return losses


def task_of(term: str) -> str:
    return {"det_cls": "detection", "det_box": "detection", "seg": "segmentation", "depth": "depth"}[term]
