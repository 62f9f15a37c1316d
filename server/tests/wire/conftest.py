"""Make ``seashard`` importable when the package is not installed."""

import sys
from pathlib import Path

_SERVER = str(Path(__file__).resolve().parents[2])
if _SERVER not in sys.path:
    sys.path.insert(0, _SERVER)
