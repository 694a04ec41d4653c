"""The recall-by-height table of benchmarks/box_sizes.py counts a box as found only when it should."""

import importlib.util
from pathlib import Path

import numpy as np

spec = importlib.util.spec_from_file_location("box_sizes", Path(__file__).parents[1] / "benchmarks" / "box_sizes.py")
box_sizes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(box_sizes)


def test_a_box_is_found_by_one_confident_same_class_overlapping_detection():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [60, 60, 70, 70]], np.float32)
    labels = np.array([0, 1, 2, 3])
    det = np.array(
        [
            [0, 0, 10, 11, 0.9, 0],  # found: IoU 0.91, same class
            [20, 20, 30, 30, 0.9, 2],  # wrong class
            [40, 40, 50, 50, 0.1, 2],  # below the service's default score
            [60, 60, 70, 90, 0.9, 3],  # IoU 1/3
            [0, 0, 10, 10, 0.8, 0],  # a duplicate of the first box: counts once
        ],
        np.float32,
    )
    assert box_sizes.found(gt, labels, det).tolist() == [True, False, False, False]
    assert box_sizes.found(gt, labels, det[:0]).tolist() == [False] * 4


def test_looser_bars_find_the_loosely_placed_and_the_unsure_boxes():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    labels = np.array([0, 1])
    det = np.array([[0, 0, 10, 30, 0.9, 0], [20, 20, 30, 30, 0.1, 1]], np.float32)  # IoU 1/3; score 0.1
    assert box_sizes.found(gt, labels, det).tolist() == [False, False]
    assert box_sizes.found(gt, labels, det, iou_min=0.3).tolist() == [True, False]
    assert box_sizes.found(gt, labels, det, score=0.05).tolist() == [False, True]
