"""The weights file: ``model.safetensors`` with the run's config in its metadata (what training
writes, export and fine-tuning read), and loading a trained network from it or from a training
checkpoint. Checkpoints load with ``weights_only=True``: a pickle that runs code is refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from perception.config import Config
from perception.model.net import MultiTaskNet

WEIGHTS = "model.safetensors"


def save_weights(model: nn.Module, config: Config, out: Path) -> None:
    """The network's weights (training saves its EMA weights) as safetensors, the config in the file's
    metadata and beside it: what export and fine-tuning read."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, out / WEIGHTS, metadata={"config": json.dumps(config.to_dict())})
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))


def load_weights(model: nn.Module, path: Path) -> list[str]:
    """Load weights for fine-tuning, skipping tensors whose shape differs (e.g. a new class list).
    Returns the names that were not loaded."""
    if path.suffix == ".safetensors":
        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("ema") or state["model"]
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))


def load_trained(path: Path) -> tuple[MultiTaskNet, Config]:
    """A trained network in eval mode from ``model.safetensors`` (config in its metadata) or a
    training checkpoint (its EMA weights)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        with safe_open(path, "pt") as f:
            config = Config.from_dict(json.loads(f.metadata()["config"]))
        state = load_file(path)
    else:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        config = Config.from_dict(ckpt["config"])
        state = ckpt["ema"]
    # the trained tensors replace every starting weight: don't read (or need) the pretrained package
    net = MultiTaskNet(dataclasses.replace(config.model, pretrained=""))
    net.load_state_dict(state)
    return net.eval(), config
