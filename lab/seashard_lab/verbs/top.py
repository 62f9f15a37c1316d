"""top [--once]: a live per-server, per-shard and per-client view, refreshed every second.

It scrapes the endpoints itself (both servers' admin /metrics, every client's
load-generator /metrics), in parallel with a short timeout so that one stuck
service cannot stall the others, and shows what `seashard_lab.rates` derives
from the last two scrapes.  `--once` takes two scrapes one interval apart (a
rate needs two) and prints one frame.  `--swarm`: the stack's endpoints are on
its mgmt overlay, out of the host's reach, so each page is fetched by the probe
(`Lab.get`, one `docker exec` per endpoint and frame).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live

from .. import rates, swarm_verbs, topview
from ..plan import CLIENTS, LOAD_METRICS_PORT, SERVERS, STACK_OF, AddressPlan

HELP = "live per-shard and per-client view, every second (--once: one frame)"

FETCH_TIMEOUT = 0.8
QUANTILE_WINDOW = 10.0  # seconds of requests behind each p50/p99: steadier than one second


@dataclass(frozen=True)
class Endpoints:
    """Where to look: (service name, /metrics URL) pairs; target host -> short name.
    A client may have several load generators (one per target): one pair each."""

    servers: Sequence[tuple[str, str]]
    clients: Sequence[tuple[str, str]]
    names: Mapping[str, str]  # e.g. {"172.28.0.10": "posix", "172.28.0.21": "native"}


def fetch(url: str, timeout: float = FETCH_TIMEOUT) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def why(exc: BaseException) -> str:
    """One short line for a service that did not answer."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return getattr(reason, "strerror", None) or str(reason)
    if isinstance(exc, TimeoutError):
        return f"no answer in {FETCH_TIMEOUT:g} s"
    if isinstance(exc, ValueError):
        return f"not Prometheus text ({exc})"
    # e.g. the probe's GET (--swarm): the last line of its error says why, and
    # of a "<urlopen error [Errno 111] Connection refused>" the reason alone
    last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
    errno = re.search(r"\[Errno -?\d+\] ([^>]+)", last)
    return errno.group(1).strip() if errno else last


class Top:
    """Scrapes every endpoint each tick and keeps the previous scrape for the rates."""

    def __init__(
        self,
        endpoints: Endpoints,
        fetcher: Callable[[str], str] = fetch,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoints = endpoints
        self.fetcher = fetcher
        self.clock = clock
        self.previous: dict[str, rates.Scrape] = {}
        self.history: dict[str, deque[rates.Scrape]] = {}  # clients' scrapes, for quantiles
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lab-top")

    def _scrape(self, url: str) -> rates.Scrape | BaseException:
        try:
            text = self.fetcher(url)
            return rates.parse(text, self.clock())
        except Exception as exc:  # noqa: BLE001 - a down service is data, not a crash
            return exc

    def tick(self) -> tuple[list[topview.ServerView], list[topview.ClientView]]:
        ep = self.endpoints
        urls = [url for _, url in (*ep.servers, *ep.clients)]
        results = dict(zip(urls, self._pool.map(self._scrape, urls), strict=True))
        servers, clients = [], []
        for name, url in ep.servers:
            got = results[url]
            view = topview.ServerView(name, url)
            if isinstance(got, BaseException):
                view.error = why(got)
                self.previous.pop(url, None)
            else:
                view.rows = rates.shard_rows(self.previous.get(url), got)
                self.previous[url] = got
            servers.append(view)
        for name, url in ep.clients:
            got = results[url]
            cview = topview.ClientView(name, url)
            if isinstance(got, BaseException):
                cview.error = why(got)
                self.previous.pop(url, None)
                self.history.pop(url, None)
            else:
                past = self.history.setdefault(url, deque())
                while len(past) > 1 and got.t - past[1].t >= QUANTILE_WINDOW:
                    past.popleft()
                base = past[0] if past else None
                cview.rows = rates.target_rows(self.previous.get(url), got, base)
                self.previous[url] = got
                past.append(got)
            clients.append(cview)
        return servers, clients

    def frame(self, header: str):
        servers, clients = self.tick()
        return topview.frame(servers, clients, dict(self.endpoints.names), header)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def watch(
    endpoints: Endpoints,
    *,
    once: bool = False,
    interval: float = 1.0,
    console: Console | None = None,
    title: str = "seashard lab",
    fetcher: Callable[[str], str] = fetch,
) -> int:
    console = console or Console()
    top = Top(endpoints, fetcher)
    try:
        if once:
            top.tick()  # the first scrape: counters only, no rates yet
            time.sleep(interval)
            when = time.strftime("%H:%M:%S")
            console.print(top.frame(f"{title}  {when}  rates and p50/p99 over {interval:g} s"))
            return 0

        # one line at 80 columns: the lab, the time, what the numbers are over
        def header() -> str:
            return (
                f"{title}  {time.strftime('%H:%M:%S')}  rates over {interval:g} s,"
                f" p50/p99 over {QUANTILE_WINDOW:g} s"
            )

        with Live(top.frame(header()), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(top.frame(header()), refresh=True)
    except KeyboardInterrupt:
        return 0
    finally:
        top.close()


def lab_endpoints(plan: AddressPlan) -> Endpoints:
    """The lab's endpoints, from its address plan (what `scripts/lab up` started)."""
    return Endpoints(
        servers=[(s, plan.admin_url(s)) for s in SERVERS],
        clients=[(c, url) for c in CLIENTS for url in plan.load_metrics_urls(c).values()],
        names={plan.service_ip(s): STACK_OF[s] for s in SERVERS},
    )


def swarm_endpoints(lab) -> Endpoints:  # noqa: ANN001 - a SwarmLab
    """A swarm stack's endpoints: admin and /metrics on its mgmt overlay."""
    deployment = lab.deployment
    clients = [c for c in deployment.services() if c.startswith("client-")]
    return Endpoints(
        servers=[(s, lab.admin_url(s)) for s in SERVERS],
        clients=[
            (c, f"http://{deployment.admin_ip(c)}:{LOAD_METRICS_PORT + i}/metrics")
            for c in clients
            for i in range(2)  # lab-load's target order: posix, native
        ],
        names={lab.service_ip(s): STACK_OF[s] for s in SERVERS},
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    swarm_verbs.add_arguments(p, "top")
    p.add_argument("--once", action="store_true", help="print one frame (two scrapes) and exit")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between frames (1)")


def run(args: argparse.Namespace) -> int:
    from ..deployment import current  # the engine only to learn the plan and project

    if args.interval <= 0:
        print("scripts/lab top: --interval must be above 0", file=sys.stderr)
        return 2
    if args.swarm:
        from ..swarm_deployment import SwarmLab
        from ..swarm_deployment import current as swarm_current

        stack = swarm_current()
        if not stack.running():
            print(f"scripts/lab top: no stack '{stack.project}' (up --swarm)", file=sys.stderr)
            return 2
        lab = SwarmLab(stack)
        return watch(
            swarm_endpoints(lab),
            once=args.once,
            interval=args.interval,
            title=f"stack '{stack.project}' ({stack.subnet})",
            fetcher=lambda url: lab.get(url, timeout=FETCH_TIMEOUT, tries=1),
        )
    deployment = current()
    if not deployment.running():  # its addresses would lead nowhere (or out of the host)
        print(
            f"scripts/lab top: lab '{deployment.project}' is not running (scripts/lab up)",
            file=sys.stderr,
        )
        return 2
    title = f"lab '{deployment.project}' ({deployment.plan.subnet})"
    return watch(
        lab_endpoints(deployment.plan), once=args.once, interval=args.interval, title=title
    )
