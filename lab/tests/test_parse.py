"""The lab's pure parsers: ss output, serve arguments, the relay's counts."""

from __future__ import annotations

import pytest

from seashard_lab import parse

SS_ESTABLISHED = """\
0      0      172.28.0.10:1234  172.28.0.31:40000 users:(("seashard",pid=87,fd=9))
0      0      172.28.0.10:1234  172.28.0.32:40002 users:(("seashard",pid=88,fd=11),("x",pid=88))
0      0      172.28.0.10:1235  172.28.0.31:40004 users:(("seashard",pid=87,fd=10))
"""


def test_ss_owners_maps_each_peer_to_the_pids_holding_it():
    assert parse.ss_owners(SS_ESTABLISHED, 1234) == {
        "172.28.0.31:40000": [87],
        "172.28.0.32:40002": [88],
    }


def test_ss_peers_of_time_wait_sockets_on_one_port():
    text = "0 0 172.28.0.10:1235 172.28.0.31:5000\n0 0 172.28.0.10:1234 172.28.0.31:5002\n"
    assert parse.ss_peers(text, 1235) == {"172.28.0.31:5000"}
    assert parse.ss_peers(text) == {"172.28.0.31:5000", "172.28.0.31:5002"}
    assert parse.ss_peers("") == set()


DEFAULTS = ["serve", "-c", "2", "--reuse-address", "--grace", "1", "--admin-port", "9100"]


def test_serve_args_toggles_what_the_lab_toggles_and_keeps_the_rest():
    assert parse.serve_args(DEFAULTS, reuse_address=False) == [
        "serve", "-c", "2", "--admin-port", "9100", "--grace", "0",
    ]  # fmt: skip
    args = parse.serve_args(DEFAULTS, shard0_only=True, smp=1, lba="port", grace=2)
    assert args == [
        "serve", "-c", "1", "--admin-port", "9100", "--lba", "port", "--reuse-address",
        "--shard0-only", "--grace", "2",
    ]  # fmt: skip


def test_serve_args_puts_services_where_argparse_takes_them():
    args = parse.serve_args(DEFAULTS, services=["echo"], extra=["--no-pin"])
    assert args[:2] == ["serve", "echo"] and args[-1] == "--no-pin"
    assert parse.serve_args(["serve", "--lba", "fixed", "-c", "2"], lba="port") == [
        "serve", "-c", "2", "--lba", "port", "--reuse-address", "--grace", "0",
    ]  # fmt: skip


def test_serve_args_adds_smp_when_the_defaults_have_none():
    assert parse.serve_args(["serve"], smp=3)[:3] == ["serve", "-c", "3"]


def test_last_json_is_the_last_object_line():
    assert parse.last_json('{"a": 1}\nnoise\n{"b": 2}\n{broken\n') == {"b": 2}
    with pytest.raises(parse.ParseError):
        parse.last_json("nothing here")


def test_impair_counts_reads_the_relays_last_line():
    text = "lab-impair: off\nimpair: frames 10, dropped 1\n"
    text += "impair: frames 120, dropped 6, reordered 30\n"
    assert parse.impair_counts(text) == {
        "frames": 120,
        "dropped": 6,
        "reordered": 30,
        "duplicated": 0,
    }
    assert parse.impair_counts("") == {"frames": 0, "dropped": 0, "reordered": 0, "duplicated": 0}


def test_netem_dropped_and_retransmits():
    tc = "qdisc netem 8001: root refcnt 2 loss 5%\n Sent 1 bytes 2 pkt (dropped 7, overlimits 0)"
    assert parse.netem_dropped(tc) == {"netem_dropped": 7}
    assert parse.netem_dropped("qdisc noqueue 0: root") == {}
    snmp = "Tcp: RtoAlgorithm RtoMin RetransSegs\nTcp: 1 200 42\n"
    assert parse.tcp_retrans_segs(snmp) == 42
    assert parse.cpus_allowed("Name:\tx\nCpus_allowed_list:\t1\n") == "1"
