"""Shared pytest setup: headless figures, and the lesson scripts importable as modules."""

import os
import sys
from pathlib import Path

# Figures are saved, never shown, while testing.
os.environ.setdefault("MPLBACKEND", "Agg")

# The scripts live at the repository root; tests import them as modules.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
