"""Run configuration: plain dataclasses read from a TOML file, overridable with ``key=value``, and
the command-line arguments of a training run (``perception train`` and ``torchrun -m perception.train``
declare them here, once)."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import json
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

TASKS = ("detection", "segmentation", "depth")


@dataclass
class ModelConfig:
    backbone: str = "resnet18d"  # any timm model that supports features_only with strides 4..32
    backbone_kwargs: dict = field(default_factory=lambda: {"channels": [32, 64, 128, 256], "stem_width": 16})
    pretrained: str = ""  # local weights file for the backbone; nothing is downloaded
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    neck_channels: int = 64
    det_channels: int = 48
    det_strides: list[int] = field(default_factory=lambda: [8, 16, 32])
    dense_channels: int = 48  # the segmentation and depth decoder (shared)
    head_activation: str = "relu"  # relu | silu (the first models used silu; their configs say so)
    input_height: int = 384
    input_width: int = 640
    canonical_focal_px: float = 500.0  # depth is predicted as if seen by a camera with this focal length
    max_detections: int = 100  # per image, after NMS
    score_threshold: float = 0.05  # exported detections below this score are dropped
    nms_iou: float = 0.6
    pre_nms_top_k: int = 1000


@dataclass
class DataConfig:
    dataset: str = "synthetic"  # synthetic, synthdir, cityscapes, kitti, bdd100k
    root: str = ""
    train_split: str = "train"
    train_length: int = 100_000  # synthetic frames per epoch
    seed: int = 0
    workers: int = 2
    scale_jitter: list[float] = field(default_factory=lambda: [0.75, 1.25])
    flip: bool = True
    photometric: bool = True


@dataclass
class TrainConfig:
    steps: int = 20_000
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 500
    amp: bool = True  # bfloat16 autocast (AMX/AVX-512 CPUs and CUDA): no grad scaler needed
    ema_decay: float = 0.9998
    grad_clip: float = 10.0
    task_weights: dict = field(default_factory=lambda: {"detection": 1.0, "segmentation": 1.0, "depth": 1.0})
    weighting: str = "fixed"  # fixed, uncertainty, dwa, gradnorm, pcgrad, famo (perception/weighting.py)
    weighting_kwargs: dict = field(default_factory=dict)  # the method's own options, e.g. {"window": 200}
    seed: int = 0
    log_every: int = 20
    checkpoint_every_s: float = 300.0


# Keys that once existed but nothing read (the trainer never validated periodically; held-out data is
# scored by `perception eval`). Saved models' configs still carry them and load; a config file that
# sets one gets a warning.
RETIRED_KEYS = {"data": {"val_split", "val_length"}, "train": {"eval_every"}}


@dataclass
class Config:
    name: str = "drivenet"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """A short hash of the whole recipe, written into exported models."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, raw: dict) -> Config:
        sections = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
        unknown = set(raw) - {*sections, "name"}
        if unknown:
            raise ValueError(f"unknown config sections: {sorted(unknown)}")
        kwargs = {}
        for key, section_cls in sections.items():
            values = {k: v for k, v in raw.get(key, {}).items() if k not in RETIRED_KEYS.get(key, set())}
            names = {f.name for f in dataclasses.fields(section_cls)}
            if bad := set(values) - names:
                raise ValueError(f"unknown keys in [{key}]: {sorted(bad)}")
            kwargs[key] = section_cls(**values)
        return cls(name=raw.get("name", "drivenet"), **kwargs)


def load_config(path: Path | None, overrides: list[str] = ()) -> Config:
    """Read a TOML config and apply ``section.key=value`` overrides (values parsed as Python literals)."""
    raw = tomllib.loads(Path(path).read_text()) if path else {}
    for item in overrides:
        key, _, value = item.partition("=")
        *sections, leaf = key.strip().split(".")
        node = raw
        for section in sections:
            node = node.setdefault(section, {})
        try:
            node[leaf] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            node[leaf] = value
    for section, keys in RETIRED_KEYS.items():
        if retired := sorted(set(raw.get(section, {})) & keys):
            warnings.warn(f"ignoring retired keys in [{section}]: {retired} (nothing reads them; held-out "
                          "data is scored by `perception eval --split`)", stacklevel=2)  # fmt: skip
    config = Config.from_dict(raw)
    for task in config.model.tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose from {TASKS}")
    return config


TRAIN_HELP = "train a model from a config file"


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """A training run's arguments: the config file, the run folder, resuming, initial weights, overrides."""
    parser.add_argument("config", type=Path)
    parser.add_argument("--out", type=Path, help="run folder (default: runs/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    parser.add_argument("--init", type=Path, help="start from these weights (.safetensors or checkpoint)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
