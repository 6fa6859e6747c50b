"""Lesson 10's extensions: 10.1's demonstration, the baselines, the merge-mode and direction
comparisons, repeats over seeds, the model size experiment and the memory guard. The script
passes itself in as `lesson`; nothing here imports it."""

import itertools
import json
import time
from functools import partial

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from keras import layers

from . import outputs
from .cli import seed_list
from .outputs import mean_std, print_table, save_figure, save_json, save_model
from .parallel import check_memory, run_trainings
from .training import (
    copy_model,
    ctrl_c_callback,
    fit_verbose,
    predict_directly,
    reuse_compiled,
    training_cost,
)

MERGE_MODES = ("sum", "mul", "concat", "ave")
COLUMNS = ["model", "params", "loss", "per_step_accuracy", "sequence_accuracy", "fit s", "epochs"]
TITLES = dict(compare_directions="Input direction", compare_merge_modes="Bidirectional merge mode")
# --experiment size (10.9): every cell of the grid, with each seed
SIZE_KEYS = ["n_timesteps", "units", "n_train", "batch_size"]
SIZE_GRID = dict(n_timesteps="5,10,20", units="5,25", n_train="4000,20000", batch_size="10,50")
QUICK_GRID = dict(n_timesteps="5,10", units="5", n_train="1000", batch_size="50")  # --quick's
SIZE_TARGET = 0.99  # the whole-sequence accuracy asked of a cell, on every seed


# 10.1: what go_backwards and each merge mode return
def run_demo(seed, n_timesteps=4, n_units=5):
    """Print what go_backwards and each merge mode return for a small input (nothing is
    trained); returns the rows for the record: "layer", "output_shape" and "note"."""
    x = np.random.default_rng(seed).random((2, n_timesteps, 1)).astype("float32")
    notes = {
        None: "reads last step first; its outputs come out in that reversed order",
        "sum": "adds the forward and backward outputs: size stays",
        "mul": "multiplies them element by element: size stays",
        "concat": "joins them side by side: the feature size doubles",
        "ave": "averages them: size stays",
    }
    print(f"10.1 what each layer returns for an input of shape {x.shape} (batch, time, features):")
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
        print(f"  {name:<44} -> {str(tuple(rows[-1]['output_shape'])):<10}  {note}")
    return rows


# Baselines and scores
def forward_lstm(n_timesteps=10, n_units=50, go_backwards=False, unroll=False):
    """Baseline: the lesson's model with one LSTM, reading forward (or backward: its
    outputs are flipped back to time order, as Bidirectional does for its backward half)."""
    stack = [
        keras.Input(shape=(n_timesteps, 1)),
        layers.LSTM(n_units, return_sequences=True, go_backwards=go_backwards, unroll=unroll),
    ]
    if go_backwards:
        stack.append(layers.Lambda(lambda t: keras.ops.flip(t, axis=1), name="flip_time"))
    # a sigmoid unit at each step: [batch, time, units] -> [batch, time, 1]
    stack.append(layers.TimeDistributed(layers.Dense(1, activation="sigmoid")))
    return keras.Sequential(stack, name="backward_lstm" if go_backwards else "forward_lstm")


def majority_baseline(y_train):
    """The majority training label at each time step (a tie gives 1), shaped (steps, 1)."""
    return (np.mean(y_train, axis=0) >= 0.5).astype(np.int64)


def score_labels(y_true, y_pred):
    """Per-step accuracy, whole-sequence (exact match) accuracy, accuracy at each step."""
    correct = np.reshape(y_true, (len(y_true), -1)) == np.reshape(y_pred, (len(y_pred), -1))
    return {
        "per_step_accuracy": float(correct.mean()),
        "sequence_accuracy": float(correct.all(axis=1).mean()),
        "step_accuracy": correct.mean(axis=0).tolist(),
    }


def evaluate_directly(model, X, y):
    """model.evaluate's loss (to the last float digits) and model.predict's labels, from
    direct calls, which trace nothing (see predict_directly)."""
    probs = predict_directly(model, X)
    loss = keras.ops.mean(keras.losses.binary_crossentropy(y.astype(probs.dtype), probs))
    return float(keras.ops.convert_to_numpy(loss)), (probs > 0.5).astype(np.int64)


def train_model(lesson_fns, define_model, seed, sizes, batch_size, epochs, verbose, keep=False):
    """One model with one seed (the unit of --jobs) on run_lesson's data, compiled and
    fitted as run_lesson does (lesson_fns: its data_streams, get_sequences, record_batches
    and SPEED), so the lesson's model gives run_lesson's numbers (tested)."""
    data_streams, get_sequences, record_batches, speed = lesson_fns
    n_timesteps, n_train, n_eval = sizes
    train_rng, eval_rng, *_ = data_streams(seed)
    start = time.perf_counter()
    X, y = get_sequences(n_train, n_timesteps, train_rng)
    X_eval, y_eval = get_sequences(n_eval, n_timesteps, eval_rng)
    data_s = time.perf_counter() - start
    keras.utils.set_random_seed(seed)
    model = define_model()
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"], **speed)
    model = reuse_compiled(model)
    print(f"fit {model.name} (seed {seed}) on {n_train:,} sequences, batch size {batch_size}")
    batches, start = [], time.perf_counter()
    callbacks = [record_batches(batches), ctrl_c_callback()]
    model.fit(
        X,
        y,
        epochs=epochs,
        batch_size=batch_size,
        verbose=fit_verbose(verbose),
        callbacks=callbacks,
    )
    result = {"batches": np.array(batches, ndmin=2), "fit_s": time.perf_counter() - start}
    start = time.perf_counter()
    loss, yhat = evaluate_directly(model, X_eval, y_eval)
    scores = dict(score_labels(y_eval, yhat), loss=loss, params=model.count_params())
    majority = majority_baseline(y)
    result.update(
        scores=scores,
        evaluate_s=time.perf_counter() - start,
        data_s=data_s,
        epochs=epochs,
        majority={
            "labels": majority.ravel().tolist(),
            "scores": score_labels(y_eval, np.broadcast_to(majority, y_eval.shape)),
        },
    )
    return dict(result, model=copy_model(model) if keep else None)  # a later training may reuse it


# The lesson's run: the baselines and comparisons with each seed, then run_lesson
def lesson_builders(args, lesson):
    """The models trained with each seed: {name: define_model}; the lesson's model first."""
    t, units = args.n_timesteps, args.units
    # the baselines' LSTMs unroll their time loop when the lesson's model does
    unroll = lesson.bidirectional_lstm(t, 1).get_layer("bidirectional").forward_layer.unroll
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
    bi, fwd = "bidirectional_lstm", "forward_lstm"
    tables = {"metrics": {fwd: fwd, bi: bi}}
    if args.compare_directions:
        tables["compare_directions"] = dict(forward=fwd, backward="backward_lstm", bidirectional=bi)
    if args.compare_merge_modes:
        modes = {mode: f"bidirectional_{mode}" for mode in MERGE_MODES}
        tables["compare_merge_modes"] = dict(modes, **{args.merge_mode: bi})
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
    """Rows for print_table ('mean ± std' with several seeds); a baseline has no cost."""
    rows = []
    for name, metrics in summary.items():
        cost = costs.get(name)
        row = {"model": name, "fit s": f"{cost['fit_s']:.1f}" if cost else "-"}
        row["epochs"] = cost["epochs"] if cost else "-"
        row["params"] = f"{int(metrics['params']):,}" if "params" in metrics else "n/a"
        for c in COLUMNS[2:5]:
            row[c] = plus_minus(metrics, c) if c in metrics else "n/a"
        rows.append(row)
    return rows


def plus_minus(row, key, digits=4):
    """'mean ± std' text for a summary row (the value alone without a std)."""
    std = row.get(key + "_std")
    text = f"{row[key]:.{digits}f}"
    return text if std is None or np.isnan(std) else f"{text} ± {std:.{digits}f}"


def run_lesson_and_baselines(args, lesson, seeds, record, out_dir):
    """Every model and seed through train_model (--jobs may split them), then run_lesson
    with the first seed (last: its evaluate traces one more function, and TensorFlow would
    warn if more fits followed), the tables, figures, models and record."""
    builders = lesson_builders(args, lesson)
    fns = (lesson.data_streams, lesson.get_sequences, lesson.record_batches, lesson.SPEED)
    sizes = (args.n_timesteps, args.n_train, args.n_eval)
    todo = [(seed, name) for seed in seeds for name in builders]
    todo.remove((args.seed, "bidirectional_lstm"))
    fit = (args.batch_size, args.epochs, args.verbose)
    keep = (args.seed, "forward_lstm")  # the baseline saved beside the lesson's model
    trainings = []
    for seed, name in todo:
        arguments = (fns, builders[name], seed, sizes, *fit, (seed, name) == keep)
        trainings.append((f"{name}, seed {seed}", train_model, arguments))
    results = dict(zip(todo, run_trainings(trainings, args, out_dir)))
    same = ("n_timesteps", "merge_mode", "n_train", "n_eval", "n_predict", "batch_size", "epochs")
    same = {key: getattr(args, key) for key in (*same, "seed", "verbose")}
    first = lesson.run_lesson(**same, n_units=args.units, callbacks=[ctrl_c_callback()])
    for stem, fig in first["figures"].items():
        save_figure(fig, out_dir / f"{stem}.png")
    scores = score_labels(first["y_eval"], first["yhat_eval"])  # and model.evaluate's loss
    scores.update(loss=float(first["loss"]), params=first["model"].count_params())
    results[args.seed, "bidirectional_lstm"] = dict(first, scores=scores, data_s=0.0)
    record["timings_s"] = {
        key: sum(r[key + "_s"] for r in results.values()) for key in ("data", "fit", "evaluate")
    }
    # {model name: its result} for each seed; the majority baseline from the seed's data
    per_seed = [{name: results[seed, name] for name in builders} for seed in seeds]
    for res in per_seed:
        res["majority_per_step"] = res["forward_lstm"]["majority"]
    record["cost"] = costs = {
        name: training_cost([[res[name]["fit_s"]] for res in per_seed], [args.epochs] * len(seeds))
        for name in builders
    }
    res = per_seed[0]
    bi, fwd, majority = res["bidirectional_lstm"], res["forward_lstm"], res["majority_per_step"]
    save_model(bi["model"], out_dir / "bidirectional_lstm.keras")
    save_model(fwd["model"], out_dir / "forward_lstm.keras")
    curves = {f"bidirectional ({args.merge_mode})": bi["batches"], "forward": fwd["batches"]}
    plot_losses(curves, out_dir / "training_curve.png", args.batch_size, args.n_train)
    steps = {
        f"bidirectional LSTM ({args.merge_mode})": bi["scores"]["step_accuracy"],
        "forward LSTM": fwd["scores"]["step_accuracy"],
        "majority per step (train labels)": majority["scores"]["step_accuracy"],
    }
    plot_step_accuracy(steps, out_dir / "step_accuracy.png")
    record["majority_labels_by_step"] = majority["labels"]
    record["predictions"] = first["predictions"]

    tables = result_tables(args)
    by_seed = [  # {table: {row: scores}}, one per seed
        {
            key: {row: res[name]["scores"] for row, name in rows.items()}
            for key, rows in tables.items()
        }
        for res in per_seed
    ]
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
            title = f"{title}: same data, same budget ({how})"
            print(f"\n{title}:")
            row_costs = {row: costs.get(name) for row, name in tables[key].items()}
            print_table(table_rows(summary, row_costs), COLUMNS)
            plot_comparison(summary, out_dir / f"{key}.png", title)


# Figures
def batch_values(batches, batch_size, n_train):
    """Undo Keras's running mean over the epoch (weighted by samples) in record_batches'
    rows (batch index, running loss, accuracy): the mean loss and accuracy of each call."""
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
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="tight")
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
    save_figure(fig, path)


def plot_step_accuracy(step_scores, path):
    """Accuracy at each time step over the evaluation set, one line per model."""
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="tight")
    for name, values in step_scores.items():
        steps = np.arange(1, len(values) + 1)
        ax.plot(steps, values, "o-", label=name)
    ax.set_xticks(steps)
    ax.set(xlabel="time step", ylabel="accuracy over the evaluation set")
    ax.set_title("Where along the sequence do the models err?")
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_comparison(summary, path, title):
    """Bar chart of per-step and whole-sequence accuracy (± std over seeds)."""
    x = np.arange(len(summary))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(summary) + 2), 4.5), layout="tight")
    for offset, key in ((-0.2, "per_step_accuracy"), (0.2, "sequence_accuracy")):
        means = [row[key] for row in summary.values()]
        stds = [row.get(key + "_std", 0.0) for row in summary.values()]
        label = key.replace("_", " ").replace("sequence", "whole-sequence")
        bars = ax.bar(x + offset, means, width=0.4, yerr=stds, capsize=4, label=label)
        ax.bar_label(bars, fmt="%.3f", fontsize=8, padding=2)
    ax.set_xticks(x, list(summary))
    ax.set(ylim=(0, 1.1), ylabel="accuracy on the evaluation set", title=title)
    ax.legend(loc="lower right")
    save_figure(fig, path)


# --experiment size: model size against sequence length (10.9)
def size_training(heading, lesson_fns, define_model, cell, n_eval, epochs, verbose):
    """One cell of the grid, (seed, n_timesteps, units, n_train, batch_size), trained;
    returns (its row, its timings)."""
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
    row.update({k: scores[k] for k in COLUMNS[3:5]}, fit_s=result["fit_s"])  # the accuracies
    return row, {"data": result["data_s"], "fit": result["fit_s"], "evaluate": result["evaluate_s"]}


def summarise_size(runs):
    """One row per grid cell: the mean, sample std (ddof=1) and worst seed."""
    stats = {"params": ("params", "first"), "fit_s": ("fit_s", "mean"), "epochs": ("epochs", "max")}
    for key in ("per_step_accuracy", "sequence_accuracy"):
        stats.update({key: (key, "mean"), key + "_std": (key, "std")})
    stats["sequence_accuracy_min"] = ("sequence_accuracy", "min")
    return runs.groupby(SIZE_KEYS).agg(**stats).reset_index()


def records(frame):
    """A DataFrame as JSON-ready dicts (ints stay ints, a missing std is None)."""
    return json.loads(frame.to_json(orient="records"))


def size_answers(summary, target=SIZE_TARGET):
    """For each length, the smallest and the fastest cell whose whole-sequence accuracy is
    >= target with every seed (None if none), and the best cell by mean accuracy."""
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
                label = f"{n_train:,} sequences, batch {batch_size}"
                std = cells[key + "_std"].fillna(0.0)
                ax.errorbar(cells["units"], cells[key], std, marker="o", capsize=3, label=label)
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
    lesson_fns = (lesson.data_streams, lesson.get_sequences, lesson.record_batches, lesson.SPEED)
    cells = list(itertools.product(seeds, *[getattr(args, "grid_" + k) for k in SIZE_KEYS]))
    trainings = []
    for i, cell in enumerate(cells, 1):
        heading = f"\n[{i}/{len(cells)}] seed {cell[0]}, {cell[1]} time steps, {cell[2]} units"
        define_model = partial(lesson.bidirectional_lstm, cell[1], cell[2], args.merge_mode)
        arguments = (lesson_fns, define_model, cell, args.n_eval, args.epochs, args.verbose)
        name = "seed {}, {} steps, {} units, {} sequences, batch {}".format(*cell)
        trainings.append((name, size_training, (heading, *arguments)))
    done = run_trainings(trainings, args, out_dir)  # [(row, timings)], in order
    rows = [row for row, _ in done]
    timings = {key: sum(spent[key] for _, spent in done) for key in ("data", "fit", "evaluate")}
    runs = pd.DataFrame(rows)
    summary = summarise_size(runs)
    answers = size_answers(summary)
    how = f"mean ± std over seeds {seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else f"seed {seeds[0]}"
    print(f"\nModel size against sequence length, on {args.n_eval:,} fresh sequences ({how}):")
    table = summary.assign(
        per_step=[plus_minus(row, "per_step_accuracy") for row in records(summary)],
        whole_sequence=[plus_minus(row, "sequence_accuracy", 3) for row in records(summary)],
        worst_seed=summary["sequence_accuracy_min"].map("{:.3f}".format),
        fit=summary["fit_s"].map("{:.1f}".format),
    )
    columns = SIZE_KEYS + ["params", "per_step", "whole_sequence", "worst_seed", "fit", "epochs"]
    print_table(records(table[columns]), columns)
    print(f"\nThe smallest and the fastest cell with whole-sequence accuracy >= {SIZE_TARGET:.0%}:")
    for t, answer in answers.items():
        for key in ("smallest", "fastest") if answer["smallest"] else ("best",):
            cell = answer[key]
            print(
                f"  {t} steps, {key}: {cell['units']} units ({cell['params']:,} parameters), "
                f"{cell['n_train']:,} sequences, batch {cell['batch_size']}, fit "
                f"{cell['fit_s']:.1f} s: {plus_minus(cell, 'sequence_accuracy', 3)} whole-sequence"
            )
        if not answer["smallest"]:
            print(f"  {t} steps: no cell reached it in this grid (the best is above)")
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


# fit's own copies of the training set, measured (docs/bidirectional_cumsum.md)
FIT_BYTES_PER_STEP = 28


def data_memory(n_timesteps, n_train, n_eval, n_predict):
    """The peak bytes of one training's data: get_sequences' X (float64) and y (int64) of
    each set, its bool mask while it labels one, and fit's copies."""
    kept = 16 * n_timesteps * (n_train + n_eval + n_predict)
    labelling = n_timesteps * max(n_train, n_eval, n_predict)
    fitting = FIT_BYTES_PER_STEP * n_timesteps * n_train
    return kept + max(labelling, fitting)


def check_data_memory(args):
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
        trainings = args.repeats * (2 + args.compare_directions + 3 * args.compare_merge_modes)
        lower = "--n-train, --n-timesteps or --n-eval"
    processes = max(1, min(args.jobs, int(trainings)))
    if processes > 1:
        lower += " (or --jobs)"
    check_memory(processes * data_memory(*sizes, args.n_eval, args.n_predict), lower, processes)


def run(args, lesson):
    """The demonstration, then the lesson with its baselines or the size experiment."""
    seeds = seed_list(args)
    out_dir = outputs.prepare_out_dir(args.out_dir)
    record = outputs.run_record(args, seeds, "bidirectional_cumsum.py")
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
