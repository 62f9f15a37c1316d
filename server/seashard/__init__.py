"""seashard: a Seastar-style shard-per-core network server runtime."""

from seashard import accel as _accel

__version__ = "0.1.0"

# Before any compiled module is imported: SEASHARD_PURE=1, or a build older than its
# sources, makes them load from their .py files (see seashard/accel.py).
_accel.install()
