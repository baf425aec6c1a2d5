"""CLI: a smoke run of each subcommand, --json output, and one-line exit-2 errors."""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tabular import make_game
from tabular.cli import main
from tabular_helpers import fixed_point_map

REPO = Path(__file__).resolve().parents[2]


def cli(*args, cwd=None):
    """``python -m tabular ARGS`` in a subprocess (what a user runs)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "tabular", *args], capture_output=True,
                          text=True, env=env, cwd=cwd or REPO, timeout=300)


@pytest.fixture
def rps_file(tmp_path):
    path = tmp_path / "P.npy"
    np.save(path, make_game("perturbed_rps")[0])
    return path


def test_solve_json(rps_file, tmp_path, capsys):
    mu = np.array([0.2, 0.3, 0.5])
    np.savetxt(tmp_path / "mu.csv", mu[None], delimiter=",", fmt="%.17g")
    assert main(["solve", "--matrix", str(rps_file), "--mu", str(tmp_path / "mu.csv"),
                 "--tau", "0.3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"pi", "gap", "residual", "iterations", "method", "converged"} <= set(out)
    pi = np.array(out["pi"])
    P = make_game("perturbed_rps")[0]
    np.testing.assert_allclose(pi, fixed_point_map(P, mu, 0.3, pi), rtol=1e-12)
    assert out["gap"] <= 1e-12 and out["converged"] is True


def test_solve_lp_text(rps_file, capsys):
    assert main(["solve", "--matrix", str(rps_file), "--tau", "0"]) == 0
    text = capsys.readouterr().out
    assert "method = support" in text and "exploitability" in text
    assert main(["solve", "--matrix", str(rps_file), "--tau", "0", "--json"]) == 0
    np.testing.assert_allclose(json.loads(capsys.readouterr().out)["pi"],
                               np.array([1, 3, 3]) / 7, atol=1e-9)


def test_run_writes_long_csv_and_config(tmp_path, capsys):
    out = tmp_path / "run"
    algos = ["online_ipo", "nash_md", "rl", "ipo_md", "online_dpo"]
    assert main(["run", "--algorithms", ",".join(algos), "--game", "bt:4:1", "--tau", "0.5",
                 "--beta", "0.2", "--steps", "6", "--seeds", "3", "--record-every", "3",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for a in algos:
        assert a in printed  # the summary table has a row per algorithm
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["algorithm", "form", "game", "seed", "step", "metric", "value"]
    # 5 algorithms x 3 seeds x steps {0, 3, 6} x 5 metrics
    assert len(rows) == 5 * 3 * 3 * 5
    assert {r["step"] for r in rows} == {"0", "3", "6"}
    assert {r["seed"] for r in rows} == {"0", "1", "2"}
    config = json.loads((out / "config.json").read_text())
    assert set(config["versions"]) == {"python", "numpy", "scipy", "torch"}
    assert config["config"]["steps"] == 6 and config["pi_star"]["gap"] <= 1e-12
    np.testing.assert_array_equal(config["game"]["P"], make_game("bt:4:1")[0])
    assert not list(out.glob("*.tmp"))  # atomic writes leave no temporary files


def test_run_sampled_adam(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--algorithms", "online_ipo,nash_md_pg", "--game", "cyclic:5",
                 "--tau", "1", "--steps", "3", "--seeds", "2", "--sampled", "--batch", "8",
                 "--label-type", "bernoulli", "--optimizer", "adam", "--init", "random",
                 "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert {r["form"] for r in rows} == {"sampled"}


def test_equivalence_passes_and_json_parses(capsys):
    assert main(["equivalence", "--games", "rps,bt:4", "--taus", "1", "--nash-md-steps", "500",
                 "--sampled-steps", "20", "--batch", "64", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["passed"] is True and len(out["cases"]) == 2
    case = out["cases"][0]
    assert case["dist_to_pi_star"]["online_ipo"] <= 1e-10
    assert case["dist_to_ipo_md_point"]["nash_md_eta"] <= 1e-10


def test_equivalence_can_fail(capsys):
    """Asking for more than float64 can give must fail with exit code 1."""
    assert main(["equivalence", "--games", "bt:3", "--taus", "1", "--nash-md-steps", "50",
                 "--sampled-steps", "2", "--batch", "8", "--tol", "1e-300"]) == 1
    assert "FAIL" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Bad input: one line on stderr, exit 2, nothing written.
# ---------------------------------------------------------------------------------------------
BAD_RUNS = {
    "unknown algorithm": ["--algorithms", "online_ipo,nosuch"],
    "unknown game": ["--game", "nosuch:3"],
    "bad game args": ["--game", "bt:x"],
    "tau zero": ["--tau", "0"],
    "tau negative": ["--tau", "-1"],
    "tau not a number": ["--tau", "abc"],
    "beta above 1": ["--algorithms", "ipo_md", "--beta", "1.5"],
    "beta negative": ["--beta", "-0.1"],
    "steps zero": ["--steps", "0"],
    "seeds zero": ["--seeds", "0"],
    "batch zero": ["--sampled", "--batch", "0"],
    "lr negative": ["--lr", "-1"],
    "eta negative": ["--algorithms", "nash_md", "--eta", "-1"],
    "eta tau > 1": ["--algorithms", "nash_md", "--eta", "5"],
    "optimizer": ["--optimizer", "rmsprop"],
    "label type": ["--label-type", "fuzzy"],
    "rl on a cyclic game": ["--algorithms", "rl", "--game", "cyclic:5"],
    "missing mu file": ["--mu", "/nonexistent/mu.npy"],
    "record every zero": ["--record-every", "0"],
}


@pytest.mark.parametrize("name", BAD_RUNS)
def test_bad_run_input(name, tmp_path, capsys):
    out = tmp_path / "never"
    args = {"--algorithms": "online_ipo", "--game": "bt:3", "--tau": "1", "--steps": "2",
            "--out": str(out)}
    extra = [a for a in BAD_RUNS[name] if a != "--sampled"]
    args.update(zip(extra[::2], extra[1::2]))
    argv = ["run"] + [x for kv in args.items() for x in kv]
    argv += ["--sampled"] if "--sampled" in BAD_RUNS[name] else []
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("args, match", [
    (["--matrix", "/nonexistent/P.npy", "--tau", "1"], "file not found"),
    (["--matrix", "{asym}", "--tau", "1"], "P \\+ P.T"),
    (["--matrix", "{good}", "--tau", "-1"], "tau"),
    (["--matrix", "{good}", "--tau", "1", "--mu", "{badmu}"], "sum to 1"),
    (["--matrix", "{good}"], "required"),
])
def test_bad_solve_input(args, match, tmp_path, capsys):
    np.save(tmp_path / "asym.npy", np.array([[0.5, 0.9], [0.9, 0.5]]))
    np.save(tmp_path / "good.npy", np.array([[0.5, 0.9], [0.1, 0.5]]))
    np.save(tmp_path / "badmu.npy", np.array([0.5, 0.6]))
    argv = ["solve"] + [a.format(asym=tmp_path / "asym.npy", good=tmp_path / "good.npy",
                                 badmu=tmp_path / "badmu.npy") for a in args]
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert re.search(match, err)


@pytest.mark.parametrize("args", [["--taus", "1,-2"], ["--games", "nosuch"], ["--eta", "0"],
                                  ["--steps", "0"], ["--taus", "1,x"]])
def test_bad_equivalence_input(args, capsys):
    assert main(["equivalence", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_help_states_defaults():
    from tabular.cli import build_parser
    sub = build_parser()._subparsers._group_actions[0].choices
    text = sub["run"].format_help()
    assert "(default: 1000)" in text and "--record-every" in text and "SUPPRESS" not in text
    assert "(default: 1,0.5,0.2)" in sub["equivalence"].format_help()


def test_subprocess_entry_points(tmp_path):
    """What a user types: no subcommand -> help and exit 2; bad input -> one line; a solve."""
    bare = cli()
    assert bare.returncode == 2 and "solve" in bare.stderr and "equivalence" in bare.stderr
    bad = cli("run", "--algorithms", "online_ipo", "--game", "bt:3", "--tau", "-1",
              "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "tau" in bad.stderr
    assert not (tmp_path / "x").exists()
    np.save(tmp_path / "P.npy", make_game("rps")[0])
    ok = cli("solve", "--matrix", str(tmp_path / "P.npy"), "--tau", "1", "--json")
    assert ok.returncode == 0
    np.testing.assert_allclose(json.loads(ok.stdout)["pi"], [1 / 3] * 3, atol=1e-15)
