"""virtio-net offloads against Linux: 64 MiB each way through `seashard serve --network-stack
native -c 2`, byte-exact, on a TAP and on a veth (AF_PACKET), through the userspace
impairment relay (loss and reordering), each with offloads and with --no-offload. The
kernel side keeps its own offloads on (netlab ``offloads=True``), so with ours on the client's
TSO frames reach us whole (GRO in) and ours leave as 64 KB GSO frames (TSO out).
Root only; everything is made per test and removed after."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from seashard.tools.netlab import SERVER_IP
from seashard.tools.netlab import topology as netlab_topology
from tests import serverproc
from tests.test_native_server import NetLab, _missing

pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")

CONNECTIONS = 16
EACH = 4 * 1024 * 1024  # 16 x 4 MiB = 64 MiB each way


@pytest.fixture(params=["tap", "packet", "tap-lossy"])
def offload_lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NetLab]:
    loss = {"loss": 0.01, "reorder": 0.05} if request.param == "tap-lossy" else {}
    with netlab_topology(request.param, env=serverproc.env(), offloads=True, **loss) as topo:
        yield NetLab(topo.srv, topo.cli, topo.device, tmp_path / "state", topo.relay)


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "no-offload"])
def test_64_mib_each_way_byte_exact(offload_lab: NetLab, serve, offload: bool) -> None:  # type: ignore[no-untyped-def]
    lab = offload_lab
    args = ["-c", "2"] if offload else ["-c", "2", "--no-offload"]
    server = lab.serve(serve, *args, services=("echo",))
    result = lab.client("bulk", SERVER_IP, "1234", str(CONNECTIONS), str(EACH), "7", timeout=600)
    assert result["errors"] == [] and result["mismatched"] == 0, result
    assert result["exact"] == CONNECTIONS
    m = lab.metrics(server)
    label = "csum,tso4,gro" if offload else ""
    offloads = {k: v for k, v in m.items() if k.startswith("seashard_device_offloads")}
    assert offloads == {f"seashard_device_offloads[{label}]": {"0": 1.0, "1": 1.0}}
    assert all(v > 0 for v in m["seashard_connections_total"].values())  # both shards served
    gro = sum(m["seashard_device_gso_frames_received_total"].values())
    tso = sum(m["seashard_device_gso_frames_sent_total"].values())
    mb_s = 2 * CONNECTIONS * EACH / result["seconds"] / 1e6
    kind = lab.device[0]
    print(
        f"\n{kind} offload={offload}: {result['seconds']} s, {mb_s:.1f} MB/s both ways, "
        f"GSO frames in {gro:.0f}, out {tso:.0f}"
    )
    if not offload:
        assert gro == 0 and tso == 0
    elif lab.relay is None:
        # The client's TCP sends TSO frames, which the kernel hands us whole; and our
        # 64 MiB left in far fewer frames than MSS-sized segments would take.
        assert gro > 0 and tso > 0
    else:
        assert tso > 0  # the bridge cuts them for the relay
        lab.relay.terminate()
        _, err = lab.relay.communicate(timeout=10)
        assert "dropped" in err and "reordered" in err, err
        assert sum(m["seashard_tcp_retransmits_total"].values()) > 0


@pytest.fixture
def kernel_offload_tap(tmp_path: Path) -> Iterator[NetLab]:
    with netlab_topology("tap", env=serverproc.env(), offloads=True) as topo:
        yield NetLab(topo.srv, topo.cli, topo.device, tmp_path / "state", topo.relay)


def test_a_shard_without_a_queue_sends_its_tso_frames_through_one(
    kernel_offload_tap: NetLab,
    serve,  # type: ignore[no-untyped-def]
) -> None:
    lab = kernel_offload_tap
    server = lab.serve(serve, "-c", "2", "--device-queues", "1", services=("echo",))
    result = lab.client("bulk", SERVER_IP, "1234", "8", str(1 << 20), "3", timeout=300)
    assert result["exact"] == 8 and result["errors"] == [], result
    m = lab.metrics(server)
    assert all(v > 0 for v in m["seashard_connections_total"].values())
    assert m["seashard_frames_proxied_total"]["1"] > 0  # shard 1 has no queue of its own
    # Its GSO frames crossed to shard 0 whole, with their offloads, and left as such.
    assert m["seashard_frames_proxied_gso_total"]["1"] > 0
    assert m["seashard_device_gso_frames_sent_total"]["0"] > 0
    assert m["seashard_device_gso_frames_sent_total"]["1"] == 0


def test_bridged_frames_skip_iptables_in_the_lab_namespace(kernel_offload_tap: NetLab) -> None:
    """Docker's br_netfilter (loaded wherever the lab's engine ran) hooks every frame the
    TAP sends into the bridge, not the posix server's: off in netlab's namespace, or
    ``scripts/bench --native`` measures the hooks."""
    keys = [f"net.bridge.bridge-nf-call-{t}" for t in ("iptables", "ip6tables", "arptables")]
    out = subprocess.run(
        ["ip", "netns", "exec", kernel_offload_tap.srv, "sysctl", "-n", *keys],
        capture_output=True,
        text=True,
        check=False,
    )
    loaded = Path("/proc/sys/net/bridge").exists()
    if loaded:
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["0", "0", "0"]
    else:  # no br_netfilter on this host: no hooks to turn off, and no such sysctl
        assert "No such file" in out.stderr or "cannot stat" in out.stderr, out.stderr
