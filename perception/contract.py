"""The contract between the exported model and whoever runs it (the service, the evaluator).

One home for: the ONNX input/output names, the metadata keys, the model folder layout (which
version is the newest), and the letterbox geometry that maps an image of any size onto the model's
input and the model's outputs back onto the image. Torch-free: the service imports this module.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# ONNX graph inputs and outputs.
INPUT_IMAGES = "images"  # uint8 [B, 3, H, W] RGB at the model's input size
INPUT_FOCAL = "focal_px"  # float32 [B]: focal length in pixels at the model's input size
OUTPUT_DETECTIONS = "detections"  # float32 [B, K, 6]: x1, y1, x2, y2, score, class (model pixels)
OUTPUT_NUM_DETECTIONS = "num_detections"  # int64 [B]: valid rows of detections per image
OUTPUT_SEMANTIC = "semantic"  # uint8 [B, H, W]: segmentation class index
OUTPUT_DEPTH = "depth"  # float32 [B, H, W]: metres
OUTPUT_NAMES = (OUTPUT_DETECTIONS, OUTPUT_NUM_DETECTIONS, OUTPUT_SEMANTIC, OUTPUT_DEPTH)

LETTERBOX_FILL = 114  # grey for the padding around a letterboxed image

# A model version folder: models/<name>/<version>/model.onnx with its SHA-256 beside it.
MODEL_FILE = "model.onnx"
CHECKSUM_FILE = "model.onnx.sha256"


class ModelError(RuntimeError):
    """The model file cannot be served (missing, corrupt, wrong checksum, wrong shapes or metadata)."""


def resolve_model_path(path: Path) -> Path:
    """A ``model.onnx`` as given, or the newest integer version inside a ``models/<name>/`` folder."""
    if path.is_file():
        return path
    if (path / MODEL_FILE).is_file():
        return path / MODEL_FILE
    versions = sorted((int(p.name), p) for p in path.glob("*") if p.name.isdigit() and (p / MODEL_FILE).is_file())
    if not versions:
        raise ModelError(f"no {MODEL_FILE} under {path}")
    return versions[-1][1] / MODEL_FILE


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksum(model_path: Path) -> None:
    """``model.onnx.sha256`` beside the model, in ``sha256sum`` format."""
    model_path = Path(model_path)
    model_path.with_name(model_path.name + ".sha256").write_text(f"{sha256(model_path)}  {model_path.name}\n")


def recorded_checksum(model_path: Path) -> str | None:
    """The checksum recorded beside the model ("" if the file is empty), or None without one."""
    sidecar = Path(model_path).with_name(Path(model_path).name + ".sha256")
    return (sidecar.read_text().split() or [""])[0] if sidecar.exists() else None


@dataclass(frozen=True)
class ModelMetadata:
    """What the exported file says about itself (ONNX ``metadata_props``), typed."""

    name: str
    version: str
    input_height: int
    input_width: int
    detection_classes: list[str]
    segmentation_classes: list[str]
    segmentation_palette: list[list[int]]
    depth_unit: str
    canonical_focal_px: float
    default_focal_px: float  # focal length assumed at model resolution when a frame has none
    recipe_hash: str = ""
    data_hash: str = ""
    metrics: dict | None = None

    def to_props(self) -> dict[str, str]:
        """String key/value pairs for ONNX ``metadata_props`` (non-strings as JSON)."""
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelMetadata:
        """Parse ``metadata_props``; raises ``ValueError`` naming a missing or malformed key."""
        values = {}
        for key, field_type in cls.__annotations__.items():
            if key not in props:
                if key in ("recipe_hash", "data_hash", "metrics"):
                    continue
                raise ValueError(f"model metadata lacks {key!r}")
            raw = props[key]
            try:
                values[key] = raw if field_type == "str" else json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ValueError(f"model metadata {key!r} is not valid JSON: {exc}") from exc
        return cls(**values)


@dataclass(frozen=True)
class Letterbox:
    """How an image of ``src`` size sits inside the model input: scaled by ``scale``, then
    offset by (``pad_x``, ``pad_y``); ``new_w`` x ``new_h`` is the scaled image's size."""

    src_w: int
    src_h: int
    dst_w: int
    dst_h: int
    scale: float
    new_w: int
    new_h: int
    pad_x: int
    pad_y: int

    @classmethod
    def fit(cls, src_w: int, src_h: int, dst_w: int, dst_h: int) -> Letterbox:
        scale = min(dst_w / src_w, dst_h / src_h)
        new_w = max(1, min(dst_w, round(src_w * scale)))
        new_h = max(1, min(dst_h, round(src_h * scale)))
        return cls(src_w, src_h, dst_w, dst_h, scale, new_w, new_h, (dst_w - new_w) // 2, (dst_h - new_h) // 2)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The image ([H, W, C] uint8) resized and padded to the model input size."""
        interp = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(image, (self.new_w, self.new_h), interpolation=interp)
        out = np.full((self.dst_h, self.dst_w, *image.shape[2:]), LETTERBOX_FILL, dtype=image.dtype)
        out[self.pad_y : self.pad_y + self.new_h, self.pad_x : self.pad_x + self.new_w] = resized
        return out

    @property
    def output_scale(self) -> float:
        """Dense outputs' default size relative to the source: the model's own resolution over the
        image, never larger than the image (upsampling adds bytes, not information)."""
        return min(self.scale, 1.0)

    def boxes_to_source(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes [N, 4] x1, y1, x2, y2 in model pixels → source-image pixels, clipped."""
        out = np.empty_like(boxes, dtype=np.float32)
        out[:, 0::2] = (boxes[:, 0::2] - self.pad_x) / self.scale
        out[:, 1::2] = (boxes[:, 1::2] - self.pad_y) / self.scale
        out[:, 0::2] = out[:, 0::2].clip(0, self.src_w)
        out[:, 1::2] = out[:, 1::2].clip(0, self.src_h)
        return out

    def boxes_to_model(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes [N, 4] in source-image pixels → model pixels."""
        out = np.empty_like(boxes, dtype=np.float32)
        out[:, 0::2] = boxes[:, 0::2] * self.scale + self.pad_x
        out[:, 1::2] = boxes[:, 1::2] * self.scale + self.pad_y
        return out

    def map_to_source(self, plane: np.ndarray, nearest: bool, out_scale: float = 1.0) -> np.ndarray:
        """A dense [H, W] model output cropped to the image area and resized to the source size
        (times ``out_scale``). ``nearest`` for class maps, bilinear for continuous values."""
        crop = plane[self.pad_y : self.pad_y + self.new_h, self.pad_x : self.pad_x + self.new_w]
        size = (max(1, round(self.src_w * out_scale)), max(1, round(self.src_h * out_scale)))
        if (crop.shape[1], crop.shape[0]) == size:
            return np.ascontiguousarray(crop)
        return cv2.resize(crop, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)
