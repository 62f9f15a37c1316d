"""The native stack below TCP: devices, software RSS, ARP, IPv4/ICMP and the loop glue."""

from .arp import ArpCache
from .devices import Device, DeviceError, MemoryDevice, PacketDevice, TapDevice, memory_pair
from .driver import Driver
from .ipv4 import Interface, InterfaceConfig, TcpHandler
from .rss import RssSteering, toeplitz_hash

__all__ = [
    "ArpCache",
    "Device",
    "DeviceError",
    "Driver",
    "Interface",
    "InterfaceConfig",
    "MemoryDevice",
    "PacketDevice",
    "RssSteering",
    "TapDevice",
    "TcpHandler",
    "memory_pair",
    "toeplitz_hash",
]
