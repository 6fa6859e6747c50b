"""Price data beyond the lesson: any CSV read robustly, tickers, the split, the memory guard."""

import argparse
import functools
from pathlib import Path

import numpy as np
import pandas as pd

from ..cli import fail

SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab"}  # what --csv files may use
# The memory guard's factors, measured (docs/stock_lstm_compare.md, "The memory guard")
CSV_MEMORY_FACTOR, WINDOWS_MEMORY_FACTOR = 9, 2  # x the CSV's size on disk
FOLD_BYTES, TRAINING_BYTES = 64, 1024  # per window: a fold's, kept; a training's peak


class DataError(ValueError):
    """A problem with the data that the reader can fix; printed as one line, exit 2."""


def default_csv(lesson):
    """The chapter's Kaggle file when it is in the current folder, else None."""
    return next((Path(name) for name in lesson.KAGGLE_FILES if Path(name).is_file()), None)


def read_price_csv(path, ticker="AAL"):
    """Read a CSV with date, high and low columns (any letter case), for one ticker (a Name
    column, as Kaggle's all_stocks_5yr.csv, picks the rows); any problem raises DataError."""
    path = Path(path)
    frame, sep = read_csv_frame(path, file_stamp(path))
    where, used_ticker = str(path), None
    if "name" in frame:
        names = frame["name"].str.strip()
        chosen = names.str.upper() == str(ticker).strip().upper()
        if not chosen.any():
            available = sorted(names.dropna().unique())
            raise DataError(
                f"ticker {ticker!r} is not in {path}: {len(available)} tickers available, "
                f"the first {min(20, len(available))}: {', '.join(available[:20])}; "
                "pick one with --ticker"
            )
        frame, used_ticker = frame[chosen], names[chosen].iloc[0]
        where = f"{path} (ticker {used_ticker})"

    # A file not separated by commas may write 14,875 for 14.875 and dates day first.
    read_as = [f"{SEPARATORS[sep]}-separated"]
    texts = {name: frame[name].str.strip() for name in ("high", "low")}
    if sep != "," and any(
        text.str.contains(r"\d,\d{3}\.", regex=True).any() for text in texts.values()
    ):
        read_as.append("thousands commas (1,234.5 is 1234.5)")
        texts = {name: text.str.replace(",", "", regex=False) for name, text in texts.items()}
    elif sep != "," and any(text.str.contains(",", regex=False).any() for text in texts.values()):
        read_as.append("decimal commas (1.234,5 is 1234.5)")
        texts = {
            name: text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
            for name, text in texts.items()
        }
    # A daily bar's date is its local date: a time zone offset (+01:00, Z) is dropped, not
    # converted, so 2017-01-02 00:00+01:00 stays 2017-01-02.
    date_text = frame["date"].str.strip().str.replace(r"(Z|[+-]\d\d:?\d\d)$", "", regex=True)
    year_first = date_text.str.match(r"\d{4}[-/.]\d\d?[-/.]\d\d?").all()
    dayfirst = sep != "," and not year_first
    if dayfirst:
        read_as.append("dates day first")
    dates = pd.to_datetime(date_text, errors="coerce", dayfirst=dayfirst)
    prices = {name: pd.to_numeric(text, errors="coerce") for name, text in texts.items()}
    problems = {
        "date": (dates.isna(), "are not dates"),
        "high": (~np.isfinite(prices["high"]), "are missing or not numbers"),
        "low": (~np.isfinite(prices["low"]), "are missing or not numbers"),
    }
    for column, (bad, problem) in problems.items():
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            text = frame[column].iloc[first]
            shown = repr(text) if isinstance(text, str) and text.strip() else "(empty)"
            raise DataError(
                f"{int(bad.sum())} value(s) in column {column!r} of {where} {problem} "
                f"(first on line {frame.index[first] + 2}: {shown}); fix or remove those rows"
            )  # line 1 of the file is the header
    frame = pd.DataFrame({"date": dates.dt.normalize(), **prices})
    source = {"kind": "csv", "path": str(path), "ticker": used_ticker, "read_as": read_as}
    return tidy_prices(frame, source, where)


def file_stamp(path):
    """The CSV cache's key: which file, and its version (a changed file is read again)."""
    if not path.is_file():
        return None
    stat = path.stat()
    return path.resolve(), stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=2)  # --tickers reads one file for many stocks
def read_csv_frame(path, stamp=None):
    """The CSV's cells as text, headers in lower case; DataError for a file that is not one."""
    unreadable = f"cannot read --csv {path} ({{}}); check the file and its permissions"
    if not path.exists():
        raise DataError(
            f"--csv {path}: no such file; pass the path of a CSV with date, high and low columns"
        )
    if path.is_dir():
        raise DataError(f"--csv {path} is a folder, not a file; pass the CSV file itself")
    try:
        with open(path, "rb") as handle:
            head = handle.read(8192)
    except OSError as exc:
        raise DataError(unreadable.format(exc.strerror))
    if not head.strip():
        raise DataError(f"--csv {path} is empty; pass a CSV with date, high and low columns")
    compressed = path.suffix.lower() in {".gz", ".bz2", ".zip", ".xz", ".zst"}
    if b"\x00" in head and not compressed:
        raise DataError(
            f"--csv {path} is not a CSV text file (it holds binary data); pass a CSV file"
        )
    # The separator: the one of , ; and tab that the header line holds most of
    # (spreadsheets in many countries save with semicolons).
    header = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    sep = "," if compressed else max(SEPARATORS, key=header.count)
    try:
        # Everything is read as text first, so that a bad cell can be quoted back.
        frame = pd.read_csv(path, sep=sep, dtype=str, skipinitialspace=True)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"--csv {path} cannot be read as CSV ({reason}); pass a text file whose values "
            "are separated by commas, semicolons or tabs"
        )
    except OSError as exc:
        raise DataError(unreadable.format(exc.strerror))

    # Headers are matched whatever their letter case (date/Date/DATE; the first one wins).
    found = [str(column) for column in frame.columns]
    frame.columns = [column.strip().lower() for column in found]
    frame = frame.loc[:, ~frame.columns.duplicated()]
    missing = [name for name in ("date", "high", "low") if name not in frame]
    if missing:
        shown = ", ".join(found[:20]) + (f", ... ({len(found)} in all)" if len(found) > 20 else "")
        raise DataError(
            f"--csv {path} has no {', '.join(missing)} column{'s' if len(missing) > 1 else ''} "
            f"(columns found: {shown}); it needs date, high and low columns, in any letter case"
        )
    if len(frame) == 0:
        raise DataError(f"--csv {path} has a header but no data rows; pass a CSV with price rows")
    return frame, sep


def tidy_prices(frame, source, where):
    """Sort the rows by date and drop rows that repeat a date with the same prices, stating
    each change in `repairs`; a date with different prices twice is an error."""
    repairs = []
    if not frame["date"].is_monotonic_increasing:
        repairs.append(f"the rows were not in date order: sorted {len(frame)} rows by date")
        frame = frame.sort_values("date", kind="stable")
    repeated = frame.duplicated("date")
    if repeated.any():
        distinct = frame.drop_duplicates()  # rows that differ in date or prices
        clashes = distinct["date"][distinct.duplicated("date")].unique()
        if len(clashes):
            raise DataError(
                f"{len(clashes)} date(s) appear more than once with different prices in {where} "
                f"(first: {clashes[0].date()}); is more than one series in the file? "
                "keep one row per date"
            )
        repairs.append(
            f"dropped {int(repeated.sum())} row(s) that repeat a date with the same prices"
        )
        frame = frame[~repeated]
    dates = frame["date"].to_numpy().astype("datetime64[D]")
    high, low = (frame[name].to_numpy(dtype=float) for name in ("high", "low"))
    frame = pd.DataFrame({"date": frame["date"].to_numpy(), "high": high, "low": low})
    return dict(
        frame=frame, dates=dates, high=high, low=low, source=source, repairs=repairs, where=where
    )


def split_sizes(lesson, n_rows, train_size=None, test_size=None):
    """The lesson's split (lesson.split_sizes: 1,000 : 251, or that proportion of fewer rows);
    --train-size or --test-size alone sets the other in that proportion."""
    if train_size is None and test_size is None:
        return lesson.split_sizes(n_rows)
    ratio = lesson.TEST_SIZE / lesson.TRAIN_SIZE
    if test_size is None:
        test_size = max(1, int(round(train_size * ratio)))
    if train_size is None:
        train_size = max(1, int(round(test_size / ratio)))
    return train_size, test_size


def check_sizes(lesson, n_rows, train_size, test_size, args, where):
    """Raise DataError unless the split fits the series and holds enough rows for every step."""
    protocol, look_back, foresight = args.protocol, args.look_back, args.foresight
    # the fewest rows each part needs, and why (one window = look_back + foresight + 1 rows)
    need_test = need_train = look_back + foresight + 1
    if protocol == "lesson":
        need_train = max(args.norm_window, lesson.SMA_WINDOW + 1, need_test)
        why = (
            f"training part >= {need_train} for the {args.norm_window}-row normalisation window, "
            f"the {lesson.SMA_WINDOW}-day SMA and one {look_back}+{foresight} window; "
            f"test part >= {need_test}"
        )
    else:  # the first fold trains on 3 windows or more (2 fit, 1 validates); 1 target per fold
        need_train, need_test = look_back + 2 * (foresight + 1) + 1, args.folds
        why = (
            f"training part >= {need_train} for 3 training windows whose "
            f"{look_back}+{foresight}+1 days end before the first test target; test part >= "
            f"{need_test}, a target for each of the {args.folds} folds (--folds)"
        )
    if args.train_size is not None or args.test_size is not None:  # sizes given
        for option, size, need in (
            ("--train-size", train_size, need_train),
            ("--test-size", test_size, need_test),
        ):
            if size < need:
                raise DataError(
                    f"{option} {size} is too small: "
                    f"the {protocol} protocol needs at least {need} ({why})"
                )
        if train_size + test_size > n_rows:
            raise DataError(
                f"the split needs {train_size} + {test_size} = {train_size + test_size} rows "
                f"(--train-size/--test-size) but {where} has only {n_rows}; lower them"
            )
        return
    if train_size >= need_train and test_size >= need_test:
        return
    # the fewest rows whose lesson-proportion split is big enough (from 1,251 rows: 1,000 + 251)
    for needed in range(n_rows + 1, lesson.TRAIN_SIZE + lesson.TEST_SIZE + 1):
        train, test = lesson.split_sizes(needed)
        if train >= need_train and test >= need_test:
            raise DataError(
                f"too few rows: the {protocol} protocol needs at least {needed} rows ({why}), "
                f"found {n_rows} in {where}"
            )
    raise DataError(
        f"the split of {train_size} training and {test_size} test rows is too small here ({why}); "
        "set larger --train-size/--test-size, or a smaller --look-back/--foresight"
    )


def ticker_list(text):
    """argparse type for --tickers: 'A,B,C' (upper-cased, no repeats) or 'all'."""
    tickers = list(dict.fromkeys(t.strip().upper() for t in text.split(",") if t.strip()))
    if not tickers:
        raise argparse.ArgumentTypeError(f"expected tickers like AAL,MSFT or 'all', got {text!r}")
    return ["all"] if tickers == ["ALL"] else tickers


def resolve_tickers(args, lesson):
    """The stocks to evaluate: --tickers (each one checked; 'all': every one in the CSV)."""
    if not args.tickers:
        return [args.ticker or "AAL"]
    csv = args.csv or default_csv(lesson)
    need = "--tickers needs a CSV with a Name column, such as Kaggle's all_stocks_5yr.csv"
    if csv is None:
        fail(f"{need}: pass it with --csv")
    try:
        frame, _ = read_csv_frame(Path(csv), file_stamp(Path(csv)))
    except DataError as exc:
        fail(str(exc))
    if "name" not in frame:
        fail(f"{need}; {csv} has none")
    available = sorted(frame["name"].str.strip().str.upper().dropna().unique())
    if args.tickers == ["all"]:
        return available
    unknown = [ticker for ticker in args.tickers if ticker not in available]
    if unknown:
        fail(
            f"--tickers: {', '.join(unknown)} not in {csv} ({len(available)} tickers available, "
            f"the first {min(20, len(available))}: {', '.join(available[:20])})"
        )
    return args.tickers


def memory_estimate(args, lesson):
    """The peak bytes the data will need, from the CSV's size and the split's sizes (no CSV,
    the small fallback data: 0): this process reads the CSV as text (strict: then makes the
    windows); each process that trains holds the windows of train + test rows."""
    csv = args.csv or default_csv(lesson)
    if csv is None or not Path(csv).is_file():
        return 0  # a missing file is reported when it is read
    size = Path(csv).stat().st_size
    # the windows: train + test rows, at most the file's rows (a line is 16 bytes or more)
    rows = min(sum(split_sizes(lesson, size, args.train_size, args.test_size)), size // 16)
    trainers = training_processes(args)
    need = size * CSV_MEMORY_FACTOR + trainers * rows * TRAINING_BYTES * max(1.0, args.scale)
    if args.protocol == "strict":
        need += size * WINDOWS_MEMORY_FACTOR + args.folds * rows * FOLD_BYTES
    return int(need)


def training_processes(args):
    """The processes training at once: this one, or min(--jobs, trainings) workers."""
    folds = args.folds if args.protocol == "strict" else 1
    return max(1, min(args.jobs, len(args.models) * args.repeats * folds))


def load_stock(args, ticker, lesson):
    """One stock's prices, mid prices and split, checked: bad data is one line, exit 2.
    Without --csv: the chapter's file if in the current folder, else the lesson's import_data."""
    try:
        csv = args.csv or default_csv(lesson)
        if csv is not None:
            data = read_price_csv(csv, ticker)
        else:
            frame, name = lesson.import_data()
            source = {"kind": "matplotlib sample data", "path": "goog.npz", "ticker": name}
            data = tidy_prices(frame, source, "matplotlib sample data goog.npz")
        if args.ticker and data["source"]["kind"] == "csv" and data["source"]["ticker"] is None:
            raise DataError(
                f"--ticker {args.ticker}: {data['where']} has no Name column, so it holds one "
                "stock; drop --ticker, or give a CSV with a Name column"
            )
        mid = (data["high"] + data["low"]) / 2.0
        train_size, test_size = split_sizes(lesson, len(mid), args.train_size, args.test_size)
        check_sizes(lesson, len(mid), train_size, test_size, args, data["where"])
        if args.target == "log-return" and not (mid > 0).all():
            raise DataError(
                f"--target log-return needs positive prices; {data['where']} has some <= 0"
            )
    except DataError as exc:
        fail(str(exc))
    name = data["source"]["ticker"] or "prices"
    return dict(data=data, mid=mid, train_size=train_size, test_size=test_size, name=name)


def describe_stock(stock):
    """Print where the prices came from, any repair, and the split."""
    data, mid = stock["data"], stock["mid"]
    print(f"data: {data['where']}, {len(mid)} days {data['dates'][0]} to {data['dates'][-1]}")
    if "read_as" in data["source"]:
        print(f"read as: {', '.join(data['source']['read_as'])}")
    for repair in data["repairs"]:
        print(f"data repair: {repair}")
    print(f"mid prices: {len(mid)}, the first three {', '.join(f'{v:g}' for v in mid[:3])}")
    unused = len(mid) - stock["train_size"] - stock["test_size"]
    print(
        f"split: {stock['train_size']} training and {stock['test_size']} test mid prices"
        + (f" ({unused} later rows unused)" if unused else "")
    )


def data_record(stock):
    """The data part of metrics.json."""
    data, mid = stock["data"], stock["mid"]
    return {
        **data["source"],
        "description": data["where"],
        "rows": len(mid),
        "first_date": str(data["dates"][0]),
        "last_date": str(data["dates"][-1]),
        "first_mid_prices": mid[:3].tolist(),
        "repairs": data["repairs"],
    }
