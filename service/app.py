"""The FastAPI application: routes, errors as RFC 9457 problems, start-up and shut-down."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.batcher import Batcher, DeadlineExceeded, InferenceFailed, QueueFull
from service.engine import Engine, ModelError
from service.imaging import ImageError, ImageTooLarge
from service.logs import request_id as current_request_id
from service.metrics import Metrics
from service.pipeline import OUTPUTS, FrameInput, Options, Pipeline
from service.rollout import ModelManager
from service.schemas import LoadRequest, ModelInfo, ModelRef, PerceiveResponse, Problem, Readiness
from service.security import Keys
from service.settings import Settings

log = logging.getLogger("service")

IMAGE_TYPES = ("image/jpeg", "image/png")
STATIC = Path(__file__).resolve().parent / "static"
PROBLEM_TYPE = "application/problem+json"
MAX_ADMIN_BODY = 64 * 1024  # a roll-out request is a short JSON object
# Documents the Bearer scheme in OpenAPI; the check itself is Keys.check (constant time, own messages).
BEARER = HTTPBearer(scheme_name="bearer", auto_error=False, description="Authorization: Bearer <key>")


class ProblemError(Exception):
    """An answer other than 200, as an RFC 9457 problem."""

    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers or {}


@dataclass
class State:
    settings: Settings
    models: ModelManager
    metrics: Metrics
    keys: Keys
    batcher: Batcher | None = None
    pipeline: Pipeline | None = None
    ready: bool = False
    draining: bool = False
    tasks: list = field(default_factory=list)

    @property
    def engine(self) -> Engine | None:
        return self.models.current


def problem(status: int, title: str, detail: str, request_id: str | None, headers=None) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail, request_id=request_id).model_dump()
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_TYPE)


def request_id_of(request: Request) -> str:
    return request.scope.setdefault("request_id", new_request_id(request.headers.get("x-request-id", "")))


def new_request_id(supplied: str) -> str:
    """The client's X-Request-ID when it is short, printable ASCII; otherwise a fresh one."""
    ok = 0 < len(supplied) <= 128 and supplied.isascii() and supplied.isprintable()
    return supplied if ok else uuid.uuid4().hex


class RequestMiddleware:
    """Pure ASGI middleware: gives each request an id (header, logs, answers) and counts it by
    route and status."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        rid = new_request_id(headers.get(b"x-request-id", b"").decode("latin-1"))
        scope["request_id"] = rid
        token = current_request_id.set(rid)
        status = 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            self.metrics.requests.labels(getattr(route, "path", "unmatched"), str(status)).inc()
            current_request_id.reset(token)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    state = State(settings, ModelManager(settings, metrics), metrics, Keys(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await state.models.load(None)  # loads, checks and warms the model; raises if it cannot serve
        m = state.metrics
        state.batcher = Batcher(
            settings.max_batch,
            settings.max_queue_delay_ms / 1000,
            settings.max_queue,
            settings.concurrent_batches,
            on_batch=lambda size, seconds: (m.inference_runs.inc(), m.batch_size.observe(size)),
            on_expired=lambda n: m.rejected.labels("deadline").inc(n),
            on_failure=lambda exc: (m.inference_runs.inc(), m.inference_failures.inc()),
        )
        state.batcher.start()
        m.queue_depth.set_function(lambda: state.batcher.depth)
        state.pipeline = Pipeline(state.batcher, settings.max_pixels, os.cpu_count() or 2)
        if settings.watch_model:
            state.tasks.append(asyncio.create_task(state.models.watch(), name="model-watch"))
        state.ready = True
        if state.keys.inference_open:
            log.warning("no API keys configured: inference is open to anyone who can reach %s", settings.host)
        yield
        await shutdown(state)

    app = FastAPI(
        title="Perception service",
        version="1",
        summary="Object detection, semantic segmentation and metric depth from camera frames, in one pass.",
        lifespan=lifespan,
    )
    app.state.perception = state
    if settings.cors_origins.strip():
        origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-Deadline-Ms", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "Retry-After"])  # fmt: skip
    app.add_middleware(RequestMiddleware, metrics=metrics)

    def authorised(admin: bool):
        # async: a plain def dependency would cost every request a hop to a worker thread and back
        async def check(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]) -> None:
            failure = state.keys.check(request.headers.get("authorization"), admin)
            if failure:
                status, reason = failure
                headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
                raise ProblemError(status, "Unauthorized" if status == 401 else "Forbidden", reason, headers)

        return Depends(check)

    inference_auth, admin_auth = authorised(admin=False), authorised(admin=True)

    @app.exception_handler(ProblemError)
    async def on_problem(request: Request, exc: ProblemError):
        return problem(exc.status, exc.title, exc.detail, request_id_of(request), exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        return problem(exc.status_code, "HTTP error", str(exc.detail), request_id_of(request))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception):  # a bug: still a problem document, never a page
        rid = request_id_of(request)
        log.error("request %s: unexpected %s", rid, type(exc).__name__, exc_info=exc)
        detail = f"unexpected error (request {rid})"
        return problem(500, "Internal error", detail, rid, {"X-Request-ID": rid})

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError):
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return problem(422, "Invalid request", details, request_id_of(request))

    @app.get("/", include_in_schema=False)
    async def web_page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/healthz", summary="Liveness: the process is up")
    async def healthz():
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=Readiness,
        response_model_exclude_none=True,
        summary="Readiness: a model is loaded and warmed, and the service is not draining",
        responses={503: {"model": Readiness, "description": "loading or draining"}},
    )
    async def readyz():
        if state.ready and not state.draining:
            return {"status": "ready", "model": ModelRef(name=state.engine.name, version=state.engine.version)}
        return JSONResponse({"status": "draining" if state.draining else "loading"}, status_code=503)

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def prometheus_metrics():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/v1/models",
        response_model=ModelInfo,
        summary="The model being served",
        responses=problems(401, 403, 503),
        dependencies=[inference_auth],
    )
    async def models():
        return model_info(require_engine(state))

    @app.post(
        "/v1/models/load",
        response_model=ModelInfo,
        summary="Roll out a model version (admin): load, check, switch atomically; keep the old one on failure",
        responses=problems(401, 403, 409, 413, 415, 422),
        openapi_extra={"requestBody": load_request_body()},
        dependencies=[admin_auth],
    )
    async def load_model(request: Request):
        # The body is read here, after the key check, and bounded: a LoadRequest parameter would make
        # FastAPI read a body of any size before checking the key.
        body = await read_load_request(request)
        try:
            engine = await state.models.load(body.path)
        except ModelError as exc:
            raise ProblemError(409, "Model refused", f"{exc}; still serving {state.models.describe()}") from exc
        return model_info(engine)

    @app.post(
        "/v1/perceive",
        response_model=PerceiveResponse,
        summary="Detections, segmentation and depth for one or several camera frames",
        responses={
            200: {"content": {"application/json": {"example": PERCEIVE_EXAMPLE}}},
            **problems(400, 401, 403, 413, 415, 422, 500, 503, 504),
        },
        openapi_extra={"requestBody": perceive_request_body()},
        dependencies=[inference_auth],
    )
    async def perceive(
        request: Request,
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
    ):
        received = time.monotonic()
        rid = request_id_of(request)
        wanted = frozenset(o.strip() for o in outputs.split(",") if o.strip())
        if not wanted or wanted - set(OUTPUTS):
            raise ProblemError(422, "Invalid request", f"outputs must be a comma list of {', '.join(OUTPUTS)}")
        options = Options(wanted, segmentation_encoding, depth_encoding, score_threshold, output_scale)
        deadline = parse_deadline(request, received)
        frames = await read_frames(request, settings)
        engine = require_engine(state)  # this request's frames all run on this model version
        pipeline = state.pipeline

        try:
            prepared = await asyncio.gather(*(pipeline.prepare(f, engine) for f in frames))
        except ImageTooLarge as exc:
            raise ProblemError(413, "Image too large", str(exc)) from exc
        except ImageError as exc:
            raise ProblemError(400, "Undecodable image", str(exc)) from exc
        try:
            futures = state.batcher.submit_many(engine, [(p.pixels, p.focal_px) for p in prepared], deadline)
        except QueueFull as exc:
            state.metrics.rejected.labels("queue_full").inc(len(frames))
            retry = {"Retry-After": str(max(1, round(exc.retry_after_s)))}
            raise ProblemError(503, "Overloaded", str(exc), retry) from exc
        try:
            results = await asyncio.gather(*futures)
        except DeadlineExceeded as exc:
            raise ProblemError(504, "Deadline exceeded", f"{exc}; the frame was not run") from exc
        except InferenceFailed as exc:
            log.error("request %s: %s", rid, exc)
            raise ProblemError(500, "Inference failed", f"{exc} (request {rid})") from exc
        work = enumerate(zip(frames, prepared, results, strict=True))
        answers = await asyncio.gather(*(pipeline.finish(f, i, p, r, options) for i, (f, p, r) in work))
        total_s = time.monotonic() - received
        record_frames(state.metrics, answers, total_s)
        log.info("%d frame(s) in %.1f ms", len(frames), total_s * 1000)
        response = PerceiveResponse(
            request_id=rid, model=ModelRef(name=engine.name, version=engine.version), frames=answers
        )
        # pydantic's own serialiser: a third of the time of a dict through json.dumps for a 640 KB answer
        return Response(response.model_dump_json(exclude_none=True), media_type="application/json")

    default_openapi = app.openapi

    def openapi() -> dict:
        """FastAPI's document, with problem answers under their real media type."""
        if app.openapi_schema is None:
            for operation in (op for path in default_openapi()["paths"].values() for op in path.values()):
                for answer in operation["responses"].values():
                    content = answer.get("content", {})
                    if content.get("application/json", {}).get("schema") == PROBLEM_SCHEMA:
                        answer["content"] = {PROBLEM_TYPE: content["application/json"]}
        return app.openapi_schema

    app.openapi = openapi
    return app


PROBLEM_SCHEMA = {"$ref": "#/components/schemas/Problem"}


def problems(*statuses: int) -> dict:
    """OpenAPI entries for answers that are RFC 9457 problems."""
    return {status: {"model": Problem} for status in statuses}


def require_engine(state: State) -> Engine:
    # While draining, the server stops accepting connections SETTLE_S after the signal (service/__main__.py);
    # requests it holds are answered in full.
    if state.engine is None or not state.ready:
        raise ProblemError(503, "Not ready", "the model is still loading", {"Retry-After": "1"})
    return state.engine


def model_info(engine: Engine) -> ModelInfo:
    md = engine.metadata
    return ModelInfo(
        name=md.name,
        version=md.version,
        checksum=engine.checksum,
        provider=engine.provider,
        input_height=md.input_height,
        input_width=md.input_width,
        detection_classes=md.detection_classes,
        segmentation_classes=md.segmentation_classes,
        metrics=md.metrics or {},
    )


def record_frames(metrics: Metrics, answers, total_s: float) -> None:
    metrics.frames.inc(len(answers))
    for answer in answers:
        answer.timings.total_ms = total_s * 1000
        metrics.stage_seconds.labels("queue").observe(answer.timings.queue_ms / 1000)
        metrics.stage_seconds.labels("inference").observe(answer.timings.inference_ms / 1000)
        metrics.stage_seconds.labels("total").observe(total_s)


async def shutdown(state: State) -> None:
    """Stop taking work, answer everything already accepted, then release the model."""
    state.draining = True
    for task in state.tasks:
        task.cancel()
    finished = await state.batcher.drain(state.settings.drain_timeout_s)
    if not finished:
        log.error("drain timed out with %d frame(s) left; they are answered 500", state.batcher.depth)
    await state.batcher.stop()
    state.pipeline.close()


def parse_deadline(request: Request, received: float) -> float | None:
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
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
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


def load_request_body() -> dict:
    return {
        "required": False,
        "content": {"application/json": {"schema": LoadRequest.model_json_schema()}},
    }


async def read_frames(request: Request, settings: Settings) -> list[FrameInput]:
    """One frame from a raw JPEG/PNG body, or several from multipart/form-data."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
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


FRAME_FIELDS = {"camera_id": str, "frame_id": str, "timestamp": (int, float), "focal_px": (int, float)}


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


PERCEIVE_EXAMPLE = {
    "request_id": "63e997da0c6544b99fd18cbe6a72083f",
    "model": {"name": "drivenet", "version": "11"},
    "frames": [{
        "index": 0, "camera_id": "front", "width": 1280, "height": 720,
        "detections": [{"class_id": 0, "class_name": "car", "score": 0.91, "box": [979.4, 327.1, 1181.6, 454.8]}],
        "segmentation": {"encoding": "png", "width": 640, "height": 360, "data": "iVBORw0KGgo…",
                         "classes": [{"id": 0, "name": "road", "color": [128, 64, 128]}]},
        "depth": {"encoding": "float16", "width": 640, "height": 360, "unit": "m", "data": "AEgASABI…"},
        "batch_size": 2,
        "timings": {"decode_ms": 1.8, "queue_ms": 0.2, "inference_ms": 13.9, "postprocess_ms": 0.2,
                    "encode_ms": 1.6, "total_ms": 18.1},
    }],
}  # fmt: skip


def perceive_request_body() -> dict:
    metadata_example = json.dumps([{"camera_id": "front", "frame_id": "000123", "timestamp": 1732380000.05}])
    return {
        "required": True,
        "description": "One frame as a raw JPEG/PNG body, or several as multipart/form-data: parts named "
        "'frames' (images, in order) and an optional 'metadata' part, a JSON array with one object per frame "
        "(camera_id, frame_id, timestamp, focal_px in original-image pixels). Header X-Deadline-Ms sets a "
        "time budget: frames not run by then are answered 504.",
        "content": {
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["frames"],
                    "properties": {
                        "frames": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "metadata": {"type": "string", "example": metadata_example},
                    },
                }
            },
        },
    }
