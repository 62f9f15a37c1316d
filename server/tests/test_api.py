from __future__ import annotations

import errno
import os

import pytest

from seashard.admin import prometheus_text
from seashard.net import BindError, ListenOptions, LoadBalancing, SocketAddress, socket_address


def test_socket_address() -> None:
    assert str(socket_address(1234)) == "0.0.0.0:1234"
    assert str(socket_address("127.0.0.1", 47578)) == "127.0.0.1:47578"
    with pytest.raises(ValueError):
        SocketAddress("300.1.1.1", 1)
    with pytest.raises(ValueError, match="invalid port"):
        SocketAddress("1.2.3.4", 70000)


def test_listen_options_default_like_seastar() -> None:
    lo = ListenOptions()
    assert lo.reuse_address is False
    assert lo.lba is LoadBalancing.CONNECTION_DISTRIBUTION


def test_bind_error_reads_like_the_tutorial() -> None:
    err = BindError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
    assert str(err) == "bind: Address already in use"
    assert isinstance(err, OSError) and err.errno == errno.EADDRINUSE


def test_prometheus_text() -> None:
    shards = [
        {
            "shard": 0,
            "pid": 10,
            "cpus": [0],
            "stack": "native",
            "metrics": {
                "connections_live": 2,
                "bytes_in": 5,
                "frames_dropped": {"bad_checksum": 3},
            },
        },
        {
            "shard": 1,
            "pid": 11,
            "cpus": [1],
            "stack": "native",
            "metrics": {"connections_live": 1, "bytes_in": 7, "frames_dropped": {}},
        },
    ]
    text = prometheus_text(shards)
    assert 'seashard_shard_info{shard="1",pid="11",cpus="1",stack="native"} 1' in text
    assert "# TYPE seashard_connections_live gauge" in text
    assert 'seashard_connections_live{shard="0"} 2' in text
    assert "# TYPE seashard_bytes_in_total counter" in text
    assert 'seashard_frames_dropped_total{shard="0",reason="bad_checksum"} 3' in text
    assert text.endswith("\n")
