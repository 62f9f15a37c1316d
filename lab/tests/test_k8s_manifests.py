"""deploy/k8s: the lab's Kubernetes manifests, validated offline.

Every resource of every file the kustomization lists is checked, strictly (an
unknown field is an error), against the OpenAPI schemas that
``kubernetes-validate`` ships, for the oldest and the newest Kubernetes we
claim.  Then the lab's own contracts: the same servers, ports and
capabilities as the swarm stack, and a native server that can work on a pod
network (AF_PACKET on a veth, the pod's own address)."""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
STACK = ROOT / "deploy" / "swarm" / "lab-stack.yml"
VERSIONS = ("1.28.0", "1.33.0")


def kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def resources() -> list[tuple[str, dict]]:
    out = []
    for name in kustomization()["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            if doc:
                out.append((name, doc))
    return out


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in resources() if doc["kind"] == kind}


def workloads() -> dict[str, dict]:
    return by_kind("Deployment") | by_kind("StatefulSet")


def container(name: str) -> dict:
    (only,) = workloads()[name]["spec"]["template"]["spec"]["containers"]
    return only


def env(c: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", [])}


def test_the_kustomization_lists_every_manifest_in_the_directory():
    listed = set(kustomization()["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


@pytest.mark.parametrize("version", VERSIONS)
def test_every_resource_is_valid_kubernetes_strictly(version):
    docs = resources()
    assert {doc["kind"] for _, doc in docs} == {
        "Namespace",
        "Service",
        "Deployment",
        "StatefulSet",
    }
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")


def test_the_validator_rejects_a_misspelt_field():
    # the check above is only worth something if a mistake fails it
    deployment = copy.deepcopy(by_kind("Deployment")["native-server"])
    spec = deployment["spec"]["template"]["spec"]["containers"][0]
    spec["imagePulPolicy"] = spec.pop("imagePullPolicy")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_services_are_headless_and_select_their_pods():
    pods = {name: w["spec"]["template"]["metadata"]["labels"] for name, w in workloads().items()}
    for name, svc in by_kind("Service").items():
        # headless: the name resolves to the pod's own address, like the stack's dnsrr
        assert svc["spec"]["clusterIP"] == "None", name
        selector = svc["spec"]["selector"]
        assert selector.items() <= pods[name].items(), name
    for name, w in workloads().items():
        assert w["spec"]["selector"]["matchLabels"].items() <= pods[name].items(), name


def test_the_same_servers_as_the_swarm_stack():
    stack = yaml.safe_load(STACK.read_text())["services"]
    for server in ("posix-server", "native-server"):
        c = container(server)
        assert c["args"] == stack[server]["command"], server
        for var in ("LAB_ADMIN_URL", "LAB_SERVE_ADMIN_ARGS"):
            want = stack[server]["environment"][var]
            assert "${" + var + ":-" + env(c)[var] + "}" in (want, "${" + var + ":-" + want + "}")
        ports = {p["port"] for p in by_kind("Service")[server]["spec"]["ports"]}
        assert {1234, 1235, 1236} <= ports, server
        node_label = f"seashard.{server}"
        assert workloads()[server]["spec"]["template"]["spec"]["nodeSelector"] == {
            node_label: "true"
        }
        assert (
            f"node.labels.{node_label} == true"
            in stack[server]["deploy"]["placement"]["constraints"]
        )
    assert container("client")["args"] == stack["client"]["command"]


def test_the_native_server_reads_a_veth_with_the_pods_own_address():
    c = container("native-server")
    assert set(c["securityContext"]["capabilities"]["add"]) >= {"NET_ADMIN", "NET_RAW"}
    assert env(c)["NATIVE_DEVICE"] == "packet"
    assert env(c)["NATIVE_ADDRESS"] == "uplink"
    # the device and the address come from lab-native-setup, at start
    assert not {"--host-ipv4-addr", "--packet-device", "--tap-device"} & set(c["args"])
    assert workloads()["native-server"]["spec"]["strategy"]["type"] == "Recreate"


def test_servers_stay_resolvable_and_alive_while_the_lab_restarts_them():
    for server in ("posix-server", "native-server"):
        c = container(server)
        # readiness is reported, but never restarts the container (labctl restarts in place)
        assert c["readinessProbe"]["exec"]["command"] == ["lab-health"]
        assert "livenessProbe" not in c, server
        assert by_kind("Service")[server]["spec"]["publishNotReadyAddresses"] is True


def test_no_cpu_limit_on_the_pinned_servers():
    # a CFS quota would throttle shards that are each pinned to a CPU
    for server in ("posix-server", "native-server"):
        assert "cpu" not in container(server)["resources"].get("limits", {}), server


def test_clients_can_impair_their_own_link():
    c = container("client")
    assert set(c["securityContext"]["capabilities"]["add"]) >= {"NET_ADMIN", "NET_RAW"}
    stack_env = yaml.safe_load(STACK.read_text())["services"]["client"]["environment"]
    for var in ("LOAD_ARGS", "LAB_LOAD_METRICS_ARGS"):
        assert stack_env[var] == "${" + var + ":-" + env(c)[var] + "}", var


def test_prometheus_scrapes_the_posix_server_and_every_client_by_name():
    c = container("prometheus")
    assert c["args"] == ["prometheus"]
    config = env(c)["LAB_PROMETHEUS_CONFIG"]
    assert config == "/etc/seashard/prometheus/prometheus-k8s.yml"
    prom = yaml.safe_load((ROOT / "images" / "lab" / "prometheus" / Path(config).name).read_text())
    sd = {
        (name, c["port"])
        for job in prom["scrape_configs"]
        for c in job["dns_sd_configs"]
        for name in c["names"]
    }
    # the Services those names are (headless: one A record per pod), on those ports
    assert sd == {("posix-server", 9100), ("client", 9200), ("client", 9201)}
    services = by_kind("Service")
    for name, port in sd - {("posix-server", 9100)}:
        assert port in {p["port"] for p in services[name]["spec"]["ports"]}, (name, port)
    assert c["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": 9090}
