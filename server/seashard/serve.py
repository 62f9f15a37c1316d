"""`seashard serve`: the tutorial's services on every shard, over the chosen stack."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from seashard import net, smp
from seashard.admin import DEFAULT_ADDRESS, AdminServer
from seashard.apps import accept_logger, canned, echo
from seashard.apps.common import service_loop
from seashard.net import BindError, ListenOptions, LoadBalancing, SocketAddress
from seashard.net.stacks import Prepared as StackPrepared

SERVICES: dict[str, ModuleType] = {
    "echo": echo,
    "canned": canned,
    "accept-logger": accept_logger,
}


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
    admin_address: str = DEFAULT_ADDRESS  # local by default; --admin-address widens it
    grace: float = 5.0
    pin: bool = True
    stack_options: Any = None  # the chosen stack's typed options (net.STACKS[stack].from_args)

    def listen_options(self) -> ListenOptions:
        return ListenOptions(
            reuse_address=self.reuse_address, lba=self.lba, fixed_cpu=self.fixed_cpu
        )


@dataclass
class Prepared:
    """What the supervisor binds before forking: the stack's listeners, the admin socket."""

    stack: StackPrepared = field(default_factory=StackPrepared)
    admin: AdminServer | None = None

    def close(self) -> None:
        self.stack.close()
        if self.admin is not None:
            self.admin.close()


def _bind_failed(config: ServeConfig, exc: BindError, port: int | None = None) -> smp.StartupError:
    """The tutorial's line: ``bind: Address already in use (ADDR:PORT, SERVICE)``."""
    port = exc.address.port if exc.address is not None else port
    name = next((n for n, p in config.services.items() if p == port), "?")
    return smp.StartupError(f"{exc} ({config.address}:{port}, {name})")


def prepare(config: ServeConfig) -> Prepared:
    """Bind what can be bound before any shard exists; a StartupError says what failed.

    The posix stack binds its listening sockets here, and the native stack checks the
    TIME_WAIT its last run left, so that `bind: Address already in use` comes at once,
    with no shard, admin thread or device opened.
    """
    stack_type = net.STACKS[config.stack]
    listens = [
        (SocketAddress(config.address, port), config.listen_options())
        for port in config.services.values()
    ]
    try:
        prepared = Prepared(stack_type.prepare(config.stack_options, listens))
    except BindError as exc:
        raise _bind_failed(config, exc) from None
    if config.admin_port is not None:
        try:
            prepared.admin = AdminServer(config.admin_address, config.admin_port)
        except BaseException:
            prepared.close()
            raise
    return prepared


async def shard_main(config: ServeConfig, shard: smp.Shard, prepared: Prepared) -> None:
    stack = net.STACKS[config.stack].create(shard, config.stack_options, prepared.stack)
    net.set_stack(stack)
    options = config.listen_options()
    loops: list[asyncio.Task[None]] = []
    admin = prepared.admin if shard.id == 0 else None
    if shard.id != 0:
        prepared.close()  # inherited copies: shard 0 alone listens and serves the admin
    try:
        if shard.id == 0 or not config.shard0_only:
            for name, port in config.services.items():
                try:
                    listener = net.listen(SocketAddress(config.address, port), options)
                except BindError as exc:
                    raise _bind_failed(config, exc, port) from None
                app = SERVICES[name]
                loops.append(shard.loop.create_task(service_loop(listener, app.handle_connection)))
        if admin is not None:
            admin.start(shard.loop)  # after the listeners: a failed bind starts nothing
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

    try:
        prepared = prepare(config)
    except smp.StartupError as exc:
        print(exc, file=sys.stderr, flush=True)
        return smp.EXIT_START_FAILED

    async def main(shard: smp.Shard) -> None:
        await shard_main(config, shard, prepared)

    return smp.run(
        config.smp,
        main,
        cpus=cpus,
        pin=config.pin,
        on_ready=on_ready,
        after_fork=prepared.close,  # the shards have their copies; shard 0 keeps its own
    )
