"""
Title: Lesson 10's model on long sequences: where a --quick run's time goes
Description: Times the bidirectional LSTM's first fit (with tracing) and its steady speed.

    python benchmarks/bench_long_sequences.py                    # 10 and 200 steps
    python benchmarks/bench_long_sequences.py --timesteps 200 --jit-compile
    python benchmarks/bench_long_sequences.py --model forward   # the forward-only LSTM
    KERAS_BACKEND=jax python benchmarks/bench_long_sequences.py --timesteps 200

It builds, compiles and fits the lesson's model as bidirectional_cumsum.py's run_lesson
does (bidirectional_lstm, or the package's forward_lstm, unrolled up to
UNROLL_MAX_TIMESTEPS steps; run_lesson's compile with SPEED; one thread per pool), then fits it twice on
random cumulative-sum sequences, batch size 10: first 500 sequences (one call of 50 batches: TensorFlow traces the model here),
then the --quick run's 2,000 (already traced: the steady cost per batch). --jit-compile
asks TensorFlow for XLA on top. Nothing is written; the numbers go to stdout.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import bidirectional_cumsum as lesson  # noqa: E402
from lstm_lessons.cumsum import forward_lstm  # noqa: E402
from lstm_lessons.training import same_thread_counts  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[2])
    parser.add_argument("--timesteps", type=int, nargs="+", default=[10, 200])
    parser.add_argument("--jit-compile", action="store_true", help="XLA on TensorFlow")
    parser.add_argument(
        "--model", choices=["bidirectional", "forward"], default="bidirectional", help="which"
    )
    args = parser.parse_args()
    same_thread_counts()
    for n_timesteps in args.timesteps:
        X, y = lesson.get_sequences(2_000, n_timesteps, np.random.default_rng(0))
        keras.utils.set_random_seed(0)
        unroll = n_timesteps <= lesson.UNROLL_MAX_TIMESTEPS
        if args.model == "bidirectional":
            model = lesson.bidirectional_lstm(n_timesteps, lesson.N_UNITS)
        else:
            model = forward_lstm(n_timesteps, lesson.N_UNITS, unroll=unroll)
        settings = dict(lesson.SPEED, **({"jit_compile": True} if args.jit_compile else {}))
        model.compile(
            loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"], **settings
        )
        seconds = []
        for n in (500, 2_000):  # as run_lesson fits: one epoch, batch size 10
            start = time.perf_counter()
            model.fit(X[:n], y[:n], epochs=1, batch_size=10, verbose=0)
            seconds.append(time.perf_counter() - start)
        print(
            f"{keras.backend.backend()}, {model.name}, {n_timesteps} steps, unroll {unroll}, {settings}: first fit (500 "
            f"sequences, traced) {seconds[0]:.1f} s; then 2,000 sequences {seconds[1]:.1f} s "
            f"= {1000 * seconds[1] / (2_000 / 10):.1f} ms per batch of 10",
            flush=True,
        )


if __name__ == "__main__":
    main()
