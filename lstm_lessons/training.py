"""Training helpers beyond the lesson: the cost record, reuse of compiled models, a faster
fit with a per-batch loss record and a clean Ctrl-C, and the same thread counts everywhere."""

import contextlib
import json
import os
import pickle
import signal
import sys
import threading
import time

import keras
import numpy as np
from threadpoolctl import threadpool_limits

# reuse_compiled's models, by configuration: this process's, emptied for each run
_compiled_models = {}
# quiet_fits's flag, one per thread (a Dask worker runs its tasks in threads)
_this_thread = threading.local()


@contextlib.contextmanager
def quiet_fits():
    """Within it, fit_verbose gives 0 on this thread: a training among many shows no Keras
    bar (one progress line stands for them all), and a worker's log gets none."""
    _this_thread.quiet = True
    try:
        yield
    finally:
        _this_thread.quiet = False


def fit_verbose(verbose):
    """The verbose to give model.fit: the run's --verbose, or 0 within quiet_fits."""
    return 0 if getattr(_this_thread, "quiet", False) else verbose


def training_cost(fit_s, epochs, epochs_kept=None):
    """One model's cost, for metrics.json's "cost" and the results table's fit s, epochs.

    fit_s: for each seed, the fit seconds of its trainings (usually one; the stock
    script's strict protocol: one per fold and stock). epochs: the epochs each training
    ran (one number when they all ran as many, else their mean); epochs_kept: the best
    epochs kept, where a training keeps its best epoch.
    """
    cost = {"fit_s": float(np.mean([t for times in fit_s for t in times]))}  # per training
    if len(fit_s) > 1:
        cost["fit_s_by_seed"] = [float(np.mean(times)) for times in fit_s]
    cost["epochs"] = int(epochs[0]) if len(set(epochs)) == 1 else float(np.mean(epochs))
    if epochs_kept is not None:
        cost["epochs_kept"] = float(np.mean(epochs_kept))
    return cost


def predict_directly(model, X, chunk=10_000):
    """The model's outputs for X from direct calls: model.predict's to float rounding,
    without its compiled loop, which TensorFlow traces again for each new model (and warns
    when many do)."""
    parts = [model(X[i : i + chunk], training=False) for i in range(0, len(X), chunk)]
    return np.concatenate([keras.ops.convert_to_numpy(part) for part in parts])


def reuse_compiled(model):
    """An earlier compiled model just like `model`, put in `model`'s state; else `model`.

    Each new Keras model traces (compiles) its training function at its first fit, and
    TensorFlow warns when many of its last calls traced ("triggered tf.function
    retracing"). So a model with the configuration and compile settings of one this
    process trained before (another seed, fold or repeat) trains in that one instead: it
    takes the new model's weights and dropout seeds (model.variables) and its unused
    optimizer's variables, so it trains exactly as the new model would, without tracing.
    The model returned is lent: a later call may train in it. To keep it, copy_model it.
    Every kind of model stays in memory until the run ends. On TensorFlow only: JAX and
    PyTorch do not warn, and there a reused model trained a later seed differently from a
    fresh one (so --jobs 1 and --jobs 2 disagreed).
    """
    if keras.backend.backend() != "tensorflow":
        return model
    model.optimizer.build(model.trainable_variables)
    config = {"model": model.get_config(), "compile": model.get_compile_config()}
    key = model.name + json.dumps(_without_names(config), sort_keys=True, default=repr)
    models = _compiled_models  # run_main empties it for each run; a --jobs worker keeps its own
    if key not in models:
        models[key] = model
        return model
    earlier = models[key]
    new = model.variables + model.optimizer.variables
    old = earlier.variables + earlier.optimizer.variables
    if [v.shape for v in new] != [v.shape for v in old]:
        raise RuntimeError(f"reuse_compiled: the model kept for {model.name} differs")
    for variable, value in zip(old, new):
        variable.assign(value)
    return earlier


def copy_model(model):
    """A copy of a trained model (weights, optimizer, compile settings): what a --jobs
    worker sends back, since Keras pickles a model as its .keras file."""
    return pickle.loads(pickle.dumps(model))


def _without_names(config):
    """A model's configuration without the names Keras numbers anew (lstm_1, adam_2, ...);
    a dtype policy's name (its only key, e.g. "float32") stays."""
    if isinstance(config, dict):
        return {k: _without_names(v) for k, v in config.items() if k != "name" or len(config) == 1}
    if isinstance(config, (list, tuple)):
        return [_without_names(v) for v in config]
    return config


def fit_recorded(model, x, y, epochs, batch_size, verbose=1, validation_data=None, callbacks=()):
    """model.fit, plus a record of the logs after every call of batches, and a clean Ctrl-C.

    Returns {"history": each epoch's logs (Keras's History), "batches": the logs Keras
    reported after each call of up to steps_per_execution batches, with "step" (batches
    trained so far) and "epoch_step" (batches into the epoch), "fit_s": fit's seconds}.
    """
    batches = {"step": [], "epoch_step": []}
    now = {"epoch": 0}

    def record(batch, logs):
        # Keras passes the index of the last batch of each call; the last call of an
        # epoch may be short, so clip it to the epoch's end.
        steps = recorder.params["steps"]  # batches per epoch
        batches["epoch_step"].append(min(batch + 1, steps))
        batches["step"].append(now["epoch"] * steps + batches["epoch_step"][-1])
        for key, value in logs.items():
            batches.setdefault(key, []).append(float(value))

    recorder = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: now.update(epoch=epoch), on_train_batch_end=record
    )
    # Giving fit the number of batches it would count anyway changes no number, but Keras
    # then makes one training data iterator per epoch instead of two (TensorFlow takes
    # ~12 ms to make one from arrays; validation's are made by validation_batches below).
    steps = {"steps_per_epoch": -(-len(x) // batch_size)}  # ceil: the last batch may be short
    if validation_data is not None:
        steps["validation_steps"] = -(-len(validation_data[0]) // batch_size)
        validation_data = validation_batches(validation_data, batch_size)
    start = time.perf_counter()
    history = model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        verbose=fit_verbose(verbose),
        validation_data=validation_data,
        callbacks=[recorder, *callbacks, ctrl_c_callback()],
        **steps,
    )
    return {"history": history.history, "batches": batches, "fit_s": time.perf_counter() - start}


def validation_batches(data, batch_size):
    """On TensorFlow: the (x, y) arrays as a tf.data.Dataset of the batches Keras makes.

    Keras makes a new validation iterator at every epoch (and one more that it throws
    away). From NumPy arrays TensorFlow takes ~12 ms to make one, from a plain batched
    Dataset ~1 ms; with short epochs that was a quarter of fit. The same batches in the
    same order, cast to floatx as Keras casts them: every validation loss stays the same.
    The other backends take the arrays as they are (no TensorFlow import). When the rows
    divide into whole batches, Keras's batches have a fixed size, and so do these
    (drop_remainder then drops nothing): a traced model with recurrent dropout otherwise
    moves its last float digits.
    """
    if keras.backend.backend() != "tensorflow":
        return data
    import tensorflow as tf  # this backend only: JAX and torch runs never load TensorFlow

    floatx = keras.backend.floatx()
    arrays = [np.asarray(a) for a in data]
    arrays = tuple(a.astype(floatx) if "float" in a.dtype.name else a for a in arrays)
    whole = len(arrays[0]) % batch_size == 0
    return tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size, drop_remainder=whole)


def ctrl_c_callback():
    """A Keras callback that makes Ctrl-C during fit stop between batches.

    Python raises KeyboardInterrupt wherever the main thread happens to be. Inside
    TensorFlow's C++ code that can abort the whole process instead ("free():
    invalid next size", about one Ctrl-C in ten at the start of an epoch here). So
    while fit runs, Ctrl-C only raises a flag, and this callback raises
    KeyboardInterrupt at the next batch or epoch boundary, in plain Python.
    A second Ctrl-C interrupts at once.
    """

    class CtrlC(keras.callbacks.Callback):
        pressed = False
        previous = None  # the SIGINT handler to put back

        def on_train_begin(self, logs=None):
            self.pressed = False
            if threading.current_thread() is not threading.main_thread():
                return  # a Dask worker's task: no signal handler can be set there
            if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
                return  # a --jobs worker: Ctrl-C is the parent process's to handle
            self.previous = signal.signal(signal.SIGINT, self.press)

        def press(self, signum, frame):
            if self.pressed:  # second Ctrl-C: stop now
                self.restore()
                raise KeyboardInterrupt
            self.pressed = True

        def restore(self):
            if self.previous is not None:
                signal.signal(signal.SIGINT, self.previous)
                self.previous = None

        def check(self, *args, **kwargs):
            if self.pressed:
                self.restore()
                raise KeyboardInterrupt

        # checked as each batch or epoch begins, in plain Python
        on_epoch_begin = on_epoch_end = on_train_batch_begin = on_test_batch_begin = check

        def on_train_end(self, logs=None):
            self.restore()
            self.check()

    return CtrlC()


def same_thread_counts(threads=1):
    """Give every backend the same thread counts in every process, before its first operation.

    TensorFlow and JAX read these variables when they start their thread pools, at their
    first operation, after the import; PyTorch reads its count at import, so it is set
    directly too. A sum split over more threads adds in another order, and float rounding
    then moves the last digits. With the counts fixed, a training gives the same numbers
    whether it runs here or in a --jobs worker (the workers inherit these variables). One
    thread is about as fast as two for these small models (benchmarks/README.md). A value
    you set wins.
    """
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(name, str(threads))  # TensorFlow's two pools; PyTorch's
    for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # NumPy's BLAS in the workers
        os.environ.setdefault(name, os.environ["OMP_NUM_THREADS"])
    if "intra_op_parallelism_threads" not in os.environ.get("XLA_FLAGS", ""):  # JAX on the CPU
        xla = f"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={threads}"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {xla}".strip()
    threadpool_limits(int(os.environ["OPENBLAS_NUM_THREADS"]))
    if "torch" in sys.modules:  # imported with Keras already: it read its count at import
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
