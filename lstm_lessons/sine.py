"""Lesson 7's extensions (stacked_lstm_damped_sine.py): options, two baselines, the vanilla and
many-to-many LSTMs, repeats over seeds, the outputs, the 7.9 experiment on longer waves. The
script passes its lesson in (`lesson`); this module never imports the script."""

import argparse
import inspect
import itertools
import json
import time
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from keras import layers

from . import cli
from .outputs import mean_std, print_table, save_figure, save_json, save_model
from .parallel import CLUSTER_HELP, check_memory, cluster_address, run_trainings
from .training import copy_model, fit_recorded, predict_directly, reuse_compiled, training_cost

# --quick: the grid of --experiment length shrinks too (4 trainings, seconds each)
QUICK_GRID = dict(lengths="25,50", cells="5,10", n_trains="500")
DATA = "generated: random damped sine waves (period 10-20, decay 0.01-0.1)"
NAMES = {
    "vanilla_lstm": "vanilla LSTM (1 layer)",
    "many_to_many": "many-to-many LSTM (encoder-decoder)",
    "persistence": "persistence (last value)",
    "centre_line": "centre line (0.5)",
}
BASELINES = {  # the two naive forecasts of `output` points for waves X of [n, length, 1]
    "persistence": lambda X, output: np.repeat(X[:, -1, :], output, axis=1),  # the last value
    "centre_line": lambda X, output: np.full((len(X), output), 0.5, dtype="float32"),
}


# --- options ------------------------------------------------------------------


def positive_int_list(text):
    """argparse type: whole numbers >= 1 separated by commas, e.g. 30,20,10 (or just 20)."""
    return [cli.positive_int(part) for part in text.split(",")]


def build_parser(lesson, quick):
    """The options. The lesson's knobs default to `lesson` (run_lesson's own defaults)."""
    parser = cli.ArgumentParser(
        description="Lesson 7: a stacked LSTM predicts the last points of damped sine waves.",
        formatter_class=cli.HelpFormatter,
    )
    add = parser.add_argument_group("the lesson's knobs (defaults are the lesson's)").add_argument
    for key, help_text in (
        ("length", "input time steps per wave"),
        ("output", "points to predict after them"),
        ("n_train", "fresh training examples"),
        ("n_eval", "fresh evaluation examples"),
        ("batch_size", "examples per weight update"),
        ("epochs", "passes over the training examples"),
    ):
        help_text += f" (--quick: {quick[key]})" if key in quick else ""
        option = "--" + key.replace("_", "-")
        add(option, type=cli.positive_int, default=lesson[key], help=help_text)
    units = "memory cells per LSTM layer: one number, or one per layer (30,20,10: 3 layers)"
    add("--units", type=positive_int_list, default=str(lesson["units"]), help=units)
    layers_help = f"LSTM layers (unset: {lesson['n_layers']}, or as many as --units lists)"
    add("--layers", type=cli.positive_int, help=layers_help)
    add("--dropout", type=float, default=0.0, help="Dropout between the LSTM layers")
    shown = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in quick.items())
    add = parser.add_argument
    add("--quick", action="store_true", help=f"a tiny run of every step: {shown}")
    add("--demo", action="store_true", help="only the return_sequences demonstration (7.1.3)")
    also = "also train {} on the same data and budget"
    add("--compare-vanilla", action="store_true", help=also.format("a one-layer (vanilla) LSTM"))
    m2m = "the encoder-decoder variant of 7.2.4 (one output point per time step)"
    add("--many-to-many", action="store_true", help=also.format(m2m))
    grid = parser.add_argument_group("--experiment length (7.9: longer waves)")
    grid_help = "run the grid below instead of the lesson: lengths x cells x examples, each "
    grid_help += "scored as skill against the better baseline"
    grid.add_argument("--experiment", choices=("length",), help=grid_help)
    for option, default, help_text in (
        ("--lengths", "25,50,100,200", "input lengths of the grid"),
        ("--cells", "5,10,20,40", "cells per LSTM layer (every layer) of the grid"),
        ("--n-trains", "10000,30000", "training examples of the grid"),
    ):
        help_text += f" (--quick: {quick[option[2:].replace('-', '_')]})"
        grid.add_argument(option, type=positive_int_list, default=default, help=help_text)
    add("--repeats", type=cli.positive_int, default=1, help="seeds seed..seed+N-1; mean ± std")
    jobs = "worker processes for independent trainings (--repeats, --compare-vanilla, "
    jobs += "--many-to-many, --experiment): the same numbers as 1, in less wall time when "
    jobs += "each training pays for a worker's start (a Keras import each)"
    add("--jobs", type=cli.positive_int, default=1, help=jobs)
    add("--cluster", type=cluster_address, metavar="ADDRESS", help=CLUSTER_HELP)
    seed = "seed for Python, NumPy, Keras and the data"
    add("--seed", type=cli.non_negative_int, default=lesson["seed"], help=seed)
    out_dir = Path("outputs") / "stacked_lstm_damped_sine"
    add("--out-dir", type=Path, default=out_dir, help="where figures, models, metrics.json go")
    verbose = "Keras's fit output: 0 silent, 1 progress bar, 2 one line per epoch"
    add("--verbose", type=int, choices=(0, 1, 2), default=1, help=verbose)
    add("--show", action="store_true", help="also open the figures in a window")
    return parser


def parse_args(argv, run_lesson, quick):
    """The run's options, checked (bad input: one line, exit 2). The lesson's knobs default to
    run_lesson's own defaults (the lesson's configuration); quick: the script's QUICK."""
    defaults = {k: p.default for k, p in inspect.signature(run_lesson).parameters.items()}
    quick = {**quick, **QUICK_GRID}
    args = cli.parse_args_with_quick(build_parser(defaults, quick), argv, quick)
    if args.length < 2:
        cli.fail(f"--length must be 2 or more (got {args.length}): a wave needs 2 input steps")
    if args.output >= args.length:
        cli.fail(f"--output must be smaller than --length (got {args.output}, {args.length})")
    # one number of units for every layer, or one per layer (then it sets --layers)
    if args.layers is None:
        args.layers = len(args.units) if len(args.units) > 1 else defaults["n_layers"]
    if len(args.units) == 1:
        args.units = args.units * args.layers
    elif len(args.units) != args.layers:
        got = f"--units lists {len(args.units)} layers, --layers says {args.layers}"
        cli.fail(f"--units and --layers disagree ({got}); give one number, or one per layer")
    if not 0 <= args.dropout < 1:
        cli.fail(f"--dropout must be from 0 up to (not including) 1, got {args.dropout}")
    if args.many_to_many and args.layers < 2:
        cli.fail("--many-to-many needs --layers 2 or more (an encoder and a decoder LSTM)")
    if args.experiment:
        if args.demo or args.compare_vanilla or args.many_to_many:
            cli.fail("--experiment runs its own grid: drop --demo/--compare-vanilla/--many-to-many")
        if min(args.lengths) <= args.output:
            got = f"got {min(args.lengths)}, output {args.output}"
            cli.fail(f"every --lengths value must be larger than --output ({got})")
    check_data_memory(args)  # last, so the options it reads are checked
    return args


def data_bytes(length, output, n_train, n_eval):
    """The peak bytes of one training's data. Making n examples holds a float64 period and
    decay and three float64 [n, length + output] arrays (sine, exponent, exp); the
    evaluation set is made while the float32 training set is held; fit copies that again."""
    making, float32 = 8 * (2 + 3 * (length + output)), 4 * (length + output)  # per example
    held = float32 * (n_train + n_eval + 1) + float32 * n_train
    return max(making * n_train, float32 * n_train + making * n_eval, held)


def check_data_memory(args):
    """Bad input: stop before any work if the data (the grid's largest) of every process
    training at once, min(--jobs, trainings), will not fit in the free memory."""
    length, n_train, lower = args.length, args.n_train, "--n-train, --length or --n-eval"
    trainings = 0 if args.demo else args.repeats * len(model_list(args))
    if args.experiment:
        length, n_train, lower = max(args.lengths), max(args.n_trains), "--n-trains, --lengths"
        lower += " or --n-eval"
        trainings = args.repeats * len(args.lengths) * len(args.n_trains) * len(args.cells)
    if trainings:
        processes = max(1, min(args.jobs, trainings))
        lower += " (or --jobs)" if processes > 1 else ""
        need = processes * data_bytes(length, args.output, n_train, args.n_eval)
        check_memory(need, lower, processes)


# --- the run: the demonstration, the lesson, or more models and seeds -------------


def run_demo(lesson, seed=7):
    """7.1.3: print what return_sequences changes, then a stacked LSTM of 4 hidden layers.
    Returns the outputs for metrics.json. (7.3 prints the 2-layer model.)"""
    keras.backend.clear_session()  # layer names start at lstm, whatever was built before
    record = {}
    for units in (1, 2):  # LSTM(2) too, so that units and time steps can be told apart
        last_only, every_step = lesson.demo_return_sequences(units, seed)
        print(f"7.1.3 LSTM({units}) on [0.1, 0.2, 0.3]:")
        for name, out in (("False", last_only), ("True ", every_step)):
            values = out.astype(float).round(4).tolist()  # nested like the shape
            print(f"  return_sequences={name} -> shape {out.shape}: {values}")
        prefix = "" if units == 1 else f"lstm{units}_"
        record[f"{prefix}return_sequences_false"] = last_only.tolist()
        record[f"{prefix}return_sequences_true"] = every_step.tolist()
    print("False: one value for the whole sequence; True: one per time step, a 3D sequence that")
    print("another LSTM layer can read, as stacking needs. Shapes are [batch, time steps, units]:")
    print("the time axis (3) stays, the last axis is the number of units (1 or 2).\n")
    keras.backend.clear_session()
    lesson.stacked_lstm(n_layers=4).summary()
    return record


def lesson_sizes(args):
    """run_lesson's sizes from the options, or None where run_lesson cannot do the run
    (more seeds or models than the lesson's one, or dropout)."""
    if args.repeats > 1 or args.compare_vanilla or args.many_to_many or args.dropout:
        return None
    keys = ("n_train", "n_eval", "batch_size", "epochs", "length", "output", "units")
    return dict({k: getattr(args, k) for k in keys}, n_layers=args.layers)


def lesson_runs(result):
    """run_lesson's result as the run's one seed of scores, and its figures."""
    print_lstm_parameters(result["model"])
    return [{"stacked_lstm": dict(scored(result), **kept(result))}], result["figures"]


def model_list(args):
    """The models a run trains for each seed: the lesson's, then those asked for."""
    extra = ["vanilla_lstm"] * args.compare_vanilla + ["many_to_many"] * args.many_to_many
    return ["stacked_lstm", *extra]


def model_names(args):
    """The table's names; the stacked LSTM's gives its cells per layer, e.g. (20,20 cells)."""
    return dict(NAMES, stacked_lstm=f"stacked LSTM ({','.join(map(str, args.units))} cells)")


# --- the models beyond the lesson, and the baselines ------------------------------


def many_to_many(length, output, units, dropout=0.0):
    """7.2.4's variant: an encoder reads the wave into one vector, and a decoder LSTM (the
    stacked model's sizes) makes one output point per time step."""
    model = keras.Sequential([keras.Input(shape=(length, 1))], name="many_to_many")
    for n, u in enumerate(units[:-1]):  # encoder: the last keeps its last state, [batch, 20]
        model.add(layers.LSTM(u, return_sequences=n < len(units) - 2))
        if dropout:
            model.add(layers.Dropout(dropout))
    model.add(layers.RepeatVector(output))  # the same vector for each output step: [batch, 5, 20]
    model.add(layers.LSTM(units[-1], return_sequences=True))  # decoder: [batch, 5, 20]
    model.add(layers.Dense(1))  # Dense acts on the last axis, at every step: [batch, 5, 1]
    model.add(layers.Reshape((output,)))  # [batch, 5, 1] -> [batch, 5], the shape of y
    return model


def define(name, args, lesson):
    """A fresh, untrained model `name` with the run's sizes."""
    if name == "many_to_many":
        return many_to_many(args.length, args.output, args.units, args.dropout)
    if name == "vanilla_lstm":  # the lesson's extension (7.9): one LSTM layer
        model = lesson.stacked_lstm(args.length, args.output, args.units[:1])
        model.name = "vanilla_lstm"
        return model
    return lesson.stacked_lstm(args.length, args.output, args.units, dropout=args.dropout)


def print_lstm_parameters(model):
    """One line per LSTM layer: its parameters, 4·u·(i + u + 1) (4 gates of u cells, each
    weighing i inputs, u previous outputs and a bias), checked against Keras."""
    i = model.input_shape[-1]
    for layer in (layer for layer in model.layers if isinstance(layer, layers.LSTM)):
        u, count = layer.units, layer.count_params()
        formula = 4 * u * (i + u + 1)
        check = "matches Keras" if formula == count else f"but Keras says {count:,}"
        print(f"  {layer.name}: 4·{u}·({i}+{u}+1) = {formula:,} ({check})")
        i = u


def mae(y_true, y_pred):
    """Mean absolute error over every predicted point (Keras's 'mae' loss)."""
    return float(np.mean(np.abs(np.asarray(y_true) - np.asarray(y_pred))))


# --- many trainings: repeats, other models, the grid ------------------------------


def scored(run):
    """One training's scores: its MAE and both baselines' on the same evaluation examples."""
    X_eval, y_eval = run["X_eval"], run["y_eval"]
    yhat = run["yhat_eval"] if "yhat_eval" in run else predict_directly(run["model"], X_eval)
    return dict(
        mae=mae(y_eval, yhat),
        keras_mae=float(run["mae"]),
        params=run["model"].count_params(),
        **{name: mae(y_eval, f(X_eval, y_eval.shape[1])) for name, f in BASELINES.items()},
        epochs=len(run["history"]["loss"]),
        loss=run["history"]["loss"][-1],
        **{f"{step}_s": s for step, s in run["seconds"].items()},
    )


def kept(run):
    """What the first seed's figures and saved models need from a training."""
    keys = ("losses", "x_new", "y_new", "yhat_new")
    return dict({k: run[k] for k in keys}, model=copy_model(run["model"]))


def train_model(lesson, name, seed, args, keep=False):
    """One training of model `name` on seed `seed` with the run's sizes: run_lesson's steps
    and numbers (tested), without its prints and figures, in a model compiled before if any
    (reuse_compiled) and evaluated by direct calls. Returns scored()'s results."""
    print(f"7.4 fit {name} (seed {seed}) on {args.n_train:,} examples, batch {args.batch_size}")
    keras.backend.clear_session()  # layer names start again at lstm, lstm_1 (models stay)
    start, streams = time.perf_counter(), lesson.data_streams(seed)  # run_lesson's streams
    sizes = (args.n_train, args.n_eval, 1)  # training, evaluation, new examples
    (X, y), (X_eval, y_eval), (X_new, y_new) = (
        lesson.generate_examples(args.length, n, args.output, rng) for n, rng in zip(sizes, streams)
    )
    data_s = time.perf_counter() - start
    keras.utils.set_random_seed(seed)
    model = define(name, args, lesson)
    model.compile(loss=lesson.LOSS, optimizer=lesson.OPTIMIZER, **lesson.SPEED)  # run_lesson's
    model = reuse_compiled(model)
    fit = fit_recorded(model, X, y, args.epochs, args.batch_size, args.verbose)
    start = time.perf_counter()
    yhat_eval = predict_directly(model, X_eval)
    loss = keras.ops.mean(keras.losses.get(lesson.LOSS)(y_eval, yhat_eval))  # as evaluate
    seconds = dict(data=data_s, fit=fit["fit_s"], evaluate=time.perf_counter() - start)
    run = dict(model=model, mae=float(keras.ops.convert_to_numpy(loss)), seconds=seconds)
    run.update(history=fit["history"], losses=fit["batches"], yhat_eval=yhat_eval)
    run.update(X_eval=X_eval, y_eval=y_eval, x_new=X_new[0, :, 0], y_new=y_new[0])
    run["yhat_new"] = predict_directly(model, X_new)[0]
    return dict(scored(run), **(kept(run) if keep else {}))


def train_all(args, lesson, out_dir):
    """Every model on every seed (in --jobs workers if asked): the runs, and the figures."""
    names, seeds = model_list(args), cli.seed_list(args)
    for name in names:  # 7.3 define: each model of the run, as the lesson prints it
        keras.backend.clear_session()
        model = define(name, args, lesson)
        model.summary()
        print_lstm_parameters(model)
    trainings = [
        (f"{name} seed {seed}", train_model, (lesson, name, seed, args, seed == seeds[0]))
        for seed in seeds
        for name in names
    ]
    results = iter(run_trainings(trainings, args, out_dir))
    runs = [{name: next(results) for name in names} for seed in seeds]
    for r, (seed, seed_runs) in enumerate(zip(seeds, runs)):  # 7.4 to 7.6 for each seed
        if len(seeds) > 1:
            print(f"\n--- seed {seed} ({r + 1} of {len(seeds)}) ---")
        for name, res in seed_runs.items():
            fitted = f"{res['epochs']} epoch(s) in {res['fit_s']:.1f} s"
            print(f"7.4 {name}: {fitted}, last loss {res['loss']:.6f}")
            print(f"7.5 {name}: MAE {res['keras_mae']:f}")
            if "yhat_new" in res:  # the first seed's training keeps the new wave
                print(f"7.6 {name} on a new wave: expected  {res['y_new'].round(3)}")
                print(f"{'predicted':>{len(name) + 33}} {res['yhat_new'].round(3)}")
    # the first seed's figures (made here, never in a worker)
    first, labels = runs[0], model_names(args)
    figures = lesson.plot_problem(lesson.data_streams(seeds[0])[3])  # the figures' stream
    figures["loss"] = lesson.plot_losses({labels[n]: res["losses"] for n, res in first.items()})
    new_wave = (first["stacked_lstm"][k] for k in ("x_new", "y_new", "yhat_new"))
    figures["prediction"] = lesson.plot_prediction(*new_wave)
    return runs, figures


def finish(args, runs, figures, out_dir, record):
    """The results table, every figure, the first seed's models, and metrics.json."""
    names, labels = list(runs[0]), model_names(args)
    summary = {}
    for name in [*names, *BASELINES]:
        base = name in BASELINES  # scored with the stacked LSTM, on the same examples
        values = [r["stacked_lstm"][name] if base else r[name]["mae"] for r in runs]
        summary[name] = {f"mae_{k}": v for k, v in mean_std(values).items()}
        summary[name]["mae_per_seed"] = values
        if not base:
            summary[name]["keras_loss_per_seed"] = [r[name]["keras_mae"] for r in runs]
            summary[name]["params"] = runs[0][name]["params"]
    cost = {}  # per model: fit seconds per training (and per seed), epochs
    for n in names:
        cost[n] = training_cost([[r[n]["fit_s"]] for r in runs], [r[n]["epochs"] for r in runs])
    every = [res for seed_runs in runs for res in seed_runs.values()]
    timings = {k: round(sum(r[f"{k}_s"] for r in every), 3) for k in ("data", "fit", "evaluate")}
    report(summary, args.repeats, labels, cost)
    for stem, fig in figures.items():
        save_figure(fig, out_dir / f"{stem}.png")
    for name, res in runs[0].items():
        save_model(res["model"], out_dir / f"{name}.keras")
    bars = plot_mae_bars({labels[n]: s for n, s in summary.items()})
    save_figure(bars, out_dir / "mae_comparison.png")
    record.update(data=DATA, timings_s=timings, metrics=summary, cost=cost)
    save_json(record, out_dir / "metrics.json")
    if args.show:
        plt.show()
    return 0


def report(summary, n_seeds, names, cost):
    """The one results table (with each model's fit seconds and epochs), and who wins."""
    lstm, rows = summary["stacked_lstm"]["mae_mean"], []
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
    for other in [name for name in summary if name != "stacked_lstm"]:
        mean, label = summary[other]["mae_mean"], names[other]
        if other in BASELINES:
            verdict = "beats" if lstm < mean else "does NOT beat"
            print(f"The stacked LSTM {verdict} {label}: {lstm:.4f} vs {mean:.4f}.")
            continue
        winner, gap = "stacked LSTM" if lstm < mean else label, abs(lstm - mean) / max(lstm, mean)
        print(f"Against the {label}: the {winner} has the lower MAE, ", end="")
        print(f"{lstm:.4f} vs {mean:.4f} ({100 * gap:.0f}% apart).")
        if n_seeds > 1:
            pairs = zip(summary["stacked_lstm"]["mae_per_seed"], summary[other]["mae_per_seed"])
            wins = sum(a < b for a, b in pairs)
            print(f"Seed by seed, the stacked LSTM wins {wins} of {n_seeds}.")


def plot_mae_bars(summary):
    """One bar per model or baseline (mean MAE, with the std over seeds)."""
    fig, ax = plt.subplots(figsize=(7, 4), layout="tight")
    means, stds = ([s.get(f"mae_{k}", 0.0) for s in summary.values()] for k in ("mean", "std"))
    colors = ["C0" if "LSTM" in name else "grey" for name in summary]
    bars = ax.bar(list(summary), means, yerr=stds, capsize=4, color=colors)
    ax.bar_label(bars, fmt="%.4f")
    ax.set(title="Evaluation MAE on the same fresh examples (lower is better)", ylabel="MAE")
    return fig


# --- the 7.9 experiment: longer waves (docs/stacked_lstm_damped_sine.md) -------------
# skill = 1 - MAE / min(MAE persistence, MAE centre line). Above 0 beats both; 1 is perfect.

grid_key = "length {}, {} examples, {} cells".format  # (length, n_train, cells): a cell's name


def length_training(lesson, seed, length, n_train, cells, args):
    """One training of the grid: the stacked LSTM (args.layers of `cells` each) at one length."""
    sizes = dict(length=length, n_train=n_train, units=[cells] * args.layers)
    result = train_model(lesson, "stacked_lstm", seed, argparse.Namespace(**vars(args) | sizes))
    keys = ("params", "mae", *BASELINES, "data_s", "fit_s", "epochs", "evaluate_s")
    cell = dict(seed=seed, length=length, n_train=n_train, cells=cells)
    return cell | {k: result[k] for k in keys}


def summarise_grid(runs):
    """Per grid cell (length, n_train, cells): mean (± std) over seeds of MAE and skill."""
    runs = runs.assign(baseline=runs[list(BASELINES)].min(axis=1))
    runs["skill"] = 1 - runs["mae"] / runs["baseline"]

    def over_seeds(group):
        row = {"params": group["params"].iloc[0], "seeds_beating_both": (group["skill"] > 0).sum()}
        for column in ("mae", "skill", *BASELINES):
            row.update({f"{column}_{k}": v for k, v in mean_std(group[column]).items()})
        return pd.Series(row)

    columns = ["params", "mae", "skill", *BASELINES]
    grid = runs.groupby(["length", "n_train", "cells"])[columns].apply(over_seeds).reset_index()
    return runs, grid.astype({"params": int, "seeds_beating_both": int})


def smallest_winners(grid):
    """Per length, the grid cell with the fewest parameters (then examples) beating both, as
    a list of its one record (empty if none)."""
    wins = grid[grid["skill_mean"] > 0].sort_values(["params", "n_train"])
    wins = json.loads(wins.to_json(orient="records"))  # plain Python numbers, as metrics.json
    return {n: [w for w in wins if w["length"] == n][:1] for n in grid["length"].unique()}


def report_grid(grid, n_seeds, cost):
    """The one results table: a row per length and n_train, a skill (fit s) column per cell
    count (cost: grid_cost's), then the smallest model that beats both, per length."""
    rows = []
    for (length, n_train), group in grid.groupby(["length", "n_train"]):
        row = {"length": length, "examples": f"{n_train:,}"}
        row["persistence MAE"] = group["persistence_mean"].iloc[0]
        row["centre MAE"] = group["centre_line_mean"].iloc[0]
        for r in group.itertuples():
            spread = f" ± {r.skill_std:.2f}" if n_seeds > 1 else ""
            fit_s = cost[grid_key(length, n_train, r.cells)]["fit_s"]
            row[f"skill, {r.cells} cells (fit s)"] = f"{r.skill_mean:+.2f}{spread} ({fit_s:.1f})"
        row["epochs"] = cost[grid_key(length, n_train, group["cells"].iloc[0])]["epochs"]
        rows.append(row)
    seeds = f", mean ± std over {n_seeds} seeds" if n_seeds > 1 else ""
    print(f"\nResults: skill = 1 - MAE / (the better baseline's MAE){seeds}; > 0 beats both")
    print_table(rows, list(rows[0]))
    print("Smallest model that beats both baselines (mean skill > 0), per input length:")
    for length, best in smallest_winners(grid).items():
        if not best:
            print(f"  length {length}: none in this grid")
            continue
        b = best[0]
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
        cells = grid[grid["n_train"] == n_train]
        table = cells.pivot(index="length", columns="cells", values="skill_mean")
        image = ax.imshow(table.to_numpy(), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
        for (row, col), value in np.ndenumerate(table.to_numpy()):
            color = "white" if abs(value) > 0.6 else "black"  # readable on dark and light cells
            ax.text(col, row, f"{value:+.2f}", ha="center", va="center", color=color, fontsize=9)
        ax.set_xticks(range(len(table.columns)), table.columns)
        ax.set_yticks(range(len(table.index)), table.index)
        ax.set(title=f"{n_train:,} training examples", xlabel="cells per LSTM layer")
    axes[0][0].set_ylabel("input length (time steps)")
    label = "skill vs the better baseline (> 0 beats both; colour stops at -1)"
    fig.colorbar(image, ax=axes[0].tolist(), label=label)
    fig.suptitle("Longer waves: the stacked LSTM's skill (blue: beats both baselines)")
    return fig


def run_length_experiment(args, lesson, out_dir, record):
    """--experiment length: the whole grid, its table, figure and metrics.json."""
    seeds = record["seeds"]
    trainings = [
        (f"{grid_key(*cell)}, seed {seed}", length_training, (lesson, seed, *cell, args))
        for seed, *cell in itertools.product(seeds, args.lengths, args.n_trains, args.cells)
    ]
    results = pd.DataFrame(run_trainings(trainings, args, out_dir))
    cost = {}
    for cell, group in results.groupby(["length", "n_train", "cells"]):
        cost[grid_key(*cell)] = training_cost([[t] for t in group["fit_s"]], list(group["epochs"]))
    timings = {k: round(results[f"{k}_s"].sum(), 3) for k in ("data", "fit", "evaluate")}
    runs, grid = summarise_grid(results.drop(columns=["data_s", "fit_s", "epochs", "evaluate_s"]))
    report_grid(grid, len(seeds), cost)
    save_figure(plot_skill_grid(grid), out_dir / "length_experiment.png")
    metrics = dict(grid=grid, runs=runs)
    metrics = {k: json.loads(table.to_json(orient="records")) for k, table in metrics.items()}
    winners = smallest_winners(grid).items()
    metrics["smallest_beating_both"] = {str(n): best[0] if best else None for n, best in winners}
    record.update(data=DATA, timings_s=timings, cost=cost, metrics=metrics)
    save_json(record, out_dir / "metrics.json")
    return 0
