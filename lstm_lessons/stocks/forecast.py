"""--forecast: refit every network on all rows and forecast the mid price h business days
after the last date, with naive and drift, each with an 80% interval from held-out errors.
Also the windows of the whole series in the networks' units, which the strict folds share.
"""

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.preprocessing import MinMaxScaler

from ..outputs import print_table, save_figure
from ..parallel import run_trainings
from ..training import fit_recorded, reuse_compiled
from .baselines import drift_forecast
from .networks import define_and_compile, predict_splits


def window_arrays(mid, t, look_back, horizon, target, scaler):
    """Inputs x and labels y of the windows ending on days t, in the networks' units: prices
    through the scaler, or log prices relative to the window's last day (log-return)."""
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


def forecast_ahead(stock, args, seeds, residuals, mase, epochs, out_dir, lesson):
    """Refit every network and its scaler on all rows (none validates) for `epochs`
    ({network: epochs}), then forecast h business days past the last date, with an 80%
    interval from residuals, {model: held-out errors in prices} (docs/stock_lstm_compare.md)."""
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
    frames = {"train": x, "now": x_now}
    frames = {name: lesson.reshape_data(frame, args.framing) for name, frame in frames.items()}
    networks = {net.__name__: net for net in lesson.ALL_NETWORKS}
    refits = []
    for name in args.models:
        for seed in seeds:
            call = (networks[name], frames, y, args, seed, epochs[name])
            refits.append((f"refit {name} seed {seed}", refit_network, call))
    now = iter(run_trainings(refits, args, out_dir))  # each: the network's value now
    for name in args.models:
        values = np.concatenate([next(now) for _ in seeds])
        prices = to_prices(values, mid, np.full(len(seeds), last), args.target, scaler)
        forecasts[name] = float(np.mean(prices))
    day = (pd.Timestamp(dates[-1]) + pd.offsets.BDay(horizon)).date()
    record = {}
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
    columns = ["model", "date", "mid price", "80% low", "80% high", "test MASE"]
    table = []  # the record's values, None shown as ""
    for name, row in record.items():
        values = [
            "" if row[k] is None else row[k] for k in ("mid_price", "low", "high", "test_mase")
        ]
        table.append(dict(zip(columns, [name, str(day), *values])))
    print(
        f"forecast of the mid price on {day}, {horizon} business days after {dates[-1]} "
        "(exchange holidays are not skipped):"
    )
    print_table(table, columns)
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


def refit_network(net, frames, y, args, seed, epochs):
    """One network, one seed, trained on frames["train"] without validation; returns its
    forecast for frames["now"], in the networks' units."""
    keras.utils.set_random_seed(seed)
    model = define_and_compile(net, frames["train"].shape[1:], args)
    model = reuse_compiled(model)
    fit_recorded(model, frames["train"], y, epochs, args.batch_size, 0)
    return predict_splits(model, {"now": frames["now"]})["now"]  # float32, shape (1,)


def plot_forecast(mid, dates, record, day, note, path):
    """The last 60 days of mid prices, then each model's forecast with its 80% interval."""
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
