"""Smoke and content tests of ``python -m figures``.

One ``--quick`` run (subprocess, as a user would type it) into a temporary folder, with a small
synthetic LLM results folder (fake numbers: this tests the plotting, not results); then every file
is checked to exist and be a real PNG / PDF, and each CSV to hold the numbers its figure claims.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from figures import tabular_figures as tf
from figures.cli import main
from figures.common import Sizes, finish
from figures.llm_figures import BETA_SWEEP, LLM_FIGURES, TAU_SWEEP, sweep_lines

ROOT = Path(__file__).resolve().parents[2]
TABULAR = ["fig1_simplex", "fig2_convergence_tau0.1", "fig2_convergence_tau0.01", "fig3_equivalence",
           "fig4_dpo_not_nash", "fig5_mixture_bias"]
METHODS = ["online_ipo", "online_dpo", "ipo_md"]


def write_llm_results(d: Path, include_sft_in_methods: bool = False) -> None:
    """Synthetic ``llm pipeline`` output: a 4x4 matrix over sft + 3 methods, and the three CSVs."""
    d.mkdir(parents=True, exist_ok=True)
    k = len(METHODS) + 1
    mean = np.full((k, k), 0.5)
    mean[np.triu_indices(k, 1)] = [0.6, 0.7, 0.65, 0.55, 0.52, 0.48]  # p(row > col) above the diagonal
    mean[np.tril_indices(k, -1)] = 1 - mean.T[np.tril_indices(k, -1)]
    methods = (["sft"] + METHODS) if include_sft_in_methods else METHODS
    summary = {"methods": methods, "win_matrix_gold_mean": mean.tolist(),
               "win_matrix_gold_std": np.full((k, k), 0.01).tolist(),
               "winrate_vs_sft": {m: {"mean": 0.6, "std": 0.01, "per_seed": [0.59, 0.6, 0.61]}
                                  for m in METHODS},
               "reliability": {"pm": [{"lo": b / 10, "hi": (b + 1) / 10, "count": 10 * b,
                                       "mean_pred": b / 10 + 0.05 if b else None,
                                       "mean_gold": b / 10 if b else None}
                                      for b in range(10)]}}
    (d / "summary.json").write_text(json.dumps(summary))
    with open(d / "curves.csv", "w") as f:
        f.write("method,tau,beta,seed,step,winrate_vs_sft\n")
        for m in METHODS:
            for tau in (0.1, 1.0):
                for seed in range(2):
                    for step in (0, 50, 100):
                        beta = 0.125 if m == "ipo_md" else 0.0
                        f.write(f"{m},{tau},{beta},{seed},{step},{0.5 + step / 1000}\n")
    with open(d / "tau_sweep.csv", "w") as f:
        f.write("method,tau,seed,winrate_vs_sft\n")
        for m in ("online_ipo", "online_dpo"):
            for tau in (0.1, 1.0, 5.0):
                for seed in range(2):
                    f.write(f"{m},{tau},{seed},{0.55 + 0.01 * seed}\n")
    with open(d / "beta_sweep.csv", "w") as f:
        f.write("method,beta,tau,seed,winrate_vs_sft\n")
        for beta in (0.0, 0.125, 0.5):
            for seed in range(2):
                f.write(f"ipo_md,{beta},1.0,{seed},{0.6 - 0.1 * beta}\n")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("figs")
    llm = base / "llm_results"
    write_llm_results(llm)
    out = base / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-m", "figures", "--quick", "--out", str(out),
                           "--llm-results", str(llm), "--no-progress"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_every_file_exists_and_is_valid(quick_run):
    out, _ = quick_run
    for name in TABULAR + list(LLM_FIGURES):
        png, pdf, table = (out / f"{name}.{e}" for e in ("png", "pdf", "csv"))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert pdf.read_bytes()[:4] == b"%PDF", name
        assert png.stat().st_size > 5000 and pdf.stat().st_size > 1000, name
        assert len(read_csv(table)) > 0, name
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))  # atomic writes left no temp files


def test_readme_has_one_caption_per_figure_and_config_json(quick_run):
    out, _ = quick_run
    readme = (out / "README.md").read_text()
    for name in TABULAR + list(LLM_FIGURES):
        lines = [ln for ln in readme.splitlines() if ln.startswith(f"- **{name}**")]
        assert len(lines) == 1, name
        assert "python -m figures --quick" in lines[0]
    assert "Skipped" not in readme
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["args"]["quick"] is True and cfg["versions"]["numpy"] and cfg["versions"]["torch"]
    assert cfg["sizes"]["conv_seeds"] >= 10


def test_equivalence_csv(quick_run):
    rows = read_csv(quick_run[0] / "fig3_equivalence.csv")
    finals = [r for r in rows if r["panel"] == "a_online_ipo_final"]
    assert finals and all(float(r["y"]) <= 1e-8 for r in finals)  # exact online IPO reaches pi*
    pairs = [r for r in rows if r["panel"] == "d_ipo_md_vs_nash_md"]
    assert {float(r["x"]) for r in pairs} == {0.125, 0.25, 0.5}
    for r in pairs:  # IPO-MD(beta) and Nash-MD(eta = beta / tau) reach the same policy, the exact one
        assert float(r["y"]) <= 1e-8
        assert float(r["ipo_md_to_exact"]) <= 1e-8 and float(r["nash_md_to_exact"]) <= 1e-8
        assert math.isclose(float(r["eta"]), float(r["x"]) / float(r["tau"]))
    bound = [r for r in rows if r["panel"] == "b_nash_md_decaying"]
    assert all(float(r["y"]) <= float(r["bound"]) for r in bound)  # Munos et al. Thm 1
    # (c) the constant-eta limit approaches pi* as eta -> 0: monotone in eta for each game and tau.
    c = [r for r in rows if r["panel"] == "c_nash_md_constant_eta_limit"]
    for key in {(r["game"], r["tau"]) for r in c}:
        ys = [float(r["y"]) for r in sorted((r for r in c if (r["game"], r["tau"]) == key),
                                            key=lambda r: float(r["x"]))]
        assert ys[0] < 1e-6 * ys[-1]


def test_bias_csv_matches_prop_5_2(quick_run):
    rows = read_csv(quick_run[0] / "fig5_mixture_bias.csv")
    assert rows
    for r in rows:
        # mix_beta(limit) = pi*_(tau/(1-beta))
        assert float(r["max_abs_mixture_minus_equilibrium"]) <= 1e-8, r
        assert math.isclose(float(r["gap_mixture_of_limit"]),
                            float(r["gap_equilibrium_tau_over_1_minus_beta"]),
                            rel_tol=1e-6, abs_tol=1e-12)
        if float(r["beta"]) == 0.0:
            assert float(r["gap_ipo_md_limit"]) <= 1e-10  # beta = 0 is online IPO: no bias
        else:
            assert float(r["gap_ipo_md_limit"]) > 1e-10  # beta > 0: biased away from pi*_tau


def test_dpo_csv(quick_run):
    rows = read_csv(quick_run[0] / "fig4_dpo_not_nash.csv")
    a = [r for r in rows if r["panel"] == "a_alpha"]
    ipo = [float(r["kl_to_opt"]) for r in a if r["method"] == "online_ipo"]
    dpo = [float(r["kl_to_opt"]) for r in a if r["method"] == "online_dpo"]
    assert max(ipo) <= 1e-8 and min(dpo) > 1e-4


def test_convergence_csv(quick_run):
    for tau in ("0.1", "0.01"):
        rows = read_csv(quick_run[0] / f"fig2_convergence_tau{tau}.csv")
        algos = {r["algorithm"] for r in rows}
        assert len(algos) == 12
        assert {r["game"] for r in rows} >= {"bt:4", "cyclic:4", "random:4", "majority:4"}
        assert all(int(r["seeds"]) >= 10 for r in rows)
        # every run starts at mu: at step 0 the sampled band has no width and equals the exact form;
        # after it the seeds differ, so some bands are wide (a band copied from one seed would not be)
        start = [r for r in rows if int(r["step"]) == 0]
        assert start and all(float(r["sampled_p2.5"]) == float(r["sampled_p97.5"]) == float(r["exact"])
                             and math.isclose(float(r["sampled_mean"]), float(r["exact"]), rel_tol=1e-12)
                             for r in start)  # the mean of 10 equal numbers carries round-off
        assert any(float(r["sampled_p97.5"]) > float(r["sampled_p2.5"]) for r in rows if int(r["step"]) > 0)
    rows = read_csv(quick_run[0] / "fig2_convergence_tau0.1.csv")
    eg = [r for r in rows if r["algorithm"] == "extragradient" and r["metric"] == "gap"]
    for g in {r["game"] for r in eg}:  # exact extragradient decreases the gap on every game
        ys = [float(r["exact"]) for r in eg if r["game"] == g]
        assert ys[-1] < 1e-2 * ys[0]


def test_simplex_csv(quick_run):
    rows = read_csv(quick_run[0] / "fig1_simplex.csv")
    from tabular.game import cyclic

    stars = [r for r in rows if r["kind"] == "pi_star" and r["setting"].startswith("μ")]
    # the marked pi* satisfies its defining equation pi = softmax(log mu + P pi / tau), checked
    # here without the solver that produced it
    pi = np.array([float(stars[0][f"pi_{i}"]) for i in range(3)])
    logits = np.log([0.6, 0.3, 0.1]) + cyclic(3, 0.5) @ pi / 0.1
    best_response = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert abs(pi.sum() - 1) < 1e-12 and np.abs(best_response - pi).max() < 1e-12
    uni = [r for r in rows if r["kind"] in ("pi_star", "fixed_point") and r["setting"] == "uniform μ"]
    assert all(abs(float(r["pi_0"]) - 1 / 3) < 1e-9 for r in uni)  # uniform mu on RPS: all at the centre


def test_llm_heatmap_csv_holds_the_matrix(quick_run):
    rows = read_csv(quick_run[0] / "fig6a_llm_win_matrix.csv")
    assert len(rows) == 16 and rows[0]["row"] == "sft"
    cell = next(r for r in rows if r["row"] == "sft" and r["column"] == "online_ipo")
    assert float(cell["mean"]) == 0.6 and float(cell["std"]) == 0.01


def test_llm_reliability_csv_holds_the_bins(quick_run):
    rows = read_csv(quick_run[0] / "fig6e_llm_judge_reliability.csv")
    assert [int(r["count"]) for r in rows] == [10 * b for b in range(10)]
    assert float(rows[3]["mean_pred"]) == pytest.approx(0.35)
    assert float(rows[3]["mean_gold"]) == pytest.approx(0.3)


# --------------------------------------------------------------------------------------------
# In-process: LLM skipping, label handling, bad input.
# --------------------------------------------------------------------------------------------
def test_llm_skipped_with_reason(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no runs/pipeline here
    assert main(["--only", "llm", "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert all(f"skipped {n}" in err for n in LLM_FIGURES) and "runs/pipeline does not exist" in err
    readme = (tmp_path / "o" / "README.md").read_text()
    assert "## Skipped" in readme and readme.count("skipped:") == len(LLM_FIGURES)


def test_llm_methods_including_sft_and_malformed(tmp_path, capsys):
    d = tmp_path / "r"
    write_llm_results(d, include_sft_in_methods=True)
    (d / "beta_sweep.csv").write_text("method,beta\nipo_md,0.1\n")  # lacks columns: skipped with reason
    assert main(["--only", "llm", "--out", str(tmp_path / "o"), "--llm-results", str(d),
                 "--no-progress"]) == 0
    rows = read_csv(tmp_path / "o" / "fig6a_llm_win_matrix.csv")
    assert [r["row"] for r in rows[::4]] == ["sft"] + METHODS
    err = capsys.readouterr().err
    assert "skipped fig6d_llm_ipo_md_beta" in err and "lacks column" in err
    assert not (tmp_path / "o" / "fig6d_llm_ipo_md_beta.png").exists()


@pytest.mark.parametrize("argv", [
    pytest.param(["--only", "nope"], id="unknown-figure"),
    pytest.param(["--only", ","], id="empty-only"),
    pytest.param(["--seed", "-1"], id="negative-seed"),
    pytest.param(["--seed", "x"], id="non-integer-seed"),
    pytest.param(["--seed", str(2**70)], id="seed-beyond-64-bits"),
    pytest.param(["--out", "/proc/no_such_dir/out"], id="read-only-out"),
    pytest.param(["--llm-results", "/nonexistent/dir"], id="missing-llm-results"),
    pytest.param(["--bogus"], id="unknown-flag"),
])
def test_bad_input_exits_2_with_one_line(argv, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path / "o")] + argv)  # a later --out wins
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err


def test_out_is_a_file_exits_2(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SystemExit) as e:
        main(["--out", str(f), "--only", "llm"])
    assert e.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


def test_llm_curves_with_an_infinite_step_are_skipped_not_a_traceback(tmp_path, capsys):
    """A `step` of inf raised OverflowError (int(inf)) after config.json was written."""
    d = tmp_path / "llm"
    write_llm_results(d)
    text = (d / "curves.csv").read_text().splitlines()
    text[1] = ",".join(text[1].split(",")[:4] + ["inf"] + text[1].split(",")[5:])
    (d / "curves.csv").write_text("\n".join(text) + "\n")
    assert main(["--only", "llm", "--out", str(tmp_path / "o"), "--llm-results", str(d),
                 "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "skipped fig6c" in err and "curves.csv is malformed" in err and "Traceback" not in err
    assert (tmp_path / "o" / "config.json").is_file() and (tmp_path / "o" / "README.md").is_file()


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "--llm-results" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# In-process: compute is separate from draw; the one sweep plot.
# --------------------------------------------------------------------------------------------
TINY = Sizes(simplex_steps=3, n_actions=3, conv_steps=3, conv_seeds=2, equiv_steps=5, equiv_nash_steps=5,
             equiv_games=1, dpo_steps=20, dpo_alphas=2, dpo_taus=2, bias_steps=5, bias_betas=2)
COMPUTE = {"simplex": tf.simplex_data, "convergence": lambda *a: tf.convergence_data(a[0], a[1], 0.1, a[2]),
           "equivalence": tf.equivalence_data, "dpo": tf.dpo_data, "bias": tf.bias_data}


@pytest.mark.parametrize("figure", list(COMPUTE))
def test_compute_runs_without_matplotlib(figure, monkeypatch):
    with monkeypatch.context() as m:  # a None entry in sys.modules makes `import matplotlib` fail
        m.setitem(sys.modules, "matplotlib", None)
        m.setitem(sys.modules, "matplotlib.pyplot", None)
        data = COMPUTE[figure](TINY, 0, lambda: None)
    assert data.rows and all(isinstance(r, dict) for r in data.rows)


def test_finish_writes_the_computed_rows(tmp_path):
    data = tf.dpo_data(TINY, 0, lambda: None)
    name, caption = finish(tf.draw_dpo(data), tmp_path, "fig", data.rows, "a caption")
    assert (name, caption) == ("fig", "a caption")
    rows = read_csv(tmp_path / "fig.csv")
    # each method's runs, and online DPO's exact stationary point, along alpha and tau
    assert len(rows) == len(data.rows) == (len(tf.DPO_METHODS) + 1) * (TINY.dpo_alphas + TINY.dpo_taus)
    np.testing.assert_array_equal([float(r["kl_to_opt"]) for r in rows],
                                  [float(r["kl_to_opt"]) for r in data.rows])  # nan (alpha = 1) too
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "fig.pdf").is_file()


def test_one_sweep_plot_for_tau_and_beta():
    tau_rows = [{"method": m, "tau": tau, "seed": s, "winrate_vs_sft": w}
                for m in ("zeta", "online_dpo", "online_ipo") for tau in ("1.0", "0.1")
                for s, w in ((0, "0.5"), (1, "0.6"))]
    csv_rows, lines = sweep_lines(TAU_SWEEP, tau_rows)
    # the paper's pair leads, the rest follow sorted; x sorted within a line
    assert [label for label, _, _ in lines] == ["online_ipo", "online_dpo", "zeta"]
    assert all(xs == [0.1, 1.0] for _, xs, _ in lines)
    # mean of (0.5, 0.6) = 0.55; 95 % t half-width = t_{0.975, 1 dof} (12.7062) * s (0.0707) / sqrt(2)
    assert csv_rows[0] == {"method": "online_ipo", "tau": 0.1, "mean": pytest.approx(0.55),
                           "ci95": pytest.approx(12.706204736 * 0.05), "seeds": 2}
    beta_rows = [{"method": "ipo_md", "beta": b, "tau": tau, "seed": "0", "winrate_vs_sft": "0.7"}
                 for tau in ("0.5", "0.1") for b in ("0.5", "0.0")]
    csv_rows, lines = sweep_lines(BETA_SWEEP, beta_rows)  # one line per (method, tau), beta on x
    assert [(label, xs) for label, xs, _ in lines] == [("ipo_md, τ=0.1", [0.0, 0.5]),
                                                       ("ipo_md, τ=0.5", [0.0, 0.5])]
    assert list(csv_rows[0]) == ["method", "tau", "beta", "mean", "ci95", "seeds"]
    assert csv_rows[0]["ci95"] == 0.0  # one seed: no band


def test_llm_heatmap_reads_the_matrix_of_every_summary_schema():
    """Schema 3 keeps the gold matrix once (``win_matrix_gold``: mean, ci95), schema 2 also had flat
    copies, older summaries only flat keys with a std: each gives its own mean and spread."""
    from figures.llm_figures import win_matrix_data

    mean, ci = [[0.5, 0.7], [0.3, 0.5]], [[0.0, 0.05], [0.05, 0.0]]
    base = {"methods": ["online_ipo"], "matrix_labels": ["sft", "online_ipo"]}
    schema3 = {**base, "schema": 3, "win_matrix_gold": {"mean": mean, "ci95": ci}}
    schema2 = {**schema3, "schema": 2, "win_matrix_gold_mean": mean, "win_matrix_gold_ci95": ci}
    older = {**base, "win_matrix_gold_mean": mean, "win_matrix_gold_std": [[0.0, 0.01], [0.01, 0.0]]}
    for summary, spread, name in ((schema3, ci, "ci95"), (schema2, ci, "ci95"),
                                  (older, older["win_matrix_gold_std"], "std")):
        _, m = win_matrix_data(summary)
        assert m.mean.tolist() == mean and m.spread.tolist() == spread and m.spread_name == name
    with pytest.raises(ValueError, match="lacks key 'win_matrix_gold_mean'"):
        win_matrix_data(base)
