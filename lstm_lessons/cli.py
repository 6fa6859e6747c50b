"""Options and one-line errors: every bad input gets one line on stderr and exit status 2."""

import argparse
import signal
import sys
import threading

import matplotlib

from . import parallel, training  # modules: parallel imports this one


def fail(message):
    """Bad input: one clear line on stderr, exit status 2, nothing written."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default, except where it is None (its help says why)."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, but a bad option gets one line (no usage block) and exit 2."""

    def error(self, message):
        fail(f"{message} (see --help)")


def parse_args_with_quick(parser, argv, quick):
    """Parse argv; with --quick, the values in `quick` become the defaults.

    An option given on the command line still wins over its --quick value.
    """
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
    return args


def positive_int(text):
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def non_negative_int(text):
    """argparse type for seeds: a whole number from 0 to 2**31 - 1 (every backend takes it)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"must be from 0 to 2**31 - 1, got {value}")
    return value


def run_main(run, args):
    """Run `run(args)` headless (unless --show), on --cluster if given; Ctrl-C: one line,
    exit 130."""
    if not args.show:
        matplotlib.use("Agg")  # save figures, never open a window
    training.same_thread_counts()
    training._compiled_models.clear()  # this run's models only
    previous, sys.unraisablehook = sys.unraisablehook, _ctrl_c_again
    try:
        with parallel.cluster(args):  # --cluster: connected before any work, closed after
            return run(args)
    except KeyboardInterrupt:
        print("interrupted: stopped early; files already written are complete", file=sys.stderr)
        return 130
    finally:
        sys.unraisablehook = previous


def _ctrl_c_again(unraisable):
    """Python drops an error raised inside a garbage-collector callback (JAX, which Keras
    imports where it is installed, has one) and prints its traceback. When that error is
    Ctrl-C's, press it again: its signal comes back to the main thread 50 ms later, once
    the collection is over."""
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        main = threading.main_thread().ident
        threading.Timer(0.05, signal.pthread_kill, (main, signal.SIGINT)).start()
    else:
        sys.__unraisablehook__(unraisable)


def seed_list(args):
    """The seeds of a run, --seed and the --repeats - 1 after it, checked before any work."""
    if args.seed + args.repeats - 1 >= 2**31:
        fail(f"--seed + --repeats - 1 must stay below 2**31 (got {args.seed + args.repeats - 1})")
    return [args.seed + r for r in range(args.repeats)]
