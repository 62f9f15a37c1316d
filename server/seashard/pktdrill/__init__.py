"""A packetdrill-compatible runner: TCP scripts played against the native stack (in
memory, virtual clock) or the Linux kernel (TUN in a network namespace), or both.

``seashard pktdrill FILE.pkt... --stack native|linux|both``; see runner.py.
"""
