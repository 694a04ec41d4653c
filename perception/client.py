"""A small Python client for the perception service, and the ``perception infer`` command.

Torch-free on purpose: it needs only NumPy, OpenCV and httpx, so it works in the serving install.

    client = PerceptionClient("http://127.0.0.1:8000")
    answer = client.perceive([Path("frame.jpg")])
    frame = answer["frames"][0]
    classes = decode_segmentation(frame["segmentation"])  # uint8 [H, W] class ids
    metres = decode_depth(frame["depth"])                 # float32 [H, W]
    picture = render_overlay(image_rgb, frame)            # what the model saw

The answer's fields are described once, in ``service/schemas.py``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import httpx
import numpy as np

DEFAULT_URL = "http://127.0.0.1:8000"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
QUERY_OPTIONS = ("outputs", "segmentation_encoding", "depth_encoding", "score_threshold", "output_scale")

Image = bytes | np.ndarray | Path


class PerceptionError(RuntimeError):
    """The service answered with an error (an RFC 9457 problem document)."""

    def __init__(self, status: int, title: str, detail: str, request_id: str | None = None):
        super().__init__(f"{status} {title}: {detail}")
        self.status, self.title, self.detail, self.request_id = status, title, detail, request_id


# --- requests -------------------------------------------------------------------------------------


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


# --- decoding -------------------------------------------------------------------------------------


def decode_png(data_b64: str, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    plane = cv2.imdecode(np.frombuffer(base64.b64decode(data_b64), np.uint8), flags)
    if plane is None:
        raise ValueError("the answer's PNG could not be decoded")
    return plane


def decode_segmentation(seg: dict) -> np.ndarray:
    """The class map, uint8 [height, width]; pixel values are legend ids (``seg["classes"]``).

    RLE counts are runs of equal values over the column-major flattened map. The counts alone
    do not say which class each run has: that comes from ``seg["values"]`` (one class id per run)
    when the answer carries it; without it an RLE answer cannot be decoded and this raises."""
    h, w = seg["height"], seg["width"]
    if seg["encoding"] == "png":
        plane = decode_png(seg["data"])
    elif seg["encoding"] == "rle":
        counts = np.asarray(seg["counts"], np.int64)
        if counts.sum() != h * w:
            raise ValueError(f"RLE counts add up to {counts.sum()}, not {h}x{w}={h * w} pixels")
        values = seg.get("values")
        if values is None:
            raise ValueError(
                "this RLE segmentation has run lengths but no class id per run ('values'); "
                "ask for segmentation_encoding=png to get the class map"
            )
        if len(values) != len(counts):
            raise ValueError(f"RLE has {len(counts)} runs but {len(values)} values")
        flat = np.repeat(np.asarray(values, np.uint8), counts)
        plane = flat.reshape(w, h).T  # column-major: the first h values are the first column
    else:
        raise ValueError(f"unknown segmentation encoding {seg['encoding']!r}")
    if plane.shape != (h, w):
        raise ValueError(f"segmentation is {plane.shape}, the answer says {(h, w)}")
    return np.ascontiguousarray(plane)


def run_lengths(class_map: np.ndarray) -> list[int]:
    """The run lengths a class map has in the service's RLE (column-major runs of equal values)."""
    flat = class_map.T.ravel()
    bounds = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]))
    return np.diff(bounds).tolist()


def decode_depth(depth: dict) -> np.ndarray:
    """Depth in metres, float32 [height, width]."""
    h, w = depth["height"], depth["width"]
    if depth["encoding"] == "png16":
        plane = decode_png(depth["data"]).astype(np.float32) * np.float32(depth["scale"])
    elif depth["encoding"] == "float16":
        raw = base64.b64decode(depth["data"])
        if len(raw) != 2 * h * w:
            raise ValueError(f"float16 depth has {len(raw)} bytes, expected {2 * h * w}")
        plane = np.frombuffer(raw, "<f2").astype(np.float32).reshape(h, w)
    else:
        raise ValueError(f"unknown depth encoding {depth['encoding']!r}")
    if plane.shape != (h, w):
        raise ValueError(f"depth is {plane.shape}, the answer says {(h, w)}")
    return plane


# --- drawing --------------------------------------------------------------------------------------

BOX_COLOURS = [(255, 64, 64), (64, 200, 255), (255, 200, 0), (120, 255, 80), (255, 80, 220), (0, 255, 200),
               (255, 140, 0), (170, 120, 255)]  # fmt: skip


def colour_depth(metres: np.ndarray) -> np.ndarray:
    """Inverse depth through the Turbo colour map (near: red, far: blue), RGB uint8; no depth: black."""
    valid = np.isfinite(metres) & (metres > 0)
    out = np.zeros((*metres.shape, 3), np.uint8)
    if not valid.any():
        return out
    inverse = 1.0 / metres[valid]
    lo, hi = np.percentile(inverse, [2, 98])
    scaled = np.zeros(metres.shape, np.uint8)
    scaled[valid] = np.clip((inverse - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    coloured = cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    out[valid] = coloured[valid]
    return out


def render_overlay(image_rgb: np.ndarray, frame: dict, alpha: float = 0.45) -> np.ndarray:
    """The frame as the model saw it, RGB uint8: segmentation colours (the answer's legend) blended
    into the image, boxes with labels on top, and the depth colour map to the right when present."""
    h, w = image_rgb.shape[:2]
    if (frame["width"], frame["height"]) != (w, h):
        raise ValueError(f"the image is {w}x{h} but the answer is for {frame['width']}x{frame['height']}")
    canvas = image_rgb.copy()
    if seg := frame.get("segmentation"):
        class_map = cv2.resize(decode_segmentation(seg), (w, h), interpolation=cv2.INTER_NEAREST)
        lut = np.zeros((256, 3), np.uint8)
        for entry in seg["classes"]:
            lut[entry["id"]] = entry["color"]
        canvas = cv2.addWeighted(canvas, 1 - alpha, lut[class_map], alpha, 0)
    scale = max(w, h) / 1280
    thickness, font_scale = max(1, round(2 * scale)), max(0.4, 0.6 * scale)
    for det in frame.get("detections") or []:
        colour = BOX_COLOURS[det["class_id"] % len(BOX_COLOURS)]
        x1, y1, x2, y2 = (round(v) for v in det["box"])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        label = f"{det['class_name']} {det['score']:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = max(y1 - th - base - 2, 0)
        cv2.rectangle(canvas, (x1, top), (x1 + tw + 4, top + th + base + 2), colour, -1)
        cv2.putText(canvas, label, (x1 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1,
                    cv2.LINE_AA)  # fmt: skip
    if depth := frame.get("depth"):
        coloured = colour_depth(cv2.resize(decode_depth(depth), (w, h), interpolation=cv2.INTER_LINEAR))
        canvas = np.concatenate([canvas, coloured], axis=1)
    return canvas


def write_png(path: Path, image_rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")


# --- the command ----------------------------------------------------------------------------------


@dataclass
class Frame:
    name: str
    data: bytes
    meta: dict = field(default_factory=dict)
    pixels_bgr: np.ndarray | None = None  # video frames keep their pixels for the overlay


def video_frames(path: Path, every: int, camera_id: str | None) -> Iterator[Frame]:
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
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def summary(name: str, frame: dict) -> str:
    """One line: detections per class and the timings."""
    counts = Counter(d["class_name"] for d in frame.get("detections") or [])
    found = ", ".join(f"{n} {c}" for c, n in counts.most_common()) or "no detections"
    t = frame["timings"]
    times = ", ".join(
        f"{k.removesuffix('_ms')} {t[k]:.1f}" for k in ("decode_ms", "queue_ms", "inference_ms", "encode_ms")
    )
    return f"{name}: {found} | total {t['total_ms']:.1f} ms ({times}; batch {frame['batch_size']})"


def unique_name(name: str, used: set[str]) -> str:
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{name}-{n}"
    used.add(candidate)
    return candidate


def infer_command(args: argparse.Namespace) -> int:
    """``perception infer``: post frames, print a line per frame, save answers and overlays."""
    if args.batch < 1 or args.every < 1:
        print("error: --batch and --every must be at least 1", file=sys.stderr)
        return 2
    out: Path | None = args.out
    if args.overlay and out is None:
        print("error: --overlay needs --out DIR", file=sys.stderr)
        return 2
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    api_key = args.api_key or os.environ.get("PERCEPTION_API_KEY") or None
    used: set[str] = set()
    count = 0
    try:
        with PerceptionClient(args.url, api_key, timeout=args.timeout) as client:
            for batch in batched(input_frames(args.inputs, args.every, args.camera_id), args.batch):
                metadata = [{k: v for k, v in f.meta.items() if v is not None} for f in batch]
                answer = client.perceive(
                    [f.data for f in batch], metadata=metadata if any(metadata) else None,
                    score_threshold=args.score_threshold,
                )  # fmt: skip
                for source, result in zip(batch, answer["frames"], strict=True):
                    name = unique_name(source.name, used)
                    print(summary(name, result), flush=True)
                    count += 1
                    if out is None:
                        continue
                    doc = {"source": name, "request_id": answer["request_id"], "model": answer["model"], **result}
                    (out / f"{name}.json").write_text(json.dumps(doc))
                    if args.overlay:
                        pixels = source.pixels_bgr
                        if pixels is None:
                            pixels = cv2.imdecode(np.frombuffer(source.data, np.uint8), cv2.IMREAD_COLOR)
                        write_png(out / f"{name}.overlay.png", render_overlay(cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB),
                                                                              result))  # fmt: skip
    except PerceptionError as exc:
        print(f"error: the service answered {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"error: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if count == 0:
        print("error: no frames to send", file=sys.stderr)
        return 1
    return 0
