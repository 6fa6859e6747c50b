"""The small helper block is repeated in every lesson script (so each one stands alone).

This test keeps the copies identical, so a fix made in one is made in all.
"""

import re
from pathlib import Path

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
