"""capture SERVICE|lab [SECONDS] [-i IFACE] [FILTER...]: a pcap of a service's
namespace (default eth0) or of the lab's host bridge, into artifacts/captures/."""

from __future__ import annotations

import argparse
import time
from datetime import datetime

from .. import ARTIFACTS, swarm_deployment, swarm_verbs
from ..capture import CaptureHelper
from ..deployment import current
from ..ui import die, say

HELP = "tcpdump in SERVICE's namespace, or on the lab bridge -> artifacts/captures/"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("service", help="a service, or 'lab' for the lab's host bridge")
    p.add_argument("seconds", nargs="?", type=float, default=10.0, help="0: until Ctrl-C")
    p.add_argument("-i", "--iface", default=None, help="interface (default eth0, or the bridge)")
    p.add_argument("filter", nargs="*", help="a tcpdump filter")
    swarm_verbs.add_arguments(p, "capture")


def run(args: argparse.Namespace) -> int:
    deployment = swarm_deployment.current() if args.swarm else current()
    if not deployment.services():
        die(f"lab '{deployment.project}' is not running (scripts/lab up)")
    if args.swarm and args.service == "lab":
        # the whole lab: the overlay's bridge, in the overlay's namespace on this node
        helper: CaptureHelper = swarm_deployment.OverlayCaptureHelper(deployment)
    else:
        helper = CaptureHelper(deployment, None if args.service == "lab" else args.service)
    iface = args.iface or helper.default_iface
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = ARTIFACTS / "captures" / f"{deployment.project}-{args.service}-{iface}-{stamp}.pcap"
    bpf = " ".join(args.filter)
    try:
        helper.start("cli", iface, bpf)
        say(
            f"capturing on {args.service}:{iface} for {args.seconds:g} s"
            + (f" (filter: {bpf})" if bpf else "")
            + f" -> {out}   (Ctrl-C stops)"
        )
        try:
            deadline = time.monotonic() + args.seconds if args.seconds else None
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        data = helper.stop("cli", out)
    finally:
        helper.close()
    if len(data) <= 24:
        say(f"no packets seen on {args.service}:{iface} (the file holds only the pcap header)")
    say(f"wrote {out} ({len(data)} bytes); read it with: tshark -r {out}   (or Wireshark)")
    print(out)
    return 0
