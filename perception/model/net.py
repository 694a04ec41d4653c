"""The multi-task network: a timm backbone, a feature pyramid, and one head per task.

``forward`` takes normalised float images and returns raw head outputs (what the losses need);
``predict`` takes uint8 images and a focal length and returns final answers (what export wraps).
The parts live in their own modules (``backbone``, ``neck``, ``heads``, ``box_coding``); this one
assembles them, and its attribute names are the state-dict names saved models carry.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception.classes import DETECTION_CLASSES, SEGMENTATION_CLASSES
from perception.config import ModelConfig
from perception.model.backbone import IMAGE_MEAN, IMAGE_STD, create_backbone, input_normalisation
from perception.model.box_coding import distances_to_boxes
from perception.model.heads import ACTIVATIONS, DenseDecoder, DetectionHead, upsample
from perception.model.neck import FeaturePyramid

__all__ = ["IMAGE_MEAN", "IMAGE_STD", "MultiTaskNet"]


class MultiTaskNet(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.head_activation not in ACTIVATIONS:
            raise ValueError(f"unknown head_activation {config.head_activation!r}; choose from {sorted(ACTIVATIONS)}")
        self.config = config
        self.tasks = tuple(config.tasks)
        self.backbone = create_backbone(config)
        channels = self.backbone.feature_info.channels()  # at strides 4, 8, 16, 32
        self.pyramid_strides = self.backbone.feature_info.reduction()[1:]  # 8, 16, 32: the first stays out
        self.neck = FeaturePyramid(channels[1:], config.neck_channels)
        c = config.neck_channels
        fine = "detection" in self.tasks and 4 in config.det_strides
        if fine and config.det_strides[-1] != 4:
            raise ValueError("list stride 4 last in model.det_strides: head levels are indexed by position")
        if "detection" in self.tasks:
            level_channels = [config.dense_channels if s == 4 else c for s in config.det_strides]
            self.detection = DetectionHead(level_channels, config.det_channels, len(DETECTION_CLASSES),
                                           config.det_strides, config.head_activation)  # fmt: skip
        dense = {"seg_logits": len(SEGMENTATION_CLASSES)} if "segmentation" in self.tasks else {}
        dense |= {"log_depth": 1} if "depth" in self.tasks else {}
        if dense or fine:
            self.dense = DenseDecoder(channels[0], c, config.dense_channels, dense, config.head_activation)
            if "log_depth" in dense:
                nn.init.constant_(self.dense.preds["log_depth"].bias, 3.0)  # exp(3) ≈ 20 m, a typical road depth
        # normalisation lives in the network, so exported models take raw uint8 pixels
        mean, std = input_normalisation(config)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255, persistent=False)

    def normalise(self, images: Tensor) -> Tensor:
        """uint8 (or float 0..255) RGB [B, 3, H, W] → normalised float."""
        return (images.float() - self.mean) / self.std

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Raw outputs, the dense ones upsampled to the input resolution (what the losses compare):
        ``det_logits`` [B, A, C], ``det_distances`` [B, A, 4], ``det_points`` [A, 2], ``det_strides`` [A],
        ``seg_logits`` [B, K, H, W], ``log_depth`` [B, 1, H, W] (log metres, canonical camera)."""
        size = (x.shape[-2], x.shape[-1])
        out = self.heads(x)
        for name in ("seg_logits", "log_depth"):
            if name in out:
                out[name] = upsample(out[name], size)
        return out

    def heads(self, x: Tensor) -> dict[str, Tensor]:
        """As ``forward``, with the dense outputs at stride 4."""
        feats = self.backbone(x)
        pyramid = self.neck(feats[1:])
        by_stride = dict(zip(self.pyramid_strides, pyramid, strict=True))
        out: dict[str, Tensor] = {}
        if hasattr(self, "dense"):
            by_stride[4] = self.dense(feats[0], pyramid[0])
            out.update({name: pred(by_stride[4]) for name, pred in self.dense.preds.items()})
        if "detection" in self.tasks:
            logits, distances, points, strides = self.detection([by_stride[s] for s in self.config.det_strides])
            out.update(det_logits=logits, det_distances=distances, det_points=points, det_strides=strides)
        return out

    def predict(self, images: Tensor, focal_px: Tensor) -> dict[str, Tensor]:
        """Final answers before NMS from uint8 images [B, 3, H, W] and focal lengths [B] (pixels at
        this resolution): ``boxes`` [B, A, 4], ``scores`` [B, C, A], ``semantic`` uint8 [B, H, W],
        ``depth`` metres [B, H, W]. Missing tasks are absent."""
        out = self.heads(self.normalise(images))
        size = (images.shape[-2], images.shape[-1])
        result: dict[str, Tensor] = {}
        if "detection" in self.tasks:
            result["boxes"] = distances_to_boxes(out["det_points"], out["det_distances"].float())
            result["scores"] = out["det_logits"].float().sigmoid().transpose(1, 2)
        if "segmentation" in self.tasks:
            result["semantic"] = semantic_classes(out["seg_logits"], size)
        if "depth" in self.tasks:
            result["depth"] = metric_depth(out["log_depth"], focal_px, self.config.canonical_focal_px, size)
        return result


def semantic_classes(seg_logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Class map uint8 [B, H, W] at ``size`` from stride-4 logits: argmax at half resolution, then
    nearest to full, a quarter of the upsampling and argmax work of doing both at full resolution,
    for class edges placed to 2 pixels."""
    half = (size[0] // 2, size[1] // 2)
    classes = upsample(seg_logits, half).argmax(1, keepdim=True).to(torch.uint8)
    return F.interpolate(classes, size=size, mode="nearest")[:, 0]


def metric_depth(log_depth: Tensor, focal_px: Tensor, canonical_focal_px: float, size: tuple[int, int]) -> Tensor:
    """Metres [B, H, W] at ``size`` from stride-4 canonical log depth and each image's focal length:
    exp and the focal scaling on 1/16 of the pixels, then upsampled."""
    log_scale = (focal_px.float() / canonical_focal_px).log().view(-1, 1, 1, 1)
    return upsample((log_depth.float() + log_scale).exp(), size)[:, 0]
