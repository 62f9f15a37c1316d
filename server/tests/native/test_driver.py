"""The event-loop glue: real asyncio loop, memory devices."""

import asyncio

from native_helpers import OUR_IP, OUR_MAC, PEER_IP, PEER_MAC
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether

from seashard.net.native.devices import MemoryDevice
from seashard.net.native.driver import Driver
from seashard.net.native.ipv4 import Interface, InterfaceConfig


def make(retry: float = 0.05) -> tuple[Driver, Interface, MemoryDevice]:
    dev = MemoryDevice()
    iface = Interface(
        InterfaceConfig(OUR_IP, mac=OUR_MAC), dev.send, arp_options={"retry_interval": retry}
    )
    return Driver(dev, iface), iface, dev


def test_arp_retries_run_on_loop_timers_without_traffic() -> None:
    async def main() -> tuple[int, dict[str, int]]:
        driver, iface, dev = make()
        driver.start()
        iface.send_ipv4("10.0.0.99", 6, b"x", driver.now())
        await asyncio.sleep(0.4)
        driver.close()
        return len(dev.take_sent()), dict(iface.tx_drops)

    sent, drops = asyncio.run(main())
    assert sent == 3
    assert drops == {"arp_failed": 1}


def test_pump_delivers_injected_frames_in_batches() -> None:
    async def main() -> None:
        driver, iface, dev = make()
        driver.batch = 2
        driver.start()
        dev.inject(
            bytes(
                Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC)
                / ARP(psrc=PEER_IP, hwsrc=PEER_MAC, pdst=OUR_IP)
            )
        )
        for seq in range(3):
            dev.inject(
                bytes(
                    Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP) / ICMP(seq=seq)
                )
            )
        assert driver.pump() == 2
        assert driver.pump() == 2
        assert driver.pump() == 0
        out = [Ether(f) for f in dev.take_sent()]
        assert [p.haslayer(ARP) for p in out] == [True, False, False, False]
        assert [p[ICMP].seq for p in out[1:]] == [0, 1, 2]
        driver.close()
        assert dev.closed

    asyncio.run(main())


def test_stop_cancels_timers() -> None:
    async def main() -> int:
        driver, iface, dev = make(retry=0.05)
        driver.start()
        iface.send_ipv4("10.0.0.99", 6, b"x", driver.now())
        driver.stop()
        await asyncio.sleep(0.2)
        return len(dev.take_sent())

    assert asyncio.run(main()) == 1


def test_drain_delivers_every_waiting_frame_in_bounded_batches() -> None:
    def ping(dev: MemoryDevice, n: int) -> None:
        for seq in range(n):
            frame = Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP) / ICMP(seq=seq)
            dev.inject(bytes(frame))

    async def main() -> tuple[list[int], int]:
        driver, iface, dev = make()
        driver.batch = 2
        iface.arp.learn(PEER_IP, PEER_MAC, driver.now())
        ping(dev, 5)
        driver.drain()  # 2 + 2 + 1: all of them, not one batch
        first = [Ether(f)[ICMP].seq for f in dev.take_sent()]
        ping(dev, 7)
        driver.drain(batches=3)  # bounded: 3 batches of 2
        return first, len(dev.take_sent())

    assert asyncio.run(main()) == ([0, 1, 2, 3, 4], 6)
