"""
Title: Bidirectional LSTM on the cumulative sum problem
Author: LSTM Lessons in Keras contributors
Date created: 2026/11/23
Last modified: 2026/11/23
Description: Label the steps where a running sum has reached a limit, with a Bidirectional LSTM.

Lesson 10 reads a sequence of random numbers in [0, 1) and, at every time step,
predicts whether their running sum has reached a limit of n_timesteps / 4. A
Bidirectional LSTM (50 units each way, outputs concatenated) feeds a Dense
sigmoid applied at every time step; it learns from 50,000 fresh sequences in one
epoch. Run the whole lesson with `python bidirectional_cumsum.py`, a tiny
end-to-end version with `python bidirectional_cumsum.py --quick`, and see every
option with `python bidirectional_cumsum.py --help`.

Beyond the lesson we add: a demonstration of go_backwards and the four merge
modes (`--demo` stops after it), seeds, a figure of one example sequence, the
training curve, a larger evaluation set with whole-sequence accuracy, two
baselines scored on the same evaluation set (the majority label at each step and
a forward-only LSTM), per-time-step accuracy, the lesson's two comparison
experiments (`--compare-directions`, `--compare-merge-modes`), mean ± std over
several seeds (`--repeats`), and a metrics.json record of every run.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

# Keras (and TensorFlow behind it) takes seconds to import, so this file never
# imports it at the top: `--help` and bad options answer at once. Each function
# that needs Keras imports it on its first line; after the first time that
# costs nothing.

# The lesson's configuration (sections 10.3 to 10.6).
LESSON = {
    "n_timesteps": 10,
    "n_train": 50_000,
    "n_eval": 1_000,  # extra – the lesson evaluates on 100; 1,000 gives steadier figures
    "n_predict": 10,
    "batch_size": 10,
    "epochs": 1,
    "units": 50,
    "merge_mode": "concat",
}
# extra – `--quick`: every step end to end in seconds. Options given explicitly win.
QUICK = {"n_train": 1_000, "n_eval": 200}

MERGE_MODES = ("sum", "mul", "concat", "ave")

# extra – speed settings. Keras runs 50 batches per call into the backend, and on
# TensorFlow the LSTM loop over the 10 steps is unrolled. Fitting 50,000 sequences on
# 2 CPU cores (benchmarks/RESULTS.md): plain 22.3 s, both settings 8.7 s. On JAX,
# which compiles the loop anyway, unrolling doubles the time, so it stays off there.
# The updates are the same: same data, batches, model, loss and optimizer.
STEPS_PER_EXECUTION = 50
UNROLL = True


def unroll():
    """Whether to unroll the LSTM's time loop: on the TensorFlow backend only."""
    import keras

    return UNROLL and keras.backend.backend() == "tensorflow"


# ---------------------------------------------------------------------------
# 10.1 Bidirectional LSTM
# ---------------------------------------------------------------------------


def direction_and_merge_demo(n_timesteps=4, n_units=5, seed=0):
    """Run go_backwards and each merge mode on a small input; return their outputs.

    Returns (input_shape, rows), each row a dict with "layer", "output_shape" and
    "note". Nothing is trained: the point is the shape of what each layer emits.
    """
    import keras
    from keras import layers

    x = np.random.default_rng(seed).random((2, n_timesteps, 1)).astype("float32")
    rows = []

    # An LSTM that reads the sequence from its last step to its first.
    keras.utils.set_random_seed(seed)
    backward = layers.LSTM(n_units, return_sequences=True, go_backwards=True)
    rows.append(
        {
            "layer": f"LSTM({n_units}, go_backwards=True)",
            "output_shape": tuple(backward(x).shape),
            "note": "reads last step first; its outputs come out in that reversed order",
        }
    )
    notes = {
        "sum": "adds the forward and backward outputs: size stays",
        "mul": "multiplies them element by element: size stays",
        "concat": "joins them side by side: the feature size doubles",
        "ave": "averages them: size stays",
    }
    for mode in MERGE_MODES:
        keras.utils.set_random_seed(seed)
        wrapper = layers.Bidirectional(
            layers.LSTM(n_units, return_sequences=True), merge_mode=mode
        )
        rows.append(
            {
                "layer": f"Bidirectional(LSTM({n_units}), merge_mode={mode!r})",
                "output_shape": tuple(wrapper(x).shape),
                "note": notes[mode],
            }
        )
    return x.shape, rows


# ---------------------------------------------------------------------------
# 10.2 The cumulative sum prediction problem
# ---------------------------------------------------------------------------


def sequence_limit(n_timesteps):
    """The cut-off for the running sum: a quarter of the sequence length."""
    return n_timesteps / 4.0


def cumsum_labels(X):
    """The lesson's labels for inputs X shaped (..., n_timesteps).

    At step t: 0 if the running sum X[0] + ... + X[t] is below the limit
    n_timesteps / 4, else 1. This is the lesson's comparison exactly
    (`0 if x < limit else 1`), so a sum equal to the limit already gives 1.
    """
    X = np.asarray(X)
    limit = sequence_limit(X.shape[-1])
    return np.where(np.cumsum(X, axis=-1) < limit, 0, 1)


def get_sequences(n_sequences, n_timesteps, rng=None):
    """Make `n_sequences` cumulative sum problems of `n_timesteps` steps each.

    X holds uniform random values in [0, 1). The label at step t follows the
    lesson's rule exactly: 0 if the running sum X[0] + ... + X[t] is below the
    limit n_timesteps / 4, else 1 (so a sum exactly equal to the limit gives 1).
    The labels therefore start at 0, switch to 1 once, and never go back.

    rng: a numpy Generator, or an int seed, or None for fresh entropy.
    Returns X (float64) and y (int64), both shaped (n_sequences, n_timesteps, 1).
    """
    rng = np.random.default_rng(rng)
    # a sequence of random numbers in [0, 1) for every sample
    X = rng.random((n_sequences, n_timesteps))
    # the class outcome for each step of each running sum
    y = cumsum_labels(X)
    # reshape input and output for the LSTM: [samples, time steps, features]
    return X.reshape(n_sequences, n_timesteps, 1), y.reshape(n_sequences, n_timesteps, 1)


def get_sequence(n_timesteps, rng=None):
    """One cumulative sum problem: X and y, each a flat array of n_timesteps."""
    X, y = get_sequences(1, n_timesteps, rng)
    return X.reshape(n_timesteps), y.reshape(n_timesteps)


def plot_sequence(X, y, path):
    """extra – one example: its values, running sum, the limit and the labels."""
    n = len(X)
    steps = np.arange(1, n + 1)
    limit = sequence_limit(n)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.bar(steps, X, color="0.75", label="input value X[t]")
    top.plot(steps, np.cumsum(X), "o-", color="tab:blue", label="running sum")
    top.axhline(limit, color="tab:red", linestyle="--", label=f"limit = {n}/4 = {limit:g}")
    top.set_ylabel("value")
    top.set_title("One cumulative sum sequence: the label turns to 1 once the sum reaches the limit")
    top.legend(loc="upper left")
    bottom.step(steps, y, where="mid", color="tab:green")
    bottom.plot(steps, y, "o", color="tab:green")
    bottom.set_yticks([0, 1])
    bottom.set_ylim(-0.2, 1.2)
    bottom.set_ylabel("label y[t]")
    bottom.set_xlabel("time step")
    bottom.set_xticks(steps)
    fig.tight_layout()
    save_figure(fig, path)


# ---------------------------------------------------------------------------
# 10.3 Define and compile the model
# ---------------------------------------------------------------------------


def bidirectional_lstm(n_timesteps=10, n_units=50, merge_mode="concat"):
    """The lesson's model: Bidirectional LSTM, then a sigmoid unit at every step."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(n_timesteps, 1)),
            # One LSTM reads forward, a copy reads backward; merge_mode joins them.
            # [batch, time, 1] -> [batch, time, 2 * units] ('concat'), else [batch, time, units]
            layers.Bidirectional(
                layers.LSTM(n_units, return_sequences=True, unroll=unroll()),
                merge_mode=merge_mode,
                name="bidirectional",
            ),
            # The same Dense sigmoid unit applied at each time step.
            # [batch, time, 2 * units] -> [batch, time, 1]
            layers.TimeDistributed(layers.Dense(1, activation="sigmoid"), name="time_distributed"),
        ],
        name=f"bidirectional_lstm_{merge_mode}",
    )


def forward_lstm(n_timesteps=10, n_units=50):
    """extra – baseline: the same model with a forward-only LSTM."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(n_timesteps, 1)),
            # Reads the sequence first step to last. [batch, time, 1] -> [batch, time, units]
            layers.LSTM(n_units, return_sequences=True, unroll=unroll()),
            # A sigmoid unit at each step. [batch, time, units] -> [batch, time, 1]
            layers.TimeDistributed(layers.Dense(1, activation="sigmoid")),
        ],
        name="forward_lstm",
    )


def backward_lstm(n_timesteps=10, n_units=50):
    """extra – the lesson's go_backwards LSTM (section 10.1.2), for --compare-directions.

    With go_backwards=True the LSTM's outputs come out in reversed time order
    (the first output belongs to the last input step). We flip them back, as the
    Bidirectional wrapper does for its backward half, so that the output at step t
    is scored against the label of step t and has read steps t .. end.
    """
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(n_timesteps, 1)),
            # Reads last step to first. [batch, time, 1] -> [batch, time (reversed), units]
            layers.LSTM(n_units, return_sequences=True, go_backwards=True, unroll=unroll()),
            # Put the outputs back in time order. [batch, time (reversed), units] -> same, in order
            layers.Lambda(lambda t: keras.ops.flip(t, axis=1), name="flip_time"),
            # A sigmoid unit at each step. [batch, time, units] -> [batch, time, 1]
            layers.TimeDistributed(layers.Dense(1, activation="sigmoid")),
        ],
        name="backward_lstm",
    )


def majority_baseline(y_train):
    """extra – baseline: the majority label at each time step of the TRAINING labels.

    Returns an int array shaped (n_timesteps, 1); a tie goes to 1. Because labels
    switch from 0 to 1 once, this predicts 0 for the early steps and 1 for the
    late ones, whatever the input.
    """
    return (np.mean(y_train, axis=0) >= 0.5).astype(np.int64)


def predict_majority(majority, n_sequences):
    """The majority baseline's labels for n_sequences sequences."""
    return np.broadcast_to(majority, (n_sequences,) + majority.shape).copy()


# ---------------------------------------------------------------------------
# 10.4 Fit the model
# ---------------------------------------------------------------------------


def train_network(model, X, y, batch_size=10, epochs=1, verbose=1):
    """Compile with the lesson's loss, optimizer and metric, then fit.

    All training in this script goes through here. Returns a record of each
    logged batch, {"batches", "samples", "loss", "accuracy"}: batches seen, samples
    seen in the epoch, and the loss and accuracy as the progress bar shows them
    (means since the start of the epoch), so that one epoch still gives a curve.
    """
    import keras

    model.compile(
        loss="binary_crossentropy",
        optimizer="adam",
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    n = len(X)
    steps_per_epoch = -(-n // batch_size)
    record = {"batches": [], "samples": [], "loss": [], "accuracy": []}
    state = {"epoch": 0}

    def on_epoch_begin(epoch, logs=None):
        state["epoch"] = epoch

    def on_train_batch_end(batch, logs=None):
        # `batch` is the index of the last batch run (Keras may run several per call)
        record["batches"].append(state["epoch"] * steps_per_epoch + batch + 1)
        record["samples"].append(min((batch + 1) * batch_size, n))
        record["loss"].append(float(logs["loss"]))
        record["accuracy"].append(float(logs["accuracy"]))

    history = keras.callbacks.LambdaCallback(
        on_epoch_begin=on_epoch_begin, on_train_batch_end=on_train_batch_end
    )
    # ctrl_c_callback (with the shared helpers below): Ctrl-C stops cleanly between batches
    callbacks = [history, ctrl_c_callback()]
    model.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=verbose, callbacks=callbacks)
    return record


def batch_values(record):
    """extra – undo the running mean: the value of each logged chunk of batches.

    Keras logs the mean over the epoch so far, weighted by samples; the
    difference of two running totals gives the mean over the batches in between.
    """
    samples = np.asarray(record["samples"], dtype=float)
    out = {}
    for key in ("loss", "accuracy"):
        running = np.asarray(record[key], dtype=float)
        totals = running * samples
        # a new epoch restarts the running totals
        fresh = np.r_[True, np.diff(samples) <= 0]
        prev_totals = np.where(fresh, 0.0, np.r_[0.0, totals[:-1]])
        prev_samples = np.where(fresh, 0.0, np.r_[0.0, samples[:-1]])
        out[key] = (totals - prev_totals) / (samples - prev_samples)
    return out


def plot_losses(records, path, n_points=20):
    """extra – training loss and accuracy per batch for each trained model.

    Solid: moving average of the batch values (about len/n_points log entries
    wide); dotted: the epoch's running mean, as the progress bar shows it.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, record in records.items():
        if not record["batches"]:
            continue
        batches = np.asarray(record["batches"])
        chunks = batch_values(record)
        for ax, key in zip(axes, ("loss", "accuracy")):
            values = chunks[key]
            k = max(1, len(values) // n_points)
            smooth = np.convolve(values, np.ones(k) / k, mode="valid")
            line = ax.plot(batches[k - 1 :], smooth, label=f"{name} (moving average)")[0]
            ax.plot(batches, record[key], ":", color=line.get_color(), alpha=0.8,
                    label=f"{name} (epoch mean so far)")
    axes[0].set_ylabel("binary cross-entropy")
    axes[0].set_yscale("log")
    axes[1].set_ylabel("per-step accuracy")
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("batches seen")
        ax.set_title(f"Training {key}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


# ---------------------------------------------------------------------------
# 10.5 Evaluate the model
# ---------------------------------------------------------------------------


def predict_labels(model, X, chunk=10_000):
    """Threshold the sigmoid outputs at 0.5 (Keras 3 has no predict_classes).

    A direct call on large chunks gives model.predict()'s outputs but
    skips its compiled batching loop, which took seconds to set up for every
    model (and warned about retracing) when predicting a few sequences.
    """
    import keras

    probs = [keras.ops.convert_to_numpy(model(X[i : i + chunk], training=False))
             for i in range(0, len(X), chunk)]
    return (np.concatenate(probs) > 0.5).astype(np.int64)


def score_labels(y_true, y_pred):
    """Per-step accuracy, whole-sequence exact-match accuracy, accuracy at each step."""
    correct = np.asarray(y_true).reshape(len(y_true), -1) == np.asarray(y_pred).reshape(
        len(y_pred), -1
    )
    return {
        "per_step_accuracy": float(correct.mean()),
        "sequence_accuracy": float(correct.all(axis=1).mean()),
        "step_accuracy": correct.mean(axis=0).tolist(),
    }


def evaluate_network(model, X, y):
    """Loss from Keras, accuracies from the thresholded predictions."""
    result = model.evaluate(X, y, verbose=0, return_dict=True)
    scores = score_labels(y, predict_labels(model, X))
    scores["loss"] = float(result["loss"])
    return scores


def plot_step_accuracy(step_scores, path):
    """extra – accuracy at each time step over the evaluation set, one line per model."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, values in step_scores.items():
        steps = np.arange(1, len(values) + 1)
        ax.plot(steps, values, "o-", label=name)
    ax.set_xticks(steps)
    ax.set_xlabel("time step")
    ax.set_ylabel("accuracy over the evaluation set")
    ax.set_title("Where along the sequence do the models err?")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


# ---------------------------------------------------------------------------
# 10.6 Make predictions with the model
# ---------------------------------------------------------------------------


def prediction_lines(model, X, y):
    """The lesson's lines for each new sequence: y, yhat and whether all steps match."""
    yhat = predict_labels(model, X)
    lines, records = [], []
    for exp, pred in zip(y.reshape(len(y), -1), yhat.reshape(len(yhat), -1)):
        correct = bool(np.array_equal(exp, pred))
        lines.append(f"y={exp}, yhat={pred}, correct={correct}")
        records.append({"y": exp.tolist(), "yhat": pred.tolist(), "correct": correct})
    return lines, records


# ---------------------------------------------------------------------------
# 10.9 Extensions: compare input directions and merge modes (extra – the
# lesson suggests these experiments; here they run with the same data and budget)
# ---------------------------------------------------------------------------


def plot_comparison(rows, path, title):
    """extra – bar chart of per-step and whole-sequence accuracy (± std over seeds)."""
    names = [r["model"] for r in rows]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(names) + 2), 4.5))
    for offset, key, label in (
        (-0.2, "per_step_accuracy", "per-step accuracy"),
        (0.2, "sequence_accuracy", "whole-sequence accuracy"),
    ):
        means = [r[key] for r in rows]
        stds = [r.get(key + "_std", 0.0) for r in rows]
        bars = ax.bar(x + offset, means, width=0.4, yerr=stds, capsize=4, label=label)
        ax.bar_label(bars, fmt="%.3f", fontsize=8, padding=2)
    ax.set_xticks(x)
    ax.set_xticklabels(names)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("accuracy on the evaluation set")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)


# extra – script-specific helpers, outside the shared block


def summarise(per_seed_rows):
    """Mean (and std when there are several seeds) of every metric, per row.

    per_seed_rows: a list (one per seed) of {row name: {metric: value}}.
    """
    summary = {}
    for name in per_seed_rows[0]:
        summary[name] = {}
        for metric, value in per_seed_rows[0][name].items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            values = np.array([rows[name][metric] for rows in per_seed_rows], dtype=float)
            summary[name][metric] = float(values.mean())
            if len(values) > 1 and metric != "params":
                summary[name][metric + "_std"] = float(values.std(ddof=1))
    return summary


def compare_rows(runs, metric="per_step_accuracy"):
    """Gain of the bidirectional model over each baseline, seed by seed."""
    out = {}
    for other in ("majority_per_step", "forward_lstm"):
        gains = np.array([r["rows"]["bidirectional_lstm"][metric] - r["rows"][other][metric]
                          for r in runs])
        out[other] = {"per_step": float(gains.mean()), "wins": int((gains > 0).sum())}
        if len(gains) > 1:
            out[other]["per_step_std"] = float(gains.std(ddof=1))
    return out


def table_rows(summary, columns):
    """Rows for print_table; 'mean ± std' text when there are several seeds."""
    rows = []
    for name, metrics in summary.items():
        row = {"model": name}
        for c in columns:
            if c not in metrics:
                row[c] = "n/a"
            elif c == "params":
                row[c] = f"{int(metrics[c]):,}"
            elif c + "_std" in metrics:
                row[c] = f"{metrics[c]:.4f} ± {metrics[c + '_std']:.4f}"
            else:
                row[c] = metrics[c]
        rows.append(row)
    return rows


# --- shared helpers: begin
# ---------------------------------------------------------------------------
# Small helpers: the same block stands in each of the three lesson scripts, so
# that every script can be copied and run on its own. They are not part of the
# lesson proper; skip them on a first read.
# ---------------------------------------------------------------------------


def fail(message):
    """Bad input: one clear line on stderr, exit status 2, nothing written."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, but a bad option gets one line (no usage block) and exit 2."""

    def error(self, message):
        fail(f"{message} (see --help)")


def positive_int(text):
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def non_negative_int(text):
    """argparse type for seeds: a whole number from 0 to 2**31 - 1 (what NumPy accepts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"must be from 0 to 2**31 - 1, got {value}")
    return value


def prepare_out_dir(path):
    """Create the output folder, or fail with exit 2 before any work starts."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        fail(f"--out-dir {path} is a file, not a folder; pass a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        fail(f"cannot write to --out-dir {path} ({exc.strerror}); pass a writable folder")
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


def save_json(data, path):
    """Write a JSON record (atomically)."""
    text = json.dumps(data, indent=2, default=float) + "\n"
    write_atomically(path, lambda tmp: Path(tmp).write_text(text))


def ctrl_c_callback():
    """A Keras callback that makes Ctrl-C during fit stop between batches.

    Python raises KeyboardInterrupt wherever the main thread happens to be. Inside
    TensorFlow's C++ code that can abort the whole process instead ("free():
    invalid next size", about one Ctrl-C in ten at the start of an epoch here). So
    while fit runs, Ctrl-C only raises a flag, and this callback raises
    KeyboardInterrupt at the next batch or epoch boundary, in plain Python.
    A second Ctrl-C interrupts at once.
    """
    import signal

    import keras

    class CtrlC(keras.callbacks.Callback):
        pressed = False
        previous = None  # the SIGINT handler to put back

        def on_train_begin(self, logs=None):
            self.pressed = False
            self.previous = signal.signal(signal.SIGINT, self.press)

        def press(self, signum, frame):
            if self.pressed:  # second Ctrl-C: stop now
                self.restore()
                raise KeyboardInterrupt
            self.pressed = True

        def restore(self):
            if self.previous is not None:
                signal.signal(signal.SIGINT, self.previous)
                self.previous = None

        def check(self, *args, **kwargs):
            if self.pressed:
                self.restore()
                raise KeyboardInterrupt

        # batch *begin* hooks: overriding the batch end ones would make Keras run
        # every callback synchronously on backends that can dispatch them in a thread
        on_epoch_begin = on_epoch_end = on_train_batch_begin = on_test_batch_begin = check

        def on_train_end(self, logs=None):
            self.restore()
            self.check()

    return CtrlC()


def library_versions():
    """Versions worth recording with every result."""
    import keras

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
    }
    try:
        from importlib.metadata import version

        versions["tensorflow"] = version("tensorflow")
    except Exception:  # TensorFlow is optional under another backend
        pass
    return versions


def print_table(rows, columns):
    """Print a list of dicts as one plain, aligned text table."""
    cells = [[str(c) for c in columns]]
    for row in rows:
        cells.append([_fmt(row.get(c, "")) for c in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for n, r in enumerate(cells):
        print("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value):
    return f"{value:.4f}" if isinstance(value, float) else str(value)
# --- shared helpers: end


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def build_parser():
    parser = ArgumentParser(
        description="Lesson 10: a Bidirectional LSTM learns the cumulative sum problem.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--n-timesteps", type=positive_int, default=LESSON["n_timesteps"],
                        help="time steps per sequence (2 or more); the limit is n_timesteps/4")
    parser.add_argument("--n-train", type=positive_int, default=LESSON["n_train"],
                        help="fresh training sequences (one pass over them per epoch)")
    parser.add_argument("--n-eval", type=positive_int, default=LESSON["n_eval"],
                        help="fresh evaluation sequences (the lesson used 100)")
    parser.add_argument("--n-predict", type=positive_int, default=LESSON["n_predict"],
                        help="new sequences to predict and print one line each")
    parser.add_argument("--batch-size", type=positive_int, default=LESSON["batch_size"],
                        help="sequences per training batch")
    parser.add_argument("--epochs", type=positive_int, default=LESSON["epochs"],
                        help="passes over the training sequences")
    parser.add_argument("--units", type=positive_int, default=LESSON["units"],
                        help="LSTM units in each direction")
    parser.add_argument("--merge-mode", choices=MERGE_MODES, default=LESSON["merge_mode"],
                        help="how the Bidirectional wrapper joins its two directions")
    parser.add_argument("--seed", type=non_negative_int, default=7,
                        help="seed for the data, the weights and Keras")
    parser.add_argument("--repeats", type=positive_int, default=1,
                        help="run with seeds seed .. seed+N-1 and report mean ± std")
    parser.add_argument("--demo", action="store_true",
                        help="only show go_backwards and the merge modes on a small input, then stop")
    parser.add_argument("--compare-directions", action="store_true",
                        help="also train forward, backward and bidirectional models on the same data")
    parser.add_argument("--compare-merge-modes", action="store_true",
                        help="also train the bidirectional model with each merge mode on the same data")
    parser.add_argument("--quick", action="store_true",
                        help="tiny run of every step: "
                        + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items())
                        + " unless given")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="Keras's fit output: 0 silent, 1 progress bar, 2 one line per epoch")
    parser.add_argument("--out-dir", type=Path, default=Path("outputs") / Path(__file__).stem,
                        help="folder for the figures, metrics.json and the .keras models")
    parser.add_argument("--show", action="store_true",
                        help="also open the figures in windows at the end")
    return parser


def parse_args(argv=None):
    """Parse; with --quick, the quick values become the defaults."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**QUICK)
        args = parser.parse_args(argv)
    if args.n_timesteps < 2:
        fail(f"--n-timesteps must be 2 or more (got {args.n_timesteps}): "
             "one step has no past or future to read")
    if args.seed + args.repeats - 1 >= 2**32:
        fail(f"--seed + --repeats - 1 must stay below 2**32 (got {args.seed + args.repeats - 1})")
    return args


def run_seed(args, seed, first, out_dir, timings):
    """One full pass of the lesson with one seed; returns its results.

    Figures, models and prediction lines come from the first seed only.
    """
    import keras

    # Separate streams, so the evaluation set does not depend on --n-train.
    train_ss, eval_ss, predict_ss = np.random.SeedSequence(seed).spawn(3)
    t = args.n_timesteps

    # generate the training and evaluation data
    start = time.perf_counter()
    X_train, y_train = get_sequences(args.n_train, t, np.random.default_rng(train_ss))
    X_eval, y_eval = get_sequences(args.n_eval, t, np.random.default_rng(eval_ss))
    X_new, y_new = get_sequences(args.n_predict, t, np.random.default_rng(predict_ss))
    timings["data"] += time.perf_counter() - start

    builders = {
        "forward_lstm": lambda: forward_lstm(t, args.units),
        "backward_lstm": lambda: backward_lstm(t, args.units),
    }
    for mode in MERGE_MODES:
        builders[f"bidirectional_{mode}"] = lambda mode=mode: bidirectional_lstm(t, args.units, mode)
    main_name = f"bidirectional_{args.merge_mode}"
    trained = {}  # model name -> (model, scores, training record); each model trains once

    def fit_and_score(name):
        if name in trained:
            return trained[name]
        keras.utils.set_random_seed(seed)  # same initial weights whatever else runs
        model = builders[name]()
        if first and name == main_name:
            model.summary()
        print(f"seed {seed}: fit {name} on {args.n_train:,} sequences, "
              f"batch {args.batch_size}, {args.epochs} epoch(s)")
        start = time.perf_counter()
        record = train_network(model, X_train, y_train, args.batch_size, args.epochs, args.verbose)
        timings["fit"] += time.perf_counter() - start
        start = time.perf_counter()
        scores = evaluate_network(model, X_eval, y_eval)
        timings["evaluate"] += time.perf_counter() - start
        scores["params"] = model.count_params()
        trained[name] = (model, scores, record)
        return trained[name]

    # 10.3 define the model, 10.4 fit it, 10.5 evaluate it
    model, bi_scores, bi_record = fit_and_score(main_name)
    # extra – baselines on the same evaluation set
    majority = majority_baseline(y_train)
    majority_scores = score_labels(y_eval, predict_majority(majority, len(y_eval)))
    _, fwd_scores, fwd_record = fit_and_score("forward_lstm")
    rows = {
        "majority_per_step": majority_scores,
        "forward_lstm": fwd_scores,
        "bidirectional_lstm": bi_scores,
    }
    out = {"rows": rows, "majority": majority.ravel().tolist()}

    if first:
        print(f"\n10.5 evaluation on {args.n_eval:,} fresh sequences (seed {seed}): "
              f"loss {bi_scores['loss']:.4f}, per-step accuracy {bi_scores['per_step_accuracy']:.4f}, "
              f"whole-sequence accuracy {bi_scores['sequence_accuracy']:.4f}")
        print("\n10.6 predictions on new sequences (yhat: sigmoid output > 0.5)")
        lines, out["predictions"] = prediction_lines(model, X_new, y_new)
        print("\n".join(lines))
        write_atomically(out_dir / "bidirectional_lstm.keras", model.save)
        write_atomically(out_dir / "forward_lstm.keras", trained["forward_lstm"][0].save)
        print(f"saved {out_dir / 'bidirectional_lstm.keras'} and forward_lstm.keras")
        plot_losses({f"bidirectional ({args.merge_mode})": bi_record, "forward": fwd_record},
                    out_dir / "training_curve.png")
        plot_step_accuracy(
            {
                f"bidirectional LSTM ({args.merge_mode})": bi_scores["step_accuracy"],
                "forward LSTM": fwd_scores["step_accuracy"],
                "majority per step (train labels)": majority_scores["step_accuracy"],
            },
            out_dir / "step_accuracy.png",
        )

    # 10.9 extensions
    if args.compare_directions:
        out["compare_directions"] = {
            "majority_per_step": majority_scores,
            "forward": fwd_scores,
            "backward": fit_and_score("backward_lstm")[1],
            "bidirectional": bi_scores,
        }
    if args.compare_merge_modes:
        out["compare_merge_modes"] = {"majority_per_step": majority_scores}
        for mode in MERGE_MODES:
            out["compare_merge_modes"][mode] = fit_and_score(f"bidirectional_{mode}")[1]
    return out


def main(argv=None):
    args = parse_args(argv)
    if not args.show:
        matplotlib.use("Agg")
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("interrupted: stopped early; files already written are complete", file=sys.stderr)
        return 130


def _run(args):
    out_dir = prepare_out_dir(args.out_dir)
    import keras

    keras.utils.set_random_seed(args.seed)
    seeds = list(range(args.seed, args.seed + args.repeats))
    record = {
        "script": Path(__file__).name,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "seed": args.seed,
        "seeds": seeds,
        "versions": library_versions(),
        "backend": keras.backend.backend(),
        "data": {
            "source": "generated by get_sequences: uniform random values in [0, 1)",
            "label_rule": "y[t] = 0 if X[0] + ... + X[t] < limit else 1",
            "n_timesteps": args.n_timesteps,
            "limit": sequence_limit(args.n_timesteps),
            "n_train": args.n_train,
            "n_eval": args.n_eval,
            "n_predict": args.n_predict,
        },
    }

    # 10.1 Bidirectional LSTM: directions and merge modes on a small input
    shape, demo = direction_and_merge_demo(seed=args.seed)
    print(f"10.1 what each layer returns for an input of shape {shape} (batch, time, features):")
    width = max(len(r["layer"]) for r in demo)
    for r in demo:
        print(f"  {r['layer']:<{width}} -> {str(r['output_shape']):<10}  {r['note']}")
    record["demo"] = [dict(r, output_shape=list(r["output_shape"])) for r in demo]
    if args.demo:
        record["timings_s"] = {"data": 0.0, "fit": 0.0, "evaluate": 0.0}  # nothing trained
        record["metrics"] = {}
        save_json(record, out_dir / "metrics.json")
        print(f"saved {out_dir / 'metrics.json'}")
        return 0

    # 10.2 the cumulative sum prediction problem: one example
    X, y = get_sequence(args.n_timesteps, args.seed)
    print(f"\n10.2 one example sequence (limit {sequence_limit(args.n_timesteps):g}):")
    print(np.array2string(X, precision=3))
    print(y)
    plot_sequence(X, y, out_dir / "example_sequence.png")

    timings = {"data": 0.0, "fit": 0.0, "evaluate": 0.0}
    runs = [run_seed(args, s, s == seeds[0], out_dir, timings) for s in seeds]
    record["timings_s"] = timings
    record["per_seed"] = {str(s): r["rows"] for s, r in zip(seeds, runs)}
    record["figures_models_and_predictions_from_seed"] = seeds[0]
    record["majority_labels_by_step"] = runs[0]["majority"]
    record["predictions"] = runs[0]["predictions"]

    columns = ["params", "loss", "per_step_accuracy", "sequence_accuracy"]
    how = f"mean ± std over seeds {seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else f"seed {seeds[0]}"
    print(f"\nResults on {args.n_eval:,} fresh evaluation sequences ({how}):")
    record["metrics"] = summarise([r["rows"] for r in runs])
    print_table(table_rows(record["metrics"], columns), ["model"] + columns)
    record["bidirectional_vs_baselines"] = gains = compare_rows(runs)
    for other in ("majority_per_step", "forward_lstm"):
        g = gains[other]
        spread = f" ± {g['per_step_std']:.4f}" if "per_step_std" in g else ""
        print(f"bidirectional_lstm - {other}: per-step accuracy {g['per_step']:+.4f}{spread}; "
              f"beats it on {g['wins']} of {len(runs)} seed(s)")
    record["step_accuracy"] = {
        name: np.mean([r["rows"][name]["step_accuracy"] for r in runs], axis=0).tolist()
        for name in runs[0]["rows"]
    }

    for key, title in (
        ("compare_directions", "Input direction: same data, same budget"),
        ("compare_merge_modes", "Bidirectional merge mode: same data, same budget"),
    ):
        if key not in runs[0]:
            continue
        summary = summarise([r[key] for r in runs])
        record[key] = summary
        print(f"\n{title} ({how}):")
        print_table(table_rows(summary, columns), ["model"] + columns)
        plot_comparison([dict(v, model=k) for k, v in summary.items()],
                        out_dir / f"{key}.png", f"{title} ({how})")

    save_json(record, out_dir / "metrics.json")
    print(f"saved {out_dir / 'metrics.json'}")
    if args.show:
        plt.show()
    return 0


if __name__ == "__main__":
    sys.exit(main())
