"""The trainer: losses fall, checkpoints resume, fine-tuning loads weights, partial labels train."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from perception.train import CHECKPOINT, WEIGHTS
from tests.conftest import train_tiny


def read_metrics(run) -> list[dict]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_losses_fall_and_run_folder_is_complete(tiny_run):
    rows = read_metrics(tiny_run)
    for term in ("loss", "det_cls", "det_box", "seg", "depth"):  # means of 3 logged batches: less noise
        first = sum(float(r[term]) for r in rows[:3]) / 3
        last = sum(float(r[term]) for r in rows[-3:]) / 3
        assert last < first, f"{term}: {first:.3f} → {last:.3f}"
    assert float(rows[-1]["loss"]) < 0.6 * float(rows[0]["loss"])
    for name in (CHECKPOINT, WEIGHTS, "config.json", "training_curves.png"):
        assert (tiny_run / name).exists(), name
    assert list((tiny_run / "tensorboard").glob("events.*"))


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint(tmp_path):
    run = train_tiny(tmp_path / "run", steps=10)
    ckpt = torch.load(run / CHECKPOINT, weights_only=True)
    assert ckpt["step"] == 10
    train_tiny(run, steps=20, resume=True)
    assert torch.load(run / CHECKPOINT, weights_only=True)["step"] == 20
    steps = [int(r["step"]) for r in read_metrics(run)]
    assert steps == sorted(steps) and steps[-1] == 20 and steps.count(10) == 1


@pytest.mark.slow
def test_fine_tune_starts_from_given_weights(tiny_run, tmp_path):
    run = train_tiny(tmp_path / "ft", steps=5, init=tiny_run / WEIGHTS, extra=["train.lr=1e-9", "train.ema_decay=0.0"])
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["steps"] == 5
    from safetensors.torch import load_file

    before, after = load_file(tiny_run / WEIGHTS), load_file(run / WEIGHTS)
    key = "backbone.conv1.0.weight"
    torch.testing.assert_close(after[key], before[key], atol=1e-4, rtol=1e-3)


@pytest.mark.slow
def test_samples_with_only_boxes_train_detection_alone(tmp_path):
    run = train_tiny(tmp_path / "boxes", steps=10, dataset_kwargs={"labels": "boxes"})
    rows = read_metrics(run)
    assert all(float(r["seg"]) == 0 and float(r["depth"]) == 0 for r in rows)
    assert float(rows[-1]["det_box"]) > 0


@pytest.mark.slow
def test_a_stride_4_detection_level_fine_tunes_from_a_model_without_it(tiny_run, tmp_path):
    """A model trained without the stride-4 level fine-tunes into one with it: every tensor it had
    loads unchanged, only the new level's head starts fresh, and it trains."""
    from safetensors.torch import load_file

    run = train_tiny(tmp_path / "p2", steps=5, init=tiny_run / WEIGHTS,
                     extra=["model.det_strides=[8, 16, 32, 4]", "train.lr=1e-9", "train.ema_decay=0.0"])  # fmt: skip
    before, after = load_file(tiny_run / WEIGHTS), load_file(run / WEIGHTS)
    new = set(after) - set(before)
    assert new and all(".3." in name and name.startswith("detection.") for name in new)
    key = "detection.cls_preds.0.weight"  # the stride-8 level keeps its trained weights
    torch.testing.assert_close(after[key], before[key], atol=1e-4, rtol=1e-3)
    assert all(float(r["det_box"]) > 0 for r in read_metrics(run))


def test_a_tiny_box_centred_between_grid_points_still_gets_a_candidate():
    """A 4-px box whose centre lies midway between two stride-8 points (its edge on the grid's
    pixel) is assigned points on that level rather than none."""
    from perception.model.assign import task_aligned_assign
    from perception.model.box_coding import grid_points

    points = grid_points(4, 4, 8, torch.device("cpu"))  # centres at 4, 12, 20, 28
    strides = torch.full((16,), 8.0)
    gt = torch.tensor([[14.0, 14.0, 18.0, 18.0]])  # centre (16, 16): 4 px from four points
    boxes = torch.tensor([[13.0, 13.0, 19.0, 19.0]]).expand(16, 4)  # every point predicts a box overlapping it
    assigned, _, weights = task_aligned_assign(torch.full((16, 7), 0.5), boxes, points, strides, gt, torch.tensor([0]))
    assert int((assigned == 0).sum()) == 4 and bool((weights[assigned == 0] > 0).all())


def test_retired_config_keys_load_and_unknown_keys_fail():
    """Saved models' configs carry keys nothing reads any more: they load, and a config that sets one
    is warned; a misspelt key is an error."""
    import pytest

    from perception.config import Config, load_config

    config = Config.from_dict({"train": {"eval_every": 2000, "steps": 7}, "data": {"val_split": "val"}})
    assert config.train.steps == 7 and config.train.eval_every == 2000  # eval_every is read again
    with pytest.warns(UserWarning, match="val_split"):
        load_config(None, ["data.val_split=val"])
    with pytest.raises(ValueError, match="stepz"):
        Config.from_dict({"train": {"stepz": 7}})


def test_set_overrides_read_like_the_config_files():
    """``--set train.amp=false`` switches bf16 off (it once became the truthy text "false"); numbers, lists
    and inline tables read as TOML, Python literals still work, and a bare word stays text."""
    from perception.config import load_config

    config = load_config(None, ["train.amp=false", "train.lr=2e-3", "model.det_strides=[8, 16]",
                                "model.backbone=efficientnet_lite0", "train.ema_decay=0.99",
                                "model.backbone_kwargs={ stem_width = 16 }",
                                "data.sources=[{'dataset': 'camvid', 'weight': 1.0}]"])  # fmt: skip
    assert config.train.amp is False and config.train.lr == 2e-3 and config.model.det_strides == [8, 16]
    assert config.model.backbone == "efficientnet_lite0" and config.model.backbone_kwargs == {"stem_width": 16}
    assert [(s["dataset"], s["weight"]) for s in config.data.sources] == [("camvid", 1.0)]
    assert load_config(None, ["train.amp=False"]).train.amp is False


def stamp_draw(sample, rng):
    """A transform whose output shows its random draw: a copy with the image filled with one drawn value."""
    return replace(sample, image=np.full_like(sample.image, rng.integers(256)))


@pytest.mark.parametrize("workers", [0, 1])
def test_every_epoch_draws_new_augmentations(workers):
    """The transform's draws are seeded by (seed, epoch, index): a second pass over the data must see
    the epoch change, also in data-loader worker processes, or every epoch repeats the first's."""
    from perception.config import Config
    from perception.data.loader import TensorDataset
    from perception.data.sample import Camera, Sample
    from perception.train import infinite, training_loader

    camera = Camera(fx=50.0, fy=50.0, cx=8.0, cy=8.0, height_m=1.5)
    source = [Sample(np.zeros((16, 16, 3), np.uint8), camera, semantic=np.zeros((16, 16), np.uint8))] * 8
    dataset = TensorDataset(source, stamp_draw, seed=0)
    config = Config()
    config.train.batch_size, config.data.workers = 8, workers
    batches = infinite(training_loader(dataset, config, rank=0, world=1, step=0), dataset)
    epochs = [sorted(next(batches)[0][:, 0, 0, 0].tolist()) for _ in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]
    # a run resumed at step 2 (one batch per epoch here) goes on with the third epoch's draws
    resumed = infinite(training_loader(dataset, config, rank=0, world=1, step=2), dataset, first_epoch=2)
    assert sorted(next(resumed)[0][:, 0, 0, 0].tolist()) == epochs[2]
