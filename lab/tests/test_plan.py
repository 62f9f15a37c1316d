"""The address plan (plan.py) and docker-compose.yml's defaults agree."""

from __future__ import annotations

import re

import pytest

from seashard_lab import COMPOSE_FILE
from seashard_lab.plan import (
    ADMIN_PORT,
    LOAD_METRICS_ARGS,
    SERVE_ADMIN_ARGS,
    AddressPlan,
    PlanError,
    compose_defaults,
)

DEFAULT = re.compile(r"\$\{([A-Z0-9_]+):-((?:[^}]|\}(?!\s*$))*?)\}")


def compose_text() -> str:
    return COMPOSE_FILE.read_text()


def test_every_default_in_the_compose_file_is_the_plans():
    found: dict[str, set[str]] = {}
    for m in DEFAULT.finditer(compose_text()):
        found.setdefault(m.group(1), set()).add(m.group(2))
    expected = compose_defaults()
    assert found, "no ${VAR:-default} in docker-compose.yml?"
    for var, values in found.items():
        assert var in expected, f"docker-compose.yml reads {var}, which plan.py does not know"
        assert values == {expected[var]}, f"{var}: compose has {values}, plan {expected[var]!r}"
    # and every address of the plan is one the compose file uses
    for var in ("POSIX_SERVER_IP", "NATIVE_SERVER_IP", "NATIVE_STACK_IP", "CLIENT1_IP"):
        assert var in found, var


def test_admin_urls_use_the_plans_admin_port():
    ports = set(re.findall(r"LAB_ADMIN_URL: http://\S+?:(\d+)/metrics", compose_text()))
    assert ports == {str(ADMIN_PORT)}
    assert f"--admin-port {ADMIN_PORT}" in SERVE_ADMIN_ARGS
    assert "--admin-address 0.0.0.0" in SERVE_ADMIN_ARGS


def test_load_metrics_args_are_empty_or_the_metrics_port():
    assert LOAD_METRICS_ARGS in ("", "--metrics-port 9200")


def test_every_address_derives_from_the_subnet():
    plan = AddressPlan.from_env({"LAB_SUBNET": "172.29.7.0/24"})
    assert plan.gateway == "172.29.7.1"
    assert plan.ip_range == "172.29.7.128/25"
    assert plan.ip("posix-server") == "172.29.7.10"
    assert plan.service_ip("native-server") == "172.29.7.21"
    assert plan.admin_url("native-server") == "http://172.29.7.20:9100/metrics"
    env = plan.env()
    assert env["CLIENT2_IP"] == "172.29.7.32" and env["PROBE_IP"] == "172.29.7.40"


def test_one_address_can_be_given_on_its_own():
    plan = AddressPlan.from_env({"LAB_SUBNET": "172.29.7.0/24", "PROBE_IP": "172.29.7.99"})
    assert plan.ip("probe") == "172.29.7.99" and plan.ip("client-1") == "172.29.7.31"


@pytest.mark.parametrize("subnet", ["172.29.0.0/16", "not-a-subnet"])
def test_a_subnet_the_plan_cannot_derive_from_is_refused(subnet):
    with pytest.raises(PlanError):
        AddressPlan.from_env({"LAB_SUBNET": subnet})
