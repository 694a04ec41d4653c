"""The answer's shape: the one home of the service's output schema (the OpenAPI page shows it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Detection(BaseModel):
    class_id: int
    class_name: str
    score: float = Field(ge=0, le=1)
    box: list[float] = Field(description="x1, y1, x2, y2 in original-image pixels", min_length=4, max_length=4)


class SegmentationClass(BaseModel):
    id: int
    name: str
    color: list[int] = Field(description="RGB", min_length=3, max_length=3)


class Segmentation(BaseModel):
    encoding: Literal["png", "rle"] = Field(description="png: 8-bit PNG of class ids; rle: COCO-style RLE")
    width: int
    height: int
    data: str | None = Field(None, description="base64 PNG (encoding png)")
    counts: list[int] | None = Field(
        None, description="run lengths over the column-major flattened map, as in COCO RLE (encoding rle)"
    )
    values: list[int] | None = Field(None, description="the class id of each run (encoding rle)")
    classes: list[SegmentationClass] = Field(description="legend: pixel value → class")


class Depth(BaseModel):
    encoding: Literal["png16", "float16"] = Field(
        description="png16: 16-bit PNG, metres = value × scale; float16: raw little-endian float16 metres, row-major"
    )
    width: int
    height: int
    scale: float | None = Field(None, description="metres per unit (png16)")
    data: str = Field(description="base64")
    unit: Literal["m"] = "m"


class Timings(BaseModel):
    decode_ms: float
    queue_ms: float
    inference_ms: float
    postprocess_ms: float
    encode_ms: float
    total_ms: float


class FrameResult(BaseModel):
    index: int = Field(description="position of the frame in the request")
    camera_id: str | None = None
    frame_id: str | None = None
    timestamp: float | None = Field(None, description="capture time the client sent, echoed")
    width: int = Field(description="original image width")
    height: int = Field(description="original image height")
    detections: list[Detection] | None = None
    segmentation: Segmentation | None = None
    depth: Depth | None = None
    batch_size: int = Field(description="frames in the inference run that served this frame")
    timings: Timings


class ModelRef(BaseModel):
    name: str
    version: str


class PerceiveResponse(BaseModel):
    request_id: str
    model: ModelRef
    frames: list[FrameResult]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    request_id: str | None = None


class ModelInfo(BaseModel):
    name: str
    version: str
    checksum: str = Field(description="SHA-256 of the file served")
    provider: str = Field(description="ONNX Runtime execution provider in use")
    path: str = Field(
        description="the file served, relative to the model folder (e.g. 11/int8/model.onnx, as POST /v1/models/load "
        "takes it)"
    )
    variant: str = Field(description="its precision: fp32, fp16 or int8")
    variant_reason: str = Field(
        description="why this file: e.g. 'int8: CPU provider, deltas within tolerance (…)' or "
        "'fp32: int8 mAP50 drop 0.03 > 0.01'"
    )
    input_height: int
    input_width: int
    detection_classes: list[str]
    segmentation_classes: list[str]
    metrics: dict = Field(description="headline metrics recorded in the model's metadata")


class LoadRequest(BaseModel):
    path: str | None = Field(
        None,
        description="a version folder (e.g. '3') or model.onnx path inside the model folder; "
        "omitted: the newest version",
        max_length=1024,
    )


class Readiness(BaseModel):
    status: Literal["ready", "loading", "draining"]
    model: ModelRef | None = Field(None, description="the model being served (ready)")
