"""seashard_lab: the containerized lab of seashard, driven from the host.

One program for the CLI (`scripts/lab VERB`, i.e. ``python -m seashard_lab``),
the scenarios (scenarios/*.toml) and the lab suites (lab_tests/):

    cli.py, verbs/     one thin command per verb
    deployment.py      a lab as an object: compose today (ComposeDeployment)
    lab.py             what one does on a running lab (exec, labctl, admin pages, clients)
    steps.py           the situations the suites and scenarios replay
    scenario/          scenario files: parser, step library, runner
    capture.py         packet capture (tcpdump in a helper container)
    metrics.py, parse.py   pure parsers (Prometheus text, ss, serve arguments)
    plan.py            the address plan and the service ports
    runtime.py         the one module that talks to the engine (docker SDK, compose)
"""

from pathlib import Path

# the repository (docker-compose.yml, images/, scenarios/)
ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = "images/lab/Dockerfile"
SCENARIO_DIR = ROOT / "scenarios"
ARTIFACTS = ROOT / "artifacts"
