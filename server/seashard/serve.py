"""`seashard serve`: the tutorial's services on every shard, over the chosen stack."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from seashard import net, smp
from seashard.apps import accept_logger, canned, echo
from seashard.apps.common import service_loop
from seashard.net import BindError, ListenOptions, LoadBalancing, SocketAddress
from seashard.net.native.limits import NativeLimits

SERVICES: dict[str, ModuleType] = {
    "echo": echo,
    "canned": canned,
    "accept-logger": accept_logger,
}


@dataclass
class NativeConfig:
    tap_device: str | None = None
    packet_device: str | None = None
    host_ipv4_addr: str = "192.168.122.2"
    gw_ipv4_addr: str | None = None
    netmask_ipv4_addr: str = "255.255.255.0"
    hw_addr: str | None = None
    device_queues: int | None = None  # default: one per shard
    state_dir: str | None = None  # where TIME_WAIT outlives a run
    limits: NativeLimits = field(default_factory=NativeLimits)  # what a peer can make us hold


@dataclass
class ServeConfig:
    smp: int
    services: dict[str, int]  # name -> port
    address: str = "0.0.0.0"
    stack: str = "posix"
    reuse_address: bool = False
    lba: LoadBalancing = LoadBalancing.CONNECTION_DISTRIBUTION
    fixed_cpu: int = 0
    shard0_only: bool = False
    admin_port: int | None = None
    admin_address: str = "0.0.0.0"
    grace: float = 5.0
    pin: bool = True
    native: NativeConfig = field(default_factory=NativeConfig)


def make_stack(config: ServeConfig, shard: smp.Shard) -> Any:
    if config.stack == "posix":
        from seashard.net.posix import PosixStack

        return PosixStack(shard)
    if config.stack == "native":
        from seashard.net.native.stack import NativeStack

        return NativeStack(shard, config.native)
    raise smp.StartupError(f"unknown network stack {config.stack!r}")


async def shard_main(config: ServeConfig, shard: smp.Shard) -> None:
    stack = make_stack(config, shard)
    net.set_stack(stack)
    options = ListenOptions(
        reuse_address=config.reuse_address, lba=config.lba, fixed_cpu=config.fixed_cpu
    )
    loops: list[asyncio.Task[None]] = []
    admin = None
    if shard.id == 0 and config.admin_port is not None:
        from seashard.admin import AdminServer

        admin = AdminServer(config.admin_address, config.admin_port, shard.loop)
    try:
        if shard.id == 0 or not config.shard0_only:
            for name, port in config.services.items():
                try:
                    listener = net.listen(SocketAddress(config.address, port), options)
                except BindError as exc:
                    raise smp.StartupError(f"{exc} ({config.address}:{port}, {name})") from None
                app = SERVICES[name]
                loops.append(shard.loop.create_task(service_loop(listener, app.handle_connection)))
        smp.announce_started()
        await shard.stopping.wait()
        await stack.stop(config.grace)
        if loops:
            await asyncio.wait(loops, timeout=1.0)
    finally:
        if admin is not None:
            admin.close()


def describe(config: ServeConfig, pids: list[int], cpus: list[int]) -> str:
    services = ", ".join(
        f"{name} on {config.address}:{port}" for name, port in config.services.items()
    )
    where = "shard 0 only" if config.shard0_only else "every shard"
    pinned = f"CPUs {','.join(map(str, cpus[: config.smp]))}" if config.pin else "not pinned"
    line = (
        f"seashard: serving {services} ({where}) with {config.smp} shard(s), {config.stack} stack, "
        f"lba {config.lba.value}; shard pids {','.join(map(str, pids))}; {pinned}"
    )
    if config.admin_port is not None:
        line += f"; admin http://{config.admin_address}:{config.admin_port}/metrics"
    return line


def run(config: ServeConfig) -> int:
    cpus = smp.available_cpus()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    def on_ready(pids: list[int]) -> None:
        print(describe(config, pids, cpus), file=sys.stderr, flush=True)

    async def main(shard: smp.Shard) -> None:
        await shard_main(config, shard)

    return smp.run(config.smp, main, cpus=cpus, pin=config.pin, on_ready=on_ready)
