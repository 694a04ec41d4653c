"""Evaluation: the metrics are right on known answers, and an exported model scores like its weights."""

from __future__ import annotations

import numpy as np
import pytest

from perception.classes import IGNORE_INDEX, seg_index
from perception.data.sample import Camera, Sample
from perception.evaluate import Evaluator, evaluate, markdown_table, onnx_predictor, torch_predictor
from tests.conftest import BlocksWorld


def perfect_outputs(sample: Sample) -> dict[str, np.ndarray]:
    dets = np.zeros((100, 6), np.float32)
    n = len(sample.boxes)
    dets[:n, :4], dets[:n, 4], dets[:n, 5] = sample.boxes, 0.9, sample.labels
    return {"detections": dets, "num_detections": np.array(n), "semantic": sample.semantic.copy(),
            "depth": sample.depth.copy()}  # fmt: skip


def test_perfect_predictions_score_perfectly():
    evaluator = Evaluator()
    world = BlocksWorld(length=5)
    for i in range(5):
        evaluator.add(world[i], perfect_outputs(world[i]))
    result = evaluator.summary()
    assert result["detection"]["mAP"] == pytest.approx(1.0, abs=1e-6)
    assert result["detection"]["AR100"] == pytest.approx(1.0, abs=1e-6)  # every box found
    assert "| detection | AR100 | 1.0000 |" in markdown_table(result)
    assert result["segmentation"]["mIoU"] == pytest.approx(1.0)
    assert result["depth"]["AbsRel"] == pytest.approx(0.0, abs=1e-6)
    assert result["depth"]["delta1"] == pytest.approx(1.0)


def test_metrics_match_hand_computed_values():
    h, w = 4, 4
    semantic = np.array([[0] * 4, [0] * 4, [1] * 4, [IGNORE_INDEX] * 4], np.uint8)
    pred = np.array([[0] * 4, [1] * 4, [1] * 4, [0] * 4], np.uint8)
    depth = np.full((h, w), 10.0, np.float32)
    sample = Sample(np.zeros((h, w, 3), np.uint8), Camera(10, 10, 2, 2), semantic=semantic, depth=depth)
    evaluator = Evaluator()
    evaluator.add(sample, {"semantic": pred, "depth": np.full((h, w), 12.0, np.float32)})
    result = evaluator.summary()
    # class 0: 4 correct of 8 labelled, union 8 → IoU 0.5; class 1: 4 of 8 → 0.5
    assert result["segmentation"]["per_class_IoU"]["road"] == pytest.approx(0.5)
    assert result["segmentation"]["mIoU"] == pytest.approx(0.5)
    confusion = result["segmentation"]["confusion"]  # where each labelled class's pixels went
    assert set(confusion) == {"road", "lane_marking"}  # only the classes the labels hold
    assert confusion["road"]["road"] == confusion["road"]["lane_marking"] == pytest.approx(0.5)
    assert confusion["lane_marking"]["lane_marking"] == 1.0 and sum(confusion["lane_marking"].values()) == 1.0
    assert "| road | 0.50 | 0.50 | 0.00 |" in markdown_table(result)
    assert result["depth"]["AbsRel"] == pytest.approx(0.2)
    assert result["depth"]["RMSE"] == pytest.approx(2.0)
    assert result["depth"]["delta1"] == pytest.approx(1.0)  # 12/10 < 1.25


def test_depth_scale_is_reported_by_predicted_class():
    """Where a model gets the road's depth right and the buildings' twice too far, the report says so."""
    h, w = 8, 8
    truth = np.linspace(5.0, 40.0, h * w, dtype=np.float32).reshape(h, w)
    predicted = np.full((h, w), seg_index("road"), np.uint8)
    predicted[:3] = seg_index("building")
    depth = np.where(predicted == seg_index("building"), truth * 2.0, truth * 1.1).astype(np.float32)
    sample = Sample(np.zeros((h, w, 3), np.uint8), Camera(10, 10, 4, 4), depth=truth)
    evaluator = Evaluator()
    for _ in range(3):  # 24 building pixels a frame: reported once there are 100
        evaluator.add(sample, {"semantic": predicted, "depth": depth})
    assert evaluator.summary()["depth"]["scale_by_predicted_class"] == {"road": pytest.approx(1 / 1.1, rel=0.01)}
    for _ in range(2):
        evaluator.add(sample, {"semantic": predicted, "depth": depth})
    scales = evaluator.summary()["depth"]["scale_by_predicted_class"]
    assert scales == {"road": pytest.approx(1 / 1.1, rel=0.01), "building": pytest.approx(0.5, rel=0.01)}
    table = markdown_table(evaluator.summary())
    assert "| depth | scale_by_predicted_class: building | 0.4" in table  # 0.499: medians to 1 %


def test_exported_model_scores_like_its_weights(tiny_model, tiny_run):
    world = BlocksWorld(length=12)
    samples = [world[i] for i in range(12)]
    from_onnx = evaluate(onnx_predictor(tiny_model / "1" / "model.onnx")[0], samples)
    from_torch = evaluate(torch_predictor(tiny_run / "model.safetensors")[0], samples)
    assert from_onnx["detection"]["mAP50"] == pytest.approx(from_torch["detection"]["mAP50"], abs=0.01)
    assert from_onnx["segmentation"]["mIoU"] == pytest.approx(from_torch["segmentation"]["mIoU"], abs=0.005)
    assert from_onnx["depth"]["AbsRel"] == pytest.approx(from_torch["depth"]["AbsRel"], rel=0.01)
    assert from_onnx["segmentation"]["mIoU"] > 0.3, "the tiny model learnt its toy world"


def test_ap50_by_size_shows_which_boxes_are_missed():
    """A model that finds the large box but not the distant one: AP@.5 1 for large, 0 for small."""
    h, w = 200, 200
    boxes = np.array([[10, 10, 18, 18], [50, 50, 150, 150]], np.float32)  # 8x8 px (small) and 100x100 (large)
    sample = Sample(np.zeros((h, w, 3), np.uint8), Camera(100, 100, 100, 100), boxes=boxes, labels=np.array([0, 0]))
    dets = np.zeros((100, 6), np.float32)
    dets[0] = [50, 50, 150, 150, 0.9, 0]
    evaluator = Evaluator()
    evaluator.add(sample, {"detections": dets, "num_detections": np.array(1)})
    result = evaluator.summary()["detection"]
    assert result["AP50_large"] == pytest.approx(1.0)
    assert result["AP50_small"] == pytest.approx(0.0)
    assert result["AP50_medium"] is None  # no medium boxes in this split
    assert 0.4 < result["mAP50"] < 0.6  # one of two found, at the top of the ranking
