"""Tests for stock_lstm_compare.py.

Data reading and its errors, the lesson's arithmetic checked by hand, the
baselines, the strict protocol's scaler, the four networks, and whole runs of
both protocols (tiny: --quick or one epoch). No data file is needed: the tests
write small CSVs in Kaggle's format, and the default runs use matplotlib's
shipped Google prices.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lstm_lessons.parallel
import stock_lstm_compare as slc

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "stock_lstm_compare.py"
KAGGLE_HEADER = "date,open,high,low,close,volume,Name"

# Three AAL rows as Kaggle's all_stocks_5yr.csv has them: their mid prices are the
# chapter's first three, 14.875, 14.635 and 14.305.
AAL_FIRST_ROWS = [
    "2013-02-08,15.07,15.12,14.63,14.75,8407500,AAL",
    "2013-02-11,14.89,15.01,14.26,14.46,8882000,AAL",
    "2013-02-12,14.45,14.51,14.1,14.27,8126000,AAL",
]


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path, monkeypatch):
    """Run in an empty folder: no data/all_stocks_5yr.csv, so the default data is the fallback."""
    monkeypatch.chdir(tmp_path)


def trading_days(n, start="2013-02-08"):
    return np.busday_offset(np.datetime64(start, "D"), np.arange(n), roll="forward")


def price_rows(ticker, n, start_price=20.0, seed=0, start="2013-02-08"):
    """n rows of a made-up random walk, in Kaggle's column order."""
    rng = np.random.default_rng(seed)
    mid = start_price * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    spread = mid * rng.uniform(0.002, 0.02, n)
    rows = []
    for day, m, s in zip(trading_days(n, start), mid, spread):
        high, low = m + s / 2, m - s / 2
        rows.append(f"{day},{m:.4f},{high:.4f},{low:.4f},{m:.4f},1000000,{ticker}")
    return rows


def write_csv(path, rows, header=KAGGLE_HEADER):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def set_field(row, index, value):
    fields = row.split(",")
    fields[index] = value
    return ",".join(fields)


def run_main(argv, capsys):
    code = slc.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


# ---------------------------------------------------------------------------
# Reading the data: formats, header case, ticker selection, repairs
# ---------------------------------------------------------------------------


def test_reads_kaggle_all_stocks_file_and_picks_the_ticker(tmp_path):
    rows = (
        price_rows("AAPL", 30, 60.0, seed=1)
        + AAL_FIRST_ROWS
        + price_rows("AAL", 27, 15.0, start="2013-02-13")
    )
    data = slc.read_price_csv(write_csv(tmp_path / "all_stocks_5yr.csv", rows), "AAL")
    mid = slc.mid_prices(data["high"], data["low"])
    assert len(mid) == 30
    np.testing.assert_allclose(mid[:3], [14.875, 14.635, 14.305])
    assert data["source"] == {
        "kind": "csv",
        "path": str(tmp_path / "all_stocks_5yr.csv"),
        "ticker": "AAL",
        "read_as": ["comma-separated"],
    }
    assert data["repairs"] == []
    assert str(data["dates"][0]) == "2013-02-08"


def test_ticker_is_matched_whatever_its_letter_case(tmp_path):
    path = write_csv(tmp_path / "s.csv", AAL_FIRST_ROWS + price_rows("AAPL", 5))
    data = slc.read_price_csv(path, "aal")
    assert data["source"]["ticker"] == "AAL" and len(data["high"]) == 3


def test_reads_per_ticker_file_with_capitalised_headers(tmp_path):
    path = write_csv(
        tmp_path / "AAL_data.csv", AAL_FIRST_ROWS, header="Date,Open,High,Low,Close,Volume,Name"
    )
    data = slc.read_price_csv(path, "AAL")
    np.testing.assert_allclose(slc.mid_prices(data["high"], data["low"]), [14.875, 14.635, 14.305])


def test_reads_any_csv_with_date_high_low_and_no_name_column(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("HIGH,Low,DATE\n15.12,14.63,2013-02-08\n15.01,14.26,2013-02-11\n")
    data = slc.read_price_csv(path, "AAL")  # no Name column: the ticker plays no part
    assert data["source"]["ticker"] is None
    np.testing.assert_allclose(slc.mid_prices(data["high"], data["low"]), [14.875, 14.635])


def test_thousands_commas_time_zones_and_year_first_dates_are_read_as_meant(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text(
        "Date;High;Low\n2017/01/02 00:00:00+01:00;1,015.01;1,014.26\n"
        "2017/01/03 00:00:00+01:00;15.12;14.63\n"
    )
    data = slc.read_price_csv(path)
    assert data["source"]["read_as"] == [
        "semicolon-separated",
        "thousands commas (1,234.5 is 1234.5)",
    ]
    np.testing.assert_allclose(slc.mid_prices(data["high"], data["low"]), [1014.635, 14.875])
    # the local date of each bar, not the day before in UTC
    assert [str(d) for d in data["dates"]] == ["2017-01-02", "2017-01-03"]


def test_diebold_mariano_needs_more_targets_than_the_horizon():
    assert slc.diebold_mariano([0.5, -0.2, 0.1, 0.3], horizon=4) == (None, None)
    assert slc.diebold_mariano([0.5, -0.2, 0.1, 0.3, 0.2], horizon=4)[1] is not None


@pytest.mark.parametrize(
    "text, read_as",
    [
        (
            "Date;High;Low\n08.02.2013;15,12;14,63\n11.02.2013;1.015,01;1.014,26\n",
            ["semicolon-separated", "decimal commas (1.234,5 is 1234.5)", "dates day first"],
        ),
        (
            "date\thigh\tlow\n2013-02-08\t15.12\t14.63\n2013-02-11\t1015.01\t1014.26\n",
            ["tab-separated"],
        ),
        (
            "date;high;low\n2013-02-08;15.12;14.63\n2013-02-11;1015.01;1014.26\n",
            ["semicolon-separated"],
        ),
        (
            "date,high,low\n2013-02-08,15.12,14.63\n2013-02-11,1015.01,1014.26\n",
            ["comma-separated"],
        ),
    ],
)
def test_semicolon_and_tab_files_are_read_and_the_separator_is_named(tmp_path, text, read_as):
    path = tmp_path / "prices.csv"
    path.write_text(text)
    data = slc.read_price_csv(path)
    assert data["source"]["read_as"] == read_as
    np.testing.assert_allclose(slc.mid_prices(data["high"], data["low"]), [14.875, 1014.635])
    assert [str(d) for d in data["dates"]] == ["2013-02-08", "2013-02-11"]


def test_a_semicolon_file_with_a_real_problem_keeps_its_error(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("Date;High;Low\n08.02.2013;15,12;14,63\n11.02.2013;abc;14,26\n")
    with pytest.raises(slc.DataError, match="column 'high' .* line 3: 'abc'"):
        slc.read_price_csv(path)


def test_unsorted_rows_are_sorted_and_repeated_rows_dropped_and_both_stated(tmp_path):
    rows = [AAL_FIRST_ROWS[2], AAL_FIRST_ROWS[0], AAL_FIRST_ROWS[1], AAL_FIRST_ROWS[0]]
    data = slc.read_price_csv(write_csv(tmp_path / "s.csv", rows), "AAL")
    assert [str(d) for d in data["dates"]] == ["2013-02-08", "2013-02-11", "2013-02-12"]
    np.testing.assert_allclose(slc.mid_prices(data["high"], data["low"]), [14.875, 14.635, 14.305])
    assert len(data["repairs"]) == 2
    assert "sorted 4 rows by date" in data["repairs"][0]
    assert "dropped 1 row(s)" in data["repairs"][1]


def test_without_csv_the_kaggle_file_in_data_is_used_when_present(tmp_path):
    (tmp_path / "data").mkdir()
    write_csv(tmp_path / "data" / "all_stocks_5yr.csv", AAL_FIRST_ROWS + price_rows("AAPL", 3))
    data = slc.load_prices(None, "AAL")  # the working folder is tmp_path
    assert data["source"] == {
        "kind": "csv",
        "path": str(Path("data") / "all_stocks_5yr.csv"),
        "ticker": "AAL",
        "read_as": ["comma-separated"],
    }
    assert len(data["high"]) == 3


def test_fallback_is_matplotlibs_google_prices():
    data = slc.load_prices(None)
    assert data["source"]["path"] == "goog.npz"
    assert len(data["dates"]) == 1047
    assert (str(data["dates"][0]), str(data["dates"][-1])) == ("2004-08-19", "2008-10-14")
    assert np.all(np.diff(data["dates"]) > np.timedelta64(0, "D"))
    assert np.all(data["high"] >= data["low"])


# ---------------------------------------------------------------------------
# The lesson's split and windows
# ---------------------------------------------------------------------------


def test_lesson_counts_on_1259_points_are_1000_251_and_990_241_windows():
    mid = 30 + np.sin(np.arange(1259) / 20.0) + np.arange(1259) / 100.0
    train_size, test_size = slc.split_sizes(len(mid))
    assert (train_size, test_size) == (1000, 251)
    prep = slc.prepare_lesson(mid, train_size, test_size)
    x_train, y_train = prep["splits"]["train"]["x"], prep["splits"]["train"]["y"]
    x_test, y_test = prep["splits"]["test"]["x"], prep["splits"]["test"]["y"]
    assert x_train.shape == (990, 7) and y_train.shape == (990,)
    assert x_test.shape == (241, 7) and y_test.shape == (241,)
    assert slc.frame_inputs(x_train).shape == (990, 1, 7)  # the lesson's reshape
    assert slc.frame_inputs(x_train, "timesteps").shape == (990, 7, 1)


def test_shorter_series_is_split_in_the_lesson_proportion():
    assert slc.split_sizes(1047) == (837, 210)  # the fallback: 1047 * 1000/1251 = 836.9
    assert slc.split_sizes(1300) == (1000, 251)
    assert slc.split_sizes(2000, train_size=400, test_size=100) == (400, 100)
    assert slc.split_sizes(2000, train_size=400) == (400, 100)  # 400 * 251/1000 = 100.4
    assert slc.split_sizes(2000, test_size=251) == (1000, 251)


# ---------------------------------------------------------------------------
# The lesson's arithmetic, by hand, on a small CSV in Kaggle's format
# ---------------------------------------------------------------------------


def test_lesson_pipeline_arithmetic_by_hand_on_a_small_kaggle_csv(tmp_path):
    # AAL's first three days, then 9 made-up days; mid prices in the comments.
    rows = AAL_FIRST_ROWS + [
        "2013-02-13,14.6,14.7,14.5,14.6,1,AAL",  # 14.60
        "2013-02-14,14.6,15.0,14.6,14.8,1,AAL",  # 14.80
        "2013-02-15,14.6,15.2,14.8,15.0,1,AAL",  # 15.00
        "2013-02-19,14.6,15.0,14.0,14.5,1,AAL",  # 14.50
        "2013-02-20,14.6,16.0,15.0,15.5,1,AAL",  # 15.50
        "2013-02-21,14.6,16.2,15.8,16.0,1,AAL",  # 16.00  (test from here)
        "2013-02-22,14.6,17.0,16.0,16.5,1,AAL",  # 16.50
        "2013-02-25,14.6,15.2,14.8,15.0,1,AAL",  # 15.00
        "2013-02-26,14.6,18.2,17.8,18.0,1,AAL",  # 18.00
    ]
    rows = rows + price_rows("ZZZ", 4, seed=3)  # another ticker, ignored
    data = slc.read_price_csv(write_csv(tmp_path / "all_stocks_5yr.csv", rows), "AAL")
    mid = slc.mid_prices(data["high"], data["low"])
    np.testing.assert_allclose(
        mid, [14.875, 14.635, 14.305, 14.6, 14.8, 15.0, 14.5, 15.5, 16.0, 16.5, 15.0, 18.0]
    )

    prep = slc.prepare_lesson(
        mid, train_size=8, test_size=4, look_back=2, foresight=1, normalization_window=4
    )

    # Window normalisation, window 4: [14.875 14.635 14.305 14.6] has min 14.305 and
    # max 14.875 (range 0.57); [14.8 15.0 14.5 15.5] has min 14.5, max 15.5 (range 1).
    norm = [1.0, 0.33 / 0.57, 0.0, 0.295 / 0.57, 0.3, 0.5, 0.0, 1.0]
    np.testing.assert_allclose(prep["train_norm"], norm, atol=1e-12)

    # Exponential smoothing, gamma 0.1, from 0: S = 0.1 x + 0.9 S_prev.
    smooth, level = [], 0.0
    for value in norm:
        level = 0.1 * value + 0.9 * level
        smooth.append(level)
    s1 = 0.1 * 0.33 / 0.57 + 0.9 * 0.1
    np.testing.assert_allclose(prep["train_smooth"][:3], [0.1, s1, 0.9 * s1])
    np.testing.assert_allclose(prep["train_smooth"], smooth)

    # The test part [16 16.5 15 18] is scaled on itself: min 15, max 18.
    np.testing.assert_allclose(prep["test_scaled"], [1 / 3, 1.5 / 3, 0.0, 1.0])
    np.testing.assert_allclose(prep["scaler"].inverse_transform([[0.0], [1.0]])[:, 0], [15.0, 18.0])

    # Windows of 2, label at i + 2 + 1: 8 - 3 = 5 training windows, 4 - 3 = 1 test window.
    x_train, y_train = prep["splits"]["train"]["x"], prep["splits"]["train"]["y"]
    np.testing.assert_allclose(x_train, [smooth[i : i + 2] for i in range(5)])
    np.testing.assert_allclose(y_train, [smooth[i + 3] for i in range(5)])
    np.testing.assert_allclose(prep["splits"]["test"]["x"], [[1 / 3, 0.5]])
    np.testing.assert_allclose(prep["splits"]["test"]["y"], [1.0])

    # The one-step SMA needs more than 26 points, more than this: checked below on its own.
    assert len(prep["sma"][0]) == 0 and np.isnan(prep["sma"][1])
    ema_predictions, ema_error = prep["ema"]
    expected, ema = [0.0], 0.0
    for i in range(1, 8):
        ema = 0.5 * ema + 0.5 * smooth[i - 1]
        expected.append(ema)
    np.testing.assert_allclose(ema_predictions, expected)
    assert ema_error == pytest.approx(
        0.5 * np.mean((np.array(expected[1:]) - np.array(smooth[1:])) ** 2)
    )


def test_window_normalisation_refits_per_window_including_a_short_last_one():
    data = np.array([1.0, 3.0, 2.0, 10.0, 20.0, 15.0, 7.0, 7.0])
    np.testing.assert_allclose(slc.window_normalise(data, 3)[:, 0], [0, 1, 0.5, 0, 1, 0.5, 0, 0])


def test_exponential_smoothing_starts_from_zero():
    np.testing.assert_allclose(
        slc.exponential_smoothing([1.0, 1.0, 1.0], 0.1)[:, 0], [0.1, 0.19, 0.271]
    )
    np.testing.assert_allclose(slc.exponential_smoothing([2.0, 4.0], 0.5)[:, 0], [1.0, 2.5])


def test_create_dataset_label_is_at_i_plus_look_back_plus_foresight():
    series = np.arange(20.0).reshape(-1, 1)
    x, y = slc.create_dataset(series, look_back=7, foresight=3)
    assert x.shape == (10, 7)
    np.testing.assert_array_equal(x[0], np.arange(7.0))
    np.testing.assert_array_equal(y, np.arange(10.0, 20.0))  # y[i] = series[i + 10]
    assert y[0] - x[0, -1] == 4  # 4 steps after the window's last value
    x, y = slc.create_dataset(np.arange(5.0), 3, 2)
    assert x.shape == (0, 3) and y.shape == (0,)


# ---------------------------------------------------------------------------
# Baselines, against hand-computed values
# ---------------------------------------------------------------------------


def test_one_step_sma_and_ema_as_the_lesson_scores_them():
    predictions, error = slc.sma_one_step([1.0, 2.0, 3.0, 4.0, 5.0], window_size=2)
    np.testing.assert_allclose(predictions, [1.5, 2.5, 3.5])  # vs 3, 4, 5
    assert error == pytest.approx(0.5 * 2.25)
    predictions, error = slc.ema_one_step([2.0, 4.0, 6.0], gamma=0.5)
    np.testing.assert_allclose(predictions, [0.0, 1.0, 2.5])  # vs -, 4, 6
    assert error == pytest.approx(0.5 * (9.0 + 12.25) / 2)


def test_four_step_baselines_forecast_the_networks_targets():
    series = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0])
    x, y = slc.create_dataset(series, look_back=2, foresight=2)  # 3 windows, targets 16, 32, 64
    np.testing.assert_array_equal(y, [16.0, 32.0, 64.0])
    np.testing.assert_array_equal(slc.naive_forecast(x), [2.0, 4.0, 8.0])
    # SMA over the last 3 values up to each window's end (fewer at the start)
    np.testing.assert_allclose(slc.sma_forecast(series, 2, 2, window_size=3), [1.5, 7 / 3, 14 / 3])
    # EMA with gamma 0.5 started at the first value: 1, 1.5, 2.75, 5.375
    np.testing.assert_allclose(slc.ema_forecast(series, 2, 2, gamma=0.5), [1.5, 2.75, 5.375])
    assert slc.mae(y, slc.naive_forecast(x)) == pytest.approx((14 + 28 + 56) / 3)


def test_ema_forecast_with_gamma_other_than_a_half_matches_the_lessons_loop():
    # gamma weights the OLD average (the lesson's EMA); pandas' alpha = 1 - gamma the new value
    series = np.array([3.0, 5.0, 4.0, 10.0, 8.0, 9.0, 1.0, 7.0])
    level, ema = series[0], []
    for x in series:
        level = 0.8 * level + 0.2 * x
        ema.append(level)
    origins = np.arange(len(series) - 2 - 1) + 2 - 1  # each window's last value
    np.testing.assert_allclose(slc.ema_forecast(series, 2, 1, gamma=0.8), np.array(ema)[origins])
    assert not np.allclose(slc.ema_forecast(series, 2, 1, gamma=0.2), np.array(ema)[origins])


def test_sma_forecast_matches_a_plain_loop():
    series = np.random.default_rng(0).normal(size=40)
    ends = range(2, 37)  # each window's last value: 40 - 3 - 2 = 35 windows of 3
    expected = [series[max(0, end - 5 + 1) : end + 1].mean() for end in ends]
    np.testing.assert_allclose(slc.sma_forecast(series, 3, 2, window_size=5), expected)


def test_the_lessons_loops_match_the_pandas_one_liners_in_their_docstrings():
    import pandas as pd

    x = np.random.default_rng(1).uniform(size=60)
    smoothed = pd.Series([0.0, *x]).ewm(alpha=0.1, adjust=False).mean()[1:]
    np.testing.assert_allclose(slc.exponential_smoothing(x, 0.1)[:, 0], smoothed)
    predictions = pd.Series([0.0, *x[:-1]]).ewm(alpha=1 - 0.7, adjust=False).mean()
    np.testing.assert_allclose(slc.ema_one_step(x, 0.7)[0], predictions)
    sma = pd.Series(x).rolling(26).mean().shift(1)[26:]
    np.testing.assert_allclose(slc.sma_one_step(x, 26)[0], sma)


# ---------------------------------------------------------------------------
# The strict protocol: rolling origins, baselines, scores, Diebold-Mariano
# ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    n_rows=st.integers(60, 300),
    look_back=st.integers(1, 10),
    horizon=st.integers(1, 6),
    folds=st.integers(1, 6),
    share=st.floats(0.1, 0.5),
)
def test_rolling_folds_train_only_on_targets_known_at_the_origin(
    n_rows, look_back, horizon, folds, share
):
    n_targets = max(folds, int(n_rows * share))
    first = n_rows - n_targets
    t, layout = slc.rolling_folds(n_rows, first, n_targets, folds, look_back, horizon)
    assert t[0] == look_back - 1 and t[-1] + horizon == n_rows - 1  # every window, whole series
    tested = np.concatenate([fold["test"] for fold in layout])
    # every test target is in exactly one fold, in time order, and the folds cover the test part
    np.testing.assert_array_equal(t[tested] + horizon, np.arange(first, n_rows))
    for fold in layout:
        targets = t[fold["test"]] + horizon
        assert fold["origin"] == targets[0] - horizon  # the day the fold's first forecast is made
        assert (t[fold["train"]] + horizon <= fold["origin"]).all()  # known at the origin
        # and no window that was known then is left out
        assert len(fold["train"]) == max(0, fold["origin"] - horizon - (look_back - 1) + 1)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(1, 1000, allow_nan=False), min_size=80, max_size=150),
    noise=st.lists(st.floats(-100, 100, allow_nan=False), min_size=150, max_size=150),
    origin=st.integers(30, 60),
)
def test_a_folds_scaler_and_training_windows_never_see_rows_after_its_origin(values, noise, origin):
    from sklearn.preprocessing import MinMaxScaler

    mid = np.array(values)
    changed = mid.copy()
    changed[origin + 1 :] = np.abs(changed[origin + 1 :] + noise[: len(mid) - origin - 1]) + 1
    t, (fold,) = slc.rolling_folds(len(mid), origin + 4, len(mid) - origin - 4, 1, 7, 4)
    for target in ("price", "log-return"):
        arrays = []
        for series in (mid, changed):
            scaler = MinMaxScaler().fit(series[: origin + 1].reshape(-1, 1))
            x, y = slc.window_arrays(series, t, 7, 4, target, scaler)
            arrays.append((x[fold["train"]], y[fold["train"]]))
        np.testing.assert_array_equal(arrays[0][0], arrays[1][0])
        np.testing.assert_array_equal(arrays[0][1], arrays[1][1])


def test_log_return_windows_labels_and_prices_back():
    mid = np.array([10.0, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20])
    t = np.array([2, 3])
    x, y = slc.window_arrays(mid, t, 3, 4, "log-return", None)
    np.testing.assert_allclose(x[0], np.log([10 / 12, 11 / 12, 1.0]))  # the last input is 0
    np.testing.assert_allclose(y, np.log([16 / 12, 17 / 13]))  # log(p[t + h] / p[t])
    np.testing.assert_allclose(slc.to_prices(y, mid, t, "log-return", None), [16, 17])
    np.testing.assert_allclose(slc.to_prices([0, 0], mid, t, "log-return", None), [12, 13])


def test_baselines_by_hand():
    mid = np.array([10.0, 12, 11, 13, 14, 16, 15, 17, 18, 20, 19, 21])
    t, origin, horizon = np.array([9, 10]), 7, 2
    x_train = np.array([[1.0, 2], [2, 3], [3, 4]])
    prices = slc.baseline_prices(
        mid,
        t,
        origin,
        horizon,
        (x_train, x_train @ [1, 1]),
        np.array([[1.0, 1], [2, 2]]),
        to_price=lambda values: np.asarray(values) * 100,
    )
    np.testing.assert_allclose(prices["naive"], [20, 19])
    slope = (17 - 10) / 7  # the training rows' mean daily step, days 0..7
    np.testing.assert_allclose(prices["drift"], [20 + 2 * slope, 19 + 2 * slope])
    np.testing.assert_allclose(prices["ar"], [200, 400])  # least squares found y = x1 + x2
    np.testing.assert_allclose(prices["sma_26"], [np.mean(mid[:10]), np.mean(mid[:11])])
    ema = 10.0
    for value in mid[1:10]:
        ema = 0.5 * ema + 0.5 * value
    assert prices["ema_0.5"][0] == pytest.approx(ema)
    alpha = slc.fit_ses_alpha(mid[: origin + 1])
    level = mid[0]
    for value in mid[1:10]:
        level = alpha * value + (1 - alpha) * level
    assert prices["ses"][0] == pytest.approx(level)


def test_ses_alpha_fits_the_training_rows():
    rng = np.random.default_rng(0)
    walk = 100 + np.cumsum(rng.normal(0, 1, 500))  # a random walk: the best level is the last value
    assert slc.fit_ses_alpha(walk) > 0.9
    noisy_flat = 50 + rng.normal(0, 1, 500)  # noise around a constant: smooth a lot
    assert slc.fit_ses_alpha(noisy_flat) < 0.1


def test_mase_scale_is_the_in_sample_h_step_naive_mae():
    past = np.array([1.0, 2, 4, 7, 11])
    assert slc.naive_scale(past, 2) == pytest.approx((3 + 5 + 7) / 3)


def test_diebold_mariano_against_a_case_computed_by_hand():
    d = np.array([1.0, -1, 2, 0, 1, 3, -2, 1])  # naive's |error| - the model's, in time order
    # by hand, n = 8, h = 2 (one lag): mean 5/8; deviations d - 5/8
    # gamma0 = sum(dev^2)/8 = (21 - 8 * (5/8)**2) / 8 = 2.234375
    # gamma1 = sum(dev[1:] * dev[:-1]) / 8 = -10.265625 / 8 = -1.283203125
    # Bartlett, 1 lag: variance = gamma0 + 2 * (1 - 1/2) * gamma1 = 0.951171875
    # DM = 0.625 / sqrt(0.951171875 / 8) = 1.81256...
    # HLN: * sqrt((8 + 1 - 4 + 2 * 1 / 8) / 8) = * sqrt(0.65625) -> 1.46835
    dev = d - 0.625
    assert dev @ dev / 8 == pytest.approx(2.234375)
    assert dev[1:] @ dev[:-1] / 8 == pytest.approx(-1.283203125)
    expected = 0.625 / np.sqrt(0.951171875 / 8) * np.sqrt(0.65625)
    statistic, pvalue = slc.diebold_mariano(d, horizon=2)
    assert statistic == pytest.approx(expected)
    assert statistic == pytest.approx(1.46835, abs=1e-5)
    from scipy import stats

    assert pvalue == pytest.approx(stats.t.sf(expected, df=7))
    assert 0.09 < pvalue < 0.1  # one-sided: a lower mean |error| is not shown at 5%
    # the same errors the other way round: the p-value of the opposite alternative
    assert slc.diebold_mariano(-d, horizon=2)[1] == pytest.approx(1 - pvalue)


def test_diebold_mariano_gives_no_p_value_without_variance():
    assert slc.diebold_mariano(np.zeros(50), horizon=4) == (None, None)
    assert slc.diebold_mariano(np.full(50, 0.3), horizon=4) == (None, None)


def test_dm_verdict_is_computed_from_the_p_values():
    def summary(**pvalues):
        rows = {"naive": {"kind": "baseline"}}
        rows.update({n: {"kind": "network", "dm_pvalue": p} for n, p in pvalues.items()})
        return rows

    sentence, counts = slc.dm_verdict({"A": summary(simple_lstm=0.01, simple_gru=0.4)})
    assert sentence.startswith("1 of 2 networks forecast better than naive")
    assert "simple_lstm (p = 0.010)" in sentence and "simple_gru" not in sentence
    assert "about 5% would be significant by chance alone" in sentence
    assert counts == {"level": 0.05, "tested": 2, "significant": 1}
    sentence, _ = slc.dm_verdict({"A": summary(feed_forward=0.3, simple_lstm=None)})
    assert sentence.startswith("None of the 1 networks") and "simple_lstm" in sentence
    two = {"A": summary(simple_lstm=0.02), "B": summary(simple_lstm=0.5)}
    sentence, counts = slc.dm_verdict(two)
    assert "simple_lstm on A" in sentence and "50% significant" in sentence


def test_a_reused_network_trains_exactly_as_a_new_one():
    """A fold's network trains in the model of an earlier fold or seed (reuse_compiled)."""
    import keras

    rng = np.random.default_rng(1)
    x = rng.random((300, 1, 7)).astype("float32")
    y = x[:, 0, -1] + 0.1 * rng.random(300).astype("float32")
    args = slc.parse_args([])

    def train(seed, data, reuse):
        keras.utils.set_random_seed(seed)
        model = slc.define_and_compile("simple_gru", (1, 7), args)  # recurrent dropout
        if reuse:
            model = slc.reuse_compiled(model)
        model.fit(*data, epochs=2, batch_size=32, verbose=0)
        return model, [w.copy() for w in model.get_weights()]

    vars(slc).pop("_compiled_models", None)
    first, _ = train(5, (x[:200], y[:200]), reuse=True)  # the first of its kind: kept
    again, reused = train(6, (x[100:], y[100:]), reuse=True)  # trains in the first model
    assert again is first
    new, fresh = train(6, (x[100:], y[100:]), reuse=False)  # a new model
    assert new is not first
    for a, b in zip(reused, fresh):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# Property tests (hypothesis)
# ---------------------------------------------------------------------------

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(finite, max_size=60), look_back=st.integers(1, 10), foresight=st.integers(0, 10)
)
def test_create_dataset_windows_and_labels_for_any_sizes(values, look_back, foresight):
    series = np.array(values, dtype=float)
    x, y = slc.create_dataset(series, look_back, foresight)
    n = max(0, len(series) - look_back - foresight)
    assert x.shape == (n, look_back) and y.shape == (n,)
    for i in range(n):
        np.testing.assert_array_equal(x[i], series[i : i + look_back])
        assert y[i] == series[i + look_back + foresight]


@settings(max_examples=60, deadline=None)
@given(values=st.lists(finite, min_size=1, max_size=80), window=st.integers(1, 30))
def test_window_normalisation_keeps_every_training_value_in_0_1(values, window):
    scaled = slc.window_normalise(np.array(values), window)[:, 0]
    assert scaled.shape == (len(values),)
    assert np.all((scaled >= 0.0) & (scaled <= 1.0))


# ---------------------------------------------------------------------------
# The four networks
# ---------------------------------------------------------------------------

EXPECTED_LAYERS = {
    "feed_forward": ["Flatten", "Dense", "Dense"],
    "simple_gru": ["GRU", "Dense"],
    "simple_lstm": ["LSTM", "Dense"],
    "lstm_stacked": ["LSTM", "LSTM", "Dense"],
}
# By hand: Dense 7*128+128 + 129; GRU 3*(32*(7+32) + 2*32) + 33 (Keras' reset_after);
# LSTM 4*(32*(7+32) + 32) + 33; stacked 4*(16*(7+16) + 16) + 4*(16*32 + 16) + 17.
# With the (samples, 7, 1) framing each recurrent layer sees 1 input value, not 7.
EXPECTED_PARAMS = {
    "features": {
        "feed_forward": 1153,
        "simple_gru": 3969,
        "simple_lstm": 5153,
        "lstm_stacked": 3665,
    },
    "timesteps": {
        "feed_forward": 1153,
        "simple_gru": 3393,
        "simple_lstm": 4385,
        "lstm_stacked": 3281,
    },
}


@pytest.mark.parametrize("framing", slc.FRAMINGS)
def test_the_four_networks_layers_and_parameter_counts(framing):
    shape = slc.input_shape_for(framing, 7)
    for name, build in slc.MODEL_BUILDERS.items():
        model = build(shape)
        assert [type(layer).__name__ for layer in model.layers] == EXPECTED_LAYERS[name], name
        assert model.count_params() == EXPECTED_PARAMS[framing][name], name
        assert tuple(model.input_shape) == (None, *shape)
        last = model.layers[-1]
        assert last.units == 1 and last.activation.__name__ == "linear"
    gru = slc.simple_gru(shape).layers[0]
    assert (gru.units, gru.dropout, gru.recurrent_dropout) == (32, 0.1, 0.1)
    lstm = slc.simple_lstm(shape).layers[0]
    assert (lstm.units, lstm.dropout, lstm.recurrent_dropout) == (32, 0.0, 0.0)
    first, second = slc.lstm_stacked(shape).layers[:2]
    assert (first.units, first.dropout, first.recurrent_dropout, first.return_sequences) == (
        16,
        0.1,
        0.2,
        True,
    )
    assert (second.units, second.dropout, second.recurrent_dropout, second.return_sequences) == (
        16,
        0.1,
        0.2,
        False,
    )


# ---------------------------------------------------------------------------
# Whole runs
# ---------------------------------------------------------------------------

LESSON_FILES = {
    "prices.png",
    "split.png",
    "smoothing.png",
    "sma.png",
    "ema.png",
    "comparison.png",
    "metrics.json",
}
ROWS = set(slc.NETWORKS) | set(slc.BASELINES)


def load_record(out_dir):
    """metrics.json, refusing NaN and Infinity (not JSON, and never written)."""

    def refuse(name):
        raise AssertionError(f"metrics.json holds {name}")

    return json.loads((out_dir / "metrics.json").read_text(), parse_constant=refuse)


def check_run(out_dir, stdout, protocol, windows):
    record = load_record(out_dir)
    for key in (
        "script",
        "args",
        "seed",
        "versions",
        "backend",
        "data",
        "timings_s",
        "metrics",
        "verdict",
    ):
        assert key in record
    assert set(record["timings_s"]) >= {"data", "fit", "evaluate"}
    assert record["protocol"] == protocol
    assert record["data"]["path"] == "goog.npz" and record["data"]["rows"] == 1047
    assert record["data"]["windows"] == windows
    assert set(record["metrics"]) == ROWS
    assert sorted(row["rank"] for row in record["metrics"].values()) == list(range(1, 8))
    for name in slc.NETWORKS:
        assert {f"{name}.keras", f"losses_{name}.png", f"predictions_{name}.png"} <= {
            p.name for p in out_dir.iterdir()
        }
    assert "naive last-value baseline" in stdout and record["verdict"] in stdout
    assert "rank" in stdout and "test MAE" in stdout
    return record


def test_lesson_protocol_runs_end_to_end_on_the_fallback(tmp_path, capsys):
    out_dir = tmp_path / "lesson"
    code, stdout, _ = run_main(["--quick", "--verbose", "0", "--out-dir", out_dir], capsys)
    assert code == 0
    record = check_run(out_dir, stdout, "lesson", {"train": 827, "test": 200})
    assert LESSON_FILES <= {p.name for p in out_dir.iterdir()}
    assert record["framing"] == "features" and record["args"]["epochs"] == slc.QUICK["epochs"]
    network = record["metrics"]["simple_lstm"]
    # the lesson protocol scores the final epoch, as the chapter does; one seed: no std
    assert network["epochs_kept"] == [slc.QUICK["epochs"]] and "test_mae_std" not in network
    assert "leaks in the lesson protocol" in stdout and record["leaks"] in stdout
    assert record["metrics"]["simple_lstm"]["params"] == 5153
    assert set(record["lesson_one_step"]) >= {"sma_error", "ema_error"}
    assert "MSE error for standard averaging" in stdout
    assert not list(out_dir.glob(".tmp-*"))


def check_evaluation(record, tickers, models, folds):
    """metrics.json's evaluation layout, which other tools read."""
    evaluation = record["evaluation"]
    assert evaluation["folds"] == folds and evaluation["horizon"] == 4
    assert set(evaluation["tickers"]) == set(tickers)
    for ticker, rows in evaluation["tickers"].items():
        assert set(rows) == set(models) | set(slc.FORECASTERS)
        for name, row in rows.items():
            assert {"mase", "skill", "mae", "mae_price"} <= set(row)
            assert len(row["mase_folds"]) == folds
            assert row["mase"] == pytest.approx(np.mean(row["mase_folds"]))
            assert ("dm_pvalue" in row) == (name in models)
        assert rows["naive"]["skill"] == 0.0
        log = evaluation["fold_log"][ticker]
        assert len(log) == folds and all(set(f["networks"]) == set(models) for f in log)
        assert all(f["seconds"] > 0 and f["test_targets"] > 0 for f in log)
    assert evaluation["verdict"] in record["verdict"] if "verdict" in record else True


def test_strict_protocol_runs_end_to_end_on_the_fallback(tmp_path, capsys):
    out_dir = tmp_path / "strict"
    argv = ["--protocol", "strict", "--quick", "--folds", "2", "--verbose", "0"]
    argv += ["--models", "feed_forward", "simple_lstm", "--out-dir", out_dir]
    code, stdout, _ = run_main(argv, capsys)
    assert code == 0
    record = load_record(out_dir)
    assert record["protocol"] == "strict" and record["framing"] == "features"
    assert record["target"] == "price" and record["data"]["GOOG"]["rows"] == 1047
    check_evaluation(record, ["GOOG"], ["feed_forward", "simple_lstm"], folds=2)
    log = record["evaluation"]["fold_log"]["GOOG"]
    # 837 training rows, 210 test targets in 2 blocks: origins 4 days before each block
    assert [f["test_targets"] for f in log] == [105, 105]
    # (the first window holds days 0-6, its target is day 10; origins are days 833 and 938)
    assert [f["train_windows"] for f in log] == [833 - 10 + 1, 938 - 10 + 1]
    assert "fold 2/2: origin" in stdout and record["evaluation"]["verdict"] in stdout
    files = {p.name for p in out_dir.iterdir()}
    assert {"prices.png", "split.png", "comparison.png", "metrics.json"} <= files
    # only the last fold's models are saved
    assert {p.name for p in out_dir.glob("*.keras")} == {"feed_forward.keras", "simple_lstm.keras"}
    assert not (out_dir / "smoothing.png").exists() and not list(out_dir.glob(".tmp-*"))


def test_strict_on_several_tickers_with_repeats_and_log_returns(tmp_path, capsys):
    rows = []
    for k, ticker in enumerate(("AAA", "BBB", "CCC")):
        rows += price_rows(ticker, 160, 10.0 + 5 * k, seed=k)
    rows = rows[100:] + rows[:100]  # the file's rows in any order
    csv = write_csv(tmp_path / "all_stocks_5yr.csv", rows)
    out_dir = tmp_path / "out"
    argv = ["--csv", csv, "--protocol", "strict", "--tickers", "aaa,BBB,ccc", "--folds", "2"]
    argv += ["--target", "log-return", "--models", "feed_forward", "--repeats", "2"]
    argv += ["--epochs", "1", "--verbose", "0", "--out-dir", out_dir]
    code, stdout, _ = run_main(argv, capsys)
    assert code == 0
    record = load_record(out_dir)
    assert record["seeds"] == [7, 8] and record["target"] == "log-return"
    check_evaluation(record, ["AAA", "BBB", "CCC"], ["feed_forward"], folds=2)
    log = record["evaluation"]["fold_log"]["BBB"]
    assert all(len(f["networks"]["feed_forward"]["epochs_kept"]) == 2 for f in log)
    across = record["evaluation"]["cross_stock"]
    mase = [
        record["evaluation"]["tickers"][t]["feed_forward"]["mase"] for t in ("AAA", "BBB", "CCC")
    ]
    assert across["feed_forward"]["median_mase"] == pytest.approx(np.median(mase))
    assert 0 <= across["feed_forward"]["share_beating_naive"] <= 1
    assert "share_beating_naive" not in across["naive"]
    assert (out_dir / "cross_stock.png").is_file() and "MASE across 3 stocks" in stdout
    for ticker in ("AAA", "BBB", "CCC"):
        assert (out_dir / ticker / "feed_forward.keras").is_file()
        assert (out_dir / ticker / "comparison.png").is_file()
    # with log-returns naive forecasts 0: its MAE in the networks' units is the mean |label|
    assert record["evaluation"]["dm"]["tested"] == 3
    # the cost: mean fit seconds per training over stocks, folds and seeds; epochs run, kept
    cost = record["cost"]["feed_forward"]
    fold_logs = record["evaluation"]["fold_log"].values()
    logs = [f["networks"]["feed_forward"] for log in fold_logs for f in log]  # every stock's
    assert cost["fit_s"] == pytest.approx(sum(run["fit_s"] for run in logs) / (len(logs) * 2))
    assert len(cost["fit_s_by_seed"]) == 2 and cost["epochs"] == 1
    assert cost["epochs_kept"] == 1.0  # one epoch run, so one kept
    assert stdout.count("fit s  epochs  kept") == 3  # each stock's table


def test_run_network_strict_keeps_the_best_epoch_on_validation(tmp_path):
    mid = 30 + np.sin(np.arange(400) / 9.0) + np.arange(400) / 50.0
    t, (fold,) = slc.rolling_folds(400, 300, 100, 1, 7, 4)
    x, y = slc.window_arrays(mid / 50, t, 7, 4, "log-return", None)
    parts = {"train": fold["train"][:-60], "val": fold["train"][-60:], "test": fold["test"]}
    setup = {
        "frames": {name: slc.frame_inputs(x[rows], "timesteps") for name, rows in parts.items()},
        "splits": {name: {"y": y[rows]} for name, rows in parts.items()},
        "to_price": lambda values: np.asarray(values),
        "input_shape": (7, 1),
        "val_split": "val",
        "monitor": "val_loss",
        "val_label": "validation",
    }
    args = slc.parse_args(["--epochs", "6", "--verbose", "0", "--batch-size", "16"])
    result = slc.run_network("feed_forward", setup, args, seed=3, out_dir=tmp_path)
    val_loss = result["history"]["val_loss"]
    assert len(val_loss) == 6 and result["epoch_kept"] == int(np.argmin(val_loss)) + 1
    # the weights kept are the best epoch's: the model scores that epoch's validation loss again
    assert result["scores"]["val_mae"] == pytest.approx(min(val_loss), rel=1e-4)
    saved = {"feed_forward.keras", "losses_feed_forward.png", "predictions_feed_forward.png"}
    assert {p.name for p in tmp_path.iterdir()} == saved


def test_csv_run_with_repeats_records_repairs_and_seeds(tmp_path, capsys):
    rows = price_rows("AAL", 420, 15.0, seed=4)
    rows = (
        rows[200:] + rows[:200] + [rows[5]] + price_rows("AAPL", 30, seed=5)
    )  # unsorted, one repeat
    csv = write_csv(tmp_path / "all_stocks_5yr.csv", rows)
    out_dir = tmp_path / "out"
    argv = ["--csv", csv, "--models", "simple_gru", "feed_forward", "--repeats", "2"]
    argv += ["--epochs", "1", "--verbose", "0", "--norm-window", "100", "--out-dir", out_dir]
    code, stdout, _ = run_main(argv, capsys)
    assert code == 0
    record = load_record(out_dir)
    assert record["data"]["ticker"] == "AAL" and record["data"]["rows"] == 420
    assert len(record["data"]["repairs"]) == 2 and stdout.count("data repair:") == 2
    assert record["seeds"] == [7, 8]
    assert set(record["per_seed"]) == {"feed_forward", "simple_gru"}  # in the lesson's order
    assert all(len(v["test_mae"]) == 2 for v in record["per_seed"].values())
    assert "± std" in stdout and "mean over 2 seeds" in stdout
    for name, values in record["per_seed"].items():  # sample std (ddof=1) over the 2 seeds
        expected = np.std(values["test_mae"], ddof=1)
        assert record["metrics"][name]["test_mae_std"] == pytest.approx(expected)
    assert "test_mae_std" not in record["metrics"]["naive"]  # one value: no std
    assert {p.name for p in out_dir.glob("*.keras")} == {"feed_forward.keras", "simple_gru.keras"}
    ranks = sorted(record["metrics"].items(), key=lambda item: item[1]["rank"])
    assert [m["test_mae"] for _, m in ranks] == sorted(m["test_mae"] for _, m in ranks)
    # the cost of each network, in one place: mean fit seconds per training, epochs
    cost = record["cost"]
    assert set(cost) == {"feed_forward", "simple_gru"}
    for name, spent in cost.items():
        assert spent["epochs"] == 1 and len(spent["fit_s_by_seed"]) == 2
        assert spent["fit_s"] == pytest.approx(np.mean(spent["fit_s_by_seed"]))
        assert "epochs_kept" not in spent  # the lesson keeps the last epoch
        assert all(t > 0 for t in spent["fit_s_by_seed"])
        assert not any("fit" in key for key in record["per_seed"][name])  # scores only
        assert not any("fit" in key for key in record["metrics"][name])
    total = sum(t for spent in cost.values() for t in spent["fit_s_by_seed"])
    assert record["timings_s"]["fit"] == pytest.approx(total)  # the run's total fit time
    header = next(line for line in stdout.splitlines() if line.startswith("rank"))
    assert header.rstrip().endswith("fit s  epochs")
    naive_line = next(line for line in stdout.splitlines() if line.split()[1:2] == ["naive"])
    assert naive_line.split()[-2:] == ["-", "-"]  # baselines have no fit


def test_rerun_replaces_its_own_files_and_touches_nothing_else(tmp_path, capsys):
    out_dir = tmp_path / "out"
    argv = ["--models", "feed_forward", "--epochs", "1", "--verbose", "0", "--out-dir", out_dir]
    assert run_main(argv, capsys)[0] == 0
    run_files = {p.name for p in out_dir.iterdir()}
    mine = out_dir / "my notes.txt"
    mine.write_text("keep me")
    stale = out_dir / "simple_gru.keras"  # as if left by an earlier run with more networks
    stale.write_bytes(b"old")
    old = 1_000_000_000
    for path in out_dir.iterdir():
        os.utime(path, (old, old))
    assert run_main(argv, capsys)[0] == 0
    assert {p.name for p in out_dir.iterdir()} == run_files | {mine.name, stale.name}
    for name in run_files:
        assert (out_dir / name).stat().st_mtime > old, f"{name} was not rewritten"
    assert mine.read_text() == "keep me" and mine.stat().st_mtime == old
    assert stale.read_bytes() == b"old" and stale.stat().st_mtime == old


def test_help_answers_without_importing_keras_or_sklearn():
    code = (
        "import sys, stock_lstm_compare as s\n"
        "try:\n    s.main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'sklearn', 'pandas') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "--protocol" in result.stdout and "--ticker" in result.stdout
    assert "--jobs JOBS" in result.stdout and "(default: 1)" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


# ---------------------------------------------------------------------------
# Bad input: exit 2, one clear line, nothing written (issue 6's matrix)
# ---------------------------------------------------------------------------


def _csv_cases(tmp):
    """Each case: (name, argv, words the error line must hold)."""
    good = price_rows("AAL", 400, seed=6)
    cases = []

    cases.append(("missing file", ["--csv", tmp / "nope.csv"], ["nope.csv", "no such file"]))
    cases.append(("directory", ["--csv", tmp], [str(tmp), "folder"]))
    (tmp / "empty.csv").write_text("")
    cases.append(("empty", ["--csv", tmp / "empty.csv"], ["empty.csv", "is empty"]))
    (tmp / "image.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    cases.append(("not csv", ["--csv", tmp / "image.csv"], ["image.csv", "not a CSV"]))
    write_csv(tmp / "header.csv", [])
    cases.append(("header only", ["--csv", tmp / "header.csv"], ["header.csv", "no data rows"]))
    (tmp / "cols.csv").write_text("Date,Open,Close,Volume\n2013-02-08,1,2,3\n")
    cases.append(
        (
            "missing columns",
            ["--csv", tmp / "cols.csv"],
            ["has no high, low columns", "columns found: Date, Open, Close, Volume"],
        )
    )
    many = [row for k in range(25) for row in price_rows(f"T{k:02d}", 2, seed=k)]
    write_csv(tmp / "many.csv", many)
    cases.append(
        (
            "unknown ticker",
            ["--csv", tmp / "many.csv", "--ticker", "XYZ"],
            ["'XYZ'", "25 tickers available", "the first 20: T00, T01", "T19;"],
        )
    )
    write_csv(tmp / "short.csv", good[:100])
    cases.append(
        (
            "too few rows",
            ["--csv", tmp / "short.csv"],
            ["too few rows", "at least 313 rows", "found 100", "short.csv"],
        )
    )
    cases.append(
        (
            "too few rows strict",
            ["--csv", tmp / "short.csv", "--protocol", "strict", "--look-back", "75"],
            ["too few rows: the strict protocol", "found 100"],
        )
    )
    strict = ["--protocol", "strict"]
    cases.append(
        (
            "too few test rows for the folds",
            ["--csv", tmp / "short.csv", *strict, "--folds", "30"],
            ["too few rows: the strict protocol", "a target for each of the 30 folds"],
        )
    )
    cases.append(
        (
            "unknown tickers in the list",
            ["--csv", tmp / "many.csv", *strict, "--tickers", "T01,XYZ,T02,ABC"],
            ["--tickers: XYZ, ABC not in", "25 tickers available"],
        )
    )
    cases.append(
        (
            "--tickers without a Name column",
            ["--csv", tmp / "cols2.csv", *strict, "--tickers", "all"],
            ["--tickers needs a CSV with a Name column", "cols2.csv has none"],
        )
    )
    write_csv(tmp / "cols2.csv", [r.rsplit(",", 1)[0] for r in good], KAGGLE_HEADER[:-5])
    cases.append(
        (
            "--ticker with a CSV of one stock (no Name column)",
            ["--csv", tmp / "cols2.csv", "--ticker", "MSFT"],
            ["--ticker MSFT:", "cols2.csv has no Name column"],
        )
    )
    cases.append(
        (
            "--tickers without a CSV",
            [*strict, "--tickers", "AAL,MSFT"],
            ["--tickers needs a CSV with a Name column", "--csv"],
        )
    )
    cases.append(
        (
            "--ticker without a CSV (the fallback data hold one stock)",
            ["--ticker", "MSFT"],
            ["--ticker MSFT needs a CSV with a Name column", "Google prices"],
        )
    )
    cases.append(
        ("--ticker and --tickers", [*strict, "--ticker", "A", "--tickers", "B"], ["not both"])
    )
    cases.append(("--folds in the lesson", ["--folds", "3"], ["--folds belongs to the strict"]))
    cases.append(("--tickers in the lesson", ["--tickers", "A,B"], ["--tickers belongs"]))
    cases.append(
        (
            "log-return in the lesson",
            ["--target", "log-return"],
            ["--target log-return needs --protocol strict", "exact zeros"],
        )
    )
    bad = list(good)
    bad[9] = set_field(bad[9], 2, "abc")
    write_csv(tmp / "text.csv", bad)
    cases.append(
        (
            "non-numeric price",
            ["--csv", tmp / "text.csv"],
            ["column 'high'", "line 11: 'abc'", "not numbers"],
        )
    )
    nan = list(good)
    nan[20] = set_field(nan[20], 3, "")
    write_csv(tmp / "nan.csv", nan)
    cases.append(
        ("missing price", ["--csv", tmp / "nan.csv"], ["column 'low'", "line 22: (empty)"])
    )
    dup = list(good)
    dup.insert(50, set_field(good[49], 2, "99.0"))
    write_csv(tmp / "dup.csv", dup)
    cases.append(
        (
            "conflicting duplicate dates",
            ["--csv", tmp / "dup.csv"],
            ["more than once with different prices"],
        )
    )
    dates = list(good)
    dates[3] = set_field(dates[3], 0, "yesterday")
    write_csv(tmp / "dates.csv", dates)
    cases.append(
        (
            "unreadable date",
            ["--csv", tmp / "dates.csv"],
            ["column 'date'", "'yesterday'", "not dates"],
        )
    )
    cases.append(
        (
            "split larger than series",
            ["--train-size", "1000", "--test-size", "251"],
            ["1000 + 251 = 1251 rows", "only 1047"],
        )
    )
    cases.append(
        (
            "look-back too long for the split",
            ["--look-back", "300"],
            ["too small here", "--look-back"],
        )
    )
    cases.append(
        (
            "train size too small",
            ["--train-size", "100", "--test-size", "50"],
            ["--train-size 100 is too small", "at least 250"],
        )
    )
    (tmp / "a_file").write_text("x")
    cases.append(
        (
            "out-dir is a file",
            ["--out-dir", tmp / "a_file", "--epochs", "1"],
            ["is a file, not a folder"],
        )
    )
    cases.append(
        (
            "out-dir cannot be made",
            ["--out-dir", tmp / "a_file" / "sub"],
            ["cannot write to --out-dir"],
        )
    )
    cases.append(("negative seed", ["--seed", "-1"], ["--seed"]))
    return cases


ARGPARSE_CASES = [
    ["--look-back", "0"],
    ["--foresight", "-1"],
    ["--epochs", "0"],
    ["--batch-size", "abc"],
    ["--repeats", "0"],
    ["--train-size", "-5"],
    ["--test-size", "2.5"],
    ["--norm-window", "0"],
    ["--models", "transformer"],
    ["--protocol", "leaky"],
    ["--folds", "0"],
    ["--target", "returns"],
    ["--tickers", ","],
    ["--scale", "0"],
    ["--learning-rate", "-1"],
    ["--optimizer", "lbfgs"],
    ["--loss", "hinge"],
    ["--jobs", "0"],
    ["--jobs", "two"],
]


def test_bad_data_and_options_exit_2_with_one_clear_line_and_write_nothing(tmp_path, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name, argv, words in _csv_cases(inputs):
        out_dir = tmp_path / f"out-{name.replace(' ', '-')}"
        if "--out-dir" not in argv:
            argv = [*argv, "--out-dir", out_dir]
        with pytest.raises(SystemExit) as exc:
            slc.main([str(a) for a in argv])
        assert exc.value.code == 2, name
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
        for word in words:
            assert word in lines[0], (name, word, lines[0])
        assert not out_dir.exists(), name
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("argv", ARGPARSE_CASES, ids=lambda a: " ".join(a))
def test_bad_option_values_get_argparse_errors_naming_the_option(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        slc.main([*argv, "--out-dir", str(tmp_path / "out")])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error: argument " + argv[0] in last
    assert not (tmp_path / "out").exists()


def test_unreadable_csv(tmp_path, capsys, monkeypatch):
    path = write_csv(tmp_path / "locked.csv", price_rows("AAL", 400))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # chmod 0 does not stop root, so the refusal is simulated where the script opens the file
    monkeypatch.setattr(slc, "open", refuse, raising=False)
    with pytest.raises(SystemExit) as exc:
        slc.main(["--csv", str(path), "--out-dir", str(tmp_path / "out")])
    assert exc.value.code == 2
    expected = (
        f"error: cannot read --csv {path} (Permission denied); check the file and its permissions"
    )
    assert capsys.readouterr().err.strip() == expected
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# Ctrl-C during fit
# ---------------------------------------------------------------------------


def test_ctrl_c_during_fit_exits_130_and_leaves_whole_files(tmp_path):
    out_dir = tmp_path / "out"
    # headless with MPLBACKEND and DISPLAY unset: the script must not need either
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY")}
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--models",
        "feed_forward",
        "simple_lstm",
        "--epochs",
        "12",
        "--verbose",
        "2",
        "--out-dir",
        str(out_dir),
    ]
    # a shell that starts pytest in the background ignores SIGINT; restore the default in the child
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + 120
    try:
        seen = ""
        # feed_forward's model is written when its fit ends; stop simple_lstm in its second epoch
        while "Epoch 2/" not in seen.partition("Training: simple_lstm")[2]:
            assert proc.poll() is None, "the run ended before training started"
            assert time.monotonic() < deadline, "training did not start in time"
            try:
                seen += lines.get(timeout=1)
            except queue.Empty:
                pass
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 130, err
    assert (
        err.strip().splitlines()[-1]
        == "interrupted: stopped early; files already written are complete"
    )
    assert "Traceback" not in err

    import keras
    import matplotlib.image

    names = {p.name for p in out_dir.iterdir()}
    assert {
        "prices.png",
        "split.png",
        "smoothing.png",
        "sma.png",
        "ema.png",
        "feed_forward.keras",
        "losses_feed_forward.png",
        "predictions_feed_forward.png",
    } <= names
    assert "simple_lstm.keras" not in names  # stopped before its fit ended: not written at all
    assert not [n for n in names if n.startswith(".tmp-")]
    for path in out_dir.glob("*.png"):
        assert matplotlib.image.imread(path).size > 0
    for path in out_dir.glob("*.keras"):
        assert keras.models.load_model(path).count_params() > 0
    if (out_dir / "metrics.json").exists():
        json.loads((out_dir / "metrics.json").read_text())


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_quick_run_under_jax_and_torch_backends(tmp_path, backend):
    """Only Keras APIs are used, so the script runs unchanged on the other two backends."""
    out = tmp_path / "out"
    env = dict(os.environ, KERAS_BACKEND=backend)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--verbose", "0", "--out-dir", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((out / "metrics.json").read_text())
    assert record["backend"] == backend
    assert set(record["metrics"]) >= {
        "feed_forward",
        "simple_gru",
        "simple_lstm",
        "lstm_stacked",
        "naive",
    }


def test_run_network_lesson_protocol_scores_the_final_epoch():
    """The chapter scores the model after its last epoch, not the best one by any loss."""
    mid = 30 + np.sin(np.arange(400) / 9.0) + np.arange(400) / 50.0
    prep = slc.prepare_lesson(mid, train_size=300, test_size=100, normalization_window=100)
    frames = {name: slc.frame_inputs(s["x"]) for name, s in prep["splits"].items()}
    setup = {
        **prep,
        "frames": frames,
        "input_shape": (1, 7),
        "to_price": lambda values: slc._to_price(prep["scaler"], values),
        "val_split": "test",
        "monitor": None,
        "val_label": "test set",
    }
    args = slc.parse_args(["--epochs", "4", "--verbose", "0"])
    result = slc.run_network("feed_forward", setup, args, seed=3)
    assert result["epoch_kept"] == 4
    # the weights scored are the last epoch's: the test MAE is the last val_loss Keras logged
    assert result["scores"]["test_mae"] == pytest.approx(
        result["history"]["val_loss"][-1], rel=1e-4
    )


# ---------------------------------------------------------------------------
# What Keras 3 changes in the chapter's networks (declared in the script and README)
# ---------------------------------------------------------------------------


def test_keras_3_gru_has_a_second_bias_and_the_chapters_keras_2_count_is_3873():
    import keras

    assert slc.simple_gru((1, 7)).layers[0].reset_after is True
    assert slc.simple_gru((1, 7)).count_params() == 3969  # 3 * (32 * (7 + 32) + 2 * 32) + 33
    keras_2_gru = keras.Sequential(
        [keras.Input((1, 7)), keras.layers.GRU(32, reset_after=False), keras.layers.Dense(1)]
    )
    assert keras_2_gru.count_params() == 3873  # 3 * (32 * (7 + 32) + 32) + 33


def test_keras_3_recurrent_activation_is_sigmoid_not_hard_sigmoid():
    for build in (slc.simple_gru, slc.simple_lstm, slc.lstm_stacked):
        cells = [layer.cell for layer in build((1, 7)).layers if hasattr(layer, "cell")]
        assert cells and all(c.recurrent_activation.__name__ == "sigmoid" for c in cells)


def test_with_one_time_step_the_recurrent_kernel_never_trains():
    """(samples, 1, 7): the recurrent kernel multiplies only the zero initial state."""
    import keras

    keras.utils.set_random_seed(0)
    model = slc.simple_lstm((1, 7))
    cell = model.layers[0].cell
    assert np.prod(cell.recurrent_kernel.shape) == 4096  # 32 x (4 x 32) of the 5,153
    before = [cell.recurrent_kernel.numpy().copy(), cell.kernel.numpy().copy()]
    model.compile(loss="mae", optimizer="adam")
    rng = np.random.default_rng(0)
    x = rng.random((256, 1, 7)).astype("float32")
    model.fit(x, x[:, 0, -1], epochs=2, batch_size=32, verbose=0)
    np.testing.assert_array_equal(cell.recurrent_kernel.numpy(), before[0])
    assert not np.array_equal(cell.kernel.numpy(), before[1])  # the input kernel does train
    # with 7 time steps of one value it recurs, and the recurrent kernel trains
    keras.utils.set_random_seed(0)
    model = slc.simple_lstm((7, 1))
    cell = model.layers[0].cell
    before = cell.recurrent_kernel.numpy().copy()
    model.compile(loss="mae", optimizer="adam")
    model.fit(x.reshape(-1, 7, 1), x[:, 0, -1], epochs=1, batch_size=32, verbose=0)
    assert not np.array_equal(cell.recurrent_kernel.numpy(), before)


# ---------------------------------------------------------------------------
# The chapter's own data, when a copy is here (never committed: Kaggle's terms)
# ---------------------------------------------------------------------------

AAL_FILES = [
    ROOT / "data" / "AAL_data.csv",
    ROOT / "data" / "all_stocks_5yr.csv",
    ROOT.parent / "shared" / "data" / "AAL_data.csv",
]


def test_the_lesson_protocol_reproduces_the_chapter_on_its_aal_file(tmp_path, capsys):
    path = next((p for p in AAL_FILES if p.is_file()), None)
    if path is None:
        pytest.skip(
            "no AAL file: put Kaggle's AAL_data.csv or all_stocks_5yr.csv in data/ "
            "(see data/README.md) to check the chapter's figures"
        )
    out_dir = tmp_path / "aal"
    argv = ["--csv", path, "--ticker", "AAL", "--models", "feed_forward", "--epochs", "1"]
    code, stdout, _ = run_main([*argv, "--verbose", "0", "--out-dir", out_dir], capsys)
    assert code == 0
    record = load_record(out_dir)
    assert record["data"]["rows"] == 1259
    assert record["data"]["first_mid_prices"] == [14.875, 14.635, 14.305]
    assert record["data"]["windows"] == {"train": 990, "test": 241}
    one_step = record["lesson_one_step"]
    assert round(one_step["sma_error"], 5) == 0.00444  # the chapter: 0.00444
    assert round(one_step["ema_error"], 5) == 0.00018  # the chapter: 0.00018
    assert round(record["metrics"]["naive"]["test_mae"], 4) == 0.0746


# ---------------------------------------------------------------------------
# --forecast: past the last date
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["lesson", "strict"])
def test_quick_forecast_past_the_last_date(tmp_path, capsys, protocol):
    out_dir = tmp_path / "out"
    argv = ["--protocol", protocol, "--quick", "--forecast", "--models", "feed_forward"]
    argv += ["--verbose", "0", "--out-dir", out_dir] + (
        ["--folds", "2"] if protocol == "strict" else []
    )
    code, stdout, _ = run_main(argv, capsys)
    assert code == 0
    forecast = load_record(out_dir)["forecast"]
    # Google's last day is Tuesday 2008-10-14; 4 business days on is Monday 2008-10-20
    assert forecast["last_date"] == "2008-10-14" and forecast["date"] == "2008-10-20"
    assert forecast["refit_rows"] == 1047 and "holidays are not skipped" in forecast["calendar"]
    # the lesson trains every epoch; strict, the median best epoch over the folds
    assert 1 <= forecast["epochs"]["feed_forward"] <= slc.QUICK["epochs"]
    models = forecast["models"]
    assert list(models) == ["naive", "drift", "feed_forward"]
    data = slc.load_prices()
    mid = slc.mid_prices(data["high"], data["low"])
    assert models["naive"]["mid_price"] == pytest.approx(mid[-1])
    assert models["drift"]["mid_price"] == pytest.approx(mid[-1] + 4 * (mid[-1] - mid[0]) / 1046)
    for row in models.values():
        assert row["low"] < row["high"] and row["residuals"] > 0
    if protocol == "strict":  # MASE beside each model, where the run measured it
        assert models["feed_forward"]["test_mase"] > 0
    assert "2008-10-20" in stdout and "what the networks must beat" in stdout
    assert (out_dir / "forecast.png").is_file()


def test_saved_models_load_in_safe_mode_and_predict_as_scored(tmp_path, capsys):
    """The README's "use what you trained": every saved model is the one that was scored."""
    import keras

    out_dir = tmp_path / "out"
    assert run_main(["--quick", "--verbose", "0", "--out-dir", out_dir], capsys)[0] == 0
    record = load_record(out_dir)
    data = slc.load_prices()
    prep = slc.prepare_lesson(slc.mid_prices(data["high"], data["low"]), 837, 210)
    x_test, y_test = slc.frame_inputs(prep["splits"]["test"]["x"]), prep["splits"]["test"]["y"]
    for name in slc.NETWORKS:
        model = keras.saving.load_model(out_dir / f"{name}.keras", safe_mode=True)
        predictions = model.predict(x_test, verbose=0)
        assert slc.mae(y_test, predictions) == pytest.approx(
            record["metrics"][name]["test_mae"], rel=1e-5
        )


# ---------------------------------------------------------------------------
# The chapter's exercises: convergence, optimizers, losses, scale
# ---------------------------------------------------------------------------


def test_convergence_is_the_first_epoch_the_running_mean_is_within_1_percent_of_its_low():
    val_loss = [1.0, 0.5, 0.3, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
    seconds = np.arange(1, 11) * 2.0
    # running means (window 5, shorter at the start): ..., epoch 9: 0.2 (the lowest)
    result = slc.convergence(val_loss, seconds)
    running = [np.mean(val_loss[max(0, e - 4) : e + 1]) for e in range(10)]
    first = next(e for e in range(10) if running[e] <= min(running) * 1.01)
    assert result == {"convergence_epoch": first + 1, "convergence_s": seconds[first]}
    assert result["convergence_epoch"] == 8


def test_optimizers_keep_their_keras_default_learning_rate_unless_given():
    defaults = {"adam": 0.001, "sgd": 0.01, "rmsprop": 0.001, "adagrad": 0.001}
    for name, rate in defaults.items():
        assert float(slc.make_optimizer(name).learning_rate) == pytest.approx(rate)
        assert float(slc.make_optimizer(name, 0.05).learning_rate) == pytest.approx(0.05)
    args = slc.parse_args(["--optimizer", "sgd"])
    assert "optimizer sgd, learning rate 0.01, Keras's default" in slc.training_settings(args)


def test_huber_delta_and_the_losses():
    import keras

    huber = slc.training_loss("huber")
    assert isinstance(huber, keras.losses.Huber) and slc.HUBER_DELTA == 0.05
    # below delta Huber is 0.5 x error^2, above it delta x (|error| - delta / 2)
    assert float(huber(np.array([[0.0]]), np.array([[0.04]]))) == pytest.approx(0.5 * 0.04**2)
    assert float(huber(np.array([[0.0]]), np.array([[0.3]]))) == pytest.approx(0.05 * 0.275)
    assert slc.training_loss("mae") == "mae" and slc.training_loss("mse") == "mse"


def test_scale_multiplies_every_layers_units_but_the_output():
    for factor, gru_units, dense_units in ((0.5, 16, 64), (2, 64, 256), (0.01, 1, 1)):
        gru = slc.scale_units(slc.simple_gru((1, 7)), factor)
        assert [getattr(layer, "units", None) for layer in gru.layers] == [gru_units, 1]
        ff = slc.scale_units(slc.feed_forward((1, 7)), factor)
        assert [getattr(layer, "units", None) for layer in ff.layers] == [None, dense_units, 1]
    stacked = slc.scale_units(slc.lstm_stacked((1, 7)), 0.5)
    assert stacked.layers[0].recurrent_dropout == 0.2  # everything else stays
    assert stacked.count_params() == 4 * 8 * (7 + 8 + 1) + 4 * 8 * (8 + 8 + 1) + 9


def test_exercise_options_train_and_record_what_they_trained_with(tmp_path, capsys):
    out_dir = tmp_path / "out"
    argv = ["--models", "feed_forward", "--epochs", "6", "--loss", "huber", "--optimizer", "sgd"]
    argv += ["--learning-rate", "0.05", "--scale", "0.5", "--verbose", "0", "--out-dir", out_dir]
    code, stdout, _ = run_main(argv, capsys)
    assert code == 0
    row = load_record(out_dir)["metrics"]["feed_forward"]
    assert row["trained_on"] == "huber" and row["params"] == 7 * 64 + 64 + 65
    assert 1 <= row["convergence_epochs"][0] <= 6 and row["convergence_s"][0] > 0
    assert "loss huber (delta 0.05), optimizer sgd, learning rate 0.05" in stdout
    assert "conv. epoch" in stdout and (out_dir / "losses_all.png").is_file()


@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
def test_a_network_that_predicts_about_zero_log_return_is_reported_as_a_finding(
    tmp_path, capsys, monkeypatch
):
    """A network that forecasts ~0 log-return has learned naive: a finding, with no p-value."""
    import keras

    def zero_network(input_shape=(1, 7)):  # a network whose output is always 0
        return keras.Sequential(
            [
                keras.Input(input_shape),
                keras.layers.Flatten(),
                keras.layers.Dense(1, kernel_initializer="zeros"),
            ]
        )

    def frozen(model, factor):  # make it untrainable, so it stays at exactly 0
        model.trainable = False
        return model

    monkeypatch.setitem(slc.MODEL_BUILDERS, "feed_forward", zero_network)
    monkeypatch.setattr(slc, "scale_units", frozen)
    out_dir = tmp_path / "out"
    argv = ["--protocol", "strict", "--target", "log-return", "--models", "feed_forward"]
    argv += ["--folds", "1", "--epochs", "1", "--verbose", "0", "--out-dir", out_dir]
    code, stdout, _ = run_main(argv, capsys)
    assert code == 0
    row = load_record(out_dir)["evaluation"]["tickers"]["GOOG"]["feed_forward"]
    assert row["forecast_size"] == 0.0 and "predicts about 0" in row["finding"]
    assert row["dm_pvalue"] is None and "no variance" in row["dm_note"]
    assert "finding: feed_forward predicts about 0" in stdout
    assert "Not testable (no variance against naive): feed_forward" in stdout
    assert "mase_std" not in row  # one fold: no spread


# ---------------------------------------------------------------------------
# --jobs: independent trainings in worker processes, the same numbers
# ---------------------------------------------------------------------------

TIMING_KEYS = {"timings_s", "args", "convergence_s", "seconds", "fit_s", "fit_s_by_seed"}


def without_timings(value):
    """metrics.json minus what depends on the clock or the command line."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def run_script(argv, cwd, timeout=400):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, argv)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "protocol, more",
    [
        ("lesson", ["--models", "feed_forward", "simple_gru", "--repeats", "2"]),
        # 3 trainings per fold: a network's next fold may land on another worker, whose
        # last model is in another state (reuse_compiled must reset it)
        ("strict", ["--models", "feed_forward", "simple_gru", "simple_lstm", "--folds", "3"]),
    ],
)
def test_jobs_2_gives_the_same_numbers_as_jobs_1(tmp_path, protocol, more):
    argv = ["--protocol", protocol, "--quick", *more, "--forecast", "--verbose", "0"]
    records = {}
    for jobs in (1, 2):
        out_dir = tmp_path / f"jobs{jobs}"
        result = run_script([*argv, "--jobs", jobs, "--out-dir", out_dir], tmp_path)
        assert result.returncode == 0, result.stderr
        records[jobs] = load_record(out_dir)
        assert not list(out_dir.glob(".tmp-*"))
        # the parent writes every file, whoever trained
        assert {"feed_forward.keras", "simple_gru.keras", "metrics.json"} <= {
            p.name for p in out_dir.iterdir()
        }
        assert ("trainings in 2 worker processes" in result.stdout) == (jobs == 2)
        if jobs == 1:  # a worker's own output goes to /dev/null
            assert "retracing" not in result.stdout + result.stderr
    # the first seed's lesson steps are printed by the parent with any --jobs
    assert 'Model: "simple_gru"' in result.stdout
    assert without_timings(records[1]) == without_timings(records[2])
    assert records[2]["forecast"]["models"]["simple_gru"]["mid_price"] > 0


def session_processes(session):
    """Pids of the processes still in a session (a process group leader's session id)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # the 6th field of stat: the session id
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_ctrl_c_with_jobs_2_exits_130_and_stops_the_workers(tmp_path):
    out_dir = tmp_path / "out"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(SCRIPT), "--jobs", "2", "--epochs", "50", "--repeats", "2"]
    cmd += ["--verbose", "0", "--out-dir", str(out_dir)]
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives a command
    )
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + 180
    try:
        seen = ""
        while "trainings in 2 worker processes" not in seen:
            assert proc.poll() is None, "the run ended before its trainings started"
            assert time.monotonic() < deadline, "the trainings did not start in time"
            try:
                seen += lines.get(timeout=1)
            except queue.Empty:
                pass
        while len(session_processes(proc.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.5)  # the parent and its two workers
        workers = set(session_processes(proc.pid)) - {proc.pid}
        assert len(workers) >= 2
        time.sleep(2)  # the workers are training
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
        code = proc.wait(timeout=90)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert code == 130, err
    assert "Traceback" not in err
    assert not list(out_dir.glob(".tmp-*")) and not (out_dir / "metrics.json").exists()
    for _ in range(40):  # the workers are stopped, not left behind
        if not set(session_processes(proc.pid)) & workers:
            break
        time.sleep(0.5)
    assert not set(session_processes(proc.pid)) & workers


# ---------------------------------------------------------------------------
# The memory guard: the CSV's size on disk, before anything is read or written
# ---------------------------------------------------------------------------


def test_a_csv_too_big_for_the_memory_left_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    csv = write_csv(tmp_path / "big.csv", price_rows("AAL", 3000, seed=2))
    out_dir = tmp_path / "out"
    argv = ["--csv", str(csv), "--quick", "--out-dir", str(out_dir)]
    one, two = (slc.memory_estimate(slc.parse_args([*argv, "--jobs", j])) for j in "12")
    assert two > one > csv.stat().st_size * slc.CSV_MEMORY_FACTOR
    keras = slc.KERAS_PROCESS_BYTES
    room = (one + keras + two + 2 * keras) // 2  # room for one training process, not for two
    monkeypatch.setattr(lstm_lessons.parallel, "available_memory", lambda: room)
    assert slc.parse_args([*argv, "--jobs", "1"]).jobs == 1
    with pytest.raises(SystemExit) as stopped:
        slc.main([*argv, "--jobs", "2"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"(data {two / 2**30:.1f} GiB, Keras 0.8 GiB in 2 processes)" in err
    assert f"{room / 2**30:.1f} GiB is available" in err
    assert "lower --jobs or --train-size/--test-size" in err
    assert not out_dir.exists()  # nothing written
    # with memory that can't be read, no guard
    monkeypatch.setattr(lstm_lessons.parallel, "available_memory", lambda: None)
    assert slc.parse_args([*argv, "--jobs", "2"]).jobs == 2


def test_the_memory_estimate_grows_with_the_csv_the_split_and_the_workers(tmp_path):
    small = write_csv(tmp_path / "small.csv", price_rows("AAL", 300))
    large = write_csv(tmp_path / "large.csv", price_rows("AAL", 3000))

    def estimate(csv, *more):
        return slc.memory_estimate(slc.parse_args(["--csv", str(csv), *more]))

    assert estimate(large) > estimate(small)
    # each training process holds the windows of the lesson's 1,000 + 251 rows
    assert estimate(large, "--jobs", "2") - estimate(large) == 1251 * slc.TRAINING_BYTES
    # at most one worker per training (4 networks here, 1 with --models feed_forward)
    assert estimate(large, "--jobs", "8") == estimate(large, "--jobs", "4")
    assert estimate(large, "--jobs", "8", "--models", "feed_forward") == estimate(large)
    assert estimate(large, "--train-size", "2000") > estimate(large)
    # a split larger than the file counts the file's rows at most (check_sizes then says so)
    assert estimate(large, "--train-size", "10000000000") < 2**30
    assert estimate(large, "--protocol", "strict") > estimate(large)
    assert slc.memory_estimate(slc.parse_args([])) == 0  # the fallback: no CSV


def test_the_memory_guard_answers_before_keras_is_imported(tmp_path):
    csv = write_csv(tmp_path / "prices.csv", price_rows("AAL", 400))
    code = (
        "import sys, stock_lstm_compare as s\n"
        "s.available_memory = lambda: 1000  # bytes: less than any CSV needs\n"
        f"try:\n    s.main(['--csv', {str(csv)!r}, '--out-dir', {str(tmp_path / 'out')!r}])\n"
        "except SystemExit as e:\n    print(e.code)\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'sklearn', 'pandas') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["2", "[]"], result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "memory" in result.stderr
    assert not (tmp_path / "out").exists()
