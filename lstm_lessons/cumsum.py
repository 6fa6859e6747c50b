"""Lesson 10's extensions: 10.1's demonstration, the baselines (the majority label at each
step, forward and backward LSTMs), the merge-mode and direction comparisons, repeats over
seeds, the model size experiment, and the command line around them.

The script passes itself in as `lesson` (its get_sequences, bidirectional_lstm,
compile_model, fit_model, run_lesson and sizes); nothing here imports it.
"""

import itertools
import json
import time
from functools import partial
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from keras import layers

from .cli import (
    ArgumentParser,
    HelpFormatter,
    fail,
    non_negative_int,
    parse_args_with_quick,
    positive_int,
    run_main,
    seed_list,
)
from .outputs import (
    mean_std,
    prepare_out_dir,
    print_table,
    run_record,
    save_figure,
    save_json,
    save_model,
)
from .parallel import check_memory, run_trainings
from .training import copy_model, ctrl_c_callback, random_streams, reuse_compiled, training_cost

MERGE_MODES = ("sum", "mul", "concat", "ave")
STREAMS = ["train", "eval", "predict", "figures"]  # run_lesson's order of the seed's streams
COLUMNS = ["model", "params", "loss", "per_step_accuracy", "sequence_accuracy", "fit s", "epochs"]
TITLES = {
    "compare_directions": "Input direction: same data, same budget",
    "compare_merge_modes": "Bidirectional merge mode: same data, same budget",
}
# --experiment size (10.9: model size against problem complexity): every cell of a grid
# of sequence lengths x units x training sequences x batch sizes, with each seed.
SIZE_KEYS = ["n_timesteps", "units", "n_train", "batch_size"]
SIZE_GRID = {
    "n_timesteps": "5,10,20",
    "units": "5,25",
    "n_train": "4000,20000",
    "batch_size": "10,50",
}
# --quick's grid. 1,000 sequences in batches of 50 make 20 batches per fit.
QUICK_GRID = dict(
    grid_n_timesteps="5,10", grid_units="5", grid_n_train="1000", grid_batch_size="50"
)
SIZE_TARGET = 0.99  # the whole-sequence accuracy asked of a cell, on every seed


# ---------------------------------------------------------------------------
# 10.1: what go_backwards and each merge mode return
# ---------------------------------------------------------------------------


def direction_and_merge_demo(n_timesteps=4, n_units=5, seed=0):
    """Run go_backwards and each merge mode on a small input; nothing is trained.

    Returns (input shape, rows), each row a dict with "layer", "output_shape" and "note".
    """
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
        lstm = layers.LSTM(n_units, return_sequences=True, go_backwards=mode is None)
        if mode is None:  # one LSTM that reads the sequence from its last step to its first
            layer, name = lstm, f"LSTM({n_units}, go_backwards=True)"
        else:  # a forward LSTM and a backward copy, joined by merge_mode
            layer = layers.Bidirectional(lstm, merge_mode=mode)
            name = f"Bidirectional(LSTM({n_units}), merge_mode={mode!r})"
        rows.append({"layer": name, "output_shape": list(layer(x).shape), "note": note})
    return x.shape, rows


def run_demo(seed):
    """Print what go_backwards and each merge mode return; returns the rows for the record."""
    shape, rows = direction_and_merge_demo(seed=seed)
    print(f"10.1 what each layer returns for an input of shape {shape} (batch, time, features):")
    width = max(len(r["layer"]) for r in rows)
    for r in rows:
        print(f"  {r['layer']:<{width}} -> {str(tuple(r['output_shape'])):<10}  {r['note']}")
    return rows


# ---------------------------------------------------------------------------
# Baselines and scores
# ---------------------------------------------------------------------------


def forward_lstm(n_timesteps=10, n_units=50, go_backwards=False, unroll=False):
    """Baseline: the lesson's model with one LSTM, reading forward (or backward).

    With go_backwards=True it reads the last step first and its outputs come out in that
    reversed order; they are flipped back, as the Bidirectional wrapper does for its
    backward half, so the output at step t is scored against the label of step t.
    """
    stack = [
        keras.Input(shape=(n_timesteps, 1)),
        # [batch, time, 1] -> [batch, time, units] (in reversed time order if go_backwards)
        layers.LSTM(n_units, return_sequences=True, go_backwards=go_backwards, unroll=unroll),
    ]
    if go_backwards:  # put the outputs back in time order
        stack.append(layers.Lambda(lambda t: keras.ops.flip(t, axis=1), name="flip_time"))
    # a sigmoid unit at each step: [batch, time, units] -> [batch, time, 1]
    stack.append(layers.TimeDistributed(layers.Dense(1, activation="sigmoid")))
    return keras.Sequential(stack, name="backward_lstm" if go_backwards else "forward_lstm")


def majority_baseline(y_train):
    """The majority training label at each time step (a tie gives 1), shaped (steps, 1).

    Labels switch from 0 to 1 once, so it says 0 early and 1 late, whatever the input.
    """
    return (np.mean(y_train, axis=0) >= 0.5).astype(np.int64)


def score_labels(y_true, y_pred):
    """Per-step accuracy, whole-sequence (exact match) accuracy, accuracy at each step."""
    correct = np.reshape(y_true, (len(y_true), -1)) == np.reshape(y_pred, (len(y_pred), -1))
    return {
        "per_step_accuracy": float(correct.mean()),
        "sequence_accuracy": float(correct.all(axis=1).mean()),
        "step_accuracy": correct.mean(axis=0).tolist(),
    }


def evaluate_directly(model, X, y, chunk=10_000):
    """The loss and labels of model.evaluate and model.predict, from direct calls.

    A new model's evaluate and predict each trace (compile) a function before their first
    batch, and TensorFlow warns when many models do so in one run; a direct call traces
    nothing. The loss is the mean binary cross-entropy over all the steps, where
    model.evaluate averages it batch by batch: the two differ in the last float digits.
    """
    parts = [model(X[i : i + chunk], training=False) for i in range(0, len(X), chunk)]
    probs = np.concatenate([keras.ops.convert_to_numpy(part) for part in parts])
    loss = keras.ops.mean(keras.losses.binary_crossentropy(y.astype(probs.dtype), probs))
    return float(keras.ops.convert_to_numpy(loss)), (probs > 0.5).astype(np.int64)


def train_model(lesson_fns, define_model, seed, sizes, batch_size, epochs, verbose, keep=False):
    """One training beyond the lesson's own: one model with one seed (the unit of --jobs).

    The seed's data come from the streams run_lesson draws them from, the model is
    compiled and fitted by the lesson's functions, so the lesson's model gives run_lesson's
    numbers (a test checks it). The model trains in an identical one compiled earlier in
    this process if there is one (reuse_compiled: no new tracing), and is scored by direct
    calls. Returns plain results (the model too, with keep); writes no file.
    """
    get_sequences, compile_model, fit_model = lesson_fns
    n_timesteps, n_train, n_eval = sizes
    streams = random_streams(seed, STREAMS)
    start = time.perf_counter()
    X, y = get_sequences(n_train, n_timesteps, streams["train"])
    X_eval, y_eval = get_sequences(n_eval, n_timesteps, streams["eval"])
    data_s = time.perf_counter() - start
    keras.utils.set_random_seed(seed)
    model = reuse_compiled(compile_model(define_model()))
    print(f"fit {model.name} (seed {seed}) on {n_train:,} sequences, batch size {batch_size}")
    result = fit_model(model, X, y, batch_size, epochs, [ctrl_c_callback()], verbose)
    start = time.perf_counter()
    loss, yhat = evaluate_directly(model, X_eval, y_eval)
    scores = dict(score_labels(y_eval, yhat), loss=loss, params=model.count_params())
    majority = majority_baseline(y)
    result.update(
        scores=scores,
        evaluate_s=time.perf_counter() - start,
        data_s=data_s,
        epochs=epochs,
        majority=(majority, score_labels(y_eval, np.broadcast_to(majority, y_eval.shape))),
    )
    return dict(result, model=copy_model(model) if keep else None)  # a later training may reuse it


def lesson_scores(result):
    """run_lesson's result as train_model's: its scores (evaluate's loss) and majority."""
    model, y_eval = result["model"], result["y_eval"]
    scores = dict(score_labels(y_eval, result["yhat_eval"]), params=model.count_params())
    scores["loss"] = float(result["loss"])
    return dict(result, scores=scores, data_s=0.0)


# ---------------------------------------------------------------------------
# The lesson's run: run_lesson, then the baselines and comparisons with each seed
# ---------------------------------------------------------------------------


def lesson_builders(args, lesson):
    """The models trained with each seed: {name: define_model}; the lesson's model first."""
    t, units = args.n_timesteps, args.units
    unroll = t <= lesson.UNROLL_MAX_TIMESTEPS  # as the lesson's model does
    builders = {
        "bidirectional_lstm": partial(lesson.bidirectional_lstm, t, units, args.merge_mode),
        "forward_lstm": partial(forward_lstm, t, units, unroll=unroll),
    }
    if args.compare_directions:
        builders["backward_lstm"] = partial(forward_lstm, t, units, True, unroll)
    if args.compare_merge_modes:  # the lesson's model is trained once, whatever its mode
        for mode in MERGE_MODES:
            if mode != args.merge_mode:
                builders[f"bidirectional_{mode}"] = partial(
                    lesson.bidirectional_lstm, t, units, mode
                )
    return builders


def result_tables(args):
    """Each printed table: {table: {row: the model name in lesson_builders}}."""
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


def summarise(per_seed_rows):
    """Mean (and sample std, for 2+ seeds) of every metric, per row; one dict per seed in."""
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
    """The bidirectional model's gain over each baseline, seed by seed."""
    out = {}
    for other in ("majority_per_step", "forward_lstm"):
        gains = [rows["bidirectional_lstm"][metric] - rows[other][metric] for rows in per_seed_rows]
        stats = mean_std(gains)
        out[other] = {"per_step": stats["mean"], "wins": sum(g > 0 for g in gains)}
        if "std" in stats:
            out[other]["per_step_std"] = stats["std"]
    return out


def table_rows(summary, costs):
    """Rows for print_table ('mean ± std' with several seeds); baselines cost '-'."""
    rows = []
    for name, metrics in summary.items():
        cost = costs.get(name) or {"fit_s": None, "epochs": "-"}
        row = {"model": name, "epochs": cost["epochs"], "fit s": "-"}
        if cost["fit_s"] is not None:
            row["fit s"] = f"{cost['fit_s']:.1f}"
        for c in COLUMNS[1:5]:
            if c not in metrics:
                row[c] = "n/a"
            elif c == "params":
                row[c] = f"{int(metrics[c]):,}"
            else:
                row[c] = plus_minus(metrics, c)
        rows.append(row)
    return rows


def plus_minus(row, key, digits=4):
    """'mean ± std' text for a summary row (the value alone without a std)."""
    std = row.get(key + "_std")
    text = f"{row[key]:.{digits}f}"
    return text if std is None or np.isnan(std) else f"{text} ± {std:.{digits}f}"


def run_lesson_and_baselines(args, lesson, seeds, record, out_dir):
    """run_lesson with the first seed, then every other training (--jobs may split them),
    the tables, figures, models and record."""
    sizes = (args.n_timesteps, args.n_train, args.n_eval)
    lesson_fns = (lesson.get_sequences, lesson.compile_model, lesson.fit_model)
    first = lesson.run_lesson(
        **dict(zip(["n_timesteps", "n_train", "n_eval"], sizes)),
        **{k: getattr(args, k) for k in ("n_predict", "batch_size", "epochs", "merge_mode")},
        n_units=args.units,
        seed=args.seed,
        callbacks=[ctrl_c_callback()],
        verbose=args.verbose,
    )
    for stem, fig in first["figures"].items():
        save_figure(fig, out_dir / f"{stem}.png")
    builders = lesson_builders(args, lesson)
    trainings = []
    for seed, (name, define_model) in itertools.product(seeds, builders.items()):
        if seed != args.seed or name != "bidirectional_lstm":
            keep = seed == args.seed and name == "forward_lstm"
            arguments = (lesson_fns, define_model, seed, sizes, args.batch_size, args.epochs)
            trainings.append(
                (f"{name}, seed {seed}", train_model, (*arguments, args.verbose, keep))
            )
    trained = iter(run_trainings(trainings, args.jobs, out_dir))
    per_seed = [  # {model name: its result}, one dict per seed
        {
            name: lesson_scores(first)
            if (seed, name) == (args.seed, "bidirectional_lstm")
            else next(trained)
            for name in builders
        }
        for seed in seeds
    ]
    # the majority baseline of each seed's training labels (from the forward LSTM's data)
    for results in per_seed:
        labels, scores = results["forward_lstm"]["majority"]
        results["majority_per_step"] = {"scores": scores, "labels": labels}
    timings = {"data": 0.0, "fit": 0.0, "evaluate": 0.0}
    for result in (r for results in per_seed for r in results.values() if "fit_s" in r):
        for key in timings:
            timings[key] += result[f"{key}_s"]
    record["cost"] = costs = {
        name: training_cost(
            [[results[name]["fit_s"]] for results in per_seed], [args.epochs] * len(seeds)
        )
        for name in builders
    }
    results = per_seed[0]
    bi, fwd = results["bidirectional_lstm"], results["forward_lstm"]
    save_model(bi["model"], out_dir / "bidirectional_lstm.keras")
    save_model(fwd["model"], out_dir / "forward_lstm.keras")
    curves = {f"bidirectional ({args.merge_mode})": bi["batches"], "forward": fwd["batches"]}
    plot_losses(curves, out_dir / "training_curve.png", args.batch_size, args.n_train)
    steps = {
        f"bidirectional LSTM ({args.merge_mode})": bi["scores"]["step_accuracy"],
        "forward LSTM": fwd["scores"]["step_accuracy"],
        "majority per step (train labels)": results["majority_per_step"]["scores"]["step_accuracy"],
    }
    plot_step_accuracy(steps, out_dir / "step_accuracy.png")
    record["majority_labels_by_step"] = results["majority_per_step"]["labels"].ravel().tolist()
    record["predictions"] = first["predictions"]

    tables = result_tables(args)
    by_seed = [  # {table: {row: scores}}, one per seed
        {
            key: {row: res[name]["scores"] for row, name in rows.items()}
            for key, rows in tables.items()
        }
        for res in per_seed
    ]
    record["timings_s"] = timings
    rows = [tables_of_seed["metrics"] for tables_of_seed in by_seed]
    record["per_seed"] = {str(seed): rows_of_seed for seed, rows_of_seed in zip(seeds, rows)}
    record["figures_models_and_predictions_from_seed"] = args.seed
    how = f"mean ± std over seeds {seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else f"seed {seeds[0]}"
    print(f"\nResults on {args.n_eval:,} fresh evaluation sequences ({how}):")
    record["metrics"] = summarise(rows)
    print_table(table_rows(record["metrics"], costs), COLUMNS)
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
    for key, title in TITLES.items():  # the lesson's suggested experiments (10.9)
        if key in tables:
            record[key] = summary = summarise([tables_of_seed[key] for tables_of_seed in by_seed])
            print(f"\n{title} ({how}):")
            print_table(
                table_rows(summary, {r: costs.get(n) for r, n in tables[key].items()}), COLUMNS
            )
            plot_comparison(summary, out_dir / f"{key}.png", f"{title} ({how})")


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------


def batch_values(batches, batch_size, n_train):
    """Undo Keras's running mean: (batches seen, the mean loss and accuracy of each call).

    batches: fit_model's rows of (batch index in the epoch, running loss, accuracy), one
    per call of batches. Keras reports the mean over the epoch so far, weighted by
    samples; the difference of two running totals is the mean over the batches between.
    """
    batches = np.asarray(batches, dtype=float).reshape(-1, 3)
    per_epoch = -(-n_train // batch_size)  # batches per epoch; the last may be short
    epoch_step = np.minimum(batches[:, 0] + 1, per_epoch)
    seen = np.minimum(epoch_step * batch_size, n_train)
    fresh = np.r_[True, np.diff(seen) <= 0]  # a new epoch restarts the running totals
    seen_before = np.where(fresh, 0.0, np.r_[0.0, seen[:-1]])
    out = {"step": (np.cumsum(fresh) - 1) * per_epoch + epoch_step}
    for column, key in ((1, "loss"), (2, "accuracy")):
        totals = batches[:, column] * seen
        totals_before = np.where(fresh, 0.0, np.r_[0.0, totals[:-1]])
        out[key] = (totals - totals_before) / (seen - seen_before)
        out[key + "_so_far"] = batches[:, column]
    return out


def plot_losses(curves, path, batch_size, n_train, n_points=20):
    """The training loss and accuracy along the run, one colour per model: a moving
    average of each call's value (solid), the epoch's running mean (dotted)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, batches in curves.items():
        values = batch_values(batches, batch_size, n_train)
        step, k = values["step"], max(1, len(values["step"]) // n_points)
        for ax, key in zip(axes, ("loss", "accuracy")):
            smooth = np.convolve(values[key], np.ones(k) / k, mode="valid")
            line = ax.plot(step[k - 1 :], smooth, label=f"{name} (moving average)")[0]
            label = f"{name} (epoch mean so far)"
            ax.plot(step, values[key + "_so_far"], ":", color=line.get_color(), label=label)
    axes[0].set(ylabel="binary cross-entropy", yscale="log")
    axes[1].set_ylabel("per-step accuracy")
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.set(xlabel="batches seen", title=f"Training {key}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def plot_step_accuracy(step_scores, path):
    """Accuracy at each time step over the evaluation set, one line per model."""
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
    """Bar chart of per-step and whole-sequence accuracy (± std over seeds)."""
    x = np.arange(len(summary))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(summary) + 2), 4.5))
    for offset, key in ((-0.2, "per_step_accuracy"), (0.2, "sequence_accuracy")):
        means = [row[key] for row in summary.values()]
        stds = [row.get(key + "_std", 0.0) for row in summary.values()]
        label = key.replace("_", " ").replace("sequence", "whole-sequence")
        bars = ax.bar(x + offset, means, width=0.4, yerr=stds, capsize=4, label=label)
        ax.bar_label(bars, fmt="%.3f", fontsize=8, padding=2)
    ax.set_xticks(x, list(summary))
    ax.set(ylim=(0, 1.1), ylabel="accuracy on the evaluation set", title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)


# ---------------------------------------------------------------------------
# --experiment size: model size against sequence length (10.9)
# ---------------------------------------------------------------------------


def size_training(heading, lesson_fns, define_model, cell, n_eval, epochs, verbose):
    """One training of the grid: one cell with one seed. Returns (its row, its timings).

    cell: (seed, n_timesteps, units, n_train, batch_size).
    """
    seed, t, units, n_train, batch_size = cell
    print(heading)
    result = train_model(
        lesson_fns, define_model, seed, (t, n_train, n_eval), batch_size, epochs, verbose
    )
    scores = result["scores"]
    print(
        f"  per-step accuracy {scores['per_step_accuracy']:.4f}, whole-sequence "
        f"{scores['sequence_accuracy']:.4f}, fit {result['fit_s']:.1f} s"
    )
    row = dict(zip(["seed", *SIZE_KEYS], cell), params=scores["params"], epochs=epochs)
    row.update({k: scores[k] for k in ("per_step_accuracy", "sequence_accuracy")})
    row["fit_s"] = result["fit_s"]
    return row, {"data": result["data_s"], "fit": result["fit_s"], "evaluate": result["evaluate_s"]}


def summarise_size(runs):
    """One row per grid cell: the mean, sample std (ddof=1) and worst seed."""
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
    """A DataFrame as JSON-ready dicts (ints stay ints, a missing std is None)."""
    return json.loads(frame.to_json(orient="records"))


def size_answers(summary, target=SIZE_TARGET):
    """For each length, the smallest and the fastest cell reaching the target.

    A cell reaches it when its whole-sequence accuracy is >= target with every seed.
    Smallest: fewest parameters, then fewest training sequences, then the shortest fit.
    Fastest: the shortest mean fit. Both None when no cell reached it; "best" is the cell
    with the highest mean whole-sequence accuracy either way.
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


def describe_cell(cell):
    """One cell of the grid in words, for the printed answers."""
    return (
        f"{cell['units']} units ({cell['params']:,} parameters), {cell['n_train']:,} "
        f"sequences, batch {cell['batch_size']}, fit {cell['fit_s']:.1f} s"
    )


def plot_size_experiment(summary, path, title, target=SIZE_TARGET):
    """Per-step (top) and whole-sequence accuracy (bottom) against units: one column per
    sequence length, one line per (training sequences, batch size), bars: std over seeds."""
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
        axes[0, col].set_title(f"{t} time steps (limit {t / 4:g})")
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


def run_size_experiment(args, lesson, seeds, record, out_dir):
    """Train the lesson's model once per grid cell and seed (in any order, or in parallel:
    each training draws its own seed's data and seeds itself); table, answers, figure."""
    lesson_fns = (lesson.get_sequences, lesson.compile_model, lesson.fit_model)
    cells = list(itertools.product(seeds, *[getattr(args, "grid_" + k) for k in SIZE_KEYS]))
    trainings = []
    for i, cell in enumerate(cells, 1):
        heading = f"\n[{i}/{len(cells)}] seed {cell[0]}, {cell[1]} time steps, {cell[2]} units"
        define_model = partial(lesson.bidirectional_lstm, cell[1], cell[2], args.merge_mode)
        arguments = (
            heading,
            lesson_fns,
            define_model,
            cell,
            args.n_eval,
            args.epochs,
            args.verbose,
        )
        name = "seed {}, {} steps, {} units, {} sequences, batch {}".format(*cell)
        trainings.append((name, size_training, arguments))
    timings = {"data": 0.0, "fit": 0.0, "evaluate": 0.0}
    rows = []
    for row, spent in run_trainings(trainings, args.jobs, out_dir):
        rows.append(row)
        for key, seconds in spent.items():
            timings[key] += seconds
    runs = pd.DataFrame(rows)
    summary = summarise_size(runs)
    answers = size_answers(summary)
    how = f"mean ± std over seeds {seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else f"seed {seeds[0]}"
    print(f"\nModel size against sequence length, on {args.n_eval:,} fresh sequences ({how}):")
    table = [
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
    print_table(table, list(table[0]))
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
    record["data"].update({key: getattr(args, "grid_" + key) for key in SIZE_KEYS})
    record["data"]["limit"] = "n_timesteps / 4"
    record.update(
        timings_s=timings,
        cost={
            "{} steps, {} units, {} sequences, batch {}".format(*cell): training_cost(
                [[t] for t in trained["fit_s"]], trained["epochs"].tolist()
            )
            for cell, trained in runs.groupby(SIZE_KEYS)
        },
        size_target=SIZE_TARGET,
        metrics=records(summary),
        answers={str(t): answer for t, answer in answers.items()},
        per_training=records(runs),
    )


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------


def positive_ints(text):
    """argparse type: comma-separated whole numbers >= 1, e.g. 10,20,40 (sorted, no repeats)."""
    return sorted({positive_int(part) for part in text.split(",")})


def build_parser(lesson):
    """Every option, with the lesson's sizes as defaults (the evaluation set aside)."""
    parser = ArgumentParser(
        description="Lesson 10: a Bidirectional LSTM learns the cumulative sum problem.",
        formatter_class=HelpFormatter,
    )
    for name, default, text in (  # the lesson's sizes: whole numbers of 1 or more
        ("n_timesteps", lesson.N_TIMESTEPS, "time steps per sequence (2 or more); limit n/4"),
        ("n_train", lesson.N_TRAIN, "fresh training sequences (one pass over them per epoch)"),
        ("n_eval", 1_000, f"fresh evaluation sequences (the lesson scores {lesson.N_EVAL})"),
        ("n_predict", lesson.N_PREDICT, "new sequences to predict and print one line each"),
        ("batch_size", lesson.BATCH_SIZE, "sequences per training batch"),
        ("epochs", lesson.EPOCHS, "passes over the training sequences"),
        ("units", lesson.N_UNITS, "LSTM units in each direction"),
    ):
        option = "--" + name.replace("_", "-")
        parser.add_argument(option, type=positive_int, default=default, help=text)
    parser.add_argument(
        "--merge-mode",
        choices=MERGE_MODES,
        default=lesson.MERGE_MODE,
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
        SIZE_KEYS, ("sequence lengths", "LSTM units each way", "training sequences", "batch sizes")
    ):
        parser.add_argument(
            "--grid-" + key.replace("_", "-"),
            type=positive_ints,
            default=SIZE_GRID[key],
            metavar="N,N,...",
            help=f"--experiment size: the {text} to try, comma-separated",
        )
    quick = {**lesson.QUICK, **QUICK_GRID}
    quick = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in quick.items())
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
        default=Path("outputs") / "bidirectional_cumsum",
        help="folder for the figures, metrics.json and the .keras models",
    )
    return parser


# The memory guard: get_sequences keeps X (float64) and y (int64) of each set, 16 bytes
# per time step; while it labels a set, the comparison's bool mask (1 byte per step) sits
# beside them (the float64 cumsum is freed before np.where makes y). Keras's fit then holds
# its own copies of the training set: 28 bytes per step, measured (1,000,000 sequences of
# 10 steps: 284 MB more at the peak of fit, batch 10 or 1,000).
FIT_BYTES_PER_STEP = 28


def data_memory(n_timesteps, n_train, n_eval, n_predict):
    """The peak bytes of one training's data: get_sequences' arrays and fit's copies."""
    kept = 16 * n_timesteps * (n_train + n_eval + n_predict)
    labelling = 1 * n_timesteps * max(n_train, n_eval, n_predict)
    fitting = FIT_BYTES_PER_STEP * n_timesteps * n_train
    return kept + max(labelling, fitting)


def check_data_memory(args, lesson):
    """Stop (exit 2, nothing written) if the data will not fit in memory. Each process
    that trains holds one training's data at a time: min(--jobs, trainings) processes."""
    if args.experiment == "size":  # the largest cell of the grid
        sizes = (max(args.grid_n_timesteps), max(args.grid_n_train))
        trainings = args.repeats * np.prod([len(getattr(args, "grid_" + k)) for k in SIZE_KEYS])
        lower = "--grid-n-train, --grid-n-timesteps or --n-eval"
    elif args.demo:  # the demonstration trains nothing
        return
    else:
        sizes = (args.n_timesteps, args.n_train)
        trainings = args.repeats * len(lesson_builders(args, lesson))
        lower = "--n-train, --n-timesteps or --n-eval"
    processes = max(1, min(args.jobs, int(trainings)))
    if processes > 1:
        lower += " (or --jobs)"
    check_memory(processes * data_memory(*sizes, args.n_eval, args.n_predict), lower, processes)


def parse_args(lesson, argv=None):
    """The options, checked: a bad one gets one line and exit 2 before any work."""
    args = parse_args_with_quick(build_parser(lesson), argv, {**lesson.QUICK, **QUICK_GRID})
    for option, value in (
        ("--n-timesteps", args.n_timesteps),
        ("--grid-n-timesteps", min(args.grid_n_timesteps)),
    ):
        if value < 2:
            fail(
                f"{option} must be 2 or more (got {value}): one step has no past or future to read"
            )
    check_data_memory(args, lesson)
    return args


def run(args, lesson):
    """The demonstration, then the lesson with its baselines or the size experiment."""
    seeds = seed_list(args)
    out_dir = prepare_out_dir(args.out_dir)
    record = run_record(args, seeds, "bidirectional_cumsum.py")
    record["data"] = {
        "source": "generated by get_sequences: uniform random values in [0, 1)",
        "label_rule": "y[t] = 0 if X[0] + ... + X[t] < limit else 1",
        "n_timesteps": args.n_timesteps,
        "limit": args.n_timesteps / 4.0,
        "n_train": args.n_train,
        "n_eval": args.n_eval,
        "n_predict": args.n_predict,
    }
    if args.experiment == "size":
        run_size_experiment(args, lesson, seeds, record, out_dir)
    else:
        record["demo"] = run_demo(args.seed)
        if args.demo:
            record.update(timings_s=dict(data=0.0, fit=0.0, evaluate=0.0), metrics={})
        else:
            run_lesson_and_baselines(args, lesson, seeds, record, out_dir)
    save_json(record, out_dir / "metrics.json")
    if args.show:
        plt.show()
    return 0


def main(lesson, argv=None):
    """The script's command line: lesson is the script's module (its functions and sizes)."""
    return run_main(partial(run, lesson=lesson), parse_args(lesson, argv))
