"""Pure parsers of what the lab's commands print (no engine needed; unit-tested)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

_ADDR = re.compile(r"[\d.]+:\d+")


class ParseError(ValueError):
    pass


def last_json(text: str) -> dict[str, Any]:
    """The last line of ``text`` that is a JSON object."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise ParseError(f"no JSON summary in output:\n{text[-2000:]}")


def ss_owners(ss_output: str, local_port: int) -> dict[str, list[int]]:
    """`ss -tnpH state established` -> remote "ip:port" -> pids holding the socket."""
    owners: dict[str, list[int]] = {}
    for line in ss_output.splitlines():
        # with a state filter ss omits the State column: Recv-Q Send-Q Local Peer Process
        addrs = [w for w in line.split() if _ADDR.fullmatch(w)]
        if len(addrs) < 2 or not addrs[0].endswith(f":{local_port}"):
            continue
        owners[addrs[1]] = sorted({int(p) for p in re.findall(r"pid=(\d+)", line)})
    return owners


def ss_peers(ss_output: str, local_port: int | None = None) -> set[str]:
    """`ss -tanH state ...` -> the peers' "ip:port" (of sockets on ``local_port``, if given)."""
    peers = set()
    for line in ss_output.splitlines():
        addrs = [w for w in line.split() if _ADDR.fullmatch(w)]
        if len(addrs) < 2:
            continue
        if local_port is None or addrs[0].endswith(f":{local_port}"):
            peers.add(addrs[1])
    return peers


def serve_args(
    defaults: Sequence[str],
    *,
    reuse_address: bool = True,
    shard0_only: bool = False,
    smp: int | None = None,
    lba: str | None = None,
    grace: float = 0,
    extra: Sequence[str] = (),
    services: Sequence[str] = (),
) -> list[str]:
    """A server's default `seashard serve` arguments, changed as asked: the flags
    the lab toggles are dropped from the defaults and set from the keywords;
    ``services`` (echo, canned, accept-logger) go right after ``serve``, where
    argparse takes them."""
    args: list[str] = []
    i = 0
    if defaults and defaults[0] == "serve":
        args, i = ["serve", *services], 1
    while i < len(defaults):
        a = defaults[i]
        if a in ("--reuse-address", "--shard0-only"):
            i += 1
        elif a == "--grace" or (a == "--lba" and lba is not None):
            i += 2
        elif a in ("-c", "--smp") and smp is not None:
            args += [a, str(smp)]
            smp = None
            i += 2
        else:
            args.append(a)
            i += 1
    if smp is not None:
        args += ["-c", str(smp)]
    if lba is not None:
        args += ["--lba", lba]
    if reuse_address:
        args.append("--reuse-address")
    if shard0_only:
        args.append("--shard0-only")
    args += ["--grace", f"{grace:g}", *extra]
    return args


def impair_counts(text: str) -> dict[str, int]:
    """The relay's last "impair: dropped N, frames N, ..." line -> its counts."""
    relay = [line for line in text.splitlines() if line.startswith("impair:")]
    counts = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", relay[-1] if relay else "")}
    return {k: counts.get(k, 0) for k in ("frames", "dropped", "reordered", "duplicated")}


def netem_dropped(tc_output: str) -> dict[str, int]:
    """`tc -s qdisc show` -> netem's own drop count, when netem is what impairs."""
    m = re.search(r"netem.*?dropped (\d+)", tc_output, re.S)
    return {"netem_dropped": int(m.group(1))} if m else {}


def tcp_retrans_segs(snmp: str) -> int:
    """RetransSegs of /proc/net/snmp."""
    tcp = [line.split() for line in snmp.splitlines() if line.startswith("Tcp:")]
    if len(tcp) < 2:
        return 0
    return int(dict(zip(tcp[0], tcp[1], strict=False)).get("RetransSegs", 0))


def cpus_allowed(status: str) -> str | None:
    m = re.search(r"^Cpus_allowed_list:\s*(\S+)", status, re.M)
    return m.group(1) if m else None


def count_by(values: Iterable[Any]) -> dict[Any, int]:
    return dict(sorted(Counter(values).items()))
