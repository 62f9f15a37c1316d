"""Scenario files: every built-in one parses; a bad one gets FILE:LINE: what is wrong."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from seashard_lab import SCENARIO_DIR
from seashard_lab.scenario import ScenarioError, find, listing, load
from seashard_lab.scenario.library import KINDS, describe_library

BUILTIN = sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def test_the_built_in_scenarios_are_there():
    for name in (
        "timewait-restart",
        "shard0-only-listener",
        "connection-storm",
        "lossy-link-echo",
        "restart-under-lossy-load",
        "lba-port-parity",
    ):
        assert name in BUILTIN


@pytest.mark.parametrize("name", BUILTIN)
def test_every_built_in_scenario_parses(name):
    s = load(find(name))
    assert s.name == name and s.about and s.steps
    assert all(step.kind in KINDS for step in s.all_steps)


def test_a_step_knows_its_line_and_defaults():
    s = load(SCENARIO_DIR / "timewait-restart.toml")
    text = (SCENARIO_DIR / "timewait-restart.toml").read_text().splitlines()
    restart = next(st for st in s.steps if st.kind == "restart")
    assert text[restart.line - 1].strip() == "[[step]]"
    assert text[restart.key_lines["reuse_address"] - 1].startswith("reuse_address")
    assert restart.params["reuse_address"] is False and restart.params["grace"] == 0


def bad(tmp_path, body: str) -> str:
    path = tmp_path / "mine.toml"
    path.write_text(textwrap.dedent(body))
    with pytest.raises(ScenarioError) as info:
        load(path)
    return str(info.value)


@pytest.mark.parametrize(
    ("body", "line", "what"),
    [
        ('about = "x"\n[[step]]\ndo = "load"\nkind = "echo"\nsizes = [1]\nconections = 3\n', 6,
         "step 'load' has no key 'conections'"),
        ('[[step]]\ndo = "restrat"\n', 2, "unknown step 'restrat'"),
        ('[[step]]\nkind = "echo"\n', 1, "has no 'do'"),
        ('[[step]]\ndo = "load"\nkind = "echo"\nsizes = [1]\nconnections = "ten"\n', 5,
         "'connections' must be int"),
        ('[[step]]\ndo = "load"\nkind = "flood"\n', 3, "must be one of echo, canned"),
        ('[[step]]\ndo = "load"\n', 1, "needs 'kind'"),
        ('[[step]]\ndo = "impair"\nloss = 1.5\n', 3, "must be at most 0.99"),
        ('[[step]]\ndo = "expect"\nrise_at_least = 3\n', 3, "need a 'counter'"),
        ('[[step]]\ndo = "expect"\nexit_code = "fails"\n', 3, "a number or \"nonzero\""),
        ('[[step]]\ndo = "expect"\n', 2, "nothing to check"),
        ('servers = ["posix", "bsd"]\n[[step]]\ndo = "wait"\nseconds = 1\n', 1, "not 'bsd'"),
        ('colour = "red"\n[[step]]\ndo = "wait"\nseconds = 1\n', 1, "unknown key 'colour'"),
        ('about = "x"\n', 1, "no steps"),
        ('[[step]]\ndo = "wait"\nseconds = 1\n\n[[step]\ndo = "wait"\n', 5, "not valid TOML"),
        ('[[step]]\ndo = "load"\nkind = "echo"\n', 1, "needs 'sizes'"),
        ('[[step]]\ndo = "restart"\ndefaults = true\nsmp = 1\n', 3, "takes no other"),
        ('[[step]]\ndo = "wait"\nseconds = 1\n[[step]]\ndo = "expect"\nmax_eror = 1\n', 6,
         "step 'expect' has no key 'max_eror'"),
    ],
)  # fmt: skip
def test_a_bad_file_says_file_line_and_what(tmp_path, body, line, what):
    message = bad(tmp_path, body)
    assert message.startswith(f"{tmp_path / 'mine.toml'}:{line}: "), message
    assert what in message, message
    assert "\n" not in message


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'; one of: .*timewait-restart"):
        find("nope")


def test_an_expect_of_exit_code_0_is_a_check(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text('[[step]]\ndo = "restart"\n[[step]]\ndo = "expect"\nexit_code = 0\n')
    assert load(path).steps[1].params["exit_code"] == 0


def test_the_readme_example_is_a_valid_scenario(tmp_path):
    readme = (SCENARIO_DIR.parent / "README.md").read_text()
    start = readme.index("```toml\n") + len("```toml\n")
    path = tmp_path / "mybug.toml"
    path.write_text(readme[start : readme.index("```", start)])
    kinds = [s.kind for s in load(path).all_steps]
    assert kinds == ["pause-clients", "impair", "load", "restart", "expect", "finish", "expect"]


def test_the_cli_exits_2_on_a_bad_file_before_it_looks_for_a_lab(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('[[step]]\ndo = "wait"\nsecnds = 1\n')
    res = subprocess.run(
        [sys.executable, "-m", "seashard_lab", "scenario", str(path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": "unix:///nonexistent.sock"},
    )
    assert res.returncode == 2
    assert (
        res.stderr.strip()
        == f"{path}:3: step 'wait' has no key 'secnds' (its keys: label, seconds)"
    )


def test_listing_and_the_library_text():
    names = [name for name, _ in listing()]
    assert names == BUILTIN
    text = describe_library()
    for kind in KINDS:
        assert f'do = "{kind}"' in text
