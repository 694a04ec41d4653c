"""The web page at /: drop or pick an image, see the detections, segmentation, depth and timings."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter()


@router.get("/", include_in_schema=False)
async def web_page():
    return FileResponse(STATIC / "index.html", media_type="text/html")
