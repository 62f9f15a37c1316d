"""The native stack's limit options: their defaults are Linux's, they reach the stack's
config, and a bad value is one line and exit 2."""

from __future__ import annotations

import pytest

from seashard.cli import build_parser
from seashard.net.native.limits import NativeLimits, from_args
from tests.serverproc import run_cli


def test_defaults_are_the_documented_linux_ones() -> None:
    limits = from_args(build_parser().parse_args(["serve"]))
    assert limits == NativeLimits()
    assert (limits.syn_backlog, limits.accept_backlog, limits.synack_retries) == (1024, 4096, 5)
    assert limits.syncookies and limits.max_tw_buckets == 32768
    assert (limits.fin_timeout, limits.orphan_retries) == (60.0, 8)
    assert limits.reassembly_budget == 32 << 20 and limits.max_connections == 65536
    assert limits.arp_cache_entries == 1024


def test_options_reach_the_limits() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--max-connections",
            "10",
            "--syn-backlog",
            "64",
            "--accept-backlog",
            "32",
            "--no-syncookies",
            "--synack-retries",
            "2",
            "--max-tw-buckets",
            "100",
            "--fin-timeout",
            "5.5",
            "--orphan-retries",
            "3",
            "--reassembly-budget",
            "65536",
            "--arp-cache-entries",
            "16",
        ]
    )
    assert from_args(args) == NativeLimits(
        syn_backlog=64,
        accept_backlog=32,
        syncookies=False,
        synack_retries=2,
        max_tw_buckets=100,
        fin_timeout=5.5,
        orphan_retries=3,
        reassembly_budget=65536,
        max_connections=10,
        arp_cache_entries=16,
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--max-connections", "-1"], "must not be negative"),
        (["--syn-backlog", "many"], "not a whole number"),
        (["--fin-timeout", "0"], "must be positive"),
        (["--syn-backlog", "0"], "at least one entry"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(args: list[str], needle: str) -> None:
    result = run_cli("serve", "--network-stack", "native", "--tap-device", "tap-nx", *args)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr


def test_tlp_option_defaults_to_the_profile() -> None:
    parse = build_parser().parse_args
    assert from_args(parse(["serve"])).tcp_tlp is None  # the profile's: on for linux
    assert from_args(parse(["serve", "--no-tcp-tlp"])).tcp_tlp is False
    assert from_args(parse(["serve", "--tcp-tlp"])).tcp_tlp is True
