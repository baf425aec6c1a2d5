"""Every block of the READMEs and the manual (``docs/*.md``) marked ``rendered by `python
benchmarks/X.py --render``` is what that command prints now, from the committed results file: the
numbers in the documentation cannot drift from the file."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"rendered by `python (benchmarks/\w+\.py) --render` "
                    r"from (benchmarks/measured/\w+\.json)")
DOCUMENTS = ["README.md", "llm/README.md"] + sorted(str(p.relative_to(ROOT))
                                                   for p in (ROOT / "docs").glob("*.md"))
BLOCKS = sorted({(readme, script, results) for readme in DOCUMENTS
                 for script, results in MARKER.findall((ROOT / readme).read_text())})


def test_the_readmes_have_rendered_blocks():
    assert len(BLOCKS) >= 4, BLOCKS


@pytest.mark.parametrize("readme,script,results", BLOCKS)
def test_readme_block_equals_the_render(readme, script, results, tmp_path):
    # rendered from a copy, so that a script that also redraws a figure writes it outside the tree
    copy = tmp_path / Path(results).name
    shutil.copyfile(ROOT / results, copy)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, script, "--render", "--out", str(copy)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    text = (ROOT / readme).read_text()
    rendered = done.stdout.strip()
    assert rendered, f"{script} --render printed nothing"
    missing = [line for line in rendered.splitlines()
               if line.strip() and not line.startswith("figure: ") and line not in text]
    assert not missing, (f"{readme} differs from `python {script} --render`; "
                         f"first differing line: {missing[0]!r}")
