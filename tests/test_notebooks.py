"""The notebooks are made from the scripts' lesson parts, and each one runs end to end."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ["stacked_lstm_damped_sine", "bidirectional_cumsum", "stock_lstm_compare"]


def test_the_committed_notebooks_are_the_generators_output(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "notebooks" / "make_notebooks.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    stale = [
        name
        for name in NOTEBOOKS
        if (tmp_path / f"{name}.ipynb").read_text()
        != (ROOT / "notebooks" / f"{name}.ipynb").read_text()
    ]
    assert not stale, f"{stale} differ from their scripts: run python notebooks/make_notebooks.py"


def test_a_notebook_holds_the_lesson_part_and_runs_it_last():
    notebook = json.loads((ROOT / "notebooks" / "stacked_lstm_damped_sine.ipynb").read_text())
    cells = notebook["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    script = (ROOT / "stacked_lstm_damped_sine.py").read_text()
    lesson = re.split(r"^# Beyond the lesson", script, flags=re.M)[0]
    assert "def run_lesson(" in code and "lstm_lessons" not in code
    assert "model.fit(" in code and "Beyond the lesson" not in code

    # every line of the lesson's code is in the notebook, in order (its comments that stand
    # apart become Markdown)
    def statements(text):
        return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]

    assert statements(code) == statements(lesson.split('"""', 2)[2]) + [
        "quick = False  # True: the lesson's tiny sizes (QUICK), in seconds",
        "result = run_lesson(**QUICK) if quick else run_lesson()",
    ]
    parameters = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(parameters) == 1 and "".join(parameters[0]["source"]).startswith("quick = False")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_each_notebook_runs_end_to_end_with_quick_sizes(tmp_path, monkeypatch, name):
    papermill = pytest.importorskip("papermill")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's own inline figures
    out = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / f"{name}.ipynb"),
        str(out),
        parameters={"quick": True},
        cwd=str(tmp_path),  # no file of the project beside it
        kernel_name="python3",
        progress_bar=False,
    )
    cells = json.loads(out.read_text())["cells"]
    last = cells[-1]
    assert last["source"] and not [o for o in last["outputs"] if o["output_type"] == "error"]
    images = [o for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the lesson's figures show inline"
