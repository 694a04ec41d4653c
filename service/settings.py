"""Every setting of the service, read from ``PERCEPTION_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    intra_op_threads: int = Field(0, description="ONNX Runtime intra-op threads (0: one per core)")
    max_batch: int = Field(8, ge=1, description="Largest batch of frames per inference run")
    concurrent_batches: int = Field(
        2, ge=1, description="Inference runs in flight at once (2 kept both cores of a 2-core CPU busy)"
    )
    max_queue_delay_ms: float = Field(5.0, ge=0, description="How long a frame may wait for others to join its batch")
    max_queue: int = Field(64, ge=1, description="Frames waiting for inference before new work is refused (503)")
    max_body_bytes: int = Field(32 * 1024 * 1024, description="Largest request body")
    max_pixels: int = Field(40_000_000, description="Largest decoded image (width × height)")
    max_frames: int = Field(16, ge=1, description="Most frames in one multipart request")
    cors_origins: str = Field("", description="Comma-separated origins allowed by CORS (empty: CORS closed)")
    log_level: str = Field("INFO", description="Python log level")
    watch_model: bool = Field(False, description="Poll the model folder and roll out new versions")
    watch_interval_s: float = Field(5.0, gt=0, description="How often the model folder is polled")
    drain_timeout_s: float = Field(30.0, description="On SIGTERM, how long queued frames may take to finish")
