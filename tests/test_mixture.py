"""Training on a mixture of sources: weights and reproducibility of the draws, per-sample task masks in
mixed batches, labels kept consistent by every augmentation, the configs (old single-dataset form,
``data.sources``, ``data.augment``, the ablation arms), and a few training steps on a mixture. Real
layouts are miniatures written in tmp_path; one smoke test reads ``../shared/realdata`` if present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from perception.classes import IGNORE_INDEX, seg_index
from perception.config import Config, SourceConfig, load_config
from perception.data.loader import TensorDataset, collate
from perception.data.mixture import MixtureDataset, open_training_data
from perception.data.registry import realdata_root
from perception.data.sample import Camera, Sample
from perception.data.transforms import (
    Letterbox,
    PhotometricJitter,
    RandomBlur,
    RandomGamma,
    RandomHorizontalFlip,
    RandomJpeg,
    RandomScaleJitter,
    SensorNoise,
    photometric_steps,
    training_transform,
)
from tests.test_real_adapters import write_camvid, write_kitti_object

REPO = Path(__file__).resolve().parents[1]
ABLATION = sorted((REPO / "configs" / "ablation").glob("*.toml"))
VEHICLE = seg_index("vehicle")
TINY = ["model.input_height=96", "model.input_width=160", "data.workers=0"]
ALL_ON = {"gamma_p": 1.0, "blur_p": 1.0, "sensor_noise_p": 1.0, "jpeg_p": 1.0}


class Tagged:
    """``n`` frames that say which source and frame they are."""

    def __init__(self, name: str, n: int):
        self.name, self.n = name, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return Sample(np.zeros((4, 4, 3), np.uint8), Camera(1, 1, 1.5, 1.5), extras={"source": self.name, "id": i})


def mixed_config(tmp_path: Path, extra: list[str] = ()) -> Config:
    """Synthetic + a CamVid miniature + a KITTI miniature (boxes and LiDAR depth, no semantics)."""
    write_camvid(tmp_path / "camvid")
    write_kitti_object(tmp_path / "kitti")
    sources = [
        {"dataset": "synthetic", "weight": 0.5},
        {"dataset": "camvid", "weight": 0.25, "root": str(tmp_path / "camvid")},
        {"dataset": "kitti", "weight": 0.25, "root": str(tmp_path / "kitti")},
    ]
    return load_config(None, [*TINY, f"data.sources={sources!r}", "data.train_length=64", *extra])


# --- the draws -------------------------------------------------------------------------------------
def test_weights_are_respected_over_many_draws():
    mix = MixtureDataset([Tagged("a", 1000), Tagged("b", 50)], [0.7, 0.3], length=20_000, seed=3)
    share = mix.counts() / len(mix)
    assert share == pytest.approx([0.7, 0.3], abs=0.015)  # binomial σ 0.003
    names = [mix[i].extras["source"] for i in range(2000)]
    assert names.count("a") / 2000 == pytest.approx(0.7, abs=0.05)
    # weights need not sum to 1
    assert MixtureDataset([Tagged("a", 3), Tagged("b", 3)], [7, 3], 20_000).counts()[0] / 20_000 == pytest.approx(
        0.7, abs=0.015
    )


def test_same_seed_same_sequence_other_seed_another():
    def sequence(seed: int) -> list[tuple[str, int]]:
        mix = MixtureDataset([Tagged("a", 100), Tagged("b", 7)], [0.6, 0.4], length=500, seed=seed)
        return [(s.extras["source"], s.extras["id"]) for s in (mix[i] for i in range(500))]

    assert sequence(1) == sequence(1)
    assert sequence(1) != sequence(2)


def test_a_small_source_repeats_its_frames_evenly():
    mix = MixtureDataset([Tagged("synthetic", 10_000), Tagged("kitti", 4)], [0.95, 0.05], length=4000, seed=0)
    frames = [mix[i].extras["id"] for i in range(len(mix)) if mix[i].extras["source"] == "kitti"]
    counts = np.bincount(frames, minlength=4)
    assert len(frames) > 100 and counts.max() - counts.min() <= 1


def test_bad_mixtures_are_refused():
    with pytest.raises(ValueError, match="one weight per source"):
        MixtureDataset([Tagged("a", 1)], [0.5, 0.5], 10)
    with pytest.raises(ValueError, match="> 0"):
        MixtureDataset([Tagged("a", 1), Tagged("b", 1)], [1.0, 0.0], 10)
    with pytest.raises(ValueError, match="no frames"):
        MixtureDataset([Tagged("a", 1), Tagged("b", 0)], [1.0, 1.0], 10)
    with pytest.raises(IndexError):
        MixtureDataset([Tagged("a", 1)], [1.0], 10)[10]


# --- mixed batches ------------------------------------------------------------------------------------
def test_each_sample_carries_its_own_task_masks(tmp_path):
    config = mixed_config(tmp_path)
    source = open_training_data(config)
    assert isinstance(source, MixtureDataset) and len(source) == 64
    dataset = TensorDataset(source, training_transform(config), seed=0)
    by_source = {}
    for i in range(len(source)):
        by_source.setdefault(source[i].extras["source"], i)
        if len(by_source) == 3:
            break
    items = [dataset[i] for i in by_source.values()]
    images, targets = collate(items)
    assert tuple(images.shape) == (3, 3, 96, 160)  # every source leaves the transform at the model's size
    masks = {name: (targets.has_boxes[k].item(), targets.has_semantic[k].item(), targets.has_depth[k].item())
             for k, name in enumerate(by_source)}  # fmt: skip
    assert masks == {
        "synthetic": (True, True, True),
        "camvid": (False, True, False),
        "kitti": (True, False, True),
    }
    k = list(by_source).index("camvid")
    assert len(targets.boxes[k]) == 0 and (targets.depth[k] == 0).all()
    k = list(by_source).index("kitti")
    assert (targets.semantic[k] == IGNORE_INDEX).all() and (targets.depth[k] > 0).any()


def test_a_camvid_sample_adds_no_detection_loss(tmp_path):
    torch = pytest.importorskip("torch")
    from perception.losses import detection_loss, task_losses
    from perception.model.net import MultiTaskNet

    config = mixed_config(tmp_path)
    source = open_training_data(config)
    dataset = TensorDataset(source, training_transform(config), seed=0)
    synthetic = next(i for i in range(len(source)) if source[i].extras["source"] == "synthetic")
    camvid = next(i for i in range(len(source)) if source[i].extras["source"] == "camvid")
    images, targets = collate([dataset[synthetic], dataset[camvid]])
    torch.manual_seed(0)
    net = MultiTaskNet(config.model).eval()
    with torch.no_grad():
        outputs = net(net.normalise(images))
    base = detection_loss(outputs, targets)
    # boxes on the CamVid sample are ignored while it says it has none ...
    targets.boxes[1] = torch.tensor([[10.0, 10.0, 60.0, 50.0]])
    targets.labels[1] = torch.tensor([0])
    ignored = detection_loss(outputs, targets)
    for term in base:
        assert ignored[term].item() == pytest.approx(base[term].item(), rel=1e-6)
    # ... and would count if it had them (so the comparison above can fail)
    targets.has_boxes[1] = True
    counted = detection_loss(outputs, targets)
    assert counted["det_box"].item() != pytest.approx(base["det_box"].item(), rel=1e-3)
    assert all(v.isfinite() for v in task_losses(outputs, targets, config.model.canonical_focal_px).values())


def test_loader_workers_give_the_same_batches(tmp_path):
    from torch.utils.data import DataLoader

    config = mixed_config(tmp_path)
    dataset = TensorDataset(open_training_data(config), training_transform(config), seed=0)

    def batches(workers: int) -> list:
        loader = DataLoader(dataset, batch_size=4, num_workers=workers, collate_fn=collate)
        return [b for _, b in zip(range(2), loader, strict=False)]

    for (images0, targets0), (images1, targets1) in zip(batches(0), batches(1), strict=True):
        assert images0.equal(images1) and targets0.has_boxes.equal(targets1.has_boxes)
        assert targets0.depth.equal(targets1.depth) and targets0.semantic.equal(targets1.semantic)


@pytest.mark.slow
def test_a_mixture_trains_from_its_config(tmp_path):
    pytest.importorskip("torch")
    import csv

    from perception.train import train

    config = mixed_config(tmp_path / "data", ["train.steps=2", "train.batch_size=2", "train.log_every=1"])
    config.data.augment.update(ALL_ON)
    run = train(config, tmp_path / "run")
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    saved = json.loads((run / "config.json").read_text())
    assert [s["dataset"] for s in saved["data"]["sources"]] == ["synthetic", "camvid", "kitti"]
    assert Config.from_dict(saved).data.training_sources()[1].weight == 0.25


# --- augmentation keeps labels consistent ------------------------------------------------------------
def painted(h: int = 90, w: int = 300, box: tuple[int, int, int, int] = (120, 40, 170, 70)) -> Sample:
    """A wide frame (KITTI's shape) with a red rectangle: its box, semantic, instance id, a dense depth
    of 10 m on it and a sparse LiDAR-like depth elsewhere."""
    x1, y1, x2, y2 = box
    image = np.full((h, w, 3), 90, np.uint8)
    image[y1:y2, x1:x2] = (230, 20, 20)
    semantic = np.full((h, w), seg_index("road"), np.uint8)
    semantic[y1:y2, x1:x2] = VEHICLE
    instance = np.zeros((h, w), np.int32)
    instance[y1:y2, x1:x2] = 7
    depth = np.zeros((h, w), np.float32)
    depth[::6, ::5] = 30.0
    depth[y1:y2:3, x1:x2:3] = 10.0  # LiDAR returns on the rectangle
    camera = Camera(fx=200.0, fy=200.0, cx=(w - 1) / 2, cy=(h - 1) / 2)
    return Sample(image, camera, np.array([box], np.float32), np.array([0]), semantic, depth, {"instance": instance})


def _extent(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_the_training_pipeline_moves_every_label_with_the_pixels(seed):
    config = load_config(None, ["model.input_height=96", "model.input_width=160", "data.scale_jitter=[0.8, 1.2]"])
    config.data.augment.update(ALL_ON)
    source = painted()
    out = training_transform(config)(source, np.random.default_rng(seed))
    assert out.size == (96, 160) and out.image.dtype == np.uint8
    vehicle = out.semantic == VEHICLE
    if not len(out.boxes) or not vehicle.any():
        return  # cropped away with its box: nothing to compare
    box = out.boxes[0]
    np.testing.assert_allclose(_extent(vehicle), box, atol=1.0)
    assert np.array_equal(vehicle, out.extras["instance"] == 7)
    # focal length scaled with the resize: the rectangle's width in pixels grew by fx_out / fx_in
    if box[0] > 0 and box[2] < 160:
        assert (box[2] - box[0]) / 50 == pytest.approx(out.camera.fx / source.camera.fx, abs=0.03)
    assert out.camera.fx / source.camera.fx == pytest.approx(out.camera.fy / source.camera.fy, rel=0.03)
    # the sparse returns on the rectangle stay on it: every 10 m return lies inside the box
    ys, xs = np.nonzero(out.depth == 10.0)
    assert len(ys) and (xs >= box[0] - 1).all() and (xs < box[2] + 1).all()
    assert (ys >= box[1] - 1).all() and (ys < box[3] + 1).all()


def test_the_red_rectangle_is_where_its_box_says_after_geometry():
    source = painted()
    for seed in range(4):
        rng = np.random.default_rng(seed)
        out = RandomHorizontalFlip(0.5)(RandomScaleJitter(0.8, 1.25)(Letterbox(96, 160)(source), rng), rng)
        red = (out.image[..., 0] > 160) & (out.image[..., 1] < 80)
        if len(out.boxes) and out.boxes[0][0] > 0 and out.boxes[0][2] < 160:
            np.testing.assert_allclose(_extent(red), out.boxes[0], atol=1.0)
            np.testing.assert_allclose(_extent(out.semantic == VEHICLE), out.boxes[0], atol=1.0)


PHOTOMETRIC = [
    PhotometricJitter(0.3, 0.3, 0.3, 0.05, 4.0),
    RandomGamma(1.0, 0.5, 2.0),
    RandomBlur(1.0, motion=0.0),
    RandomBlur(1.0, motion=1.0),
    SensorNoise(1.0),
    RandomJpeg(1.0, 20, 40),
]


@pytest.mark.parametrize("step", PHOTOMETRIC, ids=lambda s: type(s).__name__)
def test_photometric_steps_touch_only_the_image(step):
    source = painted()
    out = step(source, np.random.default_rng(0))
    assert out.image.shape == source.image.shape and out.image.dtype == np.uint8
    assert not np.array_equal(out.image, source.image)
    assert out.boxes is source.boxes and out.labels is source.labels and out.camera == source.camera
    assert out.semantic is source.semantic and out.depth is source.depth and out.extras is source.extras
    again = step(source, np.random.default_rng(0))
    assert np.array_equal(again.image, out.image)  # deterministic given the generator


@pytest.mark.parametrize("step", PHOTOMETRIC[1:], ids=lambda s: type(s).__name__)
def test_photometric_steps_switch_off(step):
    step = type(step)(**{**vars(step), "p": 0.0})
    source = painted()
    assert step(source, np.random.default_rng(0)) is source


def test_blur_kernels_do_not_shift_the_image():
    source = painted()
    red = source.image[..., 0].astype(np.float64) - source.image[..., 1]
    for motion in (0.0, 1.0):
        for seed in range(3):
            out = RandomBlur(1.0, sigma=(1.5, 1.5), motion=motion, length=(8, 8))(source, np.random.default_rng(seed))
            blurred = out.image[..., 0].astype(np.float64) - out.image[..., 1]
            ys, xs = np.mgrid[: red.shape[0], : red.shape[1]]
            for grid in (xs, ys):
                assert (grid * blurred).sum() / blurred.sum() == pytest.approx((grid * red).sum() / red.sum(), abs=0.05)


def test_jpeg_and_noise_strength_follow_their_settings():
    source = painted()
    low = RandomJpeg(1.0, 5, 5)(source, np.random.default_rng(0)).image.astype(np.float64)
    high = RandomJpeg(1.0, 95, 95)(source, np.random.default_rng(0)).image.astype(np.float64)
    assert np.abs(low - source.image).mean() > np.abs(high - source.image).mean()
    flat = Sample(np.full((64, 64, 3), 200, np.uint8), source.camera)
    quiet = SensorNoise(1.0, read=(1.0, 1.0), shot=(0.0, 0.0))(flat, np.random.default_rng(0)).image
    shot = SensorNoise(1.0, read=(1.0, 1.0), shot=(0.5, 0.5))(flat, np.random.default_rng(0)).image
    assert quiet.std() == pytest.approx(1.0, abs=0.15)
    assert shot.std() == pytest.approx(np.sqrt(1 + 0.5 * 200), rel=0.1)  # photon noise grows with the level


def test_augment_settings_build_the_steps():
    config = Config()
    kinds = [type(t) for t in photometric_steps(config.data.augmentation())]
    assert kinds == [PhotometricJitter]  # the default: the colour jitter every model so far trained with
    config.data.augment.update(ALL_ON)
    kinds = [type(t) for t in training_transform(config).transforms]
    assert kinds == [Letterbox, RandomScaleJitter, RandomHorizontalFlip, RandomBlur, PhotometricJitter, RandomGamma,
                     SensorNoise, RandomJpeg]  # fmt: skip
    config.data.photometric = False
    assert [type(t) for t in training_transform(config).transforms] == [Letterbox, RandomScaleJitter,
                                                                        RandomHorizontalFlip]  # fmt: skip


# --- configs -----------------------------------------------------------------------------------------
def test_old_single_dataset_configs_still_load(tmp_path):
    path = tmp_path / "old.toml"
    path.write_text('[data]\ndataset = "camvid"\nroot = "/data/camvid"\ntrain_split = "val"\n')
    assert load_config(path).data.training_sources() == [SourceConfig("camvid", 1.0, "val", "/data/camvid")]
    # a saved model's config.json from before mixtures: no [data] sources, no [data.augment]
    saved = Config().to_dict()
    del saved["data"]["sources"], saved["data"]["augment"]
    config = Config.from_dict(saved)
    assert config.data.training_sources() == [SourceConfig("synthetic", 1.0, "train", "")]
    kinds = [type(t) for t in training_transform(config).transforms]
    assert kinds == [Letterbox, RandomScaleJitter, RandomHorizontalFlip, PhotometricJitter]


def test_sources_and_augment_round_trip_and_are_checked(tmp_path):
    sources = [{"dataset": "synthetic", "weight": 0.7}, {"dataset": "camvid", "split": "train", "weight": 0.3}]
    config = load_config(None, [f"data.sources={sources!r}", "data.augment.jpeg_p=0.5"])
    assert config.data.training_sources() == [SourceConfig("synthetic", 0.7), SourceConfig("camvid", 0.3, "train", "")]
    assert config.data.augment["jpeg_p"] == 0.5 and config.data.augment["gamma_p"] == 0.0
    again = Config.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.digest() == config.digest()
    with pytest.raises(ValueError, match=r"unknown keys in \[data.sources\]"):
        load_config(None, ["data.sources=[{'dataset': 'camvid', 'weigth': 1}]"])
    with pytest.raises(ValueError, match="weight must be > 0"):
        load_config(None, ["data.sources=[{'dataset': 'camvid', 'weight': 0}]"])
    with pytest.raises(ValueError, match="dataset"):
        load_config(None, ["data.sources=[{'weight': 1.0}]"])
    with pytest.raises(ValueError, match=r"unknown keys in \[data.augment\]"):
        load_config(None, ["data.augment.jpeg=0.5"])
    with pytest.raises(ValueError, match="probability"):
        load_config(None, ["data.augment.blur_p=1.5"])
    with pytest.raises(ValueError, match="jpeg_quality"):
        load_config(None, ["data.augment.jpeg_quality=[90, 30]"])


def test_ablation_arms_differ_only_in_sources_and_augment():
    assert [p.stem for p in ABLATION] == ["1-synthetic", "2-augment", "3-camvid", "4-lidar"]
    configs = [load_config(p) for p in ABLATION]

    def recipe(config: Config) -> dict:
        d = config.to_dict()
        del d["name"], d["data"]["sources"], d["data"]["augment"]
        return d

    assert all(recipe(c) == recipe(configs[0]) for c in configs)
    datasets = [[s.dataset for s in c.data.training_sources()] for c in configs]
    assert datasets == [
        ["synthetic"],
        ["synthetic"],
        ["synthetic", "camvid"],
        ["synthetic", "camvid", "kitti", "nuscenes"],
    ]
    assert configs[0].data.augment == Config().data.augment  # arm 1: the baseline's colour jitter
    assert all(c.data.augment == configs[1].data.augment != configs[0].data.augment for c in configs[2:])
    # arm 3 is the backbone A/B's winning arm: one run serves both tables
    a_b = load_config(REPO / "configs" / "backbone" / "lite0-imagenet.toml").to_dict()
    arm_3 = configs[2].to_dict()
    del a_b["name"], arm_3["name"]
    assert arm_3 == a_b


# --- the real frames beside the repository (skipped without them) -----------------------------------------
@pytest.mark.skipif(not realdata_root().is_dir(), reason=f"no real data at {realdata_root()}")
def test_real_mixture_smoke():
    config = load_config(REPO / "configs" / "ablation" / "4-lidar.toml", ["data.train_length=400"])
    source = open_training_data(config)
    transform = training_transform(config)
    seen = {}
    for k, spec in enumerate(config.data.training_sources()):
        i = int(np.flatnonzero(source.source_of == k)[0])
        sample = source[i]
        assert sample.extras["source"] == spec.dataset
        size = (config.model.input_height, config.model.input_width)
        assert transform(sample, np.random.default_rng(i)).size == size
        seen[spec.dataset] = sample
    for name in ("kitti", "nuscenes"):  # LiDAR returns survive the letterbox (not thinned by sampling)
        sample = seen[name]
        before, after = (sample.depth > 0).sum(), (Letterbox(384, 640)(sample).depth > 0).sum()
        assert after > 0.9 * before, (name, before, after)


@pytest.mark.slow
def test_torchrun_trains_a_mixture_whose_batches_lack_a_task(tmp_path):
    """Two processes on CamVid (no boxes, no depth) and KITTI (no semantics): a rank's share of a batch
    often lacks a task's labels, so that head is unused on that rank (DDP must expect it)."""
    import os
    import subprocess
    import sys

    torch = pytest.importorskip("torch")
    write_camvid(tmp_path / "camvid")
    write_kitti_object(tmp_path / "kitti")
    sources = [
        {"dataset": "camvid", "weight": 0.5, "root": str(tmp_path / "camvid")},
        {"dataset": "kitti", "weight": 0.5, "root": str(tmp_path / "kitti")},
    ]
    overrides = [*TINY, f"data.sources={sources!r}", "data.train_length=32", "train.steps=4", "train.batch_size=4",
                 "train.log_every=1", "train.warmup_steps=2"]  # fmt: skip
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "perception.train", str(tmp_path / "none.toml"), "--out", str(tmp_path / "run"),
               *[arg for o in overrides for arg in ("--set", o)]]  # fmt: skip
    (tmp_path / "none.toml").write_text("")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"] == 4
