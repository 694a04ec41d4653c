"""Real-data evaluation: each data set's protocol (CamVid's scored classes and merges, the minimum box
height of KITTI and nuScenes, median-scaled depth, LiDAR returns scored at the source resolution), the
trainer's periodic held-out evaluation, and ``perception eval`` on the bundled model and real frames."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest

from perception.classes import IGNORE_INDEX, det_index, seg_index
from perception.contract import Letterbox as LetterboxGeometry
from perception.contract import resolve_model_path  # the resolver the service picks its model with
from perception.data import taxonomy
from perception.data.registry import realdata_root
from perception.data.sample import Camera, Sample
from perception.data.transforms import Letterbox
from perception.evaluate import PROTOCOLS, Evaluator, evaluate, letterboxed
from perception.evaluate.periodic import parse_eval_sets
from tests.conftest import BUNDLED_MODEL, train_tiny

CAMVID_SCORED = ("road", "sidewalk", "building", "vegetation", "sky", "pole_sign", "vehicle", "person")


def camvid_ids(*names: str) -> np.ndarray:
    return np.array([taxonomy.CAMVID_CLASSES.index(n) for n in names], np.uint8)


def test_camvid_protocol_folds_markings_and_terrain_ignores_fence_and_scores_eight_classes():
    # one row of CamVid annotation ids, mapped by the adapter's own taxonomy
    annotation = camvid_ids("Road", "Road", "Tree", "Fence", "Bicyclist", "void", "Pavement", "Building", "Sky",
                            "Pole", "SignSymbol", "Car", "Pedestrian")[None]  # fmt: skip
    semantic = taxonomy.camvid_semantic(annotation)
    assert (semantic[0, 3:6] == IGNORE_INDEX).all(), "Fence, Bicyclist and void are ignored by the adapter"
    names = ("lane_marking", "road", "terrain", "vehicle", "vehicle", "vehicle", "sidewalk", "building", "sky",
             "pole_sign", "pole_sign", "vehicle", "person")  # fmt: skip
    pred = np.array([[seg_index(n) for n in names]], np.uint8)
    sample = Sample(np.zeros((1, 13, 3), np.uint8), Camera(10, 10, 6, 0), semantic=semantic)

    evaluator = Evaluator(PROTOCOLS["camvid"])
    evaluator.add(sample, {"semantic": pred})
    result = evaluator.summary()["segmentation"]
    assert tuple(result["per_class_IoU"]) == CAMVID_SCORED
    assert result["per_class_IoU"]["road"] == 1.0, "a lane_marking predicted on Road counts as road"
    assert result["per_class_IoU"]["vegetation"] == 1.0, "terrain predicted on Tree counts as vegetation"
    assert result["mIoU"] == 1.0, "the vehicle predictions on Fence/Bicyclist/void pixels are ignored"

    # the same prediction under the synthetic protocol: no merges, all ten classes
    plain = Evaluator()
    plain.add(sample, {"semantic": pred})
    unmerged = plain.summary()["segmentation"]
    assert unmerged["per_class_IoU"]["road"] == 0.5 and len(unmerged["per_class_IoU"]) == 10


def test_camvid_miou_is_the_mean_over_exactly_the_eight_classes():
    rng = np.random.default_rng(0)
    semantic = np.array([seg_index(n) for n in CAMVID_SCORED], np.uint8).repeat(50)[None]
    pred = np.where(rng.random(semantic.shape) < 0.7, semantic, rng.integers(0, 10, semantic.shape)).astype(np.uint8)
    evaluator = Evaluator(PROTOCOLS["camvid"])
    evaluator.add(Sample(np.zeros((*semantic.shape, 3), np.uint8), Camera(1, 1, 0, 0), semantic=semantic),
                  {"semantic": pred})  # fmt: skip
    result = evaluator.summary()["segmentation"]
    ious = list(result["per_class_IoU"].values())
    assert len(ious) == 8 and result["mIoU"] == pytest.approx(np.mean(ious))
    assert 0.3 < result["mIoU"] < 0.9


def detections(*rows: tuple[float, float, float, float, float, int]) -> dict[str, np.ndarray]:
    dets = np.zeros((100, 6), np.float32)
    dets[: len(rows)] = rows
    return {"detections": dets, "num_detections": np.array(len(rows))}


def box_sample() -> Sample:
    """A 10 px tall car (under KITTI's and nuScenes' 16 px) and a 40 px tall one."""
    boxes = np.array([[20, 20, 40, 30], [100, 50, 160, 90]], np.float32)
    labels = np.array([det_index("car")] * 2)
    return Sample(np.zeros((200, 300, 3), np.uint8), Camera(100, 100, 150, 100), boxes=boxes, labels=labels)


@pytest.mark.parametrize("dataset", ["kitti", "nuscenes"])
def test_boxes_under_the_minimum_height_are_ignore_regions(dataset):
    protocol = PROTOCOLS[dataset]
    # found, with the small box's detection ranked first: were it a false positive, AP@.5 would be 0.5
    found = Evaluator(protocol)
    found.add(box_sample(), detections((20, 20, 40, 30, 0.9, 0), (100, 50, 160, 90, 0.5, 0)))
    result = found.summary()["detection"]
    assert result["mAP50"] == pytest.approx(1.0) and result["per_class_AP50"]["car"] == pytest.approx(1.0)
    assert (result["boxes_scored"], result["boxes_ignored"]) == (1, 1)
    # missed: not a false negative under the protocol, one under the synthetic one
    missed = Evaluator(protocol)
    missed.add(box_sample(), detections((100, 50, 160, 90, 0.5, 0)))
    assert missed.summary()["detection"]["mAP50"] == pytest.approx(1.0)
    plain = Evaluator()
    plain.add(box_sample(), detections((100, 50, 160, 90, 0.5, 0)))
    assert plain.summary()["detection"]["mAP50"] == pytest.approx(0.5, abs=0.01)


def test_median_scaling_forgives_a_constant_factor_and_depth_keeps_to_its_range():
    gt = np.zeros((20, 30), np.float32)
    gt[::2, ::3] = np.linspace(2.0, 70.0, gt[::2, ::3].size).reshape(gt[::2, ::3].shape)
    gt[1, 1], gt[3, 1] = 95.0, 0.5  # outside KITTI's 1-80 m: not scored
    evaluator = Evaluator(PROTOCOLS["kitti"])
    evaluator.add(Sample(np.zeros((20, 30, 3), np.uint8), Camera(10, 10, 15, 10), depth=gt), {"depth": 2.5 * gt})
    depth = evaluator.summary()["depth"]
    assert depth["AbsRel"] == pytest.approx(1.5)
    assert depth["AbsRel_median_scaled"] == pytest.approx(0.0, abs=1e-6)
    assert depth["pixels"] == gt[::2, ::3].size


def lidar_frame(height: int = 375, width: int = 1242) -> Sample:
    """A KITTI-sized frame with sparse returns: 64 'beams' of points every 2 px, some pairs 1 px apart
    (which share a pixel at 640 px across), depths 2-78 m."""
    rng = np.random.default_rng(1)
    depth = np.zeros((height, width), np.float32)
    rows = np.linspace(150, 370, 64).astype(int)
    for r in rows:
        depth[r, ::2] = rng.uniform(2, 78, depth[r, ::2].shape)
        depth[r, 1::40] = rng.uniform(2, 78, depth[r, 1::40].shape)
    return Sample(np.zeros((height, width, 3), np.uint8), Camera(721.5377, 721.5377, 609.6, 172.9), depth=depth)


def test_lidar_depth_is_scored_at_the_source_resolution_every_return_once():
    """Evaluation at source resolution: each return compared once at its own pixel, none merged or lost
    (``protocols``' docstring says why), with the focal length the service would pass."""
    frame = lidar_frame()
    sample = letterboxed(frame, 384, 640, at_source=True)
    seen_focal = []

    def predict(images: np.ndarray, focal: np.ndarray) -> dict[str, np.ndarray]:
        seen_focal.extend(focal.tolist())
        return {"depth": np.full((len(images), 384, 640), 10.0, np.float32)}

    depth = evaluate(predict, [sample], protocol=PROTOCOLS["kitti"])["depth"]
    returns = frame.depth[frame.depth > 0]
    assert depth["pixels"] == returns.size
    assert depth["AbsRel"] == pytest.approx(np.mean(np.abs(returns - 10.0) / returns), rel=1e-5)
    assert seen_focal == [pytest.approx(721.5377 * LetterboxGeometry.fit(1242, 375, 640, 384).scale)]


def test_the_training_letterbox_scatters_sparse_depth_without_losing_returns():
    """The letterbox at model resolution (training targets, ``transforms.scatter_depth``): every return
    with a model pixel of its own survives with its value; where two share one the nearest is kept."""
    frame = lidar_frame()
    out = Letterbox(384, 640)(frame).depth
    spaced = frame.depth.copy()
    spaced[:, 1::40] = 0  # without the 1-px neighbours no two returns share a model pixel
    kept = Letterbox(384, 640)(Sample(frame.image, frame.camera, depth=spaced)).depth
    assert np.count_nonzero(kept) == np.count_nonzero(spaced)
    assert sorted(kept[kept > 0]) == pytest.approx(sorted(spaced[spaced > 0]))
    # with them, some share a model pixel with a neighbour (one value kept), and none is lost otherwise
    assert np.count_nonzero(spaced) <= np.count_nonzero(out) < np.count_nonzero(frame.depth)


def test_eval_every_is_a_config_key_again_and_eval_sets_are_checked():
    from perception.config import load_config

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_config(None, ["train.eval_every=100"]).train.eval_every == 100
    with pytest.warns(UserWarning, match="val_split"):
        load_config(None, ["data.val_split='val'"])
    sets = parse_eval_sets([{"dataset": "camvid", "count": 8}, {"dataset": "synthetic", "split": "val"}])
    assert [s.name for s in sets] == ["camvid_val", "synthetic_val"] and sets[0].count == 8
    with pytest.raises(ValueError, match="splt"):
        parse_eval_sets([{"dataset": "camvid", "splt": "val"}])


@pytest.mark.slow
def test_periodic_evaluation_writes_its_columns_and_skips_absent_data_with_one_warning(tmp_path):
    pytest.importorskip("torch", reason="training needs the train extra")
    sets = "[{'dataset': 'synthetic', 'split': 'val', 'count': 2}, {'dataset': 'camvid', 'root': '/nonexistent'}]"
    with pytest.warns(UserWarning) as caught:
        out = train_tiny(tmp_path / "run", steps=4, extra=["train.eval_every=2", f"train.eval_sets={sets}"])
    skipped = [w for w in caught if "skips camvid_val" in str(w.message)]
    assert len(skipped) == 1, [str(w.message) for w in caught]
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    columns = ["eval/synthetic_val/mAP50", "eval/synthetic_val/mIoU", "eval/synthetic_val/AbsRel", "eval/seconds"]
    assert set(columns) <= set(rows[0]) and not any(k.startswith("eval/camvid") for k in rows[0])
    evaluated = {int(r["step"]): r for r in rows if r["eval/synthetic_val/mIoU"]}
    assert sorted(evaluated) == [2, 4]
    assert all(0 <= float(evaluated[s][c]) <= 1 for s in (2, 4) for c in columns[:2])
    assert float(evaluated[4]["eval/synthetic_val/AbsRel"]) > 0
    assert (out / "training_curves.png").stat().st_size > 1000  # the plot copes with the rows without eval

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("eval/synthetic_val/mIoU")] == [2, 4]


needs_realdata = pytest.mark.skipif(
    not (realdata_root() / "camvid").is_dir(),
    reason=f"no real CamVid frames at {realdata_root() / 'camvid'} (set PERCEPTION_REALDATA)",
)


@needs_realdata
def test_perception_eval_scores_the_bundled_model_on_camvid_onnx_and_weights_alike(tmp_path, capsys):
    from perception.cli import main

    model = resolve_model_path(BUNDLED_MODEL)
    results = {}
    for name, path in (("onnx", model), ("weights", model.with_name("model.safetensors"))):
        assert main(["eval", str(path), "--dataset", "camvid", "--count", "4", "--out", str(tmp_path / name)]) == 0
        results[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    printed = capsys.readouterr().out
    assert "### camvid val: 4 frames" in printed and "lane_marking -> road" in printed
    onnx, weights = results["onnx"], results["weights"]
    assert onnx["frames"] == 4 and onnx["data"] == {"dataset": "camvid", "split": "val", "resolution": [384, 640],
                                                    "protocol": "camvid"}  # fmt: skip
    assert tuple(onnx["segmentation"]["per_class_IoU"]) == CAMVID_SCORED
    assert set(onnx) == {"frames", "segmentation", "data"}, "CamVid scores segmentation only"
    assert onnx["segmentation"]["mIoU"] == pytest.approx(weights["segmentation"]["mIoU"], abs=0.01)
    assert "| segmentation | per_class_IoU: road |" in (tmp_path / "onnx" / "metrics.md").read_text()
