"""The containerized lab as a pytest fixture.

`lab` (session scope) brings up a lab of its own -- compose project
``seashard-lab-test-<random>`` on its own /24 and host bridge, so it never
touches a lab a user has running -- through ``scripts/lab up`` (engine, base
image, image build, compose up), waits for the healthchecks, yields a `Lab`
handle, and always tears it down and checks that nothing of the project is
left.  When a test fails, the servers' logs, their metrics and the pcaps of
the captures the test ran are written to ``artifacts/<test name>/``.

Environment:
  SEASHARD_LAB_REUSE=PROJECT  use that running lab (e.g. seashard-lab from
                              `scripts/lab up`) and leave it running: fast
                              iteration while writing tests
  LAB_HEALTH_TIMEOUT          seconds to wait for the healthchecks (90)
  LAB_KEEP=1                  do not tear the test lab down (debugging)
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

ROOT = Path(__file__).resolve().parents[1]
# scripts/lablib: the lab operations, clients and probe checks that `scripts/lab
# scenario` uses too (labops, labtraffic, labprobe, scenarios)
sys.path.insert(0, str(ROOT / "scripts" / "lablib"))

from labkit import HELPER_LABEL, PROJECT_LABEL, SERVERS, Lab  # noqa: E402
from labops import CLIENTS  # noqa: E402

LAB_SCRIPT = ROOT / "scripts" / "lab"
ARTIFACTS = ROOT / "artifacts"


# ---------------------------------------------------------------- the fixture


def _free_subnet(client: docker.DockerClient) -> ipaddress.IPv4Network:
    used = []
    for net in client.networks.list():
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            if "Subnet" in cfg and ":" not in cfg["Subnet"]:
                used.append(ipaddress.ip_network(cfg["Subnet"], strict=False))
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    for word in re.findall(r"^(\d+\.\d+\.\d+\.\d+/\d+)", routes, re.M):
        used.append(ipaddress.ip_network(word, strict=False))
    candidates = [ipaddress.ip_network(f"172.28.{n}.0/24") for n in range(100, 255)]
    free = [c for c in candidates if not any(c.overlaps(u) for u in used)]
    if not free:
        raise RuntimeError("no free 172.28.N.0/24 for the test lab")
    return secrets.choice(free)


def _leftovers(client: docker.DockerClient, project: str) -> list[str]:
    left = []
    for c in client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"}):
        left.append(f"container {c.name}")
    for c in client.containers.list(all=True, filters={"label": f"{HELPER_LABEL}={project}"}):
        left.append(f"container {c.name}")
    for n in client.networks.list(filters={"label": f"{PROJECT_LABEL}={project}"}):
        left.append(f"network {n.name}")
    for v in client.volumes.list(filters={"label": f"{PROJECT_LABEL}={project}"}):
        left.append(f"volume {v.name}")
    return left


def _force_remove(client: docker.DockerClient, project: str) -> None:
    for label in (f"{PROJECT_LABEL}={project}", f"{HELPER_LABEL}={project}"):
        for c in client.containers.list(all=True, filters={"label": label}):
            c.remove(force=True, v=True)
    for n in client.networks.list(filters={"label": f"{PROJECT_LABEL}={project}"}):
        n.remove()
    for v in client.volumes.list(filters={"label": f"{PROJECT_LABEL}={project}"}):
        v.remove(force=True)


def _dump(lab: Lab, directory: Path, since: float | None = None) -> None:
    """Logs of every service, and each server's labctl status and admin pages."""
    directory.mkdir(parents=True, exist_ok=True)
    lab.refresh()
    for service in lab.containers:
        try:
            if since is not None:
                (directory / f"{service}.log").write_text(lab.logs(service, since=since))
            (directory / f"{service}.full.log").write_text(lab.logs(service))
        except Exception as exc:  # noqa: BLE001 - collect what can be collected
            (directory / f"{service}.log").write_text(f"could not read logs: {exc}\n")
    for server in SERVERS:
        if server not in lab.containers:
            continue
        notes = []
        status = lab.containers[server].exec_run(["labctl", "status"])
        notes.append(f"labctl status (exit {status.exit_code}): {status.output.decode().strip()}")
        for path in ("/metrics", "/connections"):
            result = lab.http_get_from_probe(lab.admin_url(server, path))
            notes.append(f"--- GET {path} (exit {result.rc}) ---\n{result.stdout}{result.stderr}")
        (directory / f"{server}.admin.txt").write_text("\n".join(notes) + "\n")


@pytest.fixture(scope="session")
def lab():
    reuse = os.environ.get("SEASHARD_LAB_REUSE")
    timeout = float(os.environ.get("LAB_HEALTH_TIMEOUT", "90"))
    if reuse:
        client = docker.from_env()
        nets = client.networks.list(filters={"label": f"{PROJECT_LABEL}={reuse}"})
        if not nets:
            pytest.exit(f"SEASHARD_LAB_REUSE={reuse}: no such lab running", returncode=2)
        subnet = ipaddress.ip_network(nets[0].attrs["IPAM"]["Config"][0]["Subnet"])
        handle = Lab(reuse, subnet, client, os.environ.get("LAB_IMAGE", "seashard/lab:latest"))
        handle.refresh()
        handle.wait_healthy(timeout)
        try:
            yield handle
        finally:
            if handle._bridge_capture is not None:
                handle._bridge_capture.close()
        return

    # `scripts/lab up` installs/starts the engine if needed; ask it first.
    subprocess.run([str(LAB_SCRIPT), "engine"], check=True)
    client = docker.from_env()
    # scripts/lab test names the project, so that it can clean up after a killed pytest
    project = (
        os.environ.get("SEASHARD_LAB_TEST_PROJECT") or f"seashard-lab-test-{secrets.token_hex(3)}"
    )
    token = project.rsplit("-", 1)[-1][:8]
    subnet = _free_subnet(client)
    env = dict(
        os.environ,
        SEASHARD_LAB_PROJECT=project,
        LAB_SUBNET=str(subnet),
        LAB_BRIDGE=f"sslab-{token}",
    )
    for var in (
        "LAB_GATEWAY",
        "LAB_IP_RANGE",
        "POSIX_SERVER_IP",
        "NATIVE_SERVER_IP",
        "NATIVE_STACK_IP",
        "CLIENT1_IP",
        "CLIENT2_IP",
        "PROBE_IP",
    ):
        env.pop(var, None)  # derive every address from the test subnet
    handle = Lab(project, subnet, client, env.get("LAB_IMAGE", "seashard/lab:latest"))

    def teardown() -> None:
        if handle._bridge_capture is not None:
            try:
                handle._bridge_capture.close()
            except Exception:  # noqa: BLE001
                pass
        for capture in list(handle._captures):
            try:
                capture.stop()
            except Exception:  # noqa: BLE001
                pass
        if os.environ.get("LAB_KEEP") == "1":
            print(
                f"\nLAB_KEEP=1: test lab {project} left running on {subnet} "
                f"(remove: SEASHARD_LAB_PROJECT={project} scripts/lab down)"
            )
            return
        subprocess.run([str(LAB_SCRIPT), "down"], env=env, check=False)
        left = _leftovers(client, project)
        if left:
            _force_remove(client, project)
            raise RuntimeError(f"compose down left {', '.join(left)} (removed by force)")

    try:
        up = subprocess.run([str(LAB_SCRIPT), "up", "--no-wait"], env=env)
        if up.returncode != 0:
            raise RuntimeError(f"scripts/lab up failed (exit {up.returncode}) for {project}")
        handle.refresh()
        handle.wait_healthy(timeout)
    except BaseException:
        try:
            _dump(handle, ARTIFACTS / "lab-session-setup")
        except Exception:  # noqa: BLE001
            pass
        teardown()
        raise
    try:
        yield handle
    finally:
        teardown()


# ---------------------------------------------------------------- failure artifacts


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def _artifact_dir(item) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid.replace("::", "__")).strip("_")
    return ARTIFACTS / name[:150]


@pytest.fixture(autouse=True)
def _lab_artifacts(request):
    """On failure: logs, labctl status and admin pages of the lab, a pcap of the
    whole lab network during the test (tcpdump on the lab's host bridge) and the
    pcaps of this test's own captures, under artifacts/<test>/."""
    if "lab" not in request.fixturenames:
        yield
        return
    started = time.time()
    handle: Lab = request.getfixturevalue("lab")
    first_capture = len(handle._captures)
    name = f"test-{secrets.token_hex(4)}"
    bridge = None
    try:
        bridge = handle.bridge_capture()
        bridge.start(name)
    except Exception as exc:  # noqa: BLE001 - the test itself matters more
        print(f"no lab network capture for this test: {exc}")
        bridge = None
    yield
    failed = any(
        getattr(request.node, f"rep_{when}", None) is not None
        and getattr(request.node, f"rep_{when}").failed
        for when in ("setup", "call")
    )
    directory = _artifact_dir(request.node)
    if bridge is not None:
        try:
            bridge.stop(name, directory / "lab-network.pcap" if failed else None)
        except Exception as exc:  # noqa: BLE001
            if failed:
                directory.mkdir(parents=True, exist_ok=True)
                (directory / "lab-network.pcap.error").write_text(f"{exc}\n")
    captures = handle._captures[first_capture:]
    del handle._captures[first_capture:]
    for capture in captures:
        try:
            capture.stop()
            if failed:
                capture.save(directory / f"{capture.name}.pcap")
        except Exception as exc:  # noqa: BLE001
            if failed:
                directory.mkdir(parents=True, exist_ok=True)
                (directory / f"{capture.name}.pcap.error").write_text(f"{exc}\n")
    if failed:
        _dump(handle, directory, since=started - 1)


# ---------------------------------------------------------------- lab state


@pytest.fixture
def restore_servers(lab):
    """For tests that restart a server with other arguments: afterwards both
    servers run their container's default arguments again."""
    yield lab
    errors = []
    for server in SERVERS:
        try:
            lab.ops.restore(server)
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{server}: {exc}")
    if errors:
        pytest.fail("could not restore the servers: " + "; ".join(errors))


@pytest.fixture(scope="module")
def quiet_clients(lab):
    """The clients' continuous load generators stopped for a module whose
    assertions count every connection a server sees; started again after."""
    lab.ops.clients_quiet()
    yield lab
    lab.ops.clients_resume()
    for client in CLIENTS:
        assert lab.program_running(client), f"{client}: load generator did not start again"
