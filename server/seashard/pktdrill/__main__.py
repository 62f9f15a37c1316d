"""``python -m seashard.pktdrill`` is ``seashard pktdrill``."""

import sys

from seashard.cli import main

sys.exit(main(["pktdrill", *sys.argv[1:]]))
