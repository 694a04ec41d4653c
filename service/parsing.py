"""Reading requests: content types, bounded bodies, multipart frames and their metadata, the deadline
header and /v1/perceive's query options. Anything wrong is a ProblemError with its 4xx status."""

from __future__ import annotations

import json
import math

from fastapi import Query, Request
from pydantic import ValidationError

from service.pipeline import OUTPUTS, FrameInput, Options
from service.problems import ProblemError
from service.schemas import LoadRequest
from service.settings import Settings

IMAGE_TYPES = ("image/jpeg", "image/png")
MAX_ADMIN_BODY = 64 * 1024  # a roll-out request is a short JSON object
FRAME_FIELDS = {"camera_id": str, "frame_id": str, "timestamp": (int, float), "focal_px": (int, float)}


def media_type(request: Request) -> str:
    """The request's Content-Type without its parameters, lower case ('' when there is none)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def perceive_options(
    outputs: str = Query(
        ",".join(OUTPUTS),
        description="comma list of detections, segmentation, depth",
        examples=["detections,segmentation,depth", "detections"],
    ),
    segmentation_encoding: str = Query(
        Options.segmentation_encoding,
        pattern="^(png|rle)$",
        description="png: 8-bit PNG of class ids; rle: run lengths + class ids",
        examples=["png", "rle"],
    ),
    depth_encoding: str = Query(
        Options.depth_encoding,
        pattern="^(float16|png16)$",
        description="float16: raw little-endian float16 metres, row-major (6x cheaper to encode than png16); "
        "png16: 16-bit PNG × scale m (a third smaller)",
        examples=["float16", "png16"],
    ),
    score_threshold: float = Query(
        Options.score_threshold, ge=0, le=1, description="drop detections below this score", examples=[0.25, 0.5]
    ),
    output_scale: float | None = Query(
        None,
        gt=0,
        le=1,
        description="dense outputs' size relative to the image (1: the image's own size); by default the "
        "model's resolution over the image (640x360 for a 1280x720 frame into a 640x384 model), never "
        "larger than the image: upsampling adds bytes, not information",
        examples=[1.0, 0.5],
    ),
) -> Options:
    """The query options of /v1/perceive (a dependency; its parameters are the route's)."""
    wanted = frozenset(o.strip() for o in outputs.split(",") if o.strip())
    if not wanted or wanted - set(OUTPUTS):
        raise ProblemError(422, "Invalid request", f"outputs must be a comma list of {', '.join(OUTPUTS)}")
    return Options(wanted, segmentation_encoding, depth_encoding, score_threshold, output_scale)


def parse_deadline(request: Request, received: float) -> float | None:
    """The X-Deadline-Ms budget as a time.monotonic() deadline, counted from ``received``."""
    raw = request.headers.get("x-deadline-ms")
    if raw is None:
        return None
    try:
        budget_ms = float(raw)
    except ValueError:
        raise ProblemError(422, "Invalid deadline", "X-Deadline-Ms must be a number of milliseconds") from None
    if not 0 < budget_ms <= 3_600_000:
        raise ProblemError(422, "Invalid deadline", "X-Deadline-Ms must lie in (0, 3600000]")
    return received + budget_ms / 1000


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it (or its declared length) exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ProblemError(413, "Payload too large", f"the body has {declared} bytes, more than {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProblemError(413, "Payload too large", f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_load_request(request: Request) -> LoadRequest:
    """The optional JSON body of a roll-out request (empty: the newest version)."""
    content_type = media_type(request)
    body = await read_body(request, MAX_ADMIN_BODY)
    if not body.strip():
        return LoadRequest()
    if content_type != "application/json":
        raise ProblemError(415, "Unsupported media type", "send the roll-out request as application/json")
    try:
        return LoadRequest.model_validate_json(body)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise ProblemError(422, "Invalid request", details) from exc


async def read_frames(request: Request, settings: Settings) -> list[FrameInput]:
    """One frame from a raw JPEG/PNG body, or several from multipart/form-data."""
    content_type = media_type(request)
    if content_type in IMAGE_TYPES:
        return [FrameInput(await read_body(request, settings.max_body_bytes))]
    if content_type == "multipart/form-data":
        return await read_multipart(request, settings)
    shown = content_type or "none"
    raise ProblemError(
        415, "Unsupported media type", f"Content-Type {shown}; send image/jpeg, image/png or multipart/form-data"
    )


async def read_multipart(request: Request, settings: Settings) -> list[FrameInput]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
        raise ProblemError(
            413, "Payload too large", f"the body has {declared} bytes, more than {settings.max_body_bytes}"
        )
    try:
        form = await request.form(max_files=settings.max_frames, max_fields=8, max_part_size=settings.max_body_bytes)
    except Exception as exc:  # python-multipart and Starlette raise several types for bad bodies
        raise ProblemError(400, "Malformed multipart body", str(exc) or type(exc).__name__) from exc
    files = form.getlist("frames")
    if not files:
        raise ProblemError(422, "No frames", "multipart requests carry their images in parts named 'frames'")
    for part in files:
        if isinstance(part, str) or (part.content_type or "").split(";")[0] not in IMAGE_TYPES:
            raise ProblemError(415, "Unsupported media type", "each 'frames' part must be image/jpeg or image/png")
    metadata = parse_metadata(form.get("metadata"), len(files))
    frames = []
    total = 0
    for part, meta in zip(files, metadata, strict=True):
        data = await part.read()
        total += len(data)
        if total > settings.max_body_bytes:
            raise ProblemError(
                413, "Payload too large", f"the frames add up to more than {settings.max_body_bytes} bytes"
            )
        frames.append(FrameInput(data, **meta))
    return frames


def parse_metadata(raw, count: int) -> list[dict]:
    """The optional 'metadata' part: a JSON array with one object per frame, in order."""
    if raw is None:
        return [{} for _ in range(count)]
    if not isinstance(raw, str):
        raise ProblemError(422, "Invalid metadata", "'metadata' must be a text field holding JSON")
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ProblemError(422, "Invalid metadata", f"'metadata' is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ProblemError(422, "Invalid metadata", "'metadata' is nested too deeply") from exc
    if not isinstance(items, list) or len(items) != count:
        raise ProblemError(
            422, "Invalid metadata", f"'metadata' must be a JSON array of {count} objects, one per frame"
        )
    parsed = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ProblemError(422, "Invalid metadata", f"metadata[{i}] must be an object")
        if unknown := set(item) - set(FRAME_FIELDS):
            raise ProblemError(422, "Invalid metadata", f"metadata[{i}] has unknown fields {sorted(unknown)}")
        for key, value in item.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, FRAME_FIELDS[key]):
                raise ProblemError(422, "Invalid metadata", f"metadata[{i}].{key} has the wrong type")
            if isinstance(value, float) and not math.isfinite(value):  # json.loads accepts NaN and Infinity
                raise ProblemError(422, "Invalid metadata", f"metadata[{i}].{key} must be a finite number")
            if key in ("camera_id", "frame_id") and len(value) > 256:
                raise ProblemError(422, "Invalid metadata", f"metadata[{i}].{key} is longer than 256 characters")
        focal = item.get("focal_px")
        if focal is not None and not 1 <= focal <= 100_000:
            raise ProblemError(422, "Invalid metadata", f"metadata[{i}].focal_px must lie in [1, 100000] pixels")
        parsed.append({k: item.get(k) for k in FRAME_FIELDS})
    return parsed
