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
from tabular_helpers import fixed_point_map

from tabular import make_game
from tabular.cli import main

REPO = Path(__file__).resolve().parents[2]


def is_one_line_error(err: str, command: str) -> bool:
    """The one usage-error format of every CLI (opo_toolkit.cliargs): ``PROG: error: MESSAGE``."""
    return re.fullmatch(f"python -m tabular {command}: error: \\S[^\n]*\n", err) is not None


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
    assert is_one_line_error(err, "run"), err
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
    assert code == 2 and is_one_line_error(err, "solve"), err
    assert re.search(match, err)


@pytest.mark.parametrize("args", [["--taus", "1,-2"], ["--games", "nosuch"], ["--eta", "0"],
                                  ["--steps", "0"], ["--taus", "1,x"], ["--taus", "1e-300"],
                                  ["--mu-seed", "-2"], ["--games", "bt:3:1:2"]])
def test_bad_equivalence_input(args, capsys):
    assert main(["equivalence", *args]) == 2
    err = capsys.readouterr().err
    assert is_one_line_error(err, "equivalence"), err


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
    assert bad.returncode == 2 and is_one_line_error(bad.stderr, "run") and "tau" in bad.stderr
    assert not (tmp_path / "x").exists()
    np.save(tmp_path / "P.npy", make_game("rps")[0])
    ok = cli("solve", "--matrix", str(tmp_path / "P.npy"), "--tau", "1", "--json")
    assert ok.returncode == 0
    np.testing.assert_allclose(json.loads(ok.stdout)["pi"], [1 / 3] * 3, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# Issue 8: every command's --help; bad files; unusable --out refused before any work; no user
# file replaced without --overwrite.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["solve", "run", "equivalence"])
def test_help_of_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0 and "--" in capsys.readouterr().out


def _expect_one_line_exit_2(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    assert code == 2, captured
    assert is_one_line_error(captured.err, argv[0]), captured.err
    return captured.err


def _write_bad_files(d):
    np.save(d / "empty.npy", np.array([]))
    np.save(d / "struct.npy", np.zeros(3, dtype=[("a", "f8")]))
    np.save(d / "complex.npy", np.array([[0.5, 0.5], [0.5, 0.5]], dtype=complex))
    (d / "object.json").write_text(json.dumps({"P": {"a": 1}}))
    (d / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (d / "bigint.json").write_text("[[0.5, " + "9" * 400 + "], [0.5, 0.5]]")
    (d / "empty.csv").write_text("")
    (d / "ragged.json").write_text("[[0.5, 0.5], [0.5]]")
    (d / "strings.json").write_text('[["a", "b"], ["c", "d"]]')


@pytest.mark.parametrize("name, match", [
    ("empty.npy", "no numbers"), ("struct.npy", "real numbers"), ("complex.npy", "complex"),
    ("object.json", "list of numbers"), ("deep.json", "nested too deeply"),
    ("bigint.json", "too large"), ("empty.csv", "no numbers"), ("ragged.json", "vector or a matrix"),
    ("strings.json", "vector or a matrix")])
def test_bad_matrix_files_are_one_line(name, match, tmp_path, capsys):
    _write_bad_files(tmp_path)
    err = _expect_one_line_exit_2(["solve", "--matrix", str(tmp_path / name), "--tau", "1"], capsys)
    assert match in err and "Warning" not in err


def test_two_dimensional_mu_is_refused_not_flattened(tmp_path, capsys):
    np.save(tmp_path / "P.npy", np.array([[0.5, 0.9], [0.1, 0.5]]))
    np.save(tmp_path / "mu.npy", np.full((1, 2), 0.5))
    err = _expect_one_line_exit_2(["solve", "--matrix", str(tmp_path / "P.npy"), "--tau", "1",
                                   "--mu", str(tmp_path / "mu.npy")], capsys)
    assert "mu must be a vector" in err


def test_a_solver_error_is_one_line(monkeypatch, tmp_path, capsys):
    """Whatever ValueError the solver raises (numpy's LinAlgError is one) becomes one line + exit 2."""
    import tabular.cli as tcli

    def fail(*args, **kwargs):
        raise np.linalg.LinAlgError("Singular\nmatrix")

    monkeypatch.setattr(tcli, "solve_equilibrium", fail)
    np.save(tmp_path / "P.npy", make_game("bt:6:5")[0])
    err = _expect_one_line_exit_2(["solve", "--matrix", str(tmp_path / "P.npy"), "--tau", "1e-10"], capsys)
    assert "Singular matrix" in err


MORE_BAD_RUNS = {
    "game too large": (["--game", "majority:200000"], "N must lie in"),
    "majority needing too much memory": (["--game", "majority:4000:1001"], "GiB"),
    "extra spec fields": (["--game", "bt:4:1:2:3:4"], "at most 2"),
    "seed negative": (["--seed", "-1"], "seed must lie"),
    "seed above 2**63 - 1": (["--seed", str(2**70)], "seed must lie"),
    "seed in the spec negative": (["--game", "bt:4:-3"], "seed must lie"),
    "too many seeds": (["--seeds", "100000000"], "GiB"),
}


@pytest.mark.parametrize("name", MORE_BAD_RUNS)
def test_more_bad_run_input(name, tmp_path, capsys, monkeypatch):
    import tabular.cli as tcli

    monkeypatch.setattr(tcli, "solve_equilibrium", None)  # refused before any computation
    extra, match = MORE_BAD_RUNS[name]
    args = {"--algorithms": "online_ipo", "--game": "bt:3", "--tau": "1", "--steps": "2",
            "--out": str(tmp_path / "never")}
    args.update(zip(extra[::2], extra[1::2]))
    err = _expect_one_line_exit_2(["run"] + [x for kv in args.items() for x in kv], capsys)
    assert match in err and not (tmp_path / "never").exists()


@pytest.mark.parametrize("where", ["under a file", "read-only", "a file"])
def test_unusable_out_is_refused_before_any_computation(where, tmp_path, capsys, monkeypatch):
    import tabular.cli as tcli

    (tmp_path / "afile").write_text("mine")
    if where == "read-only":
        if not Path("/proc").is_dir():
            pytest.skip("needs /proc (a place no user, root included, can create files in)")
        out = "/proc/no_such_dir/out"  # chmod would not stop root, which runs CI here
    else:
        out = str(tmp_path / "afile" / "out") if where == "under a file" else str(tmp_path / "afile")
    monkeypatch.setattr(tcli, "solve_equilibrium", None)  # any computation would raise TypeError
    before = sorted(p.name for p in tmp_path.iterdir())
    err = _expect_one_line_exit_2(["run", "--algorithms", "online_ipo", "--game", "bt:3", "--tau",
                                   "1", "--out", out], capsys)
    assert "--out" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "afile").read_text() == "mine"


@pytest.mark.parametrize("out", ["", "  "])
def test_empty_out_is_refused(out, tmp_path, capsys, monkeypatch):
    """``Path("")`` is ".": an empty --out used to write metrics.csv into the working folder."""
    import tabular.cli as tcli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tcli, "solve_equilibrium", None)
    err = _expect_one_line_exit_2(["run", "--algorithms", "online_ipo", "--game", "bt:3", "--tau",
                                   "1", "--steps", "2", "--out", out], capsys)
    assert "--out is empty" in err and list(tmp_path.iterdir()) == []


def test_run_never_replaces_results_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "--algorithms", "online_ipo", "--game", "bt:3", "--tau", "1", "--steps", "2",
            "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    (out / "metrics.csv").write_text("the user's own file\n")
    config = (out / "config.json").read_bytes()
    err = _expect_one_line_exit_2(argv, capsys)
    assert "--overwrite" in err
    assert (out / "metrics.csv").read_text() == "the user's own file\n"
    assert (out / "config.json").read_bytes() == config
    assert main(argv + ["--overwrite"]) == 0
    assert (out / "metrics.csv").read_text().startswith("algorithm,form")


def test_extreme_tau_runs(tmp_path, capsys):
    """tau = 1e300 used to overflow in 20 tau**2; the default learning rate is finite now."""
    assert main(["run", "--algorithms", "online_ipo,online_dpo,nash_md_pg", "--game", "bt:3",
                 "--tau", "1e300", "--steps", "2", "--lr", "0.1", "--out", str(tmp_path / "a")]) == 0
    assert main(["run", "--algorithms", "online_ipo,online_slic", "--game", "bt:3", "--tau", "1e300",
                 "--steps", "2", "--out", str(tmp_path / "b")]) == 0
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert all(0 < a["effective_lr"] < 1 for a in config["algorithms"])


def test_solve_json_is_strict_when_the_residual_overflows(rps_file, monkeypatch, capsys):
    # at tau ~ 5e-324 the log-space residual (round-off / tau) can overflow to inf; --json must stay
    # valid JSON (no bare Infinity): the non-finite field becomes null, the gap still certifies
    import dataclasses

    import tabular.cli as tcli

    real = tcli.solve_equilibrium
    monkeypatch.setattr(tcli, "solve_equilibrium",
                        lambda P, mu, tau: dataclasses.replace(real(P, mu, tau), residual=float("inf")))
    assert main(["solve", "--matrix", str(rps_file), "--tau", "0.1", "--json"]) == 0
    out = capsys.readouterr().out
    d = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert d["residual"] is None and d["gap"] <= 1e-12


# ---------------------------------------------------------------------------------------------
# Issue 10: --eta reaches only the methods that use it; the CLI leaves run results as run() made them.
# ---------------------------------------------------------------------------------------------
def test_eta_no_algorithm_uses_is_refused(tmp_path, capsys):
    err = _expect_one_line_exit_2(["run", "--algorithms", "online_ipo,ipo_md", "--game", "bt:3",
                                   "--tau", "1", "--eta", "0.5", "--out", str(tmp_path / "x")], capsys)
    assert "--eta" in err and "none of online_ipo, ipo_md uses it" in err
    assert not (tmp_path / "x").exists()


def test_eta_goes_to_the_mirror_descent_methods_only(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--algorithms", "online_ipo,nash_md,extragradient", "--game", "bt:3",
                 "--tau", "1", "--eta", "0.5", "--steps", "2", "--out", str(out)]) == 0
    etas = {a["name"]: a["eta"] for a in json.loads((out / "config.json").read_text())["algorithms"]}
    assert etas == {"online_ipo": None, "nash_md": 0.5, "extragradient": 0.5}


def test_run_leaves_the_results_unchanged(tmp_path, capsys, monkeypatch):
    """The distance to the limit is computed beside the result, not written into it."""
    import copy
    import dataclasses
    import types

    import tabular.cli as tcli

    def fields(res):  # a read-only mapping (the frozen result's extra) is compared as a dict
        return {f.name: (dict(v) if isinstance(v := getattr(res, f.name), types.MappingProxyType) else v)
                for f in dataclasses.fields(res)}

    returned = []

    def recording_run(*args, **kwargs):
        res = tcli_run(*args, **kwargs)
        returned.append((res, copy.deepcopy(fields(res))))
        return res

    tcli_run = tcli.run
    monkeypatch.setattr(tcli, "run", recording_run)
    out = tmp_path / "run"
    assert main(["run", "--algorithms", "online_ipo,online_dpo,online_slic", "--game", "bt:3", "--tau", "1",
                 "--steps", "2", "--out", str(out)]) == 0
    assert len(returned) == 3
    for res, before in returned:
        after = fields(res)
        assert after.keys() == before.keys()
        for key in before:
            np.testing.assert_equal(after[key], before[key], err_msg=key)
    final = json.loads((out / "config.json").read_text())["final"]
    assert final["online_ipo"]["limit_distance"] < 1  # online IPO has a limit (pi*)
    assert final["online_dpo"]["limit_distance"] < 1  # online DPO's stationary point (pairwise_limits)
    assert final["online_slic"]["limit_distance"] is None  # online SLiC has none
