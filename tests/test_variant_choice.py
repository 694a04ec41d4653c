"""Which precision variant the service serves from a model folder, and why: chosen for the provider,
refused by tolerance, missing, unmeasured, forced, an explicit file; and the same choice at start-up,
on a roll-out request, from the folder watcher and after a provider fallback.

The choice itself is tested on folders of placeholder files (it reads only the layout and
variants.json); the service end to end on the tiny model, whose variants are copies of it marked with
their variant in the metadata (what is served is the point here, not how fast it is)."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from perception.contract import MODEL_FILE, ModelError, sha256
from service import rollout
from service.app import create_app
from service.settings import Settings
from service.variants import REPORT_FILE, Tolerance, choose

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
WITHIN = {"mAP50": -0.0015, "mIoU": -0.0, "AbsRel": 0.0016}  # the bundled model's int8, as measured


def version_folder(root: Path, variants: tuple[str, ...] = ("fp16", "int8"), change: dict | None = None) -> Path:
    """A version folder of placeholder files, with ``variants.json`` recording ``change`` per variant
    (no file when ``change`` is None)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / MODEL_FILE).write_bytes(b"fp32")
    for variant in variants:
        (root / variant).mkdir()
        (root / variant / MODEL_FILE).write_bytes(variant.encode())
    if change is not None:
        (root / REPORT_FILE).write_text(json.dumps({"accuracy_change": {"fp32": {}, **change}}))
    return root


def pick(named: Path, provider: str = CPU, setting: str = "auto", tolerance: str = "0.01"):
    return choose(named, provider, setting, Tolerance.parse(tolerance))


# ------------------------------------------------------------------------------------------ the choice


def test_each_provider_gets_its_variant_when_measured_within_tolerance(tmp_path):
    folder = version_folder(tmp_path / "3", change={"int8": WITHIN, "fp16": {"mAP50": -0.0001, "AbsRel": -0.0}})
    cpu = pick(folder, CPU)
    assert (cpu.path, cpu.variant) == (folder / "int8" / MODEL_FILE, "int8")
    assert cpu.reason == "CPU provider, deltas within tolerance (mAP50 -0.0015, mIoU -0.0000, AbsRel +0.0016)"
    for gpu in (CUDA, TRT):
        assert pick(folder, gpu).path == folder / "fp16" / MODEL_FILE
    other = pick(folder, "OpenVINOExecutionProvider")
    assert (other.path, other.variant) == (folder / MODEL_FILE, "fp32")
    assert "no reduced-precision variant suits the OpenVINO provider" in other.reason


def test_a_models_folder_serves_the_newest_versions_variant(tmp_path):
    version_folder(tmp_path / "drivenet" / "2", change={"int8": WITHIN})
    newest = version_folder(tmp_path / "drivenet" / "10", change={"int8": WITHIN})
    assert pick(tmp_path / "drivenet").path == newest / "int8" / MODEL_FILE


@pytest.mark.parametrize(
    ("change", "tolerance", "reason"),
    [
        ({"mAP50": -0.03, "mIoU": 0.0, "AbsRel": 0.0}, "0.01", "int8 mAP50 drop 0.03 > 0.01"),
        ({"mAP50": 0.0, "mIoU": -0.011, "AbsRel": 0.0}, "0.01", "int8 mIoU drop 0.011 > 0.01"),
        ({"mAP50": 0.0, "mIoU": 0.0, "AbsRel": 0.02}, "0.01", "int8 AbsRel rise 0.02 > 0.01"),
        ({"mAP50": -0.03, "AbsRel": 0.0}, "0.05,mAP50=0.02", "int8 mAP50 drop 0.03 > 0.02"),
        ({"mAP50": 0.0, "AbsRel": 0.0016}, "0.05,AbsRel=0.001", "int8 AbsRel rise 0.0016 > 0.001"),
    ],
)
def test_a_variant_measured_beyond_the_tolerance_is_refused(tmp_path, change, tolerance, reason):
    folder = version_folder(tmp_path / "1", change={"int8": change})
    refused = pick(folder, tolerance=tolerance)
    assert (refused.path, refused.variant, refused.reason) == (folder / MODEL_FILE, "fp32", reason)


def test_only_losses_count_against_a_variant(tmp_path):
    """A higher mAP50 or mIoU, or a lower AbsRel, is no reason to refuse; nor is a metric without a known
    direction."""
    change = {"mAP50": 0.05, "mIoU": 0.02, "AbsRel": -0.03, "made_up": -1.0}
    folder = version_folder(tmp_path / "1", change={"int8": change})
    assert pick(folder).variant == "int8"
    assert pick(folder, tolerance="0").variant == "int8"
    assert pick(version_folder(tmp_path / "2", change={"int8": {"mAP50": -0.0001}}), tolerance="0").variant == "fp32"


def test_a_missing_or_unmeasured_variant_serves_fp32(tmp_path):
    without = version_folder(tmp_path / "1", variants=("fp16",), change={"fp16": {}})
    choice = pick(without)
    assert (choice.path, choice.reason) == (without / MODEL_FILE, f"no int8 variant in {without}")
    unmeasured = version_folder(tmp_path / "2", change=None)
    choice = pick(unmeasured)
    assert choice.path == unmeasured / MODEL_FILE
    assert choice.reason == f"int8 has no recorded accuracy ({unmeasured / REPORT_FILE})"
    other = version_folder(tmp_path / "3", change={"fp16": {"mAP50": 0.0}})  # measured, but not int8
    assert "int8 has no recorded accuracy" in pick(other).reason


def test_a_forced_variant_is_served_whatever_its_accuracy_and_must_exist(tmp_path):
    folder = version_folder(tmp_path / "1", variants=("int8",), change={"int8": {"mAP50": -0.5}})
    forced = pick(folder, CPU, "int8")
    assert (forced.path, forced.variant, forced.reason) == (folder / "int8" / MODEL_FILE, "int8",
                                                            "forced by PERCEPTION_VARIANT=int8")  # fmt: skip
    assert pick(folder, CPU, "fp32").path == folder / MODEL_FILE
    with pytest.raises(ModelError, match=r"PERCEPTION_VARIANT=fp16, but .* has no fp16 variant"):
        pick(folder, CUDA, "fp16")


def test_an_explicit_file_or_variant_folder_is_served_as_named(tmp_path):
    folder = version_folder(tmp_path / "1", change={"int8": WITHIN})
    for setting in ("auto", "int8"):
        explicit = pick(folder / MODEL_FILE, CPU, setting)
        assert (explicit.path, explicit.variant) == (folder / MODEL_FILE, None)
        assert explicit.reason.startswith("the file named")
    assert "applies to version folders" in pick(folder / MODEL_FILE, CPU, "int8").reason
    fp16 = pick(folder / "fp16", CPU)
    assert (fp16.path, fp16.variant, fp16.reason) == (folder / "fp16" / MODEL_FILE, "fp16", "the fp16 folder named")


def test_nothing_to_serve_or_an_unreadable_report_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match=r"no model\.onnx"):
        pick(tmp_path / "empty")
    folder = version_folder(tmp_path / "1")
    (folder / REPORT_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="cannot be read"):
        pick(folder)
    (folder / REPORT_FILE).write_text(json.dumps({"accuracy_change": {"int8": {"mAP50": "bad"}}}))
    with pytest.raises(ModelError, match="not a table of numbers"):
        pick(folder)


def test_the_tolerance_setting_is_checked_when_read():
    assert Tolerance.parse("0.02") == Tolerance(0.02, {})
    assert Tolerance.parse("mAP50=0.02, AbsRel=0.005") == Tolerance(0.01, {"mAP50": 0.02, "AbsRel": 0.005})
    for bad in ("lots", "mAP51=0.1", "-0.1"):
        with pytest.raises(ValueError):
            Settings(variant_max_delta=bad)


# ------------------------------------------------------------------------------------------ the service


def marked_copy(src: Path, dst: Path, variant: str | None = None, version: str | None = None) -> Path:
    """A copy of the model file at ``src`` as ``dst`` (with its checksum), its metadata saying ``variant``
    and ``version`` where given."""
    onnx = pytest.importorskip("onnx", reason="the tiny model's variants are written with onnx")
    model = onnx.load(src)
    props = {p.key: p.value for p in model.metadata_props}
    props |= {k: v for k, v in (("variant", variant), ("version", version)) if v is not None}
    onnx.helper.set_model_props(model, props)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, dst)
    dst.with_name(dst.name + ".sha256").write_text(f"{sha256(dst)}  {dst.name}\n")
    return dst


def tiny_version(tiny_model: Path, root: Path, version: str, change: dict | None, variants=("fp16", "int8")) -> Path:
    """``root/<version>/`` holding the tiny model as fp32 and as each variant, with ``change`` recorded."""
    folder = root / version
    marked_copy(tiny_model / "1" / MODEL_FILE, folder / MODEL_FILE, version=version)
    for variant in variants:
        marked_copy(folder / MODEL_FILE, folder / variant / MODEL_FILE, variant=variant)
    if change is not None:
        (folder / REPORT_FILE).write_text(json.dumps({"accuracy_change": change}))
    return folder


def served(client: TestClient) -> tuple[dict, str]:
    """/v1/models and the model-info line of /metrics."""
    info = client.get("/v1/models").json()
    (line,) = [x for x in client.get("/metrics").text.splitlines() if x.startswith("perception_model_info{")]
    return info, line


def test_the_service_serves_reports_and_rolls_out_the_chosen_variant(tiny_model, tmp_path, caplog, frames):
    root = tmp_path / "tiny"
    tiny_version(tiny_model, root, "1", {"int8": WITHIN})
    caplog.set_level(logging.INFO, logger="service")
    app = create_app(Settings(model=root, admin_key="admin"))
    with TestClient(app) as client:
        info, line = served(client)
        assert (info["path"], info["variant"], info["provider"]) == ("1/int8/model.onnx", "int8", CPU)
        assert info["variant_reason"] == "int8: CPU provider, deltas within tolerance (mAP50 -0.0015, mIoU -0.0000, " \
                                         "AbsRel +0.0016)"  # fmt: skip
        assert 'path="1/int8/model.onnx"' in line and 'variant="int8"' in line and "deltas within tolerance" in line
        assert f"serving drivenet 1 ({root / '1' / 'int8' / MODEL_FILE}) on {CPU}, int8: CPU provider" in caplog.text
        ok = client.post("/v1/perceive", content=frames[0].read_bytes(), headers={"Content-Type": "image/jpeg"})
        assert ok.status_code == 200, ok.text

        # A roll-out request for a version folder applies the same choice: version 2's int8 lost too much.
        tiny_version(tiny_model, root, "2", {"int8": {"mAP50": -0.03, "mIoU": 0.0, "AbsRel": 0.0}})
        admin = {"Authorization": "Bearer admin"}
        r = client.post("/v1/models/load", json={"path": "2"}, headers=admin)
        assert r.status_code == 200, r.text
        assert (r.json()["path"], r.json()["variant"]) == ("2/model.onnx", "fp32")
        assert r.json()["variant_reason"] == "fp32: int8 mAP50 drop 0.03 > 0.01"
        info, line = served(client)
        assert info["version"] == "2" and 'reason="fp32: int8 mAP50 drop 0.03 > 0.01"' in line
        # A file named is served as it is.
        r = client.post("/v1/models/load", json={"path": "2/int8/model.onnx"}, headers=admin)
        assert (r.json()["path"], r.json()["variant"], r.json()["variant_reason"]) == (
            "2/int8/model.onnx", "int8", "int8: the file named")  # fmt: skip


def test_forced_and_explicit_settings_at_start_up(tiny_model, tmp_path):
    root = tmp_path / "tiny"
    folder = tiny_version(tiny_model, root, "1", {"int8": WITHIN, "fp16": {"mAP50": -0.2}})
    for settings, expected in (
        (Settings(model=root, variant="fp16"), ("1/fp16/model.onnx", "fp16", "forced by PERCEPTION_VARIANT=fp16")),
        (Settings(model=root, variant="fp32"), ("1/model.onnx", "fp32", "forced by PERCEPTION_VARIANT=fp32")),
        (Settings(model=folder / MODEL_FILE), ("1/model.onnx", "fp32", "the file named")),
        (Settings(model=root, variant_max_delta="0.05,AbsRel=0.001"),
         ("1/model.onnx", "fp32", "int8 AbsRel rise 0.0016 > 0.001")),
    ):  # fmt: skip
        with TestClient(create_app(settings)) as client:
            info, _ = served(client)
            assert (info["path"], info["variant"], info["variant_reason"]) == (*expected[:2], ": ".join(expected[1:]))
    shutil.rmtree(folder / "fp16")
    with (
        pytest.raises(ModelError, match="no fp16 variant"),
        TestClient(create_app(Settings(model=root, variant="fp16"))),
    ):
        pass  # fmt: skip


def test_the_variant_follows_the_provider_actually_in_use(tiny_model, tmp_path, monkeypatch, caplog):
    """Planned for CUDA (FP16), the session came up on the CPU: the CPU's variant is loaded instead."""
    root = tmp_path / "tiny"
    tiny_version(tiny_model, root, "1", {"int8": WITHIN, "fp16": WITHIN})
    monkeypatch.setattr(rollout, "choose_providers", lambda setting: [CUDA, CPU])
    with TestClient(create_app(Settings(model=root))) as client:
        info, _ = served(client)
    assert (info["provider"], info["path"], info["variant"]) == (CPU, "1/int8/model.onnx", "int8")
    assert f"came up on {CPU}, not {CUDA}" in caplog.text


def test_the_folder_watcher_rolls_out_the_chosen_variant(tiny_model, tmp_path):
    root = tmp_path / "tiny"
    tiny_version(tiny_model, root, "1", {"int8": WITHIN})
    settings = Settings(model=root, watch_model=True, watch_interval_s=0.1)
    with TestClient(create_app(settings)) as client:
        assert served(client)[0]["path"] == "1/int8/model.onnx"
        staging = tmp_path / "staging"
        tiny_version(tiny_model, staging, "2", {"int8": WITHIN})
        (staging / "2").rename(root / "2")  # as operations.md says: copy aside, rename into place
        end = time.monotonic() + 20
        while served(client)[0]["version"] != "2" and time.monotonic() < end:
            time.sleep(0.1)
        info, _ = served(client)
        assert (info["version"], info["path"], info["variant"]) == ("2", "2/int8/model.onnx", "int8")
        time.sleep(0.5)  # several more polls: the variant it serves is what it would choose, so no reload
        text = client.get("/metrics").text
        assert 'perception_model_rollouts_total{result="switched"} 2.0' in text
