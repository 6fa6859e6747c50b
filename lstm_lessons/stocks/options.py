"""The stock script's options, checked: a bad one is one line and exit 2, before any work."""

import argparse
from pathlib import Path

from .. import cli
from ..parallel import CLUSTER_HELP, check_memory, cluster_address
from .data import default_csv, memory_estimate, ticker_list, training_processes
from .networks import HUBER_DELTA, OPTIMIZERS

FRAMINGS = ("features", "timesteps")  # (samples, 1, look_back) or (samples, look_back, 1)


def positive_float(text):
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def build_parser(lesson):
    """Every option, with the lesson's values as defaults."""
    networks, quick = [net.__name__ for net in lesson.ALL_NETWORKS], lesson.QUICK["epochs"]
    parser = cli.ArgumentParser(
        description="The LSTM chapter's stock comparison: four networks forecast a stock's mid "
        "price 4 days after a 7-day window, the lesson's way or leak-free, against baselines.",
        formatter_class=cli.HelpFormatter,
    )
    count, strict = dict(type=cli.positive_int), "strict protocol: "
    options = [  # (option, its keywords, its help)
        ("--protocol", dict(choices=("lesson", "strict"), default="lesson"),
         "lesson: every step as the chapter does it; strict: --folds rolling origins over the "
         "test part, each retraining every network on the rows known at its origin (own "
         "scaler, last 20%% of its training windows validate, no smoothing), scored in MASE "
         "against naive, drift, AR, SES, SMA and EMA, with a Diebold-Mariano test"),
        ("--csv", dict(type=Path),
         "price CSV with date, high and low columns (e.g. Kaggle's all_stocks_5yr.csv); "
         "unset: AAL_data.csv or all_stocks_5yr.csv in the current folder if present, else "
         "matplotlib's bundled Google prices (GOOG)"),
        ("--ticker", {}, "rows to use when the CSV has a Name column (unset: AAL); without "
         "--csv (and no Kaggle file in the current folder) the data are matplotlib's Google "
         "prices (GOOG)"),
        ("--tickers", dict(type=ticker_list), strict + "evaluate several stocks, e.g. "
         "AAL,MSFT,XOM, or 'all' the tickers in a CSV with a Name column"),
        ("--train-size", count, "training rows; unset: the lesson's 1000, or the same share of "
         "a shorter series; one size alone sets the other in 1000:251"),
        ("--test-size", count, "test rows right after the training rows; unset: the lesson's "
         "251, or the same share"),
        ("--look-back", dict(count, default=lesson.LOOK_BACK), "days per window"),
        ("--foresight", dict(count, default=lesson.FORESIGHT),
         "the label is foresight + 1 days after the window's last day"),
        ("--norm-window", dict(count, default=lesson.NORMALIZATION_WINDOW),
         "lesson protocol: rows per window of the training normalisation"),
        ("--framing", dict(choices=FRAMINGS, default="features"),
         "features: (samples, 1, look_back) as the lesson; timesteps: (samples, look_back, 1), "
         "so recurrent layers recur over the days"),
        ("--folds", count, strict + "rolling origins over the test part, each retraining "
         "every network (unset: 5)"),
        ("--target", dict(choices=("price", "log-return")), strict + "what the networks "
         "predict; log-return: log(p[t+h]/p[t]) from the window's log prices relative to its "
         "last day (unset: price)"),
        ("--models", dict(nargs="+", choices=networks, default=networks, metavar="NAME"),
         f"networks to train, any of: {', '.join(networks)}"),
        ("--epochs", dict(count, default=lesson.EPOCHS), f"epochs per network ({quick} with "
         "--quick)"),
        ("--batch-size", dict(count, default=lesson.BATCH_SIZE), "batch size"),
        ("--optimizer", dict(choices=OPTIMIZERS, default="adam"), "the networks' optimizer"),
        ("--learning-rate", dict(type=positive_float),
         "the optimizer's learning rate (unset: that optimizer's Keras default, printed)"),
        ("--loss", dict(choices=("mae", "mse", "huber"), default="mae"),
         f"training loss (huber: delta {HUBER_DELTA}); every model is scored with MAE"),
        ("--scale", dict(type=positive_float, default=1.0), "multiply every hidden layer's "
         "units by this (0.5 halves, 2 doubles; each keeps at least 1 unit)"),
        ("--repeats", dict(count, default=1),
         "train each network with this many seeds (seed, seed+1, ...); report mean ± std"),
        ("--jobs", dict(count, default=1), "independent trainings (networks x seeds; strict: "
         "x folds; --forecast's refits) run in this many worker processes; same numbers as 1, "
         "and each worker loads Keras again"),
        ("--cluster", dict(type=cluster_address, metavar="ADDRESS"), CLUSTER_HELP),
        ("--seed", dict(type=cli.non_negative_int, default=7), "random seed (0 or more)"),
        ("--quick", dict(action="store_true"),
         f"tiny run that shows every step in seconds: --epochs {quick}"),
        ("--verbose", dict(type=int, choices=(0, 1, 2), default=1),
         "Keras fit output: 0 silent, 1 progress bar, 2 one line per epoch"),
        ("--out-dir", dict(type=Path), "folder for figures, models and metrics.json; unset: "
         "outputs/stock_lstm_compare/<protocol>"),
        ("--forecast", dict(action="store_true"), "also refit every network on all rows and "
         "forecast the mid price foresight + 1 business days after the last date, with naive "
         "and drift, and 80%% intervals"),
        ("--show", dict(action="store_true"), "also open the figures in a window"),
    ]  # fmt: skip
    for option, keywords, text in options:
        parser.add_argument(option, help=text, **keywords)
    return parser


def parse_args(argv, lesson):
    """The options of the script whose lesson part is `lesson` (its module)."""
    args = cli.parse_args_with_quick(build_parser(lesson), argv, lesson.QUICK)
    if args.protocol == "lesson":  # the options of the forecaster's evaluation
        for option, value in (("--folds", args.folds), ("--tickers", args.tickers)):
            if value is not None:
                cli.fail(
                    f"{option} belongs to the strict protocol's evaluation: add --protocol strict"
                )
        if args.target == "log-return":
            cli.fail(
                "--target log-return needs --protocol strict: the lesson's window-normalised "
                "values include exact zeros (each window's minimum), whose log is undefined"
            )
    if args.tickers and args.ticker:
        cli.fail("give --ticker (one stock) or --tickers (several), not both")
    if args.ticker and args.csv is None and default_csv(lesson) is None:
        cli.fail(
            f"--ticker {args.ticker} needs a CSV with a Name column (--csv, e.g. Kaggle's "
            "all_stocks_5yr.csv): without one the data are matplotlib's Google prices (GOOG)"
        )
    args.folds, args.target = args.folds or 5, args.target or "price"
    names = [net.__name__ for net in lesson.ALL_NETWORKS]
    args.models = [name for name in names if name in args.models]  # in the lesson's order
    args.out_dir = args.out_dir or Path("outputs") / Path(lesson.__file__).stem / args.protocol
    lower = "--jobs or --train-size/--test-size, or a smaller --csv"
    check_memory(memory_estimate(args, lesson), lower, training_processes(args))
    return args
