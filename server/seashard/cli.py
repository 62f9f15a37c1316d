"""The `seashard` command: `serve` runs the tutorial's services, `load` drives them."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import NoReturn

from seashard import smp
from seashard.net import LoadBalancing
from seashard.net.native import limits as native_limits

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and --help stays complete)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: not a number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {value}: must be 1..65535")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {value}: must be at least 1")
    return value


def _ipv4(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid IPv4 address {text!r}") from None


def _add_smp(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-c",
        "--smp",
        type=_positive,
        default=None,
        metavar="N",
        help="shards: one process each, pinned to its own CPU (default: every CPU we may use)",
    )


def build_parser() -> argparse.ArgumentParser:
    from seashard.serve import SERVICES

    parser = _Parser(prog="seashard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="run echo (1234), canned (1235), accept-logger (1236)")
    serve.add_argument(
        "services",
        nargs="*",
        metavar="SERVICE",
        help=f"services to run, among {', '.join(SERVICES)} (default: all three)",
    )
    _add_smp(serve)
    serve.add_argument("--network-stack", choices=["posix", "native"], default="posix")
    serve.add_argument("--address", type=_ipv4, default="0.0.0.0", help="posix bind address")
    serve.add_argument("--echo-port", type=_port, default=1234)
    serve.add_argument("--canned-port", type=_port, default=1235)
    serve.add_argument("--accept-logger-port", type=_port, default=1236)
    serve.add_argument(
        "--reuse-address",
        action="store_true",
        help="listen despite TIME_WAIT connections on the port (SO_REUSEADDR)",
    )
    serve.add_argument(
        "--lba",
        choices=[m.value for m in LoadBalancing],
        default=LoadBalancing.CONNECTION_DISTRIBUTION.value,
        help="how shard 0 picks the shard that owns a new connection",
    )
    serve.add_argument("--fixed-cpu", type=int, default=0, metavar="SHARD", help="for --lba fixed")
    serve.add_argument(
        "--shard0-only",
        action="store_true",
        help="listen on shard 0 only, as the tutorial's first examples do (connections "
        "steered to other shards are closed and logged)",
    )
    serve.add_argument("--admin-port", type=_port, default=None, help="HTTP /metrics, /connections")
    serve.add_argument("--admin-address", type=_ipv4, default="0.0.0.0")
    serve.add_argument(
        "--grace", type=float, default=5.0, help="seconds live connections get at shutdown"
    )
    serve.add_argument("--no-pin", action="store_true", help="do not pin shards to CPUs")
    native = serve.add_argument_group("native stack")
    native.add_argument("--tap-device", metavar="NAME", help="multiqueue TAP, one queue per shard")
    native.add_argument(
        "--packet-device", metavar="NAME", help="interface (e.g. a veth end) via AF_PACKET fanout"
    )
    native.add_argument("--host-ipv4-addr", type=_ipv4, default="192.168.122.2")
    native.add_argument("--gw-ipv4-addr", type=_ipv4, default=None)
    native.add_argument("--netmask-ipv4-addr", type=_ipv4, default="255.255.255.0")
    native.add_argument("--hw-addr", default=None, help="our MAC (default: derived from our IP)")
    native.add_argument(
        "--device-queues",
        type=_positive,
        default=None,
        metavar="N",
        help="device queues to open (default: one per shard; fewer: software RSS steers flows)",
    )
    native.add_argument(
        "--state-dir", default=None, help="where TIME_WAIT is kept across runs (/run/seashard)"
    )
    native_limits.add_arguments(serve.add_argument_group("native stack limits (per shard)"))

    from seashard.apps import loadgen

    loadgen.add_arguments(sub.add_parser("load", help="sharded load generator"), _add_smp)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from seashard.serve import NativeConfig, ServeConfig, run

    ports = {
        "echo": args.echo_port,
        "canned": args.canned_port,
        "accept-logger": args.accept_logger_port,
    }
    unknown = [s for s in args.services if s not in ports]
    if unknown:
        return _fail(f"unknown service {unknown[0]!r} (choose from {', '.join(ports)})")
    chosen = list(dict.fromkeys(args.services)) or list(ports)
    services = {name: ports[name] for name in chosen}
    if len(set(services.values())) != len(services):
        return _fail("two services on the same port")
    cpus = smp.available_cpus()
    count = args.smp or len(cpus)
    if not args.no_pin and count > len(cpus):
        return _fail(
            f"-c {count} exceeds the {len(cpus)} CPUs available ({','.join(map(str, cpus))})"
        )
    lba = LoadBalancing(args.lba)
    if lba is LoadBalancing.FIXED and not 0 <= args.fixed_cpu < count:
        return _fail(f"--fixed-cpu {args.fixed_cpu}: no such shard (shards 0..{count - 1})")
    if args.network_stack == "native":
        if bool(args.tap_device) == bool(args.packet_device):
            return _fail("the native stack needs exactly one of --tap-device or --packet-device")
    elif args.tap_device or args.packet_device:
        return _fail("--tap-device/--packet-device need --network-stack native")
    try:
        limits = native_limits.from_args(args)
    except ValueError as exc:
        return _fail(str(exc))
    config = ServeConfig(
        smp=count,
        services=services,
        address=args.address,
        stack=args.network_stack,
        reuse_address=args.reuse_address,
        lba=lba,
        fixed_cpu=args.fixed_cpu,
        shard0_only=args.shard0_only,
        admin_port=args.admin_port,
        admin_address=args.admin_address,
        grace=args.grace,
        pin=not args.no_pin,
        native=NativeConfig(
            tap_device=args.tap_device,
            packet_device=args.packet_device,
            host_ipv4_addr=args.host_ipv4_addr,
            gw_ipv4_addr=args.gw_ipv4_addr,
            netmask_ipv4_addr=args.netmask_ipv4_addr,
            hw_addr=args.hw_addr,
            device_queues=args.device_queues,
            state_dir=args.state_dir,
            limits=limits,
        ),
    )
    return run(config)


def _fail(message: str) -> int:
    print(f"seashard: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    from seashard.apps import loadgen

    return loadgen.run_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
