"""The stack registry: stacks by name with their own options; nothing else imports a stack."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import seashard
from seashard import cli, net
from seashard.net.stacks import NativeOptions, PosixOptions

PACKAGE = Path(seashard.__file__).resolve().parent
STACK_MODULES = ("seashard.net.posix", "seashard.net.native")


def test_registry_has_both_stacks_with_typed_options() -> None:
    assert set(net.STACKS) == {"posix", "native"}
    args = cli.build_parser().parse_args(["serve"])
    assert net.STACKS["posix"].from_args(args) == PosixOptions()
    args = cli.build_parser().parse_args(
        ["load", "--host", "10.0.0.1", "--network-stack", "native", "--packet-device", "veth1",
         "--host-ipv4-addr", "10.0.0.2", "--device-queues", "2"]
    )  # fmt: skip
    stack_type, options = net.stacks.from_args(args)
    assert stack_type is net.STACKS["native"]
    assert options == NativeOptions(
        packet_device="veth1", host_ipv4_addr="10.0.0.2", device_queues=2
    )


def test_another_stacks_options_are_refused() -> None:
    args = cli.build_parser().parse_args(["serve", "--hw-addr", "02:00:00:00:00:01"])
    with pytest.raises(net.OptionError, match="--hw-addr needs --network-stack native"):
        net.stacks.from_args(args)


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


# The packetdrill runner's native executor is the one exception: it plays a script against
# the native stack's own layers (memory device, Interface, TcpLayer) with a virtual clock,
# so that stack, not "a stack", is what it drives.
NATIVE_HARNESSES = {Path("pktdrill/native.py")}


def test_nothing_outside_net_imports_a_stack_module() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if (PACKAGE / "net") in path.parents or path.relative_to(PACKAGE) in NATIVE_HARNESSES:
            continue
        for name in _imports(path):
            if name.startswith(STACK_MODULES):
                offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert offenders == []
