"""The strict protocol: the chapter's question (the mid price h = foresight + 1 days after
a window) asked as a forecaster would, over rolling origins, each fold learning only from
the rows known at its origin (docs/stock_lstm_compare.md, "The strict protocol")."""

import pickle
import time

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats
from sklearn.preprocessing import MinMaxScaler

from ..cli import seed_list
from ..outputs import prepare_out_dir, print_table, run_record, save_figure, save_json
from ..parallel import run_trainings
from ..training import training_cost
from .baselines import baseline_prices, mae, naive_scale
from .data import data_record, describe_stock, load_stock, resolve_tickers
from .forecast import forecast_ahead, to_prices, window_arrays
from .networks import add_cost, one_training, plot_all_losses, report_network, training_settings

VAL_FRACTION = 0.2  # the last 20% of a fold's training windows validate


def rolling_folds(n_rows, first_target, n_targets, folds, look_back, horizon):
    """The last day t of every window on the whole series (its target: t + horizon), and
    each fold's origin, training windows (target on or before it) and test windows."""
    t = np.arange(look_back - 1, n_rows - horizon)
    target = t + horizon
    edges = np.linspace(first_target, first_target + n_targets, folds + 1).round().astype(int)
    return t, [
        {
            "origin": int(first - horizon),
            "train": np.flatnonzero(target <= first - horizon),
            "test": np.flatnonzero((target >= first) & (target < end)),
        }
        for first, end in zip(edges[:-1], edges[1:])
    ]


def prepare_fold(mid, t, fold, args, lesson):
    """One origin, fitted on what is known there: (setup, what every network of the fold
    trains and is scored on (run_network); known, what score_fold needs: the baselines'
    price forecasts, the scaler, the targets)."""
    horizon, origin, train, test = args.foresight + 1, fold["origin"], fold["train"], fold["test"]
    scaler = None  # log-return: the values are already scale-free
    if args.target == "price":
        scaler = MinMaxScaler().fit(mid[: origin + 1].reshape(-1, 1))
    x, y = window_arrays(mid, t, args.look_back, horizon, args.target, scaler)
    t_test = t[test]

    def to_price(values):
        return to_prices(values, mid, t_test, args.target, scaler)

    train_xy = (x[train], y[train])
    forecasts = baseline_prices(mid, t_test, origin, horizon, train_xy, x[test], to_price, lesson)
    n_val = round(len(train) * VAL_FRACTION)
    parts = {"train": train[:-n_val], "val": train[-n_val:], "test": test}
    setup = {
        "frames": {
            name: lesson.reshape_data(x[rows], args.framing) for name, rows in parts.items()
        },
        "splits": {name: {"y": y[rows]} for name, rows in parts.items()},
        "to_price": to_price,
    }
    known = {
        "forecasts": forecasts,
        "scaler": scaler,
        "to_price": to_price,
        "last_price": mid[t_test],
        "truth": mid[t_test + horizon],
        "y_test": y[test],
        "last_input": x[test][:, -1],
        "scale": naive_scale(mid[: origin + 1], horizon),
    }
    return setup, known


def score_fold(known, results, args):
    """Every model of one fold scored in prices (MAE, MASE, skill against naive) from
    results, {network: [run_network's result per seed]}; and each network's fit record."""
    forecasts, scaler, to_price = dict(known["forecasts"]), known["scaler"], known["to_price"]
    truth, y_test, last_input = known["truth"], known["y_test"], known["last_input"]
    runs = {}
    for name, seed_results in results.items():
        # with --repeats: every seed's forecasts are scored, then averaged
        forecasts[name] = np.array([to_price(r["predictions"]["test"]) for r in seed_results])
        runs[name] = {
            "fit_s": sum(r["fit_s"] for r in seed_results),
            "epochs_kept": [r["epoch_kept"] for r in seed_results],
            "convergence_epochs": [r["convergence_epoch"] for r in seed_results],
            "convergence_s": [r["convergence_s"] for r in seed_results],
            "history": seed_results[0]["history"],
        }
    naive_mae = mae(truth, forecasts["naive"])
    scores = {}
    for name, prices in forecasts.items():
        prices = np.atleast_2d(prices)  # (seeds, targets)
        errors = np.abs(prices - truth).mean(axis=0)
        units = (
            np.log(prices / known["last_price"])
            if scaler is None
            else scaler.transform(prices.reshape(-1, 1)).reshape(prices.shape)
        )
        mae_price = float(errors.mean())
        scores[name] = {
            "mae": float(np.abs(units - y_test).mean()),
            # the size of its forecasts against the labels' (log-return: 0 is naive)
            "forecast_size": float(
                np.abs(units - last_input).mean() / np.abs(y_test - last_input).mean()
            ),
            "mae_price": mae_price,
            "mase": mae_price / known["scale"],
            "skill": 1 - mae_price / naive_mae,
            "errors": errors,
            "residuals": truth - prices.mean(axis=0),  # signed, for --forecast's intervals
        }
    return scores, runs


def diebold_mariano(loss_differential, horizon):
    """One-sided Diebold-Mariano test (Newey-West variance, Bartlett kernel, horizon - 1
    lags, Harvey-Leybourne-Newbold correction) of loss_differential, |naive error| - |model
    error| per target in time order: (statistic, p-value), or (None, None) without variance."""
    d = np.asarray(loss_differential, dtype=float)
    n, lags = len(d), horizon - 1
    if n <= horizon:  # too few targets for h - 1 lags and the HLN correction
        return None, None
    dev = d - d.mean()
    autocov = [dev[k:] @ dev[: n - k] / n for k in range(lags + 1)]
    variance = autocov[0] + 2 * sum((1 - k / (lags + 1)) * autocov[k] for k in range(1, lags + 1))
    if not variance > 1e-12 * max(1.0, float(d @ d) / n):
        return None, None
    statistic = d.mean() / np.sqrt(variance / n)
    statistic *= np.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)  # HLN
    return float(statistic), float(stats.t.sf(statistic, df=n - 1))


def plan_stock(stock, args, seeds, lesson):
    """Every fold of one stock prepared (its data and baselines, its line printed), and the
    trainings of its networks x seeds: run_strict runs every stock's together."""
    mid, dates, horizon = stock["mid"], stock["data"]["dates"], args.foresight + 1
    networks = {net.__name__: net for net in lesson.ALL_NETWORKS}
    sizes = (len(mid), stock["train_size"], stock["test_size"], args.folds, args.look_back)
    t, folds = rolling_folds(*sizes, horizon)
    prepared, trainings = [], []
    for k, fold in enumerate(folds, start=1):
        t0 = time.perf_counter()
        prepared.append((*prepare_fold(mid, t, fold, args, lesson), time.perf_counter() - t0))
        targets = t[fold["test"]] + horizon
        print(
            f"fold {k}/{len(folds)}: origin {dates[fold['origin']]}; trains on "
            f"{len(fold['train'])} windows (targets up to the origin), tests "
            f"{len(targets)} targets {dates[targets[0]]} to {dates[targets[-1]]}"
        )
        for name in args.models:
            for r, seed in enumerate(seeds):  # only the last fold's first models are saved
                call = (networks[name], prepared[-1][0], args, seed, k == len(folds) and r == 0)
                label = f"{stock['name']} fold {k} {name} seed {seed}"
                trainings.append((label, one_training, call))
    return {"t": t, "folds": folds, "prepared": prepared, "trainings": trainings}


def evaluate_stock(stock, plan, results, args, seeds, lesson):
    """One stock's folds scored from its trainings' results, then its summary: mean and
    spread over folds, DM p-values."""
    networks = {net.__name__: net for net in lesson.ALL_NETWORKS}
    dates, horizon = stock["data"]["dates"], args.foresight + 1
    t, folds, prepared = plan["t"], plan["folds"], plan["prepared"]
    out_dir = stock["dir"]  # the stock's folder (run_strict made it)
    per_fold, fold_log, errors, residuals = [], [], {}, {}
    results, spent = iter(results), {}
    for k, (fold, (setup, known, prepare_s)) in enumerate(zip(folds, prepared), start=1):
        last = k == len(folds)
        t0 = time.perf_counter()
        by_network = {name: [next(results) for _ in seeds] for name in args.models}
        for name, seed_results in by_network.items():  # each network's cost
            fit_s = [[result["fit_s"]] for result in seed_results]  # one list per seed
            epochs = [result["epochs"] for result in seed_results]
            add_cost(spent, name, fit_s, epochs, [r["epoch_kept"] for r in seed_results])
            if last:  # the last fold's first seed: summary, saved model, figures
                to_price, y_test = setup["to_price"], setup["splits"]["test"]["y"]
                first = dict(seed_results[0], model=pickle.loads(seed_results[0]["model"]))
                report_network(lesson, name, first, to_price, y_test, out_dir, "validation")
        scores, runs = score_fold(known, by_network, args)
        histories = {name: run.pop("history") for name, run in runs.items()}
        if last:
            plot_all_losses(histories, "validation", out_dir / "losses_all.png")
        per_fold.append(scores)
        for name, score in scores.items():
            errors.setdefault(name, []).append(score.pop("errors"))
            residuals.setdefault(name, []).append(score.pop("residuals"))
        targets = t[fold["test"]] + horizon
        trained_s = sum(r["seconds"] for rs in by_network.values() for r in rs)
        fold_log.append(
            {
                "origin": str(dates[fold["origin"]]),
                "train_windows": len(fold["train"]),
                "test_targets": len(targets),
                "first_target": str(dates[targets[0]]),
                "last_target": str(dates[targets[-1]]),
                # seconds of work (with --jobs, not the wall time): data, trainings, scores
                "seconds": prepare_s + trained_s + time.perf_counter() - t0,
                "networks": runs,
            }
        )
    summary = {}
    for name in per_fold[0]:
        summary[name] = {"kind": "network" if name in networks else "baseline"}
        for key in ("mase", "skill", "mae", "mae_price"):
            values = [scores[name][key] for scores in per_fold]
            summary[name][key] = float(np.mean(values))
            summary[name][f"{key}_folds"] = values
        if len(per_fold) > 1:
            summary[name]["mase_std"] = float(np.std(summary[name]["mase_folds"], ddof=1))
        if name in networks:  # mean over folds and seeds
            for key in ("convergence_epochs", "convergence_s"):
                values = [v for f in fold_log for v in f["networks"][name][key]]
                summary[name][key] = float(np.mean(values))
        if name in networks and args.target == "log-return":
            size = float(np.mean([scores[name]["forecast_size"] for scores in per_fold]))
            summary[name]["forecast_size"] = size
            if size < 0.1:  # a finding, not a failure: it has learned that naive is hard to beat
                summary[name]["finding"] = (
                    f"{name} predicts about 0 (its forecasts' mean size is {size:.0%} of the "
                    "actual log-returns'): it has learned to forecast as naive does"
                )
    naive_errors = np.concatenate(errors["naive"])
    for name in args.models:  # the folds' targets are consecutive: concatenated in time order
        statistic, pvalue = diebold_mariano(naive_errors - np.concatenate(errors[name]), horizon)
        summary[name].update(dm_statistic=statistic, dm_pvalue=pvalue)
        if pvalue is None:
            summary[name]["dm_note"] = (
                "no p-value: its errors' differences from naive's have no variance "
                "(or there are too few targets for the test)"
            )
    residuals = {name: np.concatenate(values) for name, values in residuals.items()}
    return summary, fold_log, {"residuals": residuals, "spent": spent}  # spent: training_cost


def print_evaluation(summary, stock, n_folds, cost):
    """One table per stock: every model's mean over folds, ranked by MASE; cost: each
    network's training_cost."""
    print(
        f"{stock}: mean over {n_folds} folds (±: std of MASE over folds); MAE in the networks' "
        "units, MAE $ in prices; DM p: one-sided Diebold-Mariano against naive"
    )
    rows = sorted(summary.items(), key=lambda item: item[1]["mase"])
    table = []
    for rank, (name, row) in enumerate(rows, start=1):
        p = row.get("dm_pvalue")
        dm = "" if row["kind"] == "baseline" else ("n/a" if p is None else f"{p:.3f}")
        table.append(
            {
                "rank": rank,
                "model": name,
                "MASE": row["mase"],
                "±": row.get("mase_std", ""),
                "skill vs naive": row["skill"],
                "MAE": row["mae"],
                "MAE $": row["mae_price"],
                "DM p": dm,
                "conv. epoch": f"{row['convergence_epochs']:.1f}" if dm else "",
                "conv. s": f"{row['convergence_s']:.1f}" if dm else "",
                "fit s": f"{cost[name]['fit_s']:.1f}" if name in cost else "-",
                "epochs": cost[name]["epochs"] if name in cost else "-",
                "kept": f"{cost[name]['epochs_kept']:.1f}" if name in cost else "-",
            }
        )
    print_table(table, list(table[0]))


def dm_verdict(evaluation, level=0.05):
    """Plain sentences computed from the Diebold-Mariano p-values, never fixed text."""
    tested, better, untested = 0, [], []
    for stock, summary in evaluation.items():
        for name, row in summary.items():
            if row["kind"] != "network":
                continue
            where = f"{name} on {stock}" if len(evaluation) > 1 else name
            if row["dm_pvalue"] is None:
                untested.append(where)
                continue
            tested += 1
            if row["dm_pvalue"] < level:
                better.append(f"{where} (p = {row['dm_pvalue']:.3f})")
    if not tested:
        sentence = "No network could be tested against naive."
    elif better:
        sentence = (
            f"{len(better)} of {tested} networks forecast better than naive at the "
            f"{level:.0%} level (one-sided Diebold-Mariano): {', '.join(better)}."
        )
    else:
        sentence = (
            f"None of the {tested} networks forecasts better than naive at the {level:.0%} "
            "level (one-sided Diebold-Mariano)."
        )
    if tested > 1:
        sentence += (
            f" {len(better) / tested:.0%} significant; about {level:.0%} would be significant "
            "by chance alone."
        )
    if untested:
        sentence += f" Not testable (no variance against naive): {', '.join(untested)}."
    return sentence, {"level": level, "tested": tested, "significant": len(better)}


def cross_stock(evaluation, networks):
    """MASE per model across stocks: median, interquartile range, share beating naive."""
    models = list(next(iter(evaluation.values())))
    rows = {}
    for name in models:
        mase = np.array([summary[name]["mase"] for summary in evaluation.values()])
        naive = np.array([summary["naive"]["mase"] for summary in evaluation.values()])
        q25, q50, q75 = np.percentile(mase, [25, 50, 75])
        rows[name] = {"median_mase": float(q50), "iqr_mase": float(q75 - q25)}
        if name in networks:
            rows[name]["share_beating_naive"] = float(np.mean(mase < naive))
    return rows


def plot_folds(stock, plan, horizon):
    """The mid price with each fold's origin (dashed) and its block of test targets (shaded)."""
    fig, ax = plt.subplots(figsize=(12, 5), layout="tight")
    ax.plot(stock["mid"], color="k", lw=1, label="mid price")
    for k, fold in enumerate(plan["folds"]):
        targets = plan["t"][fold["test"]] + horizon
        ax.axvspan(targets[0], targets[-1], color=f"C{k}", alpha=0.25)
        ax.axvline(fold["origin"], color=f"C{k}", ls="--", label=f"fold {k + 1} origin")
    dates = stock["data"]["dates"]
    step = max(1, len(dates) // 15)
    ax.set_xticks(range(0, len(dates), step), dates[::step].astype(str), rotation=60, fontsize=8)
    title = f"{stock['name']}: rolling origins (dashed) and the test targets of each fold (shaded)"
    ax.set(ylabel="Mid price", title=title)
    ax.legend(fontsize=8)
    save_figure(fig, stock["dir"] / "split.png")


def plot_mase(evaluation, title, path):
    """MASE per model: one stock, bars with the spread over folds; several, a box per model."""
    fig, ax = plt.subplots(figsize=(12, 5), layout="tight")
    first = next(iter(evaluation.values()))
    models = sorted(first, key=lambda name: first[name]["mase"])
    if len(evaluation) == 1:
        ax.bar(
            models,
            [first[m]["mase"] for m in models],
            yerr=[first[m].get("mase_std", 0.0) for m in models],
            capsize=3,
        )
    else:
        ax.boxplot([[s[m]["mase"] for s in evaluation.values()] for m in models])
        ax.set_xticks(np.arange(1, len(models) + 1), models)
    naive = np.median([s["naive"]["mase"] for s in evaluation.values()])
    ax.axhline(naive, color="grey", ls=":", label=f"naive (median {naive:.2f})")
    ax.legend()
    ax.tick_params(axis="x", rotation=20)
    ax.set(ylabel="MASE (lower is better)", title=title)
    save_figure(fig, path)


def run_strict(args, lesson):
    """The strict protocol on each stock: rolling origins, scale-free scores, DM tests."""
    t_start = time.perf_counter()
    seeds = seed_list(args)
    # every stock is loaded and checked first: bad data stops here, nothing written
    stocks = [load_stock(args, ticker, lesson) for ticker in resolve_tickers(args, lesson)]
    out_dir = prepare_out_dir(args.out_dir)
    horizon = args.foresight + 1
    evaluation, fold_logs, data, forecasts, spent = {}, {}, {}, {}, {}
    plans = []  # every stock's folds first, then all their trainings together
    for stock in stocks:
        name = stock["name"]
        stock["dir"] = out_dir if len(stocks) == 1 else prepare_out_dir(out_dir / name)
        if len(stocks) > 1:
            print(f"\n== {name} ==")
        describe_stock(stock)
        figure = lesson.plot_trend(stock["data"]["frame"], name)
        save_figure(figure, stock["dir"] / "prices.png")
        print(
            f"strict protocol: {args.folds} rolling origins over the {stock['test_size']} test "
            f"days; target {args.target}, h = {horizon}; inputs framed as {args.framing}"
        )
        plans.append(plan_stock(stock, args, seeds, lesson))
    print(training_settings(args))
    trainings = [training for plan in plans for training in plan["trainings"]]
    results = iter(run_trainings(trainings, args, out_dir))  # on a cluster: all at once
    for stock, plan in zip(stocks, plans):
        name, stock_dir = stock["name"], stock["dir"]
        done = [next(results) for _ in plan["trainings"]]
        if len(stocks) > 1:
            print(f"\n== {name}: results ==")
        summary, fold_logs[name], layout = evaluate_stock(stock, plan, done, args, seeds, lesson)
        plot_folds(stock, plan, horizon)
        title = f"{name}, strict protocol: MASE per model (± std over {args.folds} folds)"
        plot_mase({name: summary}, title, stock_dir / "comparison.png")
        for network, entry in layout["spent"].items():  # the cost, over every stock
            add_cost(spent, network, entry["fit_s"], entry["epochs"], entry["epochs_kept"])
        cost = {network: training_cost(**entry) for network, entry in layout["spent"].items()}
        print()
        print_evaluation(summary, name, args.folds, cost)
        for row in summary.values():
            if "finding" in row:
                print(f"finding: {row['finding']}")
        evaluation[name], data[name] = summary, data_record(stock)
        if args.forecast:
            mase = {m: summary[m]["mase"] for m in ("naive", "drift", *args.models)}
            kept = {
                m: [e for f in fold_logs[name] for e in f["networks"][m]["epochs_kept"]]
                for m in args.models
            }
            epochs = {m: int(np.median(e)) for m, e in kept.items()}
            forecasts[name] = forecast_ahead(
                stock, args, seeds, layout["residuals"], mase, epochs, stock_dir, lesson
            )
    verdict, dm = dm_verdict(evaluation)
    across = {}
    if len(evaluation) > 1:
        across = cross_stock(evaluation, args.models)
        print(f"\nMASE across {len(evaluation)} stocks:")
        rows = [
            {"model": name, **row}
            for name, row in sorted(across.items(), key=lambda i: i[1]["median_mase"])
        ]
        print_table(rows, ["model", "median_mase", "iqr_mase", "share_beating_naive"])
        title = f"MASE across {len(evaluation)} stocks (each box: one value per stock)"
        plot_mase(evaluation, title, out_dir / "cross_stock.png")
    print(verdict)

    record = run_record(args, seeds, lesson.__file__)
    record.update(protocol="strict", framing=args.framing, target=args.target, data=data)
    fit_s = sum(
        r["fit_s"] for log in fold_logs.values() for f in log for r in f["networks"].values()
    )
    record["timings_s"] = {"total": time.perf_counter() - t_start, "fit": fit_s}
    # per network, over every stock, fold and seed: mean fit seconds per training, epochs
    record["cost"] = {network: training_cost(**entry) for network, entry in spent.items()}
    record["evaluation"] = {
        "folds": args.folds,
        "horizon": horizon,
        "target": args.target,
        "tickers": evaluation,
        "fold_log": fold_logs,
        "dm": dm,
        "cross_stock": across,
        "verdict": verdict,
    }
    if args.forecast:
        record["forecast"] = forecasts if len(forecasts) > 1 else next(iter(forecasts.values()))
    save_json(record, out_dir / "metrics.json")
    if args.show:
        plt.show()
    return 0
