"""The plain alternative the service is measured against: the same network served the way most
tutorials do it. PyTorch eager inside a FastAPI handler, one frame per forward pass, non-maximum
suppression and the rest of the post-processing in Python (torchvision), masks PNG-encoded like the
service does (same OpenCV encoder and compression level), everything answered as JSON.

    .venv/bin/python benchmarks/eager_server.py models/drivenet --port 8001   # the newest version

Started by ``perception bench`` as a subprocess; not part of the product.
"""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

import cv2
import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, Request
from torchvision.ops import batched_nms

from perception.classes import DETECTION_CLASSES
from perception.contract import Letterbox, resolve_model_path
from perception.model import WEIGHTS, load_trained


def png_base64(plane: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", plane, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    assert ok
    return base64.b64encode(buf.tobytes()).decode("ascii")


def create_app(weights: Path) -> FastAPI:
    net, config = load_trained(weights)
    cfg = config.model
    app = FastAPI(title="PyTorch eager baseline")

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.post("/v1/perceive")
    async def perceive(request: Request):
        data = await request.body()
        image = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        box = Letterbox.fit(image.shape[1], image.shape[0], cfg.input_width, cfg.input_height)
        pixels = torch.from_numpy(np.ascontiguousarray(box.apply(image).transpose(2, 0, 1)))[None]
        with torch.inference_mode():
            pred = net.predict(pixels, torch.tensor([cfg.canonical_focal_px]))
            boxes, scores = pred["boxes"][0], pred["scores"][0]  # [A, 4], [C, A]
            cls, point = torch.nonzero(scores > cfg.score_threshold, as_tuple=True)
            s = scores[cls, point]
            keep = batched_nms(boxes[point], s, cls, cfg.nms_iou)[: cfg.max_detections]
        rows = boxes[point[keep]].numpy()
        detections = [
            {"class_id": int(c), "class_name": DETECTION_CLASSES[int(c)], "score": round(float(sc), 4),
             "box": [round(float(v), 2) for v in b]}
            for b, sc, c in zip(box.boxes_to_source(rows), s[keep].tolist(), cls[keep].tolist(), strict=True)
            if sc >= 0.25
        ]  # fmt: skip
        # the maps at the size the service returns by default
        semantic = box.map_to_source(pred["semantic"][0].numpy(), nearest=True, out_scale=box.output_scale)
        depth = box.map_to_source(pred["depth"][0].numpy(), nearest=False, out_scale=box.output_scale)
        h, w = semantic.shape
        return {
            "detections": detections,
            "segmentation": {"encoding": "png", "width": w, "height": h, "data": png_base64(semantic)},
            "depth": {"encoding": "float16", "width": w, "height": h,
                      "data": base64.b64encode(depth.astype("<f2").tobytes()).decode("ascii")},
        }  # fmt: skip

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="a model folder (newest version) or version folder with weights")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    app = create_app(resolve_model_path(args.model_dir).parent / WEIGHTS)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
