"""
Title: Comparing LSTMs on stock prices, the lesson's way and leak-free
Author: LSTM Lessons in Keras contributors
Date created: 2026/11/23
Last modified: 2026/11/23
Description: Four networks forecast a stock's mid price 4 days ahead, the lesson's way and leak-free.

The LSTM chapter's worked example. Take one S&P 500 stock's daily mid price,
(high + low) / 2; normalise the training part in 250-day windows; smooth it;
score two one-step moving-average baselines; then train a feed-forward network,
a GRU, an LSTM and a stacked LSTM to predict the mid price 4 trading days after
a 7-day window. `--protocol lesson` (the default) repeats every step as the
chapter does. `--protocol strict` asks the same question without the chapter's
leaks: a time-ordered train/validation/test split, one scaler fitted on the
training rows only, no smoothing, checkpoints chosen on validation.

    python stock_lstm_compare.py                     # the lesson: 4 networks x 50 epochs
    python stock_lstm_compare.py --protocol strict   # the same question, leak-free
    python stock_lstm_compare.py --quick             # every step in seconds
    python stock_lstm_compare.py --help

Data: `--csv` reads Kaggle's S&P 500 files (see data/README.md). Without it the
script uses data/all_stocks_5yr.csv if that exists, else the real daily Google
prices that matplotlib ships (nothing is downloaded).

Beyond the lesson (marked `# extra –`): a naive last-value baseline scored on the
networks' own test targets; SMA and EMA rescored as 4-step-ahead forecasts of the
same targets; errors in price units; the strict protocol; several seeds
(`--repeats`); one results table, a bar chart and a metrics.json record.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import matplotlib
import matplotlib.pyplot as plt

# Keras, scikit-learn and pandas are imported inside the functions that use them,
# as those functions' first lines, not up here: together they take ~10 s to load,
# and `--help` or a mistyped option should answer at once. Python imports a module
# only once, so the later import lines cost nothing.

# The lesson's configuration.
LESSON_TRAIN_SIZE = 1000  # the first 1,000 mid prices train ...
LESSON_TEST_SIZE = 251  # ... and the next 251 test
NORMALIZATION_WINDOW = 250
SMOOTHING_GAMMA = 0.1
SMA_WINDOW = 26
EMA_GAMMA = 0.5
LOOK_BACK = 7
FORESIGHT = 3
EPOCHS = 50
BATCH_SIZE = 64
NETWORKS = ("feed_forward", "simple_gru", "simple_lstm", "lstm_stacked")

# extra – our own settings.
VAL_FRACTION = 0.2  # strict protocol: the last 20% of the training part validates
KAGGLE_CSV = Path("data") / "all_stocks_5yr.csv"  # used when present and no --csv
QUICK_EPOCHS = 2
FRAMINGS = ("features", "timesteps")  # (samples, 1, look_back) or (samples, look_back, 1)


# ---------------------------------------------------------------------------
# Importing the data
# ---------------------------------------------------------------------------


class DataError(ValueError):
    """A problem with the data that the reader can fix; main() prints it as one line."""


def load_prices(csv=None, ticker="AAL"):
    """Daily high and low prices, sorted by date, and where they came from.

    csv=None: data/all_stocks_5yr.csv if it exists, else matplotlib's Google prices.
    Returns a dict: dates (datetime64[D]), high, low, source (dict), repairs (list).
    """
    if csv is None and KAGGLE_CSV.is_file():
        csv = KAGGLE_CSV
    if csv is None:
        return load_sample_prices()
    return read_price_csv(csv, ticker)


def load_sample_prices():
    """Google's daily prices 2004-08-19 to 2008-10-14 (1,047 days), shipped with matplotlib."""
    import matplotlib.cbook as cbook

    sample = cbook.get_sample_data("goog.npz")
    # Recent matplotlib returns the loaded NpzFile; older versions a path or a file.
    if not hasattr(sample, "files"):
        sample = np.load(sample)
    prices = sample["price_data"]  # record array: date, open, high, low, close, volume, adj_close
    dates = prices["date"].astype("datetime64[D]")
    high = prices["high"].astype(float)
    low = prices["low"].astype(float)
    where = "matplotlib sample data goog.npz"
    dates, high, low, repairs = tidy_prices(dates, high, low, where)
    source = {"kind": "matplotlib sample data", "path": "goog.npz", "ticker": "GOOG"}
    return {"dates": dates, "high": high, "low": low, "source": source, "repairs": repairs, "where": where}


def read_price_csv(path, ticker="AAL"):
    """Read a CSV with date, high and low columns (any letter case), for one ticker.

    Reads Kaggle's all_stocks_5yr.csv (a Name column; --ticker picks the rows) and
    its per-ticker files <TICKER>_data.csv, with lower-case or capitalised headers.
    Any problem raises DataError with one line saying what is wrong and what to do.
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise DataError(f"--csv {path}: no such file; pass the path of a CSV with date, high and low columns")
    if path.is_dir():
        raise DataError(f"--csv {path} is a folder, not a file; pass the CSV file itself")
    try:
        with open(path, "rb") as handle:
            head = handle.read(8192)
    except OSError as exc:
        raise DataError(f"cannot read --csv {path} ({exc.strerror}); check the file and its permissions")
    if not head.strip():
        raise DataError(f"--csv {path} is empty; pass a CSV with date, high and low columns")
    compressed = path.suffix.lower() in {".gz", ".bz2", ".zip", ".xz", ".zst"}
    if b"\x00" in head and not compressed:
        raise DataError(f"--csv {path} is not a CSV text file (it holds binary data); pass a CSV file")
    try:
        # Everything is read as text first, so that a bad cell can be quoted back.
        frame = pd.read_csv(path, dtype=str, skipinitialspace=True)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"--csv {path} cannot be read as CSV ({reason}); pass a comma-separated text file")
    except OSError as exc:
        raise DataError(f"cannot read --csv {path} ({exc.strerror}); check the file and its permissions")

    # Headers are matched whatever their letter case: date/Date/DATE.
    columns = {}
    for column in frame.columns:
        columns.setdefault(str(column).strip().lower(), column)
    missing = [name for name in ("date", "high", "low") if name not in columns]
    if missing:
        found = [str(c) for c in frame.columns]
        shown = ", ".join(found[:20]) + (f", ... ({len(found)} in all)" if len(found) > 20 else "")
        raise DataError(
            f"--csv {path} has no {', '.join(missing)} column{'s' if len(missing) > 1 else ''} "
            f"(columns found: {shown}); it needs date, high and low columns, in any letter case"
        )

    if len(frame) == 0:
        raise DataError(f"--csv {path} has a header but no data rows; pass a CSV with price rows")

    where = str(path)
    used_ticker = None
    if "name" in columns:
        names = frame[columns["name"]].str.strip()
        available = sorted(names.dropna().unique())
        chosen = names.str.upper() == str(ticker).strip().upper()
        if not chosen.any():
            raise DataError(
                f"ticker {ticker!r} is not in {path}: {len(available)} tickers available, "
                f"the first {min(20, len(available))}: {', '.join(available[:20])}; pick one with --ticker"
            )
        frame = frame[chosen.to_numpy()]
        used_ticker = str(names[chosen].iloc[0])
        where = f"{path} (ticker {used_ticker})"

    lines = frame.index.to_numpy() + 2  # file line numbers: line 1 is the header
    texts = {name: frame[columns[name]].to_numpy() for name in ("date", "high", "low")}
    # utc=True reads dates with or without a time zone alike (as UTC), then drops the zone
    dates = pd.to_datetime(frame[columns["date"]], errors="coerce", utc=True).dt.tz_convert(None).to_numpy()
    bad = np.isnat(dates)
    if bad.any():
        raise DataError(_bad_cells_message(bad, texts["date"], lines, "date", where, "are not dates"))
    prices = {}
    for name in ("high", "low"):
        values = pd.to_numeric(frame[columns[name]], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            raise DataError(_bad_cells_message(bad, texts[name], lines, name, where, "are missing or not numbers"))
        prices[name] = values

    dates = dates.astype("datetime64[D]")
    dates, high, low, repairs = tidy_prices(dates, prices["high"], prices["low"], where)
    source = {"kind": "csv", "path": str(path), "ticker": used_ticker}
    return {"dates": dates, "high": high, "low": low, "source": source, "repairs": repairs, "where": where}


def _bad_cells_message(bad, texts, lines, column, where, problem):
    first = int(np.flatnonzero(bad)[0])
    text = texts[first]
    shown = "(empty)" if not isinstance(text, str) or not text.strip() else repr(text)
    return (
        f"{int(bad.sum())} value(s) in column {column!r} of {where} {problem} "
        f"(first on line {lines[first]}: {shown}); fix or remove those rows"
    )


def tidy_prices(dates, high, low, where):
    """Sort by date and drop rows that repeat a date with the same prices.

    Every change is stated: the returned `repairs` list is printed and recorded.
    A date that appears twice with different prices is an error (two series mixed?).
    """
    repairs = []
    order = np.argsort(dates, kind="stable")
    if np.any(order != np.arange(len(dates))):
        repairs.append(f"the rows were not in date order: sorted {len(dates)} rows by date")
        dates, high, low = dates[order], high[order], low[order]
    repeat = np.zeros(len(dates), dtype=bool)
    repeat[1:] = dates[1:] == dates[:-1]
    if repeat.any():
        previous = np.flatnonzero(repeat) - 1
        same = (high[repeat] == high[previous]) & (low[repeat] == low[previous])
        if not same.all():
            first = dates[np.flatnonzero(repeat)[~same][0]]
            raise DataError(
                f"{int((~same).sum())} date(s) appear more than once with different prices in {where} "
                f"(first: {first}); is more than one series in the file? keep one row per date"
            )
        repairs.append(f"dropped {int(repeat.sum())} row(s) that repeat a date with the same prices")
        dates, high, low = dates[~repeat], high[~repeat], low[~repeat]
    return dates, high, low, repairs


# ---------------------------------------------------------------------------
# Sorting and visualising the trend
# ---------------------------------------------------------------------------


def plot_high_low(dates, high, low, title, path):
    """The daily low (red) and high (blue) over time, a date every 60 days."""
    fig, ax = plt.subplots(figsize=(12, 6))
    ax.plot(range(len(low)), low, color="r", label="low")
    ax.plot(range(len(high)), high, color="b", label="high")
    _date_ticks(ax, dates, step=60)
    ax.set_xlabel("Date")
    ax.set_ylabel("Price")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def _date_ticks(ax, dates, step):
    positions = np.arange(0, len(dates), step)
    ax.set_xticks(positions)
    ax.set_xticklabels([str(d) for d in dates[positions]], rotation=60, fontsize=8)


# ---------------------------------------------------------------------------
# From DataFrame to tensors
# ---------------------------------------------------------------------------


def _first_column(data):
    """A series as a flat float array, from shape (n,) or the lesson's (n, 1)."""
    values = np.asarray(data, dtype=float)
    return values[:, 0] if values.ndim > 1 else values


def mid_prices(high, low):
    """The mid price of each day: the average of its high and low."""
    return (np.asarray(high, dtype=float) + np.asarray(low, dtype=float)) / 2.0


# ---------------------------------------------------------------------------
# Splitting the data
# ---------------------------------------------------------------------------


def split_sizes(n_rows, train_size=None, test_size=None):
    """The lesson's split: the first 1,000 mid prices train, the next 251 test.

    A shorter series is split in the same proportion (1,000 : 251) and uses every row.
    Given one size only, the other follows in that proportion.
    """
    ratio = LESSON_TEST_SIZE / LESSON_TRAIN_SIZE
    if train_size is None and test_size is None:
        if n_rows >= LESSON_TRAIN_SIZE + LESSON_TEST_SIZE:
            return LESSON_TRAIN_SIZE, LESSON_TEST_SIZE
        train_size = int(round(n_rows / (1 + ratio)))
        return train_size, n_rows - train_size
    if test_size is None:
        test_size = max(1, int(round(train_size * ratio)))
    if train_size is None:
        train_size = max(1, int(round(test_size / ratio)))
    return train_size, test_size


def minimum_sizes(protocol, look_back=7, foresight=3, normalization_window=250):
    """The fewest rows each part needs, and why (one window = look_back + foresight + 1 rows)."""
    window = look_back + foresight + 1
    if protocol == "lesson":
        train = max(normalization_window, SMA_WINDOW + 1, window)
        why = (
            f"training part >= {train} for the {normalization_window}-row normalisation window, "
            f"the {SMA_WINDOW}-day SMA and one {look_back}+{foresight} window; test part >= {window}"
        )
    else:
        # The training part is cut into train and validation; each needs one window.
        train = window
        while int(round(train * VAL_FRACTION)) < window or train - int(round(train * VAL_FRACTION)) < window:
            train += 1
        why = (
            f"training part >= {train} so that train and validation each hold one "
            f"{look_back}+{foresight} window; test part >= {window}"
        )
    return train, window, why


def check_sizes(n_rows, train_size, test_size, protocol, where, look_back=7, foresight=3,
                normalization_window=250, given=False):
    """Raise DataError unless the split fits the series and holds enough rows for every step."""
    need_train, need_test, why = minimum_sizes(protocol, look_back, foresight, normalization_window)
    if given:
        for option, size, need in (("--train-size", train_size, need_train), ("--test-size", test_size, need_test)):
            if size < need:
                raise DataError(f"{option} {size} is too small: the {protocol} protocol needs at least {need} ({why})")
        if train_size + test_size > n_rows:
            raise DataError(
                f"the split needs {train_size} + {test_size} = {train_size + test_size} rows "
                f"(--train-size/--test-size) but {where} has only {n_rows}; lower them"
            )
        return
    if train_size >= need_train and test_size >= need_test:
        return
    # the fewest rows whose lesson-proportion split is big enough (from 1,251 rows on it stays 1,000 + 251)
    for needed in range(n_rows + 1, LESSON_TRAIN_SIZE + LESSON_TEST_SIZE + 1):
        t, s = split_sizes(needed)
        if t >= need_train and s >= need_test:
            raise DataError(
                f"too few rows: the {protocol} protocol needs at least {needed} rows ({why}), "
                f"found {n_rows} in {where}"
            )
    raise DataError(
        f"the split of {train_size} training and {test_size} test rows is too small here ({why}); "
        "set larger --train-size/--test-size, or a smaller --look-back/--foresight"
    )


def plot_split(parts, title, path):
    """Side by side, each part of the split in prices (the lesson: train and test)."""
    fig, axes = plt.subplots(1, len(parts), figsize=(5 * len(parts), 4))
    colors = {"train": "r", "val": "g", "test": "b"}
    for ax, (name, values) in zip(axes, parts.items()):
        ax.plot(range(len(values)), values, color=colors.get(name, "k"), label=f"{name} split")
        ax.set_title(f"{name} data ({len(values)} days)")
        ax.set_xlabel("time")
        ax.set_ylabel("Price")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


# ---------------------------------------------------------------------------
# Window normalisation
# ---------------------------------------------------------------------------


def window_normalise(train_data, normalization_window=250):
    """Scale the training data to [0, 1] one window at a time, refitting a MinMaxScaler per window.

    Each day is scaled by the min and max of its own 250-day window, later days
    included: a look-ahead the strict protocol avoids. clip=True only removes float
    rounding (every value lies within its own window's range), so the result stays
    exactly inside [0, 1]; otherwise this is the lesson's MinMaxScaler.
    """
    from sklearn.preprocessing import MinMaxScaler

    data = np.array(_first_column(train_data)).reshape(-1, 1)  # a copy
    scaler = MinMaxScaler(feature_range=(0, 1), clip=True)
    for i in range(0, len(data), normalization_window):
        data[i : i + normalization_window] = scaler.fit_transform(data[i : i + normalization_window])
    return data


def scale_on_itself(test_data):
    """The lesson's test scaling: a MinMaxScaler fitted on the test data itself (a leak)."""
    from sklearn.preprocessing import MinMaxScaler

    scaler = MinMaxScaler(feature_range=(0, 1))
    scaled = scaler.fit_transform(np.asarray(test_data, dtype=float).reshape(-1, 1))
    return scaled, scaler


# ---------------------------------------------------------------------------
# Denoising the data: implementing exponential smoothing
# ---------------------------------------------------------------------------


def exponential_smoothing(data, gamma=0.1, start=0.0):
    """S[t] = gamma * x[t] + (1 - gamma) * S[t-1], with S[-1] = start (the lesson starts at 0).

    A recursion, so a plain loop; the series are short.
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
    fig, ax = plt.subplots(figsize=(12, 5))
    ax.plot(before, color="lightgray", label="normalised")
    ax.plot(after, color="purple", label="smoothed")
    ax.set_xlabel("training day")
    ax.set_ylabel("normalised mid price")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


# ---------------------------------------------------------------------------
# Performing one-step-ahead predictions: simple and exponential moving averages
# ---------------------------------------------------------------------------


def sma_one_step(train_data, window_size=26):
    """Predict each point as the mean of the window_size points before it.

    Returns (predictions for points window_size..N-1, error), the error the lesson's
    way: 0.5 x mean squared error.
    """
    values = _first_column(train_data)
    if len(values) <= window_size:
        return np.empty(0), float("nan")  # nothing to predict
    windows = np.lib.stride_tricks.sliding_window_view(values[:-1], window_size)
    predictions = windows.mean(axis=1)
    error = 0.5 * np.mean((predictions - values[window_size:]) ** 2)
    return predictions, float(error)


def ema_one_step(train_data, gamma=0.5):
    """Predict each point by EMA[t] = gamma * EMA[t-1] + (1 - gamma) * x[t-1], from EMA = 0.

    Returns (predictions for points 0..N-1, the first being the starting 0.0, and
    error 0.5 x mean squared error over points 1..N-1), as the lesson computes them.
    """
    values = _first_column(train_data)
    predictions = np.empty_like(values)
    ema = predictions[0] = 0.0
    for i in range(1, len(values)):
        ema = ema * gamma + (1.0 - gamma) * values[i - 1]
        predictions[i] = ema
    error = 0.5 * np.mean((predictions[1:] - values[1:]) ** 2)
    return predictions, float(error)


def plot_one_step(series, predictions, start, dates, title, path):
    """A one-step baseline's predictions over the (smoothed) training data."""
    fig, ax = plt.subplots(figsize=(12, 5))
    ax.plot(range(len(series)), series, color="darkblue", label="actual")
    ax.plot(range(start, start + len(predictions)), predictions, color="orange", label="predicted")
    # The lesson's listing passes 26 date labels for 21 ticks here, which matplotlib
    # now refuses; one label per tick says the same.
    _date_ticks(ax, dates[: len(series)], step=50)
    ax.set_xlabel("Date")
    ax.set_ylabel("Mid price (normalised, smoothed)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


# ---------------------------------------------------------------------------
# Creating sequences of observations
# ---------------------------------------------------------------------------


def create_dataset(dataset, look_back=7, foresight=3):
    """Windows of look_back consecutive values, each labelled with the value at i + look_back + foresight.

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


# ---------------------------------------------------------------------------
# Reshaping the data
# ---------------------------------------------------------------------------


def frame_inputs(x, framing="features"):
    """Shape windows for the networks.

    "features" is the lesson's (samples, 1, look_back): one time step holding all
    7 days as features, so a recurrent layer takes a single step and never recurs.
    "timesteps" is (samples, look_back, 1): 7 time steps of one value each.
    """
    x = np.asarray(x, dtype="float32")
    if framing == "features":
        return x.reshape(len(x), 1, x.shape[1])
    return x.reshape(len(x), x.shape[1], 1)


def input_shape_for(framing, look_back):
    return (1, look_back) if framing == "features" else (look_back, 1)


# ---------------------------------------------------------------------------
# extra – baselines scored on the networks' own targets
# ---------------------------------------------------------------------------
# The lesson scores SMA and EMA one step ahead on the smoothed training data, in
# 0.5 x MSE; the networks predict 4 steps ahead on the test data, in MAE. To compare
# like with like, each baseline below forecasts the same label as the networks (4
# steps after each window's last day) from the same split, and is scored with the
# same metric on exactly the same targets.


def naive_forecast(x):
    """The last value of each window: "the price 4 days on is today's"."""
    return np.asarray(x, dtype=float)[:, -1]


def _origins(n_values, look_back, foresight):
    """Index of each window's last value, for the windows create_dataset makes."""
    return np.arange(max(0, n_values - look_back - foresight)) + look_back - 1


def sma_forecast(series, look_back=7, foresight=3, window_size=26):
    """Mean of the last window_size values up to each window's last value (fewer at the start)."""
    values = np.asarray(series, dtype=float).reshape(-1)
    origins = _origins(len(values), look_back, foresight)
    sums = np.concatenate([[0.0], np.cumsum(values)])
    starts = np.maximum(0, origins - window_size + 1)
    return (sums[origins + 1] - sums[starts]) / (origins + 1 - starts)


def ema_forecast(series, look_back=7, foresight=3, gamma=0.5):
    """EMA (weight gamma on the old average, as the lesson) up to each window's last value.

    An EMA forecasts every step ahead with the same value, as the chapter explains.
    Started at the split's first value rather than the lesson's 0, so the first
    windows are not pulled towards zero.
    """
    values = np.asarray(series, dtype=float).reshape(-1)
    ema = np.empty_like(values)
    level = values[0] if len(values) else 0.0
    for i, x in enumerate(values):
        level = gamma * level + (1.0 - gamma) * x
        ema[i] = level
    return ema[_origins(len(values), look_back, foresight)]


def mae(y_true, y_pred):
    """Mean absolute error, the lesson's loss and metric."""
    return float(np.mean(np.abs(_first_column(y_true).reshape(-1) - _first_column(y_pred).reshape(-1))))


BASELINES = ("naive_last_value", f"sma_{SMA_WINDOW}", f"ema_{EMA_GAMMA}")


def baseline_forecasts(split, look_back=7, foresight=3):
    """All three baselines' forecasts for one split's windows."""
    return {
        "naive_last_value": naive_forecast(split["x"]),
        f"sma_{SMA_WINDOW}": sma_forecast(split["series"], look_back, foresight, SMA_WINDOW),
        f"ema_{EMA_GAMMA}": ema_forecast(split["series"], look_back, foresight, EMA_GAMMA),
    }


# ---------------------------------------------------------------------------
# The lesson's data preparation, end to end (steps 1-5)
# ---------------------------------------------------------------------------


def prepare_lesson(mid, train_size=1000, test_size=251, look_back=7, foresight=3,
                   normalization_window=250):
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
    train_smooth = exponential_smoothing(train_norm, SMOOTHING_GAMMA)
    # one-step baselines on the smoothed training data
    sma_predictions, sma_error = sma_one_step(train_smooth, SMA_WINDOW)
    ema_predictions, ema_error = ema_one_step(train_smooth, EMA_GAMMA)
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
        "sma": (sma_predictions, sma_error),
        "ema": (ema_predictions, ema_error),
        "splits": {
            "train": {"series": train_smooth[:, 0], "x": x_train, "y": y_train},
            "test": {"series": test_scaled[:, 0], "x": x_test, "y": y_test},
        },
    }


# ---------------------------------------------------------------------------
# extra – the strict protocol's data preparation
# ---------------------------------------------------------------------------


def prepare_strict(mid, train_size=1000, test_size=251, look_back=7, foresight=3,
                   val_fraction=VAL_FRACTION):
    """The same question without leaks.

    The lesson's training part is cut in time order into train (first 80%) and
    validation (last 20%); the test part is the lesson's. One MinMaxScaler is fitted
    on the train rows only and applied to all three; nothing is smoothed. Windows
    are made within each part, so the test targets are the lesson's test days.
    """
    from sklearn.preprocessing import MinMaxScaler

    mid = np.asarray(mid, dtype=float)
    n_val = int(round(train_size * val_fraction))
    n_fit = train_size - n_val
    parts = {
        "train": mid[:n_fit],
        "val": mid[n_fit:train_size],
        "test": mid[train_size : train_size + test_size],
    }
    scaler = MinMaxScaler(feature_range=(0, 1)).fit(parts["train"].reshape(-1, 1))
    splits = {}
    for name, raw in parts.items():
        series = scaler.transform(raw.reshape(-1, 1))[:, 0]
        x, y = create_dataset(series, look_back, foresight)
        splits[name] = {"raw": raw, "series": series, "x": x, "y": y}
    return {"scaler": scaler, "splits": splits}


# ---------------------------------------------------------------------------
# Baseline neural networks: a feed-forward network and a recurrent baseline
# ---------------------------------------------------------------------------
# Each function builds the lesson's layers; train_network compiles and fits them
# all the same way (MAE loss, Adam), as the lesson's functions each do.


def feed_forward(input_shape=(1, 7)):
    """Flatten, Dense 128 relu, Dense 1 linear."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),  # [batch, 1, 7]
            layers.Flatten(),  # -> [batch, 7]
            layers.Dense(128, activation="relu"),  # -> [batch, 128]
            layers.Dense(1, activation="linear"),  # regressor -> [batch, 1]
        ],
        name="feed_forward",
    )


def simple_gru(input_shape=(1, 7)):
    """GRU 32 with dropout 0.1 and recurrent dropout 0.1, Dense 1 linear."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),  # [batch, 1, 7]
            layers.GRU(32, dropout=0.1, recurrent_dropout=0.1),  # -> [batch, 32]
            layers.Dense(1, activation="linear"),  # -> [batch, 1]
        ],
        name="simple_gru",
    )


# ---------------------------------------------------------------------------
# Building LSTMs: a single LSTM and a stacked LSTM
# ---------------------------------------------------------------------------


def simple_lstm(input_shape=(1, 7)):
    """LSTM 32 without dropout, Dense 1 linear."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),  # [batch, 1, 7]
            layers.LSTM(32),  # -> [batch, 32]
            layers.Dense(1, activation="linear"),  # -> [batch, 1]
        ],
        name="simple_lstm",
    )


def lstm_stacked(input_shape=(1, 7)):
    """Two LSTM 16 layers, each with dropout 0.1 and recurrent dropout 0.2, Dense 1 linear."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),  # [batch, 1, 7]
            layers.LSTM(16, dropout=0.1, recurrent_dropout=0.2, return_sequences=True),  # -> [batch, 1, 16]
            layers.LSTM(16, dropout=0.1, recurrent_dropout=0.2),  # -> [batch, 16]
            layers.Dense(1, activation="linear"),  # -> [batch, 1]
        ],
        name="lstm_stacked",
    )


MODEL_BUILDERS = {
    "feed_forward": feed_forward,
    "simple_gru": simple_gru,
    "simple_lstm": simple_lstm,
    "lstm_stacked": lstm_stacked,
}


# ---------------------------------------------------------------------------
# Using helper functions: plot_losses and plot_predictions
# ---------------------------------------------------------------------------


def plot_losses(history, name, val_label, path):
    """Training and validation loss (MAE) per epoch."""
    fig, ax = plt.subplots(figsize=(8, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax.plot(epochs, history["loss"], label="loss")
    ax.plot(epochs, history["val_loss"], label=f"val loss ({val_label})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MAE")
    ax.set_title(f"{name}: losses")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def plot_predictions(predictions, y_test, scaler, title, path):
    """Predictions against the actual test labels, turned back into prices."""
    fig, ax = plt.subplots(figsize=(12, 6))
    ax.plot(scaler.inverse_transform(np.reshape(predictions, (-1, 1))), label="generated", color="orange")
    ax.plot(scaler.inverse_transform(np.reshape(y_test, (-1, 1))), label="actual")
    ax.set_xlabel("test window")
    ax.set_ylabel("Mid price")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


# ---------------------------------------------------------------------------
# Training the models
# ---------------------------------------------------------------------------


def train_network(model, x_train, y_train, validation_data, epochs=50, batch_size=64,
                  monitor="loss", checkpoint_path=None, verbose=1):
    """Compile and fit one network and keep its best epoch: the one place that trains.

    As the lesson's ModelCheckpoint(monitor, save_best_only=True, mode="min"), the
    best epoch by `monitor` is kept: the lesson watches the training "loss"; the
    strict protocol watches "val_loss" on its validation split. Its weights are put
    back into `model` and, given a path, saved as .keras, written to a temporary
    name and renamed, so an interrupted run never leaves half a file.
    Returns (history dict, best epoch).
    """
    # steps_per_execution=16 (a whole epoch per call) gave identical losses but no
    # clear speed-up on 2 CPU cores (4 networks x 50 epochs: 33.6 s and 38.9 s at 1,
    # 35.9 s and 34.8 s at 16), so Keras's default of 1 stays.
    model.compile(loss="mae", optimizer="adam")
    checkpoint = best_epoch_checkpoint(monitor)
    history = model.fit(
        x_train,
        y_train,
        validation_data=validation_data,
        epochs=epochs,
        batch_size=batch_size,
        callbacks=[checkpoint, ctrl_c_callback()],  # Ctrl-C: a clean stop between batches
        verbose=verbose,
    )
    if checkpoint.best_weights is not None:
        model.set_weights(checkpoint.best_weights)
    if checkpoint_path is not None:
        write_atomically(checkpoint_path, model.save)
    return history.history, checkpoint.best_epoch


def best_epoch_checkpoint(monitor):
    """A callback that keeps, in memory, the weights of the epoch with the lowest `monitor`.

    Writing a .keras file at each improvement, as ModelCheckpoint does, took about
    half of the lesson's training time (its training loss improves nearly every
    epoch), so train_network writes the best model once, when fit ends.
    """
    import keras

    class BestEpochCheckpoint(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best = np.inf
            self.best_epoch = None
            self.best_weights = None

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(monitor)
            if value is not None and float(value) < self.best:
                self.best, self.best_epoch = float(value), epoch + 1
                self.best_weights = self.model.get_weights()

    return BestEpochCheckpoint()


# ---------------------------------------------------------------------------
# Visualising results (extra – one table, one bar chart, every model and baseline)
# ---------------------------------------------------------------------------


def summarise(scores):
    """Mean and std over seeds of every score; rows ranked by mean test MAE."""
    rows = []
    for name, entry in scores.items():
        row = {"model": name, "kind": entry["kind"]}
        for key, values in entry["scores"].items():
            values = np.asarray(values, dtype=float)
            row[key] = float(values.mean())
            row[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        row.update({k: v for k, v in entry.items() if k not in ("kind", "scores")})
        rows.append(row)
    rows.sort(key=lambda r: r["test_mae"])
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


def print_results(rows, protocol, n_targets, with_std, with_val):
    """The results table: every network and baseline on the same test targets."""
    scaler = "the test scaler, as the lesson" if protocol == "lesson" else "the training scaler"
    print(f"MAE on the {n_targets} test targets (scaled units; in prices via {scaler}):")
    columns = ["rank", "model", "test MAE"] + (["± std"] if with_std else []) + ["test MAE (price)"]
    columns += (["val MAE"] if with_val else []) + ["train MAE", "params", "best epoch"]  # per seed
    table = []
    for row in rows:
        network = row["kind"] == "network"
        table.append({
            "rank": row["rank"], "model": row["model"], "test MAE": row["test_mae"],
            "± std": row["test_mae_std"] if network else "", "test MAE (price)": row["test_mae_price"],
            "val MAE": row.get("val_mae", ""), "train MAE": row["train_mae"],
            "params": row["params"] if network else "",
            "best epoch": "/".join(str(e) for e in row["best_epochs"]) if network else "",
        })
    print_table(table, columns)


def naive_verdict(rows, n_seeds):
    """One plain sentence: does any network beat the naive last-value baseline?"""
    by_name = {r["model"]: r for r in rows}
    naive = by_name["naive_last_value"]["test_mae"]
    networks = [r for r in rows if r["kind"] == "network"]
    if not networks:
        return f"naive last-value baseline: test MAE {naive:.4f} (no networks were run)"
    best = min(networks, key=lambda r: r["test_mae"])
    over = f" (mean over {n_seeds} seeds)" if n_seeds > 1 else ""
    winners = [r["model"] for r in networks if r["test_mae"] < naive]
    if not winners:
        return (
            f"No network beats the naive last-value baseline{over}: naive test MAE {naive:.4f}, "
            f"best network {best['model']} {best['test_mae']:.4f}."
        )
    verb = "beats" if len(winners) == 1 else "beat"
    return (
        f"{', '.join(winners)} {verb} the naive last-value baseline{over}: naive test MAE {naive:.4f}, "
        f"best network {best['model']} {best['test_mae']:.4f}."
    )


def plot_comparison(rows, splits, title, path):
    """Grouped bars: each model's and baseline's MAE on every split it was scored on."""
    fig, ax = plt.subplots(figsize=(12, 5))
    positions = np.arange(len(rows))
    width = 0.8 / len(splits)
    for k, split in enumerate(splits):
        means = [r.get(f"{split}_mae", np.nan) for r in rows]
        stds = [r.get(f"{split}_mae_std", 0.0) for r in rows]
        ax.bar(positions - 0.4 + width * (k + 0.5), means, width, yerr=stds if any(stds) else None,
               capsize=3, label=split)
    ax.set_xticks(positions)
    ax.set_xticklabels([r["model"] for r in rows], rotation=20)
    ax.set_ylabel("MAE (scaled units)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def predict_splits(model, frames):
    """Predict every split in one call (one traced function per model), then cut it apart."""
    names = list(frames)
    joined = np.concatenate([frames[name] for name in names])
    flat = np.asarray(model.predict(joined, batch_size=1024, verbose=0)).reshape(-1)
    bounds = np.cumsum([0] + [len(frames[name]) for name in names])
    return {name: flat[bounds[k] : bounds[k + 1]] for k, name in enumerate(names)}


def add_scores(entry, splits, predictions, setup):
    """Append one run's MAE on every split, and in prices where the protocol reports them."""
    scaler = setup["scaler"]
    for name, split in splits.items():
        entry["scores"].setdefault(f"{name}_mae", []).append(mae(split["y"], predictions[name]))
        if name in setup["price_splits"]:
            price_error = mae(_to_price(scaler, split["y"]), _to_price(scaler, predictions[name]))
            entry["scores"].setdefault(f"{name}_mae_price", []).append(price_error)


def _to_price(scaler, values):
    return scaler.inverse_transform(np.reshape(values, (-1, 1)))[:, 0]


def lesson_leaks(normalization_window=250):
    """The line that names which of the lesson's steps leak."""
    return (
        "leaks in the lesson protocol: the test data are scaled by a MinMaxScaler fitted on the test "
        f"data itself (step 2); each training day is scaled by the min/max of its {normalization_window}-day "
        "window, later days included (step 2); the test set is the validation data, so the lesson picks "
        "its best network on the test set (steps 6-7). Not a leak but a mismatch: training inputs and "
        "targets are smoothed, test ones are not (step 3)."
    )


# --- shared helpers: begin
# ---------------------------------------------------------------------------
# Small helpers: the same block stands in each of the three lesson scripts, so
# that every script can be copied and run on its own. They are not part of the
# lesson proper; skip them on a first read.
# ---------------------------------------------------------------------------


def fail(message):
    """Bad input: one clear line on stderr, exit status 2, nothing written."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, but a bad option gets one line (no usage block) and exit 2."""

    def error(self, message):
        fail(f"{message} (see --help)")


def positive_int(text):
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def non_negative_int(text):
    """argparse type for seeds: a whole number from 0 to 2**31 - 1 (what NumPy accepts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"must be from 0 to 2**31 - 1, got {value}")
    return value


def prepare_out_dir(path):
    """Create the output folder, or fail with exit 2 before any work starts."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        fail(f"--out-dir {path} is a file, not a folder; pass a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        fail(f"cannot write to --out-dir {path} ({exc.strerror}); pass a writable folder")
    return path


def write_atomically(path, write):
    """Call write(tmp_path), then rename tmp_path to path.

    A run stopped halfway leaves the old file or the new one, never half a file.
    The temporary name keeps the suffix, because Keras picks the format from it.
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_figure(fig, path):
    """Save a matplotlib figure as PNG (atomically) and close it unless shown."""
    write_atomically(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    if matplotlib.get_backend().lower() == "agg":
        plt.close(fig)
    print(f"saved {path}")


def save_json(data, path):
    """Write a JSON record (atomically)."""
    text = json.dumps(data, indent=2, default=float) + "\n"
    write_atomically(path, lambda tmp: Path(tmp).write_text(text))


def ctrl_c_callback():
    """A Keras callback that makes Ctrl-C during fit stop between batches.

    Python raises KeyboardInterrupt wherever the main thread happens to be. Inside
    TensorFlow's C++ code that can abort the whole process instead ("free():
    invalid next size", about one Ctrl-C in ten at the start of an epoch here). So
    while fit runs, Ctrl-C only raises a flag, and this callback raises
    KeyboardInterrupt at the next batch or epoch boundary, in plain Python.
    A second Ctrl-C interrupts at once.
    """
    import signal

    import keras

    class CtrlC(keras.callbacks.Callback):
        pressed = False
        previous = None  # the SIGINT handler to put back

        def on_train_begin(self, logs=None):
            self.pressed = False
            self.previous = signal.signal(signal.SIGINT, self.press)

        def press(self, signum, frame):
            if self.pressed:  # second Ctrl-C: stop now
                self.restore()
                raise KeyboardInterrupt
            self.pressed = True

        def restore(self):
            if self.previous is not None:
                signal.signal(signal.SIGINT, self.previous)
                self.previous = None

        def check(self, *args, **kwargs):
            if self.pressed:
                self.restore()
                raise KeyboardInterrupt

        # batch *begin* hooks: overriding the batch end ones would make Keras run
        # every callback synchronously on backends that can dispatch them in a thread
        on_epoch_begin = on_epoch_end = on_train_batch_begin = on_test_batch_begin = check

        def on_train_end(self, logs=None):
            self.restore()
            self.check()

    return CtrlC()


def library_versions():
    """Versions worth recording with every result."""
    import keras

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
    }
    try:
        from importlib.metadata import version

        versions["tensorflow"] = version("tensorflow")
    except Exception:  # TensorFlow is optional under another backend
        pass
    return versions


def print_table(rows, columns):
    """Print a list of dicts as one plain, aligned text table."""
    cells = [[str(c) for c in columns]]
    for row in rows:
        cells.append([_fmt(row.get(c, "")) for c in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for n, r in enumerate(cells):
        print("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value):
    return f"{value:.4f}" if isinstance(value, float) else str(value)
# --- shared helpers: end


def build_parser():
    parser = ArgumentParser(
        description=(
            "The LSTM chapter's stock comparison: four networks predict a stock's mid price "
            "4 days after a 7-day window, the lesson's way (--protocol lesson) or leak-free "
            "(--protocol strict), against naive, SMA and EMA baselines."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--protocol", choices=("lesson", "strict"), default="lesson",
                        help="lesson: every step as the chapter does it; strict: time-ordered "
                        "train/val/test, scaler fitted on train only, no smoothing")
    parser.add_argument("--csv", type=Path, default=None,
                        help="price CSV with date, high, low columns (Kaggle all_stocks_5yr.csv or "
                        "<TICKER>_data.csv); unset: data/all_stocks_5yr.csv if present, else "
                        "matplotlib's Google prices")
    parser.add_argument("--ticker", default="AAL", help="rows to use when the CSV has a Name column")
    parser.add_argument("--train-size", type=positive_int, default=None,
                        help="training rows; unset: the lesson's 1000 (or the same share of a "
                        "shorter series); with only one of --train-size/--test-size, the other "
                        "follows in the lesson's 1000:251 proportion")
    parser.add_argument("--test-size", type=positive_int, default=None,
                        help="test rows right after the training rows; unset: the lesson's 251 "
                        "(or the same share)")
    parser.add_argument("--look-back", type=positive_int, default=LOOK_BACK,
                        help="days in each input window")
    parser.add_argument("--foresight", type=positive_int, default=FORESIGHT,
                        help="the label is foresight + 1 days after the window's last day")
    parser.add_argument("--norm-window", type=positive_int, default=NORMALIZATION_WINDOW,
                        help="lesson protocol: rows per window of the training normalisation")
    parser.add_argument("--framing", choices=FRAMINGS, default=None,
                        help="features: (samples, 1, look_back) as the lesson; timesteps: "
                        "(samples, look_back, 1) so recurrent layers recur over the days; unset: "
                        "features for lesson, timesteps for strict")
    parser.add_argument("--models", nargs="+", choices=NETWORKS, default=list(NETWORKS),
                        metavar="NAME", help=f"networks to train, any of: {', '.join(NETWORKS)}")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help=f"epochs per network; unset: {EPOCHS} (the lesson's), {QUICK_EPOCHS} with --quick")
    parser.add_argument("--batch-size", type=positive_int, default=BATCH_SIZE, help="batch size")
    parser.add_argument("--repeats", type=positive_int, default=1,
                        help="train each network with this many seeds (seed, seed+1, ...); report mean ± std")
    parser.add_argument("--seed", type=non_negative_int, default=7, help="random seed (0 or more)")
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny run ({QUICK_EPOCHS} epochs) that shows every step in seconds")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="Keras fit output: 0 silent, 1 progress bar, 2 one line per epoch")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="folder for figures, models and metrics.json; unset: "
                        "outputs/stock_lstm_compare/<protocol>")
    parser.add_argument("--show", action="store_true", help="also open the figures in a window")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.epochs = args.epochs or (QUICK_EPOCHS if args.quick else EPOCHS)
    args.framing = args.framing or ("features" if args.protocol == "lesson" else "timesteps")
    args.models = [name for name in NETWORKS if name in args.models]
    if args.out_dir is None:
        args.out_dir = Path("outputs") / Path(__file__).stem / args.protocol
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted: stopped early; files already written are complete", file=sys.stderr)
        return 130


def run(args):
    """The lesson's steps, or the strict protocol's, then one table of every model and baseline."""
    t_start = time.perf_counter()
    # load the data and check it fits the split: bad data stops here, before anything is written
    try:
        data = load_prices(args.csv, args.ticker)
        mid = mid_prices(data["high"], data["low"])
        given = args.train_size is not None or args.test_size is not None
        train_size, test_size = split_sizes(len(mid), args.train_size, args.test_size)
        check_sizes(len(mid), train_size, test_size, args.protocol, data["where"], args.look_back,
                    args.foresight, args.norm_window, given)
    except DataError as exc:
        fail(str(exc))
    timings = {"data": time.perf_counter() - t_start, "fit": 0.0, "evaluate": 0.0}

    if not args.show:
        matplotlib.use("Agg")
    out_dir = prepare_out_dir(args.out_dir)
    import keras

    keras.utils.set_random_seed(args.seed)
    print(f"data: {data['where']}, {len(mid)} days {data['dates'][0]} to {data['dates'][-1]}")
    for repair in data["repairs"]:
        print(f"data repair: {repair}")
    print(f"mid prices: {len(mid)}, the first three {', '.join(f'{v:g}' for v in mid[:3])}")
    unused = len(mid) - train_size - test_size
    print(f"split: {train_size} training and {test_size} test mid prices"
          + (f" ({unused} later rows unused)" if unused else ""))
    stock = data["source"]["ticker"] or "prices"
    plot_high_low(data["dates"], data["high"], data["low"], f"{stock}: daily high and low", out_dir / "prices.png")

    # steps 1-4: the lesson's data preparation (or the strict one), with their figures
    t0 = time.perf_counter()
    steps = lesson_steps if args.protocol == "lesson" else strict_steps
    setup = steps(mid, train_size, test_size, data["dates"], stock, args, out_dir)
    timings["data"] += time.perf_counter() - t0
    setup["sizes"]["unused"] = unused
    splits = setup["splits"]
    windows = {name: len(split["y"]) for name, split in splits.items()}
    print("windows: " + ", ".join(f"{n} {name}" for name, n in windows.items())
          + f" (look_back {args.look_back}, label {args.foresight + 1} steps after each window's last day)")
    # step 5: reshape the windows for the networks
    frames = {name: frame_inputs(split["x"], args.framing) for name, split in splits.items()}
    input_shape = input_shape_for(args.framing, args.look_back)
    print(f"inputs framed as (samples, {input_shape[0]}, {input_shape[1]}) ({args.framing})")

    # extra – the baselines, scored on exactly the networks' targets
    t0 = time.perf_counter()
    scores = {name: {"kind": "baseline", "scores": {}} for name in BASELINES}
    forecasts = {name: baseline_forecasts(split, args.look_back, args.foresight) for name, split in splits.items()}
    for name in BASELINES:
        add_scores(scores[name], splits, {split: forecasts[split][name] for split in splits}, setup)
    timings["evaluate"] += time.perf_counter() - t0

    # steps 6-7: train each network (over --repeats seeds); plot its losses and predictions
    seeds = [args.seed + r for r in range(args.repeats)]
    val = setup["val_split"]
    for r, seed in enumerate(seeds):
        for name in args.models:
            keras.utils.set_random_seed(seed)
            model = MODEL_BUILDERS[name](input_shape)
            if r == 0:
                model.summary()
            print(f"Training: {name}" + (f" (seed {seed}, {r + 1} of {len(seeds)})" if len(seeds) > 1 else ""))
            t0 = time.perf_counter()
            history, best_epoch = train_network(
                model, frames["train"], splits["train"]["y"], (frames[val], splits[val]["y"]),
                epochs=args.epochs, batch_size=args.batch_size, monitor=setup["monitor"],
                checkpoint_path=out_dir / f"{name}.keras" if r == 0 else None, verbose=args.verbose)
            timings["fit"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            entry = scores.setdefault(name, {"kind": "network", "scores": {}, "params": model.count_params(),
                                             "best_epochs": []})
            entry["best_epochs"].append(best_epoch)
            predictions = predict_splits(model, frames)
            add_scores(entry, splits, predictions, setup)
            timings["evaluate"] += time.perf_counter() - t0
            if r == 0:
                plot_losses(history, name, setup["val_label"], out_dir / f"losses_{name}.png")
                plot_predictions(predictions["test"], splits["test"]["y"], setup["scaler"],
                                 f"{name}: test predictions (MAE {entry['scores']['test_mae'][0]:.4f} scaled)",
                                 out_dir / f"predictions_{name}.png")

    # the results: one table of every network and baseline, on the same test targets
    rows = summarise(scores)
    print()
    print(setup["note"])
    print_results(rows, args.protocol, windows["test"], len(seeds) > 1, "val" in splits)
    verdict = naive_verdict(rows, len(seeds))
    print(verdict)
    plot_comparison(rows, list(splits),
                    f"{stock}, {args.protocol} protocol: MAE per model and split"
                    + (f" (mean ± std over {len(seeds)} seeds)" if len(seeds) > 1 else ""),
                    out_dir / "comparison.png")

    timings["total"] = time.perf_counter() - t_start
    record = {
        "script": Path(__file__).name,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "seed": args.seed,
        "seeds": seeds,
        "versions": library_versions(),
        "backend": keras.backend.backend(),
        "protocol": args.protocol,
        "framing": args.framing,
        "data": {
            **data["source"],
            "description": data["where"],
            "rows": int(len(mid)),
            "first_date": str(data["dates"][0]),
            "last_date": str(data["dates"][-1]),
            "first_mid_prices": [float(v) for v in mid[:3]],
            "repairs": data["repairs"],
            "split": setup["sizes"],
            "windows": windows,
        },
        "timings_s": timings,
        "metrics": {row["model"]: {k: v for k, v in row.items() if k != "model"} for row in rows},
        "per_seed": {name: entry["scores"] for name, entry in scores.items() if entry["kind"] == "network"},
        "verdict": verdict,
        "leaks": setup["leaks"],
        **setup["extra"],
    }
    save_json(record, out_dir / "metrics.json")
    print(f"saved {out_dir / 'metrics.json'}")
    if args.show:
        plt.show()
    return 0


def lesson_steps(mid, train_size, test_size, dates, stock, args, out_dir):
    """Steps 1-4 as the lesson does them, with its figures; returns what training and scoring need."""
    prep = prepare_lesson(mid, train_size, test_size, args.look_back, args.foresight, args.norm_window)
    plot_split({"train": prep["train_data"], "test": prep["test_data"]}, f"{stock}: the lesson's split",
               out_dir / "split.png")
    plot_smoothing(prep["train_norm"], prep["train_smooth"],
                   f"Training data, window-normalised, before and after smoothing (gamma {SMOOTHING_GAMMA})",
                   out_dir / "smoothing.png")
    (sma_predictions, sma_error), (ema_predictions, ema_error) = prep["sma"], prep["ema"]
    print(f"MSE error for standard averaging (window {SMA_WINDOW}, 0.5 x MSE): {sma_error:.5f}")
    print(f"MSE error for EMA averaging (gamma {EMA_GAMMA}, 0.5 x MSE): {ema_error:.5f}")
    print("  (one step ahead on the smoothed, normalised training data; the chapter reports "
          "0.00444 and 0.00018 on AAL)")
    plot_one_step(prep["train_smooth"], sma_predictions, SMA_WINDOW, dates,
                  f"Simple moving average, window {SMA_WINDOW}: one step ahead", out_dir / "sma.png")
    plot_one_step(prep["train_smooth"], ema_predictions, 0, dates,
                  f"Exponential moving average, gamma {EMA_GAMMA}: one step ahead", out_dir / "ema.png")
    return {
        "splits": prep["splits"],
        "scaler": prep["scaler"],  # the test data's own scaler, which the lesson's plot_predictions uses
        "price_splits": ["test"],
        "val_split": "test",  # the lesson validates on the test set ...
        "monitor": "loss",  # ... and its ModelCheckpoint watches the training loss
        "val_label": "test set",
        "sizes": {"train": train_size, "test": test_size},
        "note": lesson_leaks(args.norm_window),
        "leaks": lesson_leaks(args.norm_window),
        "extra": {"lesson_one_step": {"sma_error": sma_error, "ema_error": ema_error,
                                      "metric": "0.5 x MSE, one step ahead, on the smoothed training data"}},
    }


def strict_steps(mid, train_size, test_size, dates, stock, args, out_dir):
    """extra – the leak-free preparation and its split figure; returns what training and scoring need."""
    prep = prepare_strict(mid, train_size, test_size, args.look_back, args.foresight)
    splits = prep["splits"]
    plot_split({name: split["raw"] for name, split in splits.items()}, f"{stock}: the strict split (time order)",
               out_dir / "split.png")
    sizes = {name: len(split["raw"]) for name, split in splits.items()}
    note = (
        f"strict protocol: time-ordered split {sizes['train']} train / {sizes['val']} validation / "
        f"{sizes['test']} test; scaler fitted on the {sizes['train']} training rows only; no smoothing; "
        "checkpoints chosen on validation; the test set is only scored."
    )
    return {
        "splits": splits,
        "scaler": prep["scaler"],  # fitted on the training rows only
        "price_splits": ["val", "test"],
        "val_split": "val",
        "monitor": "val_loss",
        "val_label": "validation split",
        "sizes": sizes,
        "note": note,
        "leaks": "none known",
        "extra": {},
    }


if __name__ == "__main__":
    sys.exit(main())
