"""Tests for the stock script's data beyond the lesson (lstm_lessons.stocks.data): CSV files
of any kind read as meant, and every bad input or option answered with one line, exit 2,
nothing written; the memory guard."""

from pathlib import Path

import numpy as np
import pytest
from conftest import AAL_FIRST_ROWS

import lstm_lessons.parallel
import stock_lstm_compare as slc
from lstm_lessons.stocks import data as sd
from lstm_lessons.stocks.options import parse_args

KAGGLE_HEADER = "date,open,high,low,close,volume,Name"


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path, monkeypatch):
    """Run in an empty folder: no Kaggle file, so the default data is the fallback."""
    monkeypatch.chdir(tmp_path)


def trading_days(n, start="2013-02-08"):
    return np.busday_offset(np.datetime64(start, "D"), np.arange(n), roll="forward")


def price_rows(ticker, n, start_price=20.0, seed=0, start="2013-02-08"):
    """n rows of a made-up random walk, in Kaggle's column order."""
    rng = np.random.default_rng(seed)
    mid = start_price * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    spread = mid * rng.uniform(0.002, 0.02, n)
    rows = []
    for day, m, s in zip(trading_days(n, start), mid, spread):
        high, low = m + s / 2, m - s / 2
        rows.append(f"{day},{m:.4f},{high:.4f},{low:.4f},{m:.4f},1000000,{ticker}")
    return rows


def write_csv(path, rows, header=KAGGLE_HEADER):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def set_field(row, index, value):
    fields = row.split(",")
    fields[index] = value
    return ",".join(fields)


def mid_of(data):
    return (data["high"] + data["low"]) / 2.0


def parse(argv):
    return parse_args([str(a) for a in argv], slc)


# ---------------------------------------------------------------------------
# Reading the data: formats, header case, ticker selection, repairs
# ---------------------------------------------------------------------------


def test_reads_kaggle_all_stocks_file_and_picks_the_ticker(tmp_path):
    rows = (
        price_rows("AAPL", 30, 60.0, seed=1)
        + AAL_FIRST_ROWS
        + price_rows("AAL", 27, 15.0, start="2013-02-13")
    )
    data = sd.read_price_csv(write_csv(tmp_path / "all_stocks_5yr.csv", rows), "AAL")
    mid = mid_of(data)
    assert len(mid) == 30
    np.testing.assert_allclose(mid[:3], [14.875, 14.635, 14.305])
    assert data["source"] == {
        "kind": "csv",
        "path": str(tmp_path / "all_stocks_5yr.csv"),
        "ticker": "AAL",
        "read_as": ["comma-separated"],
    }
    assert data["repairs"] == []
    assert str(data["dates"][0]) == "2013-02-08"


def test_ticker_is_matched_whatever_its_letter_case(tmp_path):
    path = write_csv(tmp_path / "s.csv", AAL_FIRST_ROWS + price_rows("AAPL", 5))
    data = sd.read_price_csv(path, "aal")
    assert data["source"]["ticker"] == "AAL" and len(data["high"]) == 3


def test_reads_per_ticker_file_with_capitalised_headers(tmp_path):
    path = write_csv(
        tmp_path / "AAL_data.csv", AAL_FIRST_ROWS, header="Date,Open,High,Low,Close,Volume,Name"
    )
    data = sd.read_price_csv(path, "AAL")
    np.testing.assert_allclose(mid_of(data), [14.875, 14.635, 14.305])


def test_reads_any_csv_with_date_high_low_and_no_name_column(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("HIGH,Low,DATE\n15.12,14.63,2013-02-08\n15.01,14.26,2013-02-11\n")
    data = sd.read_price_csv(path, "AAL")  # no Name column: the ticker plays no part
    assert data["source"]["ticker"] is None
    np.testing.assert_allclose(mid_of(data), [14.875, 14.635])


def test_thousands_commas_time_zones_and_year_first_dates_are_read_as_meant(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text(
        "Date;High;Low\n2017/01/02 00:00:00+01:00;1,015.01;1,014.26\n"
        "2017/01/03 00:00:00+01:00;15.12;14.63\n"
    )
    data = sd.read_price_csv(path)
    assert data["source"]["read_as"] == [
        "semicolon-separated",
        "thousands commas (1,234.5 is 1234.5)",
    ]
    np.testing.assert_allclose(mid_of(data), [1014.635, 14.875])
    # the local date of each bar, not the day before in UTC
    assert [str(d) for d in data["dates"]] == ["2017-01-02", "2017-01-03"]


@pytest.mark.parametrize(
    "text, read_as",
    [
        (
            "Date;High;Low\n08.02.2013;15,12;14,63\n11.02.2013;1.015,01;1.014,26\n",
            ["semicolon-separated", "decimal commas (1.234,5 is 1234.5)", "dates day first"],
        ),
        (
            "date\thigh\tlow\n2013-02-08\t15.12\t14.63\n2013-02-11\t1015.01\t1014.26\n",
            ["tab-separated"],
        ),
        (
            "date;high;low\n2013-02-08;15.12;14.63\n2013-02-11;1015.01;1014.26\n",
            ["semicolon-separated"],
        ),
        (
            "date,high,low\n2013-02-08,15.12,14.63\n2013-02-11,1015.01,1014.26\n",
            ["comma-separated"],
        ),
    ],
)
def test_semicolon_and_tab_files_are_read_and_the_separator_is_named(tmp_path, text, read_as):
    path = tmp_path / "prices.csv"
    path.write_text(text)
    data = sd.read_price_csv(path)
    assert data["source"]["read_as"] == read_as
    np.testing.assert_allclose(mid_of(data), [14.875, 1014.635])
    assert [str(d) for d in data["dates"]] == ["2013-02-08", "2013-02-11"]


def test_a_semicolon_file_with_a_real_problem_keeps_its_error(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("Date;High;Low\n08.02.2013;15,12;14,63\n11.02.2013;abc;14,26\n")
    with pytest.raises(sd.DataError, match="column 'high' .* line 3: 'abc'"):
        sd.read_price_csv(path)


def test_unsorted_rows_are_sorted_and_repeated_rows_dropped_and_both_stated(tmp_path):
    rows = [AAL_FIRST_ROWS[2], AAL_FIRST_ROWS[0], AAL_FIRST_ROWS[1], AAL_FIRST_ROWS[0]]
    data = sd.read_price_csv(write_csv(tmp_path / "s.csv", rows), "AAL")
    assert [str(d) for d in data["dates"]] == ["2013-02-08", "2013-02-11", "2013-02-12"]
    np.testing.assert_allclose(mid_of(data), [14.875, 14.635, 14.305])
    assert len(data["repairs"]) == 2
    assert "sorted 4 rows by date" in data["repairs"][0]
    assert "dropped 1 row(s)" in data["repairs"][1]


def test_without_csv_a_kaggle_file_in_the_current_folder_is_used(tmp_path):
    write_csv(tmp_path / "all_stocks_5yr.csv", AAL_FIRST_ROWS + price_rows("AAPL", 3))
    assert sd.default_csv(slc) == Path("all_stocks_5yr.csv")  # the working folder is tmp_path
    frame, ticker = slc.import_data()  # the lesson's own two pandas lines read it too
    assert ticker == "AAL" and len(frame) == 3
    np.testing.assert_allclose((frame["high"] + frame["low"]) / 2, [14.875, 14.635, 14.305])


def test_fallback_is_matplotlibs_google_prices():
    frame, ticker = slc.import_data()
    data = sd.tidy_prices(frame, {"ticker": ticker}, "goog.npz")
    assert ticker == "GOOG" and len(data["dates"]) == 1047 and data["repairs"] == []
    assert (str(data["dates"][0]), str(data["dates"][-1])) == ("2004-08-19", "2008-10-14")
    assert np.all(np.diff(data["dates"]) > np.timedelta64(0, "D"))
    assert np.all(data["high"] >= data["low"])


def test_the_split_follows_the_lesson_or_its_proportion():
    assert slc.split_sizes(1047) == (837, 210)  # the fallback: 1047 * 1000/1251 = 836.9
    assert slc.split_sizes(1300) == (1000, 251)
    assert sd.split_sizes(slc, 2000, train_size=400, test_size=100) == (400, 100)
    assert sd.split_sizes(slc, 2000, train_size=400) == (400, 100)  # 400 * 251/1000 = 100.4
    assert sd.split_sizes(slc, 2000, test_size=251) == (1000, 251)


# ---------------------------------------------------------------------------
# Bad input: exit 2, one clear line, nothing written
# ---------------------------------------------------------------------------


def _csv_cases(tmp):
    """Each case: (name, argv, words the error line must hold)."""
    good = price_rows("AAL", 400, seed=6)
    cases = []

    cases.append(("missing file", ["--csv", tmp / "nope.csv"], ["nope.csv", "no such file"]))
    cases.append(("directory", ["--csv", tmp], [str(tmp), "folder"]))
    (tmp / "empty.csv").write_text("")
    cases.append(("empty", ["--csv", tmp / "empty.csv"], ["empty.csv", "is empty"]))
    (tmp / "image.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    cases.append(("not csv", ["--csv", tmp / "image.csv"], ["image.csv", "not a CSV"]))
    write_csv(tmp / "header.csv", [])
    cases.append(("header only", ["--csv", tmp / "header.csv"], ["header.csv", "no data rows"]))
    (tmp / "cols.csv").write_text("Date,Open,Close,Volume\n2013-02-08,1,2,3\n")
    cases.append(
        (
            "missing columns",
            ["--csv", tmp / "cols.csv"],
            ["has no high, low columns", "columns found: Date, Open, Close, Volume"],
        )
    )
    many = [row for k in range(25) for row in price_rows(f"T{k:02d}", 2, seed=k)]
    write_csv(tmp / "many.csv", many)
    cases.append(
        (
            "unknown ticker",
            ["--csv", tmp / "many.csv", "--ticker", "XYZ"],
            ["'XYZ'", "25 tickers available", "the first 20: T00, T01", "T19;"],
        )
    )
    write_csv(tmp / "short.csv", good[:100])
    cases.append(
        (
            "too few rows",
            ["--csv", tmp / "short.csv"],
            ["too few rows", "at least 313 rows", "found 100", "short.csv"],
        )
    )
    cases.append(
        (
            "too few rows strict",
            ["--csv", tmp / "short.csv", "--protocol", "strict", "--look-back", "75"],
            ["too few rows: the strict protocol", "found 100"],
        )
    )
    strict = ["--protocol", "strict"]
    cases.append(
        (
            "too few test rows for the folds",
            ["--csv", tmp / "short.csv", *strict, "--folds", "30"],
            ["too few rows: the strict protocol", "a target for each of the 30 folds"],
        )
    )
    cases.append(
        (
            "unknown tickers in the list",
            ["--csv", tmp / "many.csv", *strict, "--tickers", "T01,XYZ,T02,ABC"],
            ["--tickers: XYZ, ABC not in", "25 tickers available"],
        )
    )
    cases.append(
        (
            "--tickers without a Name column",
            ["--csv", tmp / "cols2.csv", *strict, "--tickers", "all"],
            ["--tickers needs a CSV with a Name column", "cols2.csv has none"],
        )
    )
    write_csv(tmp / "cols2.csv", [r.rsplit(",", 1)[0] for r in good], KAGGLE_HEADER[:-5])
    cases.append(
        (
            "--ticker with a CSV of one stock (no Name column)",
            ["--csv", tmp / "cols2.csv", "--ticker", "MSFT"],
            ["--ticker MSFT:", "cols2.csv has no Name column"],
        )
    )
    cases.append(
        (
            "--tickers without a CSV",
            [*strict, "--tickers", "AAL,MSFT"],
            ["--tickers needs a CSV with a Name column", "--csv"],
        )
    )
    cases.append(
        (
            "--ticker without a CSV (the fallback data hold one stock)",
            ["--ticker", "MSFT"],
            ["--ticker MSFT needs a CSV with a Name column", "Google prices"],
        )
    )
    cases.append(
        ("--ticker and --tickers", [*strict, "--ticker", "A", "--tickers", "B"], ["not both"])
    )
    cases.append(("--folds in the lesson", ["--folds", "3"], ["--folds belongs to the strict"]))
    cases.append(("--tickers in the lesson", ["--tickers", "A,B"], ["--tickers belongs"]))
    cases.append(
        (
            "log-return in the lesson",
            ["--target", "log-return"],
            ["--target log-return needs --protocol strict", "exact zeros"],
        )
    )
    bad = list(good)
    bad[9] = set_field(bad[9], 2, "abc")
    write_csv(tmp / "text.csv", bad)
    cases.append(
        (
            "non-numeric price",
            ["--csv", tmp / "text.csv"],
            ["column 'high'", "line 11: 'abc'", "not numbers"],
        )
    )
    nan = list(good)
    nan[20] = set_field(nan[20], 3, "")
    write_csv(tmp / "nan.csv", nan)
    cases.append(
        ("missing price", ["--csv", tmp / "nan.csv"], ["column 'low'", "line 22: (empty)"])
    )
    dup = list(good)
    dup.insert(50, set_field(good[49], 2, "99.0"))
    write_csv(tmp / "dup.csv", dup)
    cases.append(
        (
            "conflicting duplicate dates",
            ["--csv", tmp / "dup.csv"],
            ["more than once with different prices"],
        )
    )
    dates = list(good)
    dates[3] = set_field(dates[3], 0, "yesterday")
    write_csv(tmp / "dates.csv", dates)
    cases.append(
        (
            "unreadable date",
            ["--csv", tmp / "dates.csv"],
            ["column 'date'", "'yesterday'", "not dates"],
        )
    )
    cases.append(
        (
            "split larger than series",
            ["--train-size", "1000", "--test-size", "251"],
            ["1000 + 251 = 1251 rows", "only 1047"],
        )
    )
    cases.append(
        (
            "look-back too long for the split",
            ["--look-back", "300"],
            ["too small here", "--look-back"],
        )
    )
    cases.append(
        (
            "train size too small",
            ["--train-size", "100", "--test-size", "50"],
            ["--train-size 100 is too small", "at least 250"],
        )
    )
    (tmp / "a_file").write_text("x")
    cases.append(
        (
            "out-dir is a file",
            ["--out-dir", tmp / "a_file", "--epochs", "1"],
            ["is a file, not a folder"],
        )
    )
    cases.append(
        (
            "out-dir cannot be made",
            ["--out-dir", tmp / "a_file" / "sub"],
            ["cannot write to --out-dir"],
        )
    )
    cases.append(("negative seed", ["--seed", "-1"], ["--seed"]))
    return cases


ARGPARSE_CASES = [
    ["--look-back", "0"],
    ["--foresight", "-1"],
    ["--epochs", "0"],
    ["--batch-size", "abc"],
    ["--repeats", "0"],
    ["--train-size", "-5"],
    ["--test-size", "2.5"],
    ["--norm-window", "0"],
    ["--models", "transformer"],
    ["--protocol", "leaky"],
    ["--folds", "0"],
    ["--target", "returns"],
    ["--tickers", ","],
    ["--scale", "0"],
    ["--learning-rate", "-1"],
    ["--optimizer", "lbfgs"],
    ["--loss", "hinge"],
    ["--jobs", "0"],
    ["--jobs", "two"],
]


def test_bad_data_and_options_exit_2_with_one_clear_line_and_write_nothing(tmp_path, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name, argv, words in _csv_cases(inputs):
        out_dir = tmp_path / f"out-{name.replace(' ', '-')}"
        if "--out-dir" not in argv:
            argv = [*argv, "--out-dir", out_dir]
        with pytest.raises(SystemExit) as exc:
            slc.main([str(a) for a in argv])
        assert exc.value.code == 2, name
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
        for word in words:
            assert word in lines[0], (name, word, lines[0])
        assert not out_dir.exists(), name
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("argv", ARGPARSE_CASES, ids=lambda a: " ".join(a))
def test_bad_option_values_get_argparse_errors_naming_the_option(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        slc.main([*argv, "--out-dir", str(tmp_path / "out")])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error: argument " + argv[0] in last
    assert not (tmp_path / "out").exists()


def test_unreadable_csv(tmp_path, capsys, monkeypatch):
    path = write_csv(tmp_path / "locked.csv", price_rows("AAL", 400))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # chmod 0 does not stop root, so the refusal is simulated where the script opens the file
    monkeypatch.setattr(sd, "open", refuse, raising=False)
    with pytest.raises(SystemExit) as exc:
        slc.main(["--csv", str(path), "--out-dir", str(tmp_path / "out")])
    assert exc.value.code == 2
    expected = (
        f"error: cannot read --csv {path} (Permission denied); check the file and its permissions"
    )
    assert capsys.readouterr().err.strip() == expected
    assert not (tmp_path / "out").exists()


def test_a_csv_too_big_for_the_memory_left_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    csv = write_csv(tmp_path / "big.csv", price_rows("AAL", 3000, seed=2))
    out_dir = tmp_path / "out"
    argv = ["--csv", str(csv), "--quick", "--out-dir", str(out_dir)]
    one, two = (sd.memory_estimate(parse([*argv, "--jobs", j]), slc) for j in "12")
    assert two > one > csv.stat().st_size
    keras = lstm_lessons.parallel.KERAS_PROCESS_BYTES
    room = (one + keras + two + 2 * keras) // 2  # room for one training process, not for two
    monkeypatch.setattr(lstm_lessons.parallel, "available_memory", lambda: room)
    assert parse([*argv, "--jobs", "1"]).jobs == 1
    with pytest.raises(SystemExit) as stopped:
        slc.main([*argv, "--jobs", "2"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"(data {two / 2**30:.1f} GiB, Keras 0.8 GiB in 2 processes)" in err
    assert f"{room / 2**30:.1f} GiB is available" in err
    assert "lower --jobs or --train-size/--test-size" in err
    assert not out_dir.exists()  # nothing written
    # with memory that can't be read, no guard
    monkeypatch.setattr(lstm_lessons.parallel, "available_memory", lambda: None)
    assert parse([*argv, "--jobs", "2"]).jobs == 2


def test_the_memory_estimate_grows_with_the_csv_the_split_and_the_workers(tmp_path):
    small = write_csv(tmp_path / "small.csv", price_rows("AAL", 300))
    large = write_csv(tmp_path / "large.csv", price_rows("AAL", 3000))

    def estimate(csv, *more):
        return sd.memory_estimate(parse(["--csv", csv, *more]), slc)

    assert estimate(large) > estimate(small)
    assert estimate(large, "--jobs", "2") > estimate(large)  # each worker holds its windows
    # at most one worker per training (4 networks here, 1 with --models feed_forward)
    assert estimate(large, "--jobs", "8") == estimate(large, "--jobs", "4")
    assert estimate(large, "--jobs", "8", "--models", "feed_forward") == estimate(large)
    assert estimate(large, "--train-size", "2000") > estimate(large)
    # a split larger than the file counts the file's rows at most (check_sizes then says so)
    assert estimate(large, "--train-size", "10000000000") < 2**30
    assert estimate(large, "--protocol", "strict") > estimate(large)
    assert sd.memory_estimate(parse([]), slc) == 0  # the fallback: no CSV
