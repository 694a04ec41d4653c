"""What happens to one frame: decode and letterbox, wait for its batch, map the outputs back
through the letterbox and encode them. The HTTP layer only parses requests and writes answers."""

from __future__ import annotations

import asyncio
import base64
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from perception.contract import Letterbox
from service.batcher import Batcher, Result
from service.engine import Engine
from service.imaging import (
    DEPTH_PNG_SCALE,
    declared_size,
    decode_image,
    depth_to_uint16,
    float16,
    jpeg_reduction,
    png_base64,
)
from service.schemas import Depth, Detection, FrameResult, Segmentation, SegmentationClass, Timings

OUTPUTS = ("detections", "segmentation", "depth")


@dataclass(frozen=True)
class Options:
    """What the client asked for; the defaults are the API's (the route reads them from here)."""

    outputs: frozenset[str] = frozenset(OUTPUTS)
    segmentation_encoding: str = "png"  # png | rle
    depth_encoding: str = "float16"  # float16 | png16
    score_threshold: float = 0.25
    output_scale: float | None = None  # dense outputs' size relative to the image; None: the model's own


@dataclass
class FrameInput:
    data: bytes
    camera_id: str | None = None
    frame_id: str | None = None
    timestamp: float | None = None
    focal_px: float | None = None  # in original-image pixels


@dataclass
class Prepared:
    pixels: np.ndarray  # uint8 [3, H, W] at model size
    letterbox: Letterbox
    focal_px: float  # at model size
    decode_s: float


def prepare(frame: FrameInput, engine: Engine, max_pixels: int) -> Prepared:
    """Decode (JPEGs at the smallest scale that still covers the model input) and letterbox. The
    letterbox is fitted to the image's full size, so boxes and maps map back to original pixels."""
    started = time.perf_counter()
    md = engine.metadata
    width, height = declared_size(frame.data)
    fits = [Letterbox.fit(w, h, md.input_width, md.input_height) for w, h in ((width, height), (height, width))]
    # in the file's orientation: what the upright fit needs, and what the fit of the image turned a
    # quarter by its EXIF orientation needs (its width is the file's height)
    need_w, need_h = max(fits[0].new_w, fits[1].new_h), max(fits[0].new_h, fits[1].new_w)
    image = decode_image(frame.data, max_pixels, jpeg_reduction(frame.data, width, height, need_w, need_h))
    rotated = width != height and (image.shape[1] > image.shape[0]) != (width > height)  # EXIF orientation
    box = fits[1] if rotated else fits[0]
    pixels = np.ascontiguousarray(box.apply(image).transpose(2, 0, 1))
    focal = frame.focal_px * box.scale if frame.focal_px else md.default_focal_px
    return Prepared(pixels, box, float(focal), time.perf_counter() - started)


def run_lengths(flat: np.ndarray) -> tuple[list[int], list[int]]:
    """Runs of equal values in a flattened class map: (lengths, the class id of each run)."""
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], change))
    return np.diff(np.concatenate((starts, [flat.size]))).tolist(), flat[starts].tolist()


def finish(frame: FrameInput, index: int, prep: Prepared, result: Result, options: Options) -> FrameResult:
    """Map one frame's outputs back to its image and encode them."""
    started = time.perf_counter()
    md = result.engine.metadata
    out = result.outputs
    box = prep.letterbox
    detections = semantic = depth = None
    if "detections" in options.outputs:
        rows = out["detections"][: int(out["num_detections"])]
        rows = rows[rows[:, 4] >= options.score_threshold]
        boxes = box.boxes_to_source(rows[:, :4])
        detections = [
            Detection(class_id=int(c), class_name=md.detection_classes[int(c)], score=round(float(s), 4),
                      box=[round(float(v), 2) for v in b])
            for b, s, c in zip(boxes, rows[:, 4], rows[:, 5], strict=True)
        ]  # fmt: skip
    scale = options.output_scale or box.output_scale
    if "segmentation" in options.outputs:
        semantic = box.map_to_source(out["semantic"], nearest=True, out_scale=scale)
    if "depth" in options.outputs:
        depth = box.map_to_source(out["depth"], nearest=False, out_scale=scale)
    postprocess_s = time.perf_counter() - started

    started = time.perf_counter()
    segmentation = depth_answer = None
    if semantic is not None:
        legend = [SegmentationClass(id=i, name=n, color=list(md.segmentation_palette[i]))
                  for i, n in enumerate(md.segmentation_classes)]  # fmt: skip
        h, w = semantic.shape
        if options.segmentation_encoding == "rle":
            counts, values = run_lengths(semantic.T.ravel())  # column-major, as COCO
            segmentation = Segmentation(encoding="rle", width=w, height=h, counts=counts, values=values, classes=legend)
        else:
            segmentation = Segmentation(encoding="png", width=w, height=h, data=png_base64(semantic), classes=legend)
    if depth is not None:
        h, w = depth.shape
        if options.depth_encoding == "float16":
            raw = base64.b64encode(float16(depth).tobytes()).decode("ascii")
            depth_answer = Depth(encoding="float16", width=w, height=h, data=raw)
        else:
            data = png_base64(depth_to_uint16(depth))
            depth_answer = Depth(encoding="png16", width=w, height=h, scale=DEPTH_PNG_SCALE, data=data)
    encode_s = time.perf_counter() - started

    ms = 1000.0
    timings = Timings(
        decode_ms=prep.decode_s * ms,
        queue_ms=result.queue_s * ms,
        inference_ms=result.inference_s * ms,
        postprocess_ms=postprocess_s * ms,
        encode_ms=encode_s * ms,
        total_ms=0.0,  # filled in by the caller, which saw the whole request
    )
    return FrameResult(
        index=index,
        camera_id=frame.camera_id,
        frame_id=frame.frame_id,
        timestamp=frame.timestamp,
        width=box.src_w,
        height=box.src_h,
        detections=detections,
        segmentation=segmentation,
        depth=depth_answer,
        batch_size=result.batch_size,
        timings=timings,
    )


class Pipeline:
    """Runs frames through prepare → batcher → finish; CPU work (OpenCV releases the GIL) runs in
    a thread pool so one slow decode never stalls the event loop."""

    def __init__(self, batcher: Batcher, max_pixels: int, workers: int):
        self.batcher = batcher
        self.max_pixels = max_pixels
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="frames")

    async def prepare(self, frame: FrameInput, engine: Engine) -> Prepared:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, prepare, frame, engine, self.max_pixels)

    async def finish(self, frame: FrameInput, index: int, prep: Prepared, result: Result, options: Options):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, finish, frame, index, prep, result, options)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
