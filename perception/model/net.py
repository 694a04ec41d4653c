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


def conv_bn_act(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.SiLU(inplace=True)
    )


class DetectionHead(nn.Module):
    """Anchor-free, one point per feature-map cell (TOOD/YOLOX family): per level a decoupled
    classification branch and box branch predicting left/top/right/bottom distances."""

    def __init__(self, channels: int, width: int, num_classes: int, strides: list[int]):
        super().__init__()
        self.strides = strides
        self.stems = nn.ModuleList(conv_bn_act(channels, width) for _ in strides)
        self.cls_convs = nn.ModuleList(conv_bn_act(width, width) for _ in strides)
        self.box_convs = nn.ModuleList(conv_bn_act(width, width) for _ in strides)
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


def separable(cin: int, cout: int) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1 (MobileNet style): a 3x3 receptive field at a tenth of the cost."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.SiLU(inplace=True),
        conv_bn_act(cin, cout, k=1),
    )  # fmt: skip


class DenseHead(nn.Module):
    """A light decoder on the stride-4 pyramid level, upsampled to the input resolution. Separable
    convolutions keep the per-task cost small next to the shared trunk: the cost of a head is what a
    multi-task pass adds per task, so it sets how much one pass saves over separate networks."""

    def __init__(self, channels: int, width: int, out_channels: int):
        super().__init__()
        self.body = nn.Sequential(separable(channels, width), separable(width, width))
        self.pred = nn.Conv2d(width, out_channels, 1)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        return F.interpolate(self.pred(self.body(x)), size=size, mode="bilinear", align_corners=False)


class MultiTaskNet(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.tasks = tuple(config.tasks)
        self.backbone = timm.create_model(
            config.backbone, features_only=True, out_indices=(1, 2, 3, 4), pretrained=False, **config.backbone_kwargs
        )
        if config.pretrained:
            load_backbone_weights(self.backbone, Path(config.pretrained))
        self.feature_strides = self.backbone.feature_info.reduction()  # [4, 8, 16, 32]
        self.neck = FeaturePyramidNetwork(self.backbone.feature_info.channels(), config.neck_channels)
        c = config.neck_channels
        if "detection" in self.tasks:
            self.detection = DetectionHead(c, config.det_channels, len(DETECTION_CLASSES), config.det_strides)
        if "segmentation" in self.tasks:
            self.segmentation = DenseHead(c, config.dense_channels, len(SEGMENTATION_CLASSES))
        if "depth" in self.tasks:
            self.depth = DenseHead(c, config.dense_channels, 1)
            nn.init.constant_(self.depth.pred.bias, 3.0)  # exp(3) ≈ 20 m, a typical road depth
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1) * 255, persistent=False)

    def normalise(self, images: Tensor) -> Tensor:
        """uint8 (or float 0..255) RGB [B, 3, H, W] → normalised float."""
        return (images.float() - self.mean) / self.std

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Raw outputs: ``det_logits`` [B, A, C], ``det_distances`` [B, A, 4], ``det_points`` [A, 2],
        ``det_strides`` [A], ``seg_logits`` [B, K, H, W], ``log_depth`` [B, 1, H, W] (log metres,
        canonical camera)."""
        size = (x.shape[-2], x.shape[-1])
        feats = self.backbone(x)
        pyramid = list(self.neck(OrderedDict((str(i), f) for i, f in enumerate(feats))).values())
        by_stride = dict(zip(self.feature_strides, pyramid, strict=True))
        out: dict[str, Tensor] = {}
        if "detection" in self.tasks:
            logits, distances, points, strides = self.detection([by_stride[s] for s in self.config.det_strides])
            out.update(det_logits=logits, det_distances=distances, det_points=points, det_strides=strides)
        if "segmentation" in self.tasks:
            out["seg_logits"] = self.segmentation(pyramid[0], size)
        if "depth" in self.tasks:
            out["log_depth"] = self.depth(pyramid[0], size)
        return out

    def predict(self, images: Tensor, focal_px: Tensor) -> dict[str, Tensor]:
        """Final answers before NMS from uint8 images [B, 3, H, W] and focal lengths [B] (pixels at
        this resolution): ``boxes`` [B, A, 4], ``scores`` [B, C, A], ``semantic`` uint8 [B, H, W],
        ``depth`` metres [B, H, W]. Missing tasks are absent."""
        out = self(self.normalise(images))
        result: dict[str, Tensor] = {}
        if "detection" in self.tasks:
            result["boxes"] = distances_to_boxes(out["det_points"], out["det_distances"].float())
            result["scores"] = out["det_logits"].float().sigmoid().transpose(1, 2)
        if "segmentation" in self.tasks:
            result["semantic"] = out["seg_logits"].argmax(1).to(torch.uint8)
        if "depth" in self.tasks:
            scale = focal_px.float().view(-1, 1, 1) / self.config.canonical_focal_px
            result["depth"] = out["log_depth"].float()[:, 0].exp() * scale
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
