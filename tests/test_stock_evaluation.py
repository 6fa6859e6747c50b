"""Tests for the stock script's evaluation beyond the lesson: the baselines, the strict
protocol's rolling origins and fold preparation (nothing after an origin leaks in), MASE and
Diebold-Mariano against cases worked by hand, and the exercises' optimizer, loss and scale."""

import json
from types import SimpleNamespace
from unittest import mock

import keras
import numpy as np
import pytest
from conftest import price_rows
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import stock_lstm_compare as slc
from lstm_lessons import training
from lstm_lessons.stocks import baselines, evaluation, forecast, networks
from lstm_lessons.stocks.options import parse_args


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path, monkeypatch):
    """Run in an empty folder: no Kaggle file, so the default data is the fallback."""
    monkeypatch.chdir(tmp_path)


def parse(argv):
    return parse_args([str(a) for a in argv], slc)


# ---------------------------------------------------------------------------
# The lesson's baselines, rescored on the networks' 4-step targets
# ---------------------------------------------------------------------------


def test_four_step_baselines_forecast_the_networks_targets():
    series = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0])
    x, y = slc.create_dataset(series.reshape(-1, 1), look_back=2, foresight=2)
    np.testing.assert_array_equal(y, [16.0, 32.0, 64.0])  # 3 windows
    forecasts = baselines.baseline_forecasts({"test": {"series": series}}, slc, 2, 2)
    np.testing.assert_array_equal(forecasts["naive"]["test"], x[:, -1])  # [2, 4, 8]
    # SMA over the last 26 values up to each window's end (here: all so far)
    np.testing.assert_allclose(forecasts["sma_26"]["test"], [1.5, 7 / 3, 15 / 4])
    # EMA with gamma 0.5 started at the first value: 1, 1.5, 2.75, 5.375
    np.testing.assert_allclose(forecasts["ema_0.5"]["test"], [1.5, 2.75, 5.375])
    assert baselines.mae(y, x[:, -1]) == pytest.approx((14 + 28 + 56) / 3)


def test_the_baselines_take_the_lessons_sma_window_and_ema_gamma():
    series = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0])
    lesson = SimpleNamespace(SMA_WINDOW=2, EMA_GAMMA=0.75)  # as if the script changed them
    forecasts = baselines.baseline_forecasts({"test": {"series": series}}, lesson, 2, 2)
    assert set(forecasts) == {"naive", "sma_2", "ema_0.75"}
    np.testing.assert_allclose(forecasts["sma_2"]["test"], [1.5, 3.0, 6.0])
    np.testing.assert_allclose(forecasts["ema_0.75"]["test"], [1.25, 1.9375, 3.453125])


def test_the_sma_and_ema_levels_match_plain_loops():
    series = np.random.default_rng(0).normal(size=40)
    expected = [series[max(0, end - 5 + 1) : end + 1].mean() for end in range(40)]
    np.testing.assert_allclose(baselines.sma_levels(series, 5), expected)
    level, ema = series[0], []
    for x in series:  # alpha weights the new value
        level = 0.2 * x + 0.8 * level
        ema.append(level)
    np.testing.assert_allclose(baselines.smoothed_levels(series, 0.2), ema)


# ---------------------------------------------------------------------------
# The strict protocol: rolling origins, baselines, scores, Diebold-Mariano
# ---------------------------------------------------------------------------


def test_diebold_mariano_needs_more_targets_than_the_horizon():
    assert evaluation.diebold_mariano([0.5, -0.2, 0.1, 0.3], horizon=4) == (None, None)
    assert evaluation.diebold_mariano([0.5, -0.2, 0.1, 0.3, 0.2], horizon=4)[1] is not None


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
    t, layout = evaluation.rolling_folds(n_rows, first, n_targets, folds, look_back, horizon)
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


def test_log_return_windows_labels_and_prices_back():
    mid = np.array([10.0, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20])
    t = np.array([2, 3])
    x, y = forecast.window_arrays(mid, t, 3, 4, "log-return", None)
    np.testing.assert_allclose(x[0], np.log([10 / 12, 11 / 12, 1.0]))  # the last input is 0
    np.testing.assert_allclose(y, np.log([16 / 12, 17 / 13]))  # log(p[t + h] / p[t])
    np.testing.assert_allclose(forecast.to_prices(y, mid, t, "log-return", None), [16, 17])
    np.testing.assert_allclose(forecast.to_prices([0, 0], mid, t, "log-return", None), [12, 13])


def test_baselines_by_hand():
    mid = np.array([10.0, 12, 11, 13, 14, 16, 15, 17, 18, 20, 19, 21])
    t, origin, horizon = np.array([9, 10]), 7, 2
    x_train = np.array([[1.0, 2], [2, 3], [3, 4]])
    prices = baselines.baseline_prices(
        mid,
        t,
        origin,
        horizon,
        (x_train, x_train @ [1, 1]),
        np.array([[1.0, 1], [2, 2]]),
        to_price=lambda values: np.asarray(values) * 100,
        lesson=slc,
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
    alpha = baselines.fit_ses_alpha(mid[: origin + 1])
    level = mid[0]
    for value in mid[1:10]:
        level = alpha * value + (1 - alpha) * level
    assert prices["ses"][0] == pytest.approx(level)


def test_ses_alpha_fits_the_training_rows():
    rng = np.random.default_rng(0)
    walk = 100 + np.cumsum(rng.normal(0, 1, 500))  # a random walk: the best level is the last value
    assert baselines.fit_ses_alpha(walk) > 0.9
    noisy_flat = 50 + rng.normal(0, 1, 500)  # noise around a constant: smooth a lot
    assert baselines.fit_ses_alpha(noisy_flat) < 0.1


def test_mase_scale_is_the_in_sample_h_step_naive_mae():
    past = np.array([1.0, 2, 4, 7, 11])
    assert baselines.naive_scale(past, 2) == pytest.approx((3 + 5 + 7) / 3)


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
    statistic, pvalue = evaluation.diebold_mariano(d, horizon=2)
    assert statistic == pytest.approx(expected)
    assert statistic == pytest.approx(1.46835, abs=1e-5)
    assert pvalue == pytest.approx(stats.t.sf(expected, df=7))
    assert 0.09 < pvalue < 0.1  # one-sided: a lower mean |error| is not shown at 5%
    # the same errors the other way round: the p-value of the opposite alternative
    assert evaluation.diebold_mariano(-d, horizon=2)[1] == pytest.approx(1 - pvalue)


def test_diebold_mariano_gives_no_p_value_without_variance():
    assert evaluation.diebold_mariano(np.zeros(50), horizon=4) == (None, None)
    assert evaluation.diebold_mariano(np.full(50, 0.3), horizon=4) == (None, None)


def test_dm_verdict_is_computed_from_the_p_values():
    def summary(**pvalues):
        rows = {"naive": {"kind": "baseline"}}
        rows.update({n: {"kind": "network", "dm_pvalue": p} for n, p in pvalues.items()})
        return rows

    sentence, counts = evaluation.dm_verdict({"A": summary(simple_lstm=0.01, simple_gru=0.4)})
    assert sentence.startswith("1 of 2 networks forecast better than naive")
    assert "simple_lstm (p = 0.010)" in sentence and "simple_gru" not in sentence
    assert "about 5% would be significant by chance alone" in sentence
    assert counts == {"level": 0.05, "tested": 2, "significant": 1}
    sentence, _ = evaluation.dm_verdict({"A": summary(feed_forward=0.3, simple_lstm=None)})
    assert sentence.startswith("None of the 1 networks") and "simple_lstm" in sentence
    two = {"A": summary(simple_lstm=0.02), "B": summary(simple_lstm=0.5)}
    sentence, counts = evaluation.dm_verdict(two)
    assert "simple_lstm on A" in sentence and "50% significant" in sentence


def test_convergence_is_the_first_epoch_the_running_mean_is_within_1_percent_of_its_low():
    val_loss = [1.0, 0.5, 0.3, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
    seconds = np.arange(1, 11) * 2.0
    # running means (window 5, shorter at the start): ..., epoch 9: 0.2 (the lowest)
    result = networks.convergence(val_loss, seconds)
    running = [np.mean(val_loss[max(0, e - 4) : e + 1]) for e in range(10)]
    first = next(e for e in range(10) if running[e] <= min(running) * 1.01)
    assert result == {"convergence_epoch": first + 1, "convergence_s": seconds[first]}
    assert result["convergence_epoch"] == 8


def test_optimizers_keep_their_keras_default_learning_rate_unless_given():
    defaults = {"adam": 0.001, "sgd": 0.01, "rmsprop": 0.001, "adagrad": 0.001}
    for name, rate in defaults.items():
        assert float(networks.make_optimizer(name).learning_rate) == pytest.approx(rate)
        assert float(networks.make_optimizer(name, 0.05).learning_rate) == pytest.approx(0.05)
    args = parse(["--optimizer", "sgd"])
    assert "optimizer sgd, learning rate 0.01, Keras's default" in networks.training_settings(args)


def test_huber_delta_and_the_losses():
    huber = networks.training_loss("huber")
    assert isinstance(huber, keras.losses.Huber) and networks.HUBER_DELTA == 0.05
    # below delta Huber is 0.5 x error^2, above it delta x (|error| - delta / 2)
    assert float(huber(np.array([[0.0]]), np.array([[0.04]]))) == pytest.approx(0.5 * 0.04**2)
    assert float(huber(np.array([[0.0]]), np.array([[0.3]]))) == pytest.approx(0.05 * 0.275)
    assert networks.training_loss("mae") == "mae" and networks.training_loss("mse") == "mse"


def test_scale_multiplies_every_layers_units_but_the_output():
    for factor, gru_units, dense_units in ((0.5, 16, 64), (2, 64, 256), (0.01, 1, 1)):
        gru = networks.scale_units(slc.simple_gru((1, 7)), factor)
        assert [getattr(layer, "units", None) for layer in gru.layers] == [gru_units, 1]
        ff = networks.scale_units(slc.feed_forward((1, 7)), factor)
        assert [getattr(layer, "units", None) for layer in ff.layers] == [None, dense_units, 1]
    stacked = networks.scale_units(slc.lstm_stacked((1, 7)), 0.5)
    assert stacked.layers[0].recurrent_dropout == 0.2  # everything else stays
    assert stacked.count_params() == 4 * 8 * (7 + 8 + 1) + 4 * 8 * (8 + 8 + 1) + 9


@settings(max_examples=25, deadline=None)
@given(
    values=st.lists(st.floats(1, 1000, allow_nan=False), min_size=80, max_size=150),
    noise=st.lists(st.floats(-100, 100, allow_nan=False), min_size=150, max_size=150),
    origin=st.integers(30, 60),
    target=st.sampled_from(["price", "log-return"]),
)
def test_a_folds_preparation_sees_only_rows_up_to_its_origin(values, noise, origin, target):
    """The real fold preparation: its windows, scaler, MASE scale, drift and SES learn from
    the rows up to the origin, whatever comes after; the last 20% of its windows validate."""
    mid = np.array(values)
    changed = mid.copy()
    changed[origin + 1 :] = np.abs(changed[origin + 1 :] + noise[: len(mid) - origin - 1]) + 1
    t, (fold,) = evaluation.rolling_folds(len(mid), origin + 4, len(mid) - origin - 4, 1, 7, 4)
    assert fold["origin"] == origin
    args = parse(["--protocol", "strict", "--target", target])
    seen, fit_ses_alpha = [], baselines.fit_ses_alpha

    def spy(past):
        seen.append(np.array(past))
        return fit_ses_alpha(past)

    with mock.patch.object(baselines, "fit_ses_alpha", spy):
        (setup, known), (setup2, known2) = (
            evaluation.prepare_fold(series, t, fold, args, slc) for series in (mid, changed)
        )
    for part in ("train", "val"):
        np.testing.assert_array_equal(setup["frames"][part], setup2["frames"][part])
        np.testing.assert_array_equal(setup["splits"][part]["y"], setup2["splits"][part]["y"])
    n_val = round(len(fold["train"]) * 0.2)  # the last 20% of the training windows validate
    x, y = forecast.window_arrays(mid, t, 7, 4, target, known["scaler"])
    np.testing.assert_array_equal(setup["splits"]["val"]["y"], y[fold["train"][-n_val:]])
    np.testing.assert_array_equal(setup["splits"]["train"]["y"], y[fold["train"][:-n_val]])
    past = mid[: origin + 1]
    assert known["scale"] == known2["scale"] == pytest.approx(np.mean(np.abs(past[4:] - past[:-4])))
    if target == "price":  # the scaler: fitted on the rows up to the origin
        assert (known["scaler"].data_min_[0], known["scaler"].data_max_[0]) == (
            past.min(),
            past.max(),
        )
    step = (past[-1] - past[0]) / origin  # drift: the mean daily step up to the origin
    np.testing.assert_allclose(
        known["forecasts"]["drift"] - known["last_price"], 4 * step, atol=1e-9
    )
    np.testing.assert_allclose(
        known2["forecasts"]["drift"] - known2["last_price"], 4 * step, atol=1e-9
    )
    assert len(seen) == 2 and all(np.array_equal(s, past) for s in seen)  # SES's alpha


def test_the_strict_folds_faster_path_gives_the_lessons_numbers():
    """run_network (the package's fit_recorded, validation batches, direct calls) trains
    a network exactly as the lesson's fit_network does on the same data and seed."""
    mid = 30 + np.sin(np.arange(400) / 9.0) + np.arange(400) / 50.0
    t, (fold,) = evaluation.rolling_folds(400, 300, 100, 1, 7, 4)
    args = parse(["--protocol", "strict", "--epochs", "3", "--verbose", "0"])
    setup, _ = evaluation.prepare_fold(mid, t, fold, args, slc)
    frames, splits = setup["frames"], setup["splits"]
    fast = networks.run_network(slc.simple_gru, setup, args, seed=3, reuse=False)  # dropout
    data = {"x_train": frames["train"], "y_train": splits["train"]["y"]}
    data.update(x_test=frames["val"], y_test=splits["val"]["y"])
    best = networks.keep_best_epoch(3)
    lesson = slc.fit_network(
        slc.simple_gru, data, 3, seed=3, callbacks=[best], plot=False, verbose=0
    )
    assert lesson["history"]["loss"] == fast["history"]["loss"]
    assert lesson["history"]["val_loss"] == fast["history"]["val_loss"]
    assert best.best_epoch + 1 == fast["epoch_kept"]
    np.testing.assert_allclose(lesson["predictions"], fast["predictions"]["val"], rtol=1e-6)


def test_a_reused_network_trains_exactly_as_a_new_one():
    """A fold's network trains in the model of an earlier fold or seed (reuse_compiled)."""
    rng = np.random.default_rng(1)
    x = rng.random((300, 1, 7)).astype("float32")
    y = x[:, 0, -1] + 0.1 * rng.random(300).astype("float32")
    args = parse([])

    def train(seed, data, reuse):
        keras.utils.set_random_seed(seed)
        model = networks.define_and_compile(slc.simple_gru, (1, 7), args)  # recurrent dropout
        if reuse:
            model = training.reuse_compiled(model)
        model.fit(*data, epochs=2, batch_size=32, verbose=0)
        return model, [w.copy() for w in model.get_weights()]

    training._compiled_models.clear()
    first, _ = train(5, (x[:200], y[:200]), reuse=True)  # the first of its kind: kept
    again, reused = train(6, (x[100:], y[100:]), reuse=True)  # trains in the first model
    assert again is first
    new, fresh = train(6, (x[100:], y[100:]), reuse=False)  # a new model
    assert new is not first
    for a, b in zip(reused, fresh):
        np.testing.assert_array_equal(a, b)


def write_csv(path, rows):
    path.write_text("\n".join(["date,open,high,low,close,volume,Name", *rows]) + "\n")
    return path


def load_record(out_dir):
    return json.loads((out_dir / "metrics.json").read_text())


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
    code = slc.main([str(a) for a in argv])
    stdout = capsys.readouterr().out
    assert code == 0
    record = load_record(out_dir)
    assert record["seeds"] == [7, 8] and record["target"] == "log-return"
    assert set(record["evaluation"]["tickers"]) == {"AAA", "BBB", "CCC"}
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


@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
def test_a_network_that_predicts_about_zero_log_return_is_reported_as_a_finding(
    tmp_path, capsys, monkeypatch
):
    """A network that forecasts ~0 log-return has learned naive: a finding, with no p-value."""

    def feed_forward(input_shape=(1, 7)):  # a network whose output is always 0
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

    monkeypatch.setattr(slc, "ALL_NETWORKS", [feed_forward])
    monkeypatch.setattr(networks, "scale_units", frozen)
    out_dir = tmp_path / "out"
    argv = ["--protocol", "strict", "--target", "log-return", "--models", "feed_forward"]
    argv += ["--folds", "1", "--epochs", "1", "--verbose", "0", "--out-dir", out_dir]
    code = slc.main([str(a) for a in argv])
    stdout = capsys.readouterr().out
    assert code == 0
    row = load_record(out_dir)["evaluation"]["tickers"]["GOOG"]["feed_forward"]
    assert row["forecast_size"] == 0.0 and "predicts about 0" in row["finding"]
    assert row["dm_pvalue"] is None and "no variance" in row["dm_note"]
    assert "finding: feed_forward predicts about 0" in stdout
    assert "Not testable (no variance against naive): feed_forward" in stdout
    assert "mase_std" not in row  # one fold: no spread
