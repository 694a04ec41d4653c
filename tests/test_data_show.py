"""``perception data show`` draws a readable PNG of a sample."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from perception.classes import SEGMENTATION_PALETTE, seg_index
from perception.cli import main
from perception.data.sample import Camera, Sample
from perception.data.show import render_sample


def write_tiny_cityscapes(root: Path) -> None:
    """One 96x48 Cityscapes frame with labels, one car instance and disparity."""
    h, w, frame = 48, 96, "ulm_000000_000019"
    labels = np.full((h, w), 23, np.uint8)  # sky
    labels[24:] = 7  # road
    labels[20:34, 30:60] = 26  # car
    instances = labels.astype(np.uint16)
    instances[20:34, 30:60] = 26000
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    files = {
        Path(f"leftImg8bit/val/ulm/{frame}_leftImg8bit.png"): image,
        Path(f"gtFine/val/ulm/{frame}_gtFine_labelIds.png"): labels,
        Path(f"gtFine/val/ulm/{frame}_gtFine_instanceIds.png"): instances,
        Path(f"disparity/val/ulm/{frame}_disparity.png"): np.tile(
            np.linspace(200, 8000, h, dtype=np.uint16)[:, None], (1, w)
        ),
    }
    for rel, array in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), array)
    camera = root / f"camera/val/ulm/{frame}_camera.json"
    camera.parent.mkdir(parents=True)
    camera.write_text(
        json.dumps({"extrinsic": {"baseline": 0.2}, "intrinsic": {"fx": 80, "fy": 80, "u0": 48, "v0": 24}})
    )


def test_data_show_writes_a_png(tmp_path, capsys):
    write_tiny_cityscapes(tmp_path / "cs")
    out = tmp_path / "shown" / "sample.png"
    assert main(["data", "show", "--dataset", "cityscapes", "--root", str(tmp_path / "cs"), "--split", "val",
                 "--out", str(out)]) == 0  # fmt: skip
    assert "wrote" in capsys.readouterr().out
    png = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert png.shape == (48, 96 * 3, 3)
    semantic_panel = png[:, 96:192]
    road = np.array(SEGMENTATION_PALETTE[seg_index("road")])
    assert (np.abs(semantic_panel[40:, :].astype(int) - road).sum(-1) == 0).mean() > 0.9
    depth_panel = png[30:, 192:]
    assert depth_panel.std() > 10  # a colour ramp, not a blank panel


def test_data_show_rejects_a_bad_index(tmp_path):
    write_tiny_cityscapes(tmp_path / "cs")
    with pytest.raises(SystemExit):
        main(["data", "show", "--dataset", "cityscapes", "--root", str(tmp_path / "cs"), "--split", "val",
              "--index", "5", "--out", str(tmp_path / "x.png")])  # fmt: skip


def test_render_sample_handles_missing_targets_and_large_images():
    image = np.zeros((600, 2000, 3), np.uint8)
    boxes = np.array([[100, 100, 400, 300]], np.float32)
    sample = Sample(image, Camera(1000, 1000, 1000, 300), boxes, np.array([0]), None, None, {"source": "t"})
    canvas = render_sample(sample, max_panel_width=500)
    assert canvas.shape == (150, 1500, 3)
    assert canvas[:, :500].max() > 0  # box and caption drawn


def test_data_show_synthetic(tmp_path):
    synthetic = pytest.importorskip("perception.data.synthetic")
    if not hasattr(synthetic, "SyntheticDataset"):
        pytest.skip("SyntheticDataset not available yet")
    out = tmp_path / "synthetic.png"
    assert main(["data", "show", "--dataset", "synthetic", "--out", str(out)]) == 0
    png = cv2.imread(str(out))
    assert png is not None and png.shape == (384, 3 * 640, 3) and png.std() > 10
