"""Every setting of the service, read from ``PERCEPTION_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.variants import Tolerance

REPO_MODELS = Path(__file__).resolve().parent.parent / "models"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PERCEPTION_", extra="ignore")

    model: Path = Field(
        REPO_MODELS / "drivenet",
        description="A model.onnx, or a model folder models/<name>/ whose newest integer version is served",
    )
    host: str = Field("127.0.0.1", description="Bind address; non-loopback requires API keys")
    port: int = Field(8000, description="Bind port")
    api_keys: str = Field("", description="Comma-separated Bearer keys for inference routes")
    api_keys_file: Path | None = Field(None, description="File with one inference key per line (a mounted secret)")
    admin_key: str = Field("", description="Bearer key for model operations")
    admin_key_file: Path | None = Field(None, description="File holding the admin key")
    providers: str = Field("auto", description="auto (TensorRT ► CUDA ► CPU by availability) or a comma list")
    intra_op_threads: int = Field(
        0, description="ONNX Runtime intra-op threads (0: one per usable core: the CPU affinity, capped by a CPU limit)"
    )
    variant: Literal["auto", "fp32", "fp16", "int8"] = Field(
        "auto",
        description="Precision variant served from a model folder: auto (INT8 on CPU, FP16 on CUDA/TensorRT, FP32 "
        "otherwise, when the folder holds it and its recorded accuracy is within PERCEPTION_VARIANT_MAX_DELTA) "
        "or one to force; a model.onnx path is served as it is",
    )
    variant_max_delta: str = Field(
        "0.01",
        description="Largest accuracy loss against FP32 (variants.json) auto accepts: mAP50, mIoU drop, AbsRel "
        "rise; one number for all, or e.g. 0.01,AbsRel=0.005",
    )
    max_batch: int | None = Field(
        None, ge=1, description="Largest batch of frames per inference run (unset: the provider's default)"
    )
    concurrent_batches: int | None = Field(
        None, ge=1, description="Inference runs in flight at once (unset: the provider's default)"
    )
    max_queue_delay_ms: float | None = Field(
        None,
        ge=0,
        description="How long a frame may wait for others to join its batch while other work is in flight "
        "(unset: the provider's default)",
    )
    wait_when_idle: bool = Field(
        False, description="Let a frame that arrives idle wait out the queue delay too (off: it starts at once)"
    )
    max_queue: int = Field(64, ge=1, description="Frames waiting for inference before new work is refused (503)")
    max_body_bytes: int = Field(32 * 1024 * 1024, description="Largest request body")
    max_pixels: int = Field(40_000_000, description="Largest decoded image (width × height)")
    max_frames: int = Field(16, ge=1, description="Most frames in one multipart request")
    cors_origins: str = Field("", description="Comma-separated origins allowed by CORS (empty: CORS closed)")
    log_level: str = Field("INFO", description="Python log level")
    watch_model: bool = Field(False, description="Poll the model folder and roll out new versions")
    watch_interval_s: float = Field(5.0, gt=0, description="How often the model folder is polled")
    drain_timeout_s: float = Field(30.0, description="On SIGTERM, how long queued frames may take to finish")

    @field_validator("variant_max_delta")
    @classmethod
    def _tolerance_parses(cls, value: str) -> str:
        Tolerance.parse(value)
        return value

    @property
    def tolerance(self) -> Tolerance:
        """PERCEPTION_VARIANT_MAX_DELTA, parsed."""
        return Tolerance.parse(self.variant_max_delta)
