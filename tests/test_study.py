"""The study: runs every configuration with the same budget and reports Δm against single-task."""

from __future__ import annotations

import json

import pytest

from perception.cli import main
from perception.config import load_config
from perception.study import delta_m, run_configs
from perception.weighting import build_weighting
from tests.conftest import REPO


def test_delta_m_is_sign_corrected_mean_relative_change():
    single = {"detection.mAP50": 0.5, "segmentation.mIoU": 0.8, "depth.AbsRel": 0.10}
    better = {"detection.mAP50": 0.55, "segmentation.mIoU": 0.8, "depth.AbsRel": 0.09}
    assert delta_m(better, single) == pytest.approx(100 * (0.1 + 0.0 + 0.1) / 3)
    assert delta_m(single, single) == 0.0


def test_runs_share_budget_and_seeds_and_dwa_windows_fit_the_budget():
    base = load_config(REPO / "configs" / "study.toml")
    runs = run_configs(base, ["fixed", "dwa"], [0, 1])
    assert sorted(runs) == sorted([f"single_{t}_s{s}" for t in ("detection", "segmentation", "depth") for s in (0, 1)]
                                  + [f"multi_{m}_s{s}" for m in ("fixed", "dwa") for s in (0, 1)])  # fmt: skip
    assert {c.train.steps for c in runs.values()} == {base.train.steps}
    assert runs["multi_dwa_s1"].train.seed == 1 and runs["single_depth_s1"].model.tasks == ["depth"]
    # DWA re-weights once per window after two windows: with its default 200-step window a 400-step
    # study would never leave the fixed weights
    window = build_weighting("dwa", ["detection"], {}, **runs["multi_dwa_s0"].train.weighting_kwargs).window
    assert window * 3 <= base.train.steps


@pytest.mark.slow
def test_tiny_study_writes_table_and_plot(tmp_path):
    out = tmp_path / "study"
    overrides = ["model.input_height=96", "model.input_width=160", "train.steps=3", "train.batch_size=2",
                 "train.warmup_steps=1", "train.log_every=1", "data.workers=0", "data.train_length=16"]  # fmt: skip
    args = ["study", str(REPO / "configs" / "study.toml"), "--out", str(out), "--methods", "famo", "--seeds", "0",
            "--eval-count", "4", "--latency-size", "160x96", "--card", str(tmp_path / "card.md"),
            *[a for o in overrides for a in ("--set", o)]]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "study.json").read_text())
    assert set(report["rows"]) == {"single-task (3 networks)", "famo"}
    assert all(len(row["delta_m"]) == 1 for row in report["rows"].values())
    table = (out / "study.md").read_text()
    assert "Δm" in table and "--set train.steps=3" in table  # the exact command, overrides included
    latency = report["latency"]  # one multi-task pass against three single-task ones, at the asked size
    assert latency["input"] == "160x96" and set(latency["each_ms"]) == {
        "multi-task",
        "detection",
        "segmentation",
        "depth",
    }
    assert 0 < latency["ratio"] < 1
    assert (out / "study.png").stat().st_size > 1000
    card = (tmp_path / "card.md").read_text()
    assert card.count("<!-- study:begin -->") == 1 and "Δm" in card and "3 steps × batch 2 at 160×96" in card
    # Running it again resumes: finished runs are read back, not retrained.
    stamp = (out / "multi_famo_s0" / "result.json").stat().st_mtime
    assert main(args) == 0
    assert (out / "multi_famo_s0" / "result.json").stat().st_mtime == stamp
