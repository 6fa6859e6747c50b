"""
Title: Bidirectional LSTM on the cumulative sum problem
Author: LSTM Lessons in Keras contributors
Date created: 2026/11/23
Last modified: 2026/11/25
Description: Label the steps where a running sum has reached a limit, with a Bidirectional LSTM.

Lesson 10 reads a sequence of random numbers in [0, 1) and, at every time step,
predicts whether their running sum has reached a limit of n_timesteps / 4. A
Bidirectional LSTM (50 units each way, outputs concatenated) feeds a Dense sigmoid
applied at every time step; it learns from 50,000 fresh sequences in one epoch.
The lesson's flow (define, compile, fit, evaluate, predict) is `run_lesson`.

Run the whole lesson with `python bidirectional_cumsum.py`, a tiny end-to-end
version with `python bidirectional_cumsum.py --quick`, and see every option with
`python bidirectional_cumsum.py --help`.

It opens with 10.1's go_backwards and merge modes on a small input (`--demo` stops
after it). Beyond the lesson ("extra –"): seeds, a figure of one example, the training
curve, a larger evaluation set (1,000 sequences; the lesson scores 100) with
whole-sequence accuracy, two baselines (the majority label at each step, a
forward-only LSTM), accuracy at each step, the lesson's suggested experiments
(`--compare-directions`, `--compare-merge-modes`, and model size against sequence
length: `--experiment size`), mean ± std over seeds (`--repeats`), the independent
trainings in parallel (`--jobs N`), each model's fit seconds and epochs, and a
metrics.json record of every run.
"""

import itertools
import json
import sys
import time
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

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
    random_streams,
    reuse_compiled,
    speed_settings,
    train_network,
    training_cost,
)

# The lesson's configuration (sections 10.3 to 10.6).
LESSON = {
    "n_timesteps": 10,
    "n_train": 50_000,  # 10.4's text says 5,000; its code, which we follow, uses 50,000
    "n_eval": 1_000,  # extra – the lesson evaluates on 100; 1,000 gives steadier figures
    "n_predict": 10,
    "batch_size": 10,
    "epochs": 1,
    "units": 50,
    "merge_mode": "concat",
}
# extra – `--quick`: every step end to end in seconds. Options given explicitly win.
# 2,000 sequences make 4 calls of 50 batches per fit: with fewer, TensorFlow sees most
# of its last calls trace a new model and warns ("retracing") when --compare-* trains
# 6 different models in one process.
QUICK = {"n_train": 2_000, "n_eval": 200}
QUICK.update(grid_n_timesteps="5,10", grid_units="5", grid_n_train="1000", grid_batch_size="50")

MERGE_MODES = ("sum", "mul", "concat", "ave")

# extra – speed settings: the only place they are set (speed_settings applies them when
# the model is compiled). Keras runs 50 batches per call into the backend, and on
# TensorFlow the LSTMs' 10-step loop is unrolled (on JAX that made training slower, so
# there it is not). The weight updates stay the same (same data, batches, model, loss
# and optimizer); what goes is the overhead around each batch. XLA (jit_compile) was
# no faster here: it spends longer compiling than it saves (benchmarks/RESULTS.md).
SPEED = dict(steps_per_execution=50, unroll=True)
# Unrolling copies the LSTM step once per time step, so compiling takes longer as the
# sequences grow: past UNROLL_MAX_TIMESTEPS steps it costs more than it saves, and the
# time loop stays a loop (measured, benchmarks/RESULTS.md). run_lesson applies speed_for.
UNROLL_MAX_TIMESTEPS = 20


def speed_for(n_timesteps):
    """SPEED for sequences of n_timesteps: unrolled only up to UNROLL_MAX_TIMESTEPS steps."""
    return dict(SPEED, unroll=SPEED["unroll"] and n_timesteps <= UNROLL_MAX_TIMESTEPS)


# ---------------------------------------------------------------------------
# 10.1 Bidirectional LSTM
# ---------------------------------------------------------------------------


def direction_and_merge_demo(n_timesteps=4, n_units=5, seed=0):
    """Run go_backwards and each merge mode on a small input; return what each emits.

    Returns (input_shape, rows), each row a dict with "layer", "output_shape" and
    "note". Nothing is trained: the point is the shape of each layer's output.
    """
    import keras
    from keras import layers

    x = np.random.default_rng(seed).random((2, n_timesteps, 1)).astype("float32")
    notes = {
        None: "reads last step first; its outputs come out in that reversed order",
        "sum": "adds the forward and backward outputs: size stays",
        "mul": "multiplies them element by element: size stays",
        "concat": "joins them side by side: the feature size doubles",
        "ave": "averages them: size stays",
    }
    rows = []
    for mode, note in notes.items():
        keras.utils.set_random_seed(seed)
        if mode is None:  # one LSTM that reads the sequence from its last step to its first
            layer = layers.LSTM(n_units, return_sequences=True, go_backwards=True)
            name = f"LSTM({n_units}, go_backwards=True)"
        else:  # a forward LSTM and a backward copy, joined by merge_mode
            layer = layers.Bidirectional(
                layers.LSTM(n_units, return_sequences=True), merge_mode=mode
            )
            name = f"Bidirectional(LSTM({n_units}), merge_mode={mode!r})"
        rows.append({"layer": name, "output_shape": tuple(layer(x).shape), "note": note})
    return x.shape, rows


def run_demo(seed=7):
    """10.1: print what go_backwards and each merge mode return; returns it for the record."""
    shape, rows = direction_and_merge_demo(seed=seed)
    print(f"10.1 what each layer returns for an input of shape {shape} (batch, time, features):")
    width = max(len(r["layer"]) for r in rows)
    for r in rows:
        print(f"  {r['layer']:<{width}} -> {str(r['output_shape']):<10}  {r['note']}")
    return [dict(r, output_shape=list(r["output_shape"])) for r in rows]


# ---------------------------------------------------------------------------
# 10.2 The cumulative sum prediction problem
# ---------------------------------------------------------------------------


def sequence_limit(n_timesteps):
    """The cut-off for the running sum: a quarter of the sequence length."""
    return n_timesteps / 4.0


def cumsum_labels(X):
    """The lesson's labels for inputs X shaped (..., n_timesteps).

    At step t: 0 if the running sum X[0] + ... + X[t] is below n_timesteps / 4, else 1.
    This is the lesson's `0 if x < limit else 1`: a sum equal to the limit gives 1.
    """
    X = np.asarray(X)
    return np.where(np.cumsum(X, axis=-1) < sequence_limit(X.shape[-1]), 0, 1)


def get_sequence(n_timesteps, rng=None):
    """One cumulative sum problem: X and y, each a flat array of n_timesteps.

    The lesson builds get_sequences from this one; here it is the other way round, so
    that many sequences come from one vectorised draw (the same problem either way).
    """
    X, y = get_sequences(1, n_timesteps, rng)
    return X.ravel(), y.ravel()


def get_sequences(n_sequences, n_timesteps, rng=None):
    """`n_sequences` cumulative sum problems of `n_timesteps` steps, shaped for an LSTM.

    rng: a NumPy Generator, an int seed, or None for fresh entropy. Returns X (float64,
    values in [0, 1)) and y (int64: zeros, then ones from the step where the running
    sum reaches the limit), both shaped (n_sequences, n_timesteps, 1).
    """
    rng = np.random.default_rng(rng)
    # create sequences of random numbers in [0, 1)
    X = rng.random((n_sequences, n_timesteps))
    # determine the class outcome for each step of each running sum
    y = cumsum_labels(X)
    # reshape input and output for the LSTM: [samples, time steps, features]
    return X.reshape(n_sequences, n_timesteps, 1), y.reshape(n_sequences, n_timesteps, 1)


# ---------------------------------------------------------------------------
# 10.3 Define and compile the model (compiled in run_lesson)
# ---------------------------------------------------------------------------


def bidirectional_lstm(n_timesteps=10, n_units=50, merge_mode="concat"):
    """The lesson's model: a Bidirectional LSTM, then a sigmoid unit at every step."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(n_timesteps, 1)),
            # One LSTM reads forward, a copy reads backward; merge_mode joins them.
            # [batch, time, 1] -> [batch, time, 2 * units] ('concat'), else [batch, time, units]
            layers.Bidirectional(
                layers.LSTM(n_units, return_sequences=True),
                merge_mode=merge_mode,
                name="bidirectional",
            ),
            # The same Dense sigmoid unit applied at each time step.
            # [batch, time, 2 * units] -> [batch, time, 1]
            # A plain Dense(1) would do the same: Dense acts on the last axis, at every
            # time step (in Keras 2 as well). TimeDistributed is kept to follow the lesson.
            layers.TimeDistributed(layers.Dense(1, activation="sigmoid"), name="time_distributed"),
        ],
        name=f"bidirectional_lstm_{merge_mode}",
    )


# 10.4 Fit the model: train_network, in the support code at the end, runs model.fit
# and records the loss and accuracy that Keras reports during the epoch.


# ---------------------------------------------------------------------------
# 10.5 Evaluate the model
# ---------------------------------------------------------------------------


def predict(model, X, chunk=10_000):
    """The model's outputs for X as a NumPy array, from direct calls on large chunks.

    A direct call gives model.predict()'s outputs (to float rounding) without its
    compiled batching loop, which each new model traces (compiles) again before its first
    batch (with many models, TensorFlow warns about that retracing).
    """
    import keras

    parts = [model(X[i : i + chunk], training=False) for i in range(0, len(X), chunk)]
    return np.concatenate([keras.ops.convert_to_numpy(part) for part in parts])


def predict_labels(model, X, chunk=10_000):
    """Threshold the sigmoid outputs at 0.5 (Keras 3 has no predict_classes)."""
    return (predict(model, X, chunk) > 0.5).astype(np.int64)


def score_labels(y_true, y_pred):
    """Per-step accuracy, whole-sequence exact-match accuracy, accuracy at each step."""
    correct = np.reshape(y_true, (len(y_true), -1)) == np.reshape(y_pred, (len(y_pred), -1))
    return {
        "per_step_accuracy": float(correct.mean()),
        "sequence_accuracy": float(correct.all(axis=1).mean()),
        "step_accuracy": correct.mean(axis=0).tolist(),
    }


def evaluate_network(model, X, y):
    """The loss (the binary cross-entropy model.evaluate reports, to float rounding) and the
    accuracies.

    Both come from one set of direct calls: model.evaluate would compile (trace) a test
    loop for each new model, and TensorFlow warns when that happens again and again.
    """
    import keras

    probs = predict(model, X)
    loss = keras.ops.mean(keras.losses.binary_crossentropy(y.astype(probs.dtype), probs))
    labels = (probs > 0.5).astype(np.int64)
    return dict(score_labels(y, labels), loss=float(keras.ops.convert_to_numpy(loss)))


# ---------------------------------------------------------------------------
# 10.6 Make predictions with the model
# ---------------------------------------------------------------------------


def prediction_lines(model, X, y):
    """The lesson's line for each new sequence (y, yhat, all steps right?) and a record."""
    yhat = predict_labels(model, X)
    lines, records = [], []
    for exp, pred in zip(y.reshape(len(y), -1), yhat.reshape(len(yhat), -1)):
        correct = bool(np.array_equal(exp, pred))
        lines.append(f"y={exp}, yhat={pred}, correct={correct}")
        records.append({"y": exp.tolist(), "yhat": pred.tolist(), "correct": correct})
    return lines, records


# ---------------------------------------------------------------------------
# 10.7 The complete example: sections 10.3 to 10.6 in one function
# ---------------------------------------------------------------------------


def run_lesson(
    define_model, data, seed, batch_size=10, epochs=1, verbose=1, summary=False, reuse=False
):
    """The lesson's complete example for one model: define, compile, fit, evaluate, predict.

    define_model: makes the model, e.g. `partial(bidirectional_lstm, 10, 50)`. data:
    (X, y) pairs from get_sequences under "train", "eval" and "new" (to predict).
    extra – reuse=True: train in an identical model compiled earlier in this run instead,
    with this new model's weights copied in: the same numbers, but TensorFlow does not
    trace (compile) it again. A later call may then retrain the model returned, so
    copy_model it to keep it. Leave reuse=False in your own code.
    To copy this function: use model.fit for train_network, model.evaluate(X, y,
    return_dict=True) for evaluate_network and model.predict for predict, and drop
    **speed_settings(...) (support code at the bottom of the file).
    """
    import keras

    X_train, y_train = data["train"]
    # define model (seeded, so each training is reproducible on its own)
    keras.utils.set_random_seed(seed)
    model = define_model()
    # compile model
    model.compile(
        loss="binary_crossentropy",
        optimizer="adam",
        metrics=["accuracy"],
        **speed_settings(model, **speed_for(model.input_shape[1])),
    )
    if summary:
        model.summary()
    if reuse:  # extra – see the docstring
        model = reuse_compiled(model)
    # 10.4 fit model
    print(f"10.4 fit {model.name} on {len(X_train):,} sequences, batch size {batch_size}")
    training = train_network(model, X_train, y_train, epochs, batch_size, verbose)
    # 10.5 evaluate model on fresh sequences (as model.evaluate would, by direct calls)
    start = time.perf_counter()
    scores = evaluate_network(model, *data["eval"])
    evaluate_s = time.perf_counter() - start
    # 10.6 make predictions
    lines, predictions = prediction_lines(model, *data["new"])
    return dict(
        model=model,
        scores=scores,
        training=training,
        evaluate_s=evaluate_s,
        lines=lines,
        predictions=predictions,
    )


# ---------------------------------------------------------------------------
# Beyond the lesson
# ---------------------------------------------------------------------------

STREAMS = ["train", "eval", "predict", "figures"]
COLUMNS = ["params", "loss", "per_step_accuracy", "sequence_accuracy"]
COST_COLUMNS = ["fit s", "epochs"]  # each model's mean fit seconds per training, its epochs
TITLES = {
    "compare_directions": "Input direction: same data, same budget",
    "compare_merge_modes": "Bidirectional merge mode: same data, same budget",
}


def forward_lstm(n_timesteps=10, n_units=50, go_backwards=False):
    """extra – baseline: the same model with one LSTM, reading forward.

    With go_backwards=True (see backward_lstm) it reads last step first, and its
    outputs come out in that reversed order. We flip them back, as the Bidirectional
    wrapper does for its backward half, so that the output at step t is scored
    against the label of step t (and has read steps t .. end).
    """
    import keras
    from keras import layers

    stack = [
        keras.Input(shape=(n_timesteps, 1)),
        # [batch, time, 1] -> [batch, time, units] (in reversed time order if go_backwards)
        layers.LSTM(n_units, return_sequences=True, go_backwards=go_backwards),
    ]
    if go_backwards:  # put the outputs back in time order
        stack.append(layers.Lambda(lambda t: keras.ops.flip(t, axis=1), name="flip_time"))
    # A sigmoid unit at each step. [batch, time, units] -> [batch, time, 1]
    stack.append(layers.TimeDistributed(layers.Dense(1, activation="sigmoid")))
    return keras.Sequential(stack, name="backward_lstm" if go_backwards else "forward_lstm")


def backward_lstm(n_timesteps=10, n_units=50):
    """extra – the lesson's go_backwards LSTM (10.1.2), its outputs put back in time order."""
    return forward_lstm(n_timesteps, n_units, go_backwards=True)


def majority_baseline(y_train):
    """extra – baseline: the majority TRAINING label at each time step (a tie gives 1).

    Returns an int array shaped (n_timesteps, 1). Labels switch from 0 to 1 once, so
    this predicts 0 for the early steps and 1 for the late ones, whatever the input.
    """
    return (np.mean(y_train, axis=0) >= 0.5).astype(np.int64)


def predict_majority(majority, n_sequences):
    """The majority baseline's labels for n_sequences sequences."""
    return np.broadcast_to(majority, (n_sequences, *majority.shape)).copy()


def lesson_data(seed, n_timesteps, n_train, n_eval, n_predict):
    """extra – the training, evaluation and prediction sets, each from its own stream.

    The streams are independent, so the evaluation set is the same for any n_train.
    """
    streams = random_streams(seed, STREAMS)
    return {
        "train": get_sequences(n_train, n_timesteps, streams["train"]),
        "eval": get_sequences(n_eval, n_timesteps, streams["eval"]),
        "new": get_sequences(n_predict, n_timesteps, streams["predict"]),
    }


def lesson_builders(args):
    """extra – the models a lesson run trains with each seed: {name: define_model}.

    "bidirectional_lstm" is the lesson's model (with --merge-mode), "forward_lstm" its
    baseline; the --compare-* options add the others. Nothing is imported or built here.
    """
    t, units = args.n_timesteps, args.units
    builders = {"bidirectional_lstm": partial(bidirectional_lstm, t, units, args.merge_mode)}
    builders["forward_lstm"] = partial(forward_lstm, t, units)
    if args.compare_directions:
        builders["backward_lstm"] = partial(backward_lstm, t, units)
    if args.compare_merge_modes:  # the lesson's model is trained once, whatever its mode
        for mode in MERGE_MODES:
            if mode != args.merge_mode:
                builders[f"bidirectional_{mode}"] = partial(bidirectional_lstm, t, units, mode)
    return builders


def train_model(define_model, seed, sizes, batch_size, epochs, verbose, summary=False, keep=False):
    """extra – one training: one model with one seed, the unit that --jobs runs in parallel.

    Draws the seed's data (lesson_data; sizes: n_timesteps, n_train, n_eval, n_predict),
    runs the lesson on it and returns plain results: run_lesson's, plus the parameter
    count (in the scores), the epochs trained, the data's seconds and the majority
    baseline of this seed's training labels. The model comes back only with keep (the
    parent saves it); this function writes no file, so it may run in a worker process.
    """
    start = time.perf_counter()
    data = lesson_data(seed, *sizes)
    data_s = time.perf_counter() - start
    result = run_lesson(define_model, data, seed, batch_size, epochs, verbose, summary, reuse=True)
    model = result.pop("model")
    result["scores"]["params"] = model.count_params()
    majority, y_eval = majority_baseline(data["train"][1]), data["eval"][1]
    result["majority_per_step"] = {
        "labels": majority.ravel().tolist(),
        "scores": score_labels(y_eval, predict_majority(majority, len(y_eval))),
    }
    epochs_trained = len(result["training"]["history"]["loss"])
    model = copy_model(model) if keep else None  # the next training may train in it
    return dict(result, data_s=data_s, epochs=epochs_trained, model=model)


def lesson_trainings(args, seeds):
    """extra – every training of a lesson run, for run_trainings: each model with each seed.

    The first seed's two lesson models come back whole, to be saved. The model summary
    is printed by the first training when it runs here (--jobs 1), else by run.
    """
    sizes = (args.n_timesteps, args.n_train, args.n_eval, args.n_predict)
    trainings = []
    for seed in seeds:
        for name, define_model in lesson_builders(args).items():
            first = seed == args.seed
            summary = first and name == "bidirectional_lstm" and args.jobs == 1
            keep = first and name in ("bidirectional_lstm", "forward_lstm")
            arguments = (define_model, seed, sizes, args.batch_size, args.epochs, args.verbose)
            trainings.append((f"{name}, seed {seed}", train_model, (*arguments, summary, keep)))
    return trainings


def model_costs(per_seed):
    """extra – each model's cost: mean fit seconds per training (and each seed's), epochs.

    per_seed: a list (one per seed) of {model name: train_model's result}.
    """
    return {
        name: training_cost(
            [[results[name]["training"]["fit_s"]] for results in per_seed],
            [results[name]["epochs"] for results in per_seed],
        )
        for name in per_seed[0]
    }


def result_tables(args):
    """extra – each printed table: {table: {row: the model name in lesson_builders}}."""
    main_name = "bidirectional_lstm"
    tables = {"metrics": {"forward_lstm": "forward_lstm", "bidirectional_lstm": main_name}}
    if args.compare_directions:
        tables["compare_directions"] = {
            "forward": "forward_lstm",
            "backward": "backward_lstm",
            "bidirectional": main_name,
        }
    if args.compare_merge_modes:
        tables["compare_merge_modes"] = {
            mode: main_name if mode == args.merge_mode else f"bidirectional_{mode}"
            for mode in MERGE_MODES
        }
    return {key: {"majority_per_step": "majority_per_step", **rows} for key, rows in tables.items()}


def report_lesson(args, results, out_dir):
    """extra – the first seed's evaluation, predictions, models and figures."""
    bi, fwd = results["bidirectional_lstm"], results["forward_lstm"]
    s = bi["scores"]
    print(
        f"\n10.5 evaluation on {args.n_eval:,} fresh sequences (seed {args.seed}): "
        f"loss {s['loss']:.4f}, per-step accuracy {s['per_step_accuracy']:.4f}, "
        f"whole-sequence accuracy {s['sequence_accuracy']:.4f}"
    )
    print("\n10.6 predictions on new sequences (yhat: sigmoid output > 0.5)")
    print("\n".join(bi["lines"]))
    save_model(bi["model"], out_dir / "bidirectional_lstm.keras")
    save_model(fwd["model"], out_dir / "forward_lstm.keras")
    curves = {f"bidirectional ({args.merge_mode})": bi, "forward": fwd}
    curves = {name: r["training"]["batches"] for name, r in curves.items()}
    plot_losses(curves, out_dir / "training_curve.png", args.batch_size, args.n_train)
    majority = results["majority_per_step"]["scores"]
    step_scores = {
        f"bidirectional LSTM ({args.merge_mode})": s["step_accuracy"],
        "forward LSTM": fwd["scores"]["step_accuracy"],
        "majority per step (train labels)": majority["step_accuracy"],
    }
    plot_step_accuracy(step_scores, out_dir / "step_accuracy.png")


def summarise(per_seed_rows):
    """extra – mean (and sample std, for 2+ seeds) of every metric, per row.

    per_seed_rows: a list (one per seed) of {row name: {metric: value}}.
    """
    summary = {}
    for name, first in per_seed_rows[0].items():
        summary[name] = {}
        for metric, value in first.items():
            if isinstance(value, list):  # step_accuracy: averaged on its own
                continue
            stats = mean_std([rows[name][metric] for rows in per_seed_rows])
            summary[name][metric] = stats["mean"]
            if "std" in stats and metric != "params":
                summary[name][metric + "_std"] = stats["std"]
    return summary


def compare_rows(per_seed_rows, metric="per_step_accuracy"):
    """extra – the bidirectional model's gain over each baseline, seed by seed."""
    out = {}
    for other in ("majority_per_step", "forward_lstm"):
        gains = [rows["bidirectional_lstm"][metric] - rows[other][metric] for rows in per_seed_rows]
        stats = mean_std(gains)
        out[other] = {"per_step": stats["mean"], "wins": sum(g > 0 for g in gains)}
        if "std" in stats:
            out[other]["per_step_std"] = stats["std"]
    return out


def table_rows(summary, costs=None):
    """extra – rows for print_table; 'mean ± std' text when there are several seeds.

    costs: {row name: model_costs' entry} for the trained models (baselines: "-").
    """
    rows = []
    for name, metrics in summary.items():
        cost = (costs or {}).get(name)
        row = {"model": name, "fit s": "-", "epochs": "-"}
        if cost:
            row.update({"fit s": f"{cost['fit_s']:.1f}", "epochs": cost["epochs"]})
        for c in COLUMNS:
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


def batch_values(batches, batch_size, n_train):
    """extra – undo Keras's running mean: the mean of each logged call of batches.

    batches: train_network's record. Keras logs the mean over the epoch so far,
    weighted by samples; the difference of two running totals gives the mean over
    the batches in between.
    """
    seen = np.minimum(np.asarray(batches["epoch_step"]) * batch_size, n_train).astype(float)
    fresh = np.r_[True, np.diff(seen) <= 0]  # a new epoch restarts the running totals
    seen_before = np.where(fresh, 0.0, np.r_[0.0, seen[:-1]])
    out = {}
    for key in ("loss", "accuracy"):
        totals = np.asarray(batches[key]) * seen
        totals_before = np.where(fresh, 0.0, np.r_[0.0, totals[:-1]])
        out[key] = (totals - totals_before) / (seen - seen_before)
    return out


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
    top.set_title(
        "One cumulative sum sequence: the label turns to 1 once the sum reaches the limit"
    )
    top.legend(loc="upper left")
    bottom.step(steps, y, "o-", where="mid", color="tab:green")
    bottom.set(yticks=[0, 1], ylim=(-0.2, 1.2), ylabel="label y[t]", xlabel="time step")
    bottom.set_xticks(steps)
    fig.tight_layout()
    save_figure(fig, path)


def plot_losses(batches, path, batch_size, n_train, n_points=20):
    """extra – the training loss and accuracy along the run, for each model.

    batches: {label: train_network's "batches" record}. Solid: a moving average of
    the value of each logged call of batches; dotted: the epoch's running mean, as
    the progress bar shows it.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, record in batches.items():
        step = np.asarray(record["step"])
        values = batch_values(record, batch_size, n_train)
        k = max(1, len(step) // n_points)
        for ax, key in zip(axes, ("loss", "accuracy")):
            smooth = np.convolve(values[key], np.ones(k) / k, mode="valid")
            line = ax.plot(step[k - 1 :], smooth, label=f"{name} (moving average)")[0]
            label = f"{name} (epoch mean so far)"
            ax.plot(step, record[key], ":", color=line.get_color(), alpha=0.8, label=label)
    axes[0].set(ylabel="binary cross-entropy", yscale="log")
    axes[1].set_ylabel("per-step accuracy")
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.set(xlabel="batches seen", title=f"Training {key}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def plot_step_accuracy(step_scores, path):
    """extra – accuracy at each time step over the evaluation set, one line per model."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, values in step_scores.items():
        steps = np.arange(1, len(values) + 1)
        ax.plot(steps, values, "o-", label=name)
    ax.set_xticks(steps)
    ax.set(xlabel="time step", ylabel="accuracy over the evaluation set")
    ax.set_title("Where along the sequence do the models err?")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def plot_comparison(summary, path, title):
    """extra – bar chart of per-step and whole-sequence accuracy (± std over seeds)."""
    x = np.arange(len(summary))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(summary) + 2), 4.5))
    for offset, key, label in (
        (-0.2, "per_step_accuracy", "per-step accuracy"),
        (0.2, "sequence_accuracy", "whole-sequence accuracy"),
    ):
        means = [row[key] for row in summary.values()]
        stds = [row.get(key + "_std", 0.0) for row in summary.values()]
        bars = ax.bar(x + offset, means, width=0.4, yerr=stds, capsize=4, label=label)
        ax.bar_label(bars, fmt="%.3f", fontsize=8, padding=2)
    ax.set_xticks(x, list(summary))
    ax.set(ylim=(0, 1.1), ylabel="accuracy on the evaluation set", title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)


# extra – 10.9's "model size against problem complexity" (--experiment size): every cell
# of a grid of sequence lengths x units x training sequences x batch sizes, with each seed.
SIZE_KEYS = ["n_timesteps", "units", "n_train", "batch_size"]
SIZE_GRID = {  # the grid's defaults, given as on the command line (--grid-n-timesteps ...)
    "n_timesteps": "5,10,20",
    "units": "5,25",
    "n_train": "4000,20000",
    "batch_size": "10,50",
}
SIZE_TARGET = 0.99  # the whole-sequence accuracy asked of a cell, on every seed
SIZE_COLUMNS = ["steps", "units", "params", "sequences", "batch", "per-step", "whole sequence"]
SIZE_COLUMNS += ["worst seed", "fit s", "epochs"]


def size_training(heading, cell, n_eval, n_predict, merge_mode, epochs, verbose):
    """extra – one training of --experiment size: one grid cell with one seed.

    cell: (seed, n_timesteps, units, n_train, batch_size). Returns (its row, its timings).
    """
    seed, t, units, n_train, batch_size = cell
    print(heading)
    define_model = partial(bidirectional_lstm, t, units, merge_mode)
    result = train_model(
        define_model, seed, (t, n_train, n_eval, n_predict), batch_size, epochs, verbose
    )
    scores, fit_s = result["scores"], result["training"]["fit_s"]
    print(
        f"  per-step accuracy {scores['per_step_accuracy']:.4f}, whole-sequence "
        f"{scores['sequence_accuracy']:.4f}, fit {fit_s:.1f} s"
    )
    row = dict(
        zip(["seed", *SIZE_KEYS], cell),
        params=scores["params"],
        per_step_accuracy=scores["per_step_accuracy"],
        sequence_accuracy=scores["sequence_accuracy"],
        fit_s=fit_s,
        epochs=result["epochs"],
    )
    return row, {"data": result["data_s"], "fit": fit_s, "evaluate": result["evaluate_s"]}


def size_experiment(args, seeds, timings, out_dir):
    """extra – train the lesson's model once per grid cell and seed; one row per training.

    Each training draws its data from its own seed's streams (lesson_data) and is seeded
    on its own (run_lesson), so the trainings run in any order, or in parallel (--jobs),
    and give the same numbers. Returns a pandas DataFrame.
    """
    import pandas as pd

    grid = [getattr(args, "grid_" + key) for key in SIZE_KEYS]  # --grid-n-timesteps, ...
    cells = list(itertools.product(seeds, *grid))
    trainings = []
    for i, cell in enumerate(cells, 1):
        heading = f"\n[{i}/{len(cells)}] seed {cell[0]}, {cell[1]} time steps, {cell[2]} units"
        name = "seed {}, {} steps, {} units, {} sequences, batch {}".format(*cell)
        options = (args.n_eval, args.n_predict, args.merge_mode, args.epochs, args.verbose)
        trainings.append((name, size_training, (heading, cell, *options)))
    rows = []
    for row, spent in run_trainings(trainings, args.jobs, out_dir):
        rows.append(row)
        for key, seconds in spent.items():
            timings[key] += seconds
    return pd.DataFrame(rows)


def size_costs(runs):
    """extra – each grid cell's cost: mean fit seconds per training (and by seed), epochs."""
    return {
        "{} steps, {} units, {} sequences, batch {}".format(*cell): training_cost(
            [[t] for t in trained["fit_s"]], trained["epochs"].tolist()
        )
        for cell, trained in runs.groupby(SIZE_KEYS)
    }


def summarise_size(runs):
    """extra – one row per grid cell: the mean, sample std (ddof=1) and worst seed."""
    return (
        runs.groupby(SIZE_KEYS)
        .agg(
            params=("params", "first"),
            per_step_accuracy=("per_step_accuracy", "mean"),
            per_step_accuracy_std=("per_step_accuracy", "std"),
            sequence_accuracy=("sequence_accuracy", "mean"),
            sequence_accuracy_std=("sequence_accuracy", "std"),
            sequence_accuracy_min=("sequence_accuracy", "min"),
            fit_s=("fit_s", "mean"),
            epochs=("epochs", "max"),
        )
        .reset_index()
    )


def records(frame):
    """extra – a DataFrame as JSON-ready dicts (ints stay ints, a missing std is None)."""
    return json.loads(frame.to_json(orient="records"))


def size_answers(summary, target=SIZE_TARGET):
    """extra – for each length, the smallest and the fastest cell reaching the target.

    A cell reaches it when its whole-sequence accuracy is >= target with every seed.
    Smallest: fewest parameters, then fewest training sequences, then the shortest fit.
    Fastest: the shortest mean fit time. Both None when no cell reached it; "best" is
    the cell with the highest mean whole-sequence accuracy either way.
    """
    answers = {}
    for t, cells in summary.groupby("n_timesteps"):
        good = cells[cells["sequence_accuracy_min"] >= target]
        ranked = {
            "smallest": good.sort_values(["params", "n_train", "fit_s"]),
            "fastest": good.sort_values("fit_s"),
            "best": cells.sort_values("sequence_accuracy", ascending=False),
        }
        answers[int(t)] = {k: records(v.head(1))[0] if len(v) else None for k, v in ranked.items()}
    return answers


def plus_minus(row, key, digits=4):
    """extra – 'mean ± std' text for a summary row (no std with one seed)."""
    std = row.get(key + "_std")
    text = f"{row[key]:.{digits}f}"
    return text if std is None or np.isnan(std) else f"{text} ± {std:.{digits}f}"


def size_table_rows(summary):
    """extra – rows for print_table, one per grid cell."""
    return [
        {
            "steps": row["n_timesteps"],
            "units": row["units"],
            "params": f"{row['params']:,}",
            "sequences": f"{row['n_train']:,}",
            "batch": row["batch_size"],
            "per-step": plus_minus(row, "per_step_accuracy"),
            "whole sequence": plus_minus(row, "sequence_accuracy", 3),
            "worst seed": f"{row['sequence_accuracy_min']:.3f}",
            "fit s": f"{row['fit_s']:.1f}",
            "epochs": row["epochs"],
        }
        for row in records(summary)
    ]


def describe_cell(cell):
    """extra – one cell of the grid in words, for the printed answers."""
    return (
        f"{cell['units']} units ({cell['params']:,} parameters), {cell['n_train']:,} "
        f"sequences, batch {cell['batch_size']}, fit {cell['fit_s']:.1f} s"
    )


def plot_size_experiment(summary, path, title, target=SIZE_TARGET):
    """extra – per-step (top) and whole-sequence accuracy (bottom) against units.

    One column per sequence length, one line per (training sequences, batch size),
    error bars: the std over seeds.
    """
    lengths, units = sorted(summary["n_timesteps"].unique()), sorted(summary["units"].unique())
    fig, axes = plt.subplots(
        2, len(lengths), figsize=(3.8 * len(lengths) + 1, 7), sharey="row", squeeze=False
    )
    for col, t in enumerate(lengths):
        of_length = summary[summary["n_timesteps"] == t]
        for (n_train, batch_size), cells in of_length.groupby(["n_train", "batch_size"]):
            for ax, key in zip(axes[:, col], ("per_step_accuracy", "sequence_accuracy")):
                ax.errorbar(
                    cells["units"],
                    cells[key],
                    yerr=cells[key + "_std"].fillna(0.0),
                    marker="o",
                    capsize=3,
                    label=f"{n_train:,} sequences, batch {batch_size}",
                )
        axes[0, col].set_title(f"{t} time steps (limit {sequence_limit(t):g})")
        axes[1, col].axhline(target, color="tab:red", ls="--", lw=1, label=f"{target:.0%}")
        axes[1, col].set_xlabel("LSTM units in each direction")
        for ax in axes[:, col]:
            ax.set_xscale("log")
            ax.set_xticks(units, [str(u) for u in units])
            ax.minorticks_off()
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("per-step accuracy")
    axes[1, 0].set_ylabel("whole-sequence accuracy")
    axes[1, -1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def run_size_experiment(args, seeds, record, out_dir):
    """extra – --experiment size: the grid's trainings, table, answers, figure and record."""
    timings = {"data": 0.0, "fit": 0.0, "evaluate": 0.0}
    runs = size_experiment(args, seeds, timings, out_dir)
    summary = summarise_size(runs)
    answers = size_answers(summary)
    how = f"mean ± std over seeds {seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else f"seed {seeds[0]}"
    print(f"\nModel size against sequence length, on {args.n_eval:,} fresh sequences ({how}):")
    print_table(size_table_rows(summary), SIZE_COLUMNS)
    print(
        f"\nThe smallest and the fastest configuration with whole-sequence accuracy >= "
        f"{SIZE_TARGET:.0%} on every seed:"
    )
    for t, answer in answers.items():
        if answer["smallest"] is None:
            best = answer["best"]
            print(
                f"  {t} steps: none in this grid; the best was {describe_cell(best)}: "
                f"{plus_minus(best, 'sequence_accuracy', 3)} whole-sequence"
            )
        else:
            print(f"  {t} steps: smallest: {describe_cell(answer['smallest'])}")
            print(f"  {t} steps: fastest:  {describe_cell(answer['fastest'])}")
    title = f"Model size against sequence length ({how})"
    plot_size_experiment(summary, out_dir / "size_experiment.png", title)
    record["data"].update(
        {key: getattr(args, "grid_" + key) for key in SIZE_KEYS},
        limit="n_timesteps / 4",
    )
    record.update(
        timings_s=timings,
        cost=size_costs(runs),
        size_target=SIZE_TARGET,
        metrics=records(summary),
        answers={str(t): answer for t, answer in answers.items()},
        per_training=records(runs),
    )
    save_json(record, out_dir / "metrics.json")
    if args.show:
        plt.show()
    return 0


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def positive_ints(text):
    """argparse type: comma-separated whole numbers >= 1, e.g. 10,20,40 (sorted, no repeats)."""
    return sorted({positive_int(part) for part in text.split(",")})


def build_parser():
    parser = ArgumentParser(
        description="Lesson 10: a Bidirectional LSTM learns the cumulative sum problem.",
        formatter_class=HelpFormatter,
    )
    for name, text in (  # the lesson's sizes: whole numbers of 1 or more
        ("n_timesteps", "time steps per sequence (2 or more); the limit is n_timesteps/4"),
        ("n_train", "fresh training sequences (one pass over them per epoch)"),
        ("n_eval", "fresh evaluation sequences (the lesson used 100)"),
        ("n_predict", "new sequences to predict and print one line each"),
        ("batch_size", "sequences per training batch"),
        ("epochs", "passes over the training sequences"),
        ("units", "LSTM units in each direction"),
    ):
        option = "--" + name.replace("_", "-")
        parser.add_argument(option, type=positive_int, default=LESSON[name], help=text)
    parser.add_argument(
        "--merge-mode",
        choices=MERGE_MODES,
        default=LESSON["merge_mode"],
        help="how the Bidirectional wrapper joins its two directions",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=7, help="seed for the data, the weights and Keras"
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=1,
        help="run with seeds seed .. seed+N-1 and report mean ± std",
    )
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="run the independent trainings (--repeats, --compare-*, --experiment size) in N "
        "worker processes; same numbers as 1, and each worker imports Keras again",
    )
    for option, text in (
        ("--demo", "only show go_backwards and the merge modes on a small input, then stop"),
        ("--compare-directions", "also train forward, backward and bidirectional models"),
        ("--compare-merge-modes", "also train the bidirectional model with each merge mode"),
        ("--show", "also open the figures in windows at the end"),
    ):
        parser.add_argument(option, action="store_true", help=text)
    parser.add_argument(
        "--experiment",
        choices=("size",),
        help="instead of the lesson's run: 'size' trains the model on every cell of the "
        "--grid-* options (model size against sequence length; add --repeats for seeds)",
    )
    for key, text in zip(
        SIZE_KEYS,
        ("sequence lengths", "LSTM units each way", "training sequences", "batch sizes"),
    ):
        parser.add_argument(
            "--grid-" + key.replace("_", "-"),
            type=positive_ints,
            default=SIZE_GRID[key],
            metavar="N,N,...",
            help=f"--experiment size: the {text} to try, comma-separated",
        )
    quick = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items())
    parser.add_argument(
        "--quick", action="store_true", help=f"tiny run of every step: {quick} unless given"
    )
    parser.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="Keras's fit output: 0 silent, 1 progress bar, 2 one line per epoch",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=Path("outputs") / Path(__file__).stem,
        help="folder for the figures, metrics.json and the .keras models",
    )
    return parser


# extra – the memory guard: get_sequences keeps X (float64) and y (int64) of each set,
# 16 bytes per time step; while it labels a set, the comparison's bool mask (1 byte per
# step) sits beside them (the float64 cumsum is freed before np.where makes y). Keras's
# fit then holds its own copies of the training set: 28 bytes per step, measured
# (1,000,000 sequences of 10 steps: 284 MB more at the peak of fit, batch 10 or 1,000).
FIT_BYTES_PER_STEP = 28


def data_memory(n_timesteps, n_train, n_eval, n_predict):
    """extra – the peak bytes of one training's data: get_sequences' arrays and fit's copies."""
    kept = 16 * n_timesteps * (n_train + n_eval + n_predict)
    labelling = 1 * n_timesteps * max(n_train, n_eval, n_predict)
    fitting = FIT_BYTES_PER_STEP * n_timesteps * n_train
    return kept + max(labelling, fitting)


def check_data_memory(args):
    """extra – stop (exit 2) before Keras is imported if the data will not fit in memory.

    Each process that trains holds one training's data at a time; with --jobs N that is
    min(N, trainings) processes at once (this one holds none while they run).
    """
    if args.experiment == "size":  # the largest cell of the grid
        sizes = (max(args.grid_n_timesteps), max(args.grid_n_train))
        trainings = args.repeats * np.prod([len(getattr(args, "grid_" + k)) for k in SIZE_KEYS])
        lower = "--grid-n-train, --grid-n-timesteps or --n-eval"
    elif args.demo:  # the demonstration trains nothing
        return
    else:
        sizes = (args.n_timesteps, args.n_train)
        trainings = args.repeats * len(lesson_builders(args))
        lower = "--n-train, --n-timesteps or --n-eval"
    processes = max(1, min(args.jobs, int(trainings)))
    if processes > 1:
        lower += " (or --jobs)"
    check_memory(processes * data_memory(*sizes, args.n_eval, args.n_predict), lower, processes)


def parse_args(argv=None):
    args = parse_args_with_quick(build_parser(), argv, QUICK)
    for option, value in (
        ("--n-timesteps", args.n_timesteps),
        ("--grid-n-timesteps", min(args.grid_n_timesteps)),
    ):
        if value < 2:
            fail(
                f"{option} must be 2 or more (got {value}): one step has no past or future to read"
            )
    check_data_memory(args)
    return args


def run(args):
    seeds = seed_list(args)
    out_dir = prepare_out_dir(args.out_dir)
    record = run_record(args, seeds, __file__)
    record["data"] = {
        "source": "generated by get_sequences: uniform random values in [0, 1)",
        "label_rule": "y[t] = 0 if X[0] + ... + X[t] < limit else 1",
        "n_timesteps": args.n_timesteps,
        "limit": sequence_limit(args.n_timesteps),
        "n_train": args.n_train,
        "n_eval": args.n_eval,
        "n_predict": args.n_predict,
    }

    if args.experiment == "size":  # extra – 10.9: model size against sequence length
        return run_size_experiment(args, seeds, record, out_dir)

    # 10.1 what go_backwards and each merge mode return
    record["demo"] = run_demo(args.seed)
    if args.demo:
        record.update(timings_s=dict(data=0.0, fit=0.0, evaluate=0.0), metrics={})
        save_json(record, out_dir / "metrics.json")
        return 0

    # 10.2 the cumulative sum prediction problem: one example
    X, y = get_sequence(args.n_timesteps, random_streams(args.seed, STREAMS)["figures"])
    print(f"\n10.2 one example sequence (limit {sequence_limit(args.n_timesteps):g}):")
    print(np.array2string(X, precision=3))
    print(y)
    plot_sequence(X, y, out_dir / "example_sequence.png")

    # 10.3 to 10.6 with each seed, the baselines and the experiments: every training is
    # independent (its own seed, its own data), so --jobs runs them in parallel
    builders = lesson_builders(args)
    if args.jobs > 1:  # a worker's output goes nowhere: show the lesson's model from here
        builders["bidirectional_lstm"]().summary()
    trained = run_trainings(lesson_trainings(args, seeds), args.jobs, out_dir)
    per_seed = [  # {model name: train_model's result}, one per seed
        dict(zip(builders, trained[i : i + len(builders)]))
        for i in range(0, len(trained), len(builders))
    ]
    timings = {"data": 0.0, "fit": 0.0, "evaluate": 0.0}
    for result in trained:
        timings["data"] += result["data_s"]
        timings["fit"] += result["training"]["fit_s"]
        timings["evaluate"] += result["evaluate_s"]
    record["cost"] = costs = model_costs(per_seed)
    tables, by_seed = result_tables(args), []  # by_seed: {table: {row: scores}} per seed
    for seed, results in zip(seeds, per_seed):
        results["majority_per_step"] = results["bidirectional_lstm"]["majority_per_step"]
        if seed == args.seed:  # figures, models and predictions: from the first seed
            report_lesson(args, results, out_dir)
            record["majority_labels_by_step"] = results["majority_per_step"]["labels"]
            record["predictions"] = results["bidirectional_lstm"]["predictions"]
        by_seed.append(
            {
                key: {row: results[name]["scores"] for row, name in rows.items()}
                for key, rows in tables.items()
            }
        )
    record["timings_s"] = timings
    rows = [tables_of_seed["metrics"] for tables_of_seed in by_seed]
    record["per_seed"] = {str(seed): rows_of_seed for seed, rows_of_seed in zip(seeds, rows)}
    record["figures_models_and_predictions_from_seed"] = args.seed

    how = f"mean ± std over seeds {seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else f"seed {seeds[0]}"
    print(f"\nResults on {args.n_eval:,} fresh evaluation sequences ({how}):")
    record["metrics"] = summarise(rows)
    print_table(table_rows(record["metrics"], costs), ["model", *COLUMNS, *COST_COLUMNS])
    record["bidirectional_vs_baselines"] = gains = compare_rows(rows)
    for other, g in gains.items():
        spread = f" ± {g['per_step_std']:.4f}" if "per_step_std" in g else ""
        print(
            f"bidirectional_lstm - {other}: per-step accuracy {g['per_step']:+.4f}{spread}; "
            f"beats it on {g['wins']} of {len(seeds)} seed(s)"
        )
    record["step_accuracy"] = {
        name: np.mean([r[name]["step_accuracy"] for r in rows], axis=0).tolist() for name in rows[0]
    }
    for key, title in TITLES.items():  # extra – the lesson's suggested experiments (10.9)
        if key in tables:
            record[key] = summary = summarise([tables_of_seed[key] for tables_of_seed in by_seed])
            print(f"\n{title} ({how}):")
            row_costs = {row: costs.get(name) for row, name in tables[key].items()}
            print_table(table_rows(summary, row_costs), ["model", *COLUMNS, *COST_COLUMNS])
            plot_comparison(summary, out_dir / f"{key}.png", f"{title} ({how})")

    save_json(record, out_dir / "metrics.json")
    if args.show:
        plt.show()
    return 0


def main(argv=None):
    args = parse_args(argv)
    return run_main(run, args)


if __name__ == "__main__":
    sys.exit(main())
