"""The multi-task network: a timm backbone, a feature pyramid, and one head per task.

``forward`` takes normalised float images and returns raw head outputs (what the losses need);
``predict`` takes uint8 images and a focal length and returns final answers (what export wraps).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import FeaturePyramidNetwork

from perception.classes import DETECTION_CLASSES, SEGMENTATION_CLASSES
from perception.config import ModelConfig

# Normalisation lives in the network so exported models take raw uint8 pixels.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


# The heads' activation (``model.head_activation``). ReLU by default: ONNX Runtime fuses it into the
# convolution (FP32 and INT8), where SiLU runs as ops of its own; with SiLU the multi-task pass took
# 23.1 ms against 20.7 ms, and 0.402x against 0.384x the three single-task passes (640x384, 2 cores).
ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU}


def conv_bn_act(cin: int, cout: int, act: str, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), ACTIVATIONS[act](inplace=True)
    )


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
            box = F.softplus(self.box_preds[level](self.box_convs[level](x))) * stride
            logits.append(cls.flatten(2).transpose(1, 2))
            distances.append(box.flatten(2).transpose(1, 2))
            points.append(grid_points(x.shape[-2], x.shape[-1], stride, x.device))
            strides.append(torch.full((points[-1].shape[0],), float(stride), device=x.device))
        return torch.cat(logits, 1), torch.cat(distances, 1), torch.cat(points, 0), torch.cat(strides, 0)


def grid_points(height: int, width: int, stride: int, device: torch.device) -> Tensor:
    """Pixel centres of a feature map's cells in input pixels, row-major, [H*W, 2] (x, y)."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), 1)


def distances_to_boxes(points: Tensor, distances: Tensor) -> Tensor:
    """(x, y) points [A, 2] and (l, t, r, b) distances [..., A, 4] → x1, y1, x2, y2 [..., A, 4]."""
    return torch.cat((points - distances[..., :2], points + distances[..., 2:]), -1)


def separable(cin: int, cout: int, act: str) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1 (MobileNet style): a 3x3 receptive field at a tenth of the cost."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.BatchNorm2d(cin), ACTIVATIONS[act](inplace=True),
        conv_bn_act(cin, cout, act, k=1),
    )  # fmt: skip


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


def upsample(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class MultiTaskNet(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.head_activation not in ACTIVATIONS:
            raise ValueError(f"unknown head_activation {config.head_activation!r}; choose from {sorted(ACTIVATIONS)}")
        self.config = config
        self.tasks = tuple(config.tasks)
        self.backbone = timm.create_model(
            config.backbone, features_only=True, out_indices=(1, 2, 3, 4), pretrained=False, **config.backbone_kwargs
        )
        if config.pretrained:
            load_backbone_weights(self.backbone, Path(config.pretrained))
        channels = self.backbone.feature_info.channels()  # at strides 4, 8, 16, 32
        self.pyramid_strides = self.backbone.feature_info.reduction()[1:]  # 8, 16, 32: the first stays out
        self.neck = FeaturePyramidNetwork(channels[1:], config.neck_channels)
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
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1) * 255, persistent=False)

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
        pyramid = list(self.neck(OrderedDict((str(i), f) for i, f in enumerate(feats[1:]))).values())
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
            # argmax at half resolution, then nearest to full: a quarter of the upsampling and argmax
            # work of doing both at full resolution, for class edges placed to 2 pixels
            half = (size[0] // 2, size[1] // 2)
            classes = upsample(out["seg_logits"], half).argmax(1, keepdim=True).to(torch.uint8)
            result["semantic"] = F.interpolate(classes, size=size, mode="nearest")[:, 0]
        if "depth" in self.tasks:
            # metres at stride 4 (exp and the focal scaling on 1/16 of the pixels), then upsampled
            log_scale = (focal_px.float() / self.config.canonical_focal_px).log().view(-1, 1, 1, 1)
            result["depth"] = upsample((out["log_depth"].float() + log_scale).exp(), size)[:, 0]
        return result


def load_backbone_weights(backbone: nn.Module, path: Path) -> None:
    """Load a local backbone checkpoint (safetensors or a torch state dict); classifier keys are ignored."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
    missing, _ = backbone.load_state_dict(state, strict=False)
    if len(missing) == len(backbone.state_dict()):
        raise ValueError(f"{path}: no backbone weights matched")
