"""One module per verb: ``add_arguments(parser)`` and ``run(args) -> exit status``."""

VERBS = ("build", "up", "down", "status", "logs", "capture", "scenario", "test")
