"""The `seashard` command: `serve` runs the tutorial's services, `load` drives them."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

import seashard
from seashard import accel, argtypes, net, smp
from seashard.net import LoadBalancing

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and --help stays complete)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _add_smp(p: argparse.ArgumentParser, default: str = "every CPU we may use") -> None:
    p.add_argument(
        "-c",
        "--smp",
        type=argtypes.positive,
        default=None,
        metavar="N",
        help=f"shards: one process each, pinned to its own CPU (default: {default})",
    )


def build_parser() -> argparse.ArgumentParser:
    from seashard.serve import SERVICES

    parser = _Parser(prog="seashard", description=__doc__)
    parser.add_argument(
        "--version",
        action="version",
        version=f"seashard {seashard.__version__}, {accel.describe()}",
        help="the version, and whether the compiled accelerator runs",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="run echo (1234), canned (1235), accept-logger (1236)")
    serve.add_argument(
        "services",
        nargs="*",
        metavar="SERVICE",
        help=f"services to run, among {', '.join(SERVICES)} (default: all three)",
    )
    _add_smp(serve)
    serve.add_argument(
        "--address", type=argtypes.ipv4, default="0.0.0.0", help="posix bind address"
    )
    serve.add_argument("--echo-port", type=argtypes.port, default=1234)
    serve.add_argument("--canned-port", type=argtypes.port, default=1235)
    serve.add_argument("--accept-logger-port", type=argtypes.port, default=1236)
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
    serve.add_argument(
        "--admin-port", type=argtypes.port, default=None, help="HTTP /metrics, /connections"
    )
    serve.add_argument(
        "--admin-address",
        type=argtypes.ipv4,
        default="127.0.0.1",
        metavar="ADDR",
        help="where the admin endpoint listens (default 127.0.0.1: its connection table "
        "names every client; 0.0.0.0 for all interfaces)",
    )
    serve.add_argument(
        "--grace", type=float, default=5.0, help="seconds live connections get at shutdown"
    )
    serve.add_argument("--no-pin", action="store_true", help="do not pin shards to CPUs")
    net.stacks.add_arguments(serve)

    load = sub.add_parser("load", help="sharded load generator")
    load.add_argument(
        "--host",
        type=argtypes.ipv4,
        action="append",
        required=True,
        help="server address; repeat for several servers, each getting the whole load "
        "(--connections, --rate) and its own series in /metrics",
    )
    load.add_argument("--mode", choices=["echo", "canned", "connect", "mixed"], default="echo")
    load.add_argument(
        "--connections", type=argtypes.positive, default=10, help="concurrent workers (per host)"
    )
    load.add_argument("--size", type=argtypes.positive, default=1024, help="echo payload bytes")
    load.add_argument(
        "--duration", type=argtypes.seconds, default=10.0, help="seconds; 0 runs until stopped"
    )
    load.add_argument(
        "--rate",
        type=argtypes.seconds,
        default=0.0,
        help="starts per second per host, all shards (0: no cap)",
    )
    load.add_argument("--requests-per-connection", type=int, default=0)
    load.add_argument("--echo-port", type=argtypes.port, default=1234)
    load.add_argument("--canned-port", type=argtypes.port, default=1235)
    load.add_argument("--accept-logger-port", type=argtypes.port, default=1236)
    load.add_argument("--report-interval", type=argtypes.seconds, default=5.0)
    load.add_argument("--seed", type=int, default=None)
    load.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    load.add_argument("--pin", action="store_true", help="pin load shards to CPUs (default: not)")
    load.add_argument(
        "--metrics-port",
        type=argtypes.port,
        default=None,
        metavar="PORT",
        help="serve Prometheus text on ADDR:PORT/metrics: requests, errors, bytes, latency",
    )
    load.add_argument(
        "--metrics-address",
        type=argtypes.ipv4,
        default="0.0.0.0",
        metavar="ADDR",
        help="where --metrics-port listens (default 0.0.0.0, for the lab's Prometheus)",
    )
    load.add_argument(
        "--metrics-linger",
        type=argtypes.seconds,
        default=0.0,
        metavar="SECONDS",
        help="keep serving the final numbers this long after the summary (for a last scrape)",
    )
    _add_smp(load, default="1")
    net.stacks.add_arguments(load)
    pkt = sub.add_parser("pktdrill", help="play packetdrill scripts against a stack")
    pkt.add_argument("scripts", nargs="+", metavar="FILE.pkt")
    pkt.add_argument(
        "--stack",
        choices=("native", "linux", "both"),
        default="native",
        help="native: in memory, virtual clock; linux: the kernel via TUN in a netns (root); "
        "both: each, side by side where they part",
    )
    pkt.add_argument(
        "--tolerance_usecs",
        type=int,
        default=4000,
        help="how far a packet may be from its time (packetdrill's default: 4000)",
    )
    pkt.add_argument(
        "--init_scripts",
        default="",
        metavar="FILE[,FILE]",
        help="shell scripts of sysctls played at time 0 first (packetdrill's option)",
    )
    pkt.add_argument("-v", "--verbose", action="store_true", help="list every packet sent")
    return parser


def _pktdrill(args: argparse.Namespace) -> int:
    from seashard.pktdrill.runner import main_run

    inits = tuple(p for p in args.init_scripts.split(",") if p)
    return main_run(
        args.scripts,
        args.stack,
        args.tolerance_usecs / 1e6,
        verbose=args.verbose,
        init_scripts=inits,
    )


def _stack(args: argparse.Namespace) -> tuple[str, object] | str:
    """The chosen stack's name and typed options, or the error line."""
    try:
        stack_type, options = net.stacks.from_args(args)
    except net.OptionError as exc:
        return str(exc)
    return stack_type.name, options


def _serve(args: argparse.Namespace) -> int:
    from seashard.serve import ServeConfig, run

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
    stack = _stack(args)
    if isinstance(stack, str):
        return _fail(stack)
    config = ServeConfig(
        smp=count,
        services=services,
        address=args.address,
        stack=stack[0],
        reuse_address=args.reuse_address,
        lba=lba,
        fixed_cpu=args.fixed_cpu,
        shard0_only=args.shard0_only,
        admin_port=args.admin_port,
        admin_address=args.admin_address,
        grace=args.grace,
        pin=not args.no_pin,
        stack_options=stack[1],
    )
    return run(config)


def _load(args: argparse.Namespace) -> int:
    from seashard.apps.loadgen import LoadConfig, run

    if args.report_interval <= 0:
        return _fail("--report-interval must be positive")
    stack = _stack(args)
    if isinstance(stack, str):
        return _fail(stack)
    count = args.smp or 1
    cfg = LoadConfig(
        hosts=list(dict.fromkeys(args.host)),
        mode=args.mode,
        connections=args.connections,
        size=args.size,
        duration=args.duration,
        rate=args.rate,
        requests_per_connection=args.requests_per_connection,
        echo_port=args.echo_port,
        canned_port=args.canned_port,
        accept_logger_port=args.accept_logger_port,
        report_interval=args.report_interval,
        seed=args.seed,
        json_out=args.json,
        smp=count,
        pin=args.pin and count <= len(smp.available_cpus()),
        stack=stack[0],
        stack_options=stack[1],
        metrics_port=args.metrics_port,
        metrics_address=args.metrics_address,
        metrics_linger=args.metrics_linger,
    )
    return run(cfg)


def _fail(message: str) -> int:
    print(f"seashard: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "pktdrill":
        return _pktdrill(args)
    return _load(args)


if __name__ == "__main__":
    sys.exit(main())
