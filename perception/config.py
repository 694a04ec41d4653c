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


# The slim resnet18d every drivenet so far was built on (a quarter of resnet18's channel widths).
BACKBONE_DEFAULTS: dict[str, dict] = {"resnet18d": {"channels": [32, 64, 128, 256], "stem_width": 16}}


@dataclass
class ModelConfig:
    # any timm model that supports features_only with strides 4..32, or a name in
    # perception.model.pretrained.SOURCES (efficientnet_lite0/1/2: timm's tf_ variant of the architecture)
    backbone: str = "resnet18d"
    backbone_kwargs: dict | None = None  # None: BACKBONE_DEFAULTS for this backbone, else none
    pretrained: str = ""  # "imagenet" (weights from an installed package) or a local weights file; never a download
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

    def backbone_arguments(self) -> dict:
        """Keyword arguments for the backbone's timm constructor."""
        return BACKBONE_DEFAULTS.get(self.backbone, {}) if self.backbone_kwargs is None else self.backbone_kwargs


@dataclass
class SourceConfig:
    """One source of a training mixture: a registered data set, its split, its folder ("": the
    registry's default root, e.g. the real frames beside the repository) and its sampling weight."""

    dataset: str
    weight: float = 1.0
    split: str = "train"
    root: str = ""

    def __post_init__(self) -> None:
        if not self.weight > 0:
            raise ValueError(f"data source {self.dataset!r}: weight must be > 0, got {self.weight}")


def _check_range(name: str, values: list[float], low: float, high: float) -> None:
    if len(values) != 2 or not low <= values[0] <= values[1] <= high:
        raise ValueError(f"[data.augment] {name}: need [min, max] with {low} <= min <= max <= {high}, got {values}")


@dataclass
class AugmentConfig:
    """Image-only augmentation of training samples, every source alike, that narrows the gap between
    rendered and real pixels (``perception.data.transforms``). Each kind has a probability ``*_p``
    (0 switches it off) and a range drawn from per sample; ``data.photometric = false`` switches off
    all of them. The defaults are the colour jitter every model so far trained with; the rest is off."""

    colour_p: float = 1.0  # brightness, contrast, saturation: factors in [1 - v, 1 + v]; hue: ±v of the circle
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25
    hue: float = 0.02
    colour_noise: float = 3.0  # σ (grey levels) of the Gaussian noise the colour jitter adds
    gamma_p: float = 0.0  # tone curve: out = in ** gamma
    gamma: list[float] = field(default_factory=lambda: [0.7, 1.5])
    blur_p: float = 0.0  # defocus (Gaussian) or, with probability motion_blur, motion along a random angle
    blur_sigma: list[float] = field(default_factory=lambda: [0.4, 1.5])  # Gaussian σ, pixels
    motion_blur: float = 0.5
    motion_length: list[int] = field(default_factory=lambda: [3, 9])  # motion kernel length, pixels
    sensor_noise_p: float = 0.0  # photon (shot) noise that grows with the signal, plus read noise
    read_noise: list[float] = field(default_factory=lambda: [1.0, 6.0])  # σ in grey levels
    shot_noise: list[float] = field(default_factory=lambda: [0.0, 0.1])  # variance per grey level of signal
    jpeg_p: float = 0.0  # OpenCV JPEG encode + decode at a random quality
    jpeg_quality: list[int] = field(default_factory=lambda: [30, 95])

    def __post_init__(self) -> None:
        for name in ("colour_p", "gamma_p", "blur_p", "motion_blur", "sensor_noise_p", "jpeg_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"[data.augment] {name} is a probability in [0, 1], got {getattr(self, name)}")
        _check_range("gamma", self.gamma, 1e-3, 10.0)
        _check_range("blur_sigma", self.blur_sigma, 0.0, 20.0)
        _check_range("motion_length", self.motion_length, 1, 99)
        _check_range("read_noise", self.read_noise, 0.0, 255.0)
        _check_range("shot_noise", self.shot_noise, 0.0, 10.0)
        _check_range("jpeg_quality", self.jpeg_quality, 1, 100)


@dataclass
class DataConfig:
    dataset: str = "synthetic"  # synthetic, synthdir, cityscapes, kitti, bdd100k
    root: str = ""
    train_split: str = "train"
    train_length: int = 100_000  # synthetic frames per epoch; a mixture's samples per epoch
    seed: int = 0
    workers: int = 2
    scale_jitter: list[float] = field(default_factory=lambda: [0.75, 1.25])
    flip: bool = True
    photometric: bool = True  # false: no augment.* at all
    # a mixture, e.g. [{dataset = "synthetic", weight = 0.7}, {dataset = "camvid", weight = 0.3}];
    # empty: `dataset` (with root and train_split) alone, as configs before mixtures said
    sources: list[dict] = field(default_factory=list)
    augment: dict = field(default_factory=dict)  # AugmentConfig's keys; those left out take its defaults

    def __post_init__(self) -> None:
        # kept as plain tables like the rest of the config (it is written as JSON), checked here
        self.sources = [dataclasses.asdict(_build(SourceConfig, s, "data.sources")) for s in self.sources]
        self.augment = dataclasses.asdict(_build(AugmentConfig, self.augment, "data.augment"))

    def training_sources(self) -> list[SourceConfig]:
        """The sources training draws from: ``sources``, or ``dataset`` alone with weight 1."""
        if self.sources:
            return [_build(SourceConfig, s, "data.sources") for s in self.sources]
        return [SourceConfig(self.dataset, 1.0, self.train_split, self.root)]

    def augmentation(self) -> AugmentConfig:
        return _build(AugmentConfig, self.augment, "data.augment")


def _build(cls: type, value: object, where: str):
    """``cls`` from a TOML table (a dict), naming unknown keys; an instance passes through."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"[{where}]: expected a table, got {value!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    if bad := set(value) - names:
        raise ValueError(f"unknown keys in [{where}]: {sorted(bad)}")
    try:
        return cls(**value)
    except TypeError as error:  # a required key missing
        raise ValueError(f"[{where}]: {error}") from None


@dataclass
class TrainConfig:
    steps: int = 20_000
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 500
    amp: bool = True  # bfloat16 autocast where the hardware has it (AMX/AVX512-BF16 CPUs, CUDA); elsewhere float32
    ema_decay: float = 0.9998
    grad_clip: float = 10.0
    task_weights: dict = field(default_factory=lambda: {"detection": 1.0, "segmentation": 1.0, "depth": 1.0})
    weighting: str = "fixed"  # fixed, uncertainty, dwa, gradnorm, pcgrad, famo (perception/weighting.py)
    weighting_kwargs: dict = field(default_factory=dict)  # the method's own options, e.g. {"window": 200}
    # share of labelled pixels per batch the segmentation loss averages over, hardest first (1.0: all;
    # perception/losses.py)
    seg_hard_pixels: float = 1.0
    seed: int = 0
    log_every: int = 20
    checkpoint_every_s: float = 300.0
    # held-out evaluation of the EMA weights every this many steps (0: never), on each of eval_sets
    eval_every: int = 500
    # e.g. [{dataset = "synthetic", split = "val", count = 32}, {dataset = "camvid", count = 32}]
    # (perception.evaluate.periodic; split and root default to the data set's); empty: no evaluation
    eval_sets: list[dict] = field(default_factory=list)


# Keys that once existed but nothing read (held-out data is scored by `perception eval` and the
# trainer's eval_sets). Saved models' configs still carry them and load; a config file that sets one
# gets a warning. (train.eval_every was one until the trainer learnt to evaluate periodically.)
RETIRED_KEYS = {"data": {"val_split", "val_length"}}


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


def parse_override(value: str) -> object:
    """One ``--set`` value: TOML first, as the config files are written (``false`` must not become
    the truthy text "false"), then a Python literal, then the text itself (``resnet18d``)."""
    try:
        return tomllib.loads(f"value = {value}")["value"]
    except tomllib.TOMLDecodeError:
        pass
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def load_config(path: Path | None, overrides: list[str] = ()) -> Config:
    """Read a TOML config and apply ``section.key=value`` overrides: a value is read as TOML (``false``,
    ``2e-3``, ``[8, 16]``, ``{ a = 1 }``), else as a Python literal (``False``), else kept as text."""
    raw = tomllib.loads(Path(path).read_text()) if path else {}
    for item in overrides:
        key, _, value = item.partition("=")
        *sections, leaf = key.strip().split(".")
        node = raw
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = parse_override(value)
    for section, keys in RETIRED_KEYS.items():
        if retired := sorted(set(raw.get(section, {})) & keys):
            warnings.warn(f"ignoring retired keys in [{section}]: {retired} (nothing reads them; held-out "
                          "data is scored by `perception eval --split`)", stacklevel=2)  # fmt: skip
    config = Config.from_dict(raw)
    for task in config.model.tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose from {TASKS}")
    if not 0.0 < config.train.seg_hard_pixels <= 1.0:
        raise ValueError(f"[train] seg_hard_pixels is a share of pixels in (0, 1], got {config.train.seg_hard_pixels}")
    return config


TRAIN_HELP = "train a model from a config file"


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """A training run's arguments: the config file, the run folder, resuming, initial weights, overrides."""
    parser.add_argument("config", type=Path)
    parser.add_argument("--out", type=Path, help="run folder (default: runs/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    parser.add_argument("--init", type=Path, help="start from these weights (.safetensors or checkpoint)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
