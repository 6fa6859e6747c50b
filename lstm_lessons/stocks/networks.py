"""Training the lesson's networks beyond the lesson: the exercises' optimizer, loss and scale,
convergence, the lesson's fit_network in a worker, and a faster path for the strict folds."""

import functools
import pickle
import time
from types import SimpleNamespace

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..outputs import save_figure, save_model
from ..training import (
    ctrl_c_callback,
    fit_recorded,
    fit_verbose,
    reuse_compiled,
)
from .baselines import mae

# --loss huber: about a typical 4-step error in the scaled units (Keras's 1.0 would be 0.5 x MSE)
HUBER_DELTA = 0.05
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adagrad")


def training_loss(name):
    """--loss: mae (the lesson's), mse, or Huber with delta HUBER_DELTA."""
    return keras.losses.Huber(delta=HUBER_DELTA) if name == "huber" else name


def make_optimizer(name, learning_rate=None):
    """--optimizer with --learning-rate (None: that optimizer's Keras default)."""
    kind = type(keras.optimizers.get(name))
    return kind() if learning_rate is None else kind(learning_rate=learning_rate)


def scale_units(model, factor):
    """--scale: each layer's units times factor, rounded, at least 1 (output: 1)."""
    if factor == 1:
        return model
    output = model.layers[-1]

    def scaled(layer):
        config = layer.get_config()
        if layer is not output and "units" in config:
            config["units"] = max(1, round(config["units"] * factor))
        return type(layer).from_config(config)

    return keras.models.clone_model(model, clone_function=scaled)


def scaled(net, factor):
    """The lesson's network function net, its units times factor (the same name)."""

    @functools.wraps(net)
    def build(input_shape):
        return scale_units(net(input_shape), factor)

    return build


def training_settings(args):
    """One line: what the networks train with (the optimizer's default rate when unset)."""
    rate = make_optimizer(args.optimizer, args.learning_rate).learning_rate
    default = "" if args.learning_rate else ", Keras's default"
    delta = f" (delta {HUBER_DELTA})" if args.loss == "huber" else ""
    scale = f"; units x {args.scale:g}" if args.scale != 1 else ""
    return (
        f"training: loss {args.loss}{delta}, optimizer {args.optimizer}, learning rate "
        f"{float(rate):g}{default}{scale}; every model is scored with MAE"
    )


def convergence(val_loss, seconds, window=5, within=0.01):
    """The first epoch at which the 5-epoch running mean of the validation loss comes within
    1% of its lowest value, and the seconds of fit until that epoch ended."""
    running = pd.Series(val_loss).rolling(window, min_periods=1).mean().to_numpy()
    epoch = int(np.argmax(running <= running.min() * (1 + within)))
    return {"convergence_epoch": epoch + 1, "convergence_s": float(seconds[epoch])}


class EpochTimes(keras.callbacks.Callback):
    """When each epoch ended, in seconds since its fit began: one list per fit."""

    def __init__(self):
        super().__init__()
        self.fits = []

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()
        self.fits.append([])

    def on_epoch_end(self, epoch, logs=None):
        self.fits[-1].append(time.perf_counter() - self.start)


def predict_splits(model, frames):
    """Predict every split in one direct call (see predict_directly), then cut it apart."""
    joined = np.concatenate(list(frames.values()))
    flat = keras.ops.convert_to_numpy(model(joined, training=False)).reshape(-1)
    bounds = np.cumsum([0] + [len(frame) for frame in frames.values()])
    return {name: flat[bounds[k] : bounds[k + 1]] for k, name in enumerate(frames)}


def score_splits(splits, predictions, to_price):
    """MAE on every split, and on the test split in prices too."""
    scores = {f"{name}_mae": mae(split["y"], predictions[name]) for name, split in splits.items()}
    test = splits["test"]["y"]
    scores["test_mae_price"] = mae(to_price(test), to_price(predictions["test"]))
    return scores


def finish(result, model, times, data, epochs_kept):
    """What the machinery records of one trained network, from the lesson's fit result."""
    history = result["history"]
    predictions = {
        "train": predict_splits(model, {"train": data["x_train"]})["train"],
        "test": result["predictions"],
    }
    result.update(
        predictions=predictions,
        params=model.count_params(),
        epochs=len(history["loss"]),
        epoch_kept=epochs_kept,
        **convergence(history["val_loss"], times),
    )
    return result


def lesson_training(fit_network, net, data, args, seed, keep_model=False):
    """The lesson's fit_network for one network and seed, with the exercise options;
    keep_model: return the model too."""
    start, timer = time.perf_counter(), EpochTimes()
    result = fit_network(
        scaled(net, args.scale),
        data,
        args.epochs,
        batch_size=args.batch_size,
        seed=seed,
        loss=training_loss(args.loss),
        optimizer=make_optimizer(args.optimizer, args.learning_rate),
        callbacks=[timer, ctrl_c_callback()],
        summary=False,  # train_lesson prints the first seed's
        plot=False,
        verbose=fit_verbose(args.verbose),
    )
    model = result.pop("model")
    finish(result, model, timer.fits[-1], data, args.epochs)
    if keep_model:
        result["model"] = model
    result["seconds"] = time.perf_counter() - start
    return result


# The strict protocol's faster path


def define_and_compile(net, input_shape, args):
    """The lesson's network, compiled with the run's loss and optimizer."""
    model = scale_units(net(input_shape), args.scale)
    loss, optimizer = training_loss(args.loss), make_optimizer(args.optimizer, args.learning_rate)
    model.compile(loss=loss, optimizer=optimizer)
    return model


def keep_best_epoch(epochs):
    """Keep the weights of the epoch with the lowest validation loss (patience=epochs: it
    never stops early). Keras 3 restores them at the end even without an early stop."""
    return keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=epochs, restore_best_weights=True
    )


def run_network(net, setup, args, seed, reuse=True):
    """One network in one fold: define, compile, fit keeping the best validation epoch,
    predict every split, score. reuse: train in an earlier model just like it."""
    frames, splits = setup["frames"], setup["splits"]
    keras.utils.set_random_seed(seed)  # each training reproducible on its own
    model = define_and_compile(net, frames["train"].shape[1:], args)
    if reuse:
        model = reuse_compiled(model)
    best, timer = keep_best_epoch(args.epochs), EpochTimes()
    validation = (frames["val"], splits["val"]["y"])
    fit = fit_recorded(
        model,
        frames["train"],
        splits["train"]["y"],
        args.epochs,
        args.batch_size,
        args.verbose,
        validation,
        [best, timer],
    )
    predictions = predict_splits(model, frames)
    return {
        "model": model,
        "scores": score_splits(splits, predictions, setup["to_price"]),
        "epoch_kept": best.best_epoch + 1,
        "epochs": len(fit["history"]["loss"]),
        "history": fit["history"],
        "predictions": predictions,
        "params": model.count_params(),
        "fit_s": fit["fit_s"],
        **convergence(fit["history"]["val_loss"], timer.fits[-1]),
    }


def one_training(net, setup, args, seed, keep_model=False):
    """One network with one seed in one fold, as run_trainings calls it. keep_model: return
    the trained model pickled (its .keras file's bytes: --tickers all holds one per network
    and stock; reuse_compiled may lend the model itself to the next training)."""
    start = time.perf_counter()
    result = run_network(net, setup, args, seed)
    model = result.pop("model")
    if keep_model:
        result["model"] = pickle.dumps(model)
    result["seconds"] = time.perf_counter() - start
    return result


def report_network(lesson, name, result, to_price, y_test, out_dir, val_label):
    """The first seed's network on screen and on disk: summary, saved model, two figures."""
    model = result["model"]
    model.summary()
    save_model(model, out_dir / f"{name}.keras")
    figure = lesson.plot_losses(result["history"], name, val_label)
    save_figure(figure, out_dir / f"losses_{name}.png")
    # the lesson's plot takes a MinMaxScaler; the strict protocol's log-returns have none
    prices = SimpleNamespace(inverse_transform=lambda v: np.reshape(to_price(np.ravel(v)), (-1, 1)))
    figure = lesson.plot_predictions(result["predictions"]["test"], y_test, prices, name)
    save_figure(figure, out_dir / f"predictions_{name}.png")


def add_cost(spent, name, fit_s, epochs, epochs_kept):
    """Add trainings to spent[name], the input of training_cost (fit_s: a list per seed)."""
    entry = spent.setdefault(name, {"fit_s": [[] for _ in fit_s], "epochs": [], "epochs_kept": []})
    for times, more in zip(entry["fit_s"], fit_s):
        times.extend(more)
    entry["epochs"] += epochs
    entry["epochs_kept"] += epochs_kept


def plot_all_losses(histories, val_label, path):
    """Every network's training (solid) and validation (dashed) loss on one figure."""
    fig, ax = plt.subplots(figsize=(10, 5), layout="tight")
    for k, (name, history) in enumerate(histories.items()):
        epochs = np.arange(1, len(history["loss"]) + 1)
        ax.plot(epochs, history["loss"], color=f"C{k}", label=f"{name} training")
        ax.plot(epochs, history["val_loss"], color=f"C{k}", ls="--", label=f"{name} {val_label}")
    ax.set(xlabel="epoch", ylabel="loss", title="Training (solid) and validation (dashed) loss")
    ax.legend(fontsize=8, ncol=2)
    save_figure(fig, path)
