"""
Title: Comparing LSTMs on stock prices, the lesson's way and leak-free
Author: LSTM Lessons in Keras contributors
Date created: 2026/11/23
Last modified: 2026/12/02
Description: Four networks forecast a stock's mid price 4 days ahead, against three baselines.

The worked example of chapter 6, "Long Short-Term Memory Networks", of *Hands-On Neural
Networks with Keras* (Packt). Take one S&P 500 stock's daily mid price, (high + low) / 2;
normalise the training part in 250-day windows; smooth it; score two one-step moving
averages; then train a feed-forward network, a GRU, an LSTM and a stacked LSTM to predict
the mid price 4 trading days after a 7-day window, 50 epochs each.

The lesson reads Kaggle's S&P 500 file (`AAL_data.csv` or `all_stocks_5yr.csv`, ticker
AAL) when it is in the current folder; otherwise the daily Google prices that matplotlib
ships (goog.npz). Nothing is downloaded.

Beyond the lesson (below "# Beyond the lesson", through the package lstm_lessons.stocks):
baselines scored on the networks' own targets, `--csv` files of any kind, several seeds,
`--jobs`, a results table and metrics.json, and `--protocol strict`: the forecaster's
evaluation over rolling origins (MASE, Diebold-Mariano) with `--forecast`.

    python stock_lstm_compare.py                     # the lesson: 4 networks x 50 epochs
    python stock_lstm_compare.py --quick             # every step in seconds
    python stock_lstm_compare.py --protocol strict   # the forecaster's evaluation, leak-free
    python stock_lstm_compare.py --help
"""

import os
import time
from pathlib import Path

# TensorFlow reads this once, as it is imported: keep its C++ INFO and WARNING lines out
# of the output (a value you set wins)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import matplotlib.cbook as cbook
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from keras import layers
from sklearn.preprocessing import MinMaxScaler

# The lesson's configuration
TRAIN_SIZE, TEST_SIZE = 1000, 251  # the first 1,000 mid prices train, the next 251 test
NORMALIZATION_WINDOW = 250
SMOOTHING_GAMMA = 0.1
SMA_WINDOW, EMA_GAMMA = 26, 0.5
LOOK_BACK, FORESIGHT = 7, 3  # the label is foresight + 1 = 4 days after a window's last day
EPOCHS, BATCH_SIZE = 50, 64
KAGGLE_FILES = ("AAL_data.csv", "all_stocks_5yr.csv")  # used when in the current folder
QUICK = dict(epochs=2)  # every step, in seconds

# Speed: batches per call into the backend (benchmarks/ measures it; torch refuses more
# than 1). No number changes. More is faster (13, a whole epoch of the GOOG fallback's 827
# windows (AAL's 990 make 16), measured 0.83 of plain Keras's fit), but then a 2-epoch run
# of four new networks traces about as often as it calls, and TensorFlow warns of
# "retracing"; 4 does not.
SPEED = {
    "tensorflow": dict(steps_per_execution=4),
    "jax": dict(steps_per_execution=4),
    "torch": {},
}[keras.backend.backend()]


# Importing the data


def import_data(ticker="AAL"):
    """The chapter's stock, or matplotlib's Google prices: (frame with date, high, low; ticker)."""
    for name in KAGGLE_FILES:
        if Path(name).is_file():
            df = pd.read_csv(name)
            return df[df["Name"] == ticker], ticker
    prices = cbook.get_sample_data("goog.npz")["price_data"]  # 2004-08-19 to 2008-10-14
    return pd.DataFrame(prices)[["date", "high", "low"]], "GOOG"


# Sorting and visualising the trend


def plot_trend(aal, ticker):
    """The daily low (red) and high (blue), a date every 60 days."""
    fig, ax = plt.subplots(figsize=(12, 6), layout="tight")
    ax.plot(range(aal.shape[0]), aal["low"], color="r", label="low")
    ax.plot(range(aal.shape[0]), aal["high"], color="b", label="high")
    date_ticks(ax, aal["date"], 60)
    ax.set(xlabel="Date", ylabel="Price", title=f"{ticker}: daily high and low")
    ax.legend()
    return fig


def date_ticks(ax, dates, step):
    positions = range(0, len(dates), step)
    ax.set_xticks(positions, pd.Series(dates).iloc[::step].astype(str), rotation=60, fontsize=8)


# From DataFrame to tensors


def get_mid_prices(aal):
    """The mid price of every day, (high + low) / 2: high and low move together."""
    high_prices = aal.loc[:, "high"].values
    low_prices = aal.loc[:, "low"].values
    return (high_prices + low_prices) / 2.0


# Splitting the data


def split_sizes(n_rows):
    """The lesson's 1,000 : 251; a shorter series is split in that proportion."""
    if n_rows >= TRAIN_SIZE + TEST_SIZE:
        return TRAIN_SIZE, TEST_SIZE
    train_size = int(round(n_rows * TRAIN_SIZE / (TRAIN_SIZE + TEST_SIZE)))
    return train_size, n_rows - train_size


def split_data(mid_prices, train_size=None, test_size=None):
    """The first train_size mid prices train, the next test_size test; as columns."""
    sizes = split_sizes(len(mid_prices))
    train_size, test_size = train_size or sizes[0], test_size or sizes[1]
    train_data = mid_prices[:train_size].reshape(-1, 1)
    test_data = mid_prices[train_size : train_size + test_size].reshape(-1, 1)
    print(f"{len(train_data)} training and {len(test_data)} total testing instances")
    return train_data, test_data


# Plotting the split


def plot_split(train_data, test_data):
    """Side by side, the training and the test part in prices."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="tight")
    for ax, values, name, color in zip(axes, (train_data, test_data), ("Train", "Test"), "rb"):
        ax.plot(range(values.shape[0]), values, color=color, label=f"{name} split")
        ax.set(xlabel="time", ylabel="Price", title=f"{name} Data ({len(values)} days)")
        ax.legend()
    return fig


# Window normalisation


def window_normalise(train_data, normalization_window=NORMALIZATION_WINDOW):
    """Scale the training data to [0, 1] one window at a time, refitting the scaler per window.

    Each day is scaled by the min and max of its own window, later days included: a
    look-ahead the strict protocol avoids. clip=True only removes float rounding.
    """
    data = np.array(train_data, dtype=float).reshape(-1, 1)  # a copy
    scaler = MinMaxScaler(feature_range=(0, 1), clip=True)
    for i in range(0, len(data), normalization_window):
        data[i : i + normalization_window] = scaler.fit_transform(
            data[i : i + normalization_window]
        )
    return data


def normalise_test(test_data):
    """The test data scaled to [0, 1] on itself, in one piece (a leak): (scaled, scaler)."""
    scaler = MinMaxScaler(feature_range=(0, 1))
    return scaler.fit_transform(test_data), scaler


# Denoising the data: implementing exponential smoothing


def exponential_smoothing(data, gamma=SMOOTHING_GAMMA):
    """S[t] = gamma * x[t] + (1 - gamma) * S[t-1], starting from S = 0 as the lesson does."""
    smoothed, smoothing = np.array(data, dtype=float).reshape(-1, 1), 0.0
    for i in range(len(smoothed)):
        smoothing = gamma * smoothed[i, 0] + (1 - gamma) * smoothing
        smoothed[i, 0] = smoothing
    return smoothed


# Visualising the curves


def plot_smoothing(before, after):
    """The normalised training data before and after smoothing."""
    fig, ax = plt.subplots(figsize=(12, 5), layout="tight")
    ax.plot(before, color="lightgray", label="normalised")
    ax.plot(after, color="purple", label="smoothed")
    title = (
        f"Training data, window-normalised, before and after smoothing (gamma {SMOOTHING_GAMMA})"
    )
    ax.set(xlabel="training day", ylabel="normalised mid price", title=title)
    ax.legend()
    return fig


# One-step-ahead predictions: simple and exponential moving averages


def sma_one_step(train_data, window_size=SMA_WINDOW):
    """Each point predicted as the mean of the window_size before it; error 0.5 x MSE."""
    values = np.ravel(train_data)
    if len(values) <= window_size:
        return np.empty(0), float("nan")  # nothing to predict
    predictions = np.array(
        [np.mean(values[i - window_size : i]) for i in range(window_size, len(values))]
    )
    return predictions, float(0.5 * np.mean((predictions - values[window_size:]) ** 2))


def ema_one_step(train_data, gamma=EMA_GAMMA):
    """EMA = gamma * EMA + (1 - gamma) * x[i-1], from EMA = 0; error 0.5 x MSE over 1..N-1."""
    values = np.ravel(train_data)
    predictions = np.zeros_like(values)
    ema = 0.0
    for i in range(1, len(values)):
        ema = ema * gamma + (1.0 - gamma) * values[i - 1]
        predictions[i] = ema
    return predictions, float(0.5 * np.mean((predictions[1:] - values[1:]) ** 2))


def one_step_predictions(train_smooth):
    """Both moving averages on the smoothed training data, and their errors printed."""
    sma, sma_error = sma_one_step(train_smooth)
    ema, ema_error = ema_one_step(train_smooth)
    print(f"MSE error for standard averaging: {sma_error:.5f}")
    print(f"MSE error for EMA averaging: {ema_error:.5f}")
    return dict(sma=sma, sma_error=sma_error, ema=ema, ema_error=ema_error)


def plot_one_step(series, predictions, start, dates, title):
    """A one-step baseline's predictions over the smoothed training data."""
    fig, ax = plt.subplots(figsize=(12, 5), layout="tight")
    ax.plot(series, color="darkblue", label="actual")
    ax.plot(range(start, start + len(predictions)), predictions, color="orange", label="predicted")
    date_ticks(ax, dates[: len(series)], 50)  # one label per tick (the listing has more)
    ax.set(xlabel="Date", ylabel="Mid price (normalised, smoothed)", title=title)
    ax.legend()
    return fig


# Creating sequences of observations


def create_dataset(dataset, look_back=LOOK_BACK, foresight=FORESIGHT):
    """Windows of look_back values, each labelled with the value at i + look_back + foresight."""
    X, Y = [], []
    for i in range(len(dataset) - look_back - foresight):
        X.append(dataset[i : i + look_back, 0])  # look_back prices form an observation
        Y.append(dataset[i + look_back + foresight, 0])  # foresight + 1 steps later
    return np.array(X).reshape(-1, look_back), np.array(Y)


# Reshaping the data


def reshape_data(x, framing="features"):
    """Windows (samples, look_back) as the networks take them, in float32.

    framing "features" is the lesson's (samples, 1, look_back): one time step holding all
    7 days, so a recurrent layer never recurs (its recurrent kernel never trains).
    "timesteps" is (samples, look_back, 1): the layers recur over the days.
    """
    shape = (1, x.shape[1]) if framing == "features" else (x.shape[1], 1)
    return np.reshape(x, (x.shape[0], *shape)).astype("float32")


# All the data steps above, in the chapter's order


def prepare_data(
    aal,
    train_size=None,
    test_size=None,
    look_back=LOOK_BACK,
    foresight=FORESIGHT,
    normalization_window=NORMALIZATION_WINDOW,
    framing="features",
):
    """Mid prices, split, window normalisation, smoothing, one-step baselines, windows."""
    mid_prices = get_mid_prices(aal)
    train_data, test_data = split_data(mid_prices, train_size, test_size)
    train_norm = window_normalise(train_data, normalization_window)
    test_scaled, scaler = normalise_test(test_data)
    train_smooth = exponential_smoothing(train_norm)  # the test data stays as it is
    one_step = one_step_predictions(train_smooth)
    x_train, y_train = create_dataset(train_smooth, look_back, foresight)
    x_test, y_test = create_dataset(test_scaled, look_back, foresight)
    x_train, x_test = reshape_data(x_train, framing), reshape_data(x_test, framing)
    print(f"x_train {x_train.shape}, x_test {x_test.shape}")
    return dict(
        mid_prices=mid_prices,
        dates=aal["date"].to_numpy(),
        train_data=train_data[:, 0],
        test_data=test_data[:, 0],
        train_norm=train_norm[:, 0],
        train_smooth=train_smooth[:, 0],
        test_scaled=test_scaled[:, 0],
        scaler=scaler,
        **one_step,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
    )


def plot_data(data, ticker):
    """The figures of the data steps, by file stem."""
    dates = data["dates"][: len(data["train_smooth"])]
    return {
        "split": plot_split(data["train_data"], data["test_data"]),
        "smoothing": plot_smoothing(data["train_norm"], data["train_smooth"]),
        "sma": plot_one_step(
            data["train_smooth"], data["sma"], SMA_WINDOW, dates, f"{ticker}: SMA {SMA_WINDOW}"
        ),
        "ema": plot_one_step(
            data["train_smooth"], data["ema"], 0, dates, f"{ticker}: EMA gamma {EMA_GAMMA}"
        ),
    }


# Baseline neural networks: building a feedforward network
# Every model starts with keras.Input(shape=...): Keras 3's form of the chapter's
# input_shape=(1, 7). Shapes: the lesson's framing, [batch, 1, 7].
# The chapter's functions also compile their model; ours only define it, and fit_network
# compiles it, so the loss, the optimizer and SPEED apply in one place. simple_gru's extra
# metrics=['mean_absolute_error'] is dropped: it repeats the MAE loss and changes no number.


def feed_forward(input_shape=(1, 7)):
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Flatten(),  # -> [batch, 7]
            layers.Dense(128, activation="relu"),  # -> [batch, 128]
            layers.Dense(1, activation="linear"),  # regressor -> [batch, 1]
        ],
        name="feed_forward",
    )


# Recurrent baseline


def simple_gru(input_shape=(1, 7)):
    """Keras 3's GRU has reset_after=True (the model's 3,969 parameters; the book's Keras 2.2:
    3,873) and a sigmoid recurrent activation (the book's Keras 2.2: hard_sigmoid; the LSTMs
    below change the same way)."""
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.GRU(32, dropout=0.1, recurrent_dropout=0.1),  # -> [batch, 32]
            layers.Dense(1, activation="linear"),
        ],
        name="simple_gru",
    )


# Building LSTMs


def simple_lstm(input_shape=(1, 7)):
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.LSTM(32),  # -> [batch, 32]
            layers.Dense(1, activation="linear"),
        ],
        name="simple_lstm",
    )


# Stacked LSTM


def lstm_stacked(input_shape=(1, 7)):
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            # -> [batch, 1, 16]: the whole sequence, for the next LSTM
            layers.LSTM(16, dropout=0.1, recurrent_dropout=0.2, return_sequences=True),
            layers.LSTM(16, dropout=0.1, recurrent_dropout=0.2),  # -> [batch, 16]
            layers.Dense(1, activation="linear"),
        ],
        name="lstm_stacked",
    )


ALL_NETWORKS = [feed_forward, simple_gru, simple_lstm, lstm_stacked]


# Using helper functions


def plot_losses(history, name, val_label="test set"):
    """Training and validation loss per epoch. The chapter's plot_losses(network) takes fit's
    History and shows it; this takes its history dict and a title, and returns the figure."""
    fig, ax = plt.subplots(figsize=(8, 4), layout="tight")
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax.plot(epochs, history["loss"], label="loss")
    ax.plot(epochs, history["val_loss"], label=f"val loss ({val_label})")
    ax.set(xlabel="epoch", ylabel="loss", title=f"{name}: losses")
    ax.legend()
    return fig


def plot_predictions(preds, y_test, scaler, name):
    """Predictions against the actual test labels, both back in prices. The chapter's
    plot_predictions(model, y_test) predicts x_test itself with the global scaler; this
    takes the predictions fit_network made once, and the scaler, and returns the figure."""
    preds = scaler.inverse_transform(np.reshape(preds, (-1, 1)))
    actual = scaler.inverse_transform(np.reshape(y_test, (-1, 1)))
    fig, ax = plt.subplots(figsize=(12, 6), layout="tight")
    ax.plot(preds, label="generated", color="orange")
    ax.plot(actual, label="Actual")
    mae = float(np.mean(np.abs(preds - actual)))
    ax.set(xlabel="test window", ylabel="Mid price", title=f"{name}: MAE {mae:.3f} in prices")
    ax.legend()
    return fig


# Training the models


def fit_network(
    net,
    data,
    epochs=EPOCHS,
    batch_size=BATCH_SIZE,
    seed=7,
    loss="mae",
    optimizer="adam",
    callbacks=(),
    summary=True,
    plot=True,
    verbose=1,
):
    """One network of train_network's loop: define, compile, fit, evaluate, predict, plot.

    The chapter's ModelCheckpoint writes a file at each better training loss that nothing
    reads back, so it is left out: the model is scored as it is after its last epoch.
    """
    x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    name = net.__name__
    print("Training:", name)
    keras.utils.set_random_seed(seed)  # every network starts from the same seed
    # define model
    model = net(x_train.shape[1:])
    # compile model
    model.compile(loss=loss, optimizer=optimizer, **SPEED)
    # fit model; the chapter validates on the test set
    start = time.perf_counter()
    network = model.fit(
        x_train,
        y_train,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=(x_test, y_test),
        callbacks=list(callbacks),
        verbose=verbose,
    )
    fit_s = time.perf_counter() - start
    # evaluate model
    test_loss = model.evaluate(x_test, y_test, verbose=0)
    # make predictions
    preds = model.predict(x_test, batch_size=batch_size, verbose=0)[:, 0]
    if summary:
        model.summary()
    figures = {}
    if plot:
        figures[f"losses_{name}"] = plot_losses(network.history, name)
        figures[f"predictions_{name}"] = plot_predictions(preds, y_test, data["scaler"], name)
    return dict(
        model=model,
        history=network.history,
        predictions=preds,
        test_loss=float(test_loss),
        fit_s=fit_s,
        figures=figures,
    )


def train_network(networks, data, epochs=EPOCHS, **settings):
    """The chapter's loop over its networks: {name: fit_network's result}."""
    return {net.__name__: fit_network(net, data, epochs, **settings) for net in networks}


def run_lesson(epochs=EPOCHS, batch_size=BATCH_SIZE, seed=7, callbacks=(), plot=True, verbose=1):
    """The chapter's whole example: data, the four networks, their test MAE in prices."""
    aal, ticker = import_data()
    aal = aal.sort_values("date")  # a time series: in date order
    print(aal.head())
    data = prepare_data(aal)
    figures = {"prices": plot_trend(aal, ticker), **plot_data(data, ticker)} if plot else {}
    results = train_network(
        ALL_NETWORKS,
        data,
        epochs,
        batch_size=batch_size,
        seed=seed,
        callbacks=callbacks,
        plot=plot,
        verbose=verbose,
    )
    # Visualising the results
    scaler, actual = data["scaler"], data["y_test"].reshape(-1, 1)
    for name, result in results.items():
        figures.update(result.pop("figures"))
        preds = scaler.inverse_transform(result["predictions"].reshape(-1, 1))
        mae = np.mean(np.abs(preds - scaler.inverse_transform(actual)))
        print(f"{name}: test MAE {result['test_loss']:.4f} (scaled), {mae:.3f} in prices")
    return dict(ticker=ticker, prices=aal, data=data, networks=results, figures=figures)


# Beyond the lesson
import sys  # noqa: E402

from lstm_lessons.cli import run_main  # noqa: E402
from lstm_lessons.parallel import run_trainings  # noqa: E402
from lstm_lessons.stocks.evaluation import run_strict  # noqa: E402
from lstm_lessons.stocks.networks import EpochTimes, finish, lesson_training  # noqa: E402
from lstm_lessons.stocks.options import parse_args  # noqa: E402
from lstm_lessons.stocks.runs import run_lesson_protocol  # noqa: E402
from lstm_lessons.training import ctrl_c_callback  # noqa: E402

# the options run_lesson has no keyword for: with any of them set, main runs its steps
NOT_IN_RUN_LESSON = dict(
    csv=None, ticker=None, train_size=None, test_size=None, look_back=LOOK_BACK,
    foresight=FORESIGHT, norm_window=NORMALIZATION_WINDOW, framing="features",
    models=[net.__name__ for net in ALL_NETWORKS], optimizer="adam", learning_rate=None,
    loss="mae", scale=1.0, repeats=1, jobs=1,
)  # fmt: skip


def train_lesson(args, stock, seeds, out_dir):
    """The lesson on this run's data: (data, figures, each seed's {network: result})."""
    if all(getattr(args, key) == value for key, value in NOT_IN_RUN_LESSON.items()):
        timer = EpochTimes()  # a plain run: run_lesson itself, as a learner runs it
        callbacks = [timer, ctrl_c_callback()]
        ran = run_lesson(args.epochs, args.batch_size, args.seed, callbacks, verbose=args.verbose)
        for times, result in zip(timer.fits, ran["networks"].values()):
            finish(result, result["model"], times, ran["data"], args.epochs)
        return ran["data"], ran["figures"], [ran["networks"]]
    # otherwise its steps, with the run's data, networks and seeds (--jobs: in workers)
    frame, name = stock["data"]["frame"], stock["name"]
    sizes = (stock["train_size"], stock["test_size"], args.look_back, args.foresight)
    data = prepare_data(frame, *sizes, args.norm_window, args.framing)
    figures = {"prices": plot_trend(frame, name), **plot_data(data, name)}
    nets = [net for net in ALL_NETWORKS if net.__name__ in args.models]
    trainings = []
    for r, seed in enumerate(seeds):
        for net in nets:
            call = (fit_network, net, data, args, seed, r == 0)
            trainings.append((f"{net.__name__} seed {seed}", lesson_training, call))
    done = iter(run_trainings(trainings, args, out_dir))
    results = [{net: next(done) for net in args.models} for _ in seeds]
    for net, result in results[0].items():  # the first seed's summary and figures
        result["model"].summary()
        figures[f"losses_{net}"] = plot_losses(result["history"], net)
        preds = result["predictions"]["test"]
        figures[f"predictions_{net}"] = plot_predictions(preds, data["y_test"], data["scaler"], net)
    return data, figures, results


def main(argv=None):
    """Parse the options; run the lesson (run_lesson itself when it can) or the strict protocol."""
    lesson = sys.modules[__name__]  # the lesson part above: its functions and constants
    args = parse_args(argv, lesson)
    if args.protocol == "strict":
        return run_main(lambda args: run_strict(args, lesson), args)
    return run_main(lambda args: run_lesson_protocol(args, lesson, train_lesson), args)


if __name__ == "__main__":
    sys.exit(main())
