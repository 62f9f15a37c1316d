"""build: the lab image from images/lab/Dockerfile (the base image must be here:
scripts/lab pulls it or makes it with debootstrap before it gets here)."""

from __future__ import annotations

import argparse
import time

from ..deployment import build_image, lab_image
from ..runtime import Engine
from ..ui import say

HELP = "build the lab image (LAB_IMAGE) on BASE_IMAGE"


def add_arguments(p: argparse.ArgumentParser) -> None:
    del p


def run(args: argparse.Namespace) -> int:
    del args
    start = time.monotonic()
    say(f"building {lab_image()} from images/lab/Dockerfile")
    image = build_image(Engine())
    say(f"built {image} in {time.monotonic() - start:.0f} s")
    return 0
