"""The HTTP side: :class:`PerceptionClient` posts frames to ``POST /v1/perceive``; errors come back
as :class:`PerceptionError` (the service's RFC 9457 problem documents)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import httpx
import numpy as np

DEFAULT_URL = "http://127.0.0.1:8000"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
QUERY_OPTIONS = ("outputs", "segmentation_encoding", "depth_encoding", "score_threshold", "output_scale")

Image = bytes | np.ndarray | Path


class PerceptionError(RuntimeError):
    """The service answered with an error (an RFC 9457 problem document)."""

    def __init__(self, status: int, title: str, detail: str, request_id: str | None = None):
        super().__init__(f"{status} {title}: {detail}")
        self.status, self.title, self.detail, self.request_id = status, title, detail, request_id


def encode_image(image: Image) -> tuple[bytes, str]:
    """Bytes and content type of one frame. Arrays are uint8 RGB (or grey) and are sent as JPEG;
    bytes and files are sent as they are, typed by their signature (PNG, otherwise JPEG)."""
    if isinstance(image, np.ndarray):
        pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
        ok, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise ValueError(f"cannot JPEG-encode an array of shape {image.shape} and type {image.dtype}")
        return buf.tobytes(), "image/jpeg"
    data = Path(image).read_bytes() if isinstance(image, (str, Path)) else bytes(image)
    return data, "image/png" if data.startswith(PNG_SIGNATURE) else "image/jpeg"


def raise_for_problem(response: httpx.Response) -> None:
    """Raise :class:`PerceptionError` for a 4xx / 5xx answer, with the problem document's title and detail."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = body.get("detail") or response.text[:500] or response.reason_phrase
    title = body.get("title") or response.reason_phrase or "Error"
    raise PerceptionError(response.status_code, title, str(detail), body.get("request_id"))


class PerceptionClient:
    """Posts frames to ``POST /v1/perceive`` and returns the decoded JSON answer."""

    def __init__(self, url: str = DEFAULT_URL, api_key: str | None = None, timeout: float = 60.0):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> PerceptionClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def perceive(
        self, images: Sequence[Image], metadata: Sequence[dict] | None = None, deadline_ms: float | None = None,
        **options,
    ) -> dict:  # fmt: skip
        """One request for all ``images``: a raw body for a single frame without metadata, otherwise
        multipart/form-data with parts ``frames`` and ``metadata`` (one object per frame).

        ``options`` are the query parameters: outputs (a comma string or a list), segmentation_encoding
        (png | rle), depth_encoding (png16 | float16), score_threshold, output_scale."""
        if not images:
            raise ValueError("perceive needs at least one image")
        if unknown := set(options) - set(QUERY_OPTIONS):
            raise TypeError(f"unknown options {sorted(unknown)}; expected some of {', '.join(QUERY_OPTIONS)}")
        if metadata is not None and len(metadata) != len(images):
            raise ValueError(f"metadata has {len(metadata)} entries for {len(images)} images")
        params = {k: v for k, v in options.items() if v is not None}
        if not isinstance(params.get("outputs", ""), str):
            params["outputs"] = ",".join(params["outputs"])
        headers = {"X-Deadline-Ms": str(deadline_ms)} if deadline_ms is not None else {}
        encoded = [encode_image(image) for image in images]
        if len(encoded) == 1 and metadata is None:
            data, content_type = encoded[0]
            response = self.http.post(
                "/v1/perceive", params=params, content=data, headers={**headers, "Content-Type": content_type}
            )
        else:
            files = [
                ("frames", (f"frame{i}{'.png' if t == 'image/png' else '.jpg'}", data, t))
                for i, (data, t) in enumerate(encoded)
            ]
            form = {"metadata": json.dumps(list(metadata))} if metadata is not None else None
            response = self.http.post("/v1/perceive", params=params, files=files, data=form, headers=headers)
        raise_for_problem(response)
        return response.json()
