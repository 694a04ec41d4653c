"""The network: shapes, the FLOP budget, single-task configurations, metric depth scaling."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from perception.classes import DETECTION_CLASSES, SEGMENTATION_CLASSES
from perception.config import ModelConfig, load_config
from perception.model.net import MultiTaskNet


def test_default_network_fits_the_flop_budget_at_640x384():
    net = MultiTaskNet(ModelConfig()).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = net(torch.zeros(1, 3, 384, 640))
    gflops = counter.get_total_flops() / 1e9
    assert gflops <= 10.0, f"{gflops:.2f} GFLOPs"
    anchors = (384 // 8) * (640 // 8) + (384 // 16) * (640 // 16) + (384 // 32) * (640 // 32)
    assert out["det_logits"].shape == (1, anchors, len(DETECTION_CLASSES))
    assert out["seg_logits"].shape == (1, len(SEGMENTATION_CLASSES), 384, 640)  # full input resolution
    assert out["log_depth"].shape == (1, 1, 384, 640)


def test_single_task_config_builds_only_that_head():
    config = load_config(None, ["model.tasks=['segmentation']", "model.input_height=64", "model.input_width=96"])
    net = MultiTaskNet(config.model).eval()
    assert not hasattr(net, "detection") and not hasattr(net, "depth")
    out = net(torch.zeros(1, 3, 64, 96))
    assert set(out) == {"seg_logits"}


def test_depth_scales_with_focal_length():
    """The same pixels seen through a longer lens are farther away: depth ∝ focal length."""
    net = MultiTaskNet(ModelConfig(tasks=["depth"])).eval()
    images = torch.randint(0, 255, (1, 3, 64, 96), dtype=torch.uint8).repeat(2, 1, 1, 1)
    depth = net.predict(images, torch.tensor([500.0, 1000.0]))["depth"]
    torch.testing.assert_close(depth[1], 2 * depth[0])


def test_backbone_weights_load_from_a_local_file(tmp_path):
    from safetensors.torch import save_file

    donor = MultiTaskNet(ModelConfig(tasks=["depth"]))
    save_file({k: v.contiguous() for k, v in donor.backbone.state_dict().items()}, tmp_path / "backbone.safetensors")
    net = MultiTaskNet(ModelConfig(tasks=["depth"], pretrained=str(tmp_path / "backbone.safetensors")))
    for key, value in donor.backbone.state_dict().items():
        torch.testing.assert_close(net.backbone.state_dict()[key], value)


def test_a_stride_4_detection_level_reads_the_dense_decoder():
    """``4`` listed last in ``model.det_strides`` adds a level for the smallest boxes on the dense
    decoder's stride-4 features; a detection-only model builds that decoder without its predictions."""
    config = load_config(None, ["model.det_strides=[8, 16, 32, 4]", "model.input_height=96", "model.input_width=160"])
    out = MultiTaskNet(config.model).eval()(torch.zeros(1, 3, 96, 160))
    assert int((out["det_strides"] == 4).sum()) == (96 // 4) * (160 // 4)
    assert out["det_strides"][-1] == 4 and out["seg_logits"].shape[-2:] == (96, 160)

    detection_only = MultiTaskNet(ModelConfig(tasks=["detection"], det_strides=[8, 16, 32, 4])).eval()
    assert len(detection_only.dense.preds) == 0
    detection_keys = {"det_logits", "det_distances", "det_points", "det_strides"}
    assert set(detection_only(torch.zeros(1, 3, 96, 160))) == detection_keys
    with pytest.raises(ValueError, match="last"):
        MultiTaskNet(ModelConfig(det_strides=[4, 8, 16, 32]))
