"""Tests for stacked_lstm_damped_sine.py (lesson 7) and its extensions, lstm_lessons/sine.py."""

import contextlib
import functools
import inspect
import io
import json
import math
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stacked_lstm_damped_sine as script
from lstm_lessons import sine
from lstm_lessons.parallel import available_memory

SCRIPT = Path(script.__file__)
PERSISTENCE, CENTRE_LINE = sine.BASELINES.values()


def run_main(args):
    """script.main(args) in this process: its exit status and what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = script.main(args)
    return status, printed.getvalue()


def run_script(args, env=None, **kwargs):
    """The script in a new process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    command = [sys.executable, str(SCRIPT), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, **kwargs)


def eval_examples(seed, length, n_eval, output):
    """The evaluation examples of a run, made here from the lesson's description: the second
    of four streams spawned from the seed (training, evaluation, new wave, figures)."""
    stream = np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[1])
    return script.generate_examples(length, n_eval, output, stream)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One --quick run of the script (the lesson, tiny): its folder, metrics.json and output."""
    out = tmp_path_factory.mktemp("quick") / "out"
    status, printed = run_main(["--quick", "--verbose", "0", "--out-dir", str(out)])
    assert status == 0
    return out, json.loads((out / "metrics.json").read_text()), printed


@pytest.fixture(scope="module")
def lesson_run():
    """run_lesson with the lesson's own sizes (10,000 training examples, one epoch)."""
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        result = script.run_lesson(verbose=0)
    return result, printed.getvalue()


# --- 7.2 the data -----------------------------------------------------------


def test_generate_sequence_matches_the_formula():
    length, period, decay = 30, 12, 0.05
    expected = [
        0.5 + 0.5 * math.sin(2 * math.pi * i / period) * math.exp(-decay * i) for i in range(length)
    ]
    np.testing.assert_allclose(
        script.generate_sequence(length, period, decay), expected, rtol=0, atol=1e-12
    )


@settings(max_examples=60, deadline=None)
@given(length=st.integers(1, 400), period=st.integers(1, 50), decay=st.floats(0.0, 1.0))
def test_damped_sine_always_in_unit_interval(length, period, decay):
    values = script.generate_sequence(length, period, decay)
    assert values.shape == (length,)
    assert np.all(values >= 0.0) and np.all(values <= 1.0)


def test_random_parameters_ranges_and_both_ends_occur():
    period, decay = script.random_parameters(5_000, rng=0)
    assert period.dtype.kind == "i"
    assert set(np.unique(period)) == set(range(10, 21))  # randint-like: both ends included
    assert np.all(decay >= 0.01) and np.all(decay <= 0.1)


def test_generate_examples_shapes_range_and_split():
    X, y = script.generate_examples(50, 64, 5, rng=1)
    assert X.shape == (64, 50, 1) and y.shape == (64, 5)
    assert np.all((X >= 0) & (X <= 1)) and np.all((y >= 0) & (y <= 1))
    # each example is the lesson's generate_sequence, split into its first 50 and last 5 points
    period, decay = script.random_parameters(64, rng=1)
    for n in (0, 17, 63):
        wave = script.generate_sequence(55, period[n], decay[n])
        np.testing.assert_allclose(X[n, :, 0], wave[:50], atol=1e-6)
        np.testing.assert_allclose(y[n], wave[50:], atol=1e-6)


def test_generate_examples_is_deterministic_per_seed():
    a, b, c = (script.generate_examples(20, 10, 5, rng=seed) for seed in (3, 3, 4))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_baselines_arithmetic():
    X = np.array([[[0.2], [0.7]], [[0.4], [0.1]]], dtype="float32")
    np.testing.assert_allclose(PERSISTENCE(X, 3), [[0.7] * 3, [0.1] * 3])
    np.testing.assert_allclose(CENTRE_LINE(X, 3), np.full((2, 3), 0.5))
    assert sine.mae([[0.0, 1.0]], [[0.5, 0.5]]) == pytest.approx(0.5)


def test_data_bytes_covers_what_making_the_data_takes():
    """The memory guard's estimate, against the peak NumPy allocates making the data."""
    tracemalloc.start()
    try:
        script.generate_examples(50, 20_000, 5, rng=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sine.data_bytes(50, 5, 20_000, 0) == pytest.approx(peak, rel=0.01)


# --- 7.1.3 and 7.3 the models -------------------------------------------------


def test_demo_output_shapes():
    for units in (1, 2):
        last_only, every_step = script.demo_return_sequences(units)
        assert last_only.shape == (1, units) and every_step.shape == (1, 3, units)
        np.testing.assert_allclose(every_step[:, -1], last_only, atol=1e-6)  # the last step's


def test_stacked_lstm_is_the_lessons_model():
    """7.3's summary: 1,760, 3,280 and 105 parameters, 5,145 in all."""
    model = script.stacked_lstm()
    assert [layer.count_params() for layer in model.layers] == [1_760, 3_280, 105]
    assert [type(layer).__name__ for layer in model.layers] == ["LSTM", "LSTM", "Dense"]
    assert model.input_shape == (None, 50, 1) and model.output_shape == (None, 5)


def test_four_layers_units_per_layer_and_the_parameter_formula(capsys):
    four = script.stacked_lstm(n_layers=4)
    assert [layer.return_sequences for layer in four.layers[:4]] == [True, True, True, False]
    sine.print_lstm_parameters(script.stacked_lstm(units=[30, 20, 10]))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "4·30·(1+30+1) = 3,840 (matches Keras)",
        "4·20·(30+20+1) = 4,080 (matches Keras)",
        "4·10·(20+10+1) = 1,240 (matches Keras)",
    ]


def test_dropout_sits_between_the_lstm_layers():
    model = script.stacked_lstm(units=[8, 8, 8], dropout=0.3)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["LSTM", "Dropout", "LSTM", "Dropout", "LSTM", "Dense"]
    assert model.layers[1].rate == pytest.approx(0.3)
    # dropout adds no parameters: the two differ by the third LSTM only
    assert script.stacked_lstm(units=[8, 8]).count_params() == model.count_params() - 4 * 8 * 17


def test_units_and_layers_options():
    def parsed(*argv):
        return sine.parse_args(list(argv), script.run_lesson, script.QUICK)

    assert parsed().units == [20, 20]
    assert parsed("--units", "30,20,10").layers == 3
    assert parsed("--units", "30,20,10", "--layers", "3").units == [30, 20, 10]
    assert parsed("--layers", "3", "--units", "16").units == [16, 16, 16]
    assert parsed("--layers", "4").units == [20] * 4


def test_vanilla_and_many_to_many_models():
    args = sine.parse_args(["--units", "30,20,10"], script.run_lesson, script.QUICK)
    vanilla = sine.define("vanilla_lstm", args, script.LESSON)
    assert vanilla.name == "vanilla_lstm" and vanilla.count_params() == 4 * 30 * 32 + 31 * 5
    model = sine.many_to_many(50, 5, [20, 20])
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["LSTM", "RepeatVector", "LSTM", "Dense", "Reshape"]
    assert model.layers[2].output.shape == (None, 5, 20)  # the decoder: a vector per output step
    assert model.output_shape == (None, 5)  # the same targets as the many-to-one model
    assert model.count_params() == 1_760 + 3_280 + 21


# --- the lesson as written ------------------------------------------------------


def test_run_lesson_defaults_are_the_lessons_values():
    """7.3: 50 input steps, 5 outputs, two LSTM layers of 20 cells; 7.4: 10,000 examples,
    batch size 10, one epoch; 7.5: 1,000 evaluation examples."""
    defaults = {k: p.default for k, p in inspect.signature(script.run_lesson).parameters.items()}
    lesson = dict(n_train=10_000, n_eval=1_000, batch_size=10, epochs=1)
    lesson.update(length=50, output=5, units=20, n_layers=2)
    assert {k: defaults[k] for k in lesson} == lesson


def test_a_plain_run_is_run_lesson_with_the_lessons_values(tmp_path, monkeypatch):
    calls = []

    @functools.wraps(script.run_lesson)
    def recording(**kwargs):
        calls.append(kwargs)
        raise KeyError("stop here")

    monkeypatch.setattr(script, "run_lesson", recording)
    with pytest.raises(KeyError, match="stop here"):
        run_main(["--out-dir", str(tmp_path / "out")])
    sizes = {k: v for k, v in calls[0].items() if k not in ("callbacks", "verbose")}
    assert sizes == dict(
        n_train=10_000, n_eval=1_000, batch_size=10, epochs=1, length=50, output=5
    ) | dict(units=[20, 20], n_layers=2, seed=7)


def test_the_lesson_part_runs_alone(tmp_path):
    """Everything above '# Beyond the lesson', in a new file in an empty folder, plus
    run_lesson(**QUICK): it runs to the end with no file of this project and writes nothing."""
    text = SCRIPT.read_text().split("\n# Beyond the lesson")[0]  # the line that begins so
    assert "from lstm_lessons" not in text and "import lstm_lessons" not in text
    (tmp_path / "lesson.py").write_text(text + "\nrun_lesson(**QUICK)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [sys.executable, "lesson.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "MAE: " in done.stdout and "Total params: 5,145" in done.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["lesson.py"]


def test_the_lesson_beats_both_baselines_and_returns_what_it_measured(lesson_run):
    """The lesson's own sizes (one pass over 10,000 examples) beat both naive baselines
    on the 1,000 fresh evaluation examples. (A --quick run's 500 examples do not.)"""
    result, printed = lesson_run
    X_eval, y_eval = result["X_eval"], result["y_eval"]
    lstm = sine.mae(y_eval, result["model"].predict(X_eval, verbose=0))
    assert lstm < sine.mae(y_eval, PERSISTENCE(X_eval, 5))
    assert lstm < sine.mae(y_eval, CENTRE_LINE(X_eval, 5))
    assert result["mae"] == pytest.approx(lstm, rel=1e-5)  # model.evaluate: the same metric
    assert f"MAE: {result['mae']:f}" in printed
    # the loss Keras reports after each call of batches, up to the epoch's 1,000 batches
    losses = result["losses"]
    assert losses["step"][-1] == 1_000 and losses["step"] == sorted(losses["step"])
    assert losses["loss"][-1] == pytest.approx(result["history"]["loss"][-1])
    assert set(result["figures"]) == {
        "sine_wave",
        "damped_sine_wave",
        "examples",
        "loss",
        "prediction",
    }


def test_the_faster_path_gives_run_lessons_numbers(quick_run):
    """The package's path for many trainings (a compiled model reused, direct calls) scores
    seed 7 as run_lesson did in the --quick run, also after training another seed."""
    _, record, _ = quick_run
    args = sine.parse_args(["--quick", "--verbose", "0"], script.run_lesson, script.QUICK)
    with contextlib.redirect_stdout(io.StringIO()):
        sine.train_model(script.LESSON, "stacked_lstm", 8, args)  # compiled here first
        again = sine.train_model(script.LESSON, "stacked_lstm", 7, args)
    lesson = record["metrics"]["stacked_lstm"]
    assert again["mae"] == lesson["mae_per_seed"][0]
    assert again["keras_mae"] == pytest.approx(lesson["keras_loss_per_seed"][0], rel=1e-5)
    assert again["persistence"] == record["metrics"]["persistence"]["mae_per_seed"][0]


def test_the_package_compiles_and_draws_data_as_run_lesson_does(monkeypatch):
    """With the lesson's LOSS and OPTIMIZER edited, run_lesson and the package's trainings
    still compile alike, and they train on the same examples (both stop as fit starts)."""
    for name, value in (("LOSS", "mse"), ("OPTIMIZER", "rmsprop")):
        monkeypatch.setattr(script, name, value)  # what run_lesson's compile line reads
        monkeypatch.setattr(script.LESSON, name, value)  # what the script passes the package
    seen = []

    class Stop(Exception):
        pass

    def stop(model, X, *_, **__):
        config = model.get_compile_config()
        config["optimizer"]["config"].pop("name")  # numbered per model: rmsprop, rmsprop_1
        seen.append((config, X))
        raise Stop

    monkeypatch.setattr(sine, "fit_recorded", stop)  # the package's fit
    monkeypatch.setattr(keras.Model, "fit", stop)  # run_lesson's model.fit
    args = sine.parse_args(
        ["--quick", "--n-train", "20", "--n-eval", "10"], script.run_lesson, script.QUICK
    )
    with contextlib.redirect_stdout(io.StringIO()):
        with pytest.raises(Stop):
            sine.train_model(script.LESSON, "stacked_lstm", 7, args)
        with pytest.raises(Stop):
            script.run_lesson(n_train=20, n_eval=10, plot=False, verbose=0)
    (package, X_package), (lesson, X_lesson) = seen
    assert lesson["loss"] == "mse" and lesson["optimizer"]["class_name"] == "RMSprop"
    assert package == lesson
    np.testing.assert_array_equal(X_package, X_lesson)


# --- the command line: one --quick run --------------------------------------------


def test_quick_run_writes_every_promised_file(quick_run):
    out, record, printed = quick_run
    assert {p.name for p in out.iterdir()} == {
        "sine_wave.png",
        "damped_sine_wave.png",
        "examples.png",
        "loss.png",
        "prediction.png",
        "mae_comparison.png",
        "metrics.json",
        "stacked_lstm.keras",
    }
    for key in ("args", "seed", "versions", "backend", "data", "timings_s", "metrics", "demo"):
        assert key in record
    assert set(record["timings_s"]) == {"data", "fit", "evaluate"}
    assert set(record["metrics"]) == {"stacked_lstm", "persistence", "centre_line"}
    for scores in record["metrics"].values():
        assert f"{scores['mae_mean']:.4f}" in printed  # the table shows what the record holds
    assert "mae_std" not in json.dumps(record) and "NaN" not in json.dumps(record)  # one seed
    assert record["cost"]["stacked_lstm"]["epochs"] == 1


def test_quick_run_scores_the_saved_model_on_the_lessons_evaluation_examples(quick_run):
    """The saved model, loaded in safe mode, scores the recorded MAE on the evaluation
    examples made here from the seed (so the data streams are as documented)."""
    out, record, printed = quick_run
    X_eval, y_eval = eval_examples(7, 50, 200, 5)
    model = keras.saving.load_model(out / "stacked_lstm.keras", safe_mode=True)
    scores = record["metrics"]
    assert sine.mae(y_eval, model.predict(X_eval, verbose=0)) == pytest.approx(
        scores["stacked_lstm"]["mae_per_seed"][0], rel=1e-5
    )
    assert sine.mae(y_eval, PERSISTENCE(X_eval, 5)) == pytest.approx(
        scores["persistence"]["mae_mean"], rel=1e-6
    )
    # model.evaluate's loss (what the lesson prints) is the same metric as ours
    keras_loss = scores["stacked_lstm"]["keras_loss_per_seed"][0]
    assert keras_loss == pytest.approx(scores["stacked_lstm"]["mae_mean"], rel=1e-5)
    assert f"MAE: {keras_loss:f}" in printed


def test_demo_layer_names_do_not_depend_on_what_was_built_before(tmp_path):
    script.stacked_lstm(n_layers=3)  # lstm ... lstm_2 taken, if names counted on
    out = tmp_path / "out"
    status, printed = run_main(["--demo", "--out-dir", str(out)])
    assert status == 0
    names = [line.split()[1] for line in printed.splitlines() if "(LSTM)" in line]
    assert names == ["lstm", "lstm_1", "lstm_2", "lstm_3"]
    assert "shape (1, 3, 1)" in printed and "shape (1, 3, 2)" in printed
    assert "the time axis (3) stays, the last axis is the" in printed
    assert {p.name for p in out.iterdir()} == {"metrics.json"}
    record = json.loads((out / "metrics.json").read_text())
    assert np.shape(record["demo"]["lstm2_return_sequences_true"]) == (1, 3, 2)
    assert record["metrics"] == {}


def test_help_shows_the_lessons_defaults_and_quick_sizes(capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "fresh training examples (--quick: 500) (default: 10000)" in text
    assert "examples per weight update (default: 10)" in text


# --- beyond the lesson: repeats, other models, --jobs, the 7.9 experiment ----------


def _without_timings(record):
    """metrics.json minus what may differ between two runs: wall times, arguments, paths."""
    cost = {name: entry["epochs"] for name, entry in record["cost"].items()}
    return {"metrics": record["metrics"], "cost": cost, "seeds": record["seeds"]}


def test_repeats_and_vanilla_with_jobs_1_and_2(tmp_path):
    """Two seeds of two models: mean ± std over seeds, each model's cost, no TensorFlow
    retracing warning, and the same numbers from two worker processes."""
    common = ["--quick", "--verbose", "0", "--n-train", "60", "--n-eval", "30"]
    common += ["--repeats", "2", "--compare-vanilla"]
    runs, records = {}, {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        runs[jobs] = run_script([*common, "--jobs", str(jobs), "--out-dir", str(out)])
        assert runs[jobs].returncode == 0, runs[jobs].stderr[-2000:]
        records[jobs] = json.loads((out / "metrics.json").read_text())
    one, printed = records[1], runs[1].stdout
    assert "retracing" not in printed + runs[1].stderr
    assert one["seeds"] == [7, 8]
    for scores in one["metrics"].values():
        assert scores["mae_mean"] == pytest.approx(np.mean(scores["mae_per_seed"]))
        assert scores["mae_std"] == pytest.approx(np.std(scores["mae_per_seed"], ddof=1))
    cost = one["cost"]
    assert set(cost) == {"stacked_lstm", "vanilla_lstm"}  # models only, no baselines
    for entry in cost.values():
        assert len(entry["fit_s_by_seed"]) == 2 and entry["epochs"] == 1
        assert entry["fit_s"] == pytest.approx(np.mean(entry["fit_s_by_seed"]))
    total = sum(sum(entry["fit_s_by_seed"]) for entry in cost.values())
    assert one["timings_s"]["fit"] == pytest.approx(total, abs=2e-3)
    row = next(line for line in printed.splitlines() if line.startswith("vanilla LSTM"))
    assert row.split()[-2:] == [f"{cost['vanilla_lstm']['fit_s']:.1f}", "1"]
    assert "Seed by seed, the stacked LSTM wins" in printed
    assert "trainings in 2 worker processes" in runs[2].stdout
    assert _without_timings(one) == _without_timings(records[2])
    assert "7.5 vanilla_lstm: MAE" in runs[2].stdout  # the parent prints each model's steps
    assert (tmp_path / "jobs2" / "vanilla_lstm.keras").exists()


def test_quick_many_to_many_and_three_layers(tmp_path):
    out = tmp_path / "out"
    args = ["--quick", "--verbose", "0", "--n-train", "100", "--n-eval", "50", "--many-to-many"]
    status, printed = run_main(
        args + ["--units", "12,8,6", "--dropout", "0.1", "--out-dir", str(out)]
    )
    assert status == 0
    assert "4·12·(1+12+1) = 672 (matches Keras)" in printed
    assert "but Keras says" not in printed
    assert {"many_to_many.keras", "stacked_lstm.keras", "loss.png"} <= {
        p.name for p in out.iterdir()
    }
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert set(metrics) == {"stacked_lstm", "many_to_many", "persistence", "centre_line"}
    assert metrics["stacked_lstm"]["params"] == 672 + 4 * 8 * (12 + 8 + 1) + 360 + 35
    assert metrics["many_to_many"]["params"] == 672 + 4 * 8 * (12 + 8 + 1) + 360 + 7
    for name in ("stacked_lstm", "many_to_many"):
        assert f"{metrics[name]['mae_mean']:.4f}" in printed
    assert "many-to-many LSTM" in printed and "stacked LSTM (12,8,6 cells)" in printed


def test_centre_line_baseline_shrinks_with_length():
    """Why the experiment reports skill: longer waves end nearer 0.5, whatever the model."""
    centre = {}
    for length in (50, 200):
        X, y = script.generate_examples(length, 2_000, 5, rng=0)
        centre[length] = sine.mae(y, CENTRE_LINE(X, 5))
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
    assert winners[50][0]["cells"] == 10  # 5 cells average 0: not above both baselines
    assert winners[200] == []
    cost = {
        sine.grid_key(*key): dict(fit_s=1.5, epochs=1)
        for key in runs[["length", "n_train", "cells"]].itertuples(index=False)
    }
    sine.report_grid(grid, 2, cost)
    printed = capsys.readouterr().out
    assert "length 50: 10 cells per layer (900 parameters), 100 examples: skill +0.62" in printed
    assert "(2 of 2 seeds beat both)" in printed
    assert "length 200: none in this grid" in printed
    assert "-1.00 ± 0.00 (1.5)" in printed  # the table: skill mean ± std (fit s)


def test_quick_length_experiment(tmp_path):
    out = tmp_path / "out"
    args = ["--quick", "--experiment", "length", "--cells", "4", "--n-trains", "100,200"]
    status, printed = run_main(args + ["--n-eval", "100", "--verbose", "0", "--out-dir", str(out)])
    assert status == 0
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
    assert set(record["cost"]) == {sine.grid_key(g["length"], g["n_train"], 4) for g in grid}
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
        script.main(args + ["--out-dir", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")  # one line, no usage block
    assert words in err[0]
    assert not out.exists()


def test_out_dir_that_is_a_file_exits_2(tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("keep me")
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--quick", "--out-dir", str(target)])
    assert exit_info.value.code == 2
    assert "is a file" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_rerun_replaces_its_files_and_touches_nothing_else(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "my_notes.txt").write_text("mine")
    assert run_main(["--demo", "--out-dir", str(out)])[0] == 0
    first = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    time.sleep(0.05)
    assert run_main(["--demo", "--seed", "8", "--out-dir", str(out)])[0] == 0
    second = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert set(first) == set(second) == {"my_notes.txt", "metrics.json"}  # no temporary files
    assert (out / "my_notes.txt").read_text() == "mine"
    assert second["my_notes.txt"] == first["my_notes.txt"]
    assert second["metrics.json"] > first["metrics.json"]
    assert json.loads((out / "metrics.json").read_text())["seed"] == 8


def _fits_once_not_twice():
    """A --n-train whose data takes about 60% of the free memory: one process fits, two don't."""
    available = available_memory()
    if available is None:
        pytest.skip("free memory cannot be read here")
    return str(int(0.6 * available / sine.data_bytes(50, 5, 1, 0)))


def _more_than_fits():
    """A --n-train whose data alone takes twice the free memory."""
    available = available_memory()
    if available is None:
        pytest.skip("free memory cannot be read here")
    return str(int(2 * available / sine.data_bytes(50, 5, 1, 0)))


@pytest.mark.parametrize(
    "options, names",
    [
        (["--n-train", "MORE"], "lower --n-train, --length or --n-eval"),
        (["--jobs", "2", "--repeats", "2", "--n-train", "ONCE"], "(or --jobs)"),
        (["--experiment", "length", "--n-trains", "10,MORE"], "lower --n-trains"),
    ],
    ids=["n-train", "jobs", "experiment"],
)
def test_memory_guard_exits_2_before_any_work(tmp_path, capsys, options, names):
    sizes = {"MORE": _more_than_fits, "ONCE": _fits_once_not_twice}
    options = [o.replace("MORE", sizes["MORE"]()) if "MORE" in o else o for o in options]
    options = [sizes["ONCE"]() if o == "ONCE" else o for o in options]
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        script.main([*options, "--out-dir", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the run would need about ")
    assert "GiB is available" in err[0] and names in err[0]
    assert not out.exists()


# --- the other two backends -------------------------------------------------------


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_quick_run_under_jax_and_torch(tmp_path, backend):
    """The lesson uses only Keras APIs, so it runs unchanged on the other two backends, and
    its model.evaluate there is the same metric as the MAE scored beside the baselines."""
    out = tmp_path / "out"
    done = run_script(
        ["--quick", "--verbose", "0", "--out-dir", str(out)], env=dict(KERAS_BACKEND=backend)
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((out / "metrics.json").read_text())
    assert record["backend"] == backend
    lstm = record["metrics"]["stacked_lstm"]
    assert lstm["keras_loss_per_seed"][0] == pytest.approx(lstm["mae_mean"], rel=1e-5)
    X_eval, y_eval = eval_examples(7, 50, 200, 5)
    assert record["metrics"]["centre_line"]["mae_mean"] == pytest.approx(
        sine.mae(y_eval, CENTRE_LINE(X_eval, 5))
    )
    assert {"loss.png", "prediction.png", "stacked_lstm.keras"} <= {p.name for p in out.iterdir()}
