"""The model being served (GET /v1/models) and roll-outs of new versions (POST /v1/models/load, admin)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.dependencies import AdminKey, AppState, InferenceKey
from service.engine import Engine, ModelError
from service.parsing import read_load_request
from service.problems import ProblemError, problems
from service.schemas import LoadRequest, ModelInfo
from service.state import State

router = APIRouter()


def model_info(engine: Engine, state: State) -> ModelInfo:
    md = engine.metadata
    return ModelInfo(
        name=md.name,
        version=md.version,
        checksum=engine.checksum,
        provider=engine.provider,
        path=state.models.relative(engine.path),
        variant=engine.variant,
        variant_reason=engine.selection,
        input_height=md.input_height,
        input_width=md.input_width,
        detection_classes=md.detection_classes,
        segmentation_classes=md.segmentation_classes,
        metrics=md.metrics or {},
    )


def load_request_body() -> dict:
    return {
        "required": False,
        "content": {"application/json": {"schema": LoadRequest.model_json_schema()}},
    }


@router.get(
    "/v1/models",
    response_model=ModelInfo,
    summary="The model being served",
    responses=problems(401, 403, 503),
    dependencies=[InferenceKey],
)
async def models(state: AppState):
    return model_info(state.require_engine(), state)


@router.post(
    "/v1/models/load",
    response_model=ModelInfo,
    summary="Roll out a model version (admin): load, check, switch atomically; keep the old one on failure",
    responses=problems(401, 403, 409, 413, 415, 422),
    openapi_extra={"requestBody": load_request_body()},
    dependencies=[AdminKey],
)
async def load_model(request: Request, state: AppState):
    # The body is read here, after the key check, and bounded: a LoadRequest parameter would make
    # FastAPI read a body of any size before checking the key.
    body = await read_load_request(request)
    try:
        engine = await state.models.load(body.path)
    except ModelError as exc:
        raise ProblemError(409, "Model refused", f"{exc}; still serving {state.models.describe()}") from exc
    return model_info(engine, state)
