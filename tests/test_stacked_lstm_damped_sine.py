"""Tests for stacked_lstm_damped_sine.py (lesson 7)."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stacked_lstm_damped_sine as sine

SCRIPT = Path(sine.__file__)


# --- 7.2 the data -----------------------------------------------------------


def test_generate_sequence_matches_the_formula():
    length, period, decay = 30, 12, 0.05
    expected = [
        0.5 + 0.5 * math.sin(2 * math.pi * i / period) * math.exp(-decay * i) for i in range(length)
    ]
    np.testing.assert_allclose(
        sine.generate_sequence(length, period, decay), expected, rtol=0, atol=1e-12
    )


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(1, 400),
    period=st.integers(1, 50),
    decay=st.floats(0.0, 1.0),
)
def test_damped_sine_always_in_unit_interval(length, period, decay):
    values = sine.generate_sequence(length, period, decay)
    assert values.shape == (length,)
    assert np.all(values >= 0.0) and np.all(values <= 1.0)


def test_random_parameters_ranges_and_both_ends_occur():
    period, decay = sine.random_parameters(5_000, rng=0)
    assert period.dtype.kind == "i"
    assert period.min() == 10 and period.max() == 20  # randint-like: both ends included
    assert set(np.unique(period)) == set(range(10, 21))
    assert np.all(decay >= 0.01) and np.all(decay <= 0.1)


def test_generate_examples_shapes_range_and_split():
    X, y = sine.generate_examples(50, 64, 5, rng=1)
    assert X.shape == (64, 50, 1) and y.shape == (64, 5)
    assert np.all((X >= 0) & (X <= 1)) and np.all((y >= 0) & (y <= 1))
    # each example is the lesson's generate_sequence, split into its first 50 and last 5 points
    period, decay = sine.random_parameters(64, rng=1)
    for n in (0, 17, 63):
        wave = sine.generate_sequence(55, period[n], decay[n])
        np.testing.assert_allclose(X[n, :, 0], wave[:50], atol=1e-6)
        np.testing.assert_allclose(y[n], wave[50:], atol=1e-6)


def test_generate_examples_is_deterministic_per_seed():
    a = sine.generate_examples(20, 10, 5, rng=3)
    b = sine.generate_examples(20, 10, 5, rng=3)
    c = sine.generate_examples(20, 10, 5, rng=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_baselines_arithmetic():
    X = np.array([[[0.2], [0.7]], [[0.4], [0.1]]], dtype="float32")
    np.testing.assert_allclose(sine.persistence_forecast(X, 3), [[0.7] * 3, [0.1] * 3])
    np.testing.assert_allclose(sine.centre_line_forecast(X, 3), np.full((2, 3), 0.5))
    assert sine.mae([[0.0, 1.0]], [[0.5, 0.5]]) == pytest.approx(0.5)


# --- 7.1.3 and 7.3 the models -------------------------------------------------


def test_demo_output_shapes():
    last_only, every_step = sine.demo_return_sequences()
    assert last_only.shape == (1, 1)
    assert every_step.shape == (1, 3, 1)
    last_only, every_step = sine.demo_return_sequences(units=2)
    assert last_only.shape == (1, 2)
    assert every_step.shape == (1, 3, 2)
    np.testing.assert_allclose(every_step[:, -1], last_only, atol=1e-6)  # the last step's output


def test_units_per_layer_and_the_parameter_formula():
    model = sine.stacked_lstm(units=[30, 20, 10])
    rows = sine.lstm_parameters(model)
    assert [(r["i"], r["u"]) for r in rows] == [(1, 30), (30, 20), (20, 10)]
    assert [r["formula"] for r in rows] == [3_840, 4_080, 1_240]
    assert [r["keras"] for r in rows] == [3_840, 4_080, 1_240]  # Keras agrees with 4·u·(i+u+1)
    assert model.count_params() == 9_215  # + Dense(5) on 10 inputs: 55


def test_dropout_sits_between_the_lstm_layers():
    model = sine.stacked_lstm(units=[8, 8, 8], dropout=0.3)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["LSTM", "Dropout", "LSTM", "Dropout", "LSTM", "Dense"]
    assert model.layers[1].rate == pytest.approx(0.3)
    assert sine.stacked_lstm(units=[8, 8]).count_params() == model.count_params() - (
        4 * 8 * (8 + 8 + 1)
    )  # dropout adds no parameters: only the third LSTM differs


def test_units_and_layers_options():
    assert sine.parse_args([]).units == [20, 20]
    assert sine.parse_args(["--units", "30,20,10"]).layers == 3
    assert sine.parse_args(["--units", "30,20,10", "--layers", "3"]).units == [30, 20, 10]
    args = sine.parse_args(["--layers", "3", "--units", "16"])
    assert args.units == [16, 16, 16] and args.layers == 3
    assert sine.parse_args(["--layers", "4"]).units == [20] * 4


def test_many_to_many_model_shapes_and_size():
    model = sine.many_to_many(50, 5, [20, 20])
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["LSTM", "RepeatVector", "LSTM", "Dense", "Reshape"]
    assert model.layers[2].output.shape == (None, 5, 20)  # the decoder: one vector per output step
    assert model.output_shape == (None, 5)  # the same targets as the many-to-one model
    assert model.count_params() == 1_760 + 3_280 + 21
    three = sine.many_to_many(50, 5, [30, 20, 10])
    assert [layer.count_params() for layer in three.layers if layer.name.startswith("lstm")] == [
        3_840,
        4_080,
        1_240,
    ]


def test_stacked_lstm_parameter_counts():
    model = sine.stacked_lstm(length=50, output=5, units=20)
    assert [layer.count_params() for layer in model.layers] == [1_760, 3_280, 105]
    assert model.count_params() == 5_145
    assert model.output_shape == (None, 5)


def test_four_layer_definition_and_vanilla():
    four = sine.stacked_lstm(n_layers=4)
    assert [type(layer).__name__ for layer in four.layers] == ["LSTM"] * 4 + ["Dense"]
    assert [layer.return_sequences for layer in four.layers[:4]] == [True, True, True, False]
    assert sine.vanilla_lstm().count_params() == 1_760 + 105


# --- the command line ---------------------------------------------------------


def test_quick_run_writes_every_promised_file(tmp_path, capsys):
    out = tmp_path / "out"
    assert sine.main(["--quick", "--verbose", "0", "--compare-vanilla", "--out-dir", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {
        "sine_wave.png",
        "damped_sine_wave.png",
        "examples.png",
        "loss.png",
        "prediction.png",
        "mae_comparison.png",
        "metrics.json",
        "stacked_lstm.keras",
        "vanilla_lstm.keras",
    }
    record = json.loads((out / "metrics.json").read_text())
    for key in ("args", "seed", "versions", "backend", "data", "timings_s", "metrics"):
        assert key in record
    assert set(record["timings_s"]) == {"data", "fit", "evaluate"}
    metrics = record["metrics"]
    assert set(metrics) == {"stacked_lstm", "vanilla_lstm", "persistence", "centre_line"}
    printed = capsys.readouterr().out
    for scores in metrics.values():
        assert 0 < scores["mae_mean"] < 0.5
        assert f"{scores['mae_mean']:.4f}" in printed  # the table shows what the record holds
    # our numpy MAE and Keras's own loss agree: the same metric for models and baselines
    lstm = metrics["stacked_lstm"]
    assert lstm["keras_loss_per_seed"][0] == pytest.approx(lstm["mae_per_seed"][0], rel=1e-4)
    import keras

    model = keras.models.load_model(out / "stacked_lstm.keras")
    assert model.count_params() == 5_145


def test_repeats_report_mean_and_std(tmp_path):
    out = tmp_path / "out"
    args = [
        "--quick",
        "--verbose",
        "0",
        "--n-train",
        "100",
        "--n-eval",
        "50",
        "--repeats",
        "2",
        "--out-dir",
        str(out),
    ]
    assert sine.main(args) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["seeds"] == [7, 8]
    scores = record["metrics"]["persistence"]
    assert len(scores["mae_per_seed"]) == 2
    assert scores["mae_mean"] == pytest.approx(np.mean(scores["mae_per_seed"]))
    assert scores["mae_std"] == pytest.approx(np.std(scores["mae_per_seed"], ddof=1))  # sample std


def test_one_seed_records_no_std(tmp_path):
    out = tmp_path / "out"
    args = ["--quick", "--verbose", "0", "--n-train", "50", "--n-eval", "20", "--out-dir", str(out)]
    assert sine.main(args) == 0
    text = (out / "metrics.json").read_text()
    assert "NaN" not in text and "mae_std" not in text


def test_evaluation_set_does_not_change_with_n_train():
    """Same seed, other --n-train: the evaluation and new examples stay the very same."""
    streams = ["train", "eval", "predict", "figures"]
    small = sine.make_data(
        sine.parse_args(["--quick", "--n-train", "300"]), sine.random_streams(7, streams)
    )
    large = sine.make_data(
        sine.parse_args(["--quick", "--n-train", "400"]), sine.random_streams(7, streams)
    )
    assert len(small["train"][0]) == 300 and len(large["train"][0]) == 400
    for part in ("eval", "new"):
        np.testing.assert_array_equal(small[part][0], large[part][0])
        np.testing.assert_array_equal(small[part][1], large[part][1])
    assert not np.array_equal(small["eval"][0], small["train"][0][:200])  # streams differ


def test_demo_prints_shapes_and_writes_only_metrics(tmp_path, capsys):
    out = tmp_path / "out"
    assert sine.main(["--demo", "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "shape (1, 1)" in printed and "shape (1, 3, 1)" in printed
    assert "LSTM(2)" in printed and "shape (1, 2)" in printed and "shape (1, 3, 2)" in printed
    assert "the time axis (3) stays, the last axis is the" in " ".join(printed.split())
    assert "stacked_lstm_4_layers" in printed
    assert {p.name for p in out.iterdir()} == {"metrics.json"}
    record = json.loads((out / "metrics.json").read_text())
    assert np.shape(record["demo"]["return_sequences_true"]) == (1, 3, 1)
    assert np.shape(record["demo"]["lstm2_return_sequences_true"]) == (1, 3, 2)
    assert record["metrics"] == {}


def test_learning_beats_both_baselines_on_fresh_data():
    """The lesson's training budget (about 10 s here) must beat both naive baselines.

    Half the data is not enough to beat the centre line reliably; one pass over the
    lesson's 10,000 examples is (see the README for the spread over seeds).
    """

    rng = np.random.default_rng(0)
    data = {
        "train": sine.generate_examples(50, 10_000, 5, rng),
        "eval": sine.generate_examples(50, 500, 5, rng),
        "new": sine.generate_examples(50, 1, 5, rng),
    }
    X_eval, y_eval = data["eval"]
    result = sine.run_lesson(sine.stacked_lstm, data, verbose=0, seed=0)
    lstm = sine.mae(y_eval, result["yhat_eval"])
    assert result["keras_mae"] == pytest.approx(lstm, rel=1e-4)
    assert lstm < sine.mae(y_eval, sine.persistence_forecast(X_eval, 5))
    assert lstm < sine.mae(y_eval, sine.centre_line_forecast(X_eval, 5))


# --- beyond the lesson: many-to-many, and the 7.9 length experiment -------------


def test_quick_many_to_many_and_three_layers(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--quick", "--verbose", "0", "--n-train", "100", "--n-eval", "50", "--many-to-many"]
    args += ["--units", "12,8,6", "--dropout", "0.1", "--out-dir", str(out)]
    assert sine.main(args) == 0
    printed = capsys.readouterr().out
    # the parameter lines after the summary, checked against Keras
    assert "4·12·(1+12+1) = 672 (matches Keras)" in printed
    assert "4·6·(8+6+1) = 360 (matches Keras)" in printed
    assert "but Keras says" not in printed
    assert {"many_to_many.keras", "stacked_lstm.keras", "loss.png", "mae_comparison.png"} <= {
        p.name for p in out.iterdir()
    }
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert set(metrics) == {"stacked_lstm", "many_to_many", "persistence", "centre_line"}
    assert metrics["stacked_lstm"]["params"] == 672 + 4 * 8 * (12 + 8 + 1) + 360 + 35
    assert metrics["many_to_many"]["params"] == 672 + 4 * 8 * (12 + 8 + 1) + 360 + 7
    for name in ("stacked_lstm", "many_to_many"):
        assert f"{metrics[name]['mae_mean']:.4f}" in printed
        assert f"{metrics[name]['params']:,}" in printed
    assert "many-to-many LSTM" in printed and "stacked LSTM (12,8,6 cells)" in printed


def test_centre_line_baseline_shrinks_with_length():
    """Why the experiment reports skill: longer waves end nearer 0.5, whatever the model."""
    centre = {}
    for length in (50, 200):
        X, y = sine.generate_examples(length, 2_000, 5, rng=0)
        centre[length] = sine.mae(y, sine.centre_line_forecast(X, 5))
    assert 0.03 < centre[50] < 0.05
    assert centre[200] < 0.004


def test_skill_and_smallest_winner_arithmetic(capsys):
    import pandas as pd

    runs = pd.DataFrame(
        [
            # seed, length, n_train, cells, params, mae, persistence, centre_line
            (0, 50, 100, 5, 300, 0.02, 0.05, 0.04),
            (1, 50, 100, 5, 300, 0.06, 0.05, 0.04),
            (0, 50, 100, 10, 900, 0.01, 0.05, 0.04),
            (1, 50, 100, 10, 900, 0.02, 0.05, 0.04),
            (0, 200, 100, 5, 300, 0.004, 0.003, 0.002),
            (1, 200, 100, 5, 300, 0.004, 0.003, 0.002),
        ],
        columns=["seed", "length", "n_train", "cells", "params", "mae"]
        + ["persistence", "centre_line"],
    )
    runs, grid = sine.summarise_grid(runs)
    np.testing.assert_allclose(runs["skill"], [0.5, -0.5, 0.75, 0.5, -1.0, -1.0])
    cell = grid[(grid["length"] == 50) & (grid["cells"] == 5)].iloc[0]
    assert cell["skill_mean"] == pytest.approx(0.0)
    assert cell["skill_std"] == pytest.approx(np.std([0.5, -0.5], ddof=1))
    assert cell["seeds_beating_both"] == 1
    winners = sine.smallest_winners(grid)
    assert winners[50].iloc[0]["cells"] == 10  # 5 cells average 0: not above both baselines
    assert winners[200].empty
    sine.report_grid(grid, n_seeds=2)
    printed = capsys.readouterr().out
    assert "length 50: 10 cells per layer (900 parameters), 100 examples: skill +0.62" in printed
    assert "(2 of 2 seeds beat both)" in printed
    assert "length 200: none in this grid" in printed
    assert "-1.00 ± 0.00" in printed  # the table: skill mean ± std


def test_quick_length_experiment(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--quick", "--experiment", "length", "--cells", "4", "--n-trains", "100,200"]
    args += ["--n-eval", "100", "--verbose", "0", "--out-dir", str(out)]
    assert sine.main(args) == 0
    assert {p.name for p in out.iterdir()} == {"length_experiment.png", "metrics.json"}
    record = json.loads((out / "metrics.json").read_text())
    grid, runs = record["metrics"]["grid"], record["metrics"]["runs"]
    assert [(g["length"], g["n_train"], g["cells"]) for g in grid] == [
        (25, 100, 4),
        (25, 200, 4),
        (50, 100, 4),
        (50, 200, 4),
    ]
    assert len(runs) == 4 and {r["seed"] for r in runs} == {7}
    for g in grid:
        better = min(g["persistence_mean"], g["centre_line_mean"])
        assert g["skill_mean"] == pytest.approx(1 - g["mae_mean"] / better)
        assert g["params"] == 4 * 4 * (1 + 4 + 1) + 4 * 4 * (4 + 4 + 1) + 5 * 4 + 5
    # the evaluation set depends on seed and length only, not on n_train
    assert grid[0]["centre_line_mean"] == grid[1]["centre_line_mean"]
    assert set(record["metrics"]["smallest_beating_both"]) == {"25", "50"}
    printed = capsys.readouterr().out
    assert "skill, 4 cells" in printed
    assert f"{grid[0]['skill_mean']:+.2f}" in printed
    assert "length 25:" in printed and "length 50:" in printed


# --- bad input: one line, exit 2, nothing written ------------------------------


@pytest.mark.parametrize(
    "args, words",
    [
        (["--output", "0"], "--output"),
        (["--n-train", "-5"], "--n-train"),
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "two"], "--batch-size"),
        (["--units", "2.5"], "--units"),
        (["--repeats", "0"], "--repeats"),
        (["--seed", "-1"], "--seed"),
        (["--output", "50"], "--output must be smaller than --length"),
        (["--length", "10", "--output", "12"], "--output must be smaller than --length"),
        (["--length", "1"], "--length must be 2 or more"),
        (["--seed", "2147483647", "--repeats", "2"], "--seed + --repeats - 1 must stay below"),
        (["--units", "30,20,10", "--layers", "2"], "--units and --layers disagree"),
        (["--units", "30,,10"], "--units"),
        (["--layers", "0"], "--layers"),
        (["--dropout", "1"], "--dropout"),
        (["--dropout", "lots"], "--dropout"),
        (["--many-to-many", "--layers", "1"], "--many-to-many needs --layers 2"),
        (["--experiment", "size"], "--experiment"),
        (["--experiment", "length", "--lengths", "5,50"], "every --lengths value must be larger"),
        (["--experiment", "length", "--cells", "0"], "--cells"),
        (["--experiment", "length", "--many-to-many"], "--experiment runs its own grid"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(tmp_path, capsys, args, words):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        sine.main(args + ["--out-dir", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")  # one line, no usage block
    assert words in err[0]
    assert "Traceback" not in "\n".join(err)
    assert not out.exists()


def test_out_dir_that_is_a_file_exits_2(tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("keep me")
    with pytest.raises(SystemExit) as exit_info:
        sine.main(["--quick", "--out-dir", str(target)])
    assert exit_info.value.code == 2
    assert "is a file" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_rerun_replaces_its_files_and_touches_nothing_else(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "my_notes.txt").write_text("mine")
    args = ["--quick", "--verbose", "0", "--n-train", "50", "--n-eval", "20", "--out-dir", str(out)]
    assert sine.main(args) == 0
    first = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    time.sleep(0.05)
    assert sine.main(args + ["--seed", "8"]) == 0
    second = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert set(first) == set(second)  # no temporary files left behind
    assert (out / "my_notes.txt").read_text() == "mine"
    assert second["my_notes.txt"] == first["my_notes.txt"]
    assert all(second[name] > first[name] for name in second if name != "my_notes.txt")
    assert json.loads((out / "metrics.json").read_text())["seed"] == 8


def test_ctrl_c_during_fit_exits_130_headless_with_whole_files(tmp_path):
    """Run the script for real, with no display and no MPLBACKEND, and press Ctrl-C in fit."""
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            "--n-train",
            "200000",
            "--verbose",
            "0",
            "--out-dir",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # a shell that starts pytest in the background ignores SIGINT; restore the default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        for line in proc.stdout:  # wait until fit starts
            if line.startswith("7.4 fit"):
                break
        time.sleep(4)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    names = {p.name for p in out.iterdir()}
    assert {"sine_wave.png", "damped_sine_wave.png", "examples.png"} <= names
    assert not [n for n in names if n.startswith(".tmp-")]
    import matplotlib.image

    for png in out.glob("*.png"):
        assert matplotlib.image.imread(png).ndim == 3  # each PNG is whole and readable


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_quick_run_under_jax_and_torch_backends(tmp_path, backend):
    """The script uses only Keras APIs, so it runs unchanged on the other two backends."""
    out = tmp_path / "out"
    env = dict(os.environ, KERAS_BACKEND=backend)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--verbose", "0", "--out-dir", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((out / "metrics.json").read_text())
    assert record["backend"] == backend
    assert 0 < record["metrics"]["stacked_lstm"]["mae_mean"] < 0.5


def test_saved_model_loads_in_safe_mode_and_predicts_as_scored(tmp_path, capsys):
    """The README's "use what you trained": the saved model is the one that was scored."""
    import keras

    out = tmp_path / "out"
    assert sine.main(["--quick", "--verbose", "0", "--out-dir", str(out)]) == 0
    capsys.readouterr()
    record = json.loads((out / "metrics.json").read_text())
    args = sine.parse_args(["--quick"])
    X_eval, y_eval = sine.make_data(args, sine.random_streams(7, sine.STREAMS))["eval"]
    model = keras.saving.load_model(out / "stacked_lstm.keras", safe_mode=True)
    mae = sine.mae(y_eval, model.predict(X_eval, verbose=0))
    assert mae == pytest.approx(record["metrics"]["stacked_lstm"]["mae_per_seed"][0], rel=1e-5)


# --- issue 12: --jobs, the cost of each model, the memory guard -----------------


def _run_script(args, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        **kwargs,
    )


def _without_timings(record):
    """metrics.json minus what may differ between two runs: wall times, arguments, paths."""
    cost = {
        name: {k: v for k, v in entry.items() if not k.startswith("fit_s")}
        for name, entry in record["cost"].items()
    }
    return {"metrics": record["metrics"], "cost": cost, "seeds": record["seeds"]}


@pytest.mark.parametrize(
    "options",
    [
        ["--repeats", "2", "--compare-vanilla"],
        ["--experiment", "length", "--cells", "3", "--n-trains", "60", "--lengths", "10,20"],
    ],
    ids=["repeats-compare", "experiment"],
)
def test_jobs_2_gives_the_same_numbers_as_jobs_1(tmp_path, options):
    """Each training seeds itself and runs with the same thread counts, wherever it runs."""
    common = ["--quick", "--verbose", "0", "--n-train", "60", "--n-eval", "30", *options]
    records, outputs = {}, {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        done = _run_script([*common, "--jobs", str(jobs), "--out-dir", str(out)])
        assert done.returncode == 0, done.stderr[-2000:]
        records[jobs] = json.loads((out / "metrics.json").read_text())
        outputs[jobs] = done.stdout + done.stderr
    assert "trainings in 2 worker processes" in outputs[2]
    assert "worker processes" not in outputs[1]
    assert _without_timings(records[1]) == _without_timings(records[2])
    assert records[2]["args"]["jobs"] == 2
    if "--experiment" not in options:
        # the parent prints the lesson's steps and saves the models with any --jobs
        for name in ("stacked_lstm", "vanilla_lstm"):
            assert f"7.5 {name}: MAE" in outputs[2]
            assert (tmp_path / "jobs2" / f"{name}.keras").exists()
        assert (
            "Total params: 5,145" in outputs[2] and "7.6 stacked_lstm on a new wave" in outputs[2]
        )
    # one process trained 4 models of 2 kinds: each kind traced once, evaluated by direct
    # calls (a worker's own output goes to /dev/null, so only --jobs 1 can show it)
    assert "retracing" not in outputs[1]


def test_evaluation_uses_direct_calls_and_matches_keras_evaluate():
    """No compiled evaluate or predict loop per model: TensorFlow traced one for each
    new model and warned about the retracing (issue 13)."""
    import keras

    X, y = sine.generate_examples(20, 300, 5, rng=5)
    keras.utils.set_random_seed(5)
    model = sine.stacked_lstm(20, 5, 4)
    model.compile(loss="mae", optimizer="adam")
    model.fit(X, y, batch_size=30, epochs=1, verbose=0)
    expected = model.evaluate(X, y, verbose=0, return_dict=True)["loss"]

    def no_loop(*args, **kwargs):
        raise AssertionError("evaluate_network must not compile a loop")

    model.evaluate = model.predict = no_loop
    loss, yhat = sine.evaluate_network(model, X, y)
    assert loss == pytest.approx(expected, rel=1e-5)
    assert loss == pytest.approx(sine.mae(y, yhat), rel=1e-5)


def test_ctrl_c_with_jobs_2_exits_130_and_stops_the_workers(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--quick", "--verbose", "0", "--repeats", "6"]
        + ["--n-train", "3000", "--jobs", "2", "--out-dir", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        start_new_session=True,  # its own process group, as a terminal gives a command
    )
    try:
        for line in proc.stdout:
            if "trainings in 2 worker processes" in line:
                break
        for line in proc.stdout:  # the workers are past their start once one is done
            if "[1/" in line:
                break
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C hits the whole process group
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err[-2000:]
        assert "interrupted" in err and "Traceback" not in err
        assert not [p.name for p in out.iterdir() if p.name.startswith(".tmp-")]
        for _ in range(60):  # the workers go too
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        else:
            pytest.fail("worker processes still running after the run stopped")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_cost_per_model_in_metrics_and_table(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--quick", "--verbose", "0", "--n-train", "60", "--n-eval", "30", "--repeats", "2"]
    assert sine.main(args + ["--compare-vanilla", "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "metrics.json").read_text())
    cost = record["cost"]
    assert set(cost) == {"stacked_lstm", "vanilla_lstm"}  # models only, no baselines
    for entry in cost.values():
        assert entry["epochs"] == 1
        assert len(entry["fit_s_by_seed"]) == 2 and min(entry["fit_s_by_seed"]) > 0
        assert entry["fit_s"] == pytest.approx(np.mean(entry["fit_s_by_seed"]))
    total = sum(sum(entry["fit_s_by_seed"]) for entry in cost.values())
    assert record["timings_s"]["fit"] == pytest.approx(total, abs=2e-3)  # the run's total
    for scores in record["metrics"].values():  # scores only beside the scores
        assert not [key for key in scores if "fit" in key]
    header = next(line for line in printed.splitlines() if line.startswith("model "))
    assert header.split()[-3:] == ["fit", "s", "epochs"]
    row = next(line for line in printed.splitlines() if line.startswith("vanilla LSTM"))
    assert row.split()[-2:] == [f"{cost['vanilla_lstm']['fit_s']:.1f}", "1"]
    row = next(line for line in printed.splitlines() if line.startswith("persistence"))
    assert row.split()[-2:] == ["-", "-"]


def test_grid_cost_per_cell():
    import pandas as pd

    results = pd.DataFrame(
        [(7, 25, 100, 4, 1.0, 1), (8, 25, 100, 4, 3.0, 1), (7, 50, 100, 4, 5.0, 1)],
        columns=["seed", "length", "n_train", "cells", "fit_s", "epochs"],
    )
    cost = sine.grid_cost(results)
    assert cost["length 25, 100 examples, 4 cells"] == {
        "fit_s": 2.0,
        "fit_s_by_seed": [1.0, 3.0],
        "epochs": 1,
    }
    assert cost["length 50, 100 examples, 4 cells"] == {"fit_s": 5.0, "epochs": 1}


def test_data_bytes_counts_the_generators_arrays():
    steps = 55
    # training set made first: period, decay and three [n, steps] float64 arrays
    assert sine.data_bytes(50, 5, 1_000, 10) == 8 * 1_000 * (2 + 3 * steps)
    # a large evaluation set is made while the float32 training set is held
    assert sine.data_bytes(50, 5, 10, 1_000) == 4 * steps * 10 + 8 * 1_000 * (2 + 3 * steps)


def _fits_once_not_twice():
    """A --n-train whose data takes about 60% of the free memory: one process fits, two don't."""
    available = sine.available_memory()
    if available is None:
        pytest.skip("free memory cannot be read here")
    return str(int(0.6 * available / sine.data_bytes(50, 5, 1, 0)))


@pytest.mark.parametrize(
    "options, names",
    [
        (["--n-train", "100000000"], "lower --n-train, --length or --n-eval"),
        (["--jobs", "2", "--repeats", "2", "--n-train", None], "(or --jobs)"),
        (["--experiment", "length", "--n-trains", "10,100000000"], "lower --n-trains"),
    ],
    ids=["n-train", "jobs", "experiment"],
)
def test_memory_guard_exits_2_before_importing_keras(tmp_path, options, names):
    out = tmp_path / "out"
    options = [_fits_once_not_twice() if o is None else o for o in options]
    code = (
        "import sys, stacked_lstm_damped_sine as s\n"
        "try:\n    s.main(sys.argv[1:])\nfinally:\n"
        "    print('keras imported' if 'keras' in sys.modules else 'no keras', file=sys.stderr)\n"
    )
    done = _run_script([*options, "--out-dir", str(out)])
    assert done.returncode == 2
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the run would need about ")
    assert "GiB is available" in err[0] and names in err[0]
    assert not out.exists()
    # keras is not imported by the time the guard answers (no wall-clock test: see the probe)
    probe = subprocess.run(
        [sys.executable, "-c", code, *options, "--out-dir", str(out)],
        capture_output=True,
        text=True,
        cwd=SCRIPT.parent,
        timeout=120,
    )
    assert probe.returncode == 2
    assert probe.stderr.strip().splitlines()[-1] == "no keras"
    assert not out.exists()
