#!/usr/bin/env python3
"""Two entry points that work on a fresh machine with only Python 3.11+.

    python3 tasks.py run    # the main job: equivalence check, ledger, LLM pipeline, exact LLM task, figures
    python3 tasks.py test   # the test suite (what CI runs)

Both create ``.venv`` on first use and install the project into it (CPU build of torch, via
``constraints-cpu.txt``; see README "Installing"). Run ``python3 tasks.py --help`` for options.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".installed"


def _fingerprint() -> str:
    h = hashlib.sha256()
    for name in ("pyproject.toml", "constraints-cpu.txt"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def ensure_venv() -> None:
    """Create .venv and install the project (once; again when pyproject changes)."""
    if sys.version_info < (3, 11):
        sys.exit(f"error: Python 3.11+ required, this is {sys.version.split()[0]}")
    if PY.exists() and STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    if not PY.exists():
        print("[tasks] creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("[tasks] installing the project into .venv (CPU torch; takes ~2 minutes the first time)",
          flush=True)
    t0 = time.time()
    cmd = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-e", ".[dev]",
           "-c", "constraints-cpu.txt"]
    if subprocess.call(cmd, cwd=ROOT) != 0:
        sys.exit("error: pip install failed (see above); on a machine without the local CPU torch "
                 "wheel, remove '-c constraints-cpu.txt' or install torch first")
    STAMP.write_text(_fingerprint())
    print(f"[tasks] installed in {time.time() - t0:.0f} s", flush=True)


def _env(threads: int) -> dict:
    env = dict(os.environ)
    # The CPU cores are shared: spin-waiting OpenMP threads slow torch down badly (ENVIRONMENT.md).
    env.setdefault("OMP_NUM_THREADS", str(threads))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _step(title: str, args: list[str], env: dict) -> None:
    print(f"\n[tasks] === {title}: python {' '.join(args)}", flush=True)
    t0 = time.time()
    rc = subprocess.call([str(PY), *args], cwd=ROOT, env=env)
    print(f"[tasks] --- {title} finished in {time.time() - t0:.0f} s (exit {rc})", flush=True)
    if rc != 0:
        sys.exit(rc)


def cmd_run(ns) -> None:
    ensure_venv()
    env = _env(1)
    out = Path(ns.out)
    _step("tabular equivalence (online IPO = Nash-MD = exact pi*)",
          ["-m", "tabular", "equivalence"], env)
    algorithms = "online_ipo,ipo_md,nash_md,extragradient,self_play,online_dpo,online_slic,offline_ipo"
    game = ["--game", "majority:8:5", "--tau", "0.1", "--beta", "0.125"]
    _step("tabular convergence experiment, exact",
          ["-m", "tabular", "run", "--algorithms", algorithms, *game, "--steps", "2000",
           "--out", str(out / "tabular_exact")], env)
    _step("tabular convergence experiment, sampled (64 pairs a step, 10 seeds)",
          ["-m", "tabular", "run", "--algorithms", algorithms, *game, "--steps", "2000",
           "--sampled", "--batch", "64", "--seeds", "10", "--out", str(out / "tabular_sampled")],
          env)
    _step("proposition ledger", ["-m", "proofs_check", *(["--quick"] if ns.quick else [])], env)
    if not ns.no_llm:
        # The README's reference run is the default `python -m llm pipeline` (3 chains x 2 judges;
        # its wall time is in the README); the main job runs the same protocol with smaller stages
        # (sized for ~10 min, not yet timed alone), --quick smaller still (2 chains).
        small = ["--sft-steps", "300", "--pm-steps", "250", "--align-steps", "100", "--n-prompts", "512",
                 "--samples-per-prompt", "2"]
        quick = ["--sft-steps", "200", "--pm-steps", "100", "--align-steps", "30", "--seeds", "2",
                 "--eval-every", "10", "--n-prompts", "256", "--samples-per-prompt", "2"]
        _step("LLM pipeline (CPU)", ["-m", "llm", "pipeline", "--out", str(out / "llm"),
                                     "--overwrite", *(quick if ns.quick else small)], env)
        # The enumerable task: transformers against their exact tabular targets (the committed
        # reference is `--preset reference`; the main job runs `small`, --quick `tiny`).
        _step("LLM against exact targets (enumerable task)",
              ["-m", "llm", "exact", "--out", str(out / "exact"), "--overwrite",
               "--preset", "tiny" if ns.quick else "small",
               "--workers", "1" if ns.quick else "2"], env)  # small: its 2 chains on the 2 cores
    exact = ["--exact-results", str(out / "exact")] if not ns.no_llm else []
    _step("figures", ["-m", "figures", "--out", str(out / "figures"),
                      "--llm-results", str(out / "llm"), *exact, *(["--quick"] if ns.quick else [])], env)
    print(f"\n[tasks] done: results and figures are in {out}/", flush=True)


def cmd_test(ns) -> None:
    ensure_venv()
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider"]
    if not ns.all:
        args += ["-m", "not slow"]
    _step("tests", args + ns.pytest_args, _env(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="the main job: experiments, ledger, LLM pipeline, figures")
    p.add_argument("--out", default="results", help="folder for every output (default: results)")
    p.add_argument("--quick", action="store_true",
                   help="small versions of every stage (minutes; README, Quick start, has the time)")
    p.add_argument("--no-llm", action="store_true",
                   help="skip the LLM stages (the pipeline and the exact task; README, Quick start, "
                        "gives the measured times)")
    p.set_defaults(fn=cmd_run)
    t = sub.add_parser("test", allow_abbrev=False,
                       help="run the test suite (slow-marked tests excluded unless --all); every "
                            "other argument goes to pytest in order, e.g. "
                            "test -k equivalence --hypothesis-profile thorough")
    t.add_argument("--all", action="store_true", help="include tests marked slow")
    t.set_defaults(fn=cmd_test)
    # parse_known_args keeps the arguments it does not know, in order: for `test` they are
    # pytest's (options with their values, paths); a positional nargs="*" would reject "-k".
    ns, unknown = parser.parse_known_args()
    if ns.command != "test" and unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    ns.pytest_args = unknown
    ns.fn(ns)


if __name__ == "__main__":
    main()
