"""The PyTorch reference of what the exported graph computes: the network's ``predict``, then
class-aware NMS (torchvision's) and packing into the contract's outputs. Export verification compares
the ONNX graph against it; evaluating a torch checkpoint runs it."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import batched_nms

from perception.contract import OUTPUT_DEPTH, OUTPUT_DETECTIONS, OUTPUT_NUM_DETECTIONS, OUTPUT_SEMANTIC
from perception.model import MultiTaskNet


def pack_detections(
    boxes: torch.Tensor, scores: torch.Tensor, max_detections: int, iou: float, score_threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: class-aware NMS over (point, class) pairs scoring above the threshold, at most
    ``max_detections`` per class, then the best ``max_detections`` overall, padded with zeros.
    boxes [B, A, 4], scores [B, C, A] → detections [B, K, 6], counts [B]."""
    batch = boxes.shape[0]
    out = torch.zeros(batch, max_detections, 6)
    counts = torch.zeros(batch, dtype=torch.int64)
    for b in range(batch):
        cls, point = torch.nonzero(scores[b] > score_threshold, as_tuple=True)
        s = scores[b, cls, point]
        keep = batched_nms(boxes[b, point], s, cls, iou)  # sorted by descending score
        per_class_rank = torch.zeros_like(keep)
        for c in cls[keep].unique():
            members = cls[keep] == c
            per_class_rank[members] = torch.arange(int(members.sum()))
        keep = keep[per_class_rank < max_detections][:max_detections]
        rows = torch.cat((boxes[b, point[keep]], s[keep, None], cls[keep, None].float()), 1)
        out[b, : len(keep)] = rows
        counts[b] = len(keep)
    return out, counts


@torch.no_grad()
def reference_outputs(net: MultiTaskNet, images: np.ndarray, focal_px: np.ndarray) -> dict[str, np.ndarray]:
    """What the exported graph returns, computed in PyTorch: uint8 images [B, 3, H, W], focal [B].
    Runs on the device the network is on (the trainer's EMA weights may be on a GPU)."""
    cfg = net.config
    device = next(net.parameters()).device
    pred = net.predict(torch.from_numpy(images).to(device), torch.from_numpy(focal_px.astype(np.float32)).to(device))
    pred = {k: v.cpu() for k, v in pred.items()}
    result: dict[str, np.ndarray] = {}
    if "boxes" in pred:
        det, num = pack_detections(pred["boxes"], pred["scores"], cfg.max_detections, cfg.nms_iou, cfg.score_threshold)
        result[OUTPUT_DETECTIONS], result[OUTPUT_NUM_DETECTIONS] = det.numpy(), num.numpy()
    if "semantic" in pred:
        result[OUTPUT_SEMANTIC] = pred["semantic"].numpy()
    if "depth" in pred:
        result[OUTPUT_DEPTH] = pred["depth"].numpy()
    return result
