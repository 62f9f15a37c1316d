"""Test helpers: a hand-played peer and handshake shortcuts, on a virtual clock."""

from __future__ import annotations

from seashard.tcp import Connection, Flags, Segment, State, TcpConfig
from seashard.tcp.seq import seq_add, seq_diff

A = Flags.ACK
S = Flags.SYN
F = Flags.FIN
R = Flags.RST
P = Flags.PSH

ISS = 1000  # our side's initial sequence number
PEER_ISS = 5000


def config(**kw: object) -> TcpConfig:
    return TcpConfig(**kw)  # type: ignore[arg-type]


class Peer:
    """The remote end, played by hand.  Tracks its own SND.NXT (``nxt``) and
    RCV.NXT (``rcv_nxt``), and collects the in-order data it has seen."""

    def __init__(
        self,
        isn: int = PEER_ISS,
        window: int = 65535,
        mss: int | None = 1460,
        wscale: int | None = None,
    ) -> None:
        self.isn = isn
        self.nxt = isn
        self.rcv_nxt = 0
        self.window = window  # the raw field this peer puts on the wire
        self.mss = mss
        self.wscale = wscale
        self.received = bytearray()
        self.fin_received = False

    # --- building segments -------------------------------------------------
    def seg(
        self,
        flags: Flags = A,
        payload: bytes = b"",
        *,
        seq: int | None = None,
        ack: int | None = None,
        window: int | None = None,
        advance: bool | None = None,
    ) -> Segment:
        if advance is None:
            advance = seq is None
        s = Segment(
            seq=self.nxt if seq is None else seq,
            ack=(self.rcv_nxt if ack is None else ack) if flags & A else 0,
            flags=flags,
            window=self.window if window is None else window,
            payload=payload,
        )
        if advance:
            self.nxt = seq_add(s.seq, s.seg_len)
        return s

    def syn(self, **kw: object) -> Segment:
        s = Segment(self.nxt, 0, S, min(self.window, 65535), mss=self.mss, wscale=self.wscale)
        for k, v in kw.items():
            setattr(s, k, v)
        self.nxt = seq_add(s.seq, 1)
        return s

    def syn_ack(self, their_syn: Segment, **kw: object) -> Segment:
        self.rcv_nxt = seq_add(their_syn.seq, 1)
        s = Segment(
            self.isn,
            self.rcv_nxt,
            S | A,
            min(self.window, 65535),
            mss=self.mss,
            wscale=self.wscale,
        )
        for k, v in kw.items():
            setattr(s, k, v)
        self.nxt = seq_add(self.isn, 1)
        return s

    def ack(self, **kw: object) -> Segment:
        return self.seg(A, **kw)  # type: ignore[arg-type]

    def data(self, payload: bytes, **kw: object) -> Segment:
        return self.seg(A | P, payload, **kw)  # type: ignore[arg-type]

    def fin(self, payload: bytes = b"", **kw: object) -> Segment:
        return self.seg(A | F, payload, **kw)  # type: ignore[arg-type]

    def rst(self, seq: int | None = None, ack: bool = False) -> Segment:
        return Segment(
            self.nxt if seq is None else seq,
            self.rcv_nxt if ack else 0,
            R | A if ack else R,
            0,
        )

    # --- taking what the connection sent ----------------------------------
    def absorb(self, segs: list[Segment]) -> list[Segment]:
        """Advance RCV.NXT over in-order data/FIN; returns ``segs`` unchanged."""
        for s in segs:
            if s.flags & R:
                continue
            if s.flags & S:
                self.rcv_nxt = seq_add(s.seq, 1)
                continue
            off = seq_diff(s.seq, self.rcv_nxt)
            n = len(s.payload)
            if off <= 0 < off + n + (1 if s.flags & F else 0):
                self.received += s.payload[-off:] if off else s.payload
                self.rcv_nxt = seq_add(s.seq, n)
                if s.flags & F:
                    self.rcv_nxt = seq_add(self.rcv_nxt, 1)
                    self.fin_received = True
        return segs


def open_passive(
    cfg: TcpConfig | None = None, peer: Peer | None = None, now: float = 0.0, iss: int = ISS
) -> tuple[Connection, Peer]:
    """Peer connects to us; returns an ESTABLISHED connection and the peer."""
    peer = peer or Peer()
    conn = Connection.accept(peer.syn(), iss, now, cfg or TcpConfig())
    out = peer.absorb(conn.segments_out())
    assert len(out) == 1 and out[0].flags == S | A
    conn.on_segment(peer.ack(), now)
    assert conn.state is State.ESTABLISHED
    assert conn.segments_out() == []
    return conn, peer


def open_active(
    cfg: TcpConfig | None = None, peer: Peer | None = None, now: float = 0.0, iss: int = ISS
) -> tuple[Connection, Peer]:
    """We connect to the peer; returns an ESTABLISHED connection and the peer."""
    peer = peer or Peer()
    conn = Connection.connect(iss, now, cfg or TcpConfig())
    (syn,) = conn.segments_out()
    conn.on_segment(peer.syn_ack(syn), now)
    assert conn.state is State.ESTABLISHED
    (ack,) = conn.segments_out()
    assert ack.flags == A and ack.ack == peer.nxt
    return conn, peer


def only(segs: list[Segment]) -> Segment:
    assert len(segs) == 1, [str(s) for s in segs]
    return segs[0]


def strs(segs: list[Segment]) -> list[str]:
    return [str(s) for s in segs]
