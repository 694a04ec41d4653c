"""The neck: torchvision's feature pyramid over the backbone's stride-8, 16 and 32 features."""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor
from torchvision.ops import FeaturePyramidNetwork


class FeaturePyramid(FeaturePyramidNetwork):
    """``FeaturePyramidNetwork`` (same parameters, same state-dict names) taking and returning plain
    lists: backbone features finest first → one ``out_channels`` level per input, same strides."""

    def forward(self, features: list[Tensor]) -> list[Tensor]:  # type: ignore[override]
        return list(super().forward(OrderedDict((str(i), f) for i, f in enumerate(features))).values())
