"""
Title: Stacked LSTM for damped sine wave prediction (lesson 7)
Author: LSTM Lessons in Keras contributors
Date created: 2026/11/23
Last modified: 2026/11/23
Description: A two-layer stacked LSTM predicts the last 5 points of random damped sine waves.

Lesson 7 builds a stacked LSTM: LSTM layers that hand a whole sequence, not a single
vector, to the layer above (`return_sequences=True`). The problem is a family of damped
sine waves with a random period and decay; the model reads 50 time steps and predicts
the next 5 at once.

    python stacked_lstm_damped_sine.py            # the lesson's full configuration
    python stacked_lstm_damped_sine.py --quick    # every step, tiny, in seconds
    python stacked_lstm_damped_sine.py --demo     # the return_sequences demonstration
    python stacked_lstm_damped_sine.py --help     # every option

Beyond the lesson (marked "extra" below): a fixed seed, two naive baselines scored on
the same evaluation set with the same metric (MAE), the lesson's vanilla-LSTM extension
(`--compare-vanilla`), several seeds (`--repeats N`), and every figure and number saved
to the output folder (`metrics.json`).
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

# Keras is imported inside the functions that need it, not up here: importing it
# takes seconds, and `--help` or a mistyped option should answer at once.


# ---------------------------------------------------------------------------
# 7.1.3 Implementation: what return_sequences changes
# ---------------------------------------------------------------------------


def demo_return_sequences():
    """Show the output shape of one LSTM layer, without and with return_sequences.

    Returns the two outputs as NumPy arrays: shape (1, 1) and shape (1, 3, 1).
    """
    import keras
    from keras import layers

    # one sequence of 3 time steps with 1 feature: [batch, time, features] = [1, 3, 1]
    data = np.array([0.1, 0.2, 0.3], dtype="float32").reshape((1, 3, 1))
    outputs = []
    for return_sequences in (False, True):
        model = keras.Sequential(
            [
                keras.Input(shape=(3, 1)),
                # a single memory cell; it is also the output layer
                layers.LSTM(1, return_sequences=return_sequences),
            ]
        )
        outputs.append(np.asarray(model.predict(data, verbose=0)))
    return outputs[0], outputs[1]


def stacked_lstm(length=50, output=5, units=20, n_layers=2):
    """A stacked LSTM: every LSTM but the last returns its whole sequence.

    With the lesson's settings (n_layers=2) this is the model of section 7.3.
    """
    import keras
    from keras import layers

    model = keras.Sequential(name=f"stacked_lstm_{n_layers}_layers")
    model.add(keras.Input(shape=(length, 1)))  # [batch, 50 time steps, 1 feature]
    for _ in range(n_layers - 1):
        # hands one vector per time step upward: [batch, 50, 1] -> [batch, 50, 20]
        model.add(layers.LSTM(units, return_sequences=True))
    # reads the sequence below and keeps only its last state: [batch, 50, 20] -> [batch, 20]
    model.add(layers.LSTM(units))
    # all 5 future points at once: [batch, 20] -> [batch, 5]
    model.add(layers.Dense(output))
    return model


# ---------------------------------------------------------------------------
# 7.2 The damped sine wave prediction problem
# ---------------------------------------------------------------------------

# 7.2.1 The sine wave


def sine_wave(length=100, freq=5):
    """A plain sine wave: `freq` full cycles over `length` time steps."""
    i = np.arange(length)
    return np.sin(2 * np.pi * freq * i / length)


# 7.2.2 The damped sine wave


def generate_sequence(length, period, decay):
    """A damped sine wave that stays in [0, 1].

    value[i] = 0.5 + 0.5 * sin(2*pi*i / period) * exp(-decay * i)

    `period` is the number of steps in one full cycle; `decay` sets how fast the
    swing dies away towards the centre line 0.5.
    """
    i = np.arange(length)
    return 0.5 + 0.5 * np.sin(2 * np.pi * i / period) * np.exp(-decay * i)


# 7.2.3 Random damped sine waves, and 7.2.4 sequences of them


def random_parameters(n_patterns, rng=None):
    """A random period (a whole number in [10, 20]) and decay (in [0.01, 0.1]) per wave."""
    rng = np.random.default_rng(rng)
    period = rng.integers(10, 20, size=n_patterns, endpoint=True)  # 20 included, like randint
    decay = rng.uniform(0.01, 0.1, size=n_patterns)
    return period, decay


def generate_examples(length, n_patterns, output, rng=None):
    """Random damped sine waves split into inputs and the points to predict.

    Each wave has a random whole-number period in [10, 20] (both ends included) and
    a random decay, uniform in [0.01, 0.1]. Its first `length` points are the input
    and the next `output` points are the target.

    Returns X of shape (n_patterns, length, 1) and y of shape (n_patterns, output).
    `rng` is a seed or a NumPy Generator, so the same seed gives the same data.
    """
    period, decay = random_parameters(n_patterns, rng)
    # one wave per row, as columns so they broadcast over time: [n_patterns, 1]
    period, decay = period[:, None], decay[:, None]
    # all waves at once: [n_patterns, length + output], the vectorised generate_sequence
    i = np.arange(length + output)
    waves = 0.5 + 0.5 * np.sin(2 * np.pi * i / period) * np.exp(-decay * i)
    X = waves[:, :length].reshape(n_patterns, length, 1)
    y = waves[:, length:].reshape(n_patterns, output)
    return X.astype("float32"), y.astype("float32")


def plot_sine_wave(sequence, title):
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(sequence)
    ax.set(title=title, xlabel="time step", ylabel="value")
    fig.tight_layout()
    return fig


def plot_examples(X, y):
    """Each example's inputs, then its held-out points drawn with larger markers."""
    fig, ax = plt.subplots(figsize=(8, 4))
    length = X.shape[1]
    for n in range(len(X)):
        line = ax.plot(range(length), X[n, :, 0], "-o", markersize=3)[0]
        ax.plot(
            range(length - 1, length + y.shape[1]),
            np.concatenate([X[n, -1:, 0], y[n]]),
            "--o",
            color=line.get_color(),
            markersize=6,
        )
    ax.axvline(length - 0.5, color="grey", linewidth=1)
    ax.set(
        title=f"{len(X)} random damped sine waves: {length} inputs, then {y.shape[1]} points to predict",
        xlabel="time step",
        ylabel="value",
    )
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# 7.3 Define and compile the model
# ---------------------------------------------------------------------------

# extra – how many training steps Keras runs inside one compiled call. The model is
# tiny and a batch holds only 10 examples, so most of the time goes to per-step
# overhead in Python; 50 steps per call cuts that overhead 50-fold. It changes no
# number of the experiment: every batch is still one gradient update.
STEPS_PER_EXECUTION = 50


def compile_model(model):
    """MAE loss and the Adam optimizer, as in the lesson, with the speed settings below.

    benchmarks/bench_training.py compares this with Keras's plain defaults.
    """
    import keras

    model.compile(
        loss="mae",
        optimizer="adam",
        steps_per_execution=STEPS_PER_EXECUTION,
        # extra – XLA fuses the LSTM's small per-time-step operations into a few
        # kernels. Keras's "auto" leaves it off for LSTMs on TensorFlow, so we turn it
        # on there; JAX compiles with XLA anyway, and other backends keep "auto".
        jit_compile=True if keras.backend.backend() == "tensorflow" else "auto",
    )
    return model


def vanilla_lstm(length=50, output=5, units=20):
    """extra – the lesson's extension: one LSTM layer, then the same output layer."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(length, 1)),  # [batch, 50, 1]
            layers.LSTM(units),  # [batch, 50, 1] -> [batch, 20]
            layers.Dense(output),  # [batch, 20] -> [batch, 5]
        ],
        name="vanilla_lstm",
    )


# ---------------------------------------------------------------------------
# 7.4 Fit the model
# ---------------------------------------------------------------------------


class BatchLoss:
    """Collects the training loss Keras reports as training goes (its progress-bar value).

    Keras may run several batches per call (see STEPS_PER_EXECUTION) and reports only
    the last one of each call, so `steps` counts batches since the start of training.
    """

    def __init__(self, steps_per_epoch):
        import keras

        self.steps, self.losses = [], []
        owner = self

        class _Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                step_in_epoch = min(batch + 1, steps_per_epoch)  # the last call may be short
                owner.steps.append(self.epoch * steps_per_epoch + step_in_epoch)
                owner.losses.append(float(logs["loss"]))

        self.callback = _Callback()


def fit_model(model, X, y, batch_size=10, epochs=1, verbose=1):
    """Passes over freshly generated examples: with one epoch, each example is seen once."""
    recorder = BatchLoss(steps_per_epoch=-(-len(X) // batch_size))  # ceil(n / batch_size)
    # ctrl_c_callback (with the shared helpers below): Ctrl-C stops cleanly between batches
    callbacks = [recorder.callback, ctrl_c_callback()]
    model.fit(X, y, batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks)
    return recorder


def plot_loss(recorders):
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, rec in recorders.items():
        ax.plot(rec.steps, rec.losses, label=name)
    ax.set(
        title="Training loss (MAE, running mean within each epoch, as Keras reports it)",
        xlabel="training step (batch)",
        ylabel="MAE",
    )
    ax.legend()
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# 7.5 Evaluate the model, against two naive baselines
# ---------------------------------------------------------------------------


def mae(y_true, y_pred):
    """Mean absolute error over every predicted point (Keras's 'mae' loss)."""
    return float(np.mean(np.abs(np.asarray(y_true) - np.asarray(y_pred))))


def persistence_forecast(X, output):
    """extra – baseline: the last observed value, repeated for every future point."""
    return np.repeat(X[:, -1, :], output, axis=1)


def centre_line_forecast(X, output):
    """extra – baseline: the constant 0.5, the line every damped wave decays towards."""
    return np.full((len(X), output), 0.5, dtype="float32")


# ---------------------------------------------------------------------------
# 7.6 Make predictions with the model
# ---------------------------------------------------------------------------


def plot_prediction(x, y, yhat, persistence):
    """The whole input wave (left), and a close-up of its end with the 5 points (right)."""
    fig, (ax_all, ax_end) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    past = np.arange(len(x))
    future = np.arange(len(x), len(x) + len(y))
    for ax, start in ((ax_all, 0), (ax_end, max(0, len(x) - 10))):
        ax.plot(past[start:], x[start:], "-", color="grey", label="input (what the model reads)")
        ax.plot(future, y, "-o", label="y (expected)")
        ax.plot(future, yhat, "-o", label="yhat (stacked LSTM)")
        ax.plot(future, persistence, ":", color="black", label="persistence baseline")
        ax.set(xlabel="time step", ylabel="value")
    ax_all.set_title("One new damped sine wave")
    ax_end.set_title("Close-up: last 10 inputs, 5 predictions")
    ax_end.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_mae_bars(summary):
    """extra – one bar per model or baseline (mean MAE, with the std over seeds)."""
    names = list(summary)
    means = [summary[n]["mae_mean"] for n in names]
    stds = [summary[n]["mae_std"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 4))
    bars = ax.bar(names, means, yerr=stds, capsize=4, color=["C0" if "LSTM" in n else "grey" for n in names])
    ax.bar_label(bars, fmt="%.4f")
    ax.set(title="Evaluation MAE on the same fresh examples (lower is better)", ylabel="MAE")
    fig.tight_layout()
    return fig


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
# 7.7 The complete example, as a command line
# ---------------------------------------------------------------------------

LESSON = dict(length=50, output=5, n_train=10_000, n_eval=1_000, batch_size=10, epochs=1, units=20)
QUICK = dict(length=50, output=5, n_train=500, n_eval=200, batch_size=10, epochs=1, units=20)

NAMES = {
    "stacked_lstm": "stacked LSTM (2 layers)",
    "vanilla_lstm": "vanilla LSTM (1 layer)",
    "persistence": "persistence (last value)",
    "centre_line": "centre line (0.5)",
}


def build_parser():
    parser = ArgumentParser(
        description="Lesson 7: a stacked LSTM predicts the last points of random damped sine waves.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    knobs = parser.add_argument_group("the lesson's knobs (defaults are the lesson's; --quick shrinks the counts)")
    knobs.add_argument("--length", type=positive_int, default=argparse.SUPPRESS,
                       help=f"input time steps per wave (default: {LESSON['length']}; with --quick: {QUICK['length']})")
    knobs.add_argument("--output", type=positive_int, default=argparse.SUPPRESS,
                       help=f"points to predict after them (default: {LESSON['output']}; with --quick: {QUICK['output']})")
    knobs.add_argument("--n-train", type=positive_int, default=argparse.SUPPRESS,
                       help=f"fresh training examples (default: {LESSON['n_train']}; with --quick: {QUICK['n_train']})")
    knobs.add_argument("--n-eval", type=positive_int, default=argparse.SUPPRESS,
                       help=f"fresh evaluation examples (default: {LESSON['n_eval']}; with --quick: {QUICK['n_eval']})")
    knobs.add_argument("--batch-size", type=positive_int, default=argparse.SUPPRESS,
                       help=f"examples per weight update (default: {LESSON['batch_size']}; with --quick: {QUICK['batch_size']})")
    knobs.add_argument("--epochs", type=positive_int, default=argparse.SUPPRESS,
                       help=f"passes over the training examples (default: {LESSON['epochs']}; with --quick: {QUICK['epochs']})")
    knobs.add_argument("--units", type=positive_int, default=argparse.SUPPRESS,
                       help=f"memory cells per LSTM layer (default: {LESSON['units']}; with --quick: {QUICK['units']})")
    parser.add_argument("--quick", action="store_true", help="a tiny run that shows every step in seconds")
    parser.add_argument("--demo", action="store_true", help="only the return_sequences demonstration (7.1.3), then stop")
    parser.add_argument("--compare-vanilla", action="store_true", help="also train a one-layer (vanilla) LSTM on the same data and budget")
    parser.add_argument("--repeats", type=positive_int, default=1, help="train with seeds seed..seed+N-1 and report mean ± std")
    parser.add_argument("--seed", type=non_negative_int, default=7, help="seed for Python, NumPy, Keras and the data")
    parser.add_argument("--out-dir", type=Path, default=Path("outputs") / Path(__file__).stem, help="where figures, models and metrics.json go")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1, help="Keras's fit output: 0 silent, 1 progress bar, 2 one line per epoch")
    parser.add_argument("--show", action="store_true", help="also open the figures in a window, instead of only saving them")
    return parser


def parse_args(argv):
    args = build_parser().parse_args(argv)
    config = QUICK if args.quick else LESSON
    for key, value in config.items():
        if not hasattr(args, key):
            setattr(args, key, value)
    if args.length < 2:
        fail(f"--length must be 2 or more (got {args.length}): a wave needs at least 2 input steps")
    if args.output >= args.length:
        fail(f"--output must be smaller than --length (got output {args.output}, length {args.length})")
    return args


def run_demo():
    """7.1.3: print what return_sequences changes, and the 2- and 4-layer definitions."""
    last_only, every_step = demo_return_sequences()
    print("LSTM(1) on [0.1, 0.2, 0.3]:")
    print(f"  return_sequences=False -> shape {last_only.shape}: {np.round(last_only.ravel(), 4).tolist()}")
    print(f"  return_sequences=True  -> shape {every_step.shape}: {np.round(every_step.ravel(), 4).tolist()}")
    print("False gives one value for the whole sequence; True gives one value per time step,")
    print("a 3D sequence that another LSTM layer can read. That is what stacking needs.\n")
    for n_layers in (2, 4):
        stacked_lstm(n_layers=n_layers).summary()


def train_and_score(name, model, data, args):
    """Fit one model on the training examples and score it on the evaluation examples."""
    X_train, y_train, X_eval, y_eval = data
    compile_model(model)
    start = time.perf_counter()
    recorder = fit_model(model, X_train, y_train, args.batch_size, args.epochs, args.verbose)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    keras_mae = model.evaluate(X_eval, y_eval, verbose=0, return_dict=True)["loss"]
    yhat = model.predict(X_eval, verbose=0)
    evaluate_s = time.perf_counter() - start
    print(f"{NAMES[name]}: evaluation MAE {mae(y_eval, yhat):.6f}")
    return dict(mae=mae(y_eval, yhat), keras_mae=float(keras_mae)), recorder, fit_s, evaluate_s


def run_seed(seed, args, out_dir, first):
    """Every step of 7.4-7.6 for one seed; figures and models only for the first seed."""
    import keras

    keras.backend.clear_session()  # free the previous seed's models before building new ones
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    timings = dict(data=0.0, fit=0.0, evaluate=0.0)

    start = time.perf_counter()
    X_train, y_train = generate_examples(args.length, args.n_train, args.output, rng)
    X_eval, y_eval = generate_examples(args.length, args.n_eval, args.output, rng)
    timings["data"] += time.perf_counter() - start
    data = (X_train, y_train, X_eval, y_eval)

    models = {"stacked_lstm": stacked_lstm(args.length, args.output, args.units)}
    if args.compare_vanilla:
        models["vanilla_lstm"] = vanilla_lstm(args.length, args.output, args.units)
    scores, recorders = {}, {}
    for name, model in models.items():
        if first:
            model.summary()
        scores[name], recorders[NAMES[name]], fit_s, evaluate_s = train_and_score(name, model, data, args)
        timings["fit"] += fit_s
        timings["evaluate"] += evaluate_s

    # extra – the baselines, scored on the very same evaluation examples
    scores["persistence"] = dict(mae=mae(y_eval, persistence_forecast(X_eval, args.output)))
    scores["centre_line"] = dict(mae=mae(y_eval, centre_line_forecast(X_eval, args.output)))

    if first:
        save_figure(plot_loss(recorders), out_dir / "loss.png")
        # 7.6: one new wave, never seen in training or evaluation
        X_new, y_new = generate_examples(args.length, 1, args.output, rng)
        yhat_new = models["stacked_lstm"].predict(X_new, verbose=0)
        persistence_new = persistence_forecast(X_new, args.output)
        save_figure(plot_prediction(X_new[0, :, 0], y_new[0], yhat_new[0], persistence_new[0]), out_dir / "prediction.png")
        for name, model in models.items():
            write_atomically(out_dir / f"{name}.keras", model.save)
            print(f"saved {out_dir / f'{name}.keras'}")
    return scores, timings


def summarise(per_seed):
    """Mean ± std over seeds of every score, per model or baseline."""
    summary = {}
    for name in per_seed[0]:
        values = np.array([scores[name]["mae"] for scores in per_seed])
        summary[name] = dict(mae_mean=float(values.mean()), mae_std=float(values.std()), mae_per_seed=values.tolist())
        if "keras_mae" in per_seed[0][name]:
            summary[name]["keras_evaluate_mae_per_seed"] = [scores[name]["keras_mae"] for scores in per_seed]
    return summary


def report(summary, n_seeds):
    """The one results table, and a plain sentence on who wins."""
    lstm = summary["stacked_lstm"]["mae_mean"]
    rows = []
    for name, s in summary.items():
        row = {"model": NAMES[name], "MAE": s["mae_mean"]}
        if n_seeds > 1:
            row["± std"] = s["mae_std"]
        if name != "stacked_lstm":
            change = 100 * (lstm / s["mae_mean"] - 1)
            row["stacked LSTM's MAE vs this"] = f"{abs(change):.0f}% {'lower' if change < 0 else 'higher'}"
        else:
            row["stacked LSTM's MAE vs this"] = "-"
        rows.append(row)
    seeds = f" (mean over {n_seeds} seeds)" if n_seeds > 1 else ""
    print(f"\nResults: MAE on the same fresh evaluation examples{seeds}")
    print_table(rows, list(rows[0]))
    for base in ("persistence", "centre_line"):
        other = summary[base]["mae_mean"]
        verdict = "beats" if lstm < other else "does NOT beat"
        print(f"The stacked LSTM {verdict} {NAMES[base]}: {lstm:.4f} vs {other:.4f}.")
    if "vanilla_lstm" in summary:
        vanilla = summary["vanilla_lstm"]["mae_mean"]
        winner = "stacked" if lstm < vanilla else "vanilla"
        print(f"Stacked vs vanilla: the {winner} LSTM has the lower MAE, {lstm:.4f} vs {vanilla:.4f} "
              f"({100 * abs(lstm - vanilla) / max(lstm, vanilla):.0f}% apart).")
        if n_seeds > 1:
            pairs = zip(summary["stacked_lstm"]["mae_per_seed"], summary["vanilla_lstm"]["mae_per_seed"])
            wins = sum(stacked < vanilla for stacked, vanilla in pairs)
            print(f"Seed by seed, the stacked LSTM wins {wins} of {n_seeds}.")


def main(argv=None):
    args = parse_args(argv)
    if not args.show:
        matplotlib.use("Agg")  # headless: save figures, never open a window
    if args.demo:
        run_demo()
        return 0
    out_dir = prepare_out_dir(args.out_dir)
    try:
        import keras

        print(f"Keras {keras.__version__}, backend {keras.backend.backend()}")
        # 7.2 the problem, drawn once
        save_figure(plot_sine_wave(sine_wave(100, 5), "A sine wave (5 cycles in 100 steps)"), out_dir / "sine_wave.png")
        save_figure(
            plot_sine_wave(generate_sequence(100, 10, 0.05), "A damped sine wave (period 10, decay 0.05)"),
            out_dir / "damped_sine_wave.png",
        )
        save_figure(plot_examples(*generate_examples(20, 5, 5, args.seed)), out_dir / "examples.png")

        per_seed, timings = [], dict(data=0.0, fit=0.0, evaluate=0.0)
        for r in range(args.repeats):
            if args.repeats > 1:
                print(f"\n--- seed {args.seed + r} ({r + 1} of {args.repeats}) ---")
            scores, seed_timings = run_seed(args.seed + r, args, out_dir, first=r == 0)
            per_seed.append(scores)
            for key in timings:
                timings[key] += seed_timings[key]

        summary = summarise(per_seed)
        report(summary, args.repeats)
        save_figure(plot_mae_bars({NAMES[n]: s for n, s in summary.items()}), out_dir / "mae_comparison.png")
        save_json(
            {
                "script": Path(__file__).name,
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "seed": args.seed,
                "seeds": [args.seed + r for r in range(args.repeats)],
                "versions": library_versions(),
                "backend": keras.backend.backend(),
                "data": "generated: random damped sine waves (period 10-20, decay 0.01-0.1)",
                "timings_s": {k: round(v, 3) for k, v in timings.items()},
                "metrics": summary,
            },
            out_dir / "metrics.json",
        )
        print(f"saved {out_dir / 'metrics.json'}")
        if args.show:
            plt.show()
    except KeyboardInterrupt:
        print("interrupted: stopped early; files already written are complete", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
