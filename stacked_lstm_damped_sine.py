"""
Title: Stacked LSTM for damped sine wave prediction
Author: LSTM Lessons in Keras contributors
Date created: 2026/11/23
Last modified: 2026/12/02
Description: A two-layer stacked LSTM predicts the last 5 points of random damped sine waves.

The lesson: Jason Brownlee, *Long Short-Term Memory Networks with Python*, chapter 7,
"How to Develop Stacked LSTMs", with his blog post "Stacked Long Short-Term Memory
Networks" (Machine Learning Mastery).

A stacked LSTM is a pile of LSTM layers in which every layer but the last hands a whole
sequence, one vector per time step, to the layer above (`return_sequences=True`). The
problem: damped sine waves with a random period and decay. The model reads 50 time steps
and predicts the next 5 at once.

The lesson comes first, in its order: 7.1.3 (what return_sequences changes), 7.2 (the
problem), 7.3 to 7.6 (define, compile, fit, evaluate, predict) and `run_lesson`, 7.7's
complete example. Copied down to the line "# Beyond the lesson" into a file of your own,
it runs alone: add `run_lesson()` (or `run_lesson(**QUICK)`) and `plt.show()`. run_lesson
does not run 7.1.3's demonstration: call `print(*demo_return_sequences())` yourself, or run
the script with `--demo` (a plain run of the script shows it before the lesson). Below that
line, the command line adds, through the package `lstm_lessons`: two baselines scored on
the same examples, a vanilla and a many-to-many LSTM, other layer sizes and dropout,
repeats over seeds, the 7.9 experiment on longer waves, and every figure, model and
number saved to the output folder (`metrics.json`).

    python stacked_lstm_damped_sine.py                   # the lesson as written
    python stacked_lstm_damped_sine.py --quick           # every step, tiny, in seconds
    python stacked_lstm_damped_sine.py --demo            # only 7.1.3's demonstration
    python stacked_lstm_damped_sine.py --repeats 10 --compare-vanilla
    python stacked_lstm_damped_sine.py --experiment length   # 7.9: longer waves
    python stacked_lstm_damped_sine.py --help            # every option
"""

import os
import time

# TensorFlow reads this once, as it is imported: keep its C++ INFO and WARNING lines out
# of the output (a value you set wins)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import matplotlib.pyplot as plt
import numpy as np
from keras import layers

# configure problem (7.3 to 7.5). The text of 7.3 says 20 input time steps; its code,
# which we follow, uses 50.
LENGTH = 50  # input time steps per wave
OUTPUT = 5  # points to predict after them
UNITS = 20  # memory cells per LSTM layer
N_LAYERS = 2  # hidden LSTM layers
N_TRAIN = 10_000  # fresh training examples (7.4), each seen once
N_EVAL = 1_000  # fresh evaluation examples (7.5)
BATCH_SIZE = 10
EPOCHS = 1
LOSS = "mae"  # mean absolute error (7.3); the package's trainings compile with these too
OPTIMIZER = "adam"

# A tiny run of every step, in seconds: run_lesson(**QUICK)
QUICK = dict(n_train=500, n_eval=200)

# SPEED: the only speed settings. The model is tiny and a batch holds 10 examples, so most
# time goes to per-step overhead: Keras runs 50 batches per call into the backend
# (PyTorch refuses more than 1), and on TensorFlow XLA fuses the LSTM's small steps (JAX
# compiles with XLA anyway). Every batch is still one update of the same model: nothing
# learned changes. benchmarks/bench_training.py measures the gain.
SPEED = {
    "tensorflow": dict(steps_per_execution=50, jit_compile=True),
    "jax": dict(steps_per_execution=50),
    "torch": {},
}[keras.backend.backend()]


# --- 7.1.3 Implementation: what return_sequences changes ---


def demo_return_sequences(units=1, seed=7):
    """One LSTM(units) layer's output on [0.1, 0.2, 0.3], without and with return_sequences.

    Returns the two outputs, of shape (1, units) and (1, 3, units). The untrained weights
    are random: `seed` fixes them.
    """
    # input time steps: [batch, time steps, features] = [1, 3, 1]
    data = np.array([0.1, 0.2, 0.3], dtype="float32").reshape((1, 3, 1))
    outputs = []
    for return_sequences in (False, True):
        # define model where the LSTM is also the output layer. keras.Input(shape=...) is
        # Keras 3's form of the lesson's input_shape=(3, 1).
        keras.utils.set_random_seed(seed)
        model = keras.Sequential(
            [keras.Input(shape=(3, 1)), layers.LSTM(units, return_sequences=return_sequences)]
        )
        # make a prediction
        outputs.append(model.predict(data, verbose=0))
    return outputs


def stacked_lstm(length=LENGTH, output=OUTPUT, units=UNITS, n_layers=N_LAYERS, dropout=0.0):
    """A stacked LSTM: every LSTM layer but the last returns its whole sequence.

    7.1.3 shows the pattern with 2 and 4 hidden layers; with the lesson's settings this is
    the model that 7.3 defines. `units`: one number for every layer, or one per layer,
    e.g. [30, 20, 10] (then it sets the number of layers). `dropout` > 0 (beyond the
    lesson) puts a Dropout layer between the LSTM layers.
    """
    units = [units] * n_layers if np.isscalar(units) else list(units)
    model = keras.Sequential(name=f"stacked_lstm_{len(units)}_layers")
    # shapes in the comments: with the lesson's 2 layers of 20 cells and 50 time steps
    model.add(keras.Input(shape=(length, 1)))  # [batch, 50 time steps, 1 feature]
    for u in units[:-1]:
        # hands one vector per time step upward: [batch, 50, 1] -> [batch, 50, 20]
        model.add(layers.LSTM(u, return_sequences=True))
        if dropout:
            model.add(layers.Dropout(dropout))  # zeroes a random share of them in training
    # reads the sequence below and keeps its last state: [batch, 50, 20] -> [batch, 20]
    model.add(layers.LSTM(units[-1]))
    # all 5 future points at once: [batch, 20] -> [batch, 5]
    model.add(layers.Dense(output))
    return model


# --- 7.2 The damped sine wave prediction problem ---
# 7.2.1 The sine wave


def sine_wave(length=100, freq=5):
    """A plain sine wave: `freq` full cycles over `length` time steps."""
    i = np.arange(length)
    return np.sin(2 * np.pi * freq * i / length)


# 7.2.2 The damped sine wave, and 7.2.3 a function that generates one


def generate_sequence(length, period, decay):
    """A damped sine wave that stays in [0, 1].

    value[i] = 0.5 + 0.5 * sin(2*pi*i / period) * exp(-decay * i)

    `period` is the number of steps in one full cycle; `decay` sets how fast the swing
    dies away towards the centre line 0.5 (7.2.2 says "towards 0", but the formula
    decays to 0.5).
    """
    i = np.arange(length)
    return 0.5 + 0.5 * np.sin(2 * np.pi * i / period) * np.exp(-decay * i)


# 7.2.4 Sequences of random damped sine waves


def random_parameters(n_patterns, rng=None):
    """A random period (a whole number in [10, 20]) and decay (in [0.01, 0.1]) per wave."""
    rng = np.random.default_rng(rng)
    period = rng.integers(10, 20, size=n_patterns, endpoint=True)  # 20 included, as randint
    decay = rng.uniform(0.01, 0.1, size=n_patterns)
    return period, decay


def generate_examples(length, n_patterns, output, rng=None):
    """Random damped sine waves split into inputs and the points to predict.

    Each wave's first `length` points are the input and its next `output` points the
    target. Returns X of shape (n_patterns, length, 1) and y of shape (n_patterns,
    output). `rng` is a seed or a NumPy Generator: the same seed gives the same data.
    """
    period, decay = random_parameters(n_patterns, rng)
    # all waves at once, one per row: as columns [n_patterns, 1], period and decay
    # broadcast over the time steps, so waves is [n_patterns, length + output]
    waves = generate_sequence(length + output, period[:, None], decay[:, None])
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
        future = range(length - 1, length + y.shape[1])
        ax.plot(future, np.r_[X[n, -1, 0], y[n]], "--o", color=line.get_color(), markersize=6)
    ax.axvline(length - 0.5, color="grey", linewidth=1)
    ax.set(
        title=f"{len(X)} damped sine waves: {length} inputs, then {y.shape[1]} points to predict",
        xlabel="time step",
        ylabel="value",
    )
    fig.tight_layout()
    return fig


def plot_problem(rng=None):
    """7.2's three figures: a sine wave, a damped one, and 5 random examples."""
    return {
        "sine_wave": plot_sine_wave(sine_wave(100, 5), "A sine wave (5 cycles in 100 steps)"),
        "damped_sine_wave": plot_sine_wave(
            generate_sequence(100, 10, 0.05), "A damped sine wave (period 10, decay 0.05)"
        ),
        "examples": plot_examples(*generate_examples(20, 5, 5, rng)),
    }


# --- The figures of 7.4 (the training loss) and 7.6 (a prediction) ---


def plot_losses(records):
    """The training loss of each model (name: {"step": [...], "loss": [...]})."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, record in records.items():
        # a point per call of batches (a --quick run makes only a few)
        ax.plot(record["step"], record["loss"], "-o", markersize=3, label=name)
    ax.set(
        title="Training loss (MAE, running mean within each epoch, as Keras reports it)",
        xlabel="training step (batch)",
        ylabel="MAE",
    )
    ax.legend()
    fig.tight_layout()
    return fig


def plot_prediction(x, y, yhat):
    """The whole input wave (left), and a close-up of its end with the 5 points (right)."""
    fig, (ax_all, ax_end) = plt.subplots(
        1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]}
    )
    past = np.arange(len(x))
    future = np.arange(len(x), len(x) + len(y))
    for ax, start in ((ax_all, 0), (ax_end, max(0, len(x) - 10))):
        ax.plot(past[start:], x[start:], "-", color="grey", label="input (what the model reads)")
        ax.plot(future, y, "-o", label="y (expected)")
        ax.plot(future, yhat, "-o", label="yhat (stacked LSTM)")
        ax.set(xlabel="time step", ylabel="value")
    ax_all.set_title("One new damped sine wave")
    ax_end.set_title("Close-up: last 10 inputs, 5 predictions")
    ax_end.legend(fontsize="small")
    fig.tight_layout()
    return fig


# --- 7.7 The complete example ---


def data_streams(seed):
    """The seed's independent random streams for the training, evaluation and new examples
    and the figures, in that order: more training examples never change the evaluation
    examples. run_lesson draws its data from them, and so do the package's trainings."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]


def run_lesson(
    n_train=N_TRAIN,
    n_eval=N_EVAL,
    batch_size=BATCH_SIZE,
    epochs=EPOCHS,
    length=LENGTH,
    output=OUTPUT,
    units=UNITS,
    n_layers=N_LAYERS,
    seed=7,
    callbacks=(),
    plot=True,
    verbose=1,
):
    """The lesson's complete example: data, define, compile, fit, evaluate, predict, plot.

    Returns what it measured: the model, its MAE, the evaluation examples, the new wave
    and its prediction, the loss after each call of batches, each step's seconds, and
    (plot=True) the figures by file name. `callbacks`: more Keras callbacks for fit.
    """
    train_rng, eval_rng, predict_rng, figures_rng = data_streams(seed)
    start = time.perf_counter()
    X, y = generate_examples(length, n_train, output, train_rng)
    X_eval, y_eval = generate_examples(length, n_eval, output, eval_rng)
    X_new, y_new = generate_examples(length, 1, output, predict_rng)
    seconds = {"data": time.perf_counter() - start}

    # 7.3 define model (seeded: the same seed trains the same model)
    keras.utils.set_random_seed(seed)
    model = stacked_lstm(length, output, units, n_layers)
    # compile: mean absolute error, Adam (LOSS, OPTIMIZER and SPEED: at the top)
    model.compile(loss=LOSS, optimizer=OPTIMIZER, **SPEED)
    model.summary()

    # 7.4 fit model: one pass over fresh examples, so each example is seen once.
    # Note: 7.4 says batch size 10 resets the LSTM's state every 10 samples. Not so: this
    # LSTM is stateless, so every sequence (every sample) starts from a zero state, and no
    # state passes from one sample to the next. The batch size only sets how many samples
    # are averaged into each weight update (10 here: 1,000 updates for 10,000 samples).
    # The loss Keras reports (the epoch's running mean), recorded after each call of
    # batches: Keras passes the last batch of the call (clipped here at the epoch's end).
    steps = -(-n_train // batch_size)  # batches per epoch; the last one may be short
    losses, now = {"step": [], "loss": []}, {"epoch": 0}

    def record(batch, logs):
        losses["step"].append(now["epoch"] * steps + min(batch + 1, steps))
        losses["loss"].append(float(logs["loss"]))

    record_losses = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: now.update(epoch=epoch), on_train_batch_end=record
    )
    start = time.perf_counter()
    history = model.fit(
        X,
        y,
        epochs=epochs,
        batch_size=batch_size,
        verbose=verbose,
        callbacks=[record_losses, *callbacks],
    )
    seconds["fit"] = time.perf_counter() - start

    # 7.5 evaluate model on fresh examples. (model.evaluate averages batch by batch, so its
    # MAE may differ from one mean over all predictions in the last float digits, ~1e-6.)
    start = time.perf_counter()
    loss = model.evaluate(X_eval, y_eval, verbose=0)
    seconds["evaluate"] = time.perf_counter() - start
    print(f"MAE: {loss:f}")

    # 7.6 prediction on new data
    yhat = model.predict(X_new, verbose=0)
    print(f"y    {y_new[0].round(3)}\nyhat {yhat[0].round(3)}")
    figures = {}
    if plot:
        figures = plot_problem(figures_rng)
        figures["loss"] = plot_losses({"stacked LSTM": losses})
        figures["prediction"] = plot_prediction(X_new[0, :, 0], y_new[0], yhat[0])
    return dict(
        model=model,
        mae=loss,
        history=history.history,
        losses=losses,
        X_eval=X_eval,
        y_eval=y_eval,
        x_new=X_new[0, :, 0],
        y_new=y_new[0],
        yhat_new=yhat[0],
        seconds=seconds,
        figures=figures,
    )


# Beyond the lesson
# ---------------------------------------------------------------------------
# The command line: a plain run is run_lesson with its defaults; the rest is the package's.

import sys  # noqa: E402
from types import SimpleNamespace  # noqa: E402

from lstm_lessons import sine  # noqa: E402
from lstm_lessons.cli import run_main, seed_list  # noqa: E402
from lstm_lessons.outputs import prepare_out_dir, run_record, save_json  # noqa: E402
from lstm_lessons.training import ctrl_c_callback  # noqa: E402

# what the package needs of the lesson, passed in (the package never imports this file)
LESSON = SimpleNamespace(
    run_lesson=run_lesson,
    demo_return_sequences=demo_return_sequences,
    stacked_lstm=stacked_lstm,
    generate_examples=generate_examples,
    plot_problem=plot_problem,
    plot_losses=plot_losses,
    plot_prediction=plot_prediction,
    data_streams=data_streams,
    LOSS=LOSS,
    OPTIMIZER=OPTIMIZER,
    SPEED=SPEED,
)


def run(args):
    seeds = seed_list(args)
    out_dir = prepare_out_dir(args.out_dir)  # checked before any work
    record = run_record(args, seeds, __file__)  # the head of metrics.json
    print(f"Keras {record['versions']['keras']}, backend {record['backend']}")
    if args.experiment == "length":
        return sine.run_length_experiment(args, LESSON, out_dir, record)
    # 7.1.3 what return_sequences changes (with --demo, only that)
    record["demo"] = sine.run_demo(LESSON, args.seed)
    if args.demo:
        record.update(timings_s=dict(data=0.0, fit=0.0, evaluate=0.0), metrics={})
        save_json(record, out_dir / "metrics.json")
        return 0
    sizes = sine.lesson_sizes(args)
    if sizes:  # the lesson as written
        keras.backend.clear_session()  # layer names start again at lstm, lstm_1
        callbacks = [ctrl_c_callback()]  # Ctrl-C stops between batches: exit 130
        result = run_lesson(**sizes, seed=args.seed, callbacks=callbacks, verbose=args.verbose)
        runs, figures = sine.lesson_runs(result)
    else:  # more seeds or models (in --jobs workers too)
        runs, figures = sine.train_all(args, LESSON, out_dir)
    return sine.finish(args, runs, figures, out_dir, record)


def main(argv=None):
    args = sine.parse_args(argv, run_lesson, QUICK)
    return run_main(run, args)


if __name__ == "__main__":
    sys.exit(main())
