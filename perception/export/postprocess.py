"""Detection post-processing as an ONNX graph: class-aware non-maximum suppression (the standard
``NonMaxSuppression`` operator, per image and per class) and packing of the survivors into a
fixed-shape ``[B, K, 6]`` tensor (x1, y1, x2, y2, score, class) sorted by score, plus a count.

Appended to the exported network so the service does no model maths (ARCHITECTURE.md). Its boxes are
the network's, decoded by ``perception.model.box_coding`` (the decoding training uses), whose box
format NMS is told to read.
"""

from __future__ import annotations

import onnx
from onnxscript import FLOAT, script
from onnxscript import opset18 as op

from perception.contract import OUTPUT_DETECTIONS, OUTPUT_NUM_DETECTIONS
from perception.model.box_coding import ONNX_CENTER_POINT_BOX

# onnxscript reads the annotations' source, so the shapes are module-level names.
BOXES = FLOAT["B", "A", 4]
SCORES = FLOAT["B", "C", "A"]


def postprocess_model(max_detections: int, iou_threshold: float, score_threshold: float) -> onnx.ModelProto:
    """A model mapping ``boxes`` [B, A, 4] and ``scores`` [B, C, A] to the packed detections."""

    @script()
    def detections_from_scores(boxes: BOXES, scores: SCORES):
        k = op.Constant(value_ints=[max_detections])
        k_scalar = op.Constant(value_int=max_detections)
        iou = op.Constant(value_floats=[iou_threshold])
        threshold = op.Constant(value_floats=[score_threshold])
        # [M, 3]: image, class, box
        selected = op.NonMaxSuppression(boxes, scores, k, iou, threshold, center_point_box=ONNX_CENTER_POINT_BOX)
        image = op.Gather(selected, op.Constant(value_int=0), axis=1)
        cls = op.Gather(selected, op.Constant(value_int=1), axis=1)
        box = op.Gather(selected, op.Constant(value_int=2), axis=1)
        score = op.GatherND(scores, selected)
        coords = op.GatherND(boxes, op.Concat(op.Unsqueeze(image, [1]), op.Unsqueeze(box, [1]), axis=1))

        # Order by image, then by descending score: key = 2 * image - score (scores lie in [0, 1]).
        key = op.Sub(op.Mul(op.Cast(image, to=1), op.Constant(value_float=2.0)), score)
        count = op.Shape(score)
        _, order = op.TopK(op.Neg(key), count, axis=0, largest=1, sorted=1)
        image = op.Gather(image, order)
        cls = op.Gather(cls, order)
        score = op.Gather(score, order)
        coords = op.Gather(coords, order)

        # Rank of each detection within its image; keep the first K.
        batch = op.Squeeze(op.Shape(scores, start=0, end=1))
        zero = op.Constant(value_int=0)
        one = op.Constant(value_int=1)
        per_image = op.Cast(op.Equal(op.Unsqueeze(image, [1]), op.Range(zero, batch, one)), to=7)  # [M, B]
        counts = op.ReduceSum(per_image, op.Constant(value_ints=[0]), keepdims=0)  # [B]
        starts = op.Sub(op.CumSum(counts, zero), counts)
        rank = op.Sub(op.Range(zero, op.Squeeze(count), one), op.Gather(starts, image))
        keep = op.Less(rank, k_scalar)
        slot = op.Compress(op.Add(op.Mul(image, k_scalar), rank), keep, axis=0)
        rows = op.Concat(coords, op.Unsqueeze(score, [1]), op.Unsqueeze(op.Cast(cls, to=1), [1]), axis=1)
        rows = op.Compress(rows, keep, axis=0)
        empty = op.ConstantOfShape(
            op.Concat(op.Reshape(op.Mul(batch, k_scalar), [1]), op.Constant(value_ints=[6]), axis=0)
        )
        packed = op.ScatterND(empty, op.Unsqueeze(slot, [1]), rows)
        detections = op.Reshape(packed, op.Concat(op.Reshape(batch, [1]), k, op.Constant(value_ints=[6]), axis=0))
        num_detections = op.Min(counts, k)
        return detections, num_detections

    model = detections_from_scores.to_model_proto()
    # Name the outputs as the contract says.
    renames = {model.graph.output[0].name: OUTPUT_DETECTIONS, model.graph.output[1].name: OUTPUT_NUM_DETECTIONS}
    for node in model.graph.node:
        node.output[:] = [renames.get(name, name) for name in node.output]
    del model.graph.output[:]
    model.graph.output.extend(
        [
            onnx.helper.make_tensor_value_info(OUTPUT_DETECTIONS, onnx.TensorProto.FLOAT, ["B", max_detections, 6]),
            onnx.helper.make_tensor_value_info(OUTPUT_NUM_DETECTIONS, onnx.TensorProto.INT64, ["B"]),
        ]
    )
    return model
