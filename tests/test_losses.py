"""The segmentation loss's hard-pixel share: a few badly predicted pixels of a thin class weigh in
full instead of being averaged away by the road and sky, and unlabelled pixels never count."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from perception.classes import IGNORE_INDEX, SEGMENTATION_CLASSES, seg_index  # noqa: E402
from perception.config import load_config  # noqa: E402
from perception.data.loader import Targets  # noqa: E402
from perception.losses import segmentation_loss  # noqa: E402

ROAD, POLE = seg_index("road"), seg_index("pole_sign")


def road_with_a_pole(miss: float = 8.0) -> tuple[dict, Targets]:
    """One 20x20 frame: road everywhere, a 1-pixel-wide pole of 20 pixels in column 10. The logits
    say road with margin 8 everywhere, so the pole's pixels are wrong by ``miss``."""
    labels = torch.full((1, 20, 20), ROAD)
    labels[0, :, 10] = POLE
    logits = torch.zeros(1, len(SEGMENTATION_CLASSES), 20, 20)
    logits[0, ROAD] = miss
    targets = Targets(
        boxes=[torch.zeros(0, 4)], labels=[torch.zeros(0, dtype=torch.long)], has_boxes=torch.tensor([False]),
        semantic=labels, has_semantic=torch.tensor([True]), depth=torch.zeros(1, 20, 20),
        has_depth=torch.tensor([False]), focal_px=torch.tensor([100.0]),
    )  # fmt: skip
    return {"seg_logits": logits}, targets


def test_the_hardest_pixels_carry_the_loss():
    outputs, targets = road_with_a_pole()
    per_pixel = torch.nn.functional.cross_entropy(outputs["seg_logits"], targets.semantic, reduction="none")[0]
    pole_loss = per_pixel[:, 10].mean().item()
    plain = segmentation_loss(outputs, targets).item()
    hard = segmentation_loss(outputs, targets, hard_pixels=0.05).item()  # 20 of 400 pixels: the pole
    assert plain == pytest.approx(per_pixel.mean().item(), rel=1e-5)
    assert plain < pole_loss / 10  # the pole is averaged away ...
    assert hard == pytest.approx(pole_loss, rel=1e-5)  # ... or carries the loss in full
    assert segmentation_loss(outputs, targets, hard_pixels=1.0).item() == pytest.approx(plain, rel=1e-6)


def test_unlabelled_pixels_are_never_mined():
    outputs, targets = road_with_a_pole()
    outputs["seg_logits"][0, ROAD, :, :5] = -8.0  # badly wrong, but unlabelled
    targets.semantic[0, :, :5] = IGNORE_INDEX
    per_pixel = torch.nn.functional.cross_entropy(outputs["seg_logits"], targets.semantic, reduction="none",
                                                  ignore_index=IGNORE_INDEX)[0]  # fmt: skip
    assert segmentation_loss(outputs, targets, hard_pixels=20 / 300).item() == pytest.approx(
        per_pixel[:, 10].mean().item(), rel=1e-5
    )
    targets.semantic[:] = IGNORE_INDEX
    assert segmentation_loss(outputs, targets, hard_pixels=0.2).item() == 0.0


def test_the_share_is_checked(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[train]\nseg_hard_pixels = 0.2\n")
    assert load_config(config).train.seg_hard_pixels == 0.2
    for bad in ("0.0", "1.5"):
        config.write_text(f"[train]\nseg_hard_pixels = {bad}\n")
        with pytest.raises(ValueError, match="seg_hard_pixels"):
            load_config(config)
