"""The failing-test hook of conftest.py, exercised for real: a lab test that
fails on purpose runs in a pytest of its own (with this conftest, on this same
live lab: SEASHARD_LAB_REUSE), and its artifacts folder must hold what every
failing lab test leaves -- logs, admin pages, the lab network's pcap of that
test, and the charts with the numbers behind them, drawn from that test's own
time on the lab's Prometheus."""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from seashard_lab import ARTIFACTS
from seashard_lab.plan import SERVERS

HERE = Path(__file__).resolve().parent
CONNECTIONS = 150  # canned connections the failing test makes to the posix server

FAILING_TEST = f'''
import time

def test_fails_on_purpose_TOKEN(lab):
    summary = lab.traffic(
        "client-1", "canned", "--host", lab.service_ip("posix-server"),
        "--count", "{CONNECTIONS}", "--concurrency", "10",
    )
    assert summary["ok"], summary["errors"]
    time.sleep(3)  # Prometheus scrapes every second: this test's connections are in it
    assert False, "failing on purpose, for its artifacts"
'''


def test_a_failing_lab_test_leaves_logs_pcap_and_charts_of_its_own_run(lab, tmp_path):
    from matplotlib import image
    from scapy.all import TCP, rdpcap

    token = secrets.token_hex(4)
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    test_file = tmp_path / f"test_hook_{token}.py"
    test_file.write_text(FAILING_TEST.replace("TOKEN", token))
    env = dict(os.environ, SEASHARD_LAB_REUSE=lab.project, LAB_HEALTH_TIMEOUT="30")
    started = time.time()
    inner = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(test_file)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    took = time.time() - started
    assert inner.returncode == 1, inner.stdout + inner.stderr
    assert "1 failed" in inner.stdout and "failing on purpose" in inner.stdout, inner.stdout

    (folder,) = ARTIFACTS.glob(f"test_hook_{token}.py__*")
    try:
        _check(folder, token, took, image, TCP, rdpcap)
    except BaseException:
        print(f"the failing test's artifacts: {folder}\n{inner.stdout[-3000:]}")
        raise
    shutil.rmtree(folder)


def _check(folder: Path, token: str, took: float, image, TCP, rdpcap) -> None:
    files = {p.name for p in folder.iterdir()}
    # logs and admin pages of the lab
    for server in SERVERS:
        assert f"{server}.log" in files and f"{server}.full.log" in files, files
        assert "seashard_shard_info" in (folder / f"{server}.admin.txt").read_text()
    # the charts: valid PNGs of a readable size, none missing
    assert "plots-missing.txt" not in files, (folder / "plots-missing.txt").read_text()
    for name in ("connections.png", "shares.png", "latency-cdf.png"):
        pixels = image.imread(folder / name)  # raises on a broken PNG
        assert pixels.shape[0] >= 300 and pixels.shape[1] >= 400, (name, pixels.shape)
        assert pixels.std() > 0.01, f"{name} is blank"
    # the numbers behind them are this test's: its name, its time, its connections
    data = json.loads((folder / "plots-data.json").read_text())
    assert data["title"] == f"test_fails_on_purpose_{token}"
    assert 3 <= data["duration"] <= took, (data["duration"], took)
    for server in SERVERS:
        assert data["live"].get(server), (server, data["live"].keys())
    seen = sum(data["shard_counts"]["posix-server"].values())
    assert seen >= 0.9 * CONNECTIONS, data["shard_counts"]
    # the lab network's pcap of that test holds its canned connections
    packets = rdpcap(io.BytesIO((folder / "lab-network.pcap").read_bytes()))
    syns = {
        p[TCP].sport
        for p in packets
        if p.haslayer(TCP) and p[TCP].dport == 1235 and p[TCP].flags & 0x02
    }
    assert len(syns) >= 0.9 * CONNECTIONS, len(syns)
