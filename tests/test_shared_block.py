"""The small helper block is repeated in every lesson script (so each one stands alone).

The first test keeps the copies identical, so a fix made in one is made in all; the
others check the helpers that the scripts' own tests reach only by timing.
"""

import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ["stacked_lstm_damped_sine.py", "bidirectional_cumsum.py", "stock_lstm_compare.py"]
BLOCK = re.compile(r"^# --- shared helpers: begin\n.*?^# --- shared helpers: end\n", re.S | re.M)


def test_shared_helper_block_is_identical_in_every_script():
    blocks = {}
    for name in SCRIPTS:
        path = ROOT / name
        if path.exists():
            found = BLOCK.findall(path.read_text())
            assert len(found) == 1, f"{name} should hold the shared helper block exactly once"
            blocks[name] = found[0]
    assert blocks, "no lesson script found"
    first = next(iter(blocks.values()))
    different = [name for name, block in blocks.items() if block != first]
    assert not different, f"the shared helper block differs in {different}"


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

    from stacked_lstm_damped_sine import ctrl_c_callback

    before = signal.getsignal(signal.SIGINT)
    started = []

    class PressCtrlCInBatch3(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            started.append(batch)
            if batch == 3:
                os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C now

    x, y = np.zeros((100, 4), "float32"), np.zeros((100, 1), "float32")
    with pytest.raises(KeyboardInterrupt):
        tiny_model().fit(x, y, batch_size=10, epochs=2, verbose=0,
                         callbacks=[ctrl_c_callback(), PressCtrlCInBatch3()])
    assert started == [0, 1, 2, 3]  # batch 3 ran to its end; batch 4 never began
    assert signal.getsignal(signal.SIGINT) is before


def test_a_finished_fit_puts_the_handler_back_and_a_second_ctrl_c_interrupts_at_once():
    from stacked_lstm_damped_sine import ctrl_c_callback

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
