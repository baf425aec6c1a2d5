"""Do two commits produce the same outputs? The check a restructuring must pass (issue 20).

Usage: ``python .ci/same_outputs.py OLD [NEW] [--keep DIR]`` (NEW defaults to the working tree; OLD and NEW
are anything ``git worktree add`` takes). Each side is checked out into a temporary worktree and
runs, with this interpreter (its installed dependencies) and one thread, the small versions of
the main job's stages:

- ``python -m tabular equivalence`` and ``python -m proofs_check --quick --json`` (their stdout);
- ``python -m tabular run`` exact (300 steps) and sampled (64 pairs, 3 seeds, 300 steps) of the
  main job's eight algorithms on its game (``metrics.csv``);
- ``python -m figures --quick --only simplex,convergence,equivalence,dpo,bias`` (every CSV);
- ``python -m llm exact`` with the tiny preset, its seven methods and 20 steps (every JSON);
- ``python -m llm pipeline`` with the main job's ``--quick`` stages and 1 chain (``summary.json``).

Then every output file is compared, less what records the run rather than its results: each
side's own folders become placeholders; JSON keys and CSV columns that time or place the run
(times, dates, commit, machine) and text lines with a duration are left out; the rest must be
equal byte for byte. Prints one line per file and exits 1 on any difference (``--keep DIR``
copies both sides of each differing file there).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALGORITHMS = "online_ipo,ipo_md,nash_md,extragradient,self_play,online_dpo,online_slic,offline_ipo"
EXACT_METHODS = "online_ipo,ipo_md,nash_md_pg,self_play,online_dpo,online_slic,rl"
GAME = ["--game", "majority:8:5", "--tau", "0.1", "--beta", "0.125"]
STEPS = [
    ("equivalence.txt", ["-m", "tabular", "equivalence"]),
    ("ledger.json", ["-m", "proofs_check", "--quick", "--json"]),
    (None, ["-m", "tabular", "run", "--algorithms", ALGORITHMS, *GAME, "--steps", "300",
            "--out", "{out}/tabular_exact"]),
    (None, ["-m", "tabular", "run", "--algorithms", ALGORITHMS, *GAME, "--steps", "300", "--sampled",
            "--batch", "64", "--seeds", "3", "--out", "{out}/tabular_sampled"]),
    (None, ["-m", "figures", "--quick", "--only", "simplex,convergence,equivalence,dpo,bias",
            "--out", "{out}/figures", "--no-progress"]),
    (None, ["-m", "llm", "exact", "--preset", "tiny", "--methods", EXACT_METHODS, "--steps", "20",
            "--out", "{out}/exact"]),
    (None, ["-m", "llm", "pipeline", "--out", "{out}/llm", "--sft-steps", "200", "--pm-steps", "100",
            "--align-steps", "30", "--seeds", "1", "--eval-every", "10", "--n-prompts", "256",
            "--samples-per-prompt", "2"]),
]
# what records the run rather than its results: a JSON key or CSV column one of whose words
# (split at "_" and other non-letters) is one of these, or that ends in "_s" (seconds)
VOLATILE_WORDS = {"time", "times", "date", "utc", "commit", "git", "dirty", "machine", "host",
                  "hostname", "pid", "provenance", "path", "out", "dir", "wall", "seconds",
                  "elapsed", "duration", "load", "python", "versions", "created", "started",
                  "finished", "measured"}
TIMING = re.compile(r"(\d+(\.\d+)?\s*(s|ms|min)\b|seconds|elapsed|wall)", re.I)


def volatile(key: str) -> bool:
    words = set(re.split(r"[^a-z0-9]+", key.lower()))
    return bool(words & VOLATILE_WORDS) or key.endswith("_s")


def strip(value):
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if not volatile(k)}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def run_side(tree: Path, out: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(tree), MPLBACKEND="Agg",
               PYTHONHASHSEED="0")
    out.mkdir(parents=True)
    for stdout_name, args in STEPS:
        args = [a.replace("{out}", str(out)) for a in args]
        done = subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{tree.name}: python {' '.join(args)} failed (exit {done.returncode}): "
                     f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}")
        if stdout_name:
            (out / stdout_name).write_text(done.stdout)


def comparable(path: Path, roots: tuple[Path, ...]):
    """The file's content less what records the run: each side's own folders (worktree, outputs)
    written as placeholders, JSON keys and CSV columns that time or place the run, text lines
    with a duration."""
    text = path.read_text()
    for k, root in enumerate(roots):
        text = text.replace(str(root), f"<root{k}>")
    if path.suffix == ".json":
        return json.dumps(strip(json.loads(text)), sort_keys=True)
    if path.suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        keep = [i for i, name in enumerate(rows[0] if rows else []) if not volatile(name)]
        return [[row[i] for i in keep if i < len(row)] for row in rows]
    return "\n".join(line for line in text.splitlines() if not TIMING.search(line))


def main(argv: list[str]) -> int:
    keep = None
    if "--keep" in argv:  # --keep DIR: copy the differing files of both sides there
        i = argv.index("--keep")
        keep, argv = Path(argv[i + 1]), argv[:i] + argv[i + 2:]
    if not 1 <= len(argv) <= 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    old, new = argv[0], argv[1] if len(argv) == 2 else None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trees = {}
        for name, ref in (("old", old), ("new", new)):
            if ref is None:
                trees[name] = ROOT
                continue
            trees[name] = tmp / name
            subprocess.run(["git", "worktree", "add", "--detach", "-q", str(trees[name]), ref], cwd=ROOT,
                           check=True)
        try:
            for name, tree in trees.items():
                print(f"running {name} ({tree})", flush=True)
                run_side(tree, tmp / f"out_{name}")
            files = sorted(p.relative_to(tmp / "out_old") for p in (tmp / "out_old").rglob("*") if p.is_file()
                           and p.suffix in (".csv", ".json", ".txt", ".md"))
            differ = 0
            for rel in files:
                a, b = tmp / "out_old" / rel, tmp / "out_new" / rel
                same = b.is_file() and (comparable(a, (trees["old"], tmp / "out_old"))
                                        == comparable(b, (trees["new"], tmp / "out_new")))
                if not same and keep:
                    for side, f in (("old", a), ("new", b)):
                        target = keep / side / rel
                        target.parent.mkdir(parents=True, exist_ok=True)
                        if f.is_file():
                            target.write_bytes(f.read_bytes())
                differ += not same
                print(f"{'same' if same else 'DIFFERS'}  {rel}")
            extra = sorted(p.relative_to(tmp / "out_new") for p in (tmp / "out_new").rglob("*") if p.is_file()
                           and not (tmp / "out_old" / p.relative_to(tmp / "out_new")).exists())
            for rel in extra:
                print(f"only in new  {rel}")
            print(f"{len(files) - differ} of {len(files)} files identical"
                  + (f"; {len(extra)} only in new" if extra else ""))
            return 1 if differ or extra else 0
        finally:
            for name, tree in trees.items():
                if tree != ROOT:
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
