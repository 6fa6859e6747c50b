"""Independent trainings: here, in --jobs worker processes (joblib), or on a Dask cluster
(--cluster), under one progress line; and the memory guard."""

import argparse
import contextlib
import logging
import os
import pickle
import random
import signal
import sys
import traceback
import warnings
from pathlib import Path

from joblib import Parallel, delayed
from joblib.externals.loky.process_executor import TerminatedWorkerError
from rich import progress

# modules, not names: cli and outputs import this module too
from . import cli, outputs, training

# the run's Dask cluster while run_main holds it open (--cluster): its client and record
_cluster = {}


def run_trainings(trainings, args, log_dir=None):
    """Run independent trainings: here, in args.jobs worker processes, or on the cluster.

    trainings: a list of (name, function, arguments). Each function(*arguments) seeds
    itself and returns plain results (numbers, arrays, dicts; a Keras model pickles too),
    so neither the order nor the process changes them. Returns the results, in order.
    One training runs here as asked; more show one progress line (none under --verbose 0)
    and train with Keras's bars off (--verbose 2's epoch lines stay, here). Away from this
    process a training prints nothing here, ignores Ctrl-C (this process stops the run,
    exit 130), and an error stops the run with one line and exit status 1, its traceback
    saved in log_dir: a crash there is a bug, not bad input.
    """
    if len(trainings) == 1:
        _, function, arguments = trainings[0]
        return [function(*arguments)]
    if _cluster:
        done = _on_cluster(trainings)
    elif args.jobs > 1:
        done = _in_processes(trainings, min(args.jobs, len(trainings)))
    else:
        done = _here(trainings, quiet=args.verbose != 2)
    results, failed = [None] * len(trainings), None
    columns = [progress.TextColumn("trainings"), progress.BarColumn()]
    columns += [progress.MofNCompleteColumn(), progress.TimeElapsedColumn()]
    columns += [progress.TextColumn("left"), progress.TimeRemainingColumn()]
    # closing: the workers' trainings are stopped or cancelled here, on error or Ctrl-C too
    with contextlib.closing(done), progress.Progress(*columns, disable=args.verbose == 0) as line:
        task = line.add_task("trainings", total=len(trainings))
        for index, result, error in done:
            if error is not None:
                failed = (trainings[index][0], error)
                break
            results[index] = result
            line.advance(task)
    if failed:
        _stop_at(*failed, log_dir)
    return results


def _here(trainings, quiet):
    """The trainings one after another in this process: (index, result, None) each."""
    for index, (_, function, arguments) in enumerate(trainings):
        with training.quiet_fits() if quiet else contextlib.nullcontext():
            result = function(*arguments)
        yield index, result, None


def _away(index, function, arguments):
    """One training away from this process, in a Dask worker's thread or a joblib worker:
    Keras's fit output off, no signal or file touched. Returns (index, result, None), or
    (index, None, the traceback's text) if it raised."""
    try:
        with training.quiet_fits():
            return index, function(*arguments), None
    except Exception:
        return index, None, traceback.format_exc()


def _stop_at(name, error, log_dir):
    """A training raised away from here: save its traceback; one line, exit status 1."""
    slug = "".join(c if c.isalnum() else "-" for c in name).strip("-")
    path = Path(log_dir or ".") / f"failed-{slug}.txt"
    outputs.write_atomically(path, lambda tmp: Path(tmp).write_text(error))
    print(f"error: training {name!r} failed in a worker; traceback: {path}", file=sys.stderr)
    raise SystemExit(1)


def _in_processes(trainings, jobs):
    """--jobs: the trainings in joblib's worker processes, yielding each as it finishes."""
    # A worker that dies mid-training can leave a lock behind, and loky's resource tracker
    # (a process it starts, which inherits this) then warns about it at exit, after our one
    # line. A value you set wins.
    os.environ.setdefault("PYTHONWARNINGS", "ignore:resource_tracker:UserWarning")
    print(f"{len(trainings)} trainings in {jobs} worker processes (their Keras output is off)")
    calls = [delayed(_in_process)(i, f, a) for i, (_, f, a) in enumerate(trainings)]
    outcomes, finished = Parallel(n_jobs=jobs, return_as="generator_unordered")(calls), 0
    try:
        for outcome in outcomes:
            finished += 1
            yield outcome
    except TerminatedWorkerError:
        print(
            f"error: a worker process died with {finished} of {len(trainings)} trainings "
            "done (out of memory?); run with --jobs 1 to see why",
            file=sys.stderr,
        )
        raise SystemExit(1)
    finally:
        with warnings.catch_warnings():  # joblib's note on the trainings it stops
            warnings.simplefilter("ignore")
            outcomes.close()


def _in_process(index, function, arguments):
    """One training in a joblib worker process."""
    _ignore_the_terminal()
    return _away(index, function, arguments)


def _ignore_the_terminal():
    """From now on this process ignores Ctrl-C (the parent process stops the run), and its
    output goes nowhere."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _output_off()


def _output_off():
    """Send files 1 and 2 to nowhere (so TensorFlow's C++ start-up lines too)."""
    sys.stdout.flush()
    sys.stderr.flush()
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    os.close(quiet)


@contextlib.contextmanager
def _new_processes_off_the_terminal():
    """Processes started within it (and by threads started within it) never get Ctrl-C (it
    stays blocked for them) and have no output. This one gets both back after, and a Ctrl-C
    pressed meanwhile then."""
    saved = [os.dup(1), os.dup(2)]
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    _output_off()
    try:
        yield
    finally:
        for fd, copy in enumerate(saved, start=1):
            os.dup2(copy, fd)
            os.close(copy)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


# --- --cluster: Dask's distributed scheduler -------------------------------------------

CLUSTER_HELP = (
    "run the trainings on a Dask cluster instead: a scheduler's address (tcp://host:8786, or "
    "tls:// with Dask's TLS settings), or local:N for N one-thread worker processes here; "
    'needs pip install "dask[distributed]"'
)


def cluster_address(text):
    """argparse type for --cluster: local:N (N >= 1), or a scheduler's address."""
    if text.startswith("local:"):
        cli.positive_int(text[len("local:") :])  # raises argparse's error for a bad N
    elif not text.strip() or " " in text:
        expected = "local:N or a Dask scheduler's address such as tcp://host:8786"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return text


@contextlib.contextmanager
def cluster(args):
    """With --cluster: the run's Dask client, connected and checked before any work, and
    closed at the end (Ctrl-C too: the trainings not started are cancelled; on local:N the
    workers stop). Bad input, exit 2: --jobs with it, no Dask installed, no scheduler
    answering, or none of its workers, within 10 seconds each."""
    if not args.cluster:
        yield
        return
    if args.jobs > 1:
        cli.fail("give --jobs (worker processes) or --cluster (a Dask cluster), not both")
    if getattr(args, "demo", False):
        cli.fail("--demo trains nothing: drop --cluster")
    try:  # only here: Dask is optional
        import distributed  # noqa: F401
    except ImportError:
        cli.fail('--cluster needs Dask\'s distributed scheduler: pip install "dask[distributed]"')
    logging.getLogger("distributed").setLevel(logging.CRITICAL)  # our one line says it
    with contextlib.ExitStack() as stack:
        client = _connect(args.cluster, stack)
        _check_workers(client, args.cluster)
        workers = len(client.scheduler_info()["workers"])
        record = dict(address=args.cluster, scheduler=client.scheduler.address, workers=workers)
        _cluster.update(client=client, record=record)
        try:
            yield
        finally:
            _cluster.clear()


def _connect(address, stack):
    """A client of the scheduler at `address`, or of a new local cluster (local:N), which
    listens on this computer only (its status pages too, on a free port)."""
    from distributed import Client, LocalCluster

    where = address
    if address.startswith("local:"):
        n = int(address[len("local:") :])
        print(f"starting a local Dask cluster of {n} worker processes")
        with _new_processes_off_the_terminal():  # its workers share this terminal
            local = dict(threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0")
            where = stack.enter_context(LocalCluster(n, silence_logs=logging.CRITICAL, **local))
    try:
        client = stack.enter_context(Client(where, timeout="10s"))
    except OSError:  # asyncio's and Dask's timeouts are OSErrors
        cli.fail(f"--cluster {address}: no Dask scheduler answered within 10 seconds")
    except (TypeError, ValueError) as error:  # an unknown protocol, or TLS not set up
        cli.fail(f"--cluster {address}: Dask cannot connect to it ({error})")
    try:
        client.wait_for_workers(1, timeout=10)
    except TimeoutError:
        cli.fail(f"--cluster {address}: the Dask scheduler has no worker (waited 10 seconds)")
    return client


def _check_workers(client, address):
    """Stop (exit 2) unless every worker runs one thread and can import this package; set
    each worker up; warn if the cluster's libraries differ from this process's."""
    from distributed import WorkerPlugin

    threads = {w["nthreads"] for w in client.scheduler_info()["workers"].values()}
    if threads != {1}:
        cli.fail(
            f"--cluster {address}: its workers run {max(threads)} threads each; start them "
            "with --nthreads 1 (Keras's seeds and compiled models are per process)"
        )

    class Setup(WorkerPlugin):
        """Each worker's set-up, in its main thread, before any training (a restarted or a
        new worker's too); registered again for each run, under the same name."""

        name = "lstm-lessons"

        def setup(self, worker):
            import dask.sizeof

            # Keras draws its weights' seeds from Python's global random generator, and
            # Dask's sizeof samples from it too, at every heartbeat of the worker's event
            # loop: without a generator of its own, a seeded training would not give the
            # same numbers twice.
            dask.sizeof.random = random.Random()
            training._compiled_models.clear()  # this run's models only
            if address.startswith("local:"):  # it shares this terminal
                _ignore_the_terminal()

    try:  # the scheduler and each worker need this checkout on PYTHONPATH, and our requirements
        versions = client.run(outputs.library_versions)  # {worker: versions}
        versions["scheduler"] = client.run_on_scheduler(outputs.library_versions)
        client.register_plugin(Setup())
    except Exception as error:
        need = "the scheduler and its workers need this checkout on PYTHONPATH"
        cli.fail(f"--cluster {address}: {need} ({type(error).__name__}: {error})")
    _warn_on_other_versions(versions)


def _pickled(index, function, arguments):
    """_away on a Dask worker, with one thread per backend as run_main sets (a remote worker
    did not inherit the settings; they count before its first operation). Its outcome
    pickled as a --jobs worker's is: Dask's own serializer for Keras models is Keras 2's."""
    training.same_thread_counts()
    outcome = _away(index, function, arguments)
    try:
        return pickle.dumps(outcome)
    except Exception:
        return pickle.dumps((index, None, traceback.format_exc()))


def cluster_record():
    """metrics.json's "cluster": the Dask cluster that ran the trainings, or None."""
    return _cluster.get("record")


def _warn_on_other_versions(on_workers):
    """One line on stderr if a worker's libraries or Keras backend differ from this
    process's: Dask checks its own, not Keras's or TensorFlow's, and they move the numbers."""
    here, differ = outputs.library_versions(), {}
    for versions in on_workers.values():
        for key in sorted(here.keys() | versions.keys()):
            if versions.get(key) != here.get(key):
                differ.setdefault(key, set()).add(str(versions.get(key)))
    if differ:
        seen = [f"{k} {here.get(k)} here, {', '.join(sorted(v))} there" for k, v in differ.items()]
        print(
            f"warning: the workers' versions differ, so may their numbers: {'; '.join(seen)}",
            file=sys.stderr,
        )


def _on_cluster(trainings):
    """The trainings on the Dask cluster, all submitted at once, each yielded as it ends.
    A training whose workers all died (Dask's allowed-failures) stops the run, exit 1;
    an interrupted run cancels its tasks."""
    from distributed import KilledWorker, as_completed  # with --cluster only

    client, record = _cluster["client"], _cluster["record"]
    print(f"{len(trainings)} trainings on the Dask cluster at {record['address']}")
    pending, name = {}, None  # each training's name and future, until its outcome is read
    for index, (_, function, arguments) in enumerate(trainings):
        future = client.submit(_pickled, index, function, arguments, pure=False)
        pending[future.key] = (trainings[index][0], future)
    try:
        for future in as_completed([future for _, future in pending.values()]):
            name, _ = pending.pop(future.key)
            yield pickle.loads(future.result())
    except KilledWorker as lost:
        print(
            f"error: training {name!r} was lost: each of the {lost.allowed_failures + 1} "
            "workers that ran it died (out of memory?); run with --jobs 1 to see why",
            file=sys.stderr,
        )
        raise SystemExit(1)
    except Exception as error:  # Dask's own, e.g. the scheduler gone
        what = " ".join(str(error).split())  # one line
        print(f"error: the Dask cluster failed at training {name!r} ({what})", file=sys.stderr)
        raise SystemExit(1)
    finally:
        client.cancel([future for _, future in pending.values()])


def available_memory():
    """Bytes of memory free for this run (MemAvailable, lowered by a cgroup limit), or None."""
    try:
        text = Path("/proc/meminfo").read_text()
        available = int(text.split("MemAvailable:")[1].split()[0]) * 1024
    except (OSError, IndexError, ValueError):
        return None  # not Linux, or unreadable: no guard
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            room = int(Path(limit).read_text()) - int(Path(usage).read_text())
        except (OSError, ValueError):  # no such limit ("max" in v2)
            continue
        available = min(available, room)
    return available


# What one process that imports Keras and trains takes beyond its data: 0.82 to 0.86 GiB
# of private memory, measured in a --jobs worker of lesson 7 on TensorFlow (2026-12-01),
# rounded down: the guard stops only runs that surely do not fit.
KERAS_PROCESS_BYTES = 800 * 2**20


def check_memory(data_bytes, lower, processes=1):
    """Bad input: stop (exit 2, nothing written) if the run will not fit in free memory.

    data_bytes: the estimated peak of the run's data, every process's together; lower: the
    option(s) to lower; processes: how many import Keras and train (each --jobs worker
    imports it again), at KERAS_PROCESS_BYTES each. A --cluster run counts this process
    only: its workers' memory is theirs.
    """
    available = available_memory()
    need = data_bytes + processes * KERAS_PROCESS_BYTES
    if available is not None and need > available:
        each = f"{KERAS_PROCESS_BYTES / 2**30:.1f} GiB"
        keras = f"Keras {each} in {processes} process" + ("es" if processes > 1 else "")
        cli.fail(
            f"the run would need about {need / 2**30:.1f} GiB of memory (data "
            f"{data_bytes / 2**30:.1f} GiB, {keras}), and {available / 2**30:.1f} GiB "
            f"is available; lower {lower}"
        )
