"""The package's shared helpers, which every script uses: Ctrl-C, the per-batch record of
fit_recorded, the summary over seeds, reuse of compiled models, --jobs, the thread counts,
atomic writes and the memory guard.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import our_stderr_lines

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------
# ctrl_c_callback: Ctrl-C during fit stops between batches, never inside TensorFlow
# ---------------------------------------------------------------------------


def tiny_model():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    return model


def test_ctrl_c_in_fit_stops_after_the_running_batch_and_puts_the_handler_back():
    import keras

    from lstm_lessons.training import ctrl_c_callback

    before = signal.getsignal(signal.SIGINT)
    started = []

    class PressCtrlCInBatch3(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            started.append(batch)
            if batch == 3:
                os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C now

    x, y = np.zeros((100, 4), "float32"), np.zeros((100, 1), "float32")
    with pytest.raises(KeyboardInterrupt):
        tiny_model().fit(
            x,
            y,
            batch_size=10,
            epochs=2,
            verbose=0,
            callbacks=[ctrl_c_callback(), PressCtrlCInBatch3()],
        )
    assert started == [0, 1, 2, 3]  # batch 3 ran to its end; batch 4 never began
    assert signal.getsignal(signal.SIGINT) is before


def test_a_finished_fit_puts_the_handler_back_and_a_second_ctrl_c_interrupts_at_once():
    from lstm_lessons.training import ctrl_c_callback

    before = signal.getsignal(signal.SIGINT)
    x, y = np.zeros((20, 4), "float32"), np.zeros((20, 1), "float32")
    tiny_model().fit(x, y, batch_size=10, epochs=1, verbose=0, callbacks=[ctrl_c_callback()])
    assert signal.getsignal(signal.SIGINT) is before

    callback = ctrl_c_callback()
    callback.on_train_begin()
    try:
        callback.press(signal.SIGINT, None)  # first Ctrl-C: only a flag
        assert callback.pressed
        with pytest.raises(KeyboardInterrupt):
            callback.press(signal.SIGINT, None)  # second Ctrl-C: at once
        assert signal.getsignal(signal.SIGINT) is before
    finally:
        callback.restore()


# ---------------------------------------------------------------------------
# fit_recorded: the per-batch record is right for any steps_per_execution
# ---------------------------------------------------------------------------

RECORDER_CHECK = """
import numpy as np, keras
from lstm_lessons.training import fit_recorded
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile(loss="mse", optimizer="sgd", steps_per_execution=5)
x, y = np.ones((230, 4), "float32"), np.ones((230, 1), "float32")
batches = fit_recorded(model, x, y, epochs=2, batch_size=10, verbose=0)["batches"]
print(batches["step"], batches["epoch_step"], len(batches["loss"]))
"""
# 23 batches per epoch in calls of 5: Keras reports batches 5, 10, 15, 20 and the short
# last call, clipped to 23; the second epoch goes on from there.
RECORDER_EXPECTED = (
    "[5, 10, 15, 20, 23, 28, 33, 38, 43, 46] [5, 10, 15, 20, 23, 5, 10, 15, 20, 23] 10"
)


def test_fit_recorded_records_the_last_batch_of_each_call_clipped_to_the_epoch():
    import keras

    from lstm_lessons.training import fit_recorded

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd", steps_per_execution=5)
    x, y = np.ones((230, 4), "float32"), np.ones((230, 1), "float32")  # a loss that falls
    result = fit_recorded(model, x, y, epochs=2, batch_size=10, verbose=0)
    batches = result["batches"]
    assert f"{batches['step']} {batches['epoch_step']} {len(batches['loss'])}" == RECORDER_EXPECTED
    # each call's own running mean, not one value seen ten times: the last of each epoch is
    # the epoch's loss that History records
    assert all(isinstance(v, float) for v in batches["loss"])
    assert [batches["loss"][4], batches["loss"][9]] == pytest.approx(result["history"]["loss"])
    assert len(result["history"]["loss"]) == 2 and result["fit_s"] > 0


@pytest.mark.parametrize("backend", ["jax"])
def test_fit_recorded_record_on_another_backend(backend):
    done = subprocess.run(
        [sys.executable, "-c", RECORDER_CHECK],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, KERAS_BACKEND=backend),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == RECORDER_EXPECTED


def test_mean_std_is_the_sample_std_and_absent_for_one_seed():
    from lstm_lessons.outputs import mean_std

    assert mean_std([0.5]) == {"mean": 0.5}
    assert mean_std([1.0, 2.0, 3.0]) == pytest.approx({"mean": 2.0, "std": 1.0})  # ddof=1


# ---------------------------------------------------------------------------
# fit_recorded gives fit its steps and batched validation: the same numbers, faster
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_val", [70, 64])  # a short last batch; whole batches only
def test_fit_recorded_gives_the_same_losses_as_a_plain_fit_with_validation(n_val):
    """The GRU with recurrent dropout draws random masks in validation too, so this also
    fails if the validation batches changed (a one-batch validation moved its losses), and
    with 64 rows if their static shape did (Keras's are (16, 7, 1) then, not (None, 7, 1))."""
    import keras

    from lstm_lessons.training import fit_recorded

    rng = np.random.default_rng(0)
    x, y = rng.random((203, 7, 1), "float32"), rng.random((203, 1), "float32")
    x_val, y_val = rng.random((n_val, 7, 1), "float32"), rng.random((n_val, 1))  # y: float64

    def model():
        keras.utils.set_random_seed(3)
        net = keras.Sequential([keras.Input((7, 1)), keras.layers.GRU(4, recurrent_dropout=0.3)])
        net.add(keras.layers.Dense(1))
        net.compile(loss="mae", optimizer="adam", steps_per_execution=4)
        return net

    plain = model().fit(x, y, batch_size=16, epochs=4, verbose=0, validation_data=(x_val, y_val))
    ours = fit_recorded(model(), x, y, 4, 16, verbose=0, validation_data=(x_val, y_val))
    assert ours["history"]["loss"] == plain.history["loss"]
    assert ours["history"]["val_loss"] == plain.history["val_loss"]


@pytest.mark.parametrize("n_val", [70, 64, 5])
def test_validation_batches_are_the_batches_keras_makes_from_the_arrays(n_val):
    """The same element_spec (dtypes, static shapes) and the same batches, in order, as
    Keras's own adapter makes from the arrays (float64 cast to float32, ints kept)."""
    import keras

    from lstm_lessons.training import validation_batches

    rng = np.random.default_rng(1)
    x, y = rng.random((n_val, 7, 1)), rng.integers(0, 2, (n_val, 1))  # float64 and int64
    data = validation_batches((x, y), 16)
    if keras.backend.backend() != "tensorflow":
        assert data[0] is x and data[1] is y  # the other backends take the arrays
        return
    from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

    keras_data = ArrayDataAdapter(x, y, batch_size=16, shuffle=False).get_tf_dataset()
    assert data.element_spec == keras_data.element_spec
    ours, theirs = list(data.as_numpy_iterator()), list(keras_data.as_numpy_iterator())
    assert [len(b[0]) for b in ours] == [len(b[0]) for b in theirs]
    for (x_ours, y_ours), (x_theirs, y_theirs) in zip(ours, theirs):
        np.testing.assert_array_equal(x_ours, x_theirs)
        np.testing.assert_array_equal(y_ours, y_theirs)


# ---------------------------------------------------------------------------
# reuse_compiled: a later training of the same model traces nothing again
# ---------------------------------------------------------------------------


def seeded_model(seed, units=3, loss="mse"):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(units),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(1),
        ],
        name="tiny",
    )
    model.compile(loss=loss, optimizer="adam")
    return model


def test_reuse_compiled_trains_an_earlier_model_exactly_as_the_new_one_would():
    from lstm_lessons import training as s

    s._compiled_models.clear()
    x = np.random.default_rng(0).random((64, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    first = s.reuse_compiled(seeded_model(1))
    first.fit(x, y, batch_size=8, epochs=2, verbose=0)
    traced = first.train_function

    new = seeded_model(2)
    start = [v.numpy().copy() for v in new.variables]  # weights and the dropout seed
    again = s.reuse_compiled(new)
    assert again is first
    for variable, value in zip(again.variables, start):
        np.testing.assert_array_equal(variable.numpy(), value)
    assert int(again.optimizer.iterations.numpy()) == 0
    again.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert again.train_function is traced  # not traced again

    plain = seeded_model(2)  # the same seed, never reused
    plain.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for a, b in zip(again.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_reuse_compiled_lends_nothing_on_jax_and_torch(monkeypatch, backend):
    import keras

    from lstm_lessons import training as s

    s._compiled_models.clear()
    s.reuse_compiled(seeded_model(1))  # on TensorFlow: kept, to lend to a model like it
    monkeypatch.setattr(keras.backend, "backend", lambda: backend)
    second = seeded_model(2)
    assert s.reuse_compiled(second) is second  # a fresh model trains as itself


def test_reuse_compiled_needs_the_same_model_and_copy_model_keeps_one_apart():
    from lstm_lessons import training as s

    s._compiled_models.clear()
    first = s.reuse_compiled(seeded_model(1))
    assert s.reuse_compiled(seeded_model(1, units=4)) is not first
    assert s.reuse_compiled(seeded_model(1, loss="mae")) is not first
    renamed = seeded_model(1)
    renamed.name = "other"  # a model of another name is another model (its saved file)
    assert s.reuse_compiled(renamed) is not first
    kept = s.copy_model(first)  # what a training hands back to be saved
    weights = [w.copy() for w in kept.get_weights()]
    assert s.reuse_compiled(seeded_model(2)) is first  # first now holds seed 2's state
    for a, b in zip(kept.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    assert kept.get_compile_config() == first.get_compile_config()


# ---------------------------------------------------------------------------
# run_trainings (--jobs), same_thread_counts and the memory guard
# ---------------------------------------------------------------------------


def options(jobs=1, verbose=1):
    """The options run_trainings reads, as a script's parser gives them."""
    return SimpleNamespace(jobs=jobs, verbose=verbose)


def test_run_trainings_gives_the_same_results_in_order_with_workers(capsys):
    from lstm_lessons.outputs import mean_std
    from lstm_lessons.parallel import run_trainings

    trainings = [(f"t{k}", mean_std, ([k, 2 * k, 4.0],)) for k in range(5)]
    here = run_trainings(trainings, options(jobs=1))
    assert "trainings" in capsys.readouterr().out  # the progress line
    assert run_trainings(trainings, options(jobs=2)) == here
    assert here[3] == mean_std([3, 6, 4.0])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "5 trainings in 2 worker processes (their Keras output is off)"
    assert out[-1].startswith("trainings ") and " 5/5 " in out[-1]  # its last state
    assert run_trainings(trainings, options(jobs=2, verbose=0)) == here
    assert "5/5" not in capsys.readouterr().out  # --verbose 0: no progress line


def test_trainings_among_many_fit_quietly_here_unless_verbose_2(capsys):
    from lstm_lessons.parallel import run_trainings
    from lstm_lessons.training import fit_verbose

    trainings = [(f"t{k}", fit_verbose, (v,)) for k, v in enumerate((1, 2))]
    assert run_trainings(trainings, options(verbose=1)) == [0, 0]  # the line stands for bars
    assert run_trainings(trainings, options(verbose=2)) == [1, 2]  # epoch lines are kept
    assert run_trainings(trainings[:1], options(verbose=1)) == [1]  # one training: as asked
    assert run_trainings(trainings, options(jobs=2, verbose=2)) == [0, 0]  # in workers: off


def test_a_training_that_fails_in_a_worker_stops_the_run_with_one_line_and_exit_1(tmp_path, capsys):
    from lstm_lessons.cli import positive_int
    from lstm_lessons.parallel import run_trainings

    trainings = [("seed 7: fine", positive_int, ("3",)), ("seed 8: broken", positive_int, ("x",))]
    with pytest.raises(SystemExit) as stop:
        run_trainings(trainings, options(jobs=2), log_dir=tmp_path)
    assert stop.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'seed 8: broken' failed in a worker" in err[0]
    path = Path(err[0].split("traceback: ")[1])
    assert path.parent == tmp_path and path.name == "failed-seed-8--broken.txt"
    assert "ArgumentTypeError: expected a whole number, got 'x'" in path.read_text()


THREADS_CHECK = """
import os
os.environ["TF_NUM_INTEROP_THREADS"] = "3"  # a value the user set wins
from lstm_lessons.training import same_thread_counts
from threadpoolctl import threadpool_info
same_thread_counts()
keys = ["TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"]
keys.append("OPENBLAS_NUM_THREADS")
print([os.environ[k] for k in keys], "intra_op_parallelism_threads=1" in os.environ["XLA_FLAGS"])
print(sorted({pool["num_threads"] for pool in threadpool_info()}))
"""


def test_same_thread_counts_sets_every_backend_before_import_and_keeps_the_users_values():
    env = {k: v for k, v in os.environ.items() if not k.endswith("_THREADS") and k != "XLA_FLAGS"}
    done = subprocess.run(
        [sys.executable, "-c", THREADS_CHECK], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["['1', '3', '1', '1'] True", "[1]"]


def test_check_memory_stops_with_one_line_when_the_data_would_not_fit(monkeypatch, capsys):
    from lstm_lessons import parallel as script

    monkeypatch.setattr(script, "available_memory", lambda: 2 * 2**30)
    script.check_memory(2**30, "--n-train")  # fits: nothing happens
    with pytest.raises(SystemExit) as stop:
        script.check_memory(int(40.2 * 2**30), "--n-train")
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: the run would need about 41.0 GiB of memory (data 40.2 GiB, Keras 0.8 GiB in "
        "1 process), and 2.0 GiB is available; lower --n-train"
    ]
    # each process imports Keras: two workers and 1 GiB of data do not fit in 2 GiB
    with pytest.raises(SystemExit):
        script.check_memory(2**30, "--n-train (or --jobs)", processes=2)
    assert "Keras 0.8 GiB in 2 processes" in capsys.readouterr().err
    monkeypatch.setattr(script, "available_memory", lambda: None)  # unknown: no guard
    script.check_memory(10**15, "--n-train")


def test_available_memory_reads_this_machine():
    from lstm_lessons.parallel import available_memory

    found = available_memory()
    if not Path("/proc/meminfo").exists():
        assert found is None
    else:
        assert 0 < found <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# ---------------------------------------------------------------------------
# The mechanisms every script shares, tested once here with real processes
# ---------------------------------------------------------------------------


def test_a_write_that_fails_halfway_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    from lstm_lessons.outputs import write_atomically

    path = tmp_path / "metrics.json"
    path.write_text("old, whole")

    def half_then_fail(tmp):
        Path(tmp).write_text("new, but only ha")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, half_then_fail)
    assert path.read_text() == "old, whole"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def seeded_training(seed):
    """A small seeded Keras training, as every script's trainings are: its final weights."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((6, 1)), keras.layers.LSTM(4), keras.layers.Dense(1)])
    model.compile(loss="mae", optimizer="adam")
    x = np.random.default_rng(seed).random((64, 6, 1), dtype="float32")
    model.fit(x, x[:, -1], epochs=2, batch_size=8, verbose=0)
    return [w.tolist() for w in model.get_weights()]


def test_trainings_in_worker_processes_give_the_numbers_of_one_process():
    from lstm_lessons.parallel import run_trainings
    from lstm_lessons.training import same_thread_counts

    same_thread_counts()  # as run_main does: the workers inherit the same counts
    trainings = [(f"seed {s}", seeded_training, (s,)) for s in (1, 2, 3)]
    serial = run_trainings(trainings, options(jobs=1))
    assert run_trainings(trainings, options(jobs=2)) == serial  # exactly, weight for weight
    assert serial[0] != serial[1]


# A stand-in for a script: run_main around a run that writes a file, then trains for long
# (or, with "jobs", runs slow trainings in two workers).
CTRL_C_SCRIPT = """
import sys, time
import numpy as np, keras
from lstm_lessons.cli import run_main
from lstm_lessons.outputs import save_json
from lstm_lessons.parallel import run_trainings
from lstm_lessons.training import ctrl_c_callback

def slow(k):
    time.sleep(0.5 if k == 0 else 60)
    return k

def run(args):
    save_json({"done": "before fit"}, args.out)
    if args.jobs:
        run_trainings([(f"t{k}", slow, (k,)) for k in range(4)], Args)
        return 0
    model = keras.Sequential([keras.Input((20, 1)), keras.layers.LSTM(32), keras.layers.Dense(1)])
    model.compile(loss="mae", optimizer="adam")
    x = np.zeros((200_000, 20, 1), "float32")
    print("fitting", flush=True)
    model.fit(x, x[:, 0], epochs=5, verbose=0, callbacks=[ctrl_c_callback()])
    return 0

class Args:
    show, out, cluster, verbose = False, sys.argv[1], None, 1
    jobs = 2 if sys.argv[2:] == ["jobs"] else 0
sys.exit(run_main(run, Args))
"""


def assert_group_ends(pgid, seconds=30):
    """Wait until no process of the group is left; fail if one still runs after `seconds`."""
    import time

    for _ in range(int(seconds / 0.5)):
        if not group_alive(pgid):
            return
        time.sleep(0.5)
    pytest.fail("processes still running after the run stopped")


# Ctrl-C that lands in a garbage-collector callback (JAX has one; Keras imports JAX where
# it is installed): Python drops the KeyboardInterrupt there and prints its traceback.
GC_CALLBACK_SCRIPT = """
import gc, sys, time
from lstm_lessons.cli import run_main

def callback(phase, info):
    if not gc.callbacks.remove(callback):  # once, as a Ctrl-C landing in the callback
        raise KeyboardInterrupt

def run(args):
    gc.callbacks.append(callback)
    gc.collect()
    time.sleep(60)
    return 0

class Args:
    show, cluster, jobs = False, None, 1
sys.exit(run_main(run, Args))
"""


def test_ctrl_c_in_a_garbage_collector_callback_still_stops_the_run():
    done = subprocess.run(
        [sys.executable, "-c", GC_CALLBACK_SCRIPT],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=50,  # without its Ctrl-C again, the run would sleep on
        # a shell that starts pytest in the background ignores SIGINT; restore the default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert done.returncode == 130, done.stderr[-2000:]
    assert our_stderr_lines(done.stderr) == [
        "interrupted: stopped early; files already written are complete"
    ]


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("where", ["fit", "jobs"])
def test_ctrl_c_exits_130_with_one_line_whole_files_and_no_process_left(tmp_path, where):
    import json
    import time

    out = tmp_path / "metrics.json"
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY")}
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_SCRIPT, str(out)] + (["jobs"] if where == "jobs" else []),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(env, TF_CPP_MIN_LOG_LEVEL="2"),
        start_new_session=True,  # its own process group, as a terminal gives a command
        # a shell that starts pytest in the background ignores SIGINT; restore the default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        wanted = "fitting" if where == "fit" else "4 trainings in 2 worker processes"
        for line in proc.stdout:
            if wanted in line:
                break
        time.sleep(2)
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err[-2000:]
        assert err.strip().splitlines()[-1].startswith("interrupted:")
        assert "Traceback" not in err
        assert json.loads(out.read_text()) == {"done": "before fit"}
        assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
        assert_group_ends(proc.pid)  # the workers go too
    finally:
        if group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_worker_that_dies_stops_a_scripts_main_with_one_line_and_exit_1(tmp_path):
    """Kill a --jobs worker of a real script run: the run ends with exit 1 and one line."""
    import time

    proc = subprocess.Popen(
        [sys.executable, "stacked_lstm_damped_sine.py", "--quick", "--verbose", "0"]
        + ["--repeats", "4", "--n-train", "20000", "--jobs", "2", "--out-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        start_new_session=True,
    )
    try:
        for line in proc.stdout:
            if "worker processes" in line:
                break
        time.sleep(1)
        for _ in range(120):  # joblib's workers: python processes of the group, not the run
            if workers := workers_of(proc.pid, b"popen_loky"):
                break
            time.sleep(0.5)
        assert workers, "no worker process found"
        time.sleep(3)  # into its first training
        os.kill(workers[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 1, err[-2000:]
        lines = err.strip().splitlines()
        assert lines[-1].startswith("error: a worker process died"), err[-2000:]
        assert "Traceback" not in err
        assert not (tmp_path / "metrics.json").exists()
    finally:
        if group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)


def workers_of(pgid, marker):
    """The processes of group `pgid` but its leader whose command line holds `marker`."""
    return [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit()
        and int(p.name) != pgid
        and _process_group(p) == pgid
        and marker in _cmdline(p)
    ]


def _process_group(proc_dir):
    try:
        return int((proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(proc_dir):
    try:
        return (proc_dir / "cmdline").read_bytes()
    except OSError:
        return b""
