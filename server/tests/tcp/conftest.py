import sys
from pathlib import Path

# Make ``seashard`` importable without installing the project.
_SERVER = Path(__file__).resolve().parents[2]
if str(_SERVER) not in sys.path:
    sys.path.insert(0, str(_SERVER))
