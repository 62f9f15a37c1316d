"""What both executors share about syscalls: constant names, argument values, sockaddrs."""

from __future__ import annotations

import errno
import fcntl
import os
import socket

from .model import REMOTE_IP, REMOTE_PORT, Expr, Unsupported

SUPPORTED = {
    "socket",
    "setsockopt",
    "getsockopt",
    "bind",
    "listen",
    "accept",
    "connect",
    "write",
    "send",
    "read",
    "recv",
    "shutdown",
    "close",
    "fcntl",
}

# Names a script may use as values, with Linux's numbers (the Linux executor
# passes them to the kernel; the native one interprets them).
CONSTANTS: dict[str, int] = {
    "AF_INET": socket.AF_INET,
    "PF_INET": socket.AF_INET,
    "SOCK_STREAM": socket.SOCK_STREAM,
    "SOCK_NONBLOCK": getattr(socket, "SOCK_NONBLOCK", 0o4000),
    "IPPROTO_TCP": socket.IPPROTO_TCP,
    "IPPROTO_IP": socket.IPPROTO_IP,
    "SOL_SOCKET": socket.SOL_SOCKET,
    "SOL_TCP": socket.IPPROTO_TCP,
    "SO_REUSEADDR": socket.SO_REUSEADDR,
    "SO_REUSEPORT": getattr(socket, "SO_REUSEPORT", 15),
    "SO_KEEPALIVE": socket.SO_KEEPALIVE,
    "SO_ERROR": socket.SO_ERROR,
    "SO_LINGER": socket.SO_LINGER,
    "SO_RCVBUF": socket.SO_RCVBUF,
    "SO_SNDBUF": socket.SO_SNDBUF,
    "TCP_NODELAY": socket.TCP_NODELAY,
    "TCP_MAXSEG": socket.TCP_MAXSEG,
    "TCP_KEEPIDLE": socket.TCP_KEEPIDLE,
    "TCP_KEEPINTVL": socket.TCP_KEEPINTVL,
    "TCP_KEEPCNT": socket.TCP_KEEPCNT,
    "TCP_CONGESTION": 13,
    "F_GETFL": fcntl.F_GETFL,
    "F_SETFL": fcntl.F_SETFL,
    "O_RDWR": os.O_RDWR,
    "O_NONBLOCK": os.O_NONBLOCK,
    "SHUT_RD": socket.SHUT_RD,
    "SHUT_WR": socket.SHUT_WR,
    "SHUT_RDWR": socket.SHUT_RDWR,
    "MSG_DONTWAIT": socket.MSG_DONTWAIT,
}

# Options outside the subset, named so the report says which.
UNSUPPORTED_NAMES = {
    "TCP_INFO": "TCP_INFO",
    "TCP_FASTOPEN": "Fast Open",
    "TCP_FASTOPEN_CONNECT": "Fast Open",
    "MSG_FASTOPEN": "Fast Open",
    "SO_ZEROCOPY": "zerocopy",
    "MSG_ZEROCOPY": "zerocopy",
    "AF_INET6": "IPv6",
    "PF_INET6": "IPv6",
    "IPPROTO_IPV6": "IPv6",
    "TCP_CORK": "TCP_CORK",
    "TCP_DEFER_ACCEPT": "TCP_DEFER_ACCEPT",
    "TCP_NOTSENT_LOWAT": "TCP_NOTSENT_LOWAT",
    "SO_RCVLOWAT": "SO_RCVLOWAT",
    "TCP_USER_TIMEOUT": "TCP_USER_TIMEOUT",
    "TCP_QUICKACK": "TCP_QUICKACK",
    "TCP_ULP": "TCP_ULP",
    "TCP_MD5SIG": "TCP MD5",
    "TCP_REPAIR": "TCP_REPAIR",
    "TCP_SAVE_SYN": "TCP_SAVE_SYN",
    "TCP_WINDOW_CLAMP": "TCP_WINDOW_CLAMP",
    "TCP_THIN_LINEAR_TIMEOUTS": "TCP thin streams",
    "SO_MAX_PACING_RATE": "pacing",
    "SO_TIMESTAMPING": "SO_TIMESTAMPING",
    "MSG_ERRQUEUE": "error queue",
    "MSG_PEEK": "MSG_PEEK",
    "MSG_MORE": "MSG_MORE",
    "MSG_EOR": "MSG_EOR",
    "TCP_SYNCNT": "TCP_SYNCNT",
    "TCP_LINGER2": "TCP_LINGER2",
    "SO_OOBINLINE": "urgent data",
    "MSG_OOB": "urgent data",
    "TCP_TX_DELAY": "TCP_TX_DELAY",
}

CONGESTION_OK = {"cubic", "reno"}
_ERRNOS = {name: code for code, name in errno.errorcode.items()}  # [ECONNREFUSED] in SO_ERROR


def errno_name(code: int) -> str:
    return errno.errorcode.get(code, str(code))


def value(e: Expr) -> int:
    """An integer argument: a number, a constant, a constant OR'd, or [N]."""
    if e.kind == "int":
        return int(e.value)
    if e.kind == "name":
        if e.value in UNSUPPORTED_NAMES:
            raise Unsupported(UNSUPPORTED_NAMES[e.value])
        if e.value in _ERRNOS:
            return _ERRNOS[e.value]
        if e.value not in CONSTANTS:
            raise Unsupported(f"constant {e.value}")
        return CONSTANTS[e.value]
    if e.kind == "or":
        out = 0
        for part in e.value:
            out |= value(part)
        return out
    if e.kind == "list" and len(e.value) == 1:
        return value(e.value[0])
    if e.kind == "call" and e.value[0] == "htons":
        return value(e.value[1][0])
    if e.kind == "call" and e.value[0] == "sizeof":
        return 4
    if e.kind == "ellipsis":
        return 0
    raise Unsupported(f"argument {e.kind}")


def check_names(e: Expr) -> None:
    """Raise Unsupported for any name outside the subset anywhere in ``e``."""
    if e.kind == "name":
        if e.value in UNSUPPORTED_NAMES:
            raise Unsupported(UNSUPPORTED_NAMES[e.value])
        if e.value not in CONSTANTS and e.value not in _ERRNOS:
            raise Unsupported(f"constant {e.value}")
    if e.kind in ("or", "list"):
        for part in e.value:
            check_names(part)
    elif e.kind == "struct":
        for key, part in e.value:
            if key in ("tcpi_state", "tcpi_rto"):
                raise Unsupported("TCP_INFO")
            check_names(part)
    elif e.kind == "call":
        for part in e.value[1]:
            check_names(part)


def sockaddr(
    e: Expr, default_ip: str = REMOTE_IP, default_port: int = REMOTE_PORT
) -> tuple[str, int]:
    """``...`` or ``{sa_family=AF_INET, sin_port=htons(P), sin_addr=inet_addr("A")}``."""
    if e.kind != "struct":
        return default_ip, default_port
    ip, port = default_ip, default_port
    for key, part in e.value:
        if key == "sa_family" and part.kind == "name" and part.value != "AF_INET":
            raise Unsupported("IPv6" if "6" in str(part.value) else f"family {part.value}")
        if key == "sin_port":
            port = value(part)
        elif key == "sin_addr" and part.kind == "call" and part.value[0] == "inet_addr":
            ip = str(part.value[1][0].value)
        elif key in ("sin6_port", "sin6_addr"):
            raise Unsupported("IPv6")
    return ip, port


def linger(e: Expr) -> tuple[int, int] | None:
    if e.kind != "struct":
        return None
    fields = {k: value(v) for k, v in e.value}
    return fields.get("l_onoff", 0), fields.get("l_linger", 0)


def congestion(e: Expr) -> str:
    name = str(e.value) if e.kind == "str" else ""
    if name not in CONGESTION_OK:
        raise Unsupported(f"TCP_CONGESTION {name or e.kind}")
    return name
