"""seashard: a Seastar-style shard-per-core network server runtime."""

__version__ = "0.1.0"
