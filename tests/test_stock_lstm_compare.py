"""Tests for stock_lstm_compare.py: the lesson part (its arithmetic by hand, its networks,
its defaults against the chapter, and that it runs alone), and whole runs of both protocols.

Most run assertions share one --quick run of the script (the `quick` fixture) and one
--quick strict run with --forecast (the `strict` fixture), on matplotlib's Google prices.
"""

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import AAL_FIRST_ROWS
from hypothesis import given, settings
from hypothesis import strategies as st

import stock_lstm_compare as slc
from lstm_lessons.stocks.options import parse_args

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "stock_lstm_compare.py"
NETWORKS = ["feed_forward", "simple_gru", "simple_lstm", "lstm_stacked"]
BASELINES = ["naive", "sma_26", "ema_0.5"]


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path, monkeypatch):
    """Run in an empty folder: no Kaggle file, so the data are matplotlib's Google prices."""
    monkeypatch.chdir(tmp_path)


def load_record(out_dir):
    """metrics.json, refusing NaN and Infinity (not JSON, and never written)."""

    def refuse(name):
        raise AssertionError(f"metrics.json holds {name}")

    return json.loads((Path(out_dir) / "metrics.json").read_text(), parse_constant=refuse)


def main_in(folder, argv):
    """Run the script's main in a folder; its exit status."""
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return slc.main([str(a) for a in argv])
    finally:
        os.chdir(cwd)


def run_script(argv, cwd, env=None, timeout=900):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, argv)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One --quick run (the lesson protocol, run_lesson itself): its folder, record, output."""
    folder = tmp_path_factory.mktemp("quick")
    done = run_script(["--quick", "--verbose", "0", "--out-dir", folder / "out"], folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"out": folder / "out", "record": load_record(folder / "out"), "stdout": done.stdout,
            "stderr": done.stderr}  # fmt: skip


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """One --quick --protocol strict --forecast run, 2 folds, two networks."""
    folder = tmp_path_factory.mktemp("strict")
    argv = ["--protocol", "strict", "--quick", "--forecast", "--folds", "2", "--verbose", "0"]
    argv += ["--models", "feed_forward", "simple_lstm", "--out-dir", folder / "out"]
    done = run_script(argv, folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"out": folder / "out", "record": load_record(folder / "out"), "stdout": done.stdout}


def goog_mid():
    frame, _ = slc.import_data()
    return (frame["high"].to_numpy() + frame["low"].to_numpy()) / 2.0


# ---------------------------------------------------------------------------
# The lesson part
# ---------------------------------------------------------------------------


def test_the_lesson_part_saved_alone_runs_to_the_end_and_writes_nothing(tmp_path):
    """Everything above '# Beyond the lesson', in a new file with run_lesson(**QUICK)."""
    text = SCRIPT.read_text()
    lesson = text[: text.index("\n# Beyond the lesson")]
    path = tmp_path / "lesson.py"
    path.write_text(lesson + "\n\nrun_lesson(**QUICK, verbose=0)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MPLBACKEND"] = "Agg"
    done = subprocess.run(
        [sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "import lstm_lessons" not in lesson and "from lstm_lessons" not in lesson
    assert "Training: lstm_stacked" in done.stdout and "lstm_stacked: test MAE" in done.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["lesson.py"]  # it wrote no file


def test_the_lesson_defaults_are_the_chapters():
    # the chapter: train_network(all_networks, x_train, y_train, epochs=50); fit's
    # batch_size=64; look_back=7, foresight=3; normalization_window = 250; gamma = 0.1;
    # window_size = 26; the EMA's gamma = 0.5; mid_prices[:1000] and [1000:1251]
    chapter = dict(epochs=50, batch_size=64)
    defaults = inspect.signature(slc.run_lesson).parameters
    assert {key: defaults[key].default for key in chapter} == chapter
    args = parse_args([], slc)
    assert (args.epochs, args.batch_size, args.look_back, args.foresight) == (50, 64, 7, 3)
    assert args.norm_window == 250 and slc.split_sizes(1259) == (1000, 251)
    assert (slc.SMOOTHING_GAMMA, slc.SMA_WINDOW, slc.EMA_GAMMA) == (0.1, 26, 0.5)
    assert set(slc.QUICK) <= set(defaults)  # QUICK holds run_lesson's keywords only


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
    rows = rows + ["2013-02-08,1,2,1,1,1,ZZZ"]  # another ticker, ignored
    header = "date,open,high,low,close,volume,Name"
    (tmp_path / "AAL_data.csv").write_text("\n".join([header, *rows]) + "\n")
    aal, ticker = slc.import_data()  # the chapter's two pandas lines, in the current folder
    assert ticker == "AAL"
    prep = slc.prepare_data(
        aal, train_size=8, test_size=4, look_back=2, foresight=1, normalization_window=4
    )
    np.testing.assert_allclose(
        prep["mid_prices"],
        [14.875, 14.635, 14.305, 14.6, 14.8, 15.0, 14.5, 15.5, 16.0, 16.5, 15.0, 18.0],
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
    # (the lesson's reshape: (samples, 1, look_back), float32)
    x_train, y_train = prep["x_train"], prep["y_train"]
    assert x_train.shape == (5, 1, 2) and prep["x_test"].shape == (1, 1, 2)
    np.testing.assert_allclose(x_train[:, 0], [smooth[i : i + 2] for i in range(5)], rtol=1e-6)
    np.testing.assert_allclose(y_train, [smooth[i + 3] for i in range(5)])
    np.testing.assert_allclose(prep["x_test"][:, 0], [[1 / 3, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(prep["y_test"], [1.0])

    # The one-step SMA needs more than 26 points, more than this: checked below on its own.
    assert len(prep["sma"]) == 0 and np.isnan(prep["sma_error"])
    ema_predictions, ema_error = prep["ema"], prep["ema_error"]
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
    x, y = slc.create_dataset(np.arange(5.0).reshape(-1, 1), 3, 2)
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


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(finite, max_size=60), look_back=st.integers(1, 10), foresight=st.integers(0, 10)
)
def test_create_dataset_windows_and_labels_for_any_sizes(values, look_back, foresight):
    series = np.array(values, dtype=float)
    x, y = slc.create_dataset(series.reshape(-1, 1), look_back, foresight)
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


@pytest.mark.parametrize("framing", ["features", "timesteps"])
def test_the_four_networks_layers_and_parameter_counts(framing):
    shape = (1, 7) if framing == "features" else (7, 1)
    for build in slc.ALL_NETWORKS:
        name = build.__name__
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
# Whole runs: the lesson protocol (one --quick run feeds these)
# ---------------------------------------------------------------------------


def test_quick_run_writes_every_figure_model_and_metric(quick):
    out, record = quick["out"], quick["record"]
    files = {p.name for p in out.iterdir()}
    figures = {"prices", "split", "smoothing", "sma", "ema", "comparison", "losses_all"}
    figures |= {f"{kind}_{name}" for kind in ("losses", "predictions") for name in NETWORKS}
    assert {f"{stem}.png" for stem in figures} | {f"{n}.keras" for n in NETWORKS} <= files
    assert "metrics.json" in files and not [n for n in files if n.startswith(".tmp-")]
    assert record["protocol"] == "lesson" and record["framing"] == "features"
    assert record["data"]["path"] == "goog.npz" and record["data"]["rows"] == 1047
    assert record["data"]["split"] == {"train": 837, "test": 210, "unused": 0}
    assert record["data"]["windows"] == {"train": 827, "test": 200}
    assert set(record["metrics"]) == set(NETWORKS) | set(BASELINES)
    assert sorted(row["rank"] for row in record["metrics"].values()) == list(range(1, 8))
    for name in NETWORKS:  # the lesson scores the last epoch; one seed: no std
        row = record["metrics"][name]
        assert row["epochs_kept"] == [slc.QUICK["epochs"]] and "test_mae_std" not in row
    assert record["metrics"]["simple_lstm"]["params"] == 5153
    assert set(record["lesson_one_step"]) >= {"sma_error", "ema_error"}


def test_quick_run_prints_the_lessons_steps_and_one_table(quick):
    stdout, record = quick["stdout"], quick["record"]
    assert "837 training and 210 total testing instances" in stdout
    assert "MSE error for standard averaging" in stdout and "Training: lstm_stacked" in stdout
    assert 'Model: "simple_gru"' in stdout  # the chapter's model.summary()
    assert record["verdict"] in stdout and "naive last-value baseline" in stdout
    assert "leaks in the lesson protocol" in stdout and record["leaks"] in stdout
    assert "rank" in stdout and "test MAE" in stdout
    assert "retracing" not in stdout + quick["stderr"]


def test_quick_run_scores_every_model_on_the_networks_own_targets(quick):
    """The baselines by hand on the test split (scaled on itself), and the saved models
    predict what the table scored."""
    record, mid = quick["record"], goog_mid()
    test = mid[837:1047]
    scaled = (test - test.min()) / (test.max() - test.min())
    y = scaled[10:]  # the label of window i is day i + 7 + 3
    naive = record["metrics"]["naive"]
    assert naive["test_mae"] == pytest.approx(np.mean(np.abs(y - scaled[6:-4])))
    assert naive["test_mae_price"] == pytest.approx(np.mean(np.abs(test[10:] - test[6:-4])))
    x_test = np.stack([scaled[i : i + 7] for i in range(200)]).reshape(200, 1, 7)
    for name in NETWORKS:
        model = keras.saving.load_model(quick["out"] / f"{name}.keras", safe_mode=True)
        predictions = model.predict(x_test.astype("float32"), verbose=0)[:, 0]
        mae = np.mean(np.abs(y - predictions))
        assert mae == pytest.approx(record["metrics"][name]["test_mae"], rel=1e-5)


def test_quick_run_on_jax_and_torch_gives_the_same_data_and_baselines(quick, tmp_path):
    """Only Keras APIs: the script runs unchanged on the other backends, on the same data."""
    for backend in ("jax", "torch"):
        done = run_script(
            ["--quick", "--verbose", "0", "--out-dir", tmp_path / backend],
            tmp_path,
            env=dict(os.environ, KERAS_BACKEND=backend),
        )
        assert done.returncode == 0, done.stderr[-2000:]
        record = load_record(tmp_path / backend)
        assert record["backend"] == backend
        for name in BASELINES:  # (their rank among the networks may differ)
            row, tf_row = record["metrics"][name], quick["record"]["metrics"][name]
            assert {**row, "rank": 0} == {**tf_row, "rank": 0}
        for name in NETWORKS:
            row, tf_row = record["metrics"][name], quick["record"]["metrics"][name]
            assert row["params"] == tf_row["params"] and np.isfinite(row["test_mae"])


# ---------------------------------------------------------------------------
# The options that change the lesson's steps (the package runs the lesson's functions)
# ---------------------------------------------------------------------------


def test_framing_timesteps_trains_the_recurrent_layers_over_the_days(tmp_path):
    argv = ["--framing", "timesteps", "--models", "simple_lstm", "--epochs", "1"]
    assert main_in(tmp_path, [*argv, "--verbose", "0", "--out-dir", tmp_path / "out"]) == 0
    record = load_record(tmp_path / "out")
    assert record["framing"] == "timesteps"
    assert record["metrics"]["simple_lstm"]["params"] == 4385  # 1 input value per step
    assert set(record["metrics"]) == {"simple_lstm", *BASELINES}


def test_csv_run_with_repeats_and_exercise_options(tmp_path, capsys):
    rng = np.random.default_rng(4)
    mid = 15 * np.exp(np.cumsum(rng.normal(0, 0.01, 420)))
    days = np.busday_offset(np.datetime64("2013-02-08"), np.arange(420), roll="forward")
    rows = [f"{d};{m * 1.01:.4f};{m * 0.99:.4f}".replace(".", ",") for d, m in zip(days, mid)]
    rows = rows[200:] + rows[:200]  # unsorted, semicolons and decimal commas
    csv = tmp_path / "prices.csv"
    csv.write_text("Date;High;Low\n" + "\n".join(rows) + "\n")
    argv = ["--csv", csv, "--models", "feed_forward", "simple_gru", "--repeats", "2"]
    argv += ["--epochs", "2", "--norm-window", "100", "--loss", "huber", "--scale", "0.5"]
    assert main_in(tmp_path, [*argv, "--verbose", "0", "--out-dir", tmp_path / "out"]) == 0
    stdout = capsys.readouterr().out
    record = load_record(tmp_path / "out")
    assert record["data"]["rows"] == 420 and len(record["data"]["repairs"]) == 1
    assert "decimal commas (1.234,5 is 1234.5)" in record["data"]["read_as"]
    assert record["seeds"] == [7, 8] and "mean over 2 seeds" in stdout
    for name, values in record["per_seed"].items():  # sample std (ddof=1) over the 2 seeds
        assert len(values["test_mae"]) == 2
        expected = np.std(values["test_mae"], ddof=1)
        assert record["metrics"][name]["test_mae_std"] == pytest.approx(expected)
    row = record["metrics"]["feed_forward"]
    assert row["trained_on"] == "huber" and row["params"] == 7 * 64 + 64 + 65
    assert "loss huber (delta 0.05)" in stdout
    cost = record["cost"]["simple_gru"]
    assert cost["epochs"] == 2 and len(cost["fit_s_by_seed"]) == 2
    total = sum(t for spent in record["cost"].values() for t in spent["fit_s_by_seed"])
    assert record["timings_s"]["fit"] == pytest.approx(total)


def test_jobs_2_gives_the_same_numbers_as_jobs_1(tmp_path):
    argv = ["--models", "feed_forward", "simple_gru", "--epochs", "1", "--repeats", "2"]
    records = {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        done = run_script([*argv, "--verbose", "0", "--jobs", jobs, "--out-dir", out], tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        assert ("trainings in 2 worker processes" in done.stdout) == (jobs == 2)
        records[jobs] = load_record(out)
        assert {"feed_forward.keras", "simple_gru.keras"} <= {p.name for p in out.iterdir()}
    for name, row in records[2]["metrics"].items():  # seconds aside
        row.pop("convergence_s", None)
        records[1]["metrics"][name].pop("convergence_s", None)
    assert records[1]["metrics"] == records[2]["metrics"]
    assert records[1]["per_seed"] == records[2]["per_seed"]


def test_rerun_replaces_its_own_files_and_touches_nothing_else(tmp_path):
    out = tmp_path / "out"
    argv = ["--models", "feed_forward", "--epochs", "1", "--verbose", "0", "--out-dir", out]
    assert main_in(tmp_path, argv) == 0
    run_files = {p.name for p in out.iterdir()}
    mine = out / "my notes.txt"
    mine.write_text("keep me")
    old = 1_000_000_000
    for path in out.iterdir():
        os.utime(path, (old, old))
    assert main_in(tmp_path, argv) == 0
    assert {p.name for p in out.iterdir()} == run_files | {mine.name}
    for name in run_files:
        assert (out / name).stat().st_mtime > old, f"{name} was not rewritten"
    assert mine.read_text() == "keep me" and mine.stat().st_mtime == old


def test_help_describes_the_strict_rolling_origins_and_the_fallback_ticker(capsys):
    with pytest.raises(SystemExit) as done:
        slc.main(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    strict = text[text.index("--protocol {lesson,strict} lesson") :][:600]
    assert "rolling origins" in strict and "retraining every network" in strict
    ticker = text[text.index("--ticker TICKER rows") :][:300]
    assert "without --csv" in ticker and "matplotlib's Google prices (GOOG)" in ticker
    assert "(default: 50)" in text and "--jobs JOBS" in text


# ---------------------------------------------------------------------------
# The strict protocol and --forecast (one --quick strict run feeds these)
# ---------------------------------------------------------------------------


def test_strict_run_records_every_fold_and_model(strict):
    record, stdout, out = strict["record"], strict["stdout"], strict["out"]
    assert record["protocol"] == "strict" and record["target"] == "price"
    evaluation = record["evaluation"]
    assert evaluation["folds"] == 2 and evaluation["horizon"] == 4
    rows = evaluation["tickers"]["GOOG"]
    models = {"feed_forward", "simple_lstm"}
    assert set(rows) == models | {"naive", "drift", "ar", "ses", *BASELINES[1:]}
    for name, row in rows.items():
        assert len(row["mase_folds"]) == 2
        assert row["mase"] == pytest.approx(np.mean(row["mase_folds"]))
        assert ("dm_pvalue" in row) == (name in models)
    assert rows["naive"]["skill"] == 0.0
    log = evaluation["fold_log"]["GOOG"]
    # 837 training rows, 210 test targets in 2 blocks: origins 4 days before each block
    assert [f["test_targets"] for f in log] == [105, 105]
    # (the first window holds days 0-6, its target is day 10; origins are days 833 and 938)
    assert [f["train_windows"] for f in log] == [833 - 10 + 1, 938 - 10 + 1]
    # the verdict is kept under "evaluation", and printed
    assert evaluation["verdict"] and evaluation["verdict"] in stdout
    assert evaluation["verdict"].startswith(("None of the 2 networks", "1 of 2", "2 of 2"))
    assert "verdict" not in record
    assert {p.name for p in out.glob("*.keras")} == {f"{n}.keras" for n in models}
    assert {"prices.png", "split.png", "comparison.png", "forecast.png"} <= {
        p.name for p in out.iterdir()
    }
    assert "retracing" not in stdout


def test_strict_naive_mase_by_hand(strict):
    mid = goog_mid()
    rows = strict["record"]["evaluation"]["tickers"]["GOOG"]
    mase = []
    for first, end in ((837, 942), (942, 1047)):  # the two blocks of targets
        origin = first - 4
        scale = np.mean(np.abs(mid[4 : origin + 1] - mid[: origin + 1 - 4]))
        mase.append(np.mean(np.abs(mid[first:end] - mid[first - 4 : end - 4])) / scale)
    np.testing.assert_allclose(rows["naive"]["mase_folds"], mase)


def test_forecast_intervals_are_the_forecast_plus_the_held_out_error_quantiles(strict):
    """residual = truth - forecast, so the 80% interval is forecast + its 10% and 90%
    quantiles (not minus them), which need not hold the forecast itself."""
    forecast, mid = strict["record"]["forecast"], goog_mid()
    # Google's last day is Tuesday 2008-10-14; 4 business days on is Monday 2008-10-20
    assert forecast["last_date"] == "2008-10-14" and forecast["date"] == "2008-10-20"
    assert forecast["refit_rows"] == 1047
    models = forecast["models"]
    assert list(models) == ["naive", "drift", "feed_forward", "simple_lstm"]
    naive = models["naive"]
    assert naive["mid_price"] == pytest.approx(mid[-1])
    residuals = mid[837:] - mid[833:-4]  # every fold's naive errors: truth - forecast
    low, high = mid[-1] + np.quantile(residuals, [0.1, 0.9])
    assert (naive["low"], naive["high"], naive["residuals"]) == (
        pytest.approx(low),
        pytest.approx(high),
        210,
    )
    assert models["drift"]["mid_price"] == pytest.approx(mid[-1] + 4 * (mid[-1] - mid[0]) / 1046)
    for row in models.values():
        assert row["low"] < row["high"] and row["test_mase"] > 0


# ---------------------------------------------------------------------------
# The chapter's own data, when a copy is in data/ (never committed: Kaggle's terms)
# ---------------------------------------------------------------------------


def test_the_chapters_aal_figures_and_the_naive_baselines_test_mae(tmp_path):
    """The chapter's counts and one-step errors on AAL, and our naive baseline's test MAE
    (0.0746). The chapter's simple LSTM (0.0809 after 50 epochs) is not checked here."""
    path = ROOT / "data" / "AAL_data.csv"
    if not path.is_file():
        pytest.skip("no data/AAL_data.csv (Kaggle's AAL file; see data/README.md)")
    argv = ["--csv", path, "--models", "feed_forward", "--epochs", "1", "--verbose", "0"]
    assert main_in(tmp_path, [*argv, "--out-dir", tmp_path / "aal"]) == 0
    record = load_record(tmp_path / "aal")
    assert record["data"]["rows"] == 1259
    assert record["data"]["first_mid_prices"] == [14.875, 14.635, 14.305]
    assert record["data"]["windows"] == {"train": 990, "test": 241}
    one_step = record["lesson_one_step"]
    assert round(one_step["sma_error"], 5) == 0.00444  # the chapter: 0.00444
    assert round(one_step["ema_error"], 5) == 0.00018  # the chapter: 0.00018
    assert round(record["metrics"]["naive"]["test_mae"], 4) == 0.0746
