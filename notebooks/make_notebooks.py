"""
Make each lesson's notebook from its script's lesson part (everything above the line that
begins "# Beyond the lesson"), so that the notebook and the script never drift apart.

    python notebooks/make_notebooks.py           # rewrites the three notebooks beside this file
    python notebooks/make_notebooks.py --out DIR # writes them to DIR instead

The notebooks end with a cell tagged `parameters` (papermill's), `quick = False`, and one that
runs the lesson; they are written without outputs, so that their diffs stay readable.
"""

import argparse
import ast
import re
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ["stacked_lstm_damped_sine.py", "bidirectional_cumsum.py", "stock_lstm_compare.py"]
BANNER = re.compile(r"^# ?-{10,}$")  # the lines that frame a section heading in the script
SECTION = re.compile(r"^# -{3} (.+?) -{3}$")
NUMBERED = re.compile(r"^\d+(\.\d+)+\b")  # a section number: 7.2, 10.4, 7.2.1


def lesson_part(script):
    """The script's text above its '# Beyond the lesson' line."""
    text = script.read_text()
    match = re.search(r"^# Beyond the lesson", text, flags=re.M)
    if match is None:
        raise SystemExit(f"error: {script.name} has no '# Beyond the lesson' line")
    return text[: match.start()]


def header_markdown(docstring):
    """keras-io's header ("Title: ...", then fields, then prose) as Markdown."""
    lines = docstring.strip().splitlines()
    title = lines[0].removeprefix("Title:").strip()
    fields, prose = [], []
    for line in lines[1:]:
        if not prose and re.match(r"^[A-Z][a-z ]+: ", line):
            fields.append(f"**{line.split(':')[0]}:**{line.split(':', 1)[1]}<br>")
        else:
            prose.append(line)
    # the command lines, and the paragraph on what the script adds below its lesson, are
    # about the script: the notebook has its lesson only
    paragraphs = "\n".join(prose).strip().split("\n\n")
    body = "\n\n".join(
        p
        for p in paragraphs
        if "Beyond the lesson" not in p and not p.lstrip().startswith("python ")
    )
    # the docstring's indented command lines are a code block in Markdown too
    body = re.sub(
        r"((?:^    .*\n?)+)", lambda m: f"```\n{textwrap.dedent(m.group(1))}```\n", body, flags=re.M
    )
    return f"# {title}\n\n" + "\n".join(fields) + "\n\n" + body


def cells_of(source):
    """Markdown for the comments that stand apart, code for each top-level step."""
    tree = ast.parse(source)
    lines = source.splitlines()
    docstring = ast.get_docstring(tree)
    body = tree.body[1:] if docstring else tree.body
    cells = [new_markdown_cell(header_markdown(docstring or ""))]
    previous_end = tree.body[0].end_lineno if docstring else 0
    cell_start = None  # the first line of the code cell being gathered

    def flush(end):
        nonlocal cell_start
        if cell_start is not None:
            cells.append(new_code_cell("\n".join(lines[cell_start:end]).strip("\n")))
            cell_start = None

    for node in body:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        gap = lines[previous_end:start]  # comments and blank lines before the statement
        attached = 0  # the comments directly above the statement stay with its code
        while attached < len(gap) and gap[len(gap) - 1 - attached].startswith("#"):
            attached += 1
        if attached and NUMBERED.match(gap[len(gap) - attached].lstrip("# ")):
            attached = 0  # a section heading right above its code is still a heading
        detached = gap[: len(gap) - attached]
        is_step = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        if any(line.startswith("#") for line in detached) or is_step:
            flush(previous_end)
        if any(line.startswith("#") for line in detached):
            cells.append(new_markdown_cell(comments_markdown(detached)))
        if cell_start is None:
            cell_start = start - attached
        previous_end = node.end_lineno
        if is_step:
            flush(previous_end)
    flush(previous_end)
    return cells


def comments_markdown(gap):
    """Each block of comments: a heading, then a paragraph of what follows it.

    A block's first line is a heading where banners frame it, where it starts with a
    section number (7.2, 10.4), or where it is short and ends without punctuation.
    """
    blocks, block, framed = [], [], False
    for line in gap + [""]:
        if BANNER.match(line):
            framed = True
        elif SECTION.match(line):  # a one-line section heading: "# --- 7.2 The problem ---"
            blocks.append((True, [SECTION.match(line).group(1)]))
        elif line.startswith("#"):
            block.append(line.lstrip("#").strip())
        elif block:
            blocks.append((framed, block))
            block, framed = [], False
    parts = []
    for framed, (first, *rest) in blocks:
        number = NUMBERED.match(first)
        if framed or number or (len(first) < 80 and not first.endswith((".", ",", ";", ":"))):
            deep = number and number.group(0).count(".") > 1  # 7.2.1: under 7.2
            parts.append(f"{'###' if deep else '##'} {first}")
        else:
            rest = [first, *rest]
        if rest:
            parts.append(" ".join(rest))
    return "\n\n".join(parts)


def notebook_for(script):
    cells = cells_of(lesson_part(script))
    parameters = new_code_cell("quick = False  # True: the lesson's tiny sizes (QUICK), in seconds")
    parameters.metadata["tags"] = ["parameters"]
    cells += [
        new_markdown_cell("## Run the lesson\n\nSet `quick = True` for a run of seconds."),
        parameters,
        new_code_cell("result = run_lesson(**QUICK) if quick else run_lesson()"),
    ]
    for n, cell in enumerate(cells):  # stable ids: the same script gives the same file
        cell.id = f"{script.stem[:20]}-{n:02d}"
    notebook = new_notebook(cells=cells)
    notebook.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    return notebook


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in SCRIPTS:
        notebook = notebook_for(ROOT / name)
        nbformat.validate(notebook)
        path = args.out / f"{Path(name).stem}.ipynb"
        nbformat.write(notebook, path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
