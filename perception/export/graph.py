"""Build the self-contained ONNX graph: uint8 pixels in, final answers out (ARCHITECTURE.md)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx
import torch
from onnx import compose

from perception.config import Config
from perception.contract import (
    INPUT_FOCAL,
    INPUT_IMAGES,
    OUTPUT_DEPTH,
    OUTPUT_SEMANTIC,
    ModelMetadata,
)
from perception.export.postprocess import postprocess_model
from perception.model import MultiTaskNet

OPSET = 18


class _Predict(torch.nn.Module):
    """The network's ``predict`` with a fixed tuple of outputs, for tracing."""

    def __init__(self, net: MultiTaskNet):
        super().__init__()
        self.net = net
        self.names = [n for n, task in (("boxes", "detection"), ("scores", "detection"),
                                        (OUTPUT_SEMANTIC, "segmentation"), (OUTPUT_DEPTH, "depth"))
                      if task in net.tasks]  # fmt: skip

    def forward(self, images: torch.Tensor, focal_px: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pred = self.net.predict(images, focal_px)
        return tuple(pred["boxes" if n == "boxes" else n] for n in self.names)


def network_graph(net: MultiTaskNet) -> onnx.ModelProto:
    """The network (normalisation, backbone, heads, box decoding, argmax, depth scaling) with a
    dynamic batch, traced by the dynamo-based exporter."""
    wrapper = _Predict(net).eval()
    cfg = net.config
    images = torch.zeros(2, 3, cfg.input_height, cfg.input_width, dtype=torch.uint8)
    focal = torch.full((2,), cfg.canonical_focal_px)
    batch = torch.export.Dim("batch", min=1, max=1024)
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        path = Path(tmp) / "network.onnx"
        torch.onnx.export(
            wrapper,
            (images, focal),
            path,
            dynamo=True,
            input_names=[INPUT_IMAGES, INPUT_FOCAL],
            output_names=wrapper.names,
            dynamic_shapes={"images": {0: batch}, "focal_px": {0: batch}},
            opset_version=OPSET,
            optimize=True,
            verbose=False,
        )
        return onnx.load(path, load_external_data=True)


def build_graph(net: MultiTaskNet, config: Config, metadata: ModelMetadata) -> onnx.ModelProto:
    """Network graph, plus NMS and packing when the model detects, plus metadata."""
    model = network_graph(net)
    cfg = config.model
    if "detection" in net.tasks:
        post = postprocess_model(cfg.max_detections, cfg.nms_iou, cfg.score_threshold)
        post.ir_version = model.ir_version
        post = compose.add_prefix(post, "nms/", rename_inputs=False, rename_outputs=False)
        keep = [o.name for o in model.graph.output if o.name not in ("boxes", "scores")]
        model = compose.merge_models(
            model,
            post,
            io_map=[("boxes", "boxes"), ("scores", "scores")],
            outputs=[o.name for o in post.graph.output] + keep,
        )
    onnx.helper.set_model_props(model, metadata.to_props())
    model.producer_name = "perception"
    model.doc_string = f"{metadata.name} {metadata.version}: detection, segmentation and metric depth in one pass"
    return model
