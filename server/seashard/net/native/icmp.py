"""ICMP for the native stack: answer echo requests, count everything else."""

from __future__ import annotations

from seashard.wire.errors import MalformedError
from seashard.wire.icmp import IcmpPacket, IcmpType


def echo_reply(message: bytes) -> tuple[bytes | None, str | None]:
    """The echo reply to an ICMP ``message``: ``(reply, None)``, or ``(None, drop_reason)``."""
    try:
        icmp = IcmpPacket.parse(message)
    except MalformedError as exc:
        return None, f"icmp_{exc.reason}"
    if icmp.type != IcmpType.ECHO_REQUEST:
        return None, "icmp_unsupported_type"
    if icmp.code != 0:
        return None, "icmp_bad_code"
    return icmp.echo_reply().build(), None
