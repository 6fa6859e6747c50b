"""--cluster: the trainings on a Dask cluster. local:N (a LocalCluster of N worker processes
on the same computer) gives --jobs 1's numbers; every fault gets one line and its exit
status."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ROOT, our_stderr_lines, price_rows
from test_package import assert_group_ends, group_alive, workers_of

distributed = pytest.importorskip("distributed")  # optional: requirements-dev.txt has it

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def run_script(script, *argv, env=ENV):
    return subprocess.run(
        [sys.executable, script, *map(str, argv)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )


def numbers(record):
    """metrics.json without what a cluster may change: seconds, arguments, versions, and
    the cluster itself."""
    if isinstance(record, dict):
        return {
            key: numbers(value)
            for key, value in record.items()
            if key not in ("args", "versions", "cluster", "cost", "timings_s")
            and not key.endswith("_s")
            and key != "seconds"
        }
    if isinstance(record, list):
        return [numbers(value) for value in record]
    return record


def three_stocks_csv(folder):
    rows = [row for k, t in enumerate(("AAA", "BBB", "CCC")) for row in price_rows(t, 160, seed=k)]
    path = folder / "all_stocks_5yr.csv"
    path.write_text("\n".join(["date,open,high,low,close,volume,Name", *rows]) + "\n")
    return path


@pytest.mark.parametrize(
    "script, argv, trainings",
    [
        ("stacked_lstm_damped_sine.py", ["--quick", "--repeats", "3"], 3),
        ("stacked_lstm_damped_sine.py", ["--quick", "--experiment", "length"], 4),
        ("stock_lstm_compare.py", ["--quick", "--protocol", "strict", "--folds", "2"], 3 * 2 * 4),
    ],
    ids=["repeats", "length-grid", "three-tickers-strict"],
)
def test_local_cluster_gives_the_numbers_of_jobs_1(tmp_path, script, argv, trainings):
    if script == "stock_lstm_compare.py":
        argv = [*argv, "--csv", three_stocks_csv(tmp_path), "--tickers", "AAA,BBB,CCC"]
    records = {}
    for how in (["--jobs", "1"], ["--cluster", "local:2"]):
        out = tmp_path / how[1]
        done = run_script(script, *argv, "--verbose", "0", *how, "--out-dir", out)
        assert done.returncode == 0, done.stderr[-3000:]
        records[how[0]] = json.loads((out / "metrics.json").read_text())
    assert our_stderr_lines(done.stderr) == []  # the workers' output stays off the terminal
    # every training (all three stocks' together) went to the cluster at once
    assert f"{trainings} trainings on the Dask cluster at local:2" in done.stdout
    cluster = records["--cluster"]["cluster"]
    assert cluster["address"] == "local:2" and cluster["workers"] == 2
    assert cluster["scheduler"].startswith("tcp://127.0.0.1:")
    assert records["--jobs"]["cluster"] is None
    assert numbers(records["--cluster"]) == numbers(records["--jobs"])


def test_local_cluster_listens_on_localhost_only():
    import psutil  # Dask's distributed installs it

    from lstm_lessons import parallel

    with parallel.cluster(SimpleNamespace(cluster="local:2", jobs=1)):
        record = parallel.cluster_record()
        processes = [psutil.Process(), *psutil.Process().children(recursive=True)]
        listening = [
            c.laddr
            for p in processes
            for c in p.net_connections("inet")
            if c.status == psutil.CONN_LISTEN
        ]
    assert record["workers"] == 2 and len(listening) >= 3  # the scheduler and two workers
    assert {address.ip for address in listening} == {"127.0.0.1"}
    assert parallel.cluster_record() is None  # closed


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_cluster_options_get_one_line_exit_2_and_nothing_written(tmp_path, capsys, monkeypatch):
    """Before any training: --jobs or --demo with --cluster, a bad local:N, an address
    Dask cannot reach (TLS not set up), no scheduler answering, a scheduler without
    workers, workers of two threads, Dask not installed. (In this process: a script's main
    raises SystemExit where its command would exit.)"""
    import stacked_lstm_damped_sine as script

    out = tmp_path / "out"
    quick = ["--quick", "--repeats", "2", "--out-dir", str(out)]
    nobody = f"tcp://127.0.0.1:{free_port()}"
    cases = [
        (["--cluster", "local:2", "--jobs", "2"], "give --jobs (worker processes) or --cluster"),
        (["--cluster", "local:2", "--demo"], "--demo trains nothing: drop --cluster"),
        (["--cluster", "local:0"], "argument --cluster: must be 1 or more, got 0"),
        (["--cluster", "tls://127.0.0.1:1"], "tls://127.0.0.1:1: Dask cannot connect to it (TLS"),
        (["--cluster", nobody], f"--cluster {nobody}: no Dask scheduler answered within 10"),
    ]

    def answer(argv):
        """The stderr lines of the script's main on argv, which must exit 2, writing nothing."""
        capsys.readouterr()
        with pytest.raises(SystemExit) as stop:
            script.main([*quick, *argv])
        lines = capsys.readouterr().err.strip().splitlines()
        assert stop.value.code == 2 and not out.exists(), (argv, lines)
        return lines

    here = dict(host="127.0.0.1", dashboard_address="127.0.0.1:0")
    with (
        distributed.LocalCluster(n_workers=0, **here) as none,
        distributed.LocalCluster(n_workers=1, threads_per_worker=2, **here) as two,
    ):
        cases.append((["--cluster", none.scheduler_address], "the Dask scheduler has no worker"))
        cases.append((["--cluster", two.scheduler_address], "start them with --nthreads 1"))
        for argv, wanted in cases:
            lines = answer(argv)
            assert len(lines) == 1 and lines[0].startswith("error: "), (argv, lines)
            assert wanted in lines[0], lines
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if Dask were not installed
    wanted = 'error: --cluster needs Dask\'s distributed scheduler: pip install "dask[distributed]"'
    assert answer(["--cluster", "local:2"]) == [wanted]


def test_other_versions_on_the_workers_get_one_warning_line(capsys):
    from lstm_lessons import parallel
    from lstm_lessons.outputs import library_versions

    here = library_versions()
    parallel._warn_on_other_versions({"tcp://a:1": here, "scheduler": here})
    assert capsys.readouterr().err == ""
    parallel._warn_on_other_versions({"tcp://a:1": dict(here, keras="3.0.0"), "b": here})
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and f"keras {here['keras']} here, 3.0.0 there" in err[0]


def start(*argv, env=ENV):
    """A sine run with a local cluster, in its own process group (a terminal's command)."""
    return subprocess.Popen(
        [sys.executable, "stacked_lstm_damped_sine.py", "--quick", "--verbose", "0", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
        start_new_session=True,
        # a shell that starts pytest in the background ignores SIGINT; restore the default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_trainings(proc):
    """Read the run's output up to its cluster's first training; its worker processes."""
    for line in proc.stdout:
        if "trainings on the Dask cluster" in line:
            break
    workers = workers_of(proc.pid, b"spawn_main")  # local:2's worker processes
    assert len(workers) == 2, "no local cluster workers found"
    time.sleep(3)  # into their first trainings
    return workers


@pytest.mark.parametrize("when", ["starting", "training"])
def test_ctrl_c_stops_the_cluster_run_exit_130_no_process_left(tmp_path, when):
    """Ctrl-C while the local cluster starts (it comes through when it has started), or
    while the cluster trains: exit 130, one line, nothing written, no process left."""
    argv = ["--repeats", "6", "--n-train", "20000", "--cluster", "local:2", "--out-dir", tmp_path]
    proc = start(*argv)
    try:
        if when == "starting":
            for line in proc.stdout:
                if line.startswith("starting a local Dask cluster"):
                    break
        else:
            wait_for_trainings(proc)
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err[-2000:]
        assert our_stderr_lines(err) == [
            "interrupted: stopped early; files already written are complete"
        ]
        assert not (tmp_path / "metrics.json").exists()
        assert_group_ends(proc.pid)  # the workers go too
    finally:
        if group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_training_that_fails_on_the_cluster_stops_the_run_with_one_line(tmp_path, capfd):
    from lstm_lessons import parallel
    from lstm_lessons.cli import positive_int

    trainings = [("seed 7: fine", positive_int, ("3",)), ("seed 8: broken", positive_int, ("x",))]
    with parallel.cluster(SimpleNamespace(cluster="local:1", jobs=1)):
        capfd.readouterr()
        with pytest.raises(SystemExit) as stop:
            parallel.run_trainings(trainings, SimpleNamespace(verbose=1), tmp_path)
        assert stop.value.code == 1
        assert parallel.run_trainings(trainings[:1] * 2, SimpleNamespace(verbose=0)) == [3, 3]
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'seed 8: broken' failed in a worker" in err[0], err
    traceback = Path(err[0].split("traceback: ")[1]).read_text()
    assert "ValueError" in traceback and "positive_int" in traceback


def test_a_training_whose_worker_dies_is_named_exit_1(tmp_path):
    """Dask retries a training whose worker died allowed-failures times; 0 here: the
    first death stops the run, with one line naming the training."""
    env = dict(ENV, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0")
    argv = ["--repeats", "4", "--n-train", "20000", "--cluster", "local:2", "--out-dir", tmp_path]
    proc = start(*argv, env=env)
    try:
        workers = wait_for_trainings(proc)
        os.kill(workers[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 1, err[-2000:]
        lines = our_stderr_lines(err)
        assert lines[-1].startswith("error: training 'stacked_lstm seed "), err[-2000:]
        assert "was lost: each of the 1 workers that ran it died" in lines[-1]
        assert "Traceback" not in err
        assert not (tmp_path / "metrics.json").exists()
    finally:
        if group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
