"""
Title: Training speed of the three lesson scripts: plain Keras vs the way the scripts train
Description: Times each lesson's default training both ways, alternating, in one process.

    python benchmarks/bench_training.py             # all lessons, 3 rounds, writes RESULTS.md
    python benchmarks/bench_training.py --rounds 5 --lessons sine cumsum
    python benchmarks/bench_training.py --levers    # also time each speed lever on its own
    python benchmarks/bench_training.py --backends tensorflow jax torch  # side by side

For every lesson it trains the lesson's default configuration twice per round, on the
same data with the same seed:
  (a) plain Keras: `compile()` with its defaults, nothing tuned;
  (b) the script: its own training function, with the speed levers it keeps.
The order alternates between rounds, so a noisy neighbour hurts both alike. Both run with
the thread counts the scripts set (`same_thread_counts`: one thread per pool). It reports
the median fit seconds of each, the ratio b/a, the accuracy metric of both, the wall
time of `--help`, and the peak RSS of each script's default run (a subprocess).
The numbers go to stdout and to benchmarks/RESULTS.md.

With --backends, each round runs the lessons once on every backend named (a child process
each, KERAS_BACKEND set, the order of the backends alternating between rounds), and the
medians go side by side to benchmarks/BACKENDS.md.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCRIPTS = {
    "sine": "stacked_lstm_damped_sine.py",
    "cumsum": "bidirectional_cumsum.py",
    "stock": "stock_lstm_compare.py",
}
# sine and cumsum: within 0.05 of the 0.37 and 0.42 they measured (2026-12-01) before their
# lessons trained with a plain fit; stock: its plain fit with SPEED at most 0.85 of Keras's
TARGETS = {"sine": 0.42, "cumsum": 0.47, "stock": 0.85}
NOTES = "## Notes (written by hand, kept when the benchmark rewrites this file)"


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


# --- lesson 7: stacked LSTM, damped sine ---------------------------------------


def sine_case():
    import keras

    import stacked_lstm_damped_sine as s

    rng = np.random.default_rng(7)
    X, y = s.generate_examples(50, 10_000, 5, rng)
    X_eval, y_eval = s.generate_examples(50, 1_000, 5, rng)

    def score(model):
        return {"MAE": float(np.mean(np.abs(y_eval - model.predict(X_eval, verbose=0))))}

    def script():  # as run_lesson trains it: compile(**SPEED), then a plain fit
        keras.utils.set_random_seed(7)
        model = s.stacked_lstm()
        model.compile(loss="mae", optimizer="adam", **s.SPEED)
        seconds, _ = timed(lambda: model.fit(X, y, batch_size=10, epochs=1, verbose=0))
        return seconds, score(model)

    def lever(**compile_kwargs):
        def run():
            keras.utils.set_random_seed(7)
            model = s.stacked_lstm()
            model.compile(loss="mae", optimizer="adam", **compile_kwargs)
            seconds, _ = timed(lambda: model.fit(X, y, batch_size=10, epochs=1, verbose=0))
            return seconds, score(model)

        return run

    plain = lever()  # Keras's compile() defaults, nothing tuned
    levers = {
        "steps_per_execution=50": lever(steps_per_execution=50),
        "jit_compile=True": lever(jit_compile=True),
        "steps_per_execution=50 + jit_compile=True": lever(
            steps_per_execution=50, jit_compile=True
        ),
    }
    return plain, script, levers


# --- lesson 10: bidirectional LSTM, cumulative sum -----------------------------


def cumsum_case():
    import keras

    import bidirectional_cumsum as b
    from lstm_lessons.cumsum import score_labels

    rng = np.random.default_rng(7)
    X, y = b.get_sequences(50_000, 10, rng)
    X_eval, y_eval = b.get_sequences(1_000, 10, rng)

    def score(model):
        labels = (model.predict(X_eval, verbose=0) > 0.5).astype(int)
        return {"per-step accuracy": score_labels(y_eval, labels)["per_step_accuracy"]}

    def script():  # as run_lesson trains it: its model (unrolled up to 20 steps), **SPEED
        keras.utils.set_random_seed(7)
        model = b.bidirectional_lstm()
        model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"], **b.SPEED)
        seconds, _ = timed(lambda: model.fit(X, y, batch_size=10, epochs=1, verbose=0))
        return seconds, score(model)

    def lever(unroll=False, **compile_kwargs):
        def run():
            keras.utils.set_random_seed(7)
            saved, b.UNROLL_MAX_TIMESTEPS = b.UNROLL_MAX_TIMESTEPS, 20 if unroll else 0
            model = b.bidirectional_lstm()
            b.UNROLL_MAX_TIMESTEPS = saved
            model.compile(
                loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"], **compile_kwargs
            )
            seconds, _ = timed(lambda: model.fit(X, y, batch_size=10, epochs=1, verbose=0))
            return seconds, score(model)

        return run

    plain = lever()  # Keras's compile() defaults, no unrolling
    levers = {
        "steps_per_execution=50": lever(steps_per_execution=50),
        "unroll=True": lever(unroll=True),
        "jit_compile=True": lever(jit_compile=True),
        "steps_per_execution=50 + unroll=True": lever(unroll=True, steps_per_execution=50),
        "steps_per_execution=50 + jit_compile=True": lever(
            steps_per_execution=50, jit_compile=True
        ),
        "steps_per_execution=50 + unroll + jit_compile": lever(
            unroll=True, steps_per_execution=50, jit_compile=True
        ),
    }
    return plain, script, levers


# --- the stock chapter: four networks, 50 epochs each --------------------------


def stock_case():
    import tempfile

    import keras

    import stock_lstm_compare as st

    frame, _ = st.import_data()
    data = st.prepare_data(frame.sort_values("date"))
    x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    folder = Path(tempfile.mkdtemp(prefix="bench-stock-"))

    def score(models):
        return {
            f"{name} MAE": float(np.mean(np.abs(y_test - model.predict(x_test, verbose=0)[:, 0])))
            for name, model in models.items()
        }

    def fit_plain(net, checkpoint=True, **compile_kwargs):
        """As the chapter wrote it: Keras defaults, and a ModelCheckpoint file per improvement."""
        keras.utils.set_random_seed(7)
        model = net(x_train.shape[1:])
        model.compile(loss="mae", optimizer="adam", **compile_kwargs)
        path = folder / f"plain_{net.__name__}.keras"
        callbacks = (
            [keras.callbacks.ModelCheckpoint(path, monitor="loss", save_best_only=True)]
            if checkpoint
            else []
        )
        model.fit(
            x_train,
            y_train,
            validation_data=(x_test, y_test),
            epochs=50,
            batch_size=64,
            callbacks=callbacks,
            verbose=0,
        )
        return keras.models.load_model(path) if checkpoint else model

    def plain(checkpoint=True, **compile_kwargs):
        models = {}
        seconds, _ = timed(
            lambda: models.update(
                {n.__name__: fit_plain(n, checkpoint, **compile_kwargs) for n in st.ALL_NETWORKS}
            )
        )
        return seconds, score(models)

    def script():  # the lesson's fit_network for each network: compile(**SPEED), plain fit
        models = {}

        def fit_all():
            for net in st.ALL_NETWORKS:
                result = st.fit_network(net, data, plot=False, verbose=0)
                models[net.__name__] = result["model"]

        seconds, _ = timed(fit_all)
        return seconds, score(models)

    levers = {
        "no checkpoint file": lambda: plain(checkpoint=False),
        "no checkpoint file + jit_compile=True": lambda: plain(checkpoint=False, jit_compile=True),
        "no checkpoint file + steps_per_execution=13": lambda: plain(
            checkpoint=False, steps_per_execution=13
        ),
        "no checkpoint file + jit + steps_per_execution=13": lambda: plain(
            checkpoint=False, jit_compile=True, steps_per_execution=13
        ),
    }
    return plain, script, levers


CASES = {"sine": sine_case, "cumsum": cumsum_case, "stock": stock_case}


# --- the harness ----------------------------------------------------------------


def bench_lesson(name, rounds, with_levers):
    plain, script, levers = CASES[name]()
    runs = {"a plain": [], "b script": []}
    metrics = {"a plain": None, "b script": None}
    for r in range(rounds):
        order = [("a plain", plain), ("b script", script)]
        if r % 2:
            order.reverse()
        for label, fn in order:
            seconds, score = fn()
            runs[label].append(seconds)
            metrics[label] = score
            print(f"  [{name}] round {r + 1}: {label}: fit {seconds:.1f} s, {score}", flush=True)
    lever_rows = {}
    if with_levers:
        for label, fn in levers.items():
            times, score = [], None
            for _ in range(max(1, rounds - 1)):
                seconds, score = fn()
                times.append(seconds)
            lever_rows[label] = (statistics.median(times), score)
            print(
                f"  [{name}] lever {label}: fit {statistics.median(times):.1f} s, {score}",
                flush=True,
            )
    return runs, metrics, lever_rows


def help_seconds(script, rounds=5):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, str(ROOT / script), "--help"], capture_output=True, check=True
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# A child forked from this (by now large) process starts with our peak RSS on Linux, so
# the script is started from a small launcher and the launcher reports the script's peak.
LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), time.perf_counter() - start, usage.ru_maxrss)
"""


def default_run_peak_rss_mb(script, out_dir):
    """Run the script's default configuration; return (wall s, peak RSS MB) of that run."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, str(ROOT / script), "--verbose", "0", "--out-dir", str(out_dir)]
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *command],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    code, wall, max_rss_kb = done.stdout.split()
    if int(code) != 0:
        raise RuntimeError(f"{script} default run failed with exit status {code}")
    return float(wall), int(max_rss_kb) / 1024  # Linux reports KB


def versions():
    from importlib.metadata import PackageNotFoundError, version

    import keras

    found = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "numpy": np.__version__,
    }
    for package in ("tensorflow", "tensorflow-cpu", "jax", "torch"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found, keras.backend.backend()


CHILD_RUNS = {}  # lesson: (fit seconds per round, metrics), for --json


def compare_backends(args):
    """Each round: every backend once, in a child process; medians side by side."""
    import tempfile

    results = args.results or ROOT / "benchmarks" / "BACKENDS.md"
    seconds = {
        b: {name: {"a plain": [], "b script": []} for name in args.lessons} for b in args.backends
    }
    metrics, found, started = {}, {}, time.perf_counter()
    for r in range(args.rounds):
        order = args.backends if r % 2 == 0 else args.backends[::-1]
        for backend in order:
            print(f"round {r + 1}: {backend}", flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "raw.json"
                command = [sys.executable, __file__, "--rounds", "1", "--no-default-runs"]
                command += ["--lessons", *args.lessons, "--json", str(out)]
                command += ["--results", str(Path(tmp) / "report.md")]
                env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
                subprocess.run(command, check=True, env=env)
                raw = json.loads(out.read_text())
            found[backend] = raw["versions"]
            for name, entry in raw["lessons"].items():
                for label, values in entry["runs"].items():
                    seconds[backend][name][label] += values
                metrics[(backend, name)] = entry["metrics"]
    lines = [
        "# Fit seconds on each Keras backend",
        "",
        f"Made by `python benchmarks/bench_training.py --backends {' '.join(args.backends)} "
        f"--rounds {args.rounds}` on {time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores, "
        + "; ".join(
            f"{b}: " + ", ".join(f"{k} {v}" for k, v in found[b].items()) for b in args.backends
        )
        + ".",
        "",
        "Each round runs every lesson's default training on every backend, a fresh process per backend,",
        "the backends' order alternating between rounds. Fit seconds are medians over the rounds:",
        "(a) plain Keras (`compile()` defaults), (b) as the script trains it (its SPEED, chosen per backend).",
        "",
        "| lesson | " + " | ".join(f"{b} (a) plain | {b} (b) script" for b in args.backends) + " |",
        "| --- | " + " | ".join("--- | ---" for _ in args.backends) + " |",
    ]
    for name in args.lessons:
        cells = []
        for b in args.backends:
            a, s = (statistics.median(seconds[b][name][k]) for k in ("a plain", "b script"))
            cells.append(f"{a:.1f} | {s:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "The metric of (b) on each backend (last round):", ""]
    for (backend, name), score in metrics.items():
        shown = ", ".join(f"{k} {v:.4f}" for k, v in score["b script"].items())
        lines.append(f"- {name}, {backend}: {shown}")
    lines += ["", f"The benchmark took {(time.perf_counter() - started) / 60:.1f} minutes.", ""]
    results.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {results}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].strip(),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds per lesson (medians are reported)"
    )
    parser.add_argument(
        "--lessons",
        nargs="+",
        choices=sorted(CASES),
        default=sorted(CASES),
        help="which lessons to time",
    )
    parser.add_argument(
        "--levers", action="store_true", help="also time each speed lever on its own"
    )
    parser.add_argument(
        "--no-default-runs",
        action="store_true",
        help="skip the --help timing and the default-run RSS measurement",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="where to write the report (default: benchmarks/RESULTS.md, with --backends "
        "benchmarks/BACKENDS.md)",
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=("tensorflow", "jax", "torch"),
        default=None,
        help="time the lessons on each of these Keras backends, side by side",
    )
    parser.add_argument("--json", type=Path, default=None, help=argparse.SUPPRESS)  # children
    args = parser.parse_args(argv)
    if args.backends:
        return compare_backends(args)
    args.results = args.results or ROOT / "benchmarks" / "RESULTS.md"

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # the thread counts the scripts run with (run_main sets them), for plain Keras too
    from lstm_lessons.training import same_thread_counts

    same_thread_counts()
    found, backend = versions()
    started = time.perf_counter()
    lines = [
        "# Training speed: plain Keras vs the scripts",
        "",
        f"Made by `python benchmarks/bench_training.py{' --levers' if args.levers else ''} --rounds {args.rounds}` "
        f"on {time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores, backend {backend}, "
        + ", ".join(f"{k} {v}" for k, v in found.items())
        + ".",
        "",
        "Each lesson's default training, (a) compiled with Keras's defaults and (b) as the script trains it,",
        "same data, same seed, alternating order, one process. Fit seconds are medians over the rounds;",
        "the metric is on the same fresh evaluation data for both.",
        "",
        "| lesson | (a) plain fit s | (b) script fit s | ratio b/a | target | (a) metric | (b) metric |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lever_lines = []
    for name in args.lessons:
        print(f"{name}: {args.rounds} rounds", flush=True)
        runs, metrics, lever_rows = bench_lesson(name, args.rounds, args.levers)
        CHILD_RUNS[name] = (runs, metrics)
        a, b = statistics.median(runs["a plain"]), statistics.median(runs["b script"])
        ratio = b / a
        verdict = "met" if ratio <= TARGETS[name] else f"missed by {ratio - TARGETS[name]:.2f}"
        fmt = lambda score: ", ".join(f"{k} {v:.4f}" for k, v in score.items())  # noqa: E731
        lines.append(
            f"| {name} | {a:.1f} | {b:.1f} | {ratio:.2f} | ≤ {TARGETS[name]:.2f} ({verdict}) | {fmt(metrics['a plain'])} | {fmt(metrics['b script'])} |"
        )
        print(f"{name}: plain {a:.1f} s, script {b:.1f} s, ratio {ratio:.2f}", flush=True)
        for label, (seconds, score) in lever_rows.items():
            lever_lines.append(
                f"| {name} | {label} | {seconds:.1f} | {seconds / a:.2f} | {fmt(score)} |"
            )
    if lever_lines:
        lines += [
            "",
            "## Each lever on its own (median fit seconds, ratio to (a) plain)",
            "",
            "| lesson | lever | fit s | ratio to plain | metric |",
            "| --- | --- | --- | --- | --- |",
            *lever_lines,
        ]
    if not args.no_default_runs:
        lines += [
            "",
            "## `--help` and the default runs",
            "",
            "| script | `--help` wall s (median of 5) | default run wall s | default run peak RSS MB |",
            "| --- | --- | --- | --- |",
        ]
        import tempfile

        for name in args.lessons:
            script = SCRIPTS[name]
            help_s = help_seconds(script)
            with tempfile.TemporaryDirectory() as tmp:
                wall, rss = default_run_peak_rss_mb(script, Path(tmp) / "out")
            lines.append(f"| {script} | {help_s:.2f} | {wall:.0f} | {rss:.0f} |")
            print(
                f"{script}: --help {help_s:.2f} s, default run {wall:.0f} s, peak RSS {rss:.0f} MB",
                flush=True,
            )
    if args.json:  # a child of --backends: its raw numbers
        raw = {
            name: {"runs": CHILD_RUNS[name][0], "metrics": CHILD_RUNS[name][1]}
            for name in CHILD_RUNS
        }
        args.json.write_text(json.dumps({"versions": found, "lessons": raw}))
    lines += ["", f"The benchmark took {(time.perf_counter() - started) / 60:.1f} minutes.", ""]
    # a hand-written notes section at the end of an earlier report is kept
    if args.results.exists() and NOTES in args.results.read_text():
        lines.append(NOTES + args.results.read_text().split(NOTES, 1)[1])
    args.results.write_text("\n".join(lines))
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
