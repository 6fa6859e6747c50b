"""
Title: Comparing LSTMs on stock prices, the lesson's way and leak-free
Author: LSTM Lessons in Keras contributors
Date created: 2026/11/23
Last modified: 2026/12/01
Description: Four networks forecast a stock's mid price 4 days ahead, against three baselines.

The LSTM chapter's worked example. Take one S&P 500 stock's daily mid price,
(high + low) / 2; normalise the training part in 250-day windows; smooth it;
score two one-step moving-average baselines; then train a feed-forward network,
a GRU, an LSTM and a stacked LSTM to predict the mid price 4 trading days after
a 7-day window. `--protocol lesson` (the default) repeats every step as the
chapter does. `--protocol strict` asks the same question as a forecaster would:
rolling origins over the test part (each retrains every network on what was known
then, with its own scaler, and keeps the best epoch on validation), scale-free
scores (MASE, skill against naive), more baselines, and a Diebold-Mariano test.

    python stock_lstm_compare.py                     # the lesson: 4 networks x 50 epochs
    python stock_lstm_compare.py --protocol strict   # the forecaster's evaluation, leak-free
    python stock_lstm_compare.py --quick             # every step in seconds
    python stock_lstm_compare.py --jobs 2            # the trainings in 2 worker processes
    python stock_lstm_compare.py --help

Data: `--csv` reads Kaggle's S&P 500 files (see data/README.md). Without it the
script uses data/all_stocks_5yr.csv if that exists, else the real daily Google
prices that matplotlib ships (nothing is downloaded).

Beyond the lesson (marked `extra –`): a naive last-value baseline scored on the
networks' own test targets; SMA and EMA rescored as 4-step-ahead forecasts of the
same targets; errors in price units; the strict protocol (--folds, --target,
--tickers); several seeds (`--repeats`); independent trainings in worker processes
(`--jobs`); one results table with each network's fit seconds and epochs, a bar chart
and a metrics.json record.
"""

import argparse
import functools
import sys
import time
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
    reuse_compiled,
    speed_settings,
    train_network,
    training_cost,
)

# Keras, scikit-learn and pandas are imported inside the functions that use them, so
# that `--help` or a mistyped option answers at once (together they take ~10 s to load).

# The lesson's configuration, in one place.
LESSON = {
    "train_size": 1000,  # the first 1,000 mid prices train ...
    "test_size": 251,  # ... and the next 251 test
    "normalization_window": 250,
    "smoothing_gamma": 0.1,
    "sma_window": 26,
    "ema_gamma": 0.5,
    "look_back": 7,
    "foresight": 3,  # the label is foresight + 1 = 4 days after each window's last day
    "epochs": 50,
    "batch_size": 64,
}
QUICK = {"epochs": 2}  # --quick: every step, in seconds
NETWORKS = ("feed_forward", "simple_gru", "simple_lstm", "lstm_stacked")

# extra – our own settings.
VAL_FRACTION = 0.2  # strict protocol: the last 20% of the training part validates
KAGGLE_CSV = Path("data") / "all_stocks_5yr.csv"  # used when present and no --csv
SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab"}  # what --csv files may use
# The memory guard, measured on a 52 MiB CSV of 1e6 rows in Kaggle's format. Reading a CSV
# as text peaked at 8.6x its size on disk (the 58 KB AAL file: 64x, a fixed 4 MiB). The
# strict protocol then makes the windows of the whole series (2x, for a while) and keeps
# each fold's until it is scored (50 bytes per window). Training and predicting peaked at
# 0.96 KB per window (feed_forward, 999,000 windows: predict_splits runs them in one call).
CSV_MEMORY_FACTOR, WINDOWS_MEMORY_FACTOR = 9, 2  # x the CSV's size on disk
FOLD_BYTES, TRAINING_BYTES = 64, 1024  # per window: a fold's, kept; a training's peak
# --loss huber: quadratic for errors below delta, linear above. The targets are scaled to
# about [0, 1], where a day's 4-step error is a few hundredths (naive: 0.055 on the fallback
# data), so Keras's delta of 1.0 would be plain 0.5 x MSE. 0.05 puts the bend among the
# errors the networks make.
HUBER_DELTA = 0.05
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adagrad")
FRAMINGS = ("features", "timesteps")  # (samples, 1, look_back) or (samples, look_back, 1)

# extra – speed settings, applied by speed_settings when a network is compiled: Keras's
# defaults. With an epoch of 13 to 16 batches, steps_per_execution=16 (one call per epoch)
# saved about 10% more (measured before validation_batches), but then a short run
# (--quick: 2 epochs) traces each new network's functions about as often as it calls
# them, and TensorFlow warns about retracing. The other speed measures sit in the support
# code: train_network gives fit its step counts and, on TensorFlow, batched validation
# data (no number changes; 0.64 of plain Keras's fit, benchmarks/RESULTS.md);
# reuse_compiled and predict_splits trace less (predict_splits matches model.predict to
# float rounding).
SPEED = dict()


# Importing the data


class DataError(ValueError):
    """A problem with the data that the reader can fix; run() prints it as one line."""


def load_prices(csv=None, ticker="AAL"):
    """Daily high and low prices, sorted by date, and where they came from.

    csv=None: data/all_stocks_5yr.csv if it exists, else matplotlib's Google prices.
    Returns a dict: dates (datetime64[D]), high, low, source, repairs (list), where.
    The lesson's step is pandas alone (it never shows how its `aal` frame is made):
        df = pd.read_csv("all_stocks_5yr.csv")
        aal = df[df["Name"] == "AAL"].sort_values("date")
    extra – what follows reads any such CSV robustly (separators, decimal commas, header
    case, time zones, missing values) and says in one line what is wrong with a bad one.
    """
    if csv is None and KAGGLE_CSV.is_file():
        csv = KAGGLE_CSV
    return load_sample_prices() if csv is None else read_price_csv(csv, ticker)


def load_sample_prices():
    """Google's daily prices 2004-08-19 to 2008-10-14 (1,047 days), shipped with matplotlib."""
    import matplotlib.cbook as cbook
    import pandas as pd

    sample = cbook.get_sample_data("goog.npz")
    # Recent matplotlib returns the loaded NpzFile; older versions a path or a file.
    if not hasattr(sample, "files"):
        sample = np.load(sample)
    frame = pd.DataFrame(sample["price_data"])[["date", "high", "low"]]
    source = {"kind": "matplotlib sample data", "path": "goog.npz", "ticker": "GOOG"}
    return tidy_prices(frame, source, "matplotlib sample data goog.npz")


def read_price_csv(path, ticker="AAL"):
    """Read a CSV with date, high and low columns (any letter case), for one ticker.

    Reads Kaggle's all_stocks_5yr.csv (a Name column; --ticker picks the rows) and
    its per-ticker files <TICKER>_data.csv, with lower-case or capitalised headers.
    Any problem raises DataError with one line saying what is wrong and what to do.
    """
    path = Path(path)
    # the cache key: which file, and its version (a changed file is read again)
    frame, sep = read_csv_frame(path, file_stamp(path))
    where, used_ticker = str(path), None
    if "name" in frame:
        names = frame["name"].str.strip()
        chosen = names.str.upper() == str(ticker).strip().upper()
        if not chosen.any():
            available = sorted(names.dropna().unique())
            raise DataError(
                f"ticker {ticker!r} is not in {path}: {len(available)} tickers available, "
                f"the first {min(20, len(available))}: {', '.join(available[:20])}; "
                "pick one with --ticker"
            )
        frame, used_ticker = frame[chosen], names[chosen].iloc[0]
        where = f"{path} (ticker {used_ticker})"

    import pandas as pd

    # A file not separated by commas may write 14,875 for 14.875 and dates day first.
    read_as = [f"{SEPARATORS[sep]}-separated"]
    texts = {name: frame[name].str.strip() for name in ("high", "low")}
    if sep != "," and any(
        text.str.contains(r"\d,\d{3}\.", regex=True).any() for text in texts.values()
    ):
        read_as.append("thousands commas (1,234.5 is 1234.5)")
        texts = {name: text.str.replace(",", "", regex=False) for name, text in texts.items()}
    elif sep != "," and any(text.str.contains(",", regex=False).any() for text in texts.values()):
        read_as.append("decimal commas (1.234,5 is 1234.5)")
        texts = {
            name: text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
            for name, text in texts.items()
        }
    # A daily bar's date is its local date: a time zone offset (+01:00, Z) is dropped, not
    # converted, so 2017-01-02 00:00+01:00 stays 2017-01-02.
    date_text = frame["date"].str.strip().str.replace(r"(Z|[+-]\d\d:?\d\d)$", "", regex=True)
    year_first = date_text.str.match(r"\d{4}[-/.]\d\d?[-/.]\d\d?").all()
    dayfirst = sep != "," and not year_first
    if dayfirst:
        read_as.append("dates day first")
    dates = pd.to_datetime(date_text, errors="coerce", dayfirst=dayfirst)
    prices = {name: pd.to_numeric(text, errors="coerce") for name, text in texts.items()}
    problems = {
        "date": (dates.isna(), "are not dates"),
        "high": (~np.isfinite(prices["high"]), "are missing or not numbers"),
        "low": (~np.isfinite(prices["low"]), "are missing or not numbers"),
    }
    for column, (bad, problem) in problems.items():
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            text = frame[column].iloc[first]
            shown = repr(text) if isinstance(text, str) and text.strip() else "(empty)"
            raise DataError(
                f"{int(bad.sum())} value(s) in column {column!r} of {where} {problem} "
                f"(first on line {frame.index[first] + 2}: {shown}); fix or remove those rows"
            )  # line 1 of the file is the header
    frame = pd.DataFrame({"date": dates.dt.normalize(), **prices})
    source = {"kind": "csv", "path": str(path), "ticker": used_ticker, "read_as": read_as}
    return tidy_prices(frame, source, where)


def file_stamp(path):
    """The CSV cache's key: which file, and its version (a changed file is read again)."""
    if not path.is_file():
        return None
    stat = path.stat()
    return path.resolve(), stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=2)  # --tickers reads one file for many stocks
def read_csv_frame(path, stamp=None):
    """The CSV's cells as text, headers in lower case; DataError for a file that is not one."""
    import pandas as pd

    unreadable = f"cannot read --csv {path} ({{}}); check the file and its permissions"
    if not path.exists():
        raise DataError(
            f"--csv {path}: no such file; pass the path of a CSV with date, high and low columns"
        )
    if path.is_dir():
        raise DataError(f"--csv {path} is a folder, not a file; pass the CSV file itself")
    try:
        with open(path, "rb") as handle:
            head = handle.read(8192)
    except OSError as exc:
        raise DataError(unreadable.format(exc.strerror))
    if not head.strip():
        raise DataError(f"--csv {path} is empty; pass a CSV with date, high and low columns")
    compressed = path.suffix.lower() in {".gz", ".bz2", ".zip", ".xz", ".zst"}
    if b"\x00" in head and not compressed:
        raise DataError(
            f"--csv {path} is not a CSV text file (it holds binary data); pass a CSV file"
        )
    # The separator: the one of , ; and tab that the header line holds most of
    # (spreadsheets in many countries save with semicolons).
    header = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    sep = "," if compressed else max(SEPARATORS, key=header.count)
    try:
        # Everything is read as text first, so that a bad cell can be quoted back.
        frame = pd.read_csv(path, sep=sep, dtype=str, skipinitialspace=True)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"--csv {path} cannot be read as CSV ({reason}); pass a text file whose values "
            "are separated by commas, semicolons or tabs"
        )
    except OSError as exc:
        raise DataError(unreadable.format(exc.strerror))

    # Headers are matched whatever their letter case (date/Date/DATE; the first one wins).
    found = [str(column) for column in frame.columns]
    frame.columns = [column.strip().lower() for column in found]
    frame = frame.loc[:, ~frame.columns.duplicated()]
    missing = [name for name in ("date", "high", "low") if name not in frame]
    if missing:
        shown = ", ".join(found[:20]) + (f", ... ({len(found)} in all)" if len(found) > 20 else "")
        raise DataError(
            f"--csv {path} has no {', '.join(missing)} column{'s' if len(missing) > 1 else ''} "
            f"(columns found: {shown}); it needs date, high and low columns, in any letter case"
        )
    if len(frame) == 0:
        raise DataError(f"--csv {path} has a header but no data rows; pass a CSV with price rows")
    return frame, sep


def tidy_prices(frame, source, where):
    """Sort the rows by date and drop rows that repeat a date with the same prices.

    Every change is stated: the returned `repairs` list is printed and recorded.
    A date that appears twice with different prices is an error (two series mixed?).
    """
    repairs = []
    if not frame["date"].is_monotonic_increasing:
        repairs.append(f"the rows were not in date order: sorted {len(frame)} rows by date")
        frame = frame.sort_values("date", kind="stable")
    repeated = frame.duplicated("date")
    if repeated.any():
        distinct = frame.drop_duplicates()  # rows that differ in date or prices
        clashes = distinct["date"][distinct.duplicated("date")].unique()
        if len(clashes):
            raise DataError(
                f"{len(clashes)} date(s) appear more than once with different prices in {where} "
                f"(first: {clashes[0].date()}); is more than one series in the file? "
                "keep one row per date"
            )
        repairs.append(
            f"dropped {int(repeated.sum())} row(s) that repeat a date with the same prices"
        )
        frame = frame[~repeated]
    dates = frame["date"].to_numpy().astype("datetime64[D]")
    high, low = (frame[name].to_numpy(dtype=float) for name in ("high", "low"))
    return dict(dates=dates, high=high, low=low, source=source, repairs=repairs, where=where)


# Sorting and visualising the trend


def plot_high_low(data, title, path):
    """The daily low (red) and high (blue) over time, a date every 60 days."""
    fig, ax = plt.subplots(figsize=(12, 6), layout="tight")
    ax.plot(data["low"], color="r", label="low")
    ax.plot(data["high"], color="b", label="high")
    _date_ticks(ax, data["dates"], step=60)
    ax.set(xlabel="Date", ylabel="Price", title=title)
    ax.legend()
    save_figure(fig, path)


def _date_ticks(ax, dates, step):
    positions = np.arange(0, len(dates), step)
    ax.set_xticks(positions, [str(d) for d in dates[positions]], rotation=60, fontsize=8)


# From DataFrame to tensors


def _first_column(data):
    """A series as a flat float array, from shape (n,) or the lesson's (n, 1)."""
    values = np.asarray(data, dtype=float)
    return values[:, 0] if values.ndim > 1 else values


def mid_prices(high, low):
    """The mid price of each day: the average of its high and low."""
    return (np.asarray(high, dtype=float) + np.asarray(low, dtype=float)) / 2.0


# Splitting the data


def split_sizes(n_rows, train_size=None, test_size=None):
    """The lesson's split: the first 1,000 mid prices train, the next 251 test.

    A shorter series is split in the same proportion (1,000 : 251) and uses every row.
    Given one size only, the other follows in that proportion.
    """
    ratio = LESSON["test_size"] / LESSON["train_size"]
    if train_size is None and test_size is None:
        if n_rows >= LESSON["train_size"] + LESSON["test_size"]:
            return LESSON["train_size"], LESSON["test_size"]
        train_size = int(round(n_rows / (1 + ratio)))
        return train_size, n_rows - train_size
    if test_size is None:
        test_size = max(1, int(round(train_size * ratio)))
    if train_size is None:
        train_size = max(1, int(round(test_size / ratio)))
    return train_size, test_size


def plot_split(parts, title, path):
    """Side by side, each part of the split in prices (the lesson: train and test)."""
    fig, axes = plt.subplots(1, len(parts), figsize=(5 * len(parts), 4), layout="tight")
    colors = {"train": "r", "val": "g", "test": "b"}
    for ax, (name, values) in zip(axes, parts.items()):
        ax.plot(values, color=colors[name], label=f"{name} split")
        ax.set(xlabel="time", ylabel="Price", title=f"{name} data ({len(values)} days)")
        ax.legend()
    fig.suptitle(title)
    save_figure(fig, path)


# Window normalisation


def window_normalise(train_data, normalization_window=250):
    """Scale the training data to [0, 1] one window at a time, refitting a MinMaxScaler per window.

    Each day is scaled by the min and max of its own 250-day window (--norm-window; the last window
    holds what is left: 87 of the fallback data's 837 training days), later days included: a
    look-ahead the strict protocol avoids. clip=True only removes float
    rounding (every value lies within its own window's range), so the result stays
    exactly inside [0, 1]; otherwise this is the lesson's MinMaxScaler.
    """
    from sklearn.preprocessing import MinMaxScaler

    data = np.array(_first_column(train_data)).reshape(-1, 1)  # a copy
    scaler = MinMaxScaler(feature_range=(0, 1), clip=True)
    for i in range(0, len(data), normalization_window):
        window = data[i : i + normalization_window]
        data[i : i + normalization_window] = scaler.fit_transform(window)
    return data


def scale_on_itself(test_data):
    """The lesson's test scaling: a MinMaxScaler fitted on the test data itself (a leak)."""
    from sklearn.preprocessing import MinMaxScaler

    scaler = MinMaxScaler(feature_range=(0, 1))
    return scaler.fit_transform(_first_column(test_data).reshape(-1, 1)), scaler


# Denoising the data: implementing exponential smoothing


def exponential_smoothing(data, gamma=0.1, start=0.0):
    """S[t] = gamma * x[t] + (1 - gamma) * S[t-1], with S[-1] = start (the lesson starts at 0).

    The lesson's loop. In pandas, where gamma weights the new value as alpha does:
    pd.Series([start, *x]).ewm(alpha=gamma, adjust=False).mean()[1:].
    """
    values = _first_column(data)
    smoothed = np.empty_like(values)
    level = start
    for i, x in enumerate(values):
        level = gamma * x + (1 - gamma) * level
        smoothed[i] = level
    return smoothed.reshape(-1, 1)


def plot_smoothing(before, after, title, path):
    """The normalised training data before and after exponential smoothing."""
    fig, ax = plt.subplots(figsize=(12, 5), layout="tight")
    ax.plot(before, color="lightgray", label="normalised")
    ax.plot(after, color="purple", label="smoothed")
    ax.set(xlabel="training day", ylabel="normalised mid price", title=title)
    ax.legend()
    save_figure(fig, path)


# Performing one-step-ahead predictions: simple and exponential moving averages


def sma_one_step(train_data, window_size=26):
    """Predict each point as the mean of the window_size points before it.

    Returns (predictions for points window_size..N-1, error), the error the lesson's
    way: 0.5 x mean squared error. The lesson's loop; in pandas the predictions are
    pd.Series(x).rolling(window_size).mean().shift(1)[window_size:].
    """
    values = _first_column(train_data)
    if len(values) <= window_size:
        return np.empty(0), float("nan")  # nothing to predict
    predictions = np.array(
        [values[i - window_size : i].mean() for i in range(window_size, len(values))]
    )
    return predictions, float(0.5 * np.mean((predictions - values[window_size:]) ** 2))


def ema_one_step(train_data, gamma=0.5):
    """Predict each point by EMA[t] = gamma * EMA[t-1] + (1 - gamma) * x[t-1], from EMA = 0.

    Returns (predictions for points 0..N-1, the first being the starting 0.0, and
    error 0.5 x mean squared error over points 1..N-1), as the lesson computes them.
    The lesson's loop; in pandas, where alpha weights the new value and gamma the old:
    pd.Series([0.0, *x[:-1]]).ewm(alpha=1 - gamma, adjust=False).mean().
    """
    values = _first_column(train_data)
    predictions = np.empty_like(values)
    ema = predictions[0] = 0.0
    for i in range(1, len(values)):
        ema = ema * gamma + (1.0 - gamma) * values[i - 1]
        predictions[i] = ema
    return predictions, float(0.5 * np.mean((predictions[1:] - values[1:]) ** 2))


def plot_one_step(series, predictions, start, dates, title, path):
    """A one-step baseline's predictions over the (smoothed) training data."""
    fig, ax = plt.subplots(figsize=(12, 5), layout="tight")
    ax.plot(series, color="darkblue", label="actual")
    ax.plot(range(start, start + len(predictions)), predictions, color="orange", label="predicted")
    # The lesson's listing passes 26 date labels for 21 ticks here, which matplotlib
    # now refuses; one label per tick says the same.
    _date_ticks(ax, dates[: len(series)], step=50)
    ax.set(xlabel="Date", ylabel="Mid price (normalised, smoothed)", title=title)
    ax.legend()
    save_figure(fig, path)


# Creating sequences of observations


def create_dataset(dataset, look_back=7, foresight=3):
    """Windows of look_back values, each labelled with the value at i + look_back + foresight.

    The label is foresight + 1 = 4 steps after the window's last value (index
    i + look_back - 1). A series of n values gives n - look_back - foresight windows.
    """
    values = _first_column(dataset)
    n_windows = max(0, len(values) - look_back - foresight)
    if n_windows == 0:
        return np.empty((0, look_back)), np.empty((0,))
    X = np.lib.stride_tricks.sliding_window_view(values, look_back)[:n_windows].copy()
    Y = values[look_back + foresight : look_back + foresight + n_windows].copy()
    return X, Y


# Reshaping the data


def frame_inputs(x, framing="features"):
    """Shape windows for the networks.

    "features" is the lesson's (samples, 1, look_back): one time step holding all
    7 days as features, so a recurrent layer takes a single step and never recurs.
    Its recurrent kernel then only ever multiplies the zero initial state, gets a zero
    gradient and never trains: 4,096 of simple_lstm's 5,153 parameters stay as they
    were initialised. "timesteps" is (samples, look_back, 1): 7 time steps of one
    value each, so the layers recur over the days (--framing timesteps).
    """
    x = np.asarray(x, dtype="float32")
    return x.reshape(len(x), *input_shape_for(framing, x.shape[1]))


def input_shape_for(framing, look_back):
    return (1, look_back) if framing == "features" else (look_back, 1)


# The lesson's data steps, end to end


def prepare_lesson(
    mid, train_size=1000, test_size=251, look_back=7, foresight=3, normalization_window=250
):
    """Every data step of the lesson, in its order, on a series of mid prices.

    Returns the arrays of each step and `splits`: for "train" and "test", the
    scaled series and its windows x and labels y.
    """
    mid = np.asarray(mid, dtype=float)
    train_data = mid[:train_size].reshape(-1, 1)
    test_data = mid[train_size : train_size + test_size].reshape(-1, 1)
    # normalise the training data window by window; the test data on itself
    train_norm = window_normalise(train_data, normalization_window)
    test_scaled, scaler = scale_on_itself(test_data)
    # smooth the training data (the test data is left as it is, as in the lesson)
    train_smooth = exponential_smoothing(train_norm, LESSON["smoothing_gamma"])
    # one-step baselines on the smoothed training data
    sma = sma_one_step(train_smooth, LESSON["sma_window"])
    ema = ema_one_step(train_smooth, LESSON["ema_gamma"])
    # windows and labels
    x_train, y_train = create_dataset(train_smooth, look_back, foresight)
    x_test, y_test = create_dataset(test_scaled, look_back, foresight)
    return {
        "train_data": train_data[:, 0],
        "test_data": test_data[:, 0],
        "train_norm": train_norm[:, 0],
        "train_smooth": train_smooth[:, 0],
        "test_scaled": test_scaled[:, 0],
        "scaler": scaler,
        "sma": sma,
        "ema": ema,
        "splits": {
            "train": {"series": train_smooth[:, 0], "x": x_train, "y": y_train},
            "test": {"series": test_scaled[:, 0], "x": x_test, "y": y_test},
        },
    }


def lesson_steps(mid, train_size, test_size, dates, stock, args, out_dir):
    """The lesson's data steps with their prints and figures; returns what training needs."""
    prep = prepare_lesson(
        mid, train_size, test_size, args.look_back, args.foresight, args.norm_window
    )
    parts = {"train": prep["train_data"], "test": prep["test_data"]}
    plot_split(parts, f"{stock}: the lesson's split", out_dir / "split.png")
    gamma = LESSON["smoothing_gamma"]
    title = f"Training data, window-normalised, before and after smoothing (gamma {gamma})"
    plot_smoothing(prep["train_norm"], prep["train_smooth"], title, out_dir / "smoothing.png")
    (sma_predictions, sma_error), (ema_predictions, ema_error) = prep["sma"], prep["ema"]
    window, gamma = LESSON["sma_window"], LESSON["ema_gamma"]
    print(f"MSE error for standard averaging (window {window}, 0.5 x MSE): {sma_error:.5f}")
    print(f"MSE error for EMA averaging (gamma {gamma}, 0.5 x MSE): {ema_error:.5f}")
    print(
        "  (one step ahead on the smoothed, normalised training data; "
        "the chapter reports 0.00444 and 0.00018 on AAL)"
    )
    title = f"Simple moving average, window {window}: one step ahead"
    plot_one_step(prep["train_smooth"], sma_predictions, window, dates, title, out_dir / "sma.png")
    title = f"Exponential moving average, gamma {gamma}: one step ahead"
    plot_one_step(prep["train_smooth"], ema_predictions, 0, dates, title, out_dir / "ema.png")
    leaks = (
        "leaks in the lesson protocol: the test data are scaled by a MinMaxScaler fitted on "
        "the test data itself, and each training day by the min/max of its "
        f"{args.norm_window}-day window, later days included (window normalisation); the "
        "test set is the validation data, and the chapter names its best network by ranking "
        "one run of each on the test set (visualising the results). "
        "Not a leak but a mismatch: training inputs and targets are smoothed, test ones are not "
        "(smoothing)."
    )
    one_step = {"sma_error": sma_error, "ema_error": ema_error}
    one_step["metric"] = "0.5 x MSE, one step ahead, on the smoothed training data"
    return {
        "splits": prep["splits"],
        "scaler": prep["scaler"],  # the test data's own scaler, as the lesson's plot_predictions
        "to_price": lambda values: _to_price(prep["scaler"], values),  # test values to prices
        "val_split": "test",  # the lesson validates on the test set ...
        "monitor": None,  # ... and scores the model after its last epoch
        "val_label": "test set",
        "sizes": {"train": train_size, "test": test_size},
        "note": leaks,
        "leaks": leaks,
        "extra": {"lesson_one_step": one_step},
    }


# Baseline neural networks: building a feedforward network


def feed_forward(input_shape=(1, 7)):
    """Flatten, Dense 128 relu, Dense 1 linear (compiled in define_and_compile, below).

    The shape comments in these four builders are the lesson's framing, (samples, 1, 7);
    with --framing timesteps the input is [batch, 7, 1] and a full sequence [batch, 7, 16].
    """
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),  # [batch, 1, 7]
            keras.layers.Flatten(),  # -> [batch, 7]
            keras.layers.Dense(128, activation="relu"),  # -> [batch, 128]
            keras.layers.Dense(1, activation="linear"),  # regressor -> [batch, 1]
        ],
        name="feed_forward",
    )


# Recurrent baseline


def simple_gru(input_shape=(1, 7)):
    """GRU 32 with dropout 0.1 and recurrent dropout 0.1, Dense 1 linear.

    Keras 3 changes two defaults of the chapter's Keras 2 GRU: reset_after=True (a
    second bias per gate: 3,969 parameters here, 3,873 with standalone Keras 2.0-2.3's
    reset_after=False; the chapter prints no count) and the sigmoid
    recurrent activation (hard_sigmoid in Keras 2; the LSTMs below change the same way).
    """
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),  # [batch, 1, 7]
            keras.layers.GRU(32, dropout=0.1, recurrent_dropout=0.1),  # -> [batch, 32]
            keras.layers.Dense(1, activation="linear"),  # -> [batch, 1]
        ],
        name="simple_gru",
    )


# Building LSTMs


def simple_lstm(input_shape=(1, 7)):
    """LSTM 32 without dropout, Dense 1 linear."""
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),  # [batch, 1, 7]
            keras.layers.LSTM(32),  # -> [batch, 32]
            keras.layers.Dense(1, activation="linear"),  # -> [batch, 1]
        ],
        name="simple_lstm",
    )


# Stacked LSTM


def lstm_stacked(input_shape=(1, 7)):
    """Two LSTM 16 layers, each with dropout 0.1 and recurrent dropout 0.2, Dense 1 linear."""
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),  # [batch, 1, 7]
            # -> [batch, 1, 16]: the whole sequence, for the next LSTM
            keras.layers.LSTM(16, dropout=0.1, recurrent_dropout=0.2, return_sequences=True),
            keras.layers.LSTM(16, dropout=0.1, recurrent_dropout=0.2),  # -> [batch, 16]
            keras.layers.Dense(1, activation="linear"),  # -> [batch, 1]
        ],
        name="lstm_stacked",
    )


MODEL_BUILDERS = {f.__name__: f for f in (feed_forward, simple_gru, simple_lstm, lstm_stacked)}


# Using helper functions: plot_losses and plot_predictions


def plot_losses(history, name, val_label, path):
    """Training and validation loss per epoch (the lesson's MAE, or what --loss names)."""
    fig, ax = plt.subplots(figsize=(8, 4), layout="tight")
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax.plot(epochs, history["loss"], label="loss")
    ax.plot(epochs, history["val_loss"], label=f"val loss ({val_label})")
    ax.set(xlabel="epoch", ylabel="loss", title=f"{name}: losses")
    ax.legend()
    save_figure(fig, path)


def plot_predictions(predictions, y_test, title, path):
    """Predictions against the actual test labels, both in prices."""
    fig, ax = plt.subplots(figsize=(12, 6), layout="tight")
    ax.plot(predictions, label="generated", color="orange")
    ax.plot(y_test, label="actual")
    ax.set(xlabel="test window", ylabel="Mid price", title=title)
    ax.legend()
    save_figure(fig, path)


# Training the models
# The chapter's train_network loops over the four networks: here run() does the loop (it
# also runs seeds and --jobs), and run_network below is one network's define, compile,
# fit and predict. (The support code's train_network is one model's model.fit.)


def define_and_compile(name, input_shape, args):
    """Define a network, then compile it with the lesson's MAE loss and Adam optimizer.

    extra – --scale, --loss, --optimizer and --learning-rate change those (defaults:
    the lesson's); whatever a network trains on, it is scored with MAE.
    """
    # define model
    model = scale_units(MODEL_BUILDERS[name](input_shape), args.scale)
    # compile model; the lesson: model.compile(loss="mae", optimizer="adam")
    loss, optimizer = training_loss(args.loss), make_optimizer(args.optimizer, args.learning_rate)
    model.compile(loss=loss, optimizer=optimizer, **speed_settings(model, **SPEED))
    return model


def run_network(name, setup, args, seed, out_dir=None, reuse=False):
    """One network through the lesson's steps: define, compile, fit, predict, evaluate.

    The lesson protocol scores the model as it is after its last epoch, as the chapter
    does. (The chapter's ModelCheckpoint(monitor="loss", save_best_only=True) writes a
    file at each better training loss, and nothing ever reads those files back, so we
    don't repeat it.) extra – the strict protocol restores the epoch with the lowest
    validation loss. Given out_dir (the first seed), the model is also summarised and
    saved, and its losses and predictions plotted. extra – reuse: train in an earlier
    model just like it (see reuse_compiled).
    To copy it, the chapter's steps in plain Keras are:
        model = simple_lstm()
        model.compile(loss="mae", optimizer="adam")
        model.fit(x_train, y_train, epochs=50, batch_size=64, validation_data=(x_test, y_test))
        preds = model.predict(x_test)
    (setup holds the data steps' results; scores are MAE on each split, in scaled units
    and, for the test split, in prices.)
    """
    import keras

    frames, splits, val = setup["frames"], setup["splits"], setup["val_split"]
    # define and compile model (seeded, so each training is reproducible on its own)
    keras.utils.set_random_seed(seed)
    model = define_and_compile(name, setup["input_shape"], args)
    if reuse:  # extra – an identical model compiled earlier takes this one's weights
        model = reuse_compiled(model)
    # fit model; strict: keep the best epoch (patience=epochs: it never stops early)
    callbacks = [keep_best_epoch(args.epochs)] if setup["monitor"] else []
    epoch_ends = []  # extra – when each epoch ended, for the convergence exercise
    timer = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: epoch_ends.append(time.perf_counter())
    )
    x, y, validation = frames["train"], splits["train"]["y"], (frames[val], splits[val]["y"])
    t_fit = time.perf_counter()
    fit = train_network(
        model, x, y, args.epochs, args.batch_size, args.verbose, validation, [*callbacks, timer]
    )
    converged = convergence(fit["history"]["val_loss"], np.array(epoch_ends) - t_fit)
    t0 = time.perf_counter()
    # make predictions on every split
    predictions = predict_splits(model, frames)
    # evaluate model: MAE on every split, scored as the baselines are
    scores = score_splits(setup, predictions)
    evaluate_s = time.perf_counter() - t0
    result = {
        "model": model,
        "scores": scores,
        "epoch_kept": callbacks[0].best_epoch + 1 if callbacks else args.epochs,
        "epochs": len(fit["history"]["loss"]),  # epochs run
        "history": fit["history"],
        "predictions": predictions,
        "params": model.count_params(),
        "fit_s": fit["fit_s"],
        "evaluate_s": evaluate_s,
        **converged,
    }
    if out_dir is not None:  # the first seed: summary, saved model, figures
        report_network(name, result, setup, out_dir)
    return result


def report_network(name, result, setup, out_dir):
    """The first seed's steps on screen and on disk: summary, saved model, the two figures."""
    model, splits, to_price = result["model"], setup["splits"], setup["to_price"]
    model.summary()
    save_model(model, out_dir / f"{name}.keras")
    plot_losses(result["history"], name, setup["val_label"], out_dir / f"losses_{name}.png")
    title = f"{name}: test predictions (MAE {result['scores']['test_mae_price']:.3f} in prices)"
    path = out_dir / f"predictions_{name}.png"
    test = to_price(result["predictions"]["test"])
    plot_predictions(test, to_price(splits["test"]["y"]), title, path)


# Beyond the lesson
# extra – the best epoch (strict protocol) and the chapter's exercises: losses,
# optimizers, scale, convergence.


def keep_best_epoch(epochs):
    """extra – the strict protocol: keep the weights of the epoch with the lowest validation
    loss (patience=epochs: it never stops early). Keras 3 restores them at the end of
    training even when it never stopped early; older Keras 2 versions restored them only
    after an early stop, so check yours before copying this."""
    import keras

    return keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=epochs, restore_best_weights=True
    )


def one_training(name, setup, args, seed, heading=None, out_dir=None, keep_model=False):
    """extra – one network with one seed (strict: in one fold), as run_trainings calls it.

    heading: a line to print first (one process only). out_dir: summarise, save and plot
    at once (the first seed; strict: of the last fold; one process only). keep_model:
    return a copy of the trained model, for the parent to do that; otherwise it is
    dropped, so that a worker does not send it back for nothing. The next training of
    this network trains in the model itself (reuse_compiled), put in a new model's state.
    """
    start = time.perf_counter()
    if heading:
        print(heading)
    result = run_network(name, setup, args, seed, out_dir, reuse=True)
    model = result.pop("model")
    if keep_model:  # a copy: the next training may train in this one
        result["model"] = copy_model(model)
    result["seconds"] = time.perf_counter() - start
    return result


def training_loss(name):
    """extra – --loss: mae (the lesson's), mse, or Huber with delta HUBER_DELTA."""
    import keras

    return keras.losses.Huber(delta=HUBER_DELTA) if name == "huber" else name


def make_optimizer(name, learning_rate=None):
    """extra – --optimizer with --learning-rate (None: that optimizer's Keras default)."""
    import keras

    kind = type(keras.optimizers.get(name))
    return kind() if learning_rate is None else kind(learning_rate=learning_rate)


def scale_units(model, factor):
    """extra – --scale: each layer's units times factor, rounded, at least 1 (output: 1)."""
    import keras

    if factor == 1:
        return model
    output = model.layers[-1]

    def scaled(layer):
        config = layer.get_config()
        if layer is not output and "units" in config:
            config["units"] = max(1, round(config["units"] * factor))
        return type(layer).from_config(config)

    return keras.models.clone_model(model, clone_function=scaled)


def convergence(val_loss, seconds, window=5, within=0.01):
    """extra – the first epoch at which the 5-epoch running mean of the validation loss
    comes within 1% of its lowest value, and the seconds of fit until that epoch ended."""
    import pandas as pd

    running = pd.Series(val_loss).rolling(window, min_periods=1).mean().to_numpy()
    epoch = int(np.argmax(running <= running.min() * (1 + within)))
    return {"convergence_epoch": epoch + 1, "convergence_s": float(seconds[epoch])}


def plot_all_losses(histories, val_label, path):
    """Every network's training (solid) and validation (dashed) loss on one figure."""
    fig, ax = plt.subplots(figsize=(10, 5), layout="tight")
    for k, (name, history) in enumerate(histories.items()):
        epochs = np.arange(1, len(history["loss"]) + 1)
        ax.plot(epochs, history["loss"], color=f"C{k}", label=f"{name} training")
        ax.plot(epochs, history["val_loss"], color=f"C{k}", ls="--", label=f"{name} {val_label}")
    ax.set(xlabel="epoch", ylabel="loss", title="Training (solid) and validation (dashed) loss")
    ax.legend(fontsize=8, ncol=2)
    save_figure(fig, path)


# extra – baselines scored on the networks' own targets. The lesson scores SMA and
# EMA one step ahead on the smoothed training data, in 0.5 x MSE; the networks
# predict 4 steps ahead on the test data, in MAE. To compare like with like, each
# baseline below forecasts the networks' label (4 steps after each window's last
# day) from the same split, scored with the same metric on the same targets.


def naive_forecast(x):
    """The last value of each window: "the price 4 days on is today's"."""
    return np.asarray(x, dtype=float)[:, -1]


def _origins(n_values, look_back, foresight):
    """Index of each window's last value, for the windows create_dataset makes."""
    return np.arange(max(0, n_values - look_back - foresight)) + look_back - 1


def sma_levels(series, window_size=26):
    """On every day, the mean of the last window_size values (fewer at the start)."""
    import pandas as pd

    return pd.Series(_first_column(series)).rolling(window_size, min_periods=1).mean().to_numpy()


def smoothed_levels(series, alpha):
    """On every day, the exponentially smoothed level; alpha weights the newest value.

    It starts at the series' first value, and day t uses days up to t only.
    """
    import pandas as pd

    return pd.Series(_first_column(series)).ewm(alpha=alpha, adjust=False).mean().to_numpy()


def drift_forecast(last_prices, past, horizon):
    """A random walk with drift: the last price plus horizon times past's mean daily step."""
    return np.asarray(last_prices) + horizon * (past[-1] - past[0]) / (len(past) - 1)


def sma_forecast(series, look_back=7, foresight=3, window_size=26):
    """Mean of the last window_size values up to each window's last value (fewer at the start)."""
    sma = sma_levels(series, window_size)
    return sma[_origins(len(sma), look_back, foresight)]


def ema_forecast(series, look_back=7, foresight=3, gamma=0.5):
    """EMA up to each window's last value; gamma weights the old average, as in the lesson.

    An EMA forecasts every step ahead with the same value, as the chapter explains.
    It starts at the split's first value rather than the lesson's 0, so the first
    windows are not pulled towards zero. pandas' alpha weights the new value: 1 - gamma.
    """
    ema = smoothed_levels(series, alpha=1 - gamma)
    return ema[_origins(len(ema), look_back, foresight)]


def mae(y_true, y_pred):
    """Mean absolute error, the lesson's loss and metric."""
    return float(np.mean(np.abs(_first_column(y_true) - _first_column(y_pred))))


BASELINES = ("naive", f"sma_{LESSON['sma_window']}", f"ema_{LESSON['ema_gamma']}")


def baseline_forecasts(splits, look_back=7, foresight=3):
    """Each baseline's forecasts of every split's labels: {baseline: {split: forecasts}}."""
    window, gamma = LESSON["sma_window"], LESSON["ema_gamma"]
    naive, sma, ema = BASELINES
    forecasts = {naive: {}, sma: {}, ema: {}}
    for name, split in splits.items():
        forecasts[naive][name] = naive_forecast(split["x"])
        forecasts[sma][name] = sma_forecast(split["series"], look_back, foresight, window)
        forecasts[ema][name] = ema_forecast(split["series"], look_back, foresight, gamma)
    return forecasts


def predict_splits(model, frames):
    """Predict every split in one call, then cut it apart.

    Calling the model directly (as a function) runs it once, with no traced predict
    function per model: model.predict() would trace one for each new model. The lesson's
    `preds = model.predict(x_test)` gives the same numbers (to float rounding).
    """
    import keras

    joined = np.concatenate(list(frames.values()))
    flat = keras.ops.convert_to_numpy(model(joined, training=False)).reshape(-1)
    bounds = np.cumsum([0] + [len(frame) for frame in frames.values()])
    return {name: flat[bounds[k] : bounds[k + 1]] for k, name in enumerate(frames)}


def score_splits(setup, predictions):
    """MAE on every split, and on the test split in prices too."""
    scores = {
        f"{name}_mae": mae(split["y"], predictions[name]) for name, split in setup["splits"].items()
    }
    to_price = setup["to_price"]
    scores["test_mae_price"] = mae(
        to_price(setup["splits"]["test"]["y"]), to_price(predictions["test"])
    )
    return scores


def _to_price(scaler, values):
    return scaler.inverse_transform(np.reshape(values, (-1, 1)))[:, 0]


# extra – does the data fit the split? Bad data stops before anything is written.


def check_sizes(n_rows, train_size, test_size, args, where):
    """Raise DataError unless the split fits the series and holds enough rows for every step."""
    protocol, look_back, foresight = args.protocol, args.look_back, args.foresight
    # the fewest rows each part needs, and why (one window = look_back + foresight + 1 rows)
    need_test = need_train = look_back + foresight + 1
    if protocol == "lesson":
        need_train = max(args.norm_window, LESSON["sma_window"] + 1, need_test)
        why = (
            f"training part >= {need_train} for the {args.norm_window}-row normalisation window, "
            f"the {LESSON['sma_window']}-day SMA and one {look_back}+{foresight} window; "
            f"test part >= {need_test}"
        )
    else:  # the first fold trains on 3 windows or more (2 fit, 1 validates); 1 target per fold
        need_train, need_test = look_back + 2 * (foresight + 1) + 1, args.folds
        why = (
            f"training part >= {need_train} for 3 training windows whose "
            f"{look_back}+{foresight}+1 days end before the first test target; test part >= "
            f"{need_test}, a target for each of the {args.folds} folds (--folds)"
        )
    if args.train_size is not None or args.test_size is not None:  # sizes given
        for option, size, need in (
            ("--train-size", train_size, need_train),
            ("--test-size", test_size, need_test),
        ):
            if size < need:
                raise DataError(
                    f"{option} {size} is too small: "
                    f"the {protocol} protocol needs at least {need} ({why})"
                )
        if train_size + test_size > n_rows:
            raise DataError(
                f"the split needs {train_size} + {test_size} = {train_size + test_size} rows "
                f"(--train-size/--test-size) but {where} has only {n_rows}; lower them"
            )
        return
    if train_size >= need_train and test_size >= need_test:
        return
    # the fewest rows whose lesson-proportion split is big enough (from 1,251 rows: 1,000 + 251)
    for needed in range(n_rows + 1, LESSON["train_size"] + LESSON["test_size"] + 1):
        train, test = split_sizes(needed)
        if train >= need_train and test >= need_test:
            raise DataError(
                f"too few rows: the {protocol} protocol needs at least {needed} rows ({why}), "
                f"found {n_rows} in {where}"
            )
    raise DataError(
        f"the split of {train_size} training and {test_size} test rows is too small here ({why}); "
        "set larger --train-size/--test-size, or a smaller --look-back/--foresight"
    )


# extra – summaries over seeds, the verdict and the comparison figure


def summarise(results):
    """One row per model: the mean (and std, from 2 seeds) of every score; ranked by test MAE."""
    rows = []
    for name, entry in results.items():
        row = {"model": name, "kind": entry["kind"]}
        for key, values in entry["scores"].items():
            summary = mean_std(values)
            row[key] = summary["mean"]
            if "std" in summary:
                row[f"{key}_std"] = summary["std"]
        row.update({k: v for k, v in entry.items() if k not in ("kind", "scores")})
        rows.append(row)
    rows.sort(key=lambda row: row["test_mae"])
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


def add_cost(spent, name, fit_s, epochs, epochs_kept):
    """extra – add trainings to spent[name], the input of training_cost.

    fit_s: one list of fit seconds per seed; epochs, epochs_kept: one value per training.
    """
    entry = spent.setdefault(name, {"fit_s": [[] for _ in fit_s], "epochs": [], "epochs_kept": []})
    for times, more in zip(entry["fit_s"], fit_s):
        times.extend(more)
    entry["epochs"] += epochs
    entry["epochs_kept"] += epochs_kept


def print_results(rows, n_targets, with_std, cost):
    """The results table: every network and baseline on the same test targets.

    cost: {network: training_cost(...)}, the fit seconds and epochs of each training.
    """
    print(f"MAE on the {n_targets} test targets (scaled units; in prices via the test scaler):")
    columns = ["rank", "model", "test MAE"] + (["± std"] if with_std else [])
    columns += ["test MAE (price)", "train MAE", "params", "trained on", "epoch kept"]
    columns += ["conv. epoch", "conv. s"]  # one per seed; see convergence()
    columns += ["fit s", "epochs"]  # mean fit seconds per training; epochs trained
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
    print_table(table, columns)


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
    save_figure(fig, path)


# extra – the strict protocol: a forecaster's evaluation over rolling origins
#
# The question stays the chapter's: the mid price h = foresight + 1 = 4 trading days
# after a 7-day window. The strict protocol asks it as a forecaster would.
# - The windows are made once, on the whole series. A window's forecast is made on its
#   last day t, for the target day t + h.
# - The targets of the test part (--test-size rows after --train-size) are cut into
#   --folds consecutive blocks. A fold's origin is the day its first forecast is made,
#   h days before the block's first target. The fold learns only from what is known on
#   that day: it trains on the windows whose target is on or before the origin (the
#   last 20% of them validate, to keep the best epoch), fits its scaler, the drift, AR
#   and SES baselines on those rows, and retrains every network from scratch.
# - Every model is then scored on the block's targets in prices: MAE, MASE and skill
#   against naive; and a Diebold-Mariano test asks whether a network's lead is real.

FORECASTERS = ("naive", "drift", "ar", "ses", *BASELINES[1:])  # the strict protocol's baselines


def rolling_folds(n_rows, first_target, n_targets, folds, look_back, horizon):
    """The last day t of every window on the whole series, and each fold's windows.

    Window k holds days t[k] - look_back + 1 .. t[k]; its target is day t[k] + horizon.
    Each fold: its origin (a day), its training windows (target on or before the origin,
    in time order) and its test windows (target in the fold's block of target days).
    """
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


def window_arrays(mid, t, look_back, horizon, target, scaler):
    """Inputs x and labels y of the windows ending on days t, in the networks' units.

    price: the mid prices through the fold's MinMaxScaler (fitted on rows up to its origin).
    log-return: each window's log prices relative to its last day, so its last input is 0;
    the label is log(p[t + h] / p[t]), and naive forecasts 0.
    """
    days = t[:, None] + np.arange(1 - look_back, 1)
    if target == "log-return":
        log_p = np.log(mid)
        return log_p[days] - log_p[t, None], log_p[t + horizon] - log_p[t]
    scaled = scaler.transform(mid.reshape(-1, 1))[:, 0]
    return scaled[days], scaled[t + horizon]


def to_prices(values, mid, t, target, scaler):
    """Forecasts in the networks' units (windows ending on days t), back to prices."""
    values = np.reshape(values, -1)
    if target == "log-return":
        return mid[t] * np.exp(values)
    return scaler.inverse_transform(values.reshape(-1, 1))[:, 0]


def fit_ses_alpha(past):
    """Simple exponential smoothing's alpha: least squares one-step errors on the training rows."""
    from scipy.optimize import minimize_scalar

    def squared_errors(alpha):
        level = smoothed_levels(past, alpha)
        return float(np.sum((past[1:] - level[:-1]) ** 2))

    return float(minimize_scalar(squared_errors, bounds=(0.01, 1.0), method="bounded").x)


def baseline_prices(mid, t, origin, horizon, train_xy, x_test, to_price):
    """Every baseline's price forecast for the windows ending on days t.

    drift, AR and SES learn from the rows up to the fold's origin only. SMA, EMA and
    SES at day t use days up to t (pandas' rolling and ewm never look ahead).
    """
    from sklearn.linear_model import LinearRegression

    past = mid[: origin + 1]
    ar = LinearRegression().fit(*train_xy)  # least squares on the same 7-day windows
    naive, sma, ema = BASELINES
    return {
        "naive": mid[t],
        "drift": drift_forecast(mid[t], past, horizon),
        "ar": to_price(ar.predict(x_test)),
        "ses": smoothed_levels(mid, fit_ses_alpha(past))[t],
        sma: sma_levels(mid, LESSON["sma_window"])[t],
        ema: smoothed_levels(mid, 1 - LESSON["ema_gamma"])[t],
    }


def naive_scale(past, horizon):
    """MASE's denominator: the in-sample h-step naive MAE on the fold's training rows."""
    return mae(past[horizon:], past[:-horizon])


def prepare_fold(mid, t, fold, args):
    """One origin, fitted on what is known there: the networks' data and the baselines.

    Returns (setup, known): setup, what every network of the fold trains and is scored on
    (see run_network); known, what score_fold needs: the baselines' price forecasts, the
    scaler, the targets. The networks train in between (one_training, --jobs).
    """
    from sklearn.preprocessing import MinMaxScaler

    horizon, origin, train, test = args.foresight + 1, fold["origin"], fold["train"], fold["test"]
    scaler = None  # log-return: the values are already scale-free
    if args.target == "price":
        scaler = MinMaxScaler().fit(mid[: origin + 1].reshape(-1, 1))
    x, y = window_arrays(mid, t, args.look_back, horizon, args.target, scaler)
    t_test = t[test]

    def to_price(values):
        return to_prices(values, mid, t_test, args.target, scaler)

    forecasts = baseline_prices(
        mid, t_test, origin, horizon, (x[train], y[train]), x[test], to_price
    )
    n_val = round(len(train) * VAL_FRACTION)
    parts = {"train": train[:-n_val], "val": train[-n_val:], "test": test}
    setup = {
        "frames": {name: frame_inputs(x[rows], args.framing) for name, rows in parts.items()},
        "splits": {name: {"y": y[rows]} for name, rows in parts.items()},
        "to_price": to_price,
        "input_shape": input_shape_for(args.framing, args.look_back),
        "val_split": "val",
        "monitor": "val_loss",
        "val_label": "validation",
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
    """Every model of one fold scored in prices: MAE, MASE, skill against naive.

    results: {network: [run_network's result per seed]}. Returns {model: {mae, mae_price,
    mase, skill, errors (absolute, in prices)}} and each network's fit seconds and epochs kept.
    """
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
    """One-sided Diebold-Mariano test with the Harvey-Leybourne-Newbold correction.

    loss_differential: |naive error| - |model error| per target, in time order, so a
    positive mean favours the model. The variance of its mean is Newey-West's, with a
    Bartlett kernel and horizon - 1 lags (h-step errors overlap by h - 1 days).
    Returns (statistic, p-value), the p-value of "the model's expected absolute error
    is lower" from Student's t with n - 1 degrees of freedom; (None, None) when the
    variance is not positive (e.g. a model that forecasts exactly naive).
    """
    from scipy import stats

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


def evaluate_stock(mid, dates, train_size, test_size, args, seeds, out_dir):
    """Every fold of one stock, then its summary: mean and spread over folds, DM p-values."""
    horizon = args.foresight + 1
    t, folds = rolling_folds(len(mid), train_size, test_size, args.folds, args.look_back, horizon)
    per_fold, fold_log, errors, residuals = [], [], {}, {}
    # every fold's data and baselines first; then all its networks x seeds train (--jobs)
    inline = args.jobs == 1  # one process: each fold's line before its trainings, as they run
    prepared, trainings = [], []
    for k, fold in enumerate(folds, start=1):
        t0 = time.perf_counter()
        prepared.append((*prepare_fold(mid, t, fold, args), time.perf_counter() - t0))
        targets = t[fold["test"]] + horizon
        heading = (
            f"fold {k}/{len(folds)}: origin {dates[fold['origin']]}; trains on "
            f"{len(fold['train'])} windows (targets up to the origin), tests "
            f"{len(targets)} targets {dates[targets[0]]} to {dates[targets[-1]]}"
        )
        if not inline:
            print(heading)
        last = k == len(folds)  # only the last fold's models are saved
        for name in args.models:
            for r, seed in enumerate(seeds):
                first = name == args.models[0] and r == 0
                report = out_dir if last and r == 0 and inline else None
                call = (name, prepared[-1][0], args, seed, heading if first and inline else None)
                call += (report, last and r == 0 and not inline)
                trainings.append((f"fold {k} {name} seed {seed}", one_training, call))
    results, spent = iter(run_trainings(trainings, args.jobs, out_dir)), {}
    for k, (fold, (setup, known, prepare_s)) in enumerate(zip(folds, prepared), start=1):
        last = k == len(folds)
        t0 = time.perf_counter()
        by_network = {name: [next(results) for _ in seeds] for name in args.models}
        for name, seed_results in by_network.items():  # extra – each network's cost
            fit_s = [[result["fit_s"]] for result in seed_results]  # one list per seed
            epochs = [result["epochs"] for result in seed_results]
            add_cost(spent, name, fit_s, epochs, [r["epoch_kept"] for r in seed_results])
        if last and not inline:  # from the workers: this process prints and saves
            for name, seed_results in by_network.items():
                report_network(name, seed_results[0], setup, out_dir)
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
        summary[name] = {"kind": "network" if name in NETWORKS else "baseline"}
        for key in ("mase", "skill", "mae", "mae_price"):
            values = [scores[name][key] for scores in per_fold]
            summary[name][key] = float(np.mean(values))
            summary[name][f"{key}_folds"] = values
        if len(per_fold) > 1:
            summary[name]["mase_std"] = float(np.std(summary[name]["mase_folds"], ddof=1))
        if name in NETWORKS:  # mean over folds and seeds
            for key in ("convergence_epochs", "convergence_s"):
                values = [v for f in fold_log for v in f["networks"][name][key]]
                summary[name][key] = float(np.mean(values))
        if name in NETWORKS and args.target == "log-return":
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
    layout = {"t": t, "folds": folds, "residuals": residuals}
    return summary, fold_log, {**layout, "spent": spent}  # spent: for training_cost


def print_evaluation(summary, stock, n_folds, cost):
    """One table per stock: every model's mean over folds, ranked by MASE.

    cost: {network: training_cost(...)}: mean fit seconds per training, epochs run and kept.
    """
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
    columns = ["rank", "model", "MASE", "±", "skill vs naive", "MAE", "MAE $", "DM p"]
    print_table(table, columns + ["conv. epoch", "conv. s", "fit s", "epochs", "kept"])


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


def plot_folds(mid, dates, t, folds, horizon, title, path):
    """The mid price with each fold's origin (dashed) and its block of test targets (shaded)."""
    fig, ax = plt.subplots(figsize=(12, 5), layout="tight")
    ax.plot(mid, color="k", lw=1, label="mid price")
    for k, fold in enumerate(folds):
        targets = t[fold["test"]] + horizon
        ax.axvspan(targets[0], targets[-1], color=f"C{k}", alpha=0.25)
        ax.axvline(fold["origin"], color=f"C{k}", ls="--", label=f"fold {k + 1} origin")
    _date_ticks(ax, dates, step=max(1, len(dates) // 15))
    ax.set(ylabel="Mid price", title=title)
    ax.legend(fontsize=8)
    save_figure(fig, path)


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


def ticker_list(text):
    """argparse type for --tickers: 'A,B,C' (upper-cased, no repeats) or 'all'."""
    tickers = list(dict.fromkeys(t.strip().upper() for t in text.split(",") if t.strip()))
    if not tickers:
        raise argparse.ArgumentTypeError(f"expected tickers like AAL,MSFT or 'all', got {text!r}")
    return ["all"] if tickers == ["ALL"] else tickers


def resolve_tickers(args):
    """The stocks to evaluate: --tickers (each one checked; 'all': every one in the CSV)."""
    if not args.tickers:
        return [args.ticker or "AAL"]
    csv = args.csv or (KAGGLE_CSV if KAGGLE_CSV.is_file() else None)
    need = "--tickers needs a CSV with a Name column, such as Kaggle's all_stocks_5yr.csv"
    if csv is None:
        fail(f"{need}: pass it with --csv")
    try:
        frame, _ = read_csv_frame(Path(csv), file_stamp(Path(csv)))
    except DataError as exc:
        fail(str(exc))
    if "name" not in frame:
        fail(f"{need}; {csv} has none")
    available = sorted(frame["name"].str.strip().str.upper().dropna().unique())
    if args.tickers == ["all"]:
        return available
    unknown = [ticker for ticker in args.tickers if ticker not in available]
    if unknown:
        fail(
            f"--tickers: {', '.join(unknown)} not in {csv} ({len(available)} tickers available, "
            f"the first {min(20, len(available))}: {', '.join(available[:20])})"
        )
    return args.tickers


def run_strict(args):
    """The strict protocol on each stock: rolling origins, scale-free scores, DM tests."""
    t_start = time.perf_counter()
    seeds = seed_list(args)
    # every stock is loaded and checked first: bad data stops here, nothing written
    stocks = [load_stock(args, ticker) for ticker in resolve_tickers(args)]
    out_dir = prepare_out_dir(args.out_dir)
    horizon = args.foresight + 1
    evaluation, fold_logs, data, forecasts, spent = {}, {}, {}, {}, {}
    for stock in stocks:
        name, mid, dates = stock["name"], stock["mid"], stock["data"]["dates"]
        stock_dir = out_dir if len(stocks) == 1 else prepare_out_dir(out_dir / name)
        if len(stocks) > 1:
            print(f"\n== {name} ==")
        describe_stock(stock, stock_dir)
        print(
            f"strict protocol: {args.folds} rolling origins over the {stock['test_size']} test "
            f"days; target {args.target}, h = {horizon}; inputs framed as {args.framing}"
        )
        print(training_settings(args))
        summary, fold_logs[name], layout = evaluate_stock(
            mid, dates, stock["train_size"], stock["test_size"], args, seeds, stock_dir
        )
        title = f"{name}: rolling origins (dashed) and the test targets of each fold (shaded)"
        plot_folds(
            mid, dates, layout["t"], layout["folds"], horizon, title, stock_dir / "split.png"
        )
        title = f"{name}, strict protocol: MASE per model (± std over {args.folds} folds)"
        plot_mase({name: summary}, title, stock_dir / "comparison.png")
        for network, entry in layout["spent"].items():  # extra – the cost, over every stock
            add_cost(spent, network, entry["fit_s"], entry["epochs"], entry["epochs_kept"])
        cost = {network: training_cost(**entry) for network, entry in layout["spent"].items()}
        print()
        print_evaluation(summary, name, args.folds, cost)
        for row in summary.values():
            if "finding" in row:
                print(f"finding: {row['finding']}")
        evaluation[name], data[name] = summary, data_record(stock)
        if args.forecast:
            mase = {model: row["mase"] for model, row in summary.items()}
            mase = {m: mase[m] for m in ("naive", "drift", *args.models)}
            kept = {
                m: [e for f in fold_logs[name] for e in f["networks"][m]["epochs_kept"]]
                for m in args.models
            }
            epochs = {m: int(np.median(e)) for m, e in kept.items()}
            forecasts[name] = forecast_ahead(
                stock, args, seeds, layout["residuals"], mase, epochs, stock_dir
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

    record = run_record(args, seeds, __file__)
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


# extra – --forecast: the mid price h trading days after the last date in the data


def forecast_ahead(stock, args, seeds, residuals, mase, epochs, out_dir):
    """Refit every network and its scaler on all rows, then forecast h days past the last date.

    Every window whose target is known trains, none validates: a model that stops before
    the last days has not seen the prices it forecasts from. epochs: {network: epochs},
    as the run chose them (the lesson: all; strict: the median best epoch over its folds).
    residuals: {model: held-out h-step errors in prices (truth - forecast)} from the run;
    their 10% and 90% quantiles give each forecast an 80% interval. Business days
    (pandas' BDay) date the forecast: exchange holidays are not skipped.
    """
    import pandas as pd
    from sklearn.preprocessing import MinMaxScaler

    mid, dates, horizon = stock["mid"], stock["data"]["dates"], args.foresight + 1
    last = len(mid) - 1
    scaler = None if args.target == "log-return" else MinMaxScaler().fit(mid.reshape(-1, 1))
    t = np.arange(args.look_back - 1, last - horizon + 1)  # every window with a known target
    x, y = window_arrays(mid, t, args.look_back, horizon, args.target, scaler)
    x_now = window_arrays(mid, np.array([last]), args.look_back, 0, args.target, scaler)[0]
    print(
        f"forecast: refitting every network and its scaler on all {len(mid)} rows ({len(t)} "
        f"windows), epochs {', '.join(f'{n} {e}' for n, e in epochs.items())}"
    )
    forecasts = {"naive": mid[last], "drift": float(drift_forecast(mid[last], mid, horizon))}
    frames = {"train": frame_inputs(x, args.framing), "now": frame_inputs(x_now, args.framing)}
    refits = [
        (f"refit {name} seed {seed}", refit_network, (name, frames, y, args, seed, epochs[name]))
        for name in args.models
        for seed in seeds
    ]
    now = iter(run_trainings(refits, args.jobs, out_dir))  # each: the network's value now
    for name in args.models:
        values = np.concatenate([next(now) for _ in seeds])
        prices = to_prices(values, mid, np.full(len(seeds), last), args.target, scaler)
        forecasts[name] = float(np.mean(prices))
    day = (pd.Timestamp(dates[-1]) + pd.offsets.BDay(horizon)).date()
    table, record = [], {}
    for name, value in forecasts.items():
        errors = np.asarray(residuals.get(name, []), dtype=float)
        low, high = (value + np.quantile(errors, [0.1, 0.9])) if len(errors) else (None, None)
        record[name] = {
            "mid_price": float(value),
            "low": None if low is None else float(low),
            "high": None if high is None else float(high),
            "residuals": len(errors),
            "test_mase": mase.get(name),
        }
        table.append(
            {
                "model": name,
                "date": str(day),
                "mid price": float(value),
                "80% low": low if low is not None else "",
                "80% high": high if high is not None else "",
                "test MASE": mase.get(name, ""),
            }
        )
    print(
        f"forecast of the mid price on {day}, {horizon} business days after {dates[-1]} "
        "(exchange holidays are not skipped):"
    )
    print_table(table, ["model", "date", "mid price", "80% low", "80% high", "test MASE"])
    beat = "the baselines (naive, drift) are what the networks must beat" + (
        "; test MASE: " + ", ".join(f"{n} {v:.2f}" for n, v in mase.items()) if mase else ""
    )
    print(beat)
    plot_forecast(mid, dates, record, day, beat, out_dir / "forecast.png")
    return {
        "date": str(day),
        "last_date": str(dates[-1]),
        "horizon_business_days": horizon,
        "refit_rows": len(mid),
        "epochs": epochs,
        "interval": "80%: forecast + the 10% and 90% quantiles of the model's held-out errors"
        + (
            "; lesson protocol: a network's errors come from the lesson's pipeline (smoothed,"
            " window-normalised training; test scaled on itself), not from the refit model"
            if args.protocol == "lesson"
            else ""
        ),
        "calendar": "pandas BDay: weekdays; exchange holidays are not skipped",
        "models": record,
        "note": beat,
    }


def refit_network(name, frames, y, args, seed, epochs):
    """extra – --forecast: one network, one seed, trained on frames["train"] without
    validation; returns its forecast for frames["now"], in the networks' units."""
    import keras

    keras.utils.set_random_seed(seed)
    model = define_and_compile(name, input_shape_for(args.framing, args.look_back), args)
    model = reuse_compiled(model)
    train_network(model, frames["train"], y, epochs, args.batch_size, 0)
    return predict_splits(model, {"now": frames["now"]})["now"]  # float32, shape (1,)


def plot_forecast(mid, dates, record, day, note, path):
    """The last 60 days of mid prices, then each model's forecast with its 80% interval."""
    import pandas as pd

    fig, ax = plt.subplots(figsize=(12, 5), layout="tight")
    recent = pd.to_datetime(dates[-60:])
    ax.plot(recent, mid[-60:], color="k", label="mid price")
    offsets = np.linspace(-1.5, 1.5, len(record))
    for k, (name, row) in enumerate(record.items()):
        when = pd.Timestamp(day) + pd.Timedelta(hours=12 * offsets[k])
        (point,) = ax.plot([when], [row["mid_price"]], "o", label=name)
        if row["low"] is not None:  # a biased model's interval need not hold its forecast
            ax.vlines(when, row["low"], row["high"], color=point.get_color())
    ax.set(ylabel="Mid price", title=f"Forecasts for {day} with 80% intervals\n{note}")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8, ncol=2)
    save_figure(fig, path)


# Command line


def build_parser():
    parser = ArgumentParser(
        description="The LSTM chapter's stock comparison: four networks forecast a stock's mid "
        "price 4 days after a 7-day window, the lesson's way or leak-free, against baselines.",
        formatter_class=HelpFormatter,
    )
    add = parser.add_argument
    add(
        "--protocol",
        choices=("lesson", "strict"),
        default="lesson",
        help="lesson: every step as the "
        "chapter does it; strict: time-ordered train/val/test, train-only scaler, no smoothing",
    )
    add(
        "--csv",
        type=Path,
        help="price CSV with date, high and low columns (e.g. Kaggle's "
        "all_stocks_5yr.csv); unset: data/all_stocks_5yr.csv if present, else Google's prices "
        "shipped with matplotlib",
    )
    add("--ticker", help="rows to use when the CSV has a Name column (unset: AAL)")
    add(
        "--tickers",
        type=ticker_list,
        help="strict protocol: evaluate several stocks, e.g. AAL,MSFT,XOM, or 'all' the "
        "tickers in a CSV with a Name column (Kaggle's all_stocks_5yr.csv)",
    )
    add(
        "--train-size",
        type=positive_int,
        help="training rows; unset: the lesson's 1000, or "
        "the same share of a shorter series; one size alone sets the other in 1000:251",
    )
    add(
        "--test-size",
        type=positive_int,
        help="test rows right after the training rows; unset: the lesson's 251, or the same share",
    )
    add("--look-back", type=positive_int, default=LESSON["look_back"], help="days per window")
    add(
        "--foresight",
        type=positive_int,
        default=LESSON["foresight"],
        help="the label is foresight + 1 days after the window's last day",
    )
    add(
        "--norm-window",
        type=positive_int,
        default=LESSON["normalization_window"],
        help="lesson protocol: rows per window of the training normalisation",
    )
    add(
        "--framing",
        choices=FRAMINGS,
        default="features",
        help="features: (samples, 1, look_back) as the lesson; "
        "timesteps: (samples, look_back, 1), so recurrent layers recur over the days",
    )
    add(
        "--folds",
        type=positive_int,
        help="strict protocol: rolling origins over the test part, each retraining every "
        "network (unset: 5)",
    )
    add(
        "--target",
        choices=("price", "log-return"),
        help="strict protocol: what the networks predict; log-return: log(p[t+h]/p[t]) from "
        "the window's log prices relative to its last day (unset: price)",
    )
    add(
        "--models",
        nargs="+",
        choices=NETWORKS,
        default=list(NETWORKS),
        metavar="NAME",
        help=f"networks to train, any of: {', '.join(NETWORKS)}",
    )
    add(
        "--epochs",
        type=positive_int,
        default=LESSON["epochs"],
        help=f"epochs per network ({QUICK['epochs']} with --quick)",
    )
    add("--batch-size", type=positive_int, default=LESSON["batch_size"], help="batch size")
    add("--optimizer", choices=OPTIMIZERS, default="adam", help="the networks' optimizer")
    add(
        "--learning-rate",
        type=positive_float,
        help="the optimizer's learning rate (unset: that optimizer's Keras default, printed)",
    )
    add(
        "--loss",
        choices=("mae", "mse", "huber"),
        default="mae",
        help=f"training loss (huber: delta {HUBER_DELTA}); every model is scored with MAE",
    )
    add(
        "--scale",
        type=positive_float,
        default=1.0,
        help="multiply every hidden layer's units by this (0.5 halves, 2 doubles; each "
        "keeps at least 1 unit)",
    )
    add(
        "--repeats",
        type=positive_int,
        default=1,
        help="train each network with this many seeds (seed, seed+1, ...); report mean ± std",
    )
    add(
        "--jobs",
        type=positive_int,
        default=1,
        help="independent trainings (networks x seeds; strict: x folds; --forecast's refits) "
        "run in this many worker processes; same numbers as 1, and each worker loads Keras again",
    )
    add("--seed", type=non_negative_int, default=7, help="random seed (0 or more)")
    add(
        "--quick",
        action="store_true",
        help=f"tiny run that shows every step in seconds: --epochs {QUICK['epochs']}",
    )
    add(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="Keras fit output: 0 silent, 1 progress bar, 2 one line per epoch",
    )
    add(
        "--out-dir",
        type=Path,
        help="folder for figures, models and metrics.json; "
        "unset: outputs/stock_lstm_compare/<protocol>",
    )
    add(
        "--forecast",
        action="store_true",
        help="also refit every network on all rows and forecast the mid price foresight + 1 "
        "business days after the last date, with naive and drift, and 80%% intervals",
    )
    add("--show", action="store_true", help="also open the figures in a window")
    return parser


def positive_float(text):
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def training_settings(args):
    """One line: what the networks train with (the optimizer's default rate when unset)."""
    rate = make_optimizer(args.optimizer, args.learning_rate).learning_rate
    default = "" if args.learning_rate else ", Keras's default"
    delta = f" (delta {HUBER_DELTA})" if args.loss == "huber" else ""
    scale = f"; units x {args.scale:g}" if args.scale != 1 else ""
    return (
        f"training: loss {args.loss}{delta}, optimizer {args.optimizer}, learning rate "
        f"{float(rate):g}{default}{scale}; every model is scored with MAE"
    )


def parse_args(argv=None):
    args = parse_args_with_quick(build_parser(), argv, QUICK)
    if args.protocol == "lesson":  # the options of the forecaster's evaluation
        for option, value in (("--folds", args.folds), ("--tickers", args.tickers)):
            if value is not None:
                fail(f"{option} belongs to the strict protocol's evaluation: add --protocol strict")
        if args.target == "log-return":
            fail(
                "--target log-return needs --protocol strict: the lesson's window-normalised "
                "values include exact zeros (each window's minimum), whose log is undefined"
            )
    if args.tickers and args.ticker:
        fail("give --ticker (one stock) or --tickers (several), not both")
    if args.ticker and args.csv is None and not KAGGLE_CSV.is_file():
        fail(
            f"--ticker {args.ticker} needs a CSV with a Name column (--csv, e.g. Kaggle's "
            "all_stocks_5yr.csv): without one the data are matplotlib's Google prices"
        )
    args.folds, args.target = args.folds or 5, args.target or "price"
    args.models = [name for name in NETWORKS if name in args.models]  # in the lesson's order
    args.out_dir = args.out_dir or Path("outputs") / Path(__file__).stem / args.protocol
    lower = "--jobs or --train-size/--test-size, or a smaller --csv"
    check_memory(memory_estimate(args), lower, training_processes(args))
    return args


def memory_estimate(args):
    """extra – the peak bytes the data will need, from the CSV's size and the split's sizes.

    This process reads the CSV as text (strict: then the windows of the whole series, and
    each fold's); every process that trains (this one, or each --jobs worker) holds the
    windows of train + test rows. No CSV (the small fallback data): 0. See FOLD_BYTES.
    """
    csv = args.csv or (KAGGLE_CSV if KAGGLE_CSV.is_file() else None)
    if csv is None or not Path(csv).is_file():
        return 0  # a missing file is reported when it is read
    size = Path(csv).stat().st_size
    # the windows: train + test rows, at most the file's rows (a line is 16 bytes or more)
    rows = min(sum(split_sizes(size, args.train_size, args.test_size)), size // 16)
    folds = args.folds if args.protocol == "strict" else 1
    trainers = training_processes(args)
    need = size * CSV_MEMORY_FACTOR + trainers * rows * TRAINING_BYTES * max(1.0, args.scale)
    if args.protocol == "strict":
        need += size * WINDOWS_MEMORY_FACTOR + folds * rows * FOLD_BYTES
    return int(need)


def training_processes(args):
    """extra – the processes training at once: this one, or min(--jobs, trainings) workers."""
    folds = args.folds if args.protocol == "strict" else 1
    return max(1, min(args.jobs, len(args.models) * args.repeats * folds))


# The whole run, as the chapter goes: load_stock and describe_stock (importing the data,
# sorting and plotting), then run: the data steps (lesson_setup), the baselines, the four
# networks trained and scored one after another, and the results table.


def load_stock(args, ticker):
    """One stock's prices, mid prices and split, checked: bad data is one line, exit 2."""
    try:
        data = load_prices(args.csv, ticker)
        if args.ticker and data["source"]["kind"] == "csv" and data["source"]["ticker"] is None:
            raise DataError(
                f"--ticker {args.ticker}: {data['where']} has no Name column, so it holds one "
                "stock; drop --ticker, or give a CSV with a Name column"
            )
        mid = mid_prices(data["high"], data["low"])
        train_size, test_size = split_sizes(len(mid), args.train_size, args.test_size)
        check_sizes(len(mid), train_size, test_size, args, data["where"])
        if args.target == "log-return" and not (mid > 0).all():
            raise DataError(
                f"--target log-return needs positive prices; {data['where']} has some <= 0"
            )
    except DataError as exc:
        fail(str(exc))
    name = data["source"]["ticker"] or "prices"
    return dict(data=data, mid=mid, train_size=train_size, test_size=test_size, name=name)


def describe_stock(stock, out_dir):
    """Print where the prices came from, any repair and the split; plot the highs and lows."""
    data, mid = stock["data"], stock["mid"]
    print(f"data: {data['where']}, {len(mid)} days {data['dates'][0]} to {data['dates'][-1]}")
    if "read_as" in data["source"]:
        print(f"read as: {', '.join(data['source']['read_as'])}")
    for repair in data["repairs"]:
        print(f"data repair: {repair}")
    print(f"mid prices: {len(mid)}, the first three {', '.join(f'{v:g}' for v in mid[:3])}")
    unused = len(mid) - stock["train_size"] - stock["test_size"]
    print(
        f"split: {stock['train_size']} training and {stock['test_size']} test mid prices"
        + (f" ({unused} later rows unused)" if unused else "")
    )
    plot_high_low(data, f"{stock['name']}: daily high and low", out_dir / "prices.png")


def data_record(stock):
    """The data part of metrics.json."""
    data, mid = stock["data"], stock["mid"]
    return {
        **data["source"],
        "description": data["where"],
        "rows": len(mid),
        "first_date": str(data["dates"][0]),
        "last_date": str(data["dates"][-1]),
        "first_mid_prices": mid[:3].tolist(),
        "repairs": data["repairs"],
    }


def run(args):
    """The lesson's steps, then one table of every model and baseline (strict: run_strict)."""
    if args.protocol == "strict":
        return run_strict(args)
    t_start = time.perf_counter()
    seeds = seed_list(args)
    stock = load_stock(args, args.ticker or "AAL")  # bad data stops here, nothing written
    data, mid, train_size, test_size = (
        stock[k] for k in ("data", "mid", "train_size", "test_size")
    )
    out_dir = prepare_out_dir(args.out_dir)
    describe_stock(stock, out_dir)

    # the lesson's data steps, with their figures
    setup = lesson_steps(mid, train_size, test_size, data["dates"], stock["name"], args, out_dir)
    setup["sizes"]["unused"] = len(mid) - train_size - test_size
    splits = setup["splits"]
    windows = {name: len(split["y"]) for name, split in splits.items()}
    print(
        "windows: "
        + ", ".join(f"{n} {name}" for name, n in windows.items())
        + f" (look_back {args.look_back}, label {args.foresight + 1} steps after each "
        "window's last day)"
    )
    # reshape the windows for the networks
    setup["frames"] = {
        name: frame_inputs(split["x"], args.framing) for name, split in splits.items()
    }
    setup["input_shape"] = input_shape_for(args.framing, args.look_back)
    print(
        f"inputs framed as (samples, {', '.join(map(str, setup['input_shape']))}) ({args.framing})"
    )
    timings = {"data": time.perf_counter() - t_start, "fit": 0.0, "evaluate": 0.0}

    # extra – the baselines, scored on exactly the networks' targets
    t0 = time.perf_counter()
    results = {}
    for name, forecasts in baseline_forecasts(splits, args.look_back, args.foresight).items():
        scores = score_splits(setup, forecasts)
        results[name] = {"kind": "baseline", "scores": {k: [v] for k, v in scores.items()}}
    timings["evaluate"] += time.perf_counter() - t0

    # extra – held-out errors in prices, for --forecast's intervals
    truth, last = (
        setup["to_price"](splits["test"]["y"]),
        setup["to_price"](splits["test"]["x"][:, -1]),
    )
    drift = drift_forecast(last, mid[:train_size], args.foresight + 1)  # from the training rows
    residuals = {"naive": truth - last, "drift": truth - drift}

    # train each network (over --repeats seeds); the first seed plots and saves. The
    # chapter's train_network(networks, x_train, y_train, epochs=50) loop, one network at
    # a time: run_network (above) holds one network's define, compile, fit and predict
    print(training_settings(args))
    histories = {}
    trainings, inline = [], args.jobs == 1  # inline: each first seed reports as its fit ends
    fit_times = {}  # extra – each network's cost: fit seconds per seed, epochs run
    for r, seed in enumerate(seeds):
        for name in args.models:
            of = f" (seed {seed}, {r + 1} of {len(seeds)})" if len(seeds) > 1 else ""
            report = out_dir if r == 0 and inline else None
            call = (name, setup, args, seed, f"Training: {name}{of}", report, r == 0 and not inline)
            trainings.append((f"{name} seed {seed}", one_training, call))
    # each training seeds itself: here one after another, or in --jobs worker processes
    results_in_order = iter(run_trainings(trainings, args.jobs, out_dir))
    for r in range(len(seeds)):
        for name in args.models:
            result = next(results_in_order)
            if r == 0 and not inline:  # from a worker: this process prints and saves
                report_network(name, result, setup, out_dir)
            timings["fit"] += result["fit_s"]
            timings["evaluate"] += result["evaluate_s"]
            spent = fit_times.setdefault(name, {"fit_s": [[] for _ in seeds], "epochs": []})
            spent["fit_s"][r].append(result["fit_s"])
            spent["epochs"].append(result["epochs"])
            entry = results.setdefault(
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
            to_price, test = setup["to_price"], splits["test"]
            residuals.setdefault(name, []).extend(
                to_price(test["y"]) - to_price(result["predictions"]["test"])
            )
            for key, value in result["scores"].items():
                entry["scores"].setdefault(key, []).append(value)

    # the results: one table of every network and baseline, on the same test targets
    rows = summarise(results)
    cost = {name: training_cost(**spent) for name, spent in fit_times.items()}
    print()
    print(setup["note"])
    print_results(rows, windows["test"], len(seeds) > 1, cost)
    verdict = naive_verdict(rows, len(seeds))
    print(verdict)
    over = f" (mean ± std over {len(seeds)} seeds)" if len(seeds) > 1 else ""
    title = f"{stock['name']}, lesson protocol: MAE per model and split{over}"
    plot_comparison(rows, list(splits), title, out_dir / "comparison.png")
    plot_all_losses(histories, "on the test set", out_dir / "losses_all.png")

    timings["total"] = time.perf_counter() - t_start
    record = run_record(args, seeds, __file__)
    record["protocol"], record["framing"] = args.protocol, args.framing
    record["data"] = {**data_record(stock), "split": setup["sizes"], "windows": windows}
    record["timings_s"] = timings
    record["cost"] = cost  # per network: mean fit seconds per training, epochs
    record["metrics"] = {
        row["model"]: {k: v for k, v in row.items() if k != "model"} for row in rows
    }
    record["per_seed"] = {
        name: entry["scores"] for name, entry in results.items() if entry["kind"] == "network"
    }
    record.update(verdict=verdict, leaks=setup["leaks"], **setup["extra"])
    if args.forecast:
        epochs = {name: args.epochs for name in args.models}
        record["forecast"] = forecast_ahead(stock, args, seeds, residuals, {}, epochs, out_dir)
    save_json(record, out_dir / "metrics.json")
    if args.show:
        plt.show()
    return 0


def main(argv=None):
    args = parse_args(argv)
    return run_main(run, args)


if __name__ == "__main__":
    sys.exit(main())
