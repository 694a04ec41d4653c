"""The trainer: losses fall, checkpoints resume, fine-tuning loads weights, partial labels train."""

from __future__ import annotations

import csv
import json

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


def test_resume_continues_from_the_checkpoint(tmp_path):
    run = train_tiny(tmp_path / "run", steps=10)
    ckpt = torch.load(run / CHECKPOINT, weights_only=True)
    assert ckpt["step"] == 10
    train_tiny(run, steps=20, resume=True)
    assert torch.load(run / CHECKPOINT, weights_only=True)["step"] == 20
    steps = [int(r["step"]) for r in read_metrics(run)]
    assert steps == sorted(steps) and steps[-1] == 20 and steps.count(10) == 1


def test_fine_tune_starts_from_given_weights(tiny_run, tmp_path):
    run = train_tiny(tmp_path / "ft", steps=5, init=tiny_run / WEIGHTS, extra=["train.lr=1e-9", "train.ema_decay=0.0"])
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["steps"] == 5
    from safetensors.torch import load_file

    before, after = load_file(tiny_run / WEIGHTS), load_file(run / WEIGHTS)
    key = "backbone.conv1.0.weight"
    torch.testing.assert_close(after[key], before[key], atol=1e-4, rtol=1e-3)


def test_samples_with_only_boxes_train_detection_alone(tmp_path):
    run = train_tiny(tmp_path / "boxes", steps=10, dataset_kwargs={"labels": "boxes"})
    rows = read_metrics(run)
    assert all(float(r["seg"]) == 0 and float(r["depth"]) == 0 for r in rows)
    assert float(rows[-1]["det_box"]) > 0
