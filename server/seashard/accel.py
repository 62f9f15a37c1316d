"""The optional compiled accelerator: which modules mypyc compiles, and which ones run.

The ``.py`` files are the source of truth. ``scripts/build_accel`` compiles the modules
in ``COMPILED`` with mypyc into extension modules beside them (build output, ignored by
git): ``seashard/tcp/connection.cpython-311-*.so`` and so on, small shims over one
shared library, ``seashard/_accel__mypyc*.so``. Python's import system prefers an
extension module to a ``.py`` of the same name, so a built tree runs compiled.

It runs pure Python instead, every module from its ``.py``, when

- ``SEASHARD_PURE=1`` is set, or
- a source changed since the build (its checksum is not the one in ``_accel_manifest.txt``):
  compiled code would run the old source.  A warning says so once.

It is all or nothing: the compiled modules call each other directly inside their shared
library, so a pure ``connection.py`` next to a compiled ``tcp_layer.py`` would give two
``Connection`` classes.  ``seashard/__init__.py`` installs the finder that enforces this
(``install``) before any of them is imported.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import zlib
from collections.abc import Sequence
from types import ModuleType

# The per-segment path of the native stack, and the TCP machine under it (what
# scripts/profile_native spends its time in).  Leaf modules first.
COMPILED: tuple[str, ...] = (
    "seashard.tcp.seq",
    "seashard.tcp.rtt",
    "seashard.tcp.buffers",
    "seashard.tcp.reassembly",
    "seashard.tcp.sack",
    "seashard.tcp.rack",
    "seashard.tcp.congestion",
    "seashard.tcp.cc.base",
    "seashard.tcp.cc.newreno",
    "seashard.tcp.cc.cubic",
    "seashard.tcp.connection",
    "seashard.wire.checksum",
    "seashard.wire.ethernet",
    "seashard.wire.ipv4",
    "seashard.wire.tcp",
    "seashard.wire.vnet",
    "seashard.net.native.ipv4",
    "seashard.net.native.tcp_layer",
    "seashard.net.native.streams",
    "seashard.net.native.driver",
    "seashard.net.native.devices",  # the TAP's and AF_PACKET's read and write per frame
)
SHARED_LIB = "seashard._accel__mypyc"  # the group mypyc builds them into
MANIFEST = "_accel_manifest.txt"  # beside this file: "MODULE CRC32" per compiled module
PURE_ENV = "SEASHARD_PURE"

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_PACKAGE_DIR)  # the directory that holds the seashard package


def source_path(module: str) -> str:
    """The ``.py`` file of ``module`` (one of ``COMPILED``)."""
    return os.path.join(_ROOT, *module.split(".")) + ".py"


def source_hash(module: str) -> str:
    """A checksum that tells an edited source (CRC-32: ``zlib`` costs nothing to import,
    where ``hashlib`` costs milliseconds on every start)."""
    with open(source_path(module), "rb") as f:
        return f"{zlib.crc32(f.read()):08x}"


def manifest() -> str:
    """What the build records of the sources it compiles (taken before it compiles them:
    an edit during the build then reads as stale)."""
    return "".join(f"{m} {source_hash(m)}\n" for m in COMPILED)


def write_manifest(text: str) -> str:
    """Record ``manifest()`` once the build is done (the build script); returns its path."""
    path = os.path.join(_PACKAGE_DIR, MANIFEST)
    with open(path, "w") as f:
        f.write(text)
    return path


def pure_requested() -> bool:
    return os.environ.get(PURE_ENV, "") not in ("", "0")


def stale_sources() -> list[str]:
    """The compiled modules whose source differs from what was compiled
    (all of them when there is no manifest)."""
    recorded: dict[str, str] = {}
    try:
        with open(os.path.join(_PACKAGE_DIR, MANIFEST)) as f:
            for line in f:
                name, _, digest = line.strip().partition(" ")
                recorded[name] = digest
    except OSError:
        return list(COMPILED)
    return [m for m in COMPILED if recorded.get(m) != source_hash(m)]


def _built() -> bool:
    """Whether an extension module exists for the first compiled module."""
    spec = importlib.machinery.PathFinder.find_spec(
        COMPILED[0], [os.path.dirname(source_path(COMPILED[0]))]
    )
    return spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)


class _SourceFinder:
    """Finds every module in ``COMPILED`` as its ``.py``, ahead of the extension modules
    (a meta path finder; not derived from ``importlib.abc``, whose import costs more)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _COMPILED_SET:
            return None
        return importlib.util.spec_from_file_location(fullname, source_path(fullname))


_COMPILED_SET = frozenset(COMPILED)
_why_pure: str | None = None  # set by install(): None means compiled (or nothing built)


def install() -> None:
    """Decide once, at ``import seashard``, how the compiled modules load."""
    global _why_pure
    if not _built():
        _why_pure = "not built; scripts/build_accel builds it"
    elif pure_requested():
        _why_pure = f"{PURE_ENV}=1"
    else:
        stale = stale_sources()
        if stale:
            names = ", ".join(m.removeprefix("seashard.") for m in stale[:3])
            more = f" and {len(stale) - 3} more" if len(stale) > 3 else ""
            _why_pure = f"stale build: {names}{more} changed since scripts/build_accel"
            print(f"seashard: running pure Python: {_why_pure}", file=sys.stderr)
    if _why_pure is not None:
        sys.meta_path.insert(0, _SourceFinder())


def compiled_modules() -> list[str]:
    """The modules of ``COMPILED`` that load (or loaded) from an extension module."""
    out = []
    for name in COMPILED:
        module = sys.modules.get(name)
        spec = module.__spec__ if module is not None else importlib.util.find_spec(name)
        if spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            out.append(name)
    return out


def describe() -> str:
    """One line for ``seashard --version`` and the admin endpoint."""
    if _why_pure is not None:
        return f"pure Python: {_why_pure}"
    return f"compiled (mypyc, {len(compiled_modules())} of {len(COMPILED)} modules)"


def mode() -> str:
    """``compiled`` or ``pure``: the admin endpoint's label."""
    return "pure" if _why_pure is not None else "compiled"
