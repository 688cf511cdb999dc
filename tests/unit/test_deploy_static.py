"""Static checks of the deployment artefacts: Dockerfiles, docker-compose.yml, k8s, CI workflow.

There is no Docker engine or cluster here, so each artefact is checked by the official linter
or schema (hadolint, the compose-spec and GitHub-workflow JSON schemas via check-jsonschema,
kubernetes-validate) plus the project rules below, and every ``vigil`` command the artefacts
run is parsed by the real CLI.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from deploy_support import ROOT, dockerfile_instructions, run, tool
from vigil.cli import app
from vigil.config import load_settings

DOCKER_DIR = ROOT / "deploy" / "docker"
K8S_DIR = ROOT / "deploy" / "k8s"
COMPOSE_FILE = ROOT / "docker-compose.yml"
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
DOCKERFILES = sorted(DOCKER_DIR.glob("Dockerfile.*"))
K8S_FILES = sorted(K8S_DIR.glob("*.yaml"))
SECRET_SCRIPT = K8S_DIR / "create-secret.sh"
# ${NAME:-default} and ${NAME} as docker compose interpolates them with an empty environment.
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def k8s_documents() -> list[dict[str, Any]]:
    return [doc for path in K8S_FILES for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}"
    return matches[0]


def final_stage(path: Path) -> list[tuple[str, str]]:
    instructions = dockerfile_instructions(path)
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


# --- Dockerfiles --------------------------------------------------------------------------


def test_there_is_one_dockerfile_per_image() -> None:
    assert [p.name for p in DOCKERFILES] == [
        "Dockerfile.api",
        "Dockerfile.predict",
        "Dockerfile.torchserve",
        "Dockerfile.train",
        "Dockerfile.ui",
        "Dockerfile.worker",
    ]


def test_every_image_installs_from_the_lock_file() -> None:
    for dockerfile in DOCKERFILES:
        runs = [a for k, a in dockerfile_instructions(dockerfile) if k == "RUN" and "pip " in a]
        installs = [part for a in runs for part in a.split("&&") if "pip install" in part]
        for install in installs:
            pins_torch = "torch==2.13.0" in install and "/whl/cpu" in install
            assert "-c requirements.lock" in install or pins_torch, (dockerfile.name, install)


def test_the_batch_scoring_image_runs_python_m_vigil_predict() -> None:
    final = final_stage(DOCKER_DIR / "Dockerfile.predict")
    (entrypoint,) = [json.loads(a) for k, a in final if k == "ENTRYPOINT"]
    assert entrypoint == ["python", "-m", "vigil.predict"]
    runs = " ".join(a for k, a in dockerfile_instructions(DOCKER_DIR / "Dockerfile.predict"))
    assert "torch" not in runs and '".[' not in runs  # the core dependencies only


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    result = run(tool("hadolint"), "--failure-threshold", "info", str(dockerfile))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_are_slim_non_root_and_healthchecked(dockerfile: Path) -> None:
    instructions = dockerfile_instructions(dockerfile)
    bases = [args.split()[0] for keyword, args in instructions if keyword == "FROM"]
    assert set(bases) == {"python:3.11-slim"}, bases
    final = final_stage(dockerfile)
    users = [args for keyword, args in final if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, (
        "final stage must not run as root"
    )
    assert any(keyword == "HEALTHCHECK" for keyword, _ in final)
    assert any(keyword in {"CMD", "ENTRYPOINT"} for keyword, _ in final)


def test_serving_images_install_only_the_serve_extra_and_no_torch() -> None:
    for name in ("Dockerfile.api", "Dockerfile.worker"):
        runs = [
            args for keyword, args in dockerfile_instructions(DOCKER_DIR / name) if keyword == "RUN"
        ]
        installs = [args for args in runs if "pip install" in args]
        assert len(installs) == 1 and installs[0].endswith('".[serve]"'), (name, installs)
        assert not any("torch" in args for args in runs), name


def test_training_image_pins_cpu_torch_from_the_pytorch_cpu_index() -> None:
    runs = " ".join(
        a for k, a in dockerfile_instructions(DOCKER_DIR / "Dockerfile.train") if k == "RUN"
    )
    assert re.search(r"pip install .*torch==2\.13\.0\s+--index-url\s+\S+/whl/cpu", runs), runs


def test_the_build_context_keeps_data_and_secrets_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "data", "models", "mlruns", "runs", ".env"} <= ignored
    assert not {"src", "configs", "pyproject.toml", "README.md"} & ignored


# --- docker-compose.yml -------------------------------------------------------------------


def test_compose_file_matches_the_compose_spec_schema() -> None:
    result = run(
        tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_has_the_whole_stack_and_its_references_resolve() -> None:
    spec = compose()
    services = spec["services"]
    assert {
        "postgres", "redis", "rabbitmq", "api", "worker", "prometheus", "grafana", "mlflow",
    } <= set(services)  # fmt: skip
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert set(depends) <= set(services), f"{name} depends on an unknown service"
        if "build" in service:
            assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).exists()
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in spec["volumes"], f"{name} uses undeclared volume {source}"
        assert "image" in service or "build" in service, name


def redis_server_options(command: list[str]) -> str:
    """The redis-server command line of a node (compose runs it through ``sh -c``)."""
    return " ".join(command)


def test_compose_runs_the_online_state_as_a_replicated_cluster_with_aof() -> None:
    """Six nodes (3 masters + 3 replicas), AOF everysec each on its own volume, formed once."""
    services = compose()["services"]
    nodes = {
        name: service
        for name, service in services.items()
        if "--cluster-enabled yes" in redis_server_options(service.get("command", []))
    }
    assert len(nodes) == 6 and "redis" in nodes
    volumes = set()
    for name, node in nodes.items():
        options = redis_server_options(node["command"])
        assert "--appendonly yes" in options and "--appendfsync everysec" in options, name
        assert "--cluster-node-timeout" in options, name
        (volume,) = node["volumes"]
        assert volume.endswith(":/data")
        volumes.add(volume.split(":")[0])
        assert node["healthcheck"]["test"][-1] == "ping"
    assert len(volumes) == 6, "every node keeps its own data"
    create = redis_server_options(services["redis-cluster"]["command"])
    assert "--cluster create" in create
    assert "--cluster-replicas 1" in create
    assert all(name in create.split("for node in ")[1].split(";")[0] for name in nodes)
    assert set(services["redis-cluster"]["depends_on"]) == set(nodes)
    for name in ("api", "worker"):
        condition = services[name]["depends_on"]["redis-cluster"]["condition"]
        assert condition == "service_completed_successfully"


def test_every_built_image_has_one_build_definition() -> None:
    builds: dict[str, list[str]] = {}
    for name, service in compose()["services"].items():
        if "build" in service:
            builds.setdefault(service["image"], []).append(name)
    images = {s.get("image") for s in compose()["services"].values()}
    vigil_images = {i for i in images if i and i.startswith("vigil-")}
    assert vigil_images == set(builds), "a vigil-* image is used but never built"


def test_torchserve_runs_behind_its_profile_on_a_run_s_archive() -> None:
    service = compose()["services"]["torchserve"]
    assert service["profiles"] == ["torchserve"]
    assert service["build"]["dockerfile"] == "deploy/docker/Dockerfile.torchserve"
    assert "model" in service["build"]["additional_contexts"]
    assert service["ports"] == ["127.0.0.1:8080:8080"]


def _interpolate(value: str) -> str:
    return INTERPOLATION.sub(lambda m: m.group("default") or "", value)


def test_compose_vigil_environment_is_valid_configuration() -> None:
    api_env = {
        k: _interpolate(str(v)) for k, v in compose()["services"]["api"]["environment"].items()
    }
    settings = load_settings(ROOT / "configs" / "vigil.yaml", environ=api_env)
    assert settings.storage.database_url.startswith("postgresql+psycopg://vigil:")
    assert settings.storage.database_url.endswith("@postgres:5432/vigil")
    assert settings.storage.state_url == "redis+cluster://redis:6379"
    assert settings.broker.url == "amqp://vigil:vigil@rabbitmq:5672/"
    for name in ("worker", "migrate"):
        assert (
            compose()["services"][name]["environment"]
            == compose()["services"]["api"]["environment"]
        )


def test_prometheus_scrapes_compose_services_on_the_ports_they_serve() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    services = compose()["services"]
    targets = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert targets["vigil-api"] == "api:8000"
    assert targets["vigil-worker"] == "worker:9100"
    worker_command = services["worker"]["command"]
    assert worker_command[worker_command.index("--metrics-port") + 1] == "9100"
    assert "EXPOSE 9100" in (DOCKER_DIR / "Dockerfile.worker").read_text()
    assert "127.0.0.1:8000:8000" in services["api"]["ports"]  # not on every interface
    alertmanager = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanager == ["alertmanager:9093"] and "alertmanager" in services


def test_grafana_mounts_what_its_provider_reads() -> None:
    provider_file = ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "vigil.yml"
    provider = yaml.safe_load(provider_file.read_text())["providers"][0]
    mounts = dict(m.split(":")[:2] for m in compose()["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"


# --- Kubernetes ---------------------------------------------------------------------------


def test_kubernetes_manifests_validate_strictly() -> None:
    result = run(tool("kubernetes-validate"), "--strict", "--quiet", *map(str, K8S_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


REDIS_CLUSTER_FILE = K8S_DIR / "redis" / "redis-cluster.yaml"


def test_in_cluster_redis_is_replicated_persistent_and_valid() -> None:
    """deploy/k8s/redis: 6 pods, AOF everysec on a volume each, formed with one replica each."""
    result = run(tool("kubernetes-validate"), "--strict", "--quiet", str(REDIS_CLUSTER_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(
        REDIS_CLUSTER_FILE.read_text()) if d}  # fmt: skip
    conf = docs["ConfigMap", "redis-cluster-config"]["data"]["redis.conf"].splitlines()
    assert {"cluster-enabled yes", "appendonly yes", "appendfsync everysec"} <= set(conf)
    stateful = docs["StatefulSet", "redis-cluster"]["spec"]
    assert stateful["replicas"] == 6
    assert stateful["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    (container,) = stateful["template"]["spec"]["containers"]
    assert {"mountPath": "/data", "name": "data"} in container["volumeMounts"]
    job = docs["Job", "redis-cluster-create"]["spec"]["template"]["spec"]["containers"][0]
    assert "--cluster-replicas 1" in job["command"][-1] and "0 1 2 3 4 5" in job["command"][-1]
    assert docs["PodDisruptionBudget", "redis-cluster"]["spec"]["maxUnavailable"] == 1
    seed = docs["Service", "redis-cluster"]["spec"]["selector"]
    assert seed == stateful["selector"]["matchLabels"]


def test_api_rolls_out_without_downtime_and_scales() -> None:
    deployment = k8s_object("Deployment", "vigil-api")
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] != "/health", "liveness must not need DB"
    hpa = k8s_object("HorizontalPodAutoscaler", "vigil-api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "vigil-api"
    assert hpa["spec"]["minReplicas"] >= 2
    service = k8s_object("Service", "vigil-api")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize(
    "name", ["vigil-api", "vigil-worker", "vigil-dagster-webserver", "vigil-dagster-daemon"]
)
def test_workloads_are_non_root_bounded_and_configured(name: str) -> None:
    pod = k8s_object("Deployment", name)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in pod["containers"]:
        assert {"requests", "limits"} <= set(container["resources"])
        sources = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert sources == {"vigil-config", "vigil-secrets"}


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod template's spec of a workload (a CronJob's through its job template)."""
    spec = doc.get("spec", {})
    if doc.get("kind") == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod: dict[str, Any] = spec.get("template", {}).get("spec", {})
    return pod


def test_storage_maintenance_runs_nightly_once_at_a_time() -> None:
    cron = k8s_object("CronJob", "vigil-storage-maintenance")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = pod_spec(cron)
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["command"] == ["vigil", "db", "maintain"]
    assert {"requests", "limits"} <= set(container["resources"])
    assert {next(iter(r.values()))["name"] for r in container["envFrom"]} == {
        "vigil-config",
        "vigil-secrets",
    }


# docs/scaling.md: 140 us of API CPU per /predict request, 57 us of worker CPU per transaction,
# pods of one core at 70 %. The autoscalers' maxima must reach the plan's 50k tx/s row.
PLAN_PEAK_TX_S = 50_000
API_CPU_S, WORKER_CPU_S, TARGET = 140e-6, 57e-6, 0.7


def test_autoscalers_reach_the_capacity_plan_peak() -> None:
    hpa = k8s_object("HorizontalPodAutoscaler", "vigil-api")["spec"]
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert hpa["maxReplicas"] * TARGET / API_CPU_S >= PLAN_PEAK_TX_S
    scaled = k8s_object("ScaledObject", "vigil-worker")["spec"]
    assert scaled["maxReplicaCount"] * TARGET / WORKER_CPU_S >= PLAN_PEAK_TX_S
    assert "| 50k tx/s |" in (ROOT / "docs" / "scaling.md").read_text()


def test_workers_scale_on_the_transactions_queue_depth() -> None:
    scaled = k8s_object("ScaledObject", "vigil-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    target = scaled["spec"]["scaleTargetRef"]
    assert target["kind"] == "Deployment" and k8s_object("Deployment", target["name"])
    assert scaled["spec"]["minReplicaCount"] >= 2
    (trigger,) = scaled["spec"]["triggers"]
    settings = load_settings(ROOT / "configs" / "vigil.yaml", environ={})
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == settings.broker.transactions_queue
    assert trigger["metadata"]["mode"] == "QueueLength" and int(trigger["metadata"]["value"]) > 0
    auth = k8s_object("TriggerAuthentication", trigger["authenticationRef"]["name"])
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "host" and ref["name"] == "vigil-secrets"
    assert f"--from-literal={ref['key']}=" in SECRET_SCRIPT.read_text()


def test_redis_cluster_and_postgres_are_external_services() -> None:
    state_url = k8s_object("ConfigMap", "vigil-config")["data"]["VIGIL_STORAGE__STATE_URL"]
    assert state_url.startswith("redis+cluster://")
    for host in (state_url.split("//")[1].split(":")[0], "postgres.vigil.svc"):
        service = k8s_object("Service", host.split(".")[0])
        assert service["spec"]["type"] == "ExternalName" and service["spec"]["externalName"]
    assert not [d for d in k8s_documents() if d["kind"] == "StatefulSet"]


def test_dagster_runs_one_daemon_and_matches_compose() -> None:
    daemon = k8s_object("Deployment", "vigil-dagster-daemon")["spec"]
    assert daemon["replicas"] == 1
    assert daemon["strategy"]["type"] == "Recreate"  # never two daemons, even mid-rollout
    services = compose()["services"]
    for name in ("dagster-webserver", "dagster-daemon"):
        pod = k8s_object("Deployment", f"vigil-{name}")["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        # the same program as compose's (compose escapes $ as $$)
        assert container["command"][-1] == services[name]["command"][-1].replace("$$", "$")
        env = {e["name"]: e["value"] for e in container["env"]}
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert env["DAGSTER_HOME"].startswith("/app/data/") and "/app/data" in mounts
        assert "/app/models" in mounts  # where the retrain job installs promoted models
        assert container["image"].startswith("vigil-train:")
    service = k8s_object("Service", "vigil-dagster-webserver")
    webserver = k8s_object("Deployment", "vigil-dagster-webserver")
    assert service["spec"]["selector"] == webserver["spec"]["selector"]["matchLabels"]


def test_k8s_environment_is_valid_configuration() -> None:
    """The ConfigMap plus the names the secret command sets (sample values) load as settings."""
    samples = {
        "VIGIL_SERVING__API_KEY": "ab" * 32,
        "VIGIL_STORAGE__DATABASE_URL": "postgresql+psycopg://vigil:pw@postgres:5432/vigil",
        "VIGIL_BROKER__URL": "amqp://vigil:pw@rabbitmq.vigil.svc:5672/",
    }
    assert set(re.findall(r"--from-literal=(\w+)=", SECRET_SCRIPT.read_text())) == set(samples)
    env = {**k8s_object("ConfigMap", "vigil-config")["data"], **samples}
    settings = load_settings(ROOT / "configs" / "vigil.yaml", environ=env)
    assert settings.serving.host == "0.0.0.0"
    assert settings.broker.url is not None and settings.broker.url.startswith("amqp://")
    assert all(doc["metadata"].get("namespace", "vigil") == "vigil" for doc in k8s_documents())


# A key-like setting: its value must come from the environment or a secret store, never a file.
SECRET_NAME = re.compile(r"(API_KEY|PASSWORD|SECRET|TOKEN)", re.IGNORECASE)
PLACEHOLDERS = ("change-me", "replace-me", "changeme")


def deployment_files() -> list[Path]:
    """Every manifest, compose file and Dockerfile shipped for deployment."""
    found = [COMPOSE_FILE, *DOCKERFILES]
    found += [p for p in (ROOT / "deploy").rglob("*") if p.suffix in {".yaml", ".yml", ".env"}]
    return sorted(set(found))


def literal_keys(path: Path) -> list[str]:
    """``NAME: value`` / ``NAME=value`` lines giving an API key a literal value."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = re.match(r"\s*(?:-\s*)?[\"']?(\w*API_KEY)[\"']?\s*[:=]\s*(.*)$", line)
        if match is None:
            continue
        value = match.group(2).strip().strip("\"'")
        required = re.fullmatch(r"\$\{\w+:\?[^}]*\}", value)  # compose: must be set
        if value and not required and not value.startswith("#"):
            found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_no_manifest_or_compose_file_carries_a_literal_key() -> None:
    """Keys come from the environment (compose) or the created Secret (k8s), never a file."""
    offending = [hit for path in deployment_files() for hit in literal_keys(path)]
    assert offending == []
    for path in deployment_files():
        text = path.read_text().lower()
        assert not [p for p in PLACEHOLDERS if p in text], f"placeholder secret in {path}"
    secrets = [d for d in k8s_documents() if d["kind"] == "Secret"]
    assert secrets == [], "k8s Secrets are created by deploy/k8s/create-secret.sh, not shipped"


def test_literal_key_check_catches_a_planted_key(tmp_path: Path) -> None:
    planted = ROOT / "deploy" / "k8s" / "_planted_test_file.yaml"
    try:
        planted.write_text("stringData:\n  VIGIL_SERVING__API_KEY: s3cr3t\n")
        assert literal_keys(planted)
        planted.write_text("env:\n  VIGIL_SERVING__API_KEY: ${VIGIL_API_KEY:-dev}\n")
        assert literal_keys(planted), "a compose default is a literal key too"
        planted.write_text("env:\n  VIGIL_SERVING__API_KEY: ${VIGIL_API_KEY:?set it}\n")
        assert literal_keys(planted) == []
    finally:
        planted.unlink(missing_ok=True)


FAKE_KUBECTL = """#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
if args[0] == "create":
    print(json.dumps(args))
elif args[0] == "label":
    sys.stdout.write(sys.stdin.read())
elif args[0] == "apply":
    with open(os.environ["FAKE_KUBECTL_OUT"], "a") as out:
        out.write(sys.stdin.read())
"""


def run_secret_script(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``create-secret.sh`` against a fake ``kubectl`` that records what would be applied."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    environ = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_KUBECTL_OUT": str(tmp_path / "out")}
    return subprocess.run(
        ["bash", str(SECRET_SCRIPT)], env={**environ, **env}, capture_output=True, text=True
    )


def applied_literals(tmp_path: Path) -> list[dict[str, str]]:
    lines = (tmp_path / "out").read_text().splitlines()
    prefix = "--from-literal="
    return [
        dict(a[len(prefix) :].split("=", 1) for a in json.loads(line) if a.startswith(prefix))
        for line in lines
    ]


def test_the_secret_command_generates_a_random_key(tmp_path: Path) -> None:
    urls = {"VIGIL_DATABASE_URL": "postgresql+psycopg://v:pw@db/v", "VIGIL_BROKER_URL": "amqp://b/"}
    for _ in range(2):
        result = run_secret_script(tmp_path, **urls)
        assert result.returncode == 0, result.stderr
    first, second = applied_literals(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{64}", first["VIGIL_SERVING__API_KEY"])
    assert first["VIGIL_SERVING__API_KEY"] != second["VIGIL_SERVING__API_KEY"]
    assert first["VIGIL_STORAGE__DATABASE_URL"] == urls["VIGIL_DATABASE_URL"]
    assert first["VIGIL_BROKER__URL"] == urls["VIGIL_BROKER_URL"]


@pytest.mark.parametrize(
    "env",
    [
        {"VIGIL_BROKER_URL": "amqp://b/"},
        {
            "VIGIL_DATABASE_URL": "sqlite:///x",
            "VIGIL_BROKER_URL": "amqp://b/",
            "VIGIL_API_KEY": "change-me",
        },
    ],
    ids=["missing-url", "placeholder-key"],
)
def test_the_secret_command_refuses_without_applying(tmp_path: Path, env: dict[str, str]) -> None:
    result = run_secret_script(tmp_path, **env)
    assert result.returncode != 0
    assert not (tmp_path / "out").exists()


# --- CI workflow --------------------------------------------------------------------------


def test_ci_workflow_matches_the_github_schema_and_runs_the_ci_entry_point() -> None:
    result = run(
        tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    job = yaml.safe_load(WORKFLOW.read_text())["jobs"]["test"]
    assert {"postgres", "redis", "rabbitmq"} <= set(job["services"])
    assert any(step.get("run") == "bash .ci/run" for step in job["steps"])


# --- The vigil commands the artefacts run -------------------------------------------------


def artefact_commands() -> set[tuple[str, ...]]:
    """Every ``vigil ...`` argument list in the Dockerfiles, docker-compose.yml and k8s."""
    commands: list[list[str]] = []
    for dockerfile in DOCKERFILES:
        for keyword, args in dockerfile_instructions(dockerfile):
            if keyword == "CMD" and args.startswith("["):
                commands.append(yaml.safe_load(args))
    commands += [
        [*s.get("entrypoint", []), *s["command"]]
        for s in compose()["services"].values()
        if isinstance(s.get("command"), list)
    ]
    for doc in k8s_documents():
        pod = pod_spec(doc)
        commands += [c["command"] for c in pod.get("containers", []) if "command" in c]
    return {tuple(c[1:]) for c in commands if isinstance(c, list) and c and c[0] == "vigil"}


def test_artefacts_run_the_expected_commands() -> None:
    assert artefact_commands() == {
        ("serve", "--workers", "1"),
        ("worker", "--metrics-port", "9100"),
        ("ui",),
        ("ui", "--host", "0.0.0.0", "--api-url", "http://api:8000"),
        ("db", "upgrade"),
        ("db", "maintain"),
        ("bootstrap",),
    }


@pytest.mark.parametrize("args", sorted(artefact_commands()), ids=" ".join)
def test_each_artefact_command_exists_in_the_cli(args: tuple[str, ...]) -> None:
    # --help after the real arguments: click parses them (unknown commands or options fail)
    # and then prints the help instead of running the command.
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
