"""Shared pytest setup: headless figures, and the lesson scripts importable as modules."""

import os
import re
import sys
from pathlib import Path

import numpy as np

# Figures are saved, never shown, while testing.
os.environ.setdefault("MPLBACKEND", "Agg")

# The scripts live at the repository root; tests import them as modules.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# TensorFlow 2.21 writes a few C++ start-up lines to stderr when it is imported, whatever
# TF_CPP_MIN_LOG_LEVEL says (they come before its logging is set up). The scripts import
# Keras at the top, so a subprocess's stderr begins with them; our own lines follow.
TF_STARTUP = re.compile(r"^(WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} \d\d:)")


def our_stderr_lines(stderr):
    """The lines of a subprocess's stderr that are ours, without TensorFlow's start-up lines."""
    return [line for line in stderr.strip().splitlines() if not TF_STARTUP.match(line)]


# Three AAL rows as Kaggle's all_stocks_5yr.csv has them (columns date,open,high,low,close,
# volume,Name): their mid prices are the stock chapter's first three, 14.875, 14.635 and 14.305.
AAL_FIRST_ROWS = [
    "2013-02-08,15.07,15.12,14.63,14.75,8407500,AAL",
    "2013-02-11,14.89,15.01,14.26,14.46,8882000,AAL",
    "2013-02-12,14.45,14.51,14.1,14.27,8126000,AAL",
]


def price_rows(ticker, n, start_price=20.0, seed=0):
    """n rows of a made-up random walk, in Kaggle's column order."""
    rng = np.random.default_rng(seed)
    mid = start_price * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    spread = mid * rng.uniform(0.002, 0.02, n)
    days = np.busday_offset(np.datetime64("2013-02-08"), np.arange(n), roll="forward")
    return [
        f"{day},{m:.4f},{m + s / 2:.4f},{m - s / 2:.4f},{m:.4f},1000000,{ticker}"
        for day, m, s in zip(days, mid, spread)
    ]
