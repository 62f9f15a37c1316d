"""A scenario's restart step times the start alone: the stop before it (which
waits out the old server's --grace) is timed and shown apart, so "a restart
without --reuse-address fails at once" is what the scenario reports."""

from __future__ import annotations

from pathlib import Path

from seashard_lab import SCENARIO_DIR
from seashard_lab.runtime import Result
from seashard_lab.scenario import library
from seashard_lab.scenario.parse import load


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Lab:
    """labctl as the server container answers it: a stop that takes 3 s (grace),
    a start that fails 0.2 s later on the busy port."""

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.calls: list[tuple[str, ...]] = []

    def serve_args(self, server: str, **changes) -> list[str]:
        reuse = ["--reuse-address"] if changes["reuse_address"] else []
        return ["serve", "-c", "2", *reuse]

    def labctl(self, server: str, *args: str, timeout: float = 60.0) -> Result:
        self.calls.append(args)
        if args[0] == "stop":
            self.clock.now += 3.0
            return Result(["labctl", *args], 0, "labctl: seashard stopped (exit status 0)\n", "")
        assert args[0] == "start", args
        self.clock.now += 0.2
        return Result(
            ["labctl", *args], 1, "labctl: started\n", "bind: Address already in use\nmore\n"
        )


def test_a_restart_reports_the_start_alone_and_the_stop_apart(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(library.time, "monotonic", clock)
    scenario = load(SCENARIO_DIR / "timewait-restart.toml")
    step = next(s for s in scenario.steps if s.kind == "restart")
    assert step.params["reuse_address"] is False
    lab = _Lab(clock)
    ctx = library.Context(lab, library.Report(), Path("timewait-restart.toml"), Path("."))
    library.run_restart(ctx, step)

    # a stop, then a start with the step's arguments -- not one `labctl restart`
    assert [c[0] for c in lab.calls] == ["stop", "start"]
    assert lab.calls[1][1:] == ("serve", "-c", "2")
    (outcome,) = ctx.restarts
    assert outcome.rc == 1 and outcome.first_line == "bind: Address already in use"
    assert abs(outcome.seconds - 0.2) < 1e-9
    assert abs(outcome.stop_seconds - 3.0) < 1e-9
    assert ctx.rep.lines == [
        "posix: restart without --reuse-address: stopped in 3.0 s; start: exit 1, "
        "after 0.2 s: 'bind: Address already in use'"
    ]
