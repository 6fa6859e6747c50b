"""The baselines a network must beat, forecasting the networks' own targets (not, as the
lesson scores SMA and EMA, one step ahead): naive (the last value), drift, AR (least
squares on the same windows), SES, and the lesson's SMA and EMA."""

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LinearRegression


def baseline_names(lesson):
    """naive, and the lesson's SMA and EMA named by its SMA_WINDOW and EMA_GAMMA."""
    return "naive", f"sma_{lesson.SMA_WINDOW}", f"ema_{lesson.EMA_GAMMA}"


def mae(y_true, y_pred):
    """Mean absolute error, the lesson's loss and metric."""
    return float(np.mean(np.abs(np.ravel(y_true).astype(float) - np.ravel(y_pred).astype(float))))


def origins(n_values, look_back, foresight):
    """Index of each window's last value, for the windows create_dataset makes."""
    return np.arange(max(0, n_values - look_back - foresight)) + look_back - 1


def sma_levels(series, window_size):
    """On every day, the mean of the last window_size values (fewer at the start)."""
    return pd.Series(np.ravel(series)).rolling(window_size, min_periods=1).mean().to_numpy()


def smoothed_levels(series, alpha):
    """On every day, the exponentially smoothed level of the days up to it (from the first
    value); alpha weights the newest value."""
    return pd.Series(np.ravel(series)).ewm(alpha=alpha, adjust=False).mean().to_numpy()


def drift_forecast(last_prices, past, horizon):
    """A random walk with drift: the last price plus horizon times past's mean daily step."""
    return np.asarray(last_prices) + horizon * (past[-1] - past[0]) / (len(past) - 1)


def baseline_forecasts(splits, lesson, look_back=7, foresight=3):
    """Each baseline's forecasts of every split's labels, {baseline: {split: forecasts}}:
    its level on each window's last day (the EMA starts at the split's first value rather
    than the lesson's 0, so the first windows are not pulled towards zero)."""
    naive, sma, ema = baseline_names(lesson)
    forecasts = {naive: {}, sma: {}, ema: {}}
    for name, split in splits.items():
        series = np.ravel(split["series"]).astype(float)
        days = origins(len(series), look_back, foresight)
        forecasts[naive][name] = series[days]
        forecasts[sma][name] = sma_levels(series, lesson.SMA_WINDOW)[days]
        forecasts[ema][name] = smoothed_levels(series, alpha=1 - lesson.EMA_GAMMA)[days]
    return forecasts


def fit_ses_alpha(past):
    """Simple exponential smoothing's alpha: least squares one-step errors on the training rows."""

    def squared_errors(alpha):
        level = smoothed_levels(past, alpha)
        return float(np.sum((past[1:] - level[:-1]) ** 2))

    return float(minimize_scalar(squared_errors, bounds=(0.01, 1.0), method="bounded").x)


def baseline_prices(mid, t, origin, horizon, train_xy, x_test, to_price, lesson):
    """Every baseline's price forecast for the windows ending on days t (strict protocol),
    learnt from the rows up to the fold's origin only."""
    past = mid[: origin + 1]
    ar = LinearRegression().fit(*train_xy)  # least squares on the same 7-day windows
    naive, sma, ema = baseline_names(lesson)
    return {
        "naive": mid[t],
        "drift": drift_forecast(mid[t], past, horizon),
        "ar": to_price(ar.predict(x_test)),
        "ses": smoothed_levels(mid, fit_ses_alpha(past))[t],
        sma: sma_levels(mid, lesson.SMA_WINDOW)[t],
        ema: smoothed_levels(mid, 1 - lesson.EMA_GAMMA)[t],
    }


def naive_scale(past, horizon):
    """MASE's denominator: the in-sample h-step naive MAE on the fold's training rows."""
    return mae(past[horizon:], past[:-horizon])
