"""The stack registry (Seastar's ``network_stack_registry``): every stack by name, with its options.

Each entry owns its typed options (a dataclass), how they appear on the command
line (``add_arguments`` / ``from_args``), what must be checked before any shard
starts (``prepare``: the posix stack binds its listening sockets there, so a
busy port fails at once), and how to make the stack on a shard (``create``).
`seashard serve`, `seashard load` and any tool pick a stack here by name; the
stack modules are imported only in ``create``, and by nothing outside net/.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from seashard import argtypes
from seashard.net.api import ListenOptions, NetworkStack, SocketAddress
from seashard.net.native import limits as native_limits


class OptionError(ValueError):
    """A stack option that cannot be used; ``str()`` is the one line the user sees."""


class Prepared:
    """What ``prepare`` made in the supervisor for shard 0 (e.g. bound sockets)."""

    def close(self) -> None:
        """Give it up: the supervisor after forking, the shards that are not shard 0."""


class StackType:
    """One registry entry. Subclasses set ``name``, ``help``, and override what they need."""

    name = ""
    help = ""

    def __init__(self) -> None:
        self._options: dict[str, tuple[str, Any]] = {}  # dest -> (flag, default)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this stack's options (as a group) to ``parser``."""

    def _add(self, group: Any, *flags: str, **kwargs: Any) -> None:
        action = group.add_argument(*flags, **kwargs)  # one parser or several: same options
        self._options[action.dest] = (action.option_strings[0], action.default)

    def given(self, args: argparse.Namespace) -> list[str]:
        """The options of this stack the user set (so another stack can refuse them)."""
        return [
            flag
            for dest, (flag, default) in self._options.items()
            if getattr(args, dest, default) != default
        ]

    def from_args(self, args: argparse.Namespace) -> Any:
        """The typed options from parsed arguments; raises OptionError."""
        return None

    def prepare(
        self, options: Any, listens: Sequence[tuple[SocketAddress, ListenOptions]]
    ) -> Prepared:
        """Runs in the supervisor before any shard is forked; raises BindError to stop there."""
        return Prepared()

    def create(self, shard: Any, options: Any, prepared: Prepared | None = None) -> NetworkStack:
        raise NotImplementedError


class _Tracked:
    """An argument group whose options a StackType records, so another stack refuses them."""

    def __init__(self, owner: StackType, group: Any) -> None:
        self._owner, self._group = owner, group

    def add_argument(self, *flags: str, **kwargs: Any) -> None:
        self._owner._add(self._group, *flags, **kwargs)


# ------------------------------------------------------------------------ posix


@dataclass(frozen=True)
class PosixOptions:
    """The posix stack has no options of its own: the kernel does the work."""


class PosixStackType(StackType):
    name = "posix"
    help = "kernel sockets; shard 0 accepts and hands connections out"

    def from_args(self, args: argparse.Namespace) -> PosixOptions:
        return PosixOptions()

    def prepare(
        self, options: Any, listens: Sequence[tuple[SocketAddress, ListenOptions]]
    ) -> Prepared:
        from seashard.net.posix import Prebound

        return Prebound.bind_all(listens)

    def create(self, shard: Any, options: Any, prepared: Prepared | None = None) -> NetworkStack:
        from seashard.net.posix import PosixStack, Prebound

        return PosixStack(shard, prepared if isinstance(prepared, Prebound) else None)


# ----------------------------------------------------------------------- native


@dataclass
class NativeOptions:
    """What the native stack needs: its device, its addresses, where TIME_WAIT is kept."""

    tap_device: str | None = None
    packet_device: str | None = None
    host_ipv4_addr: str = "192.168.122.2"
    gw_ipv4_addr: str | None = None
    netmask_ipv4_addr: str = "255.255.255.0"
    hw_addr: str | None = None
    device_queues: int | None = None  # default: one per shard
    state_dir: str | None = None  # where TIME_WAIT outlives a run
    offload: bool = True  # virtio-net offloads where the kernel accepts them (--no-offload)
    # what a peer can make a shard hold (SYN queue, TIME_WAIT table, reassembly, ...)
    limits: native_limits.NativeLimits = field(default_factory=native_limits.NativeLimits)


class NativeStackType(StackType):
    name = "native"
    help = "the userspace TCP/IP stack on a TAP or AF_PACKET device"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("native stack")
        self._add(g, "--tap-device", metavar="NAME", help="multiqueue TAP, one queue per shard")
        self._add(
            g,
            "--packet-device",
            metavar="NAME",
            help="interface (e.g. a veth end) via AF_PACKET fanout",
        )
        self._add(g, "--host-ipv4-addr", type=argtypes.ipv4, default="192.168.122.2")
        self._add(g, "--gw-ipv4-addr", type=argtypes.ipv4, default=None)
        self._add(g, "--netmask-ipv4-addr", type=argtypes.ipv4, default="255.255.255.0")
        self._add(g, "--hw-addr", default=None, help="our MAC (default: derived from our IP)")
        self._add(
            g,
            "--device-queues",
            type=argtypes.positive,
            default=None,
            metavar="N",
            help="device queues to open (default: one per shard; fewer: software RSS steers flows)",
        )
        self._add(
            g,
            "--state-dir",
            default=None,
            help="where TIME_WAIT is kept across runs (/run/seashard)",
        )
        self._add(
            g,
            "--no-offload",
            dest="offload",
            action="store_false",
            help="no virtio-net offloads (checksum, TSO, GRO) on the device: whole, "
            "checksummed MTU-sized frames both ways",
        )
        native_limits.add_arguments(
            _Tracked(self, parser.add_argument_group("native stack limits (per shard)"))
        )

    def from_args(self, args: argparse.Namespace) -> NativeOptions:
        if bool(args.tap_device) == bool(args.packet_device):
            raise OptionError(
                "the native stack needs exactly one of --tap-device or --packet-device"
            )
        try:
            limits = native_limits.from_args(args)
        except ValueError as exc:
            raise OptionError(str(exc)) from None
        return NativeOptions(
            tap_device=args.tap_device,
            packet_device=args.packet_device,
            host_ipv4_addr=args.host_ipv4_addr,
            gw_ipv4_addr=args.gw_ipv4_addr,
            netmask_ipv4_addr=args.netmask_ipv4_addr,
            hw_addr=args.hw_addr,
            device_queues=args.device_queues,
            state_dir=args.state_dir,
            offload=args.offload,
            limits=limits,
        )

    def prepare(
        self, options: Any, listens: Sequence[tuple[SocketAddress, ListenOptions]]
    ) -> Prepared:
        from seashard.net.native.stack import check_time_wait

        check_time_wait(options.state_dir, options.host_ipv4_addr, list(listens))
        return Prepared()

    def create(self, shard: Any, options: Any, prepared: Prepared | None = None) -> NetworkStack:
        from seashard.net.native.stack import NativeStack

        return NativeStack(shard, options)


STACKS: dict[str, StackType] = {t.name: t for t in (PosixStackType(), NativeStackType())}
DEFAULT_STACK = "posix"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--network-stack`` and every registered stack's options."""
    parser.add_argument(
        "--network-stack",
        choices=list(STACKS),
        default=DEFAULT_STACK,
        help="; ".join(f"{t.name}: {t.help}" for t in STACKS.values()),
    )
    for stack_type in STACKS.values():
        stack_type.add_arguments(parser)


def from_args(args: argparse.Namespace) -> tuple[StackType, Any]:
    """The chosen stack and its options; raises OptionError, also for another stack's options."""
    chosen = STACKS[args.network_stack]
    for other in STACKS.values():
        flags = other.given(args) if other is not chosen else []
        if flags:
            verb = "needs" if len(flags) == 1 else "need"
            raise OptionError(f"{'/'.join(flags)} {verb} --network-stack {other.name}")
    return chosen, chosen.from_args(args)
