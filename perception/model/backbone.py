"""The backbone: a timm network created ``features_only`` at strides 4, 8, 16 and 32, and the one
place its starting weights are loaded (a local file named by ``model.pretrained``; nothing is
downloaded)."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from safetensors.torch import load_file
from torch import nn

from perception.config import ModelConfig

OUT_INDICES = (1, 2, 3, 4)  # timm feature levels at strides 4, 8, 16, 32


def create_backbone(config: ModelConfig) -> nn.Module:
    """The timm backbone of ``config``, with its starting weights loaded when ``config.pretrained``
    names them: every source of pretrained weights plugs in here."""
    backbone = timm.create_model(
        config.backbone, features_only=True, out_indices=OUT_INDICES, pretrained=False, **config.backbone_kwargs
    )
    if config.pretrained:
        load_backbone_weights(backbone, Path(config.pretrained))
    return backbone


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
