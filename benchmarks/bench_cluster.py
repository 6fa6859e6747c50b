"""--jobs 1, --jobs 2 and --cluster local:2 on two workloads: wall clock and numbers.

Each engine runs each workload as its own subprocess (this interpreter, the repository as
its working folder, --verbose 0, its own temporary --out-dir); the engines' order turns
round from round to round. The table gives each engine's median wall seconds, its ratio
to --jobs 1's median, and whether its metrics.json has --jobs 1's numbers (seconds,
arguments, versions, the cluster and the costs aside).

The strict-protocol workload runs on a three-ticker CSV this script writes in a temporary
folder, in Kaggle's all_stocks_5yr layout, 1,259 business days per ticker. Its prices are
made up: a seeded random walk per ticker.

    python benchmarks/bench_cluster.py --rounds 2
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
ENGINES = {
    "--jobs 1": ["--jobs", "1"],
    "--jobs 2": ["--jobs", "2"],
    "--cluster local:2": ["--cluster", "local:2"],
}
DROPPED = {"seconds", "args", "versions", "cluster", "cost", "timings_s"}


def made_up_prices(path, tickers=("AAA", "BBB", "CCC"), days=1259):
    """A seeded random walk per ticker, in Kaggle's all_stocks_5yr columns."""
    frames = []
    for seed, ticker in enumerate(tickers):
        rng = np.random.default_rng(seed)
        mid = 20.0 * np.exp(np.cumsum(rng.normal(0, 0.01, days)))
        spread = mid * rng.uniform(0.002, 0.02, days)
        frames.append(
            pd.DataFrame(
                {
                    "date": pd.bdate_range("2013-02-08", periods=days).strftime("%Y-%m-%d"),
                    "open": mid.round(4),
                    "high": (mid + spread / 2).round(4),
                    "low": (mid - spread / 2).round(4),
                    "close": mid.round(4),
                    "volume": 1_000_000,
                    "Name": ticker,
                }
            )
        )
    pd.concat(frames).to_csv(path, index=False)
    return path


def numbers(record):
    """metrics.json without the keys an engine may change (recursively)."""
    if isinstance(record, dict):
        return {
            key: numbers(value)
            for key, value in record.items()
            if key not in DROPPED and not key.endswith("_s")
        }
    if isinstance(record, list):
        return [numbers(value) for value in record]
    return record


def run(command, engine, out_dir):
    argv = [sys.executable, *command, "--verbose", "0", *ENGINES[engine], "--out-dir", out_dir]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, numbers(json.loads((Path(out_dir) / "metrics.json").read_text()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds per workload (default: 2)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        csv = made_up_prices(Path(tmp) / "all_stocks_5yr.csv")
        workloads = {
            "stacked_lstm_damped_sine.py --quick --experiment length": [
                "stacked_lstm_damped_sine.py", "--quick", "--experiment", "length",
            ],
            "stock_lstm_compare.py --quick --protocol strict --tickers AAA,BBB,CCC": [
                "stock_lstm_compare.py", "--quick", "--protocol", "strict",
                "--csv", str(csv), "--tickers", "AAA,BBB,CCC",
            ],
        }  # fmt: skip
        for name, command in workloads.items():
            walls = {engine: [] for engine in ENGINES}
            same = {engine: True for engine in ENGINES}
            reference = None
            for r in range(args.rounds):
                order = list(ENGINES)
                order = order[r % 3 :] + order[: r % 3]  # turn the order round each round
                runs = {}
                for engine in order:
                    out = tempfile.mkdtemp(dir=tmp)
                    seconds, runs[engine] = run(command, engine, out)
                    walls[engine].append(seconds)
                    print(f"  round {r + 1}, {engine}: {seconds:.1f} s", flush=True)
                reference = reference or runs["--jobs 1"]
                for engine in ENGINES:
                    same[engine] &= runs[engine] == reference
            base = statistics.median(walls["--jobs 1"])
            print(f"\n`python {name}` ({args.rounds} rounds, wall clock)\n")
            print("| engine | runs (s) | median (s) | ratio to --jobs 1 | same numbers |")
            print("| --- | --- | --- | --- | --- |")
            for engine, seconds in walls.items():
                median = statistics.median(seconds)
                runs_s = ", ".join(f"{s:.1f}" for s in seconds)
                yes = "yes" if same[engine] else "no"
                print(f"| `{engine}` | {runs_s} | {median:.1f} | {median / base:.2f} | {yes} |")
            print(flush=True)


if __name__ == "__main__":
    main()
