"""`scripts/lab top`'s frame: fed scrapes, rendered at 80 columns, a down service said so."""

from __future__ import annotations

import io
import urllib.error

from rich.console import Console

from seashard.admin import prometheus_text
from seashard_lab.verbs import top

LOAD = """\
# TYPE seashard_load_requests_total counter
seashard_load_requests_total{{target="10.0.0.21:1234",kind="echo"}} {n}
# TYPE seashard_load_errors_total counter
seashard_load_errors_total{{target="10.0.0.21:1234",kind="echo",reason="reset"}} 0
# TYPE seashard_load_latency_seconds histogram
seashard_load_latency_seconds_bucket{{target="10.0.0.21:1234",kind="echo",le="0.0005"}} {n}
seashard_load_latency_seconds_bucket{{target="10.0.0.21:1234",kind="echo",le="+Inf"}} {n}
seashard_load_latency_seconds_count{{target="10.0.0.21:1234",kind="echo"}} {n}
seashard_load_latency_seconds_sum{{target="10.0.0.21:1234",kind="echo"}} 0.1
"""


def _native(tick: int) -> str:
    shards = [
        {
            "shard": s,
            "pid": 40 + s,
            "cpus": [s],
            "stack": "native",
            "metrics": {
                "connections_live": 3 + s,
                "connections_total": 1000 * tick * (s + 1),
                "bytes_in": 123456789 * tick,
                "bytes_out": 987654321 * tick,
                "frames_received": 55555 * tick,
                "frames_dropped": {"ipv4_bad_checksum": 7 * tick},
                "frames_forwarded": 99999 * tick,
                "frames_proxied": 0,
                "cpu_seconds_total": 0.5 * tick,
            },
        }
        for s in (0, 1)
    ]
    return prometheus_text(shards)


class FakeLab:
    """URL -> text for each tick; a URL mapped to an exception is down."""

    def __init__(self) -> None:
        self.tick = 0

    def fetch(self, url: str) -> str:
        if "posix" in url:
            raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
        if "native" in url:
            return _native(self.tick)
        if "client-1" in url:
            return LOAD.format(n=500 * self.tick)
        raise TimeoutError("timed out")


def _render(width: int = 80) -> str:
    lab = FakeLab()
    ep = top.Endpoints(
        servers=[
            ("posix-server", "http://posix:9100/metrics"),
            ("native-server", "http://native:9100/metrics"),
        ],
        clients=[
            ("client-1", "http://client-1:9200/metrics"),
            ("client-2", "http://client-2:9200/metrics"),
        ],
        names={"10.0.0.21": "native"},
    )
    t = top.Top(ep, fetcher=lab.fetch, clock=lambda: float(lab.tick))
    t.tick()
    lab.tick = 1
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(t.frame("header"))
    t.close()
    return out.getvalue()


def test_frame_fits_80_columns_and_shows_every_number():
    text = _render()
    lines = text.splitlines()
    assert max(len(x) for x in lines) <= 80, text
    assert "…" not in text, text  # nothing cut off
    native = [x.split() for x in lines if x.split()[:2] in (["0", "40"], ["1", "41"])]
    # shard pid cpus cpu% live conn/s in out frm/s drops fwd
    assert native[0] == [
        "0",
        "40",
        "0",
        "50",
        "3",
        "1.0k",
        "123.5M",
        "987.7M",
        "55.6k",
        "7",
        "100.0k",
    ]
    assert native[1][:6] == ["1", "41", "1", "50", "4", "2.0k"]
    client = next(x.split() for x in lines if x.startswith("client-1 "))
    assert client == ["client-1", "native", "echo", "500", "0", "250µs", "495µs"]


def test_down_services_say_so_and_why():
    text = _render()
    assert "posix-server: DOWN" in text and "Connection refused" in text
    assert "client-2: DOWN" in text and "no answer in" in text
    assert "Traceback" not in text


def test_why_is_one_short_line():
    assert top.why(urllib.error.HTTPError("u", 503, "Service Unavailable", {}, None)) == (
        "HTTP 503 Service Unavailable"
    )
    assert top.why(ValueError("bad line")) == "not Prometheus text (bad line)"
    # the probe's GET on a swarm: its error ends in the urllib exception line
    probe = RuntimeError(
        "GET http://10.0.1.5:9200/metrics failed: Traceback (most recent call last):\n"
        '  File "<string>", line 2, in <module>\n'
        "urllib.error.URLError: <urlopen error [Errno 111] Connection refused>"
    )
    assert top.why(probe) == "Connection refused"
    assert top.why(RuntimeError("a\nno route")) == "no route"
