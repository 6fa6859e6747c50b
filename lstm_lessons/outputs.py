"""The output folder, atomic writes, metrics.json's run record, versions and the results table."""

import json
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import keras
import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from . import cli, parallel  # modules: both import this one


def prepare_out_dir(path):
    """Create the output folder, or fail with exit 2 before any work starts."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        cli.fail(f"--out-dir {path} is a file, not a folder; pass a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        cli.fail(f"cannot write to --out-dir {path} ({exc.strerror}); pass a writable folder")
    return path


def write_atomically(path, write):
    """Call write(tmp_path), then rename tmp_path to path.

    A run stopped halfway leaves the old file or the new one, never half a file.
    The temporary name keeps the suffix, because Keras picks the format from it.
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_figure(fig, path):
    """Save a matplotlib figure as PNG (atomically) and close it unless shown."""
    write_atomically(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    if matplotlib.get_backend().lower() == "agg":
        plt.close(fig)
    print(f"saved {path}")


def save_model(model, path):
    """Save a Keras model as .keras (atomically)."""
    write_atomically(path, model.save)
    print(f"saved {path}")


def save_json(data, path):
    """Write a JSON record (atomically)."""
    text = json.dumps(data, indent=2, default=float) + "\n"
    write_atomically(path, lambda tmp: Path(tmp).write_text(text))
    print(f"saved {path}")


def run_record(args, seeds, script):
    """The head of every metrics.json: script, arguments, seeds, versions, backend."""
    return {
        "script": Path(script).name,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "seed": args.seed,
        "seeds": list(seeds),
        "versions": library_versions(),
        "backend": keras.backend.backend(),
        "cluster": parallel.cluster_record(),  # --cluster: its address and workers
    }


def mean_std(values):
    """Mean and sample standard deviation (ddof=1) over seeds; no std for one seed."""
    values = np.asarray(values, dtype=float)
    summary = {"mean": float(values.mean())}
    if len(values) > 1:
        summary["std"] = float(values.std(ddof=1))
    return summary


def library_versions():
    """Versions worth recording with every result: Python, the backend, each package found."""
    versions = {"python": platform.python_version(), "backend": keras.backend.backend()}
    packages = "keras numpy matplotlib tensorflow tensorflow-cpu jax torch pandas scikit-learn"
    for package in packages.split():
        try:
            versions[package] = version(package)
        except PackageNotFoundError:  # optional packages
            pass
    return versions


def print_table(rows, columns):
    """Print a list of dicts as one plain, aligned text table (first column to the left)."""
    cells = [[str(c) for c in columns]] + [[_fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for n, line in enumerate(cells):
        print(
            "  ".join(
                [line[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(line[1:], widths[1:])]
            )
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value):
    return f"{value:.4f}" if isinstance(value, float) else str(value)
