"""deploy/: alert rules through promtool; compose, Kubernetes and Grafana files parsed and checked.

Docker and Kubernetes are not run here; their files are parsed and checked
against the code (ports, settings, metric names), so they cannot drift from it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from loader.cli import build_parser as build_loader_parser
from suppression.metrics import (
    BuildInfoCollector,
    FollowerCollector,
    GrpcServerMetrics,
    ListsCollector,
    ServiceMetrics,
)
from suppression.quota import IdentityMetrics
from suppression.settings import ENV_PREFIX, Settings, settings_from_args
from tests.conftest import REPO
from tests.samples import State

pytestmark = pytest.mark.integration

DEPLOY = REPO / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "suppression.json"
KUBERNETES = DEPLOY / "kubernetes"
SETTINGS_VARIABLES = {ENV_PREFIX + spec.name.upper() for spec in fields(Settings)}
METRIC_NAME = re.compile(r"\b(?:suppression|grpc_server)_[a-z_]+\b")


def promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail(
            "promtool is not installed; `make test` installs it (Debian package `prometheus`), "
            "or run: apt-get install -y prometheus"
        )
    result = subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    )
    return result.stdout


def test_alert_rules_pass_promtool() -> None:
    assert "SUCCESS: 10 rules found" in promtool("check", "rules", "alerts.yml")
    assert "SUCCESS" in promtool("test", "rules", "alerts_test.yml")
    promtool("check", "config", "prometheus.yml")


def test_alerts_cover_what_operators_must_hear_about() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {
        "SuppressionDataStale",
        "SuppressionChangeLogLagHigh",
        "SuppressionDeadLetters",
        "SuppressionErrorRateRising",
        "SuppressionReplicaNotServing",
        "SuppressionIdentityHitRateUnusual",
        "SuppressionIdentityVolumeJump",
    } <= names


def exported_series() -> set[str]:
    """Every series name the service can export, from the real metric definitions."""
    registry = CollectorRegistry()
    ServiceMetrics(registry)
    GrpcServerMetrics(registry)
    IdentityMetrics(registry)  # with --trust-file
    registry.register(ListsCollector(lambda: None, lambda: True))
    registry.register(FollowerCollector(lambda: State(snapshot_age_seconds=1.0)))
    registry.register(BuildInfoCollector())
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in suffixes.get(family.type, [""])
    }


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_dashboard_and_alerts_use_only_exported_metrics() -> None:
    exported = exported_series()
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    expressions = dashboard_expressions() + [
        rule["expr"] for group in rules["groups"] for rule in group["rules"]
    ]
    used = {name for expr in expressions for name in METRIC_NAME.findall(expr)}
    assert used, "no metric found in the dashboard or the rules"
    assert used <= exported, f"unknown metrics: {sorted(used - exported)}"
    # The dashboard shows every service metric (grpc-prometheus's own are charted too).
    service_metrics = {name for name in exported if name.startswith("suppression_")}
    dashboard_used = {n for expr in dashboard_expressions() for n in METRIC_NAME.findall(expr)}
    missing = {
        name for name in service_metrics - dashboard_used if not name.endswith(("_sum", "_count"))
    }
    assert not missing, f"metrics without a dashboard panel: {sorted(missing)}"


# The one way alerts, dashboard and scrape configurations agree to select the
# service's targets (docs/operations.md, "Which targets are the service's").
JOB = "suppression"
SELECTOR = re.compile(r"\b(up|(?:suppression|grpc_server)_[a-z_]+)\b(\{[^}]*\})?")


def alert_expressions() -> dict[str, str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


def dashboard_panel_expression(title: str) -> str:
    dashboard = json.loads(DASHBOARD.read_text())
    (panel,) = [panel for panel in dashboard["panels"] if panel["title"] == title]
    (target,) = panel["targets"]
    expression: str = target["expr"]
    return expression


def test_alerts_and_dashboard_select_only_the_service_job() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = [variable["definition"] for variable in dashboard["templating"]["list"][1:]]
    expressions = [*alert_expressions().values(), *dashboard_expressions(), *variables]
    for expression in expressions:
        selectors = list(SELECTOR.finditer(expression))
        assert selectors, f"no metric found in {expression!r}"
        for match in selectors:
            matchers = match.group(2) or ""
            assert f'job="{JOB}"' in matchers, f"{match.group(0)!r} in {expression!r}"


def test_every_scrape_configuration_names_the_job_the_alerts_select() -> None:
    compose_scrape = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert [job["job_name"] for job in compose_scrape["scrape_configs"]] == [JOB]

    by_kind = kubernetes_by_kind()
    (deployment,) = by_kind["Deployment"]
    template = deployment["spec"]["template"]
    pod_labels = template["metadata"]["labels"]
    (container,) = template["spec"]["containers"]
    port_names = {port["name"] for port in container["ports"]}
    compact_labels = pod_templates()["CronJob/suppression-compact"]["metadata"]["labels"]
    # Annotation-based jobs would scrape the pods a second time under another job name.
    annotations = template["metadata"].get("annotations", {})
    assert not any(key.startswith("prometheus.io/") for key in annotations)

    (cluster_job,) = yaml.safe_load((PROMETHEUS / "kubernetes.yml").read_text())["scrape_configs"]
    assert cluster_job["job_name"] == JOB
    keeps = {
        tuple(rule["source_labels"]): rule["regex"]
        for rule in cluster_job["relabel_configs"]
        if rule.get("action") == "keep"
    }
    (name_regex,) = [
        regex
        for labels, regex in keeps.items()
        if labels == ("__meta_kubernetes_pod_label_app_kubernetes_io_name",)
    ]
    assert re.fullmatch(name_regex, pod_labels["app.kubernetes.io/name"])
    assert not re.fullmatch(name_regex, compact_labels["app.kubernetes.io/name"])
    port_regex = keeps[("__meta_kubernetes_pod_container_port_name",)]
    assert [name for name in port_names if re.fullmatch(port_regex, name)] == ["metrics"]

    monitor = yaml.safe_load((PROMETHEUS / "podmonitor.yaml").read_text())
    assert monitor["kind"] == "PodMonitor"
    assert pod_labels[monitor["spec"]["jobLabel"]] == JOB
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert not selector.items() <= compact_labels.items()
    assert [endpoint["port"] for endpoint in monitor["spec"]["podMetricsEndpoints"]] == ["metrics"]


def test_dashboard_serving_panels_are_the_expressions_promtool_tests() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    tested = {case["expr"] for test in tests for case in test.get("promql_expr_test", [])}
    for title in ("Replicas not serving", "Replicas ready"):
        expression = dashboard_panel_expression(title).replace("$instance", ".*")
        assert expression in tested, f"panel {title!r} has no promtool test: {expression}"


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "suppression"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, panel["title"]
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert variables == {"datasource", "instance"}


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def test_compose_starts_redis_two_replicas_prometheus_and_grafana() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services: dict[str, Any] = compose["services"]
    assert {"redis", "replica-1", "replica-2", "prometheus", "grafana"} <= set(services)
    volumes = set(compose["volumes"])
    host_ports = []
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} mounts undeclared volume {source}"
        host_ports += [port.split(":")[0] for port in service.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)), "two services publish the same host port"
    for replica in ("replica-1", "replica-2"):
        service = services[replica]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).exists()
        assert set(service["environment"]) <= SETTINGS_VARIABLES
        assert service["environment"]["SUPPRESSION_REDIS_URL"].startswith("redis://redis:")
        assert service["ports"][0].endswith(f":{Settings().port}")
    scrape = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    assert sorted(targets) == [f"replica-{n}:{Settings().metrics_port}" for n in (1, 2)]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """deploy/Dockerfile as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            instructions.append((keyword.upper(), " ".join(arguments.split())))
    return instructions


def dockerfile_run_commands() -> list[str]:
    """The shell commands of deploy/Dockerfile's RUN instructions, split at ``&&``."""
    return [
        command.strip()
        for keyword, arguments in dockerfile_instructions()
        if keyword == "RUN"
        for command in arguments.split("&&")
    ]


# What docker-compose 1.29, the last Compose v1 line, accepts: the keys its schema
# (compose/config/compose_spec.json) allows. Compose v2 accepts all of them too.
COMPOSE_V1_TOP_LEVEL = {"version", "services", "networks", "volumes", "secrets", "configs"}
COMPOSE_V1_SERVICE = set(
    """
    blkio_config build cap_add cap_drop cgroup_parent command configs container_name
    cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period cpu_rt_runtime cpu_shares cpus
    cpuset credential_spec depends_on deploy device_cgroup_rules devices dns dns_opt
    dns_search domainname entrypoint env_file environment expose extends external_links
    extra_hosts group_add healthcheck hostname image init ipc isolation labels links logging
    mac_address mem_limit mem_reservation mem_swappiness memswap_limit network_mode networks
    oom_kill_disable oom_score_adj pid pids_limit platform ports privileged profiles
    pull_policy read_only restart runtime scale secrets security_opt shm_size stdin_open
    stop_grace_period stop_signal storage_opt sysctls tmpfs tty ulimits user userns_mode
    volumes volumes_from working_dir
    """.split()
)
COMPOSE_V1_BUILD = set(
    """
    context dockerfile args labels cache_from network target shm_size extra_hosts isolation
    """.split()
)
COMPOSE_V1_HEALTHCHECK = {"disable", "interval", "retries", "test", "timeout", "start_period"}
COMPOSE_V1_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def extension(key: str) -> bool:
    return key.startswith("x-")


def test_compose_file_is_accepted_by_compose_v1() -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)
    unknown = {key for key in compose if not extension(key)} - COMPOSE_V1_TOP_LEVEL
    assert not unknown, f"docker-compose v1 refuses top-level {sorted(unknown)}"
    assert not re.search(r"^name:", text, re.MULTILINE)
    for name, service in compose["services"].items():
        keys = {key for key in service if not extension(key)}
        assert keys <= COMPOSE_V1_SERVICE, f"{name}: v1 refuses {sorted(keys - COMPOSE_V1_SERVICE)}"
        build = service.get("build")
        if isinstance(build, dict):
            assert set(build) <= COMPOSE_V1_BUILD, f"{name}: build {sorted(build)}"
        assert set(service.get("healthcheck", {})) <= COMPOSE_V1_HEALTHCHECK, name
        depends_on = service.get("depends_on", [])
        if isinstance(depends_on, dict):
            for dependency, condition in depends_on.items():
                # v1 takes only `condition`; v2's `required` and `restart` are refused.
                assert set(condition) == {"condition"}, f"{name} -> {dependency}: {condition}"
                assert condition["condition"] in COMPOSE_V1_CONDITIONS, f"{name} -> {dependency}"
        environment = service.get("environment", {})
        if isinstance(environment, dict):
            for variable, value in environment.items():
                assert isinstance(value, str | int | float | bool | None), f"{name}: {variable}"
        for mount in service.get("volumes", []):
            assert isinstance(mount, str) or "type" in mount, f"{name}: {mount}"


def test_dockerfile_installs_every_package_under_the_constraints_file() -> None:
    commands = dockerfile_run_commands()
    installs = [command for command in commands if " pip install " in command]
    assert installs, "the Dockerfile installs nothing with pip"
    for command in installs:
        words = command.split()
        assert "--constraint" in words or "-c" in words, f"unconstrained install: {command}"
        flag = "--constraint" if "--constraint" in words else "-c"
        assert words[words.index(flag) + 1] == "constraints.txt", command
    assert any(command.endswith(" .") for command in installs), "the package itself is installed"
    # COPY . . brings it into the build stage: it must exist and not be ignored.
    assert (REPO / "constraints.txt").is_file()
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert "constraints.txt" not in ignored and "*.txt" not in ignored


def test_the_image_build_compiles_the_membership_loop_or_fails() -> None:
    commands = dockerfile_run_commands()
    installs = [index for index, command in enumerate(commands) if command.endswith(" .")]
    compiler = [index for index, command in enumerate(commands) if " gcc " in f"{command} "]
    check = [index for index, command in enumerate(commands) if "membership.COMPILED" in command]
    assert compiler and installs and check, commands
    assert compiler[0] < installs[0] < check[0], "gcc, then the install, then the check"
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert "**/*.so" in ignored, "a host's build of the loop must not reach the image"


def healthcheck_command() -> list[str]:
    (arguments,) = [args for keyword, args in dockerfile_instructions() if keyword == "HEALTHCHECK"]
    _, _, command = arguments.partition(" CMD ")
    assert command, "HEALTHCHECK without CMD"
    parsed: list[str] = json.loads(command)
    return parsed


@pytest.fixture
def health_server() -> Iterator[tuple[health.HealthServicer, int]]:
    """A real gRPC server with the standard health service, on a free port."""
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, port
    finally:
        server.stop(None)


def run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    program, *arguments = healthcheck_command()
    assert program == "python"
    # Only SUPPRESSION_PORT says where the server listens, as in a container.
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    env["SUPPRESSION_PORT"] = str(port)
    return subprocess.run(
        [sys.executable, *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dockerfile_healthcheck_asks_the_configured_port(
    health_server: tuple[health.HealthServicer, int],
) -> None:
    servicer, port = health_server
    assert port != Settings().port
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    result = run_healthcheck(port)
    assert result.returncode == 0, result.stderr
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert run_healthcheck(port).returncode == 1
    # No port is written into the command; it comes from the settings.
    assert str(Settings().port) not in " ".join(healthcheck_command())


def test_dockerfile_installs_like_make_and_serves_on_the_default_ports() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "python -m venv" in dockerfile
    assert "pip install --no-cache-dir --quiet" in dockerfile
    assert f"EXPOSE {Settings().port} {Settings().metrics_port}" in dockerfile
    assert 'ENTRYPOINT ["suppression"]' in dockerfile
    for variable in re.findall(r"\b(SUPPRESSION_[A-Z_]+)=", dockerfile):
        assert variable in SETTINGS_VARIABLES
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
    # Everything the package build needs is in the context.
    assert "suppression" not in ignored and "pyproject.toml" not in ignored


def test_kubernetes_deployment_is_ready_by_grpc_health_and_configured_by_env() -> None:
    documents = [
        document
        for path in sorted(KUBERNETES.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for document in load_yaml_documents(path)
    ]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        by_kind.setdefault(document["kind"], []).append(document)
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        path.name for path in KUBERNETES.glob("*.yaml") if path.name != "kustomization.yaml"
    )

    (deployment,) = by_kind["Deployment"]
    (config_map,) = by_kind["ConfigMap"]
    labels = deployment["spec"]["selector"]["matchLabels"]
    template = deployment["spec"]["template"]
    assert labels.items() <= template["metadata"]["labels"].items()
    (container,) = template["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"grpc": Settings().port, "metrics": Settings().metrics_port}
    assert container["readinessProbe"]["grpc"]["port"] == ports["grpc"]
    assert container["envFrom"] == [{"configMapRef": {"name": config_map["metadata"]["name"]}}]
    variables = set(config_map["data"]) | {item["name"] for item in container["env"]}
    assert variables <= SETTINGS_VARIABLES, sorted(variables - SETTINGS_VARIABLES)
    assert all(isinstance(value, str) for value in config_map["data"].values())
    grace = float(
        next(item["value"] for item in container["env"] if item["name"] == "SUPPRESSION_GRACE")
    )
    assert template["spec"]["terminationGracePeriodSeconds"] > grace
    claims = {claim["metadata"]["name"] for claim in by_kind.get("PersistentVolumeClaim", [])}
    for volume in template["spec"]["volumes"]:
        if "persistentVolumeClaim" in volume:
            assert volume["persistentVolumeClaim"]["claimName"] in claims

    for service in by_kind["Service"]:
        assert service["spec"]["selector"].items() <= labels.items()
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports


def kubernetes_by_kind() -> dict[str, list[dict[str, Any]]]:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            for document in load_yaml_documents(path):
                by_kind.setdefault(document["kind"], []).append(document)
    return by_kind


def pod_templates() -> dict[str, dict[str, Any]]:
    """Every pod template of every workload, by "Kind/name"."""
    templates = {}
    for kind, documents in kubernetes_by_kind().items():
        for document in documents:
            name = f"{kind}/{document['metadata']['name']}"
            if kind == "CronJob":
                templates[name] = document["spec"]["jobTemplate"]["spec"]["template"]
            elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
                templates[name] = document["spec"]["template"]
            elif kind == "Pod":
                templates[name] = document
    return templates


# Pod Security Standards, "restricted" profile (Kubernetes documentation, v1.25 and later).
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What keeps a pod spec from the "restricted" Pod Security profile; empty if nothing."""
    problems = []
    pod_context = pod.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            problems.append(f"pod sets {field}")
    if pod_context.get("sysctls"):
        problems.append("pod sets sysctls")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']} is of type {sorted(kinds)}")
    containers = [
        *pod.get("initContainers", []),
        *pod.get("containers", []),
        *pod.get("ephemeralContainers", []),
    ]
    if not containers:
        problems.append("pod has no containers")
    for container in containers:
        name = container["name"]
        context = container.get("securityContext") or {}

        def effective(key: str, context: dict[str, Any] = context) -> Any:
            # A container's setting wins over the pod's.
            return context.get(key, pod_context.get(key))

        if context.get("privileged"):
            problems.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if effective("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if effective("runAsUser") == 0:
            problems.append(f"{name}: runAsUser is 0")
        seccomp = (effective("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile type is {seccomp}")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {capabilities['add']}")
        if context.get("procMount", "Default") != "Default":
            problems.append(f"{name}: procMount")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            problems.append(f"{name}: hostPort")
    return problems


def test_restricted_check_finds_what_the_profile_forbids() -> None:
    # The old Deployment: pod-level non-root only.
    pod = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
        "containers": [{"name": "suppression", "ports": [{"containerPort": 50051}]}],
        "volumes": [{"name": "data", "hostPath": {"path": "/srv"}}],
    }
    problems = " ".join(restricted_violations(pod))
    for expected in ("allowPrivilegeEscalation", "seccompProfile", "drop ALL", "hostPath"):
        assert expected in problems


def test_every_kubernetes_pod_meets_the_restricted_pod_security_profile() -> None:
    templates = pod_templates()
    assert {"Deployment/suppression", "CronJob/suppression-compact"} <= set(templates)
    for name, template in templates.items():
        assert restricted_violations(template["spec"]) == [], name


def test_every_kubernetes_container_has_a_read_only_root_and_a_writable_tmp() -> None:
    for name, template in pod_templates().items():
        pod = template["spec"]
        empty_dirs = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
            # Python's tempfile and the --workers metrics directory need somewhere to write.
            assert mounts["/tmp"]["name"] in empty_dirs, name
            assert not mounts["/tmp"].get("readOnly"), name


def test_kubernetes_pods_get_time_to_leave_the_endpoints_and_finish_calls() -> None:
    (deployment,) = kubernetes_by_kind()["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep", command
    pause = float(command[1])
    assert 1 <= pause <= 15
    grace = float(
        next(item["value"] for item in container["env"] if item["name"] == "SUPPRESSION_GRACE")
    )
    # The kubelet runs preStop, then sends SIGTERM; the whole must fit before SIGKILL.
    assert pod["terminationGracePeriodSeconds"] >= pause + grace + 1


def test_kubernetes_disruption_budget_keeps_replicas_serving_and_drains_possible() -> None:
    by_kind = kubernetes_by_kind()
    (deployment,) = by_kind["Deployment"]
    (budget,) = by_kind["PodDisruptionBudget"]
    assert budget["apiVersion"] == "policy/v1"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    replicas = deployment["spec"]["replicas"]
    spec = budget["spec"]
    assert ("maxUnavailable" in spec) != ("minAvailable" in spec)
    allowed = (
        spec["maxUnavailable"] if "maxUnavailable" in spec else replicas - spec["minAvailable"]
    )
    assert isinstance(allowed, int) and 1 <= allowed < replicas


def test_kubernetes_needs_no_shared_volume() -> None:
    """Replicas fetch snapshots from peers; compact keeps what their own snapshots lack."""
    by_kind = kubernetes_by_kind()
    assert "PersistentVolumeClaim" not in by_kind
    (deployment,) = by_kind["Deployment"]
    (cronjob,) = by_kind["CronJob"]
    (config_map,) = by_kind["ConfigMap"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    template = cronjob["spec"]["jobTemplate"]["spec"]["template"]
    pod = template["spec"]
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    # Services and the disruption budget select replicas only.
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= template["metadata"]["labels"].items()
    for service in by_kind["Service"]:
        assert not service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    headless = next(s for s in by_kind["Service"] if s["spec"].get("clusterIP") == "None")
    grpc_port = next(p["port"] for p in headless["spec"]["ports"] if p["name"] == "grpc")
    peer = f"{headless['metadata']['name']}:{grpc_port}"

    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    server_env = dict(config_map["data"]) | {item["name"]: item["value"] for item in server["env"]}
    served = Settings.from_env(server_env)
    assert served.peer == (peer,), "a new pod fetches from a ready replica"
    assert served.snapshot_interval > 0, "each replica writes the snapshots it serves"
    assert served.data_dir is not None
    server_volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    server_mounts = {mount["mountPath"]: mount for mount in server["volumeMounts"]}
    data_mount = server_mounts[str(served.data_dir)]
    assert "emptyDir" in server_volumes[data_mount["name"]]
    assert not data_mount.get("readOnly")

    (container,) = pod["containers"]
    assert container["image"] == server["image"]
    assert container["command"] == ["suppression-loader"]
    args = build_loader_parser().parse_args(container["args"])
    assert args.command == "compact"
    env = dict(config_map["data"])
    assert container["envFrom"] == [{"configMapRef": {"name": config_map["metadata"]["name"]}}]
    env.update({item["name"]: item["value"] for item in container.get("env", [])})
    assert set(env) <= SETTINGS_VARIABLES, sorted(set(env) - SETTINGS_VARIABLES)
    settings = settings_from_args(args, env)
    assert settings.redis_url and settings.data_dir is not None
    assert settings.peer == (peer,)
    # A replica restarting replays from its own newest snapshot, up to one interval old.
    assert settings.trim_min_age >= 2 * served.snapshot_interval
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts[str(settings.data_dir)]["name"]]


def test_kustomization_builds_every_manifest() -> None:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed; the manifests are still parsed by the other tests")
    result = subprocess.run(
        [binary, "kustomize", str(KUBERNETES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    built = [document for document in yaml.safe_load_all(result.stdout) if document]
    expected = [document for documents in kubernetes_by_kind().values() for document in documents]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in built) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in expected
    )
