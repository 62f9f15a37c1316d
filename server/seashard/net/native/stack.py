"""The native stack for one shard: its device queue, Interface (ARP/IPv4/ICMP) and TCP layer.

Each shard opens its own queue of the device (a multiqueue TAP, or an AF_PACKET
socket in a fanout group), so the kernel's flow hash decides which shard
receives a flow, and replies leave on that same queue. With fewer queues than
shards, the shards without one send through a shard that has one, and segments
are steered to their owner by the Toeplitz hash of the 4-tuple (software RSS).
ARP entries learned on one shard are shared with all.

TIME_WAIT outlives the process, as in the kernel: at shutdown each shard saves
its TIME_WAIT connections (with their wall-clock expiry) under the state
directory, and the next run's listen() honours them unless reuse_address.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from seashard import smp
from seashard.net.api import BindError, ListenOptions, SocketAddress
from seashard.net.native.devices import (
    CSUM,
    NO_OFFLOADS,
    TSO4,
    DeviceError,
    PacketDevice,
    TapDevice,
    offloads_label,
)
from seashard.net.native.driver import Driver
from seashard.net.native.ipv4 import Interface, InterfaceConfig
from seashard.net.native.limits import NativeLimits
from seashard.net.native.rss import RssSteering
from seashard.net.native.streams import NativeConnection
from seashard.net.native.tcp_layer import NativeServerSocket, TcpLayer

_ARP = "native.arp"
_ARP_REPLY = "native.arp-reply"  # a reply another shard may be waiting for
_SEGMENT = "native.segment"
_TX = "native.tx"
_LISTEN = "native.listen"


def load_time_wait(state_dir: Path, ip: str) -> list[dict[str, Any]]:
    """The unexpired TIME_WAIT entries every shard of the last run on ``ip`` saved."""
    wall = time.time()
    entries: list[dict[str, Any]] = []
    for path in state_dir.glob(f"native-{ip}-shard*.timewait.json"):
        try:
            entries += [e for e in json.loads(path.read_text()) if e["until"] > wall]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a damaged or half-written file only loses old TIME_WAIT
    return entries


def check_time_wait(state_dir: str | None, ip: str, listens: list[tuple[Any, Any]]) -> None:
    """Before any shard starts: a listener without reuse_address on a port the last run
    left in TIME_WAIT fails here, as the kernel's bind() would (raises BindError)."""
    busy = {
        e["local_port"]
        for e in load_time_wait(Path(state_dir) if state_dir else default_state_dir(), ip)
    }
    for address, options in listens:
        if address.port in busy and not options.reuse_address:
            exc = BindError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
            exc.address = address
            raise exc


def default_state_dir() -> Path:
    run = Path("/run/seashard")
    try:
        run.mkdir(parents=True, exist_ok=True)
        if os.access(run, os.W_OK):
            return run
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / "seashard"


class NativeStack:
    name = "native"

    def __init__(self, shard: smp.Shard, cfg: Any) -> None:
        self.shard = shard
        self.loop = shard.loop
        queues = max(1, min(cfg.device_queues or shard.count, shard.count))
        self.queues = queues
        try:
            iface_cfg = InterfaceConfig(
                host_ip=cfg.host_ipv4_addr,
                netmask=cfg.netmask_ipv4_addr,
                gateway=cfg.gw_ipv4_addr,
                mac=cfg.hw_addr,
            )
        except ValueError as exc:
            raise smp.StartupError(f"native stack: {exc}") from None
        self.device: TapDevice | PacketDevice | None = None
        offload = getattr(cfg, "offload", True)  # --no-offload: the plain path
        if shard.id < queues:
            try:
                if cfg.tap_device:
                    self.device = TapDevice(cfg.tap_device, shard.id, queues, offload=offload)
                else:
                    self.device = PacketDevice(cfg.packet_device, shard.id, queues, offload=offload)
            except (DeviceError, ValueError) as exc:
                raise smp.StartupError(str(exc)) from None
        transmit_parts = None
        if self.device is not None:
            transmit = self.device.send
            transmit_parts = getattr(self.device, "send_parts", None)  # the kernel devices'
            offloads = self.device.offloads
        else:
            # Without a queue of its own a shard sends through one that has one; that
            # shard's device does (or, refused, that shard does in software) the rest.
            transmit = self._proxy_transmit
            offloads = frozenset((CSUM, TSO4)) if offload else NO_OFFLOADS
        self.offloads = offloads
        limits: NativeLimits = cfg.limits
        self.interface = Interface(
            iface_cfg,
            transmit,
            on_arp_learn=self._share_arp,
            on_arp_reply_elsewhere=self._pass_arp_reply,
            arp_options={"max_entries": limits.arp_cache_entries},
            offloads=offloads,
            transmit_parts=transmit_parts,
        )
        rss = RssSteering(shard.count) if queues < shard.count else None
        ip = self.interface.ip
        self.tcp = TcpLayer(
            self.interface,
            self.loop,
            shard.id,
            shard.count,
            limits=limits,
            owner_of=(lambda rip, rport, lport: rss.shard_for(rip, ip, rport, lport))
            if rss is not None
            else None,
            forward=self._forward,
        )
        self.interface.tcp_handler = self.tcp.on_packet
        self.interface.tcp_segment = self.tcp.on_tcp  # the direct path
        self.frames_proxied = 0
        self.frames_proxied_gso = 0  # of them, GSO frames (the owning device cuts them)
        self.state_dir = Path(cfg.state_dir) if cfg.state_dir else default_state_dir()
        self.tcp.previous_time_wait = self._load_time_wait()
        self.driver = (
            Driver(self.device, self.interface, self.loop, batching=self.tcp)
            if self.device
            else None
        )
        if self.driver is not None:
            self.driver.start()
            self.tcp.drain = self.driver.drain
        shard.on(_ARP, self._on_arp)
        shard.on(_ARP_REPLY, self._on_arp_reply)
        shard.on(_SEGMENT, self._on_segment)
        shard.on(_TX, self._on_tx)
        shard.on(_LISTEN, lambda _sender, port, _fds: self.tcp.listened_elsewhere.add(port))

    # ------------------------------------------------------------ cross-shard

    def _others(self) -> list[int]:
        return [s for s in range(self.shard.count) if s != self.shard.id]

    def _share_arp(self, ip: str, mac: str) -> None:
        for s in self._others():
            self.shard.send(s, _ARP, (ip, mac))

    def _on_arp(self, _sender: int, payload: tuple[str, str], _fds: list[int]) -> None:
        ip, mac = payload
        self.interface.arp.learn(ip, mac, self.loop.time())

    def _pass_arp_reply(self, ip: str, mac: str) -> None:
        for s in self._others():
            self.shard.send(s, _ARP_REPLY, (ip, mac))

    def _on_arp_reply(self, _sender: int, payload: tuple[str, str], _fds: list[int]) -> None:
        ip, mac = payload
        if self.interface.arp.answer(ip, mac, self.loop.time()):
            self._share_arp(ip, mac)  # the asker shares what it learned, as for its own reply

    def _forward(self, owner: int, src_ip: str, segment: bytes) -> None:
        self.shard.send(owner, _SEGMENT, (src_ip, segment))

    def _on_segment(self, _sender: int, payload: tuple[str, bytes], _fds: list[int]) -> None:
        self.tcp.on_forwarded(*payload)

    def _proxy_transmit(self, frame: bytes, gso_size: int = 0, csum_partial: bool = False) -> bool:
        self.frames_proxied += 1
        if gso_size:
            self.frames_proxied_gso += 1
        payload = (frame, gso_size, csum_partial) if gso_size or csum_partial else frame
        self.shard.send(self.shard.id % self.queues, _TX, payload)
        return True

    def _on_tx(
        self, _sender: int, payload: bytes | tuple[bytes, int, bool], _fds: list[int]
    ) -> None:
        if self.device is not None:
            if isinstance(payload, tuple):
                self.device.send(*payload)
            else:
                self.device.send(payload)

    # ------------------------------------------------------------ network_stack

    def listen(
        self, address: SocketAddress, options: ListenOptions | None = None
    ) -> NativeServerSocket:
        server = self.tcp.listen(address, options or ListenOptions())
        for s in self._others():
            self.shard.send(s, _LISTEN, address.port)
        return server

    async def connect(self, address: SocketAddress) -> NativeConnection:
        return await self.tcp.connect(address)

    def metrics(self) -> dict[str, Any]:
        iface = self.interface
        tcp = self.tcp
        wall = time.time()
        previous = sum(1 for e in self._previous_reported() if e["until"] > wall)
        counters = {k: v for k, v in iface.counters.items() if k != "frames_dropped"}
        return {
            "connections_live": len(tcp.live()),
            "connections_total": tcp.connections_total,
            "connections_time_wait": len(tcp.time_wait()) + previous,
            "bytes_in": tcp.stats["bytes_in"],
            "bytes_out": tcp.stats["bytes_out"],
            "frames_received": counters.pop("frames_received"),
            "frames_sent": counters.pop("frames_sent"),
            "frames_dropped": {**dict(iface.drops), **self._vnet_drops()},
            "frames_tx_dropped": dict(iface.tx_drops),
            "frames_forwarded": tcp.stats["segments_forwarded"],
            "frames_proxied": self.frames_proxied,
            "frames_proxied_gso": self.frames_proxied_gso,
            "tcp_segments_in": tcp.stats["segments_in"],
            "tcp_segments_out": tcp.stats["segments_out"],
            "tcp_rst_sent": tcp.stats["rst_sent"],
            "tcp_syn_no_listener": tcp.stats["syn_no_listener"],
            "tcp_segments_no_connection": tcp.stats["segments_no_connection"],
            "tcp_retransmits": sum(c.tcp.stats.retransmits for c in tcp.conns.values())
            + tcp.stats["retransmits_closed"],
            "arp_cache_entries": len(iface.arp.entries(self.loop.time())),
            # one series per shard, the negotiated set as its label (admin.py LABELS)
            "device_offloads": {offloads_label(self.offloads): 1},
            "device_gso_frames_received": self._device_stat("rx_gso_frames"),
            "device_gso_frames_sent": self._device_stat("tx_gso_frames"),
            # frames_received / device_batches: frames per wakeup (what batching amortizes)
            "device_batches": self.driver.batches if self.driver is not None else 0,
            **self._limit_metrics(),
            **{k: v for k, v in counters.items() if k.startswith(("arp_", "icmp_", "ipv4_"))},
        }

    def _vnet_drops(self) -> dict[str, int]:
        """Frames the device dropped for a virtio-net header that made no sense."""
        drops = getattr(self.device, "vnet_drops", None) or {}
        return {f"vnet_{reason}": n for reason, n in drops.items()}

    def _device_stat(self, name: str) -> int:
        stats = getattr(self.device, "stats", None)
        return int(stats[name]) if stats is not None else 0

    def _limit_metrics(self) -> dict[str, Any]:
        """The SYN and accept queues per listener, SYN cookies, and each bound's drops."""
        tcp = self.tcp
        listeners = tcp.listeners
        drops = dict(tcp.limit_drops)
        budget = tcp.reassembly
        drops["reassembly_budget"] = budget.refused
        drops["reassembly_connection_limit"] = budget.refused_conn
        return {
            "tcp_syn_queue_live": {str(p): s.half_open for p, s in sorted(listeners.items())},
            "tcp_accept_queue_live": {str(p): len(s.pending) for p, s in sorted(listeners.items())},
            "tcp_syn_received": tcp.stats["syn_received"],
            "tcp_syncookies_sent": tcp.stats["syncookies_sent"],
            "tcp_syncookies_accepted": tcp.stats["syncookies_accepted"],
            "tcp_syncookies_rejected": tcp.stats["syncookies_rejected"],
            "tcp_limit_drops": drops,
            "tcp_gave_up": dict(tcp.gave_up),
            "tcp_reassembly_bytes_live": budget.used,
        }

    def connections(self) -> list[dict[str, Any]]:
        rows = [
            {
                "remote": str(c.remote_address),
                "local": str(c.local_address),
                "state": c.state,
                "bytes_in": c.bytes_in,
                "bytes_out": c.bytes_out,
                "segments_in": c.segments_in,
                "segments_out": c.tcp.stats.segments_out,
                "rcv_nxt": c.tcp.rcv_nxt,
                "snd_una": c.tcp.snd_una,
            }
            for c in list(self.tcp.conns.values())
        ]
        wall = time.time()
        rows += [
            {
                "remote": e["remote"],
                "local": f"{self.interface.ip}:{e['local_port']}",
                "state": "TIME_WAIT",
                "previous_run": True,
            }
            for e in self._previous_reported()
            if e["until"] > wall
        ]
        return rows

    def _previous_reported(self) -> list[dict[str, Any]]:
        """Every shard honours the last run's TIME_WAIT; shard 0 alone reports and keeps it."""
        return self.tcp.previous_time_wait if self.shard.id == 0 else []

    async def stop(self, grace: float) -> None:
        for server in list(self.tcp.listeners.values()):
            server.abort_accept()
        deadline = self.loop.time() + grace
        while self.tcp.live() and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in self.tcp.live():
            conn.abort()
        self._save_time_wait()
        await asyncio.sleep(0.05)  # let the RSTs leave
        if self.driver is not None:
            self.driver.close()

    # ------------------------------------------------------- TIME_WAIT state

    def _state_file(self, shard: int | str) -> Path:
        return self.state_dir / f"native-{self.interface.ip}-shard{shard}.timewait.json"

    def _load_time_wait(self) -> list[dict[str, Any]]:
        return load_time_wait(self.state_dir, self.interface.ip)

    def _save_time_wait(self) -> None:
        now, wall = self.loop.time(), time.time()
        entries = [
            {
                "local_port": c.key[2],
                "remote": str(c.remote_address),
                "until": wall + max(0.0, (c.tcp.time_wait_until or now) - now),
            }
            for c in self.tcp.time_wait()
        ]
        entries += [e for e in self._previous_reported() if e["until"] > wall]
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            tmp = self._state_file(f"{self.shard.id}.tmp")
            tmp.write_text(json.dumps(entries))
            tmp.replace(self._state_file(self.shard.id))
        except OSError as exc:
            smp.log(f"native stack: could not save TIME_WAIT state: {exc}")
