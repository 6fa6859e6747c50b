"""
Title: Stacked LSTM for damped sine wave prediction (lesson 7)
Author: LSTM Lessons in Keras contributors
Date created: 2026/11/23
Last modified: 2026/11/25
Description: A two-layer stacked LSTM predicts the last 5 points of random damped sine waves.

Lesson 7 builds a stacked LSTM: LSTM layers that hand a whole sequence, not a single
vector, to the layer above (`return_sequences=True`). The problem is a family of damped
sine waves with a random period and decay; the model reads 50 time steps and predicts
the next 5 at once.

    python stacked_lstm_damped_sine.py            # the lesson's full configuration
    python stacked_lstm_damped_sine.py --quick    # every step, tiny, in seconds
    python stacked_lstm_damped_sine.py --demo     # only the return_sequences demonstration
    python stacked_lstm_damped_sine.py --help     # every option

The file reads in the lesson's order (7.1.3 to 7.6, then 7.7's complete example in
`run_lesson`). Beyond the lesson (marked "extra"): two naive baselines scored on the same
evaluation set with the same metric (MAE), the lesson's vanilla-LSTM extension
(`--compare-vanilla`), any number of layers and cells per layer (`--layers`, `--units
30,20,10`, `--dropout`), the many-to-many variant of 7.2.4 (`--many-to-many`), the 7.9
experiment on longer waves (`--experiment length`), several seeds (`--repeats N`), and
every figure and number saved to the output folder (`metrics.json`). The support code
sits at the bottom.
"""

import argparse
import itertools
import json
import sys
import time
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lstm_lessons.cli import (
    ArgumentParser,
    HelpFormatter,
    fail,
    non_negative_int,
    parse_args_with_quick,
    positive_int,
    run_main,
    seed_list,
)
from lstm_lessons.outputs import (
    mean_std,
    prepare_out_dir,
    print_table,
    run_record,
    save_figure,
    save_json,
    save_model,
)
from lstm_lessons.parallel import check_memory, run_trainings
from lstm_lessons.training import (
    copy_model,
    fit_recorded,
    random_streams,
    reuse_compiled,
    speed_settings,
    training_cost,
)

# Keras is imported inside the functions that need it, not up here: importing it
# takes seconds, and `--help` or a mistyped option should answer at once.

# The lesson's configuration (7.3 to 7.5), and the tiny one of --quick. (The text of 7.3
# says 20 input time steps; its code, which we follow, uses length = 50.)
LESSON = dict(length=50, output=5, n_train=10_000, n_eval=1_000, batch_size=10, epochs=1, units=20)
LESSON_LAYERS = 2  # two LSTM layers, 20 cells each
# --quick: the grid of --experiment length shrinks too (4 trainings, seconds each)
QUICK = dict(n_train=500, n_eval=200, lengths="25,50", cells="5,10", n_trains="500")

# extra – speed settings: the only place they are set. The model is tiny and a batch
# holds 10 examples, so most of the time goes to per-step overhead: Keras runs 50
# batches per call into the backend, and XLA fuses the LSTM's small per-step operations
# (on TensorFlow; JAX compiles with XLA anyway). Every batch is still one update of the
# same model, loss and optimizer. benchmarks/bench_training.py measures the gain.
SPEED = dict(steps_per_execution=50, jit_compile=True)


# ---------------------------------------------------------------------------
# 7.1.3 Implementation: what return_sequences changes
# ---------------------------------------------------------------------------


def demo_return_sequences(seed=7, units=1):
    """The output of one LSTM(units) layer on [0.1, 0.2, 0.3], without and with return_sequences.

    Returns the two outputs as NumPy arrays, of shape (1, units) and (1, 3, units).
    The untrained weights are random: `seed` fixes them.
    """
    import keras
    from keras import layers

    # one sequence of 3 time steps with 1 feature: [batch, time, features] = [1, 3, 1]
    data = np.array([0.1, 0.2, 0.3], dtype="float32").reshape((1, 3, 1))
    outputs = []
    for return_sequences in (False, True):
        # define model where the LSTM is also the output layer (the lesson: 1 memory cell)
        keras.utils.set_random_seed(seed)
        model = keras.Sequential(
            [keras.Input(shape=(3, 1)), layers.LSTM(units, return_sequences=return_sequences)]
        )
        # make a prediction (run_demo prints it)
        outputs.append(model.predict(data, verbose=0))
    return outputs[0], outputs[1]


def stacked_lstm(length=50, output=5, units=20, n_layers=2, dropout=0.0):
    """A stacked LSTM: every LSTM but the last returns its whole sequence.

    7.1.3 shows the pattern with 2 and 4 hidden layers; with the lesson's settings
    (n_layers=2) this is the model that 7.3 defines and compiles. `units` is one
    number (the same for every layer) or one per layer, e.g. [30, 20, 10] (then it
    sets the number of layers). extra – `dropout` > 0 puts a Dropout layer between
    the LSTM layers.
    """
    import keras
    from keras import layers

    units = [units] * n_layers if np.isscalar(units) else list(units)
    model = keras.Sequential(name=f"stacked_lstm_{len(units)}_layers")
    # shapes in the comments: the lesson's sizes (50 time steps, 20 cells)
    model.add(keras.Input(shape=(length, 1)))  # [batch, 50 time steps, 1 feature]
    for u in units[:-1]:
        # hands one vector per time step upward: [batch, 50, 1] -> [batch, 50, 20]
        model.add(layers.LSTM(u, return_sequences=True))
        if dropout:
            # extra – zeroes a random fraction of those vectors while training
            model.add(layers.Dropout(dropout))
    # reads the sequence below and keeps only its last state: [batch, 50, 20] -> [batch, 20]
    model.add(layers.LSTM(units[-1]))
    # all 5 future points at once: [batch, 20] -> [batch, 5]
    model.add(layers.Dense(output))
    return model


def run_demo(seed=7):
    """7.1.3: print what return_sequences changes, then a stacked LSTM with 4 hidden layers.

    (The 2-layer model is printed when 7.3 defines it.)
    """
    record = {}
    for units in (1, 2):  # extra – LSTM(2), so that units and time steps can be told apart
        last_only, every_step = demo_return_sequences(seed, units)
        print(f"7.1.3 LSTM({units}) on [0.1, 0.2, 0.3]:")
        for name, out in (("False", last_only), ("True ", every_step)):
            values = out.astype(float).round(4).tolist()  # nested like the shape
            print(f"  return_sequences={name} -> shape {out.shape}: {values}")
        prefix = "" if units == 1 else f"lstm{units}_"
        record[f"{prefix}return_sequences_false"] = last_only.tolist()
        record[f"{prefix}return_sequences_true"] = every_step.tolist()
    print("False gives one value for the whole sequence; True gives one value per time step,")
    print("a 3D sequence that another LSTM layer can read. That is what stacking needs.")
    print("Shapes are [batch, time steps, units]: the time axis (3) stays, the last axis is the")
    print("number of units (1 or 2).\n")
    stacked_lstm(n_layers=4).summary()
    return record


# ---------------------------------------------------------------------------
# 7.2 The damped sine wave prediction problem
# ---------------------------------------------------------------------------

# 7.2.1 The sine wave


def sine_wave(length=100, freq=5):
    """A plain sine wave: `freq` full cycles over `length` time steps."""
    i = np.arange(length)
    return np.sin(2 * np.pi * freq * i / length)


# 7.2.2 The damped sine wave, and 7.2.3 a function that generates one


def generate_sequence(length, period, decay):
    """A damped sine wave that stays in [0, 1].

    value[i] = 0.5 + 0.5 * sin(2*pi*i / period) * exp(-decay * i)

    `period` is the number of steps in one full cycle; `decay` sets how fast the
    swing dies away towards the centre line 0.5 (7.2.2 says "towards 0", but the
    formula decays to 0.5).
    """
    i = np.arange(length)
    return 0.5 + 0.5 * np.sin(2 * np.pi * i / period) * np.exp(-decay * i)


# 7.2.4 Sequences of random damped sine waves


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


# ---------------------------------------------------------------------------
# 7.3 to 7.6: define and compile, fit, evaluate, predict (7.7: the complete example)
# ---------------------------------------------------------------------------


def run_lesson(define_model, data, seed, batch_size=10, epochs=1, verbose=1, reuse=False):
    """The lesson's complete example for one model: define, compile, fit, evaluate, predict.

    define_model: makes the model, e.g. `stacked_lstm`. data: (X, y) pairs from
    generate_examples under "train", "eval" and "new" (one new wave, for 7.6). Returns
    the trained model and its results; the caller prints them (see print_results).
    extra – reuse=True: train in an identical model compiled earlier in this run instead,
    with this new model's weights copied in: the same numbers, but TensorFlow does not
    trace (compile) it again. A later call may then retrain the model returned, so
    copy_model it to keep it. Leave reuse=False in your own code.
    To copy this function: use model.fit for fit_recorded, model.evaluate(X, y,
    return_dict=True) for evaluate_network and model.predict for predict, and drop
    **speed_settings(...) (support code at the bottom of the file).
    """
    import keras

    X, y = data["train"]
    # 7.3 define model (seeded, so each training is reproducible on its own)
    keras.utils.set_random_seed(seed)
    model = define_model()
    # 7.3 compile model: MAE loss and Adam, as the lesson (SPEED: its settings, at the top)
    model.compile(loss="mae", optimizer="adam", **speed_settings(model, **SPEED))
    if reuse:  # extra – see the docstring
        model = reuse_compiled(model)
    # 7.4 fit model: one pass over fresh examples, so each example is seen once.
    # Note: 7.4 says batch size 10 "resets the LSTM's state every 10 samples". Not so: this
    # LSTM is stateless, so every sequence (every sample) starts from a zero state, and no
    # state passes from one sample to the next. The batch size only sets how many samples
    # are averaged into each weight update (10 here: 1,000 updates for 10,000 samples).
    training = fit_recorded(model, X, y, epochs, batch_size, verbose)
    # 7.5 evaluate model on fresh examples: the MAE that the lesson's model.evaluate(X, y)
    # reports, from direct calls to the model (see evaluate_network)
    start = time.perf_counter()
    loss, yhat_eval = evaluate_network(model, *data["eval"])
    evaluate_s = time.perf_counter() - start
    # 7.6 make a prediction on new data
    yhat_new = predict(model, data["new"][0])
    return dict(
        model=model,
        keras_mae=loss,
        yhat_eval=yhat_eval,
        yhat_new=yhat_new,
        training=training,
        evaluate_s=evaluate_s,
    )


def evaluate_network(model, X, y):
    """The loss (the MAE model.evaluate reports, to float rounding) and the predictions.

    Both come from one set of direct calls: model.evaluate would compile (trace) a test
    loop for each new model, and TensorFlow warns when that happens again and again.
    """
    import keras

    yhat = predict(model, X)
    loss = keras.ops.mean(keras.losses.mean_absolute_error(y.astype(yhat.dtype), yhat))
    return float(keras.ops.convert_to_numpy(loss)), yhat


def predict(model, X, chunk=10_000):
    """The model's outputs for X as a NumPy array, from direct calls on large chunks.

    A direct call gives model.predict()'s outputs (to float rounding) without its
    compiled batching loop, which each new model traces (compiles) again before its first
    batch (with many models, TensorFlow warns about that retracing).
    """
    import keras

    parts = [model(X[i : i + chunk], training=False) for i in range(0, len(X), chunk)]
    return np.concatenate([keras.ops.convert_to_numpy(part) for part in parts])


def print_definition(model):
    """7.3: the defined model, and each LSTM layer's parameters checked against Keras."""
    model.summary()
    print_lstm_parameters(model)


def print_results(name, result):
    """7.4 to 7.6 for one trained model, from the results its training returned."""
    epochs = result["epochs"]
    print(
        f"7.4 {name}: fitted {epochs} epoch{'s' if epochs > 1 else ''} in "
        f"{result['fit_s']:.1f} s, last loss {result['loss']:.6f}"
    )
    print(f"7.5 {name}: MAE {result['keras_mae']:f}")
    if "yhat_new" in result:  # the first seed's training keeps the new wave
        points = [[round(float(v), 3) for v in result[k]] for k in ("y_new", "yhat_new")]
        print(f"7.6 {name} on a new wave: expected  {points[0]}")
        print(f"    {' ' * len(name)}                 predicted {points[1]}")


def plot_losses(trainings):
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, training in trainings.items():
        ax.plot(training["batches"]["step"], training["batches"]["loss"], label=name)
    ax.set(
        title="Training loss (MAE, running mean within each epoch, as Keras reports it)",
        xlabel="training step (batch)",
        ylabel="MAE",
    )
    ax.legend()
    fig.tight_layout()
    return fig


def plot_prediction(x, y, yhat, persistence):
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
        ax.plot(future, persistence, ":", color="black", label="persistence baseline")
        ax.set(xlabel="time step", ylabel="value")
    ax_all.set_title("One new damped sine wave")
    ax_end.set_title("Close-up: last 10 inputs, 5 predictions")
    ax_end.legend(fontsize="small")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Beyond the lesson (extra): baselines, the vanilla LSTM, several seeds
# ---------------------------------------------------------------------------


def lstm_parameters(model):
    """extra – each LSTM layer's parameters, from the formula and from Keras.

    An LSTM layer of u cells reading i features per step has 4 gates, each with
    weights for the input (i), for the previous output (u) and a bias (1), per cell:
    4·u·(i + u + 1). A layer reads the units of the LSTM below it (1 for the first).
    """
    import keras

    rows, i = [], model.input_shape[-1]
    for layer in model.layers:
        if isinstance(layer, keras.layers.LSTM):
            u = layer.units
            rows.append(dict(layer=layer.name, i=i, u=u, formula=4 * u * (i + u + 1)))
            rows[-1]["keras"] = layer.count_params()
            i = u
    return rows


def print_lstm_parameters(model):
    """extra – one line per LSTM layer: 4·u·(i+u+1), checked against Keras's count."""
    for r in lstm_parameters(model):
        check = "matches Keras" if r["formula"] == r["keras"] else f"but Keras says {r['keras']:,}"
        print(f"  {r['layer']}: 4·{r['u']}·({r['i']}+{r['u']}+1) = {r['formula']:,} ({check})")


def mae(y_true, y_pred):
    """Mean absolute error over every predicted point (Keras's 'mae' loss)."""
    return float(np.mean(np.abs(np.asarray(y_true) - np.asarray(y_pred))))


def persistence_forecast(X, output):
    """extra – baseline: the last observed value, repeated for every future point."""
    return np.repeat(X[:, -1, :], output, axis=1)


def centre_line_forecast(X, output):
    """extra – baseline: the constant 0.5, the line every damped wave decays towards."""
    return np.full((len(X), output), 0.5, dtype="float32")


def vanilla_lstm(length=50, output=5, units=20):
    """extra – the lesson's extension (7.9): one LSTM layer, then the same output layer."""
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


def many_to_many(length=50, output=5, units=(20, 20), dropout=0.0):
    """extra – the variant 7.2.4 suggests: the 5 points come out one per time step.

    An encoder (every LSTM layer but the last) reads the wave into one vector;
    RepeatVector hands that vector to each of the 5 output steps; the decoder (an LSTM
    of the last layer's size) returns one vector per step, and the same Dense(1) turns
    each into one point. The LSTM sizes are the stacked model's, so the two differ only
    in how the 5 points are produced. Needs 2 or more layers.
    """
    import keras
    from keras import layers

    model = keras.Sequential(name="many_to_many")
    model.add(keras.Input(shape=(length, 1)))  # [batch, 50, 1]
    for n, u in enumerate(units[:-1]):
        # encoder; its last layer keeps only the last state: [batch, 50, 1] -> [batch, 20]
        model.add(layers.LSTM(u, return_sequences=n < len(units) - 2))
        if dropout:
            model.add(layers.Dropout(dropout))
    model.add(layers.RepeatVector(output))  # the same vector for each output step: [batch, 5, 20]
    model.add(layers.LSTM(units[-1], return_sequences=True))  # decoder: [batch, 5, 20]
    model.add(layers.Dense(1))  # Dense acts on the last axis, at every step: [batch, 5, 1]
    model.add(layers.Reshape((output,)))  # [batch, 5, 1] -> [batch, 5], the shape of y
    return model


STREAMS = ["train", "eval", "predict", "figures"]  # one random stream each, per seed
NAMES = {
    "stacked_lstm": "stacked LSTM (2 layers)",
    "vanilla_lstm": "vanilla LSTM (1 layer)",
    "many_to_many": "many-to-many LSTM (encoder-decoder)",
    "persistence": "persistence (last value)",
    "centre_line": "centre line (0.5)",
}


def model_names(args):
    """The table's names, with the stacked LSTM's layers when they are not the lesson's."""
    if args.units == [LESSON["units"]] * LESSON_LAYERS:
        return NAMES
    return dict(NAMES, stacked_lstm=f"stacked LSTM ({','.join(map(str, args.units))} cells)")


def make_data(args, streams):
    """Training, evaluation and new examples, each from its own random stream."""
    return {
        "train": generate_examples(args.length, args.n_train, args.output, streams["train"]),
        "eval": generate_examples(args.length, args.n_eval, args.output, streams["eval"]),
        "new": generate_examples(args.length, 1, args.output, streams["predict"]),
    }


def model_list(args):
    """The models a run trains for each seed: the lesson's, then those asked for."""
    return (
        ["stacked_lstm"]
        + ["vanilla_lstm"] * args.compare_vanilla
        + ["many_to_many"] * args.many_to_many
    )


def define(name, args):
    """A fresh, untrained model `name` with the run's sizes."""
    if name == "stacked_lstm":
        return stacked_lstm(args.length, args.output, args.units, dropout=args.dropout)
    if name == "vanilla_lstm":
        return vanilla_lstm(args.length, args.output, args.units[0])
    return many_to_many(args.length, args.output, args.units, args.dropout)


def train_model(name, seed, args, keep=False):
    """extra – one training: model `name` on seed `seed`'s data, scored with both baselines.

    run_trainings calls it, here or in a --jobs worker, so it returns plain results and
    writes no file. keep: also return what the first seed's figures and saved models need
    (the model, its per-batch losses, the new wave and its prediction).
    """
    import keras

    keras.backend.clear_session()  # layer names start again at lstm, lstm_1 (models stay)
    start = time.perf_counter()
    data = make_data(args, random_streams(seed, STREAMS))
    data_s = time.perf_counter() - start
    n, batch = f"{args.n_train:,}", args.batch_size
    print(f"7.4 fit {name} (seed {seed}) on {n} examples, batch size {batch}")
    define_model = partial(define, name, args)
    run = run_lesson(define_model, data, seed, batch, args.epochs, args.verbose, reuse=True)
    # extra – the model and both baselines scored on the very same evaluation examples
    X_eval, y_eval = data["eval"]
    history = run["training"]["history"]
    result = dict(
        mae=mae(y_eval, run["yhat_eval"]),
        keras_mae=run["keras_mae"],
        params=run["model"].count_params(),
        persistence=mae(y_eval, persistence_forecast(X_eval, args.output)),
        centre_line=mae(y_eval, centre_line_forecast(X_eval, args.output)),
        epochs=len(history["loss"]),
        loss=history["loss"][-1],
        data_s=data_s,
        fit_s=run["training"]["fit_s"],
        evaluate_s=run["evaluate_s"],
    )
    if keep:
        X_new, y_new = data["new"]
        result.update(
            model=copy_model(run["model"]),  # the next training may train in this one
            batches=run["training"]["batches"],
            x_new=X_new[0, :, 0],
            y_new=y_new[0],
            yhat_new=run["yhat_new"][0],
        )
    return result


def train_all(args, seeds, out_dir):
    """Every training of the run (each model on each seed), then what the parent prints and saves.

    Returns the per-seed scores ({model or baseline: {"mae", ...}} per seed), the cost of
    each model and the run's timings.
    """
    import keras

    names = model_list(args)
    # 7.3 define: each model of the run, as the lesson prints it (compiled in run_lesson)
    for name in names:
        keras.backend.clear_session()
        print_definition(define(name, args))
    trainings = [
        (f"{name} seed {seed}", train_model, (name, seed, args, seed == seeds[0]))
        for seed in seeds
        for name in names
    ]
    results = iter(run_trainings(trainings, args.jobs, out_dir))
    runs = [{name: next(results) for name in names} for seed in seeds]

    # 7.4 to 7.6 for each seed, the first seed's in full
    per_seed = []
    for r, (seed, seed_runs) in enumerate(zip(seeds, runs)):
        if len(seeds) > 1:
            print(f"\n--- seed {seed} ({r + 1} of {len(seeds)}) ---")
        for name, result in seed_runs.items():
            print_results(name, result)
        scores = {
            n: {k: res[k] for k in ("mae", "keras_mae", "params")} for n, res in seed_runs.items()
        }
        for base in ("persistence", "centre_line"):
            scores[base] = dict(mae=seed_runs["stacked_lstm"][base])
        per_seed.append(scores)

    # the first seed's figures and models, written here (never in a worker)
    first = runs[0]
    labels = model_names(args)
    save_figure(
        plot_losses({labels[n]: {"batches": res["batches"]} for n, res in first.items()}),
        out_dir / "loss.png",
    )
    # 7.6: one new wave, never seen in training or evaluation
    lesson = first["stacked_lstm"]
    persistence = persistence_forecast(lesson["x_new"][None, :, None], args.output)[0]
    figure = plot_prediction(lesson["x_new"], lesson["y_new"], lesson["yhat_new"], persistence)
    save_figure(figure, out_dir / "prediction.png")
    for name, res in first.items():
        save_model(res["model"], out_dir / f"{name}.keras")

    cost = {
        name: training_cost(
            [[seed_runs[name]["fit_s"]] for seed_runs in runs],
            [seed_runs[name]["epochs"] for seed_runs in runs],
        )
        for name in names
    }
    every = [res for seed_runs in runs for res in seed_runs.values()]
    timings = {k: sum(res[f"{k}_s"] for res in every) for k in ("data", "fit", "evaluate")}
    return per_seed, cost, timings


def summarise(per_seed):
    """Mean (and std from two seeds on) over seeds of each model's and baseline's MAE."""
    summary = {}
    for name in per_seed[0]:
        values = [scores[name]["mae"] for scores in per_seed]
        stats = mean_std(values)
        summary[name] = {f"mae_{key}": value for key, value in stats.items()}
        summary[name]["mae_per_seed"] = values
        if "keras_mae" in per_seed[0][name]:
            summary[name]["keras_loss_per_seed"] = [s[name]["keras_mae"] for s in per_seed]
            summary[name]["params"] = per_seed[0][name]["params"]
    return summary


def report(summary, n_seeds, names=NAMES, cost=None):
    """The one results table (with each model's fit seconds and epochs), and who wins."""
    lstm = summary["stacked_lstm"]["mae_mean"]
    cost = cost or {}
    rows = []
    for name, s in summary.items():
        row = {"model": names[name], "params": f"{s['params']:,}" if "params" in s else "-"}
        row["MAE"] = s["mae_mean"]
        if n_seeds > 1:
            row["± std"] = s["mae_std"]
        change = 100 * (lstm / s["mae_mean"] - 1)
        vs = f"{abs(change):.0f}% {'lower' if change < 0 else 'higher'}"
        row["stacked LSTM's MAE vs this"] = "-" if name == "stacked_lstm" else vs
        row["fit s"] = f"{cost[name]['fit_s']:.1f}" if name in cost else "-"
        row["epochs"] = cost[name]["epochs"] if name in cost else "-"
        rows.append(row)
    seeds = f" (mean over {n_seeds} seeds)" if n_seeds > 1 else ""
    print(f"\nResults: MAE on the same fresh evaluation examples{seeds}")
    print_table(rows, list(rows[0]))
    for base in ("persistence", "centre_line"):
        other = summary[base]["mae_mean"]
        verdict = "beats" if lstm < other else "does NOT beat"
        print(f"The stacked LSTM {verdict} {names[base]}: {lstm:.4f} vs {other:.4f}.")
    for other_model in ("vanilla_lstm", "many_to_many"):
        if other_model not in summary:
            continue
        other = summary[other_model]["mae_mean"]
        winner = "stacked LSTM" if lstm < other else names[other_model]
        gap = 100 * abs(lstm - other) / max(lstm, other)
        print(
            f"Against the {names[other_model]}: the {winner} has the lower MAE, "
            f"{lstm:.4f} vs {other:.4f} ({gap:.0f}% apart)."
        )
        if n_seeds > 1:
            pairs = zip(
                summary["stacked_lstm"]["mae_per_seed"], summary[other_model]["mae_per_seed"]
            )
            wins = sum(stacked < o for stacked, o in pairs)
            print(f"Seed by seed, the stacked LSTM wins {wins} of {n_seeds}.")


def plot_mae_bars(summary):
    """extra – one bar per model or baseline (mean MAE, with the std over seeds)."""
    names = list(summary)
    means = [summary[n]["mae_mean"] for n in names]
    stds = [summary[n].get("mae_std", 0.0) for n in names]
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = ["C0" if "LSTM" in n else "grey" for n in names]
    bars = ax.bar(names, means, yerr=stds, capsize=4, color=colors)
    ax.bar_label(bars, fmt="%.4f")
    ax.set(title="Evaluation MAE on the same fresh examples (lower is better)", ylabel="MAE")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Beyond the lesson (extra): the 7.9 experiment, longer waves
# ---------------------------------------------------------------------------
# 7.9 asks how many more training examples and/or memory cells longer waves need. Every
# training of the grid makes its own data from its own seed, so the trainings could run
# in any order, or in parallel, and give the same numbers. A longer wave has decayed
# further towards 0.5 by its end, so raw MAE falls with the length whatever the model;
# each cell is scored as skill against the better baseline instead:
# skill = 1 - MAE / min(MAE persistence, MAE centre line). Above 0 beats both baselines,
# 1 is perfect.


def length_training(seed, length, n_train, cells, args):
    """One training of the grid: the stacked LSTM (args.layers of `cells` each) at one length."""
    import keras

    keras.backend.clear_session()  # layer names start again at lstm, lstm_1 (models stay)
    start = time.perf_counter()
    config = argparse.Namespace(**{**vars(args), "length": length, "n_train": n_train})
    data = make_data(config, random_streams(seed, STREAMS))
    data_s = time.perf_counter() - start

    def define_model():
        return stacked_lstm(length, args.output, [cells] * args.layers, dropout=args.dropout)

    print(f"7.4 fit {grid_key(length, n_train, cells)} (seed {seed})")
    run = run_lesson(
        define_model, data, seed, args.batch_size, args.epochs, args.verbose, reuse=True
    )
    X_eval, y_eval = data["eval"]
    return dict(
        seed=seed,
        length=length,
        n_train=n_train,
        cells=cells,
        params=run["model"].count_params(),
        mae=mae(y_eval, run["yhat_eval"]),
        persistence=mae(y_eval, persistence_forecast(X_eval, args.output)),
        centre_line=mae(y_eval, centre_line_forecast(X_eval, args.output)),
        data_s=data_s,
        fit_s=run["training"]["fit_s"],
        epochs=len(run["training"]["history"]["loss"]),
        evaluate_s=run["evaluate_s"],
    )


def grid_key(length, n_train, cells):
    """The name of one grid cell, e.g. "length 50, 10000 examples, 20 cells"."""
    return f"length {length}, {n_train} examples, {cells} cells"


def grid_cost(results):
    """Per grid cell: the mean fit seconds per training (and per seed), and the epochs."""
    return {
        grid_key(*cell): training_cost([[t] for t in group["fit_s"]], group["epochs"].tolist())
        for cell, group in results.groupby(["length", "n_train", "cells"])
    }


def summarise_grid(runs):
    """Per grid cell (length, n_train, cells): mean (± std) over seeds of MAE and skill."""
    runs = runs.assign(baseline=runs[["persistence", "centre_line"]].min(axis=1))
    runs["skill"] = 1 - runs["mae"] / runs["baseline"]

    def over_seeds(group):
        row = {"params": group["params"].iloc[0], "seeds_beating_both": (group["skill"] > 0).sum()}
        for column in ("mae", "skill", "persistence", "centre_line"):
            row.update({f"{column}_{k}": v for k, v in mean_std(group[column]).items()})
        return pd.Series(row)

    columns = ["params", "mae", "skill", "persistence", "centre_line"]
    keys = ["length", "n_train", "cells"]
    grid = runs.groupby(keys)[columns].apply(over_seeds).reset_index()
    return runs, grid.astype({"params": int, "seeds_beating_both": int})


def smallest_winners(grid):
    """Per length, the grid cell with the fewest parameters (then examples) beating both."""
    wins = grid[grid["skill_mean"] > 0].sort_values(["params", "n_train"])
    return {length: wins[wins["length"] == length].head(1) for length in grid["length"].unique()}


def report_grid(grid, n_seeds, cost=None):
    """The one results table: a row per length and n_train, a skill column per cell count.

    cost (from grid_cost): adds each cell's fit seconds per training and an epochs column.
    """
    rows = []
    for (length, n_train), group in grid.groupby(["length", "n_train"]):
        row = {"length": length, "examples": f"{n_train:,}"}
        row["persistence MAE"] = group["persistence_mean"].iloc[0]
        row["centre MAE"] = group["centre_line_mean"].iloc[0]
        for r in group.itertuples():
            spread = f" ± {r.skill_std:.2f}" if n_seeds > 1 else ""
            if cost:
                fit_s = cost[grid_key(length, n_train, r.cells)]["fit_s"]
                row[f"skill, {r.cells} cells (fit s)"] = (
                    f"{r.skill_mean:+.2f}{spread} ({fit_s:.1f})"
                )
            else:
                row[f"skill, {r.cells} cells"] = f"{r.skill_mean:+.2f}{spread}"
        if cost:
            row["epochs"] = cost[grid_key(length, n_train, group["cells"].iloc[0])]["epochs"]
        rows.append(row)
    seeds = f", mean ± std over {n_seeds} seeds" if n_seeds > 1 else ""
    print(f"\nResults: skill = 1 - MAE / (the better baseline's MAE){seeds}; > 0 beats both")
    print_table(rows, list(rows[0]))
    print("Smallest model that beats both baselines (mean skill > 0), per input length:")
    for length, best in smallest_winners(grid).items():
        if best.empty:
            print(f"  length {length}: none in this grid")
            continue
        b = best.to_dict("records")[0]
        print(
            f"  length {length}: {b['cells']} cells per layer ({b['params']:,} parameters), "
            f"{b['n_train']:,} examples: skill {b['skill_mean']:+.2f}, MAE {b['mae_mean']:.4f} "
            f"({b['seeds_beating_both']} of {n_seeds} seeds beat both)"
        )


def plot_skill_grid(grid):
    """Heat maps of skill: input length against cells per layer, one panel per n_train."""
    n_trains = sorted(grid["n_train"].unique())
    size = (4.5 * len(n_trains) + 2, 4.5)
    fig, axes = plt.subplots(1, len(n_trains), figsize=size, squeeze=False, layout="constrained")
    for ax, n_train in zip(axes[0], n_trains):
        table = grid[grid["n_train"] == n_train].pivot(
            index="length", columns="cells", values="skill_mean"
        )
        image = ax.imshow(table.to_numpy(), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
        for (row, col), value in np.ndenumerate(table.to_numpy()):
            color = "white" if abs(value) > 0.6 else "black"  # readable on dark and light cells
            ax.text(col, row, f"{value:+.2f}", ha="center", va="center", color=color, fontsize=9)
        ax.set_xticks(range(len(table.columns)), table.columns)
        ax.set_yticks(range(len(table.index)), table.index)
        ax.set(title=f"{n_train:,} training examples", xlabel="cells per LSTM layer")
    axes[0][0].set_ylabel("input length (time steps)")
    fig.colorbar(
        image,
        ax=axes[0].tolist(),
        label="skill vs the better baseline (> 0 beats both; colour stops at -1)",
    )
    fig.suptitle("Longer waves: the stacked LSTM's skill (blue: beats both baselines)")
    return fig


def run_length_experiment(args, seeds, out_dir, record):
    """--experiment length: the whole grid, its table, figure and metrics.json."""
    grid_keys = itertools.product(seeds, args.lengths, args.n_trains, args.cells)
    trainings = [
        (
            f"{grid_key(length, n_train, cells)}, seed {seed}",
            length_training,
            (seed, length, n_train, cells, args),
        )
        for seed, length, n_train, cells in grid_keys
    ]
    results = pd.DataFrame(run_trainings(trainings, args.jobs, out_dir))
    # the cost and timings apart from the scores: one place for each
    cost = grid_cost(results)
    timings = {k: round(results[f"{k}_s"].sum(), 3) for k in ("data", "fit", "evaluate")}
    runs, grid = summarise_grid(results.drop(columns=["data_s", "fit_s", "epochs", "evaluate_s"]))
    report_grid(grid, len(seeds), cost)
    save_figure(plot_skill_grid(grid), out_dir / "length_experiment.png")
    winners = smallest_winners(grid)
    record.update(
        data="generated: random damped sine waves (period 10-20, decay 0.01-0.1)",
        timings_s=timings,
        cost=cost,
        metrics=dict(
            grid=json.loads(grid.to_json(orient="records")),
            smallest_beating_both={
                str(length): json.loads(best.to_json(orient="records"))[0] if len(best) else None
                for length, best in winners.items()
            },
            runs=json.loads(runs.to_json(orient="records")),
        ),
    )
    save_json(record, out_dir / "metrics.json")
    return 0


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def positive_int_list(text):
    """argparse type: whole numbers >= 1 separated by commas, e.g. 30,20,10 (or just 20)."""
    return [positive_int(part) for part in text.split(",")]


def dropout_rate(text):
    """argparse type: a fraction from 0 up to (not including) 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0.2, got {text!r}")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be from 0 up to (not including) 1, got {value}")
    return value


def build_parser():
    parser = ArgumentParser(
        description="Lesson 7: a stacked LSTM predicts the last points of damped sine waves.",
        formatter_class=HelpFormatter,
    )
    knobs = parser.add_argument_group("the lesson's knobs (defaults are the lesson's)")
    for option, help_text in (
        ("--length", "input time steps per wave"),
        ("--output", "points to predict after them"),
        ("--n-train", "fresh training examples"),
        ("--n-eval", "fresh evaluation examples"),
        ("--batch-size", "examples per weight update"),
        ("--epochs", "passes over the training examples"),
    ):
        key = option[2:].replace("-", "_")
        if key in QUICK:
            help_text += f" (--quick: {QUICK[key]})"
        knobs.add_argument(option, type=positive_int, default=LESSON[key], help=help_text)
    knobs.add_argument(
        "--units",
        type=positive_int_list,
        default=str(LESSON["units"]),
        help="memory cells per LSTM layer: one number for every layer, or one per layer "
        "(30,20,10 gives three layers)",
    )
    knobs.add_argument(
        "--layers",
        type=positive_int,
        default=None,
        help=f"LSTM layers (unset: {LESSON_LAYERS}, or as many as --units lists)",
    )
    knobs.add_argument(
        "--dropout", type=dropout_rate, default=0.0, help="extra – Dropout between LSTM layers"
    )
    quick = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items())
    parser.add_argument("--quick", action="store_true", help=f"a tiny run of every step: {quick}")
    parser.add_argument(
        "--demo", action="store_true", help="only the return_sequences demonstration (7.1.3)"
    )
    parser.add_argument(
        "--compare-vanilla",
        action="store_true",
        help="also train a one-layer (vanilla) LSTM on the same data and budget",
    )
    parser.add_argument(
        "--many-to-many",
        action="store_true",
        help="also train the encoder-decoder variant of 7.2.4 (one output point per time step) "
        "on the same data and budget",
    )
    experiment = parser.add_argument_group("--experiment length (7.9: longer waves)")
    experiment.add_argument(
        "--experiment",
        choices=("length",),
        default=None,
        help="run the grid below instead of the lesson: lengths x cells x examples, each "
        "scored as skill against the better baseline",
    )
    for option, default, help_text in (
        ("--lengths", "25,50,100,200", "input lengths of the grid"),
        ("--cells", "5,10,20,40", "cells per LSTM layer (every layer) of the grid"),
        ("--n-trains", "10000,30000", "training examples of the grid"),
    ):
        help_text += f" (--quick: {QUICK[option[2:].replace('-', '_')]})"
        experiment.add_argument(option, type=positive_int_list, default=default, help=help_text)
    parser.add_argument(
        "--repeats", type=positive_int, default=1, help="seeds seed..seed+N-1; report mean ± std"
    )
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="worker processes for independent trainings (--repeats, --compare-vanilla, "
        "--many-to-many, --experiment): the same numbers as 1, in less wall time when "
        "each training is long enough to pay for a worker's start (a Keras import each)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=7,
        help="seed for Python, NumPy, Keras and the data",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=Path("outputs") / Path(__file__).stem,
        help="where figures, models and metrics.json go",
    )
    parser.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="Keras's fit output: 0 silent, 1 progress bar, 2 one line per epoch",
    )
    parser.add_argument("--show", action="store_true", help="also open the figures in a window")
    return parser


def data_bytes(length, output, n_train, n_eval):
    """extra – the peak bytes one training's data needs (make_data, then fit), from its sizes.

    generate_examples(n) holds a float64 period and decay per wave and, inside
    generate_sequence, three float64 arrays of [n, length + output] at once (the sine, the
    exponent and its exp): 8 * n * (2 + 3 * steps) bytes. The evaluation set is made while
    the training set's float32 copy is kept, and fit copies the float32 training set once
    more into the backend.
    """
    steps = length + output

    def generating(n):
        return 8 * n * (2 + 3 * steps)

    float32 = 4 * steps  # bytes per example of X and y
    return max(
        generating(n_train),
        float32 * n_train + generating(n_eval),
        float32 * (n_train + n_eval + 1) + float32 * n_train,  # + the backend's copy in fit
    )


def check_data_memory(args):
    """Bad input: stop before any work if the data will not fit in the free memory.

    Each process training at once holds its own data: min(--jobs, trainings) of them.
    --experiment length: the largest grid cell's sizes.
    """
    n_seeds = args.repeats
    if args.experiment:
        length, n_train = max(args.lengths), max(args.n_trains)
        trainings = n_seeds * len(args.lengths) * len(args.n_trains) * len(args.cells)
        lower = "--n-trains, --lengths or --n-eval"
    else:
        length, n_train = args.length, args.n_train
        trainings = 0 if args.demo else n_seeds * len(model_list(args))
        lower = "--n-train, --length or --n-eval"
    if trainings:
        processes = max(1, min(args.jobs, trainings))
        if processes > 1:
            lower += " (or --jobs)"
        need = processes * data_bytes(length, args.output, n_train, args.n_eval)
        check_memory(need, lower, processes)


def parse_args(argv=None):
    args = parse_args_with_quick(build_parser(), argv, QUICK)
    if args.length < 2:
        fail(f"--length must be 2 or more (got {args.length}): a wave needs at least 2 input steps")
    if args.output >= args.length:
        got = f"got output {args.output}, length {args.length}"
        fail(f"--output must be smaller than --length ({got})")
    # one number of units for every layer, or one per layer (then it sets --layers)
    if args.layers is None:
        args.layers = len(args.units) if len(args.units) > 1 else LESSON_LAYERS
    if len(args.units) == 1:
        args.units = args.units * args.layers
    elif len(args.units) != args.layers:
        got = f"--units lists {len(args.units)} layers, --layers says {args.layers}"
        fail(f"--units and --layers disagree ({got}); give one number, or one per layer")
    if args.many_to_many and args.layers < 2:
        fail("--many-to-many needs --layers 2 or more (an encoder and a decoder LSTM)")
    if args.experiment:
        if args.demo or args.compare_vanilla or args.many_to_many:
            fail("--experiment runs its own grid: drop --demo, --compare-vanilla, --many-to-many")
        if min(args.lengths) <= args.output:
            got = f"got {min(args.lengths)}, output {args.output}"
            fail(f"every --lengths value must be larger than --output ({got})")
    check_data_memory(args)  # last, so the options it reads are checked
    return args


def run(args):
    seeds = seed_list(args)
    out_dir = prepare_out_dir(args.out_dir)
    record = run_record(args, seeds, __file__)
    print(f"Keras {record['versions']['keras']}, backend {record['backend']}")
    if args.experiment == "length":
        return run_length_experiment(args, seeds, out_dir, record)
    # 7.1.3 what return_sequences changes
    record["demo"] = run_demo(args.seed)
    if args.demo:
        record.update(timings_s=dict(data=0.0, fit=0.0, evaluate=0.0), metrics={})
        save_json(record, out_dir / "metrics.json")
        return 0

    # 7.2 the problem, drawn once
    save_figure(
        plot_sine_wave(sine_wave(100, 5), "A sine wave (5 cycles in 100 steps)"),
        out_dir / "sine_wave.png",
    )
    damped = generate_sequence(100, 10, 0.05)
    save_figure(
        plot_sine_wave(damped, "A damped sine wave (period 10, decay 0.05)"),
        out_dir / "damped_sine_wave.png",
    )
    figures = random_streams(args.seed, STREAMS)["figures"]
    save_figure(plot_examples(*generate_examples(20, 5, 5, figures)), out_dir / "examples.png")

    # 7.3 to 7.6: every model on every seed (in --jobs worker processes if asked)
    per_seed, cost, timings = train_all(args, seeds, out_dir)
    summary = summarise(per_seed)
    names = model_names(args)
    report(summary, args.repeats, names, cost)
    save_figure(
        plot_mae_bars({names[n]: s for n, s in summary.items()}), out_dir / "mae_comparison.png"
    )
    record.update(
        data="generated: random damped sine waves (period 10-20, decay 0.01-0.1)",
        timings_s={k: round(v, 3) for k, v in timings.items()},
        metrics=summary,
        cost=cost,
    )
    save_json(record, out_dir / "metrics.json")
    if args.show:
        plt.show()
    return 0


def main(argv=None):
    args = parse_args(argv)
    return run_main(run, args)


if __name__ == "__main__":
    sys.exit(main())
