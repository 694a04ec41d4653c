"""The plain alternative the service has to beat with the same model file: FastAPI and ONNX Runtime
as a competent developer writes them in an afternoon. One ``InferenceSession.run`` per request in a
plain ``def`` handler (FastAPI runs it in its thread pool), the JPEG decoded at full resolution
(``cv2.imdecode``), the same letterbox, and the same answer: boxes mapped back to the image,
segmentation as PNG, depth as float16, JSON of the service's schema.

What it shares with the service is only what is fair to share: the model contract (letterbox,
metadata, input and output names), the answer's schema, the PNG and float16 encoders, and the
session options (the same intra-op threads, idle threads that sleep): so the comparison measures
the service's batching, its runs in flight, its scaled JPEG decoding and its event-loop work, not a
setting. No batching, no reduced decoding, no queue.

    .venv/bin/python benchmarks/plain_ort_server.py models/drivenet/13/int8/model.onnx --port 8002

Started by ``perception bench`` as a subprocess; not part of the product. Torch-free.
"""

from __future__ import annotations

import argparse
import base64
import time
import uuid
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import Body, FastAPI, HTTPException

from perception.contract import INPUT_FOCAL, INPUT_IMAGES, OUTPUT_NAMES, Letterbox, ModelMetadata, resolve_model_path
from perception.runtime import session_options
from service.imaging import float16, png_base64
from service.schemas import (
    Depth,
    Detection,
    FrameResult,
    ModelRef,
    PerceiveResponse,
    Segmentation,
    SegmentationClass,
    Timings,
)

SCORE_THRESHOLD = 0.25  # the service's default


def create_app(model: Path, threads: int = 0) -> FastAPI:
    session = ort.InferenceSession(str(model), session_options(threads), providers=["CPUExecutionProvider"])
    md = ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map)
    legend = [SegmentationClass(id=i, name=n, color=list(md.segmentation_palette[i]))
              for i, n in enumerate(md.segmentation_classes)]  # fmt: skip
    grey = np.full((1, 3, md.input_height, md.input_width), 114, np.uint8)
    session.run(None, {INPUT_IMAGES: grey, INPUT_FOCAL: np.array([md.default_focal_px], np.float32)})  # warm up
    app = FastAPI(title="Plain FastAPI + ONNX Runtime baseline")

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.post("/v1/perceive", response_model=PerceiveResponse, response_model_exclude_none=True)
    def perceive(data: Annotated[bytes, Body(media_type="image/jpeg")]) -> PerceiveResponse:
        received = time.perf_counter()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise HTTPException(400, "the image could not be decoded")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        box = Letterbox.fit(image.shape[1], image.shape[0], md.input_width, md.input_height)
        pixels = np.ascontiguousarray(box.apply(image).transpose(2, 0, 1))[None]
        decoded = time.perf_counter()
        feed = {INPUT_IMAGES: pixels, INPUT_FOCAL: np.array([md.default_focal_px], np.float32)}
        out = {name: value[0] for name, value in zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), feed), strict=True)}
        inferred = time.perf_counter()

        rows = out["detections"][: int(out["num_detections"])]
        rows = rows[rows[:, 4] >= SCORE_THRESHOLD]
        detections = [
            Detection(class_id=int(c), class_name=md.detection_classes[int(c)], score=round(float(s), 4),
                      box=[round(float(v), 2) for v in b])
            for b, s, c in zip(box.boxes_to_source(rows[:, :4]), rows[:, 4], rows[:, 5], strict=True)
        ]  # fmt: skip
        semantic = box.map_to_source(out["semantic"], nearest=True, out_scale=box.output_scale)
        depth = box.map_to_source(out["depth"], nearest=False, out_scale=box.output_scale)
        mapped = time.perf_counter()
        h, w = semantic.shape
        segmentation = Segmentation(encoding="png", width=w, height=h, data=png_base64(semantic), classes=legend)
        depth_answer = Depth(encoding="float16", width=w, height=h,
                             data=base64.b64encode(float16(depth).tobytes()).decode("ascii"))  # fmt: skip
        encoded = time.perf_counter()

        ms = 1000.0
        timings = Timings(decode_ms=(decoded - received) * ms, queue_ms=0.0, inference_ms=(inferred - decoded) * ms,
                          postprocess_ms=(mapped - inferred) * ms, encode_ms=(encoded - mapped) * ms,
                          total_ms=(encoded - received) * ms)  # fmt: skip
        frame = FrameResult(index=0, width=box.src_w, height=box.src_h, detections=detections,
                            segmentation=segmentation, depth=depth_answer, batch_size=1, timings=timings)  # fmt: skip
        return PerceiveResponse(request_id=uuid.uuid4().hex, model=ModelRef(name=md.name, version=md.version),
                                frames=[frame])  # fmt: skip

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a model.onnx, a version folder, or a model folder (newest version)")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: one per core)")
    args = parser.parse_args()
    app = create_app(resolve_model_path(args.model), args.threads)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
