"""A TCP segment as the state machine sees it: header fields that matter, no ports.

The one segment type between ``seashard.wire`` and ``seashard.tcp``: it is
defined beside the wire codec (``seashard.wire.tcp.Segment``), which parses frames
straight into it (``parse_segment``), and re-exported here for the machine.
``window`` is the 16-bit field exactly as on the wire: the receiver of a segment
applies the sender's window-scale shift itself (and never to SYN segments).
"""

from __future__ import annotations

from seashard.wire.tcp import Segment, TcpFlags

__all__ = ["Flags", "Segment"]


# The wire's flag bits: one enum for both layers, so segments convert without mapping.
Flags = TcpFlags
