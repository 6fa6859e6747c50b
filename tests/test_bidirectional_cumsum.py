"""Tests for bidirectional_cumsum.py (lesson 10: Bidirectional LSTM, cumulative sum)."""

import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bidirectional_cumsum as bc

SCRIPT = Path(bc.__file__).resolve()


def loop_labels(row, n_timesteps):
    """The cumulative-sum rule written independently, as a plain Python loop."""
    limit = n_timesteps / 4.0
    total, labels = 0.0, []
    for value in row:
        total += float(value)
        labels.append(0 if total < limit else 1)
    return labels


def assert_labels_follow_rule(X, y):
    n, t, _ = X.shape
    assert X.shape == y.shape == (n, t, 1)
    assert np.all((X >= 0.0) & (X <= 1.0))
    assert set(np.unique(y)) <= {0, 1}
    # each row: zeros, then ones, never back to zero
    assert np.all(np.diff(y[:, :, 0], axis=1) >= 0)
    for row_x, row_y in zip(X[:, :, 0], y[:, :, 0]):
        assert row_y.tolist() == loop_labels(row_x, t)


# ---------------------------------------------------------------------------
# 10.2 data
# ---------------------------------------------------------------------------


def test_labels_are_zeros_then_ones_and_match_a_plain_loop():
    X, y = bc.get_sequences(500, 10, rng=0)
    assert_labels_follow_rule(X, y)
    # with 10 steps the switch happens somewhere inside the sequence
    assert y[:, 0, 0].sum() == 0 and y[:, -1, 0].mean() > 0.99


@settings(max_examples=60, deadline=None)
@given(
    n_sequences=st.integers(1, 20),
    n_timesteps=st.integers(2, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_labels_monotone_and_follow_rule(n_sequences, n_timesteps, seed):
    X, y = bc.get_sequences(n_sequences, n_timesteps, rng=seed)
    assert_labels_follow_rule(X, y)


def test_lesson_examples_and_the_boundary():
    # the lesson's two printed examples (its tables 10.3/10.4 and 10.11)
    x1 = [
        0.63144003,
        0.29414551,
        0.91587952,
        0.95189228,
        0.32195638,
        0.60742236,
        0.83895793,
        0.18023048,
        0.84762691,
        0.29165514,
    ]
    x2 = [
        0.22228819,
        0.26882207,
        0.069623,
        0.91477783,
        0.02095862,
        0.71322527,
        0.90159654,
        0.65000306,
        0.88845226,
        0.4037031,
    ]
    assert bc.cumsum_labels(x1).tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1, 1]
    assert bc.cumsum_labels(x2).tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    # the lesson writes `0 if x < limit else 1`: reaching the limit exactly gives 1
    assert bc.cumsum_labels([0.25, 0.25]).tolist() == [0, 1]  # limit 0.5, sums exact
    assert bc.cumsum_labels([0.5, 0.5, 0.25, 0.0]).tolist() == [0, 1, 1, 1]  # limit 1.0


def test_shapes_dtypes_and_determinism_per_seed():
    X, y = bc.get_sequences(7, 12, rng=3)
    assert X.shape == y.shape == (7, 12, 1)
    assert X.dtype == np.float64 and np.issubdtype(y.dtype, np.integer)
    X2, y2 = bc.get_sequences(7, 12, rng=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = bc.get_sequences(7, 12, rng=4)
    assert not np.array_equal(X, X3)
    # a Generator works too, and continues its stream
    gen = np.random.default_rng(3)
    Xa, _ = bc.get_sequences(7, 12, rng=gen)
    Xb, _ = bc.get_sequences(7, 12, rng=gen)
    np.testing.assert_array_equal(Xa, X)
    assert not np.array_equal(Xa, Xb)
    x, y1 = bc.get_sequence(10, rng=5)
    assert x.shape == y1.shape == (10,)
    assert y1.tolist() == loop_labels(x, 10)


# ---------------------------------------------------------------------------
# baselines and scoring
# ---------------------------------------------------------------------------


def test_majority_baseline_uses_training_labels_and_scores():
    y_train = np.array([[0, 0, 1], [0, 1, 1], [0, 0, 1], [0, 1, 1]])[:, :, None]
    majority = bc.majority_baseline(y_train)  # step 2 is a tie: goes to 1
    assert majority.ravel().tolist() == [0, 1, 1]
    y_eval = np.array([[0, 1, 1], [0, 0, 1]])[:, :, None]
    scores = bc.score_labels(y_eval, bc.predict_majority(majority, 2))
    assert scores["per_step_accuracy"] == pytest.approx(5 / 6)
    assert scores["sequence_accuracy"] == pytest.approx(0.5)
    assert scores["step_accuracy"] == [1.0, 0.5, 1.0]


def test_majority_baseline_on_the_lesson_problem():
    _, y_train = bc.get_sequences(20_000, 10, rng=11)
    _, y_eval = bc.get_sequences(5_000, 10, rng=12)
    majority = bc.majority_baseline(y_train).ravel()
    assert majority[:4].tolist() == [0, 0, 0, 0] and majority[5:].tolist() == [1] * 5
    scores = bc.score_labels(y_eval, bc.predict_majority(bc.majority_baseline(y_train), 5_000))
    assert 0.86 < scores["per_step_accuracy"] < 0.91
    assert 0.22 < scores["sequence_accuracy"] < 0.34


def test_batch_values_undo_the_running_mean():
    # three chunks of 20 samples with means 1, 3, 2, then a new epoch with mean 5
    record = {
        "step": [2, 4, 6, 8],
        "epoch_step": [2, 4, 6, 2],
        "loss": [1.0, 2.0, 2.0, 5.0],
        "accuracy": [0.5, 0.75, 0.5, 1.0],
    }
    values = bc.batch_values(record, batch_size=10, n_train=60)
    np.testing.assert_allclose(values["loss"], [1.0, 3.0, 2.0, 5.0])
    np.testing.assert_allclose(values["accuracy"], [0.5, 1.0, 0.0, 1.0])
    # 55 sequences: the last chunk holds 15, not 20 (20 with mean 1, 20 with 3, 15 with 4)
    record = {
        "step": [2, 4, 6],
        "epoch_step": [2, 4, 6],
        "loss": [1.0, 2.0, (20 * 1 + 20 * 3 + 15 * 4) / 55],
        "accuracy": [1.0, 1.0, 1.0],
    }
    values = bc.batch_values(record, batch_size=10, n_train=55)
    np.testing.assert_allclose(values["loss"], [1.0, 3.0, 4.0])
    np.testing.assert_allclose(values["accuracy"], [1.0, 1.0, 1.0])


def test_train_network_steps_when_steps_per_execution_does_not_divide_the_epoch():
    # 23 batches per epoch (the last one short) and 5 batches per call: the calls end
    # at batches 5, 10, 15, 20 and 23 of each epoch
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd", metrics=["accuracy"], steps_per_execution=5)
    x, y = np.zeros((225, 4), "float32"), np.zeros((225, 1), "float32")
    batches = bc.train_network(model, x, y, epochs=2, batch_size=10, verbose=0)["batches"]
    assert batches["step"] == [5, 10, 15, 20, 23, 28, 33, 38, 43, 46]
    assert batches["epoch_step"] == [5, 10, 15, 20, 23] * 2
    assert max(batches["epoch_step"]) == 23
    assert len(batches["loss"]) == len(batches["accuracy"]) == 10


def test_evaluation_set_does_not_change_with_n_train(monkeypatch):
    small, large = bc.lesson_data(7, 10, 300, 50, 3), bc.lesson_data(7, 10, 400, 50, 3)
    assert len(small["train"][0]) == 300 and len(large["train"][0]) == 400
    for key in ("eval", "new"):  # the evaluation set and the sequences to predict
        np.testing.assert_array_equal(small[key][0], large[key][0])
        np.testing.assert_array_equal(small[key][1], large[key][1])
    assert not np.array_equal(bc.lesson_data(8, 10, 300, 50, 3)["eval"][0], small["eval"][0])

    # the script's run draws its data the same way: record what each model is given
    given_data = []

    def fake_run_lesson(define_model, data, seed, *args, **kwargs):
        given_data.append(data)
        model = SimpleNamespace(count_params=lambda: 0)
        training = {"fit_s": 0.0, "history": {"loss": [0.0]}}
        return {"model": model, "scores": {}, "training": training, "evaluate_s": 0.0}

    monkeypatch.setattr(bc, "run_lesson", fake_run_lesson)
    monkeypatch.setattr(bc, "copy_model", lambda model: model)  # the fake has no weights
    for n_train in ("300", "400"):
        args = bc.parse_args(["--quick", "--n-train", n_train])
        for _, function, arguments in bc.lesson_trainings(args, [7]):
            function(*arguments)
    first, last = given_data[0], given_data[-1]
    assert len(first["train"][0]) == 300 and len(last["train"][0]) == 400
    np.testing.assert_array_equal(first["eval"][0], last["eval"][0])
    np.testing.assert_array_equal(first["new"][0], last["new"][0])


# ---------------------------------------------------------------------------
# 10.1 and 10.3 models
# ---------------------------------------------------------------------------


def test_parameter_counts_match_the_lesson():
    model = bc.bidirectional_lstm(10, 50)
    assert model.layers[0].count_params() == 20_800
    assert model.layers[1].count_params() == 101
    assert model.count_params() == 20_901
    assert tuple(model.output_shape) == (None, 10, 1)
    assert bc.forward_lstm(10, 50).count_params() == 10_400 + 51
    assert bc.backward_lstm(10, 50).count_params() == 10_400 + 51
    # speed settings sit in SPEED, used at compile time, never in the model builders
    assert not model.layers[0].forward_layer.unroll
    assert bc.SPEED == {"steps_per_execution": 50, "unroll": True}


@pytest.mark.parametrize("mode, features", [("sum", 50), ("mul", 50), ("concat", 100), ("ave", 50)])
def test_merge_mode_output_shapes(mode, features):
    model = bc.bidirectional_lstm(10, 50, merge_mode=mode)
    assert tuple(model.layers[0].output.shape) == (None, 10, features)
    assert model.count_params() == 20_800 + features + 1
    x = np.random.default_rng(0).random((3, 10, 1))
    assert tuple(model.predict_on_batch(x).shape) == (3, 10, 1)


def test_demo_shapes():
    shape, rows = bc.direction_and_merge_demo(n_timesteps=4, n_units=5)
    assert shape == (2, 4, 1)
    shapes = {r["layer"]: r["output_shape"] for r in rows}
    assert shapes["LSTM(5, go_backwards=True)"] == (2, 4, 5)
    for mode in ("sum", "mul", "ave"):
        assert shapes[f"Bidirectional(LSTM(5), merge_mode={mode!r})"] == (2, 4, 5)
    assert shapes["Bidirectional(LSTM(5), merge_mode='concat')"] == (2, 4, 10)


def test_backward_model_scores_step_t_against_label_t():
    # go_backwards emits outputs last-step-first; backward_lstm flips them back.
    import keras

    model = bc.backward_lstm(6, 4)
    lstm, flip = model.layers[0], model.layers[1]
    x = np.random.default_rng(1).random((2, 6, 1)).astype("float32")
    forward = keras.layers.LSTM(4, return_sequences=True)
    forward(x)
    forward.set_weights(lstm.get_weights())
    expected = keras.ops.convert_to_numpy(forward(x[:, ::-1]))[:, ::-1]
    got = keras.ops.convert_to_numpy(flip(lstm(x)))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# learning
# ---------------------------------------------------------------------------


def test_the_lesson_flow_beats_the_majority_baseline_on_fresh_data():
    X, y = bc.get_sequences(5_000, 10, rng=21)
    X_eval, y_eval = bc.get_sequences(1_000, 10, rng=22)
    data = {"train": (X, y), "eval": (X_eval, y_eval), "new": bc.get_sequences(10, 10, rng=23)}
    build = partial(bc.bidirectional_lstm, 10, 50)
    result = bc.run_lesson(build, data, seed=21, batch_size=10, epochs=1, verbose=0)
    scores = result["scores"]
    majority = bc.score_labels(y_eval, bc.predict_majority(bc.majority_baseline(y), len(y_eval)))
    assert scores["per_step_accuracy"] > majority["per_step_accuracy"] + 0.04
    assert scores["sequence_accuracy"] > majority["sequence_accuracy"] + 0.15
    # the training record covers the 500 batches, and the loss falls along the epoch
    batches = result["training"]["batches"]
    assert batches["step"][-1] == batches["epoch_step"][-1] == 500
    values = bc.batch_values(batches, 10, 5_000)
    assert values["loss"][-1] < 0.5 * values["loss"][0]
    # 10.6: one line per new sequence
    assert len(result["lines"]) == len(result["predictions"]) == 10
    assert all(line.startswith("y=[") for line in result["lines"])


# ---------------------------------------------------------------------------
# the command line: smoke runs
# ---------------------------------------------------------------------------


def check_files_whole(folder):
    from matplotlib import image

    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]
    for path in folder.iterdir():
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".png":
            assert image.imread(path).ndim == 3


def test_quick_run_writes_every_promised_file(tmp_path, capsys):
    out = tmp_path / "out"
    code = bc.main(
        [
            "--quick",
            "--verbose",
            "0",
            "--out-dir",
            str(out),
            "--compare-directions",
            "--compare-merge-modes",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    expected = {
        "example_sequence.png",
        "training_curve.png",
        "step_accuracy.png",
        "compare_directions.png",
        "compare_merge_modes.png",
        "metrics.json",
        "bidirectional_lstm.keras",
        "forward_lstm.keras",
    }
    assert {p.name for p in out.iterdir()} == expected
    check_files_whole(out)

    record = json.loads((out / "metrics.json").read_text())
    for key in ("script", "args", "seed", "versions", "backend", "data", "timings_s", "metrics"):
        assert key in record
    assert record["args"]["n_train"] == bc.QUICK["n_train"]
    assert record["args"]["out_dir"] == str(out)
    assert set(record["timings_s"]) >= {"data", "fit", "evaluate"}
    metrics = record["metrics"]
    assert set(metrics) == {"majority_per_step", "forward_lstm", "bidirectional_lstm"}
    for name, row in metrics.items():
        for metric in ("per_step_accuracy", "sequence_accuracy"):
            assert 0.0 <= row[metric] <= 1.0
            assert name in printed
    for name in ("forward_lstm", "bidirectional_lstm"):
        assert metrics[name]["loss"] > 0
    assert metrics["bidirectional_lstm"]["params"] == 20_901
    assert metrics["forward_lstm"]["params"] == 10_451
    assert set(record["compare_directions"]) == {
        "majority_per_step",
        "forward",
        "backward",
        "bidirectional",
    }
    assert set(record["compare_merge_modes"]) == {"majority_per_step", *bc.MERGE_MODES}
    assert record["compare_merge_modes"]["concat"] == metrics["bidirectional_lstm"]
    assert len(record["predictions"]) == 10
    assert all(set(p) == {"y", "yhat", "correct"} for p in record["predictions"])
    assert printed.count("y=[") == 10 and "yhat=[" in printed
    assert len(record["step_accuracy"]["bidirectional_lstm"]) == 10

    import keras

    model = keras.saving.load_model(out / "bidirectional_lstm.keras")
    assert model.count_params() == 20_901


def test_repeats_give_mean_and_std(tmp_path):
    out = tmp_path / "out"
    assert (
        bc.main(
            [
                "--quick",
                "--verbose",
                "0",
                "--repeats",
                "2",
                "--n-train",
                "200",
                "--n-eval",
                "50",
                "--n-predict",
                "3",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    record = json.loads((out / "metrics.json").read_text())
    assert record["seeds"] == [7, 8]
    assert set(record["per_seed"]) == {"7", "8"}
    for name, row in record["metrics"].items():
        for metric in ("per_step_accuracy", "sequence_accuracy"):
            values = [record["per_seed"][s][name][metric] for s in ("7", "8")]
            assert row[metric] == pytest.approx(np.mean(values))
            assert row[metric + "_std"] == pytest.approx(np.std(values, ddof=1))
    assert "loss_std" in record["metrics"]["bidirectional_lstm"]


def test_demo_only(tmp_path, capsys):
    out = tmp_path / "out"
    assert bc.main(["--demo", "--out-dir", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"metrics.json"}
    record = json.loads((out / "metrics.json").read_text())
    assert [r["output_shape"][-1] for r in record["demo"]] == [5, 5, 5, 10, 5]
    assert "doubles" in capsys.readouterr().out


def test_help_answers_without_importing_keras():
    code = (
        "import sys, contextlib, io\n"
        "import bidirectional_cumsum as bc\n"
        "with contextlib.redirect_stdout(io.StringIO()) as f:\n"
        "    try:\n"
        "        bc.main(['--help'])\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0\n"
        "assert '--compare-merge-modes' in f.getvalue() and 'default: 50000' in f.getvalue()\n"
        "print('keras' in sys.modules, 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=SCRIPT.parent, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False"


# ---------------------------------------------------------------------------
# the command line: errors
# ---------------------------------------------------------------------------


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


def test_too_few_timesteps_is_one_clear_line(tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        bc.main(["--n-timesteps", "1", "--out-dir", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --n-timesteps must be 2 or more")
    assert not out.exists()


def test_out_dir_that_is_a_file_fails_before_training(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("keep me")
    with pytest.raises(SystemExit) as e:
        bc.main(["--quick", "--out-dir", str(target)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err
    assert target.read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_unwritable_out_dir_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(SystemExit) as e:
        bc.main(["--quick", "--out-dir", str(blocker / "inside")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write to --out-dir" in err
    assert [p.name for p in tmp_path.iterdir()] == ["blocker"]


def test_ctrl_c_during_fit_exits_130_with_whole_files(tmp_path):
    out = tmp_path / "out"
    log = tmp_path / "stdout.txt"
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    # enough training sequences that fit is still running when the signal comes
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--n-train",
        "400000",
        "--n-eval",
        "100",
        "--verbose",
        "1",
        "--out-dir",
        str(out),
    ]
    with open(log, "w") as stdout:
        # a shell that started us in the background may have left SIGINT ignored;
        # give the child the default, so that Python turns it into KeyboardInterrupt
        proc = subprocess.Popen(
            cmd,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            deadline = time.monotonic() + 90
            while "/step" not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, "the run ended before fit started"
                time.sleep(0.2)
            assert "/step" in log.read_text(), "the progress bar did not start in time"
            time.sleep(1.0)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "interrupted: stopped early; files already written are complete"
    )
    assert (out / "example_sequence.png").exists()
    assert not (out / "metrics.json").exists()
    check_files_whole(out)


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
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((out / "metrics.json").read_text())
    assert record["backend"] == backend
    assert 0.5 < record["metrics"]["bidirectional_lstm"]["per_step_accuracy"] <= 1.0


# ---------------------------------------------------------------------------
# issue 11: TimeDistributed, unrolling by length, --experiment size
# ---------------------------------------------------------------------------


def test_dense_acts_at_every_time_step_like_time_distributed():
    import keras
    from keras import layers

    x = np.random.default_rng(3).random((4, 7, 6)).astype("float32")
    dense = layers.Dense(1, activation="sigmoid")
    wrapped = layers.TimeDistributed(layers.Dense(1, activation="sigmoid"))
    assert tuple(dense(x).shape) == (4, 7, 1)
    wrapped(x)
    wrapped.set_weights(dense.get_weights())  # the same kernel and bias
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(wrapped(x)), keras.ops.convert_to_numpy(dense(x)), atol=1e-6
    )


def test_unroll_only_up_to_the_length_where_it_pays(monkeypatch):
    import keras

    limit = bc.UNROLL_MAX_TIMESTEPS
    assert 10 <= limit < 200  # the lesson's 10 steps unrolled, long sequences not
    assert bc.speed_for(10) == bc.SPEED  # the lesson's length: SPEED as it stands
    assert bc.speed_for(limit)["unroll"] and not bc.speed_for(limit + 1)["unroll"]
    assert bc.speed_for(200) == dict(bc.SPEED, unroll=False)

    # run_lesson applies it: record what reaches fit, then stop before training
    seen = {}

    def stop_at_fit(model, *args, **kwargs):
        lstm = model.layers[0]
        seen[model.input_shape[1]] = (lstm.forward_layer.unroll, lstm.backward_layer.unroll)
        raise InterruptedError

    monkeypatch.setattr(bc, "train_network", stop_at_fit)
    on_tensorflow = keras.backend.backend() == "tensorflow"
    for t in (10, 200):
        data = bc.lesson_data(7, t, 4, 2, 1)
        with pytest.raises(InterruptedError):
            bc.run_lesson(partial(bc.bidirectional_lstm, t, 3), data, 7, verbose=0)
    assert seen == {10: (on_tensorflow,) * 2, 200: (False, False)}


def test_size_summary_and_answers():
    import pandas as pd

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
        columns=[
            *bc.SIZE_KEYS,
            "seed",
            "params",
            "per_step_accuracy",
            "sequence_accuracy",
            "fit_s",
        ],
    )
    runs["epochs"] = 1  # a row of size_training holds the epochs trained too
    summary = bc.summarise_size(runs)
    assert len(summary) == 4
    first = bc.records(summary)[0]
    assert first["sequence_accuracy"] == pytest.approx(0.993)
    assert first["sequence_accuracy_std"] == pytest.approx(np.std([0.995, 0.991], ddof=1))
    assert first["sequence_accuracy_min"] == pytest.approx(0.991) and first["fit_s"] == 5.0
    assert first["epochs"] == 1 and bc.size_table_rows(summary)[0]["epochs"] == 1
    answers = bc.size_answers(summary, target=0.99)
    smallest, fastest = answers[10]["smallest"], answers[10]["fastest"]
    assert (smallest["units"], smallest["n_train"], smallest["batch_size"]) == (5, 100, 10)
    assert (fastest["units"], fastest["fit_s"]) == (9, 1.5)
    assert answers[20]["smallest"] is answers[20]["fastest"] is None
    assert answers[20]["best"]["sequence_accuracy"] == pytest.approx(0.65)
    # one seed: no std, and the table says so
    one = bc.summarise_size(runs[runs["seed"] == 7])
    assert bc.records(one)[0]["sequence_accuracy_std"] is None
    assert bc.size_table_rows(one)[0]["whole sequence"] == "0.995"
    assert bc.size_table_rows(summary)[0]["whole sequence"] == "0.993 ± 0.003"


def test_size_experiment_quick_grid(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--experiment", "size", "--quick", "--verbose", "0", "--repeats", "2"]
    args += ["--grid-n-timesteps", "6,4", "--grid-units", "3", "--grid-n-train", "60"]
    args += ["--grid-batch-size", "20", "--n-eval", "40", "--out-dir", str(out)]
    assert bc.main(args) == 0
    printed = capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"size_experiment.png", "metrics.json"}
    check_files_whole(out)
    record = json.loads((out / "metrics.json").read_text())
    assert record["seeds"] == [7, 8] and record["size_target"] == 0.99
    assert record["data"]["n_timesteps"] == [4, 6] and record["data"]["n_eval"] == 40
    assert set(record["timings_s"]) >= {"data", "fit", "evaluate"}
    runs, cells = record["per_training"], record["metrics"]
    assert len(runs) == 4 and len(cells) == 2
    for cell in cells:
        mine = [r for r in runs if r["n_timesteps"] == cell["n_timesteps"]]
        values = [r["sequence_accuracy"] for r in mine]
        assert {r["seed"] for r in mine} == {7, 8}
        assert cell["sequence_accuracy"] == pytest.approx(np.mean(values))
        assert cell["sequence_accuracy_std"] == pytest.approx(np.std(values, ddof=1))
        assert cell["params"] == 2 * 4 * 3 * (1 + 3 + 1) + 2 * 3 + 1
        assert 0.0 <= cell["per_step_accuracy"] <= 1.0
    assert set(record["answers"]) == {"4", "6"}
    for answer in record["answers"].values():
        assert answer["best"] is not None
        assert (answer["smallest"] is None) == (answer["fastest"] is None)
    assert "worst seed" in printed and "whole-sequence accuracy >= 99%" in printed
    # each training is seeded on its own: the second seed's cell alone gives its numbers
    again = tmp_path / "again"
    args = [a if a != "6,4" else "6" for a in args[:-1]] + [str(again)]
    assert bc.main([*args, "--seed", "8", "--repeats", "1"]) == 0
    alone = json.loads((again / "metrics.json").read_text())["per_training"][0]
    first = next(r for r in runs if r["seed"] == 8 and r["n_timesteps"] == 6)
    assert alone["sequence_accuracy"] == first["sequence_accuracy"]
    assert alone["per_step_accuracy"] == pytest.approx(first["per_step_accuracy"], abs=1e-9)


def test_quick_sets_a_small_grid():
    args = bc.parse_args(["--quick", "--grid-units", "7,3,7"])
    assert args.grid_units == [3, 7]  # given wins; sorted, no repeats
    assert args.grid_n_timesteps == bc.positive_ints(bc.QUICK["grid_n_timesteps"])
    full = bc.parse_args([])
    assert full.grid_n_timesteps == bc.positive_ints(bc.SIZE_GRID["n_timesteps"])


@pytest.mark.parametrize(
    "option, value",
    [
        ("--grid-units", "5,0"),
        ("--grid-n-train", "many"),
        ("--grid-batch-size", ""),
        ("--grid-n-timesteps", "10,,20"),
        ("--experiment", "length"),
    ],
)
def test_bad_grid_values_exit_2(tmp_path, capsys, option, value):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        bc.main(["--experiment", "size", option, value, "--out-dir", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert option in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_grid_of_one_step_is_one_clear_line(tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        bc.main(["--experiment", "size", "--grid-n-timesteps", "1,10", "--out-dir", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --grid-n-timesteps must be 2 or more")
    assert not out.exists()


def test_saved_models_load_in_safe_mode_and_predict_as_scored(tmp_path, capsys):
    """The README's "use what you trained": each saved model is the one that was scored."""
    import keras

    out = tmp_path / "out"
    assert bc.main(["--quick", "--verbose", "0", "--out-dir", str(out)]) == 0
    capsys.readouterr()
    record = json.loads((out / "metrics.json").read_text())
    args = bc.parse_args(["--quick"])
    data = bc.lesson_data(7, args.n_timesteps, args.n_train, args.n_eval, args.n_predict)
    X_eval, y_eval = data["eval"]
    for name in ("bidirectional_lstm", "forward_lstm"):
        model = keras.saving.load_model(out / f"{name}.keras", safe_mode=True)
        scores = bc.score_labels(y_eval, bc.predict_labels(model, X_eval))
        assert scores["per_step_accuracy"] == record["metrics"][name]["per_step_accuracy"]


# ---------------------------------------------------------------------------
# issue 12: --jobs, the cost of each model, the memory guard; issue 13: no retracing
# ---------------------------------------------------------------------------


def run_script(args, timeout=600):
    env = dict(os.environ, MPLBACKEND="Agg")
    cmd = [sys.executable, str(SCRIPT), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def test_quick_with_every_model_prints_no_retracing_warning(tmp_path):
    """6 kinds of model x 2 seeds in one process: each kind traced once (reuse_compiled),
    evaluated by direct calls, and 4 calls per fit, so TensorFlow has nothing to warn of."""
    options = ["--quick", "--verbose", "0", "--compare-directions", "--compare-merge-modes"]
    done = run_script([*options, "--repeats", "2", "--out-dir", str(tmp_path / "out")])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "fit bidirectional_lstm_ave" in done.stdout and "fit backward_lstm" in done.stdout
    assert "retracing" not in done.stdout + done.stderr


def test_jobs_2_gives_the_numbers_of_jobs_1(tmp_path):
    """Each training seeds itself: in worker processes it gives the same numbers."""
    small = ["--quick", "--verbose", "0", "--repeats", "2", "--compare-directions"]
    small += ["--n-train", "300", "--n-eval", "50", "--n-predict", "3"]
    records = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs{jobs}"
        done = run_script([*small, "--jobs", jobs, "--out-dir", str(out)])
        assert done.returncode == 0, done.stderr[-2000:]
        assert ("6 trainings in 2 worker processes" in done.stdout) == (jobs == "2")
        check_files_whole(out)
        records[jobs] = json.loads((out / "metrics.json").read_text())
        # the parent printed the lesson's steps and saved the first seed's models
        assert "Total params: " in done.stdout and done.stdout.count("y=[") == 3
        assert "10.5 evaluation on 50 fresh sequences" in done.stdout
        assert {"bidirectional_lstm.keras", "forward_lstm.keras"} <= {p.name for p in out.iterdir()}
    one, two = records["1"], records["2"]
    assert one["args"]["jobs"] == 1 and two["args"]["jobs"] == 2
    for record in (one, two):  # timings differ, and so do the arguments (--jobs, --out-dir)
        for key in ("timings_s", "args"):
            record.pop(key)
        for cost in record.pop("cost").values():
            assert cost["epochs"] == 1 and len(cost["fit_s_by_seed"]) == 2
    assert one == two


def test_ctrl_c_with_jobs_2_stops_the_workers_and_leaves_whole_files(tmp_path):
    out = tmp_path / "out"
    log = tmp_path / "stdout.txt"
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(SCRIPT), "--quick", "--repeats", "2", "--jobs", "2"]
    cmd += ["--n-train", "20000", "--out-dir", str(out)]
    with open(log, "w") as stdout:
        proc = subprocess.Popen(
            cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 120
            while "trainings in 2 worker processes" not in log.read_text():
                assert proc.poll() is None, "the run ended before the workers started"
                assert time.monotonic() < deadline, "the workers did not start in time"
                time.sleep(0.2)
            time.sleep(3.0)  # the workers are importing Keras or training
            os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C hits the whole group
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "interrupted: stopped early; files already written are complete"
    )
    assert not [p.name for p in out.iterdir() if p.name.startswith(".tmp-")]
    assert not (out / "metrics.json").exists()
    check_files_whole(out)
    deadline = time.monotonic() + 30  # the workers are gone: nothing left in the group
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        pytest.fail("worker processes were still running 30 s after the run stopped")


def test_cost_of_each_model_in_the_record_and_the_table(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--quick", "--verbose", "0", "--repeats", "2", "--n-train", "200", "--n-eval", "50"]
    assert bc.main([*args, "--compare-merge-modes", "--n-predict", "2", "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "metrics.json").read_text())
    cost = record["cost"]
    names = {"bidirectional_lstm", "forward_lstm", "bidirectional_sum", "bidirectional_mul"}
    assert set(cost) == names | {"bidirectional_ave"}
    total = 0.0
    for entry in cost.values():
        assert entry["epochs"] == 1 and len(entry["fit_s_by_seed"]) == 2
        assert entry["fit_s"] == pytest.approx(np.mean(entry["fit_s_by_seed"]))
        total += sum(entry["fit_s_by_seed"])
    assert record["timings_s"]["fit"] == pytest.approx(total)  # the run's total fit time
    # the scores stay scores: no fit time beside them
    for rows in (record["metrics"], *record["per_seed"].values(), record["compare_merge_modes"]):
        assert not [key for row in rows.values() for key in row if "fit" in key]
    # the table: fit seconds and epochs for each trained model, "-" for the baseline
    lines = printed.splitlines()
    header = next(line for line in lines if line.startswith("model ") and "fit s" in line)
    assert header.split()[-3:] == ["fit", "s", "epochs"]
    majority = next(line for line in lines if line.startswith("majority_per_step"))
    assert majority.split()[-2:] == ["-", "-"]
    forward = next(line for line in lines if line.startswith("forward_lstm "))
    assert forward.split()[-2:] == [f"{cost['forward_lstm']['fit_s']:.1f}", "1"]
    concat = next(line for line in lines if line.startswith("concat "))
    assert concat.split()[-2:] == [f"{cost['bidirectional_lstm']['fit_s']:.1f}", "1"]


def test_memory_estimate_counts_the_generated_arrays_and_fits_copies():
    t, n_train, n_eval, n_predict = 12, 3_000, 500, 4
    data = bc.lesson_data(3, t, n_train, n_eval, n_predict)
    kept = sum(array.nbytes for pair in data.values() for array in pair)
    assert kept == 16 * t * (n_train + n_eval + n_predict)
    expected = kept + bc.FIT_BYTES_PER_STEP * t * n_train
    assert bc.data_memory(t, n_train, n_eval, n_predict) == expected
    # a set far larger than the training set: its labelling mask is the larger extra
    assert bc.data_memory(t, 10, 10**6, 1) == 16 * t * (10 + 10**6 + 1) + t * 10**6


def test_memory_guard_counts_the_workers_and_the_largest_cell(monkeypatch):
    seen = []
    monkeypatch.setattr(bc, "check_memory", lambda need, lower, n: seen.append((need, lower, n)))
    bc.parse_args(["--quick", "--repeats", "3", "--jobs", "4"])  # 6 trainings, 4 at once
    one = bc.data_memory(10, bc.QUICK["n_train"], bc.QUICK["n_eval"], 10)
    assert seen[-1] == (4 * one, "--n-train, --n-timesteps or --n-eval (or --jobs)", 4)
    bc.parse_args(["--quick"])  # one process at a time: --jobs is not named
    assert seen[-1][1] == "--n-train, --n-timesteps or --n-eval"
    calls = len(seen)
    bc.parse_args(["--demo", "--n-train", "100000000"])  # the demo trains nothing: no guard
    assert len(seen) == calls
    bc.parse_args(["--quick", "--jobs", "8"])  # 2 trainings: at most 2 processes
    assert seen[-1][0] == 2 * one and seen[-1][2] == 2
    bc.parse_args(["--experiment", "size", "--grid-n-train", "100,900", "--n-eval", "50"])
    cell = bc.data_memory(20, 900, 50, 10)  # the default grid's longest sequences
    assert seen[-1][0] == cell and "--grid-n-train" in seen[-1][1]


def test_memory_guard_stops_before_keras_is_imported(tmp_path):
    out = tmp_path / "out"
    code = (
        "import sys\n"
        "import bidirectional_cumsum as bc\n"
        "try:\n"
        f"    bc.main(['--n-train', '100000000', '--out-dir', {str(out)!r}])\n"
        "except SystemExit as e:\n"
        "    print(e.code, 'keras' in sys.modules, 'tensorflow' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=SCRIPT.parent, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.split() == ["2", "False", "False"], done.stderr
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the run would need about 41.8 GiB")
    assert "(data 41.0 GiB, Keras 0.8 GiB in 1 process)" in err[0]
    assert "GiB is available" in err[0] and "--n-train" in err[0]
    assert not out.exists()


def test_evaluation_uses_direct_calls_and_matches_keras_evaluate():
    """No compiled evaluate or predict loop per model: TensorFlow traced one for each
    new model and warned about the retracing (issue 13)."""
    import keras

    X, y = bc.get_sequences(300, 6, rng=5)
    keras.utils.set_random_seed(5)
    model = bc.bidirectional_lstm(6, 4)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(X, y, batch_size=30, epochs=1, verbose=0)
    expected = model.evaluate(X, y, verbose=0, return_dict=True)

    def no_loop(*args, **kwargs):
        raise AssertionError("evaluate_network must not compile a loop")

    model.evaluate = model.predict = no_loop
    scores = bc.evaluate_network(model, X, y)
    assert scores["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert scores["per_step_accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)
