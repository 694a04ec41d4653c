"""The task heads on the pyramid: the anchor-free detection head, the stride-4 decoder that
segmentation and depth share, and the convolution blocks both are built from."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perception.model.box_coding import grid_points, raw_to_distances

# The heads' activation (``model.head_activation``). ReLU by default: ONNX Runtime fuses it into the
# convolution (FP32 and INT8), where SiLU runs as ops of its own; with SiLU the multi-task pass took
# 23.1 ms against 20.7 ms, and 0.402x against 0.384x the three single-task passes (640x384, 2 cores).
ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU}


def conv_bn_act(cin: int, cout: int, act: str, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), ACTIVATIONS[act](inplace=True)
    )


def separable(cin: int, cout: int, act: str) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1 (MobileNet style): a 3x3 receptive field at a tenth of the cost."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.BatchNorm2d(cin), ACTIVATIONS[act](inplace=True),
        conv_bn_act(cin, cout, act, k=1),
    )  # fmt: skip


def upsample(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class DetectionHead(nn.Module):
    """Anchor-free, one point per feature-map cell (TOOD/YOLOX family): per level a decoupled
    classification branch and box branch predicting left/top/right/bottom distances.
    ``channels`` are the input channels of each level."""

    def __init__(self, channels: list[int], width: int, num_classes: int, strides: list[int], act: str):
        super().__init__()
        self.strides = strides
        self.stems = nn.ModuleList(separable(cin, width, act) for cin in channels)
        self.cls_convs = nn.ModuleList(separable(width, width, act) for _ in strides)
        self.box_convs = nn.ModuleList(separable(width, width, act) for _ in strides)
        self.cls_preds = nn.ModuleList(nn.Conv2d(width, num_classes, 1) for _ in strides)
        self.box_preds = nn.ModuleList(nn.Conv2d(width, 4, 1) for _ in strides)
        for pred in self.cls_preds:  # prior probability 0.01, as in RetinaNet
            nn.init.constant_(pred.bias, -4.6)

    def forward(self, features: list[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Returns class logits [B, A, C], box distances [B, A, 4] in pixels, and each point's
        position [A, 2] and stride [A]."""
        logits, distances, points, strides = [], [], [], []
        for level, (x, stride) in enumerate(zip(features, self.strides, strict=True)):
            x = self.stems[level](x)
            cls = self.cls_preds[level](self.cls_convs[level](x))
            box = raw_to_distances(self.box_preds[level](self.box_convs[level](x)), stride)
            logits.append(cls.flatten(2).transpose(1, 2))
            distances.append(box.flatten(2).transpose(1, 2))
            points.append(grid_points(x.shape[-2], x.shape[-1], stride, x.device))
            strides.append(torch.full((points[-1].shape[0],), float(stride), device=x.device))
        return torch.cat(logits, 1), torch.cat(distances, 1), torch.cat(points, 0), torch.cat(strides, 0)


class DenseDecoder(nn.Module):
    """The dense tasks' decoder at stride 4, in the DeepLabv3+ manner: the backbone's stride-4
    features (edges, thin lane markings) plus the stride-8 pyramid level (context), upsampled. One
    body is shared by segmentation and depth, with a 1x1 prediction per task. Reading the backbone
    directly spares the pyramid a 3x3 convolution at stride 4 (a tenth of the network's time on CPU),
    and sharing the body makes the second dense task cost a 1x1 convolution, not a second decoder:
    what a multi-task pass adds per task sets how much it saves over separate networks. With ``4`` in
    ``model.det_strides`` its features are also the detection head's finest level (the smallest boxes)."""

    def __init__(self, low_channels: int, channels: int, width: int, outputs: dict[str, int], act: str):
        super().__init__()
        self.low = conv_bn_act(low_channels, width, act, k=1)
        self.high = conv_bn_act(channels, width, act, k=1)
        self.body = nn.Sequential(separable(width, width, act), separable(width, width, act))
        self.preds = nn.ModuleDict({name: nn.Conv2d(width, n, 1) for name, n in outputs.items()})

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        """Features at the stride of ``low`` (4) from it and ``high`` (stride 8); ``preds`` maps them
        to each task's output."""
        return self.body(self.low(low) + upsample(self.high(high), (low.shape[-2], low.shape[-1])))
