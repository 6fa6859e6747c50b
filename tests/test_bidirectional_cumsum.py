"""Tests for bidirectional_cumsum.py (lesson 10: Bidirectional LSTM, cumulative sum) and
its extensions in lstm_lessons/cumsum.py."""

import ast
import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bidirectional_cumsum as bc
from lstm_lessons import cumsum
from lstm_lessons.parallel import available_memory

SCRIPT = Path(bc.__file__).resolve()
LESSON_FNS = (bc.data_streams, bc.get_sequences, bc.record_batches, bc.SPEED)


def loop_labels(row, n_timesteps):
    """The cumulative-sum rule written independently, as a plain Python loop."""
    limit = n_timesteps / 4.0
    total, labels = 0.0, []
    for value in row:
        total += float(value)
        labels.append(0 if total < limit else 1)
    return labels


def check_files_whole(folder):
    from matplotlib import image

    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]
    for path in folder.iterdir():
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".png":
            assert image.imread(path).ndim == 3


def run_main(argv):
    """main(argv) in this process: (exit code, what it printed)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = bc.main(argv)
    return code, printed.getvalue()


class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One --quick run with every model and two seeds, for many of the tests below. It
    also collects TensorFlow's Python log (where its retracing warning goes)."""
    out = tmp_path_factory.mktemp("quick") / "out"
    tf_log = Collect()
    logging.getLogger("tensorflow").addHandler(tf_log)
    try:
        options = ["--quick", "--verbose", "0", "--compare-directions", "--compare-merge-modes"]
        code, printed = run_main([*options, "--repeats", "2", "--out-dir", str(out)])
    finally:
        logging.getLogger("tensorflow").removeHandler(tf_log)
    record = json.loads((out / "metrics.json").read_text())
    return dict(code=code, printed=printed, out=out, record=record, tf_log=tf_log.messages)


# the --quick run first: TensorFlow's retracing warning counts the traces of earlier
# models in this process too, and a fresh process is what a user runs


def test_quick_run_writes_every_promised_file(quick):
    assert quick["code"] == 0
    out, record, printed = quick["out"], quick["record"], quick["printed"]
    expected = {"example_sequence", "training_curve", "step_accuracy"}
    expected = {f"{stem}.png" for stem in expected | set(cumsum.TITLES)}
    expected |= {"metrics.json", "bidirectional_lstm.keras", "forward_lstm.keras"}
    assert {p.name for p in out.iterdir()} == expected
    check_files_whole(out)
    for key in ("script", "args", "seed", "versions", "backend", "data", "timings_s", "cost"):
        assert key in record
    metrics = record["metrics"]
    assert set(metrics) == {"majority_per_step", "forward_lstm", "bidirectional_lstm"}
    assert metrics["bidirectional_lstm"]["params"] == 20_901
    assert set(record["compare_directions"]) == {
        "majority_per_step",
        "forward",
        "backward",
        "bidirectional",
    }
    assert set(record["compare_merge_modes"]) == {"majority_per_step", *cumsum.MERGE_MODES}
    assert record["compare_merge_modes"]["concat"] == metrics["bidirectional_lstm"]
    # the lesson's prints: the model summary, Loss and Accuracy (%), one line per prediction
    assert "Total params: 20,901" in printed
    loss = record["per_seed"]["7"]["bidirectional_lstm"]["loss"]
    line = next(line for line in printed.splitlines() if line.startswith("Loss: "))
    assert line.startswith(f"Loss: {loss:f}, Accuracy: ")
    accuracy = float(line.split("Accuracy: ")[1])
    per_step = record["per_seed"]["7"]["bidirectional_lstm"]["per_step_accuracy"]
    assert accuracy == pytest.approx(100 * per_step, abs=1e-4)  # a percentage
    assert printed.count("y=[") == 10 and len(record["predictions"]) == 10
    assert all(set(p) == {"y", "yhat", "correct"} for p in record["predictions"])


def test_the_networks_beat_the_majority_baseline_at_quick_size(quick):
    for seed, rows in quick["record"]["per_seed"].items():
        majority = rows["majority_per_step"]
        for name in ("bidirectional_lstm", "forward_lstm"):
            for metric in ("per_step_accuracy", "sequence_accuracy"):
                assert rows[name][metric] > majority[metric], (seed, name, metric)


def test_repeats_give_mean_and_std(quick):
    record = quick["record"]
    assert record["seeds"] == [7, 8] and set(record["per_seed"]) == {"7", "8"}
    for name, row in record["metrics"].items():
        for metric in ("per_step_accuracy", "sequence_accuracy"):
            values = [record["per_seed"][s][name][metric] for s in ("7", "8")]
            assert row[metric] == pytest.approx(np.mean(values))
            assert row[metric + "_std"] == pytest.approx(np.std(values, ddof=1))
    assert "loss_std" in record["metrics"]["bidirectional_lstm"]


def test_many_models_print_no_retracing_warning(quick):
    """6 kinds of model x 2 seeds in one process: each kind traced once (reuse_compiled),
    scored by direct calls, and 4 calls per fit, so TensorFlow has nothing to warn of."""
    assert "fit bidirectional_lstm_ave (seed 8)" in quick["printed"]
    assert not [message for message in quick["tf_log"] if "retracing" in message]


def test_cost_of_each_model_in_the_record_and_the_table(quick):
    record, lines = quick["record"], quick["printed"].splitlines()
    cost = record["cost"]
    assert set(cost) == {"bidirectional_lstm", "forward_lstm", "backward_lstm"} | {
        f"bidirectional_{mode}" for mode in ("sum", "mul", "ave")
    }
    total = 0.0
    for entry in cost.values():
        assert entry["epochs"] == 1 and len(entry["fit_s_by_seed"]) == 2
        assert entry["fit_s"] == pytest.approx(np.mean(entry["fit_s_by_seed"]))
        total += sum(entry["fit_s_by_seed"])
    assert record["timings_s"]["fit"] == pytest.approx(total)  # the run's total fit time
    header = next(line for line in lines if line.startswith("model ") and "fit s" in line)
    assert header.split()[-3:] == ["fit", "s", "epochs"]
    majority = next(line for line in lines if line.startswith("majority_per_step"))
    assert majority.split()[-2:] == ["-", "-"]
    concat = next(line for line in lines if line.startswith("concat "))
    assert concat.split()[-2:] == [f"{cost['bidirectional_lstm']['fit_s']:.1f}", "1"]


def test_saved_models_load_in_safe_mode_and_predict_as_scored(quick):
    """Each saved model is the one that was scored, on the seed's evaluation stream."""
    streams = np.random.SeedSequence(7).spawn(4)
    X_eval, y_eval = bc.get_sequences(200, 10, np.random.default_rng(streams[1]))
    for name in ("bidirectional_lstm", "forward_lstm"):
        model = keras.saving.load_model(quick["out"] / f"{name}.keras", safe_mode=True)
        yhat = (model.predict(X_eval, verbose=0) > 0.5).astype(int)
        scores = cumsum.score_labels(y_eval, yhat)
        assert (
            scores["per_step_accuracy"]
            == quick["record"]["per_seed"]["7"][name]["per_step_accuracy"]
        )


# 10.2 the problem


def test_labels_are_zeros_then_ones_and_match_a_plain_loop():
    X, y = bc.get_sequences(500, 10, rng=0)
    assert X.shape == y.shape == (500, 10, 1)
    assert X.dtype == np.float64 and np.issubdtype(y.dtype, np.integer)
    assert np.all((X >= 0.0) & (X < 1.0))
    for row_x, row_y in zip(X[:, :, 0], y[:, :, 0]):
        assert row_y.tolist() == loop_labels(row_x, 10)
    # with 10 steps the switch happens inside the sequence
    assert y[:, 0, 0].sum() == 0 and y[:, -1, 0].mean() > 0.99


@settings(max_examples=60, deadline=None)
@given(n_sequences=st.integers(1, 20), n_timesteps=st.integers(2, 40), seed=st.integers(0, 2**32))
def test_property_labels_monotone_and_follow_rule(n_sequences, n_timesteps, seed):
    X, y = bc.get_sequences(n_sequences, n_timesteps, rng=seed)
    assert np.all(np.diff(y[:, :, 0], axis=1) >= 0)  # zeros, then ones, never back
    for row_x, row_y in zip(X[:, :, 0], y[:, :, 0]):
        assert row_y.tolist() == loop_labels(row_x, n_timesteps)


class Fixed:
    """A stand-in for a NumPy Generator that returns given values."""

    def __init__(self, values):
        self.values = np.asarray(values, dtype=float)

    def random(self, shape):
        return self.values.reshape(shape)


@pytest.mark.parametrize(
    "x, expected",
    [  # the lesson's two printed examples, then reaching the limit exactly (it gives 1)
        (
            [0.63144003, 0.29414551, 0.91587952, 0.95189228, 0.32195638]
            + [0.60742236, 0.83895793, 0.18023048, 0.84762691, 0.29165514],
            [0, 0, 0, 1, 1, 1, 1, 1, 1, 1],
        ),
        (
            [0.22228819, 0.26882207, 0.069623, 0.91477783, 0.02095862]
            + [0.71322527, 0.90159654, 0.65000306, 0.88845226, 0.4037031],
            [0, 0, 0, 0, 0, 0, 1, 1, 1, 1],
        ),
        ([0.25, 0.25], [0, 1]),  # limit 0.5, sums exact
        ([0.5, 0.5, 0.25, 0.0], [0, 1, 1, 1]),  # limit 1.0
    ],
)
def test_lesson_examples_and_the_boundary(monkeypatch, x, expected):
    monkeypatch.setattr(np.random, "default_rng", lambda rng: rng)
    X, y = bc.get_sequence(len(x), Fixed(x))
    assert X.tolist() == x and y.tolist() == expected


def test_one_draw_gives_the_sequences_drawn_one_at_a_time():
    X, y = bc.get_sequences(7, 12, rng=3)
    gen = np.random.default_rng(3)
    for row_x, row_y in zip(X, y):
        x1, y1 = bc.get_sequence(12, gen)
        np.testing.assert_array_equal(row_x.ravel(), x1)
        np.testing.assert_array_equal(row_y.ravel(), y1)
    assert not np.array_equal(bc.get_sequences(7, 12, rng=4)[0], X)


# 10.1 and 10.3 the models


def test_parameter_counts_match_the_lesson():
    model = bc.bidirectional_lstm(10, 50)
    # the lesson's summary: 20,800 + 101 = 20,901
    assert [layer.count_params() for layer in model.layers] == [20_800, 101]
    assert tuple(model.output_shape) == (None, 10, 1)
    # one LSTM of 50 units: 4 gates x 50 x (1 input + 50 recurrent + 1 bias), Dense 51
    assert cumsum.forward_lstm(10, 50).count_params() == 4 * 50 * 52 + 51
    assert cumsum.forward_lstm(10, 50, go_backwards=True).count_params() == 4 * 50 * 52 + 51


@pytest.mark.parametrize("mode, features", [("sum", 50), ("mul", 50), ("concat", 100), ("ave", 50)])
def test_merge_mode_output_shapes(mode, features):
    model = bc.bidirectional_lstm(10, 50, merge_mode=mode)
    assert tuple(model.layers[0].output.shape) == (None, 10, features)
    assert model.count_params() == 20_800 + features + 1


def test_unroll_only_on_tensorflow_and_only_for_short_sequences():
    on_tensorflow = keras.backend.backend() == "tensorflow"
    for t, unrolled in ((10, on_tensorflow), (200, False)):
        wrapper = bc.bidirectional_lstm(t, 3).layers[0]
        assert [wrapper.forward_layer.unroll, wrapper.backward_layer.unroll] == [unrolled] * 2
        args = bc.parse_args(["--n-timesteps", str(t), "--compare-directions"])
        for name in ("forward_lstm", "backward_lstm"):  # the baselines follow the lesson
            assert cumsum.lesson_builders(args, bc)[name]().layers[0].unroll == unrolled


def test_demo_shapes(capsys):
    rows = cumsum.run_demo(seed=0)
    shapes = {r["layer"]: r["output_shape"] for r in rows}
    assert shapes["LSTM(5, go_backwards=True)"] == [2, 4, 5]
    for mode in ("sum", "mul", "ave"):
        assert shapes[f"Bidirectional(LSTM(5), merge_mode={mode!r})"] == [2, 4, 5]
    assert shapes["Bidirectional(LSTM(5), merge_mode='concat')"] == [2, 4, 10]
    assert "doubles" in capsys.readouterr().out


def test_backward_model_scores_step_t_against_label_t():
    # go_backwards emits outputs last-step-first; the backward baseline flips them back
    model = cumsum.forward_lstm(6, 4, go_backwards=True)
    lstm, flip = model.layers[0], model.layers[1]
    x = np.random.default_rng(1).random((2, 6, 1)).astype("float32")
    forward = keras.layers.LSTM(4, return_sequences=True)
    forward(x)
    forward.set_weights(lstm.get_weights())
    expected = keras.ops.convert_to_numpy(forward(x[:, ::-1]))[:, ::-1]
    got = keras.ops.convert_to_numpy(flip(lstm(x)))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_dense_acts_at_every_time_step_like_time_distributed():
    x = np.random.default_rng(3).random((4, 7, 6)).astype("float32")
    dense = keras.layers.Dense(1, activation="sigmoid")
    wrapped = keras.layers.TimeDistributed(keras.layers.Dense(1, activation="sigmoid"))
    assert tuple(dense(x).shape) == (4, 7, 1)
    wrapped(x)
    wrapped.set_weights(dense.get_weights())  # the same kernel and bias
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(wrapped(x)), keras.ops.convert_to_numpy(dense(x)), atol=1e-6
    )


# baselines, scores and the training record


def test_majority_baseline_uses_training_labels_and_scores():
    y_train = np.array([[0, 0, 1], [0, 1, 1], [0, 0, 1], [0, 1, 1]])[:, :, None]
    majority = cumsum.majority_baseline(y_train)  # step 2 is a tie: goes to 1
    assert majority.ravel().tolist() == [0, 1, 1]
    y_eval = np.array([[0, 1, 1], [0, 0, 1]])[:, :, None]
    scores = cumsum.score_labels(y_eval, np.broadcast_to(majority, y_eval.shape))
    assert scores["per_step_accuracy"] == pytest.approx(5 / 6)
    assert scores["sequence_accuracy"] == pytest.approx(0.5)
    assert scores["step_accuracy"] == [1.0, 0.5, 1.0]


def test_batch_values_undo_the_running_mean():
    # three calls of 2 batches of 10 with means 1, 3, 2, then a new epoch with mean 5
    rows = [(1, 1.0, 0.5), (3, 2.0, 0.75), (5, 2.0, 0.5), (1, 5.0, 1.0)]
    values = cumsum.batch_values(rows, batch_size=10, n_train=60)
    np.testing.assert_allclose(values["loss"], [1.0, 3.0, 2.0, 5.0])
    np.testing.assert_allclose(values["accuracy"], [0.5, 1.0, 0.0, 1.0])
    assert values["step"].tolist() == [2, 4, 6, 8]
    # 55 sequences: the last call holds 15, not 20 (20 with mean 1, 20 with 3, 15 with 4)
    rows = [(1, 1.0, 1.0), (3, 2.0, 1.0), (5, (20 * 1 + 20 * 3 + 15 * 4) / 55, 1.0)]
    values = cumsum.batch_values(rows, batch_size=10, n_train=55)
    np.testing.assert_allclose(values["loss"], [1.0, 3.0, 4.0])


def test_record_batches_records_each_call_when_the_calls_do_not_divide_the_epoch():
    # 23 batches per epoch (the last one short) and 5 batches per call: the calls end at
    # batches 5, 10, 15, 20 and 23 of each epoch
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd", metrics=["accuracy"], steps_per_execution=5)
    x, y = np.zeros((225, 4), "float32"), np.zeros((225, 1), "float32")
    batches = []
    model.fit(x, y, batch_size=10, epochs=2, verbose=0, callbacks=[bc.record_batches(batches)])
    steps = cumsum.batch_values(batches, 10, 225)["step"]
    assert steps.tolist() == [5, 10, 15, 20, 23, 28, 33, 38, 43, 46]


def test_the_evaluation_and_prediction_sets_do_not_change_with_n_train(monkeypatch):
    seen = []

    def no_fit(model, X, *args, **kwargs):
        seen.append(len(X))

    monkeypatch.setattr(keras.Model, "fit", no_fit)
    small, large = (
        bc.run_lesson(n_train=n, n_eval=30, n_units=2, plot=False, verbose=0) for n in (50, 80)
    )
    assert seen == [50, 80]
    np.testing.assert_array_equal(small["y_eval"], large["y_eval"])
    assert [p["y"] for p in small["predictions"]] == [p["y"] for p in large["predictions"]]


def test_the_package_path_gives_run_lessons_numbers():
    """train_model (repeats, comparisons, the size grid: its own compile, reuse_compiled and
    direct calls) against run_lesson (model.compile, fit, evaluate and predict): same data,
    same compile settings, same training, same scores; the loss to float rounding
    (evaluate averages batch means)."""
    sizes = dict(n_timesteps=8, n_train=240, n_eval=60)
    lesson = bc.run_lesson(**sizes, n_units=4, seed=3, n_predict=2, plot=False, verbose=0)
    define_model = partial(bc.bidirectional_lstm, 8, 4, "concat")
    for keep in (True, False):  # the second trains in the first's compiled model
        package = cumsum.train_model(LESSON_FNS, define_model, 3, (8, 240, 60), 10, 1, 0, keep)
        if keep:  # the same compile settings (Keras numbers the optimizers' names)
            compiled = [m.get_compile_config() for m in (package["model"], lesson["model"])]
            for config in compiled:
                assert config["optimizer"]["config"].pop("name").startswith("adam")
            assert compiled[0] == compiled[1]
        np.testing.assert_array_equal(package["batches"], lesson["batches"])
        expected = cumsum.score_labels(lesson["y_eval"], lesson["yhat_eval"])
        assert {k: package["scores"][k] for k in expected} == expected
        assert package["scores"]["loss"] == pytest.approx(lesson["loss"], rel=1e-5)


# the size experiment


def test_size_summary_and_answers():
    runs = pd.DataFrame(
        [  # n_timesteps, units, n_train, batch_size, seed, params, accuracies, fit_s
            (10, 5, 100, 10, 7, 50, 0.999, 0.995, 4.0),
            (10, 5, 100, 10, 8, 50, 0.999, 0.991, 6.0),
            (10, 5, 200, 50, 7, 50, 0.999, 0.999, 2.0),
            (10, 5, 200, 50, 8, 50, 0.999, 0.989, 2.0),  # misses on one seed
            (10, 9, 100, 50, 7, 90, 0.999, 0.995, 1.0),
            (10, 9, 100, 50, 8, 90, 0.999, 0.999, 2.0),
            (20, 5, 100, 10, 7, 50, 0.98, 0.70, 3.0),
            (20, 5, 100, 10, 8, 50, 0.96, 0.60, 3.0),
        ],
        columns=[*cumsum.SIZE_KEYS, "seed", "params", "per_step_accuracy"]
        + ["sequence_accuracy", "fit_s"],
    ).assign(epochs=1)
    summary = cumsum.summarise_size(runs)
    assert len(summary) == 4
    first = cumsum.records(summary)[0]
    assert first["sequence_accuracy"] == pytest.approx(0.993)
    assert first["sequence_accuracy_std"] == pytest.approx(np.std([0.995, 0.991], ddof=1))
    assert first["sequence_accuracy_min"] == pytest.approx(0.991) and first["fit_s"] == 5.0
    assert cumsum.plus_minus(first, "sequence_accuracy", 3) == "0.993 ± 0.003"
    answers = cumsum.size_answers(summary, target=0.99)
    smallest, fastest = answers[10]["smallest"], answers[10]["fastest"]
    assert (smallest["units"], smallest["n_train"], smallest["batch_size"]) == (5, 100, 10)
    assert (fastest["units"], fastest["fit_s"]) == (9, 1.5)
    assert answers[20]["smallest"] is answers[20]["fastest"] is None
    assert answers[20]["best"]["sequence_accuracy"] == pytest.approx(0.65)
    one = cumsum.records(cumsum.summarise_size(runs[runs["seed"] == 7]))[0]
    assert one["sequence_accuracy_std"] is None  # one seed: no std, and the table says so
    assert cumsum.plus_minus(one, "sequence_accuracy", 3) == "0.995"


def test_size_experiment_quick_grid(tmp_path):
    out = tmp_path / "out"
    args = ["--experiment", "size", "--quick", "--verbose", "0", "--repeats", "2"]
    args += ["--grid-n-timesteps", "6,4", "--grid-units", "3", "--grid-n-train", "60"]
    args += ["--grid-batch-size", "20", "--n-eval", "40", "--out-dir", str(out)]
    code, printed = run_main(args)
    assert code == 0
    assert {p.name for p in out.iterdir()} == {"size_experiment.png", "metrics.json"}
    check_files_whole(out)
    record = json.loads((out / "metrics.json").read_text())
    assert record["seeds"] == [7, 8] and record["size_target"] == 0.99
    assert record["data"]["n_timesteps"] == [4, 6] and record["data"]["n_eval"] == 40
    runs, cells = record["per_training"], record["metrics"]
    assert len(runs) == 4 and len(cells) == 2
    for cell in cells:
        mine = [r for r in runs if r["n_timesteps"] == cell["n_timesteps"]]
        values = [r["sequence_accuracy"] for r in mine]
        assert {r["seed"] for r in mine} == {7, 8}
        assert cell["sequence_accuracy"] == pytest.approx(np.mean(values))
        assert cell["sequence_accuracy_std"] == pytest.approx(np.std(values, ddof=1))
        assert cell["params"] == 2 * 4 * 3 * (1 + 3 + 1) + 2 * 3 + 1
    assert set(record["answers"]) == {"4", "6"}
    assert "worst_seed" in printed and "whole-sequence accuracy >= 99%" in printed
    # each training is seeded on its own: the second seed's cell alone gives its numbers
    again = tmp_path / "again"
    args = [a if a != "6,4" else "6" for a in args[:-1]] + [str(again)]
    assert run_main([*args, "--seed", "8", "--repeats", "1"])[0] == 0
    alone = json.loads((again / "metrics.json").read_text())["per_training"][0]
    first = next(r for r in runs if r["seed"] == 8 and r["n_timesteps"] == 6)
    assert alone["sequence_accuracy"] == first["sequence_accuracy"]
    assert alone["per_step_accuracy"] == first["per_step_accuracy"]


def test_quick_makes_every_size_smaller_and_an_option_given_wins():
    quick, full = bc.parse_args(["--quick"]), bc.parse_args([])
    assert quick.n_train < full.n_train and quick.n_eval < full.n_eval
    for key in cumsum.SIZE_KEYS:  # a smaller grid, of smaller cells
        small, large = getattr(quick, "grid_" + key), getattr(full, "grid_" + key)
        assert len(small) <= len(large) and max(small) <= max(large)
    args = bc.parse_args(["--quick", "--grid-units", "7,3,7", "--n-train", "123"])
    assert args.grid_units == [3, 7] and args.n_train == 123  # sorted, no repeats


# more runs


def test_merge_mode_and_several_epochs_run(tmp_path):
    out = tmp_path / "out"
    options = ["--quick", "--verbose", "0", "--merge-mode", "sum", "--epochs", "2"]
    options += ["--n-train", "300", "--n-eval", "50", "--n-predict", "3", "--out-dir", str(out)]
    code, printed = run_main(options)
    assert code == 0 and printed.count("y=[") == 3
    record = json.loads((out / "metrics.json").read_text())
    assert record["args"]["merge_mode"] == "sum" and record["args"]["epochs"] == 2
    assert record["cost"]["bidirectional_lstm"]["epochs"] == 2
    model = keras.saving.load_model(out / "bidirectional_lstm.keras")
    assert model.layers[0].merge_mode == "sum" and model.count_params() == 20_800 + 51
    assert int(model.optimizer.iterations) == 2 * 300 // 10  # two epochs of 30 batches


def test_jobs_2_gives_the_numbers_of_jobs_1(tmp_path):
    """Each training seeds itself: in worker processes it gives the same numbers."""
    small = ["--quick", "--verbose", "0", "--repeats", "2"]
    small += ["--n-train", "300", "--n-eval", "50", "--n-predict", "3"]
    records = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs{jobs}"
        code, printed = run_main([*small, "--jobs", jobs, "--out-dir", str(out)])
        assert code == 0
        assert ("3 trainings in 2 worker processes" in printed) == (jobs == "2")
        records[jobs] = json.loads((out / "metrics.json").read_text())
    for record in records.values():  # timings and the arguments differ
        for key in ("timings_s", "args", "cost"):
            record.pop(key)
    assert records["1"] == records["2"]


def test_demo_only(tmp_path):
    out = tmp_path / "out"
    code, printed = run_main(["--demo", "--out-dir", str(out)])
    assert code == 0 and "doubles" in printed
    assert {p.name for p in out.iterdir()} == {"metrics.json"}
    record = json.loads((out / "metrics.json").read_text())
    assert [r["output_shape"][-1] for r in record["demo"]] == [5, 5, 5, 10, 5]


def test_ctrl_c_during_fit_exits_130_with_whole_files(tmp_path, monkeypatch, capsys):
    """The script's wiring; real signals are tested once for the package."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "fit", interrupted)
    out = tmp_path / "out"
    assert bc.main(["--quick", "--verbose", "0", "--out-dir", str(out)]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "interrupted: stopped early; files already written are complete"
    )
    assert not (out / "metrics.json").exists()
    check_files_whole(out)


def test_the_lesson_part_runs_alone(tmp_path):
    """Everything above '# Beyond the lesson', saved alone, runs run_lesson(**QUICK) with
    only the standard library, keras, numpy and matplotlib, and writes no file."""
    text = SCRIPT.read_text()
    lesson = text[: text.index("\n# Beyond the lesson\n")] + "\nrun_lesson(**QUICK)\n"
    modules = {
        (alias.name if isinstance(node, ast.Import) else node.module).split(".")[0]
        for node in ast.walk(ast.parse(lesson))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert modules <= {"os", "time", "keras", "numpy", "matplotlib"}
    (tmp_path / "lesson.py").write_text(lesson)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "lesson.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(env, MPLBACKEND="Agg"),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Total params: 20,901" in done.stdout and "Loss: " in done.stdout
    assert done.stdout.count("y=[") == 10
    assert [p.name for p in tmp_path.iterdir()] == ["lesson.py"]


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_quick_run_under_jax_and_torch_beats_the_majority_baseline(tmp_path, backend):
    """Only Keras APIs are used, so the script runs unchanged on the other two backends."""
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--verbose", "0", "--out-dir", str(out)],
        capture_output=True,
        text=True,
        env=dict(os.environ, KERAS_BACKEND=backend, MPLBACKEND="Agg"),
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((out / "metrics.json").read_text())
    assert record["backend"] == backend
    metrics = record["metrics"]
    for metric in ("per_step_accuracy", "sequence_accuracy"):
        assert metrics["bidirectional_lstm"][metric] > metrics["majority_per_step"][metric]


# bad input: one line, exit 2, nothing written


@pytest.mark.parametrize(
    "option, value",
    [
        ("--n-train", "0"),
        ("--n-train", "-5"),
        ("--n-train", "2.5"),
        ("--n-train", "many"),
        ("--n-eval", "0"),
        ("--n-predict", "0"),
        ("--batch-size", "0"),
        ("--batch-size", "1.5"),
        ("--epochs", "0"),
        ("--epochs", "-1"),
        ("--units", "0"),
        ("--units", "x"),
        ("--n-timesteps", "0"),
        ("--n-timesteps", "3.0"),
        ("--repeats", "0"),
        ("--seed", "-1"),
        ("--merge-mode", "max"),
        ("--verbose", "3"),
        ("--grid-units", "5,0"),
        ("--grid-n-train", "many"),
        ("--grid-batch-size", ""),
        ("--grid-n-timesteps", "10,,20"),
        ("--experiment", "length"),
    ],
)
def test_bad_option_values_exit_2_naming_the_option(tmp_path, capsys, option, value):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        bc.main([option, value, "--out-dir", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1  # one line, no usage block
    assert not out.exists()


@pytest.mark.parametrize("option", ["--n-timesteps", "--grid-n-timesteps"])
def test_one_time_step_is_one_clear_line(tmp_path, capsys, option):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        bc.main(["--experiment", "size", option, "1", "--out-dir", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {option} must be 2 or more")
    assert not out.exists()


def test_out_dir_that_is_a_file_or_unwritable_fails_before_training(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("keep me")
    for out, message in ((target, "is a file"), (target / "inside", "cannot write to")):
        with pytest.raises(SystemExit) as e:
            bc.main(["--quick", "--out-dir", str(out)])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
    assert target.read_text() == "keep me" and [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_help_shows_every_option_and_its_default(capsys):
    with pytest.raises(SystemExit) as e:
        bc.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "--compare-merge-modes" in text and "default: 50000" in text
    # a plain run scores more evaluation sequences than the lesson: --help says how many
    assert "default: 1000" in text and "--n-eval 100" in " ".join(text.split())


# the memory guard


def test_memory_estimate_covers_the_generated_arrays():
    t, n_train, n_eval, n_predict = 12, 3_000, 500, 4
    kept = sum(
        a.nbytes for n in (n_train, n_eval, n_predict) for a in bc.get_sequences(n, t, rng=0)
    )
    assert cumsum.data_memory(t, n_train, n_eval, n_predict) > kept
    # fit copies the training set: a larger training set costs more than its arrays
    extra = cumsum.data_memory(t, 2 * n_train, n_eval, n_predict) - cumsum.data_memory(
        t, n_train, n_eval, n_predict
    )
    assert extra > 16 * t * n_train


def test_memory_guard_counts_the_workers_and_the_largest_cell(monkeypatch):
    seen = []
    monkeypatch.setattr(cumsum, "check_memory", lambda need, lower, n: seen.append((need, n)))
    bc.parse_args(["--quick"])
    one = seen[-1][0]
    bc.parse_args(["--quick", "--repeats", "3", "--jobs", "4"])  # 6 trainings, 4 at once
    assert seen[-1] == (4 * one, 4)
    bc.parse_args(["--quick", "--jobs", "8"])  # 2 trainings: at most 2 processes
    assert seen[-1] == (2 * one, 2)
    calls = len(seen)
    bc.parse_args(["--demo", "--n-train", "100000000"])  # the demo trains nothing: no guard
    assert len(seen) == calls
    bc.parse_args(["--experiment", "size", "--grid-n-train", "100,900", "--n-eval", "50"])
    small = seen[-1][0]
    bc.parse_args(["--experiment", "size", "--grid-n-train", "900", "--n-eval", "50"])
    assert seen[-1][0] == small  # the largest cell decides


def test_memory_guard_stops_a_run_larger_than_the_free_memory(tmp_path, capsys):
    free = available_memory()
    if free is None:
        pytest.skip("no memory figure on this system")
    # X (float64) and y (int64) alone take 16 bytes per time step of 10-step sequences
    too_many = free // (16 * 10) + 1
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        bc.main(["--n-train", str(too_many), "--out-dir", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the run would need about")
    assert "GiB is available" in err[0] and "--n-train" in err[0]
    assert not out.exists()
    # a hundredth of the free memory passes the guard
    bc.parse_args(["--n-train", str(free // (16 * 10) // 100)])
