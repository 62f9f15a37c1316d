"""The compiled accelerator's switch: SEASHARD_PURE=1, a stale build, and what says which runs.

Each check runs a fresh interpreter: the choice is made once, at ``import seashard``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seashard import accel, admin

SERVER = Path(__file__).resolve().parents[1]
PROBE = (
    "import json, seashard, seashard.accel as a, seashard.net.native.tcp_layer, "
    "seashard.tcp.connection as c; "
    "print(json.dumps({'mode': a.mode(), 'describe': a.describe(), 'file': c.__file__, "
    "'compiled': a.compiled_modules()}))"
)


def _env_without_pure() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != accel.PURE_ENV}


def _probe(root: Path = SERVER, **env: str) -> tuple[dict, str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**_env_without_pure(), "PYTHONPATH": str(root), **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout), out.stderr


@pytest.fixture
def built() -> None:
    """The compiled checks need a build; scripts/test makes one and insists on it."""
    if not accel._built():
        if os.environ.get("SEASHARD_ACCEL_REQUIRED") == "1":
            pytest.fail("SEASHARD_ACCEL_REQUIRED=1 but scripts/build_accel has not run")
        pytest.skip("the accelerator is not built (scripts/build_accel)")


def test_seashard_pure_loads_every_module_from_its_source(built: None) -> None:
    got, _ = _probe(SEASHARD_PURE="1")
    assert got["mode"] == "pure" and got["compiled"] == []
    assert got["file"].endswith("/seashard/tcp/connection.py")
    assert got["describe"] == "pure Python: SEASHARD_PURE=1"


def test_a_current_build_loads_every_listed_module_compiled(built: None) -> None:
    got, stderr = _probe(SEASHARD_PURE="0")  # "0" is not a request for pure
    assert got["mode"] == "compiled", stderr
    assert got["compiled"] == list(accel.COMPILED)
    assert got["file"].endswith(".so")
    n = len(accel.COMPILED)
    assert got["describe"] == f"compiled (mypyc, {n} of {n} modules)"
    assert "running pure Python" not in stderr


def test_a_source_changed_after_the_build_runs_everything_pure_and_says_so(
    built: None, tmp_path: Path
) -> None:
    shutil.copytree(
        SERVER / "seashard", tmp_path / "seashard", ignore=shutil.ignore_patterns("__pycache__")
    )
    with open(tmp_path / "seashard" / "wire" / "checksum.py", "a") as f:
        f.write("# edited after the build\n")
    got, stderr = _probe(tmp_path)
    assert got["mode"] == "pure" and got["compiled"] == []
    assert got["file"] == str(tmp_path / "seashard" / "tcp" / "connection.py")
    assert "stale build: wire.checksum changed since scripts/build_accel" in got["describe"]
    assert stderr.count("seashard: running pure Python: stale build") == 1


def test_an_unbuilt_tree_runs_pure(tmp_path: Path) -> None:
    shutil.copytree(
        SERVER / "seashard",
        tmp_path / "seashard",
        ignore=shutil.ignore_patterns("__pycache__", "*.so", accel.MANIFEST),
    )
    got, stderr = _probe(tmp_path)
    assert got["mode"] == "pure" and got["compiled"] == []
    assert got["describe"] == "pure Python: not built; scripts/build_accel builds it"
    assert stderr == ""


def test_version_says_which_code_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "seashard.cli", "--version"],
        env={**_env_without_pure(), "PYTHONPATH": str(SERVER), "SEASHARD_PURE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0
    assert out.stdout.startswith("seashard 0.1.0, pure Python")


def test_metrics_carry_the_code_that_runs() -> None:
    shard = {"shard": 0, "pid": 1, "cpus": [0], "stack": "posix", "metrics": {}}
    text = admin.prometheus_text(
        [{**shard, "code": "compiled"}, {**shard, "shard": 1, "code": "pure"}]
    )
    lines = text.splitlines()
    assert 'seashard_build_info{shard="0",version="0.1.0",code="compiled"} 1' in lines
    assert 'seashard_build_info{shard="1",version="0.1.0",code="pure"} 1' in lines
    assert "seashard_build_info" not in admin.prometheus_text([shard])
