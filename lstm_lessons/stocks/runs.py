"""The lesson protocol's run: the lesson's steps, then one table of every network and baseline
on the same test targets, the figures and metrics.json."""

import time

import matplotlib.pyplot as plt
import numpy as np

from .. import outputs
from ..cli import seed_list
from ..training import training_cost
from .baselines import baseline_forecasts, drift_forecast, origins
from .data import data_record, describe_stock, load_stock
from .forecast import forecast_ahead
from .networks import plot_all_losses, score_splits, training_settings

LEAKS = (
    "leaks in the lesson protocol: the test data are scaled by a MinMaxScaler fitted on "
    "the test data itself, and each training day by the min/max of its {window}-day window, "
    "later days included (window normalisation); the test set is the validation data, and "
    "the chapter names its best network by ranking one run of each on the test set "
    "(visualising the results). Not a leak but a mismatch: training inputs and targets are "
    "smoothed, test ones are not (smoothing)."
)


def run_lesson_protocol(args, lesson, train):
    """The lesson's steps, the baselines, one table. train(args, stock, seeds, out_dir): the
    script's lesson steps on the run's data -> (data, figures, results per seed)."""
    t_start = time.perf_counter()
    seeds = seed_list(args)
    stock = load_stock(args, args.ticker or "AAL", lesson)  # bad data stops here
    out_dir = outputs.prepare_out_dir(args.out_dir)
    describe_stock(stock)
    print(training_settings(args))
    data, figures, results = train(args, stock, seeds, out_dir)
    for stem, figure in figures.items():
        outputs.save_figure(figure, out_dir / f"{stem}.png")
    train_size, test_size = stock["train_size"], stock["test_size"]
    splits = {
        "train": {"series": data["train_smooth"], "y": data["y_train"]},
        "test": {"series": data["test_scaled"], "y": data["y_test"]},
    }
    windows = {name: len(split["y"]) for name, split in splits.items()}
    print(f"windows: {windows['train']} train, {windows['test']} test")
    scaler = data["scaler"]

    def to_price(values):
        return scaler.inverse_transform(np.reshape(values, (-1, 1)))[:, 0]

    # the baselines, scored on exactly the networks' targets
    entries, timings = {}, {"fit": 0.0}
    baselines = baseline_forecasts(splits, lesson, args.look_back, args.foresight)
    for name, forecasts in baselines.items():
        scores = score_splits(splits, forecasts, to_price)
        entries[name] = {"kind": "baseline", "scores": {k: [v] for k, v in scores.items()}}
    # held-out errors in prices, for --forecast's intervals
    days = origins(len(data["test_scaled"]), args.look_back, args.foresight)
    truth, last = to_price(data["y_test"]), to_price(data["test_scaled"][days])
    drift = drift_forecast(last, stock["mid"][:train_size], args.foresight + 1)
    residuals = {"naive": truth - last, "drift": truth - drift}
    histories, fit_times = {}, {}
    for r in range(len(seeds)):
        for name in args.models:
            result = results[r][name]
            if r == 0:  # the first seed's model
                outputs.save_model(result.pop("model"), out_dir / f"{name}.keras")
            timings["fit"] += result["fit_s"]
            spent = fit_times.setdefault(name, {"fit_s": [[] for _ in seeds], "epochs": []})
            spent["fit_s"][r].append(result["fit_s"])
            spent["epochs"].append(result["epochs"])
            entry = entries.setdefault(
                name,
                {
                    "kind": "network",
                    "scores": {},
                    "params": result["params"],
                    "trained_on": args.loss,
                    **{k: [] for k in ("epochs_kept", "convergence_epochs", "convergence_s")},
                },
            )
            entry["epochs_kept"].append(result["epoch_kept"])
            entry["convergence_epochs"].append(result["convergence_epoch"])
            entry["convergence_s"].append(result["convergence_s"])
            histories.setdefault(name, result["history"])
            residuals.setdefault(name, []).extend(truth - to_price(result["predictions"]["test"]))
            scores = score_splits(splits, result["predictions"], to_price)
            for key, value in scores.items():
                entry["scores"].setdefault(key, []).append(value)

    # the results: one table of every network and baseline, on the same test targets
    rows = summarise(entries)
    cost = {name: training_cost(**spent) for name, spent in fit_times.items()}
    leaks = LEAKS.format(window=args.norm_window)
    print()
    print(leaks)
    print_results(rows, windows["test"], len(seeds) > 1, cost)
    verdict = naive_verdict(rows, len(seeds))
    print(verdict)
    over = f" (mean ± std over {len(seeds)} seeds)" if len(seeds) > 1 else ""
    title = f"{stock['name']}, lesson protocol: MAE per model and split{over}"
    plot_comparison(rows, list(splits), title, out_dir / "comparison.png")
    plot_all_losses(histories, "on the test set", out_dir / "losses_all.png")

    timings["total"] = time.perf_counter() - t_start
    record = outputs.run_record(args, seeds, lesson.__file__)
    record["protocol"], record["framing"] = args.protocol, args.framing
    sizes = {"train": train_size, "test": test_size}
    sizes["unused"] = len(stock["mid"]) - train_size - test_size
    record["data"] = {**data_record(stock), "split": sizes, "windows": windows}
    record["timings_s"] = timings
    record["cost"] = cost  # per network: mean fit seconds per training, epochs
    record["metrics"] = {
        row["model"]: {k: v for k, v in row.items() if k != "model"} for row in rows
    }
    record["per_seed"] = {
        name: entry["scores"] for name, entry in entries.items() if entry["kind"] == "network"
    }
    one_step = {"sma_error": data["sma_error"], "ema_error": data["ema_error"]}
    one_step["metric"] = "0.5 x MSE, one step ahead, on the smoothed training data"
    record.update(verdict=verdict, leaks=leaks, lesson_one_step=one_step)
    if args.forecast:
        epochs = {name: args.epochs for name in args.models}
        forecast = forecast_ahead(stock, args, seeds, residuals, {}, epochs, out_dir, lesson)
        record["forecast"] = forecast
    outputs.save_json(record, out_dir / "metrics.json")
    if args.show:
        plt.show()
    return 0


def summarise(results):
    """One row per model: the mean (and std, from 2 seeds) of every score; ranked by test MAE."""
    rows = []
    for name, entry in results.items():
        row = {"model": name, "kind": entry["kind"]}
        for key, values in entry["scores"].items():
            summary = outputs.mean_std(values)
            row[key] = summary["mean"]
            if "std" in summary:
                row[f"{key}_std"] = summary["std"]
        row.update({k: v for k, v in entry.items() if k not in ("kind", "scores")})
        rows.append(row)
    rows.sort(key=lambda row: row["test_mae"])
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


def print_results(rows, n_targets, with_std, cost):
    """The results table: every network and baseline on the same test targets."""
    print(f"MAE on the {n_targets} test targets (scaled units; in prices via the test scaler):")
    table = []
    for row in rows:
        spent = cost.get(row["model"])
        table.append(
            {
                "rank": row["rank"],
                "model": row["model"],
                "test MAE": row["test_mae"],
                "± std": row.get("test_mae_std", ""),
                "test MAE (price)": row["test_mae_price"],
                "train MAE": row["train_mae"],
                "params": row.get("params", ""),
                "trained on": row.get("trained_on", ""),
                "epoch kept": "/".join(str(epoch) for epoch in row.get("epochs_kept", [])),
                "conv. epoch": "/".join(str(e) for e in row.get("convergence_epochs", [])),
                "conv. s": "/".join(f"{s:.1f}" for s in row.get("convergence_s", [])),
                "fit s": f"{spent['fit_s']:.1f}" if spent else "-",
                "epochs": spent["epochs"] if spent else "-",
            }
        )
    outputs.print_table(table, [c for c in table[0] if with_std or c != "± std"])


def naive_verdict(rows, n_seeds):
    """One plain sentence: does any network beat the naive last-value baseline?"""
    naive = next(row["test_mae"] for row in rows if row["model"] == "naive")
    networks = [row for row in rows if row["kind"] == "network"]
    if not networks:
        return f"naive last-value baseline: test MAE {naive:.4f} (no networks were run)"
    best = min(networks, key=lambda row: row["test_mae"])
    scores = f"naive test MAE {naive:.4f}, best network {best['model']} {best['test_mae']:.4f}."
    over = f" (mean over {n_seeds} seeds)" if n_seeds > 1 else ""
    winners = [row["model"] for row in networks if row["test_mae"] < naive]
    if not winners:
        return f"No network beats the naive last-value baseline{over}: {scores}"
    verb = "beats" if len(winners) == 1 else "beat"
    return f"{', '.join(winners)} {verb} the naive last-value baseline{over}: {scores}"


def plot_comparison(rows, splits, title, path):
    """Grouped bars: each model's and baseline's MAE on every split it was scored on."""
    fig, ax = plt.subplots(figsize=(12, 5), layout="tight")
    positions = np.arange(len(rows))
    width = 0.8 / len(splits)
    for k, split in enumerate(splits):
        means = [row[f"{split}_mae"] for row in rows]
        stds = [row.get(f"{split}_mae_std", 0.0) for row in rows]
        left = positions - 0.4 + width * (k + 0.5)
        ax.bar(left, means, width, yerr=stds if any(stds) else None, capsize=3, label=split)
    ax.set_xticks(positions, [row["model"] for row in rows], rotation=20)
    ax.set(ylabel="MAE (scaled units)", title=title)
    ax.legend()
    outputs.save_figure(fig, path)
