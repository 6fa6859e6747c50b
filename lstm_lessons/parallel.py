"""--jobs: independent trainings in joblib's worker processes, and the memory guard."""

import contextlib
import os
import signal
import sys
import traceback
from pathlib import Path

from joblib import Parallel, delayed
from joblib.externals.loky.process_executor import TerminatedWorkerError

from .cli import fail
from .outputs import write_atomically


class TrainingFailed(Exception):
    """A training raised an error in a worker process; its traceback is in a file."""


def run_trainings(trainings, jobs=1, log_dir=None):
    """Run independent trainings one after another (jobs=1), or in `jobs` worker processes.

    trainings: a list of (name, function, arguments). Each function(*arguments) seeds
    itself and returns plain results (numbers, arrays, dicts; a Keras model pickles too),
    so the order and the process do not change them. Returns the results, in order.
    In the workers (joblib's processes) Keras prints nothing, Ctrl-C is ignored (this
    process stops them and exits 130), and an error writes its traceback to log_dir and
    stops the run with one line and exit status 1: a crash there is a bug, not bad input.
    """
    if jobs == 1 or len(trainings) == 1:
        return [function(*arguments) for _, function, arguments in trainings]
    jobs = min(jobs, len(trainings))
    # A worker that dies mid-training can leave a lock behind, and loky's resource tracker
    # (a process it starts, which inherits this) then warns about it at exit, after our one
    # line. A value you set wins.
    os.environ.setdefault("PYTHONWARNINGS", "ignore:resource_tracker:UserWarning")
    print(f"{len(trainings)} trainings in {jobs} worker processes (their Keras output is off)")
    log_dir = Path(log_dir or ".")
    calls = [delayed(_in_worker)(name, f, a, log_dir) for name, f, a in trainings]
    results = []
    try:
        for result in Parallel(n_jobs=jobs, return_as="generator")(calls):
            results.append(result)
            print(f"  [{len(results)}/{len(trainings)}] done: {trainings[len(results) - 1][0]}")
    except TrainingFailed as failed:
        name, path = failed.args
        print(f"error: training {name!r} failed in a worker; traceback: {path}", file=sys.stderr)
        raise SystemExit(1)
    except TerminatedWorkerError:
        print(
            f"error: a worker process died during training {len(results) + 1} of "
            f"{len(trainings)} (out of memory?); run with --jobs 1 to see why",
            file=sys.stderr,
        )
        raise SystemExit(1)
    return results


def _in_worker(name, function, arguments, log_dir):
    """One training in a worker: Ctrl-C ignored, its output (files 1 and 2) off, an error's
    traceback saved."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent process handles Ctrl-C
    saved = [os.dup(1), os.dup(2)]  # TensorFlow's C++ start-up lines go to file 2 directly
    try:
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            os.dup2(quiet.fileno(), 1)
            os.dup2(quiet.fileno(), 2)
            return function(*arguments)
    except Exception:
        slug = "".join(c if c.isalnum() else "-" for c in name).strip("-")
        path = log_dir / f"failed-{slug}.txt"
        write_atomically(path, lambda tmp: Path(tmp).write_text(traceback.format_exc()))
        raise TrainingFailed(name, str(path))
    finally:
        for fd, copy in enumerate(saved, start=1):
            os.dup2(copy, fd)
            os.close(copy)


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
    imports it again), at KERAS_PROCESS_BYTES each.
    """
    available = available_memory()
    need = data_bytes + processes * KERAS_PROCESS_BYTES
    if available is not None and need > available:
        each = f"{KERAS_PROCESS_BYTES / 2**30:.1f} GiB"
        keras = f"Keras {each} in {processes} process" + ("es" if processes > 1 else "")
        fail(
            f"the run would need about {need / 2**30:.1f} GiB of memory (data "
            f"{data_bytes / 2**30:.1f} GiB, {keras}), and {available / 2**30:.1f} GiB "
            f"is available; lower {lower}"
        )
