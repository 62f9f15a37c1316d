"""The lab suites: a thin pytest layer over the lab package (seashard_lab).

`lab` (session scope) is a `seashard_lab.lab.Lab` over a deployment of its
own -- compose project ``seashard-lab-test-<hex>`` on its own /24 and host
bridge, so it never touches a lab a user has running.  It builds the image
(`scripts/lab build`: engine, base image, image), brings the lab up through
the package (`Deployment.up`), and always takes it down and checks that
nothing of the project is left.  When a test fails, the servers' logs, their
admin pages and the pcaps of the captures the test ran (and of the whole lab
network) are written to ``artifacts/<test name>/``, with the charts a scenario
leaves (connections per shard over time, shares, latency CDF).

Environment:
  SEASHARD_LAB_REUSE=PROJECT  use that running lab (e.g. seashard-lab from
                              `scripts/lab up`, or a stack of `up --swarm` with
                              SEASHARD_LAB_DEPLOYMENT=swarm) and leave it running
  SEASHARD_LAB_DEPLOYMENT     compose (default), or swarm: a stack on the engine's
                              swarm (`scripts/lab test --swarm` sets it); other
                              deployments of the interface plug in at `make_deployment`
  LAB_HEALTH_TIMEOUT          seconds to wait for the healthchecks (90)
  LAB_TEST_POOL               where a test lab takes its free /24 (172.28.128.0/17;
                              swarm: LAB_SWARM_POOL, 10.231.0.0/16)
  LAB_KEEP=1                  do not tear the test lab down (debugging)
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import subprocess
import time
from functools import cached_property
from pathlib import Path

import pytest
import testinfra

from seashard_lab import ARTIFACTS, ROOT, swarm_deployment, swarm_verbs
from seashard_lab.deployment import ComposeDeployment, Deployment, current
from seashard_lab.lab import Lab
from seashard_lab.plan import CLIENTS, SERVERS, AddressPlan
from seashard_lab.runtime import Engine
from seashard_lab.swarm_deployment import SwarmDeployment, SwarmLab

LAB_SCRIPT = ROOT / "scripts" / "lab"


class TestLab(Lab):
    """The package's Lab, plus testinfra hosts for the suites' host-level checks."""

    @cached_property
    def hosts(self) -> dict[str, testinfra.host.Host]:
        return {
            s: testinfra.get_host(f"docker://{self.deployment.container(s).name}")
            for s in self.deployment.services()
        }


class SwarmTestLab(SwarmLab, TestLab):
    """The same on a swarm stack (SwarmLab: where the native stack and admin pages are)."""


def make_deployment(project: str, plan: AddressPlan) -> Deployment:
    kind = os.environ.get("SEASHARD_LAB_DEPLOYMENT", "compose")
    if kind == "compose":
        return ComposeDeployment(project, plan)
    if kind == "swarm":
        # a stack on the engine's swarm, on a free 10.231.N.0/24 (a one-node swarm is
        # made when there is none, and left by down() once no lab stack is on it)
        return swarm_verbs.test_deployment(project)
    raise pytest.UsageError(f"SEASHARD_LAB_DEPLOYMENT={kind}: unknown (compose, swarm)")


def make_lab(deployment: Deployment) -> TestLab:
    if isinstance(deployment, SwarmDeployment):
        return SwarmTestLab(deployment)
    return TestLab(deployment)


def free_subnet(engine: Engine) -> ipaddress.IPv4Network:
    used = [ipaddress.ip_network(s, strict=False) for s in engine.all_subnets() if ":" not in s]
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    used += [
        ipaddress.ip_network(w, strict=False)
        for w in re.findall(r"^(\d+\.\d+\.\d+\.\d+/\d+)", routes, re.M)
    ]
    # LAB_TEST_POOL: where test labs take their /24 (several checkouts on one engine)
    pool = ipaddress.ip_network(os.environ.get("LAB_TEST_POOL") or "172.28.128.0/17")
    candidates = list(pool.subnets(new_prefix=24)) if pool.prefixlen < 24 else [pool]
    free = [c for c in candidates if not any(c.overlaps(u) for u in used)]
    if not free:
        raise RuntimeError(f"no free /24 in {pool} for the test lab (LAB_TEST_POOL)")
    return secrets.choice(free)


def dump(lab: Lab, directory: Path, since: float | None = None) -> None:
    """Logs of every service, and each server's labctl status and admin pages."""
    directory.mkdir(parents=True, exist_ok=True)
    for service in lab.deployment.services():
        try:
            if since is not None:
                (directory / f"{service}.log").write_text(lab.logs(service, since=since))
            (directory / f"{service}.full.log").write_text(lab.logs(service))
        except Exception as exc:  # noqa: BLE001 - collect what can be collected
            (directory / f"{service}.log").write_text(f"could not read logs: {exc}\n")
    for server in SERVERS:
        try:
            status = lab.labctl(server, "status")
            notes = [f"labctl status (exit {status.rc}): {status.stdout.strip()}"]
            notes += [f"--- GET {p} ---\n{text}" for p, text in lab.snapshot(server).items()]
            (directory / f"{server}.admin.txt").write_text("\n".join(notes) + "\n")
        except Exception as exc:  # noqa: BLE001
            (directory / f"{server}.admin.txt").write_text(f"{exc}\n")


@pytest.fixture(scope="session")
def lab():
    timeout = float(os.environ.get("LAB_HEALTH_TIMEOUT", "90"))
    reuse = os.environ.get("SEASHARD_LAB_REUSE")
    if reuse:
        swarm = os.environ.get("SEASHARD_LAB_DEPLOYMENT") == "swarm"
        deployment = swarm_deployment.current(reuse) if swarm else current(reuse)
        if not deployment.running():
            pytest.exit(f"SEASHARD_LAB_REUSE={reuse}: no such lab running", returncode=2)
        handle = make_lab(deployment)
        deployment.wait_healthy(timeout)
        try:
            yield handle
        finally:
            handle.close()
        return

    # engine, base image and the lab image, as `scripts/lab build` makes sure of them
    subprocess.run([str(LAB_SCRIPT), "build"], check=True)
    engine = Engine()
    # scripts/lab test names the project, so that it can clean up after a killed pytest
    project = (
        os.environ.get("SEASHARD_LAB_TEST_PROJECT") or f"seashard-lab-test-{secrets.token_hex(3)}"
    )
    token = project.rsplit("-", 1)[-1][:8]
    plan = AddressPlan.from_env(
        {"LAB_SUBNET": str(free_subnet(engine)), "LAB_BRIDGE": f"sslab-{token}"}
    )
    deployment = make_deployment(project, plan)
    handle = make_lab(deployment)

    def teardown() -> None:
        handle.close()
        if os.environ.get("LAB_KEEP") == "1":
            print(
                f"\nLAB_KEEP=1: test lab {project} left running on {plan.subnet} "
                f"(remove: SEASHARD_LAB_PROJECT={project} scripts/lab down)"
            )
            return
        forced = deployment.down()
        if forced:
            raise RuntimeError(f"down left {', '.join(forced)} (removed by force)")

    try:
        deployment.up(wait=True, timeout=timeout)
    except BaseException:
        try:
            dump(handle, ARTIFACTS / "lab-session-setup")
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
    first_capture = len(handle.captures)
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
    captures = handle.captures[first_capture:]
    del handle.captures[first_capture:]
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
        dump(handle, directory, since=started - 1)
        # the same charts a scenario leaves, over this test's own time
        try:
            from seashard_lab.plots import write_lab_plots

            end = time.time()
            window = handle.impairment_window(end, since=started)
            print(write_lab_plots(handle, directory, started, end, request.node.name, window))
        except Exception as exc:  # noqa: BLE001 - the logs and pcaps matter more
            (directory / "plots-missing.txt").write_text(f"no plots: {exc}\n")


# ---------------------------------------------------------------- lab state


@pytest.fixture
def restore_servers(lab):
    """For tests that restart a server with other arguments: afterwards both
    servers run their container's default arguments again."""
    yield lab
    errors = []
    for server in SERVERS:
        try:
            lab.restore(server)
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{server}: {exc}")
    if errors:
        pytest.fail("could not restore the servers: " + "; ".join(errors))


@pytest.fixture(scope="module")
def quiet_clients(lab):
    """The clients' continuous load generators stopped for a module whose
    assertions count every connection a server sees; started again after."""
    lab.clients_quiet()
    yield lab
    lab.clients_resume()
    for client in CLIENTS:
        assert lab.program_running(client), f"{client}: load generator did not start again"
