"""The backbone A/B (docs/backbones.md "The A/B"): its arms are one recipe with different backbones."""

from __future__ import annotations

from pathlib import Path

from perception.config import Config, load_config

ARMS = sorted((Path(__file__).parent.parent / "configs" / "backbone").glob("*.toml"))


def test_the_arms_differ_only_in_the_backbone_and_its_start():
    assert [p.stem for p in ARMS] == ["lite0-imagenet", "lite0-scratch", "lite1-imagenet", "resnet18d-scratch"]
    configs = {p.stem: load_config(p) for p in ARMS}

    def recipe(config: Config) -> dict:
        d = config.to_dict()
        for key in ("backbone", "backbone_kwargs", "pretrained"):
            del d["model"][key]
        del d["name"]
        return d

    first = recipe(configs["resnet18d-scratch"])
    assert all(recipe(c) == first for c in configs.values())
    starts = {name: (c.model.backbone, c.model.pretrained) for name, c in configs.items()}
    assert starts == {
        "lite0-imagenet": ("efficientnet_lite0", "imagenet"),
        "lite0-scratch": ("efficientnet_lite0", ""),
        "lite1-imagenet": ("efficientnet_lite1", "imagenet"),
        "resnet18d-scratch": ("resnet18d", ""),
    }
    # the real frames the arms are judged on beyond CamVid val stay out of training
    sources = configs["lite0-imagenet"].data.training_sources()
    assert [(s.dataset, s.split) for s in sources if s.dataset != "synthetic"] == [("camvid", "train")]
