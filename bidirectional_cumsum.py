"""
Title: Bidirectional LSTM on the cumulative sum problem
Author: LSTM Lessons in Keras contributors
Date created: 2026/11/23
Last modified: 2026/12/02
Description: Label the steps where a running sum has reached a limit, with a Bidirectional LSTM.

Lesson 10 of Jason Brownlee, *Long Short-Term Memory Networks with Python* (chapter 10,
How to Develop Bidirectional LSTMs). A sequence of random numbers in [0, 1) comes in one
number per time step, and at every step the model says whether the running sum has
reached a limit of n_timesteps / 4. A Bidirectional LSTM (50 units each way, outputs
joined side by side) feeds a Dense sigmoid unit at every time step; it learns from
50,000 fresh sequences in one epoch. `run_lesson` is the chapter's complete example.

    python bidirectional_cumsum.py            # the lesson, plus its baselines
    python bidirectional_cumsum.py --quick    # every step, tiny, in seconds
    python bidirectional_cumsum.py --help     # every option

Everything above the line `# Beyond the lesson` runs alone, with Keras, NumPy and
matplotlib only. Below it, the command line calls the package `lstm_lessons`: the
go_backwards and merge-mode demonstration of 10.1 (`--demo`), a forward-only LSTM and
the majority label at each step as baselines, the chapter's suggested experiments
(`--compare-directions`, `--compare-merge-modes`, `--experiment size`), mean ± std over
seeds (`--repeats`), trainings in parallel (`--jobs`) and a metrics.json record.

Note: a plain run scores 1,000 fresh evaluation sequences, where the lesson (and
`run_lesson` alone) scores 100; `python bidirectional_cumsum.py --n-eval 100` scores the
lesson's 100.
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

# the lesson's configuration: the problem (10.3) and the sizes it trains with (10.4 to 10.6)
N_TIMESTEPS = 10
N_UNITS = 50
MERGE_MODE = "concat"
N_TRAIN = 50_000  # 10.4's text says 5,000; its code, which we follow, uses 50,000
N_EVAL = 100
N_PREDICT = 10
BATCH_SIZE = 10
EPOCHS = 1

# tiny sizes that run every step in seconds (--quick)
QUICK = dict(n_train=2_000, n_eval=200)

# Speed: Keras runs 50 batches per call into the backend (PyTorch takes only 1). What is
# learned stays the same; what goes is the overhead around each batch (benchmarks/).
SPEED = {
    "tensorflow": dict(steps_per_execution=50),
    "jax": dict(steps_per_execution=50),
    "torch": {},
}[keras.backend.backend()]


# 10.1 Bidirectional LSTM
# layers.LSTM(..., go_backwards=True) reads a sequence from its last step to its first;
# layers.Bidirectional(layers.LSTM(...), merge_mode=...) runs a forward LSTM and a
# backward copy side by side and joins their outputs: "sum", "mul", "concat" (the
# default) or "ave". `python bidirectional_cumsum.py --demo` shows what each returns.


# 10.2 The cumulative sum prediction problem
# The lesson's get_sequences calls get_sequence once per sequence; here get_sequences draws
# them all in one call and get_sequence asks it for one: faster, and the same numbers.
def get_sequence(n_timesteps, rng=None):
    """One cumulative sum problem: X and y, each a flat array of n_timesteps."""
    X, y = get_sequences(1, n_timesteps, rng)
    return X.ravel(), y.ravel()


def get_sequences(n_sequences, n_timesteps, rng=None):
    """n_sequences cumulative sum problems, shaped for the LSTM: (n_sequences, n_timesteps, 1).

    rng: a NumPy Generator (or a seed; None: fresh entropy). All the sequences come from
    one draw, row by row: the same numbers as drawing them one at a time from rng.
    """
    rng = np.random.default_rng(rng)
    # create sequences of random numbers in [0, 1)
    X = rng.random((n_sequences, n_timesteps))
    # calculate cut-off value to change class values
    limit = n_timesteps / 4.0
    # determine the class outcome for each item in each cumulative sequence
    y = np.where(np.cumsum(X, axis=1) < limit, 0, 1)
    # reshape input and output for the LSTM: [samples, time steps, features]
    return X.reshape(n_sequences, n_timesteps, 1), y.reshape(n_sequences, n_timesteps, 1)


# 10.3 Define and compile the model
# Speed: on TensorFlow the LSTMs' short time loop is unrolled (copied once per step), up
# to this many steps; longer, compiling costs more than it saves; on JAX it is slower.
UNROLL_MAX_TIMESTEPS = 20 if keras.backend.backend() == "tensorflow" else 0


def bidirectional_lstm(n_timesteps=N_TIMESTEPS, n_units=N_UNITS, merge_mode=MERGE_MODE):
    """The lesson's model: a Bidirectional LSTM, then a sigmoid unit at every time step."""
    return keras.Sequential(
        [
            # keras.Input(shape=...) is Keras 3's form of the lesson's input_shape=...
            keras.Input(shape=(n_timesteps, 1)),
            # a forward LSTM and a backward copy, joined by merge_mode
            # [batch, time, 1] -> [batch, time, 2 * units] ('concat'; else units)
            layers.Bidirectional(
                layers.LSTM(
                    n_units, return_sequences=True, unroll=n_timesteps <= UNROLL_MAX_TIMESTEPS
                ),
                merge_mode=merge_mode,
                name="bidirectional",
            ),
            # the same Dense sigmoid unit at each time step: [batch, time, 2 * units] ->
            # [batch, time, 1] (a plain Dense would act per step too; kept as the lesson)
            layers.TimeDistributed(layers.Dense(1, activation="sigmoid"), name="time_distributed"),
        ],
        name=f"bidirectional_lstm_{merge_mode}",
    )


# 10.3's compile, 10.4 Fit the model, 10.5 Evaluate the model and 10.6 Make predictions:
# the steps of run_lesson below (10.7, the complete example)


# Ours, not the lesson's: the random streams, a per-call training record and a figure
def data_streams(seed):
    """The seed's independent random streams for the training, evaluation and prediction
    sets and the example drawn, in that order: changing one size never changes another set.
    run_lesson draws its data from them, and so do the package's trainings."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]


def record_batches(batches):
    """A callback for model.fit that appends to `batches` (batch index in its epoch, loss,
    accuracy) after each call of batches: the epoch's running means, as the progress bar
    shows them (for the training-curve figure)."""
    return keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: batches.append(
            (batch, logs["loss"], logs["accuracy"])
        )
    )


def plot_sequence(X, y):
    """One problem drawn: its values, their running sum, the limit and the labels."""
    steps = np.arange(1, len(X) + 1)
    limit = len(X) / 4.0
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.bar(steps, X, color="0.75", label="input value X[t]")
    top.plot(steps, np.cumsum(X), "o-", color="tab:blue", label="running sum")
    top.axhline(limit, color="tab:red", linestyle="--", label=f"limit = {len(X)}/4 = {limit:g}")
    top.set(ylabel="value", title="The label turns to 1 once the running sum reaches the limit")
    top.legend(loc="upper left")
    bottom.step(steps, y, "o-", where="mid", color="tab:green")
    bottom.set(yticks=[0, 1], ylim=(-0.2, 1.2), ylabel="label y[t]", xlabel="time step")
    bottom.set_xticks(steps)
    fig.tight_layout()
    return fig


# 10.7 The complete example
def run_lesson(
    n_timesteps=N_TIMESTEPS,
    n_units=N_UNITS,
    merge_mode=MERGE_MODE,
    n_train=N_TRAIN,
    n_eval=N_EVAL,
    n_predict=N_PREDICT,
    batch_size=BATCH_SIZE,
    epochs=EPOCHS,
    seed=7,
    callbacks=(),
    plot=True,
    verbose=1,
):
    """The chapter's complete example: define, compile, fit, evaluate, predict.

    The seed gives each set its own random stream (data_streams) and seeds Keras's
    weights. Returns what it measured, the model and the figures.
    """
    train_rng, eval_rng, predict_rng, figure_rng = data_streams(seed)
    # one problem of the kind the model learns (10.2)
    example = get_sequence(n_timesteps, figure_rng)
    print(f"one cumulative sum sequence, limit {n_timesteps / 4.0:g}:")
    print(np.array2string(example[0], precision=3))
    print(example[1])

    # define model
    keras.utils.set_random_seed(seed)
    model = bidirectional_lstm(n_timesteps, n_units, merge_mode)
    # compile model (10.3; "accuracy" is the metric the lesson names 'acc', under its full name)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"], **SPEED)
    model.summary()
    # fit model (10.4); ours: `batches` (each call's logs) and the seconds, for the record
    X, y = get_sequences(n_train, n_timesteps, train_rng)
    batches, start = [], time.perf_counter()
    callbacks = [record_batches(batches), *callbacks]
    model.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=verbose, callbacks=callbacks)
    fit_s = time.perf_counter() - start
    # evaluate model on fresh sequences (10.5)
    X_eval, y_eval = get_sequences(n_eval, n_timesteps, eval_rng)
    start = time.perf_counter()
    loss, accuracy = model.evaluate(X_eval, y_eval, verbose=0)
    print(f"Loss: {loss:f}, Accuracy: {accuracy * 100:f}")
    # ours, not the lesson's: each evaluation sequence's labels, for the results table
    yhat_eval = (model.predict(X_eval, verbose=0) > 0.5).astype(int)
    evaluate_s = time.perf_counter() - start
    # make predictions on new sequences, one at a time (10.6); Keras 3 has no
    # predict_classes: the classes are the sigmoid outputs thresholded at 0.5
    predictions = []
    for _ in range(n_predict):
        X, y = get_sequences(1, n_timesteps, predict_rng)
        yhat = (model.predict(X, verbose=0) > 0.5).astype(int)
        exp, pred = y.reshape(n_timesteps), yhat.reshape(n_timesteps)
        correct = bool(np.array_equal(exp, pred))
        print(f"y={exp}, yhat={pred}, correct={correct}")
        predictions.append({"y": exp.tolist(), "yhat": pred.tolist(), "correct": correct})

    figures = {"example_sequence": plot_sequence(*example)} if plot else {}
    return dict(
        batches=np.array(batches, ndmin=2),
        fit_s=fit_s,
        model=model,
        loss=loss,
        accuracy=accuracy,
        y_eval=y_eval,
        yhat_eval=yhat_eval,
        evaluate_s=evaluate_s,
        predictions=predictions,
        figures=figures,
    )


# Beyond the lesson
import sys  # noqa: E402

from lstm_lessons import cli, cumsum  # noqa: E402
from lstm_lessons.parallel import CLUSTER_HELP, cluster_address  # noqa: E402

# a plain run's evaluation set: larger than the lesson's N_EVAL (the docs' numbers use it)
CLI_N_EVAL = 1_000


def positive_ints(text):
    """argparse type: comma-separated whole numbers >= 1, e.g. 10,20,40 (sorted, no repeats)."""
    return sorted({cli.positive_int(part) for part in text.split(",")})


def build_parser():
    """Every option, with the lesson's sizes as defaults (but 1,000 evaluation sequences)."""
    parser = cli.ArgumentParser(
        description="Lesson 10: a Bidirectional LSTM learns the cumulative sum problem. A plain "
        f"run scores {CLI_N_EVAL:,} fresh evaluation sequences where the lesson scores {N_EVAL}; "
        f"--n-eval {N_EVAL} scores the lesson's {N_EVAL}.",
        formatter_class=cli.HelpFormatter,
    )
    add = parser.add_argument
    n_eval = f"fresh evaluation sequences (the lesson scores {N_EVAL}: --n-eval {N_EVAL})"
    for name, default, text in (  # the lesson's sizes: whole numbers of 1 or more
        ("n_timesteps", N_TIMESTEPS, "time steps per sequence (2 or more); the limit is n/4"),
        ("n_train", N_TRAIN, "fresh training sequences (one pass over them per epoch)"),
        ("n_eval", CLI_N_EVAL, n_eval),
        ("n_predict", N_PREDICT, "new sequences to predict and print one line each"),
        ("batch_size", BATCH_SIZE, "sequences per training batch"),
        ("epochs", EPOCHS, "passes over the training sequences"),
        ("units", N_UNITS, "LSTM units in each direction"),
    ):
        add("--" + name.replace("_", "-"), type=cli.positive_int, default=default, help=text)
    merge = "how the Bidirectional wrapper joins its two directions"
    add("--merge-mode", choices=cumsum.MERGE_MODES, default=MERGE_MODE, help=merge)
    jobs = "run the independent trainings (--repeats, --compare-*, --experiment size) in N "
    jobs += "worker processes; same numbers as 1, and each worker imports Keras again"
    for option, kind, default, text in (
        ("--seed", cli.non_negative_int, 7, "seed for the data, the weights and Keras"),
        ("--repeats", cli.positive_int, 1, "run with seeds seed .. seed+N-1 and report mean ± std"),
        ("--jobs", cli.positive_int, 1, jobs),
    ):
        add(option, type=kind, default=default, help=text)
    add("--cluster", type=cluster_address, metavar="ADDRESS", help=CLUSTER_HELP)
    for option, text in (
        ("--demo", "only show go_backwards and the merge modes on a small input, then stop"),
        ("--compare-directions", "also train forward, backward and bidirectional models"),
        ("--compare-merge-modes", "also train the bidirectional model with each merge mode"),
        ("--show", "also open the figures in windows at the end"),
    ):
        add(option, action="store_true", help=text)
    experiment = "instead of the lesson's run: 'size' trains the model on every cell of the "
    experiment += "--grid-* options (model size against sequence length; add --repeats for seeds)"
    add("--experiment", choices=("size",), help=experiment)
    for key, text in zip(
        cumsum.SIZE_KEYS,
        ("sequence lengths", "LSTM units each way", "training sequences", "batch sizes"),
    ):
        add(
            "--grid-" + key.replace("_", "-"),
            type=positive_ints,
            default=cumsum.SIZE_GRID[key],
            metavar="N,N,...",
            help=f"--experiment size: the {text} to try, comma-separated",
        )
    quick = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in quick_options().items())
    add("--quick", action="store_true", help=f"tiny run of every step: {quick} unless given")
    verbose = "Keras's fit output: 0 silent, 1 progress bar, 2 one line per epoch"
    add("--verbose", type=int, default=1, choices=(0, 1, 2), help=verbose)
    out_dir = "folder for the figures, metrics.json and the .keras models"
    add("--out-dir", default="outputs/bidirectional_cumsum", help=out_dir)
    return parser


def quick_options():
    """--quick: QUICK's sizes and the package's small grid."""
    return dict(QUICK, **{"grid_" + key: value for key, value in cumsum.QUICK_GRID.items()})


def parse_args(argv=None):
    """The options, checked: a bad one gets one line and exit 2, before any work."""
    args = cli.parse_args_with_quick(build_parser(), argv, quick_options())
    for option, value in (
        ("--n-timesteps", args.n_timesteps),
        ("--grid-n-timesteps", min(args.grid_n_timesteps)),
    ):
        if value < 2:
            cli.fail(
                f"{option} must be 2 or more (got {value}): one step has no past or future to read"
            )
    cumsum.check_data_memory(args)
    return args


def main(argv=None):
    """Parse the options; run the lesson, its baselines and experiments through the package
    (this file's lesson functions go in: the package never imports a script)."""
    lesson = sys.modules[__name__]
    return cli.run_main(lambda args: cumsum.run(args, lesson), parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
