"""Loading trained weights, and the PyTorch reference of what the exported graph computes.

``reference_outputs`` is the eager twin of the ONNX graph (network + class-aware NMS + packing);
export verification compares the two, and the evaluator can score either.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import batched_nms

from perception.config import Config
from perception.contract import OUTPUT_DEPTH, OUTPUT_DETECTIONS, OUTPUT_NUM_DETECTIONS, OUTPUT_SEMANTIC
from perception.model.net import MultiTaskNet


def load_trained(path: Path) -> tuple[MultiTaskNet, Config]:
    """A trained network in eval mode from ``model.safetensors`` (config in its metadata) or a
    training checkpoint (its EMA weights)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(path, "pt") as f:
            config = Config.from_dict(json.loads(f.metadata()["config"]))
        state = load_file(path)
    else:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        config = Config.from_dict(ckpt["config"])
        state = ckpt["ema"]
    net = MultiTaskNet(config.model)
    net.load_state_dict(state)
    return net.eval(), config


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
    """What the exported graph returns, computed in PyTorch: uint8 images [B, 3, H, W], focal [B]."""
    cfg = net.config
    pred = net.predict(torch.from_numpy(images), torch.from_numpy(focal_px.astype(np.float32)))
    result: dict[str, np.ndarray] = {}
    if "boxes" in pred:
        det, num = pack_detections(pred["boxes"], pred["scores"], cfg.max_detections, cfg.nms_iou, cfg.score_threshold)
        result[OUTPUT_DETECTIONS], result[OUTPUT_NUM_DETECTIONS] = det.numpy(), num.numpy()
    if "semantic" in pred:
        result[OUTPUT_SEMANTIC] = pred["semantic"].numpy()
    if "depth" in pred:
        result[OUTPUT_DEPTH] = pred["depth"].numpy()
    return result
