"""The frames ``perception infer`` sends: image files, folders of images and every Nth video frame."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class Frame:
    """One frame to send: its name for printing and saving, the encoded image and its metadata."""

    name: str
    data: bytes
    meta: dict = field(default_factory=dict)
    pixels_bgr: np.ndarray | None = None  # video frames keep their pixels for the overlay

    def rgb(self) -> np.ndarray:
        """The frame's pixels, RGB uint8: decoded from ``data`` unless a video frame kept them."""
        pixels = self.pixels_bgr
        if pixels is None:
            pixels = cv2.imdecode(np.frombuffer(self.data, np.uint8), cv2.IMREAD_COLOR)
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


def video_frames(path: Path, every: int, camera_id: str | None) -> Iterator[Frame]:
    """Every ``every``th frame of a video, JPEG-encoded, with its index and timestamp as metadata."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"{path}: not an image, a folder or a video OpenCV can open")
    try:
        index = 0
        while True:
            ok, pixels = capture.read()
            if not ok:
                break
            if index % every == 0:
                seconds = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
                ok, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])
                if not ok:
                    raise ValueError(f"{path}: frame {index} could not be JPEG-encoded")
                meta = {"camera_id": camera_id, "frame_id": str(index), "timestamp": round(seconds, 6)}
                yield Frame(f"{path.stem}_{index:06d}", buf.tobytes(), meta, pixels)
            index += 1
    finally:
        capture.release()


def input_frames(inputs: Iterable[Path], every: int, camera_id: str | None) -> Iterator[Frame]:
    """Frames from image files, folders of images (sorted) and videos, in the order given."""
    for path in inputs:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not files:
                raise ValueError(f"{path}: no .jpg, .jpeg or .png files")
            for file in files:
                yield Frame(file.stem, file.read_bytes(), {"camera_id": camera_id, "frame_id": file.name})
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            yield Frame(path.stem, path.read_bytes(), {"camera_id": camera_id, "frame_id": path.name})
        elif path.is_file():
            yield from video_frames(path, every, camera_id)
        else:
            raise ValueError(f"{path}: no such file or folder")


def batched(frames: Iterator[Frame], size: int) -> Iterator[list[Frame]]:
    """Lists of ``size`` frames, the last one shorter if need be."""
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
