"""The enumerable task: exact laws, the judge's dial, the exact targets, and the ``exact`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from llm.enumerable import (
    EnumerableTask,
    ResponseSpace,
    bt_agreement,
    conditionals_from_law,
    exact_law,
    intransitive_share,
    law_from_conditionals,
    mask_response_vocab,
    per_token_mixture,
    prompt_ids,
    response_index,
)
from llm.exact_targets import kl, policy_metrics, rlhf_target, targets, win_rate
from llm.models import SPECIAL_TOKENS, new_causal_lm
from llm.sampling import sample, sequence_logprob, token_logprobs

PAD, BOS, SEP, EOS = (SPECIAL_TOKENS.index(t) for t in ("<pad>", "<bos>", "<sep>", "<eos>"))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def small_task(rho=0.0):
    return EnumerableTask(K=3, L=3, prompt_len=2, rho=rho, length_probs=(0.1, 0.3, 0.3, 0.3))


def random_policy(task, seed=0):
    torch.manual_seed(seed)
    model = new_causal_lm(len(SPECIAL_TOKENS) + task.K, n_layer=1, n_embd=16, n_head=4, n_positions=16)
    mask_response_vocab(model, len(SPECIAL_TOKENS) + task.K, EOS, task.K)
    with torch.no_grad():  # a policy far from uniform, so the sampling test has something to see
        for p in model.parameters():
            p.mul_(8.0)
    return model.eval()


def test_response_space_counts_and_index_round_trip():
    space = ResponseSpace(K=8, L=3)
    assert space.n == 585  # 1 + 8 + 64 + 512
    tokens, lengths = space.tokens()
    assert (space.index(tokens, lengths) == np.arange(space.n)).all()
    assert (np.bincount(lengths) == [1, 8, 64, 512]).all()


def test_judge_is_antisymmetric_and_the_dial_controls_transitivity():
    task = EnumerableTask(K=4, L=3, prompt_len=3)
    docs = task.prompt_indices("test")[:6]
    assert (task.preference(docs, 0.7) + task.preference(docs, 0.7).transpose(0, 2, 1) == 1.0).all()
    shares = [intransitive_share(task.logits(docs, rho)).mean() for rho in (0.0, 0.5, 1.0, 2.0)]
    assert shares[0] < 1e-28  # rho = 0: Bradley-Terry exactly
    assert np.all(np.diff(shares) > 0) and shares[-1] > 0.5
    agree = [bt_agreement(task.logits(docs, rho)).mean() for rho in (0.0, 1.0)]
    assert agree[0] == 1.0 and agree[1] < 0.9
    # the pairwise lookup used in training equals the full table
    y, yp = np.array([0, 5, 17, 84]), np.array([3, 5, 60, 1])
    d = np.repeat(docs[:1], 4)
    assert np.array_equal(task.pair_preference(d, y, yp, 0.7), task.preference(docs[:1], 0.7)[0][y, yp])


def test_bt_reward_is_the_least_squares_projection():
    task = EnumerableTask(K=3, L=2, prompt_len=2, length_probs=(0.1, 0.45, 0.45))
    docs = task.prompt_indices("train")[:3]
    logits = task.logits(docs, 1.3)
    r = task.bt_reward(docs, 1.3)
    for b in range(3):  # independent route: least squares over all ordered pairs
        n = logits.shape[1]
        A = np.zeros((n * n, n))
        idx = np.arange(n * n)
        A[idx, idx // n] += 1
        A[idx, idx % n] -= 1
        sol = np.linalg.lstsq(A, logits[b].ravel(), rcond=None)[0]
        np.testing.assert_allclose(sol - sol.mean(), r[b] - r[b].mean(), atol=1e-10)


def test_tree_conditionals_round_trip_and_mixture_limits():
    task = small_task()
    space = task.space
    pi = task.human_law(task.prompt_indices("train")[:4])
    mu = np.random.default_rng(0).dirichlet(np.ones(space.n), size=4)
    np.testing.assert_allclose(np.exp(law_from_conditionals(conditionals_from_law(pi, space), space)), pi,
                               atol=1e-15)
    np.testing.assert_allclose(per_token_mixture(pi, mu, 0.0, space), pi, atol=1e-15)
    np.testing.assert_allclose(per_token_mixture(pi, mu, 1.0, space), mu, atol=1e-15)
    # one-token responses: per-token mixture = sequence-level mixture pi^(1-b) mu^b / Z
    one = ResponseSpace(K=5, L=1)
    a, b = (np.random.default_rng(s).dirichlet(np.ones(one.n), size=2) for s in (1, 2))
    seq = a ** 0.7 * b ** 0.3
    np.testing.assert_allclose(per_token_mixture(a, b, 0.3, one), seq / seq.sum(-1, keepdims=True),
                               atol=1e-15)
    # longer responses: the two differ (the gap the experiment reports)
    m = mu ** 0.7 * pi ** 0.3
    assert np.abs(per_token_mixture(mu, pi, 0.3, space) - m / m.sum(-1, keepdims=True)).max() > 1e-4


def test_exact_law_sums_to_one_with_no_mass_outside():
    task = small_task()
    model = random_policy(task)
    docs = task.prompt_indices("train")
    law, outside = exact_law(model, task, docs, BOS, SEP, EOS)
    assert law.shape == (len(docs), task.space.n) and len(docs) >= 4
    np.testing.assert_allclose(law.sum(-1), 1.0, atol=1e-12)
    assert np.abs(outside).max() < 1e-12


def test_exact_law_equals_the_losses_sequence_logprob():
    """The law enumerated here is the one the losses differentiate: log pi(y|x) summed over tokens."""
    task = small_task()
    model = random_policy(task, seed=3)
    docs = task.prompt_indices("train")[:4].repeat(8)
    ids = prompt_ids(task, docs, BOS, SEP)
    response, mask = sample(model, None, ids, torch.ones_like(ids), task.L, torch.Generator().manual_seed(0),
                            EOS, PAD)
    logp = sequence_logprob(token_logprobs(model, ids, torch.ones_like(ids), response, mask), mask)
    law, _ = exact_law(model, task, docs, BOS, SEP, EOS)
    idx = response_index(task, response, mask)
    np.testing.assert_allclose(logp.detach().double().numpy(), np.log(law[np.arange(len(docs)), idx]),
                               atol=1e-5)


def test_exact_law_matches_sampling_frequencies():
    """Chi-square goodness of fit of 40 000 sampler draws to the enumerated law, two prompts.
    False-failure rate: alpha = 1e-3 per prompt (Bonferroni: the test fails wrongly w.p. <= 2e-3);
    bins with expected count < 5 are pooled."""
    task = small_task()
    model = random_policy(task, seed=1)
    docs = task.prompt_indices("train")[:2]
    law, _ = exact_law(model, task, docs, BOS, SEP, EOS)
    n = 20_000
    for b, doc in enumerate(docs):
        ids = prompt_ids(task, np.repeat(doc, n), BOS, SEP)
        response, mask = sample(model, None, ids, torch.ones_like(ids), task.L,
                                torch.Generator().manual_seed(10 + b), EOS, PAD)
        counts = np.bincount(response_index(task, response, mask), minlength=task.space.n)
        expected = n * law[b]
        big = expected >= 5
        obs = np.append(counts[big], counts[~big].sum())
        exp = np.append(expected[big], expected[~big].sum())
        keep = exp > 0
        stat = ((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum()
        assert stat < chi2.ppf(1 - 1e-3, keep.sum() - 1), (b, stat)


def test_exact_law_chi_square_can_fail():
    """The same statistic rejects a wrong law (another model's): the test above has power."""
    task = small_task()
    law_other, _ = exact_law(random_policy(task, seed=2), task, task.prompt_indices("train")[:1],
                             BOS, SEP, EOS)
    model = random_policy(task, seed=1)
    doc = task.prompt_indices("train")[0]
    ids = prompt_ids(task, np.repeat(doc, 20_000), BOS, SEP)
    response, mask = sample(model, None, ids, torch.ones_like(ids), task.L, torch.Generator().manual_seed(10),
                            EOS, PAD)
    counts = np.bincount(response_index(task, response, mask), minlength=task.space.n)
    expected = 20_000 * law_other[0]
    big = expected >= 5
    stat = ((counts[big] - expected[big]) ** 2 / expected[big]).sum()
    assert stat > chi2.ppf(1 - 1e-3, big.sum())


def test_sft_against_itself_is_one_half_and_kl_zero():
    task = EnumerableTask(K=4, L=3, prompt_len=3, rho=1.0)
    docs = task.prompt_indices("test")[:5]
    model = random_policy(task)
    mu, _ = exact_law(model, task, docs, BOS, SEP, EOS)
    mu = mu / mu.sum(-1, keepdims=True)
    P = task.preference(docs)
    # a sum of n^2 = 7225 products of magnitude <= 1: its round-off is below n^2 eps ~ 8e-13
    assert np.abs(win_rate(P, mu, mu) - 0.5).max() < 1e-13
    assert np.abs(kl(mu, mu)).max() < 1e-30


def test_targets_carry_certificates_and_differ_as_predicted():
    task = EnumerableTask(K=4, L=3, prompt_len=3)
    docs = task.prompt_indices("test")[:6]
    mu = task.human_law(docs)
    for rho in (0.0, 1.0):
        P = task.preference(docs, rho)
        tg = targets(P, mu, 0.1, 0.125, task.bt_reward(docs, rho), task.space)
        c = tg["certificates"]
        assert c["nash_gap"].max() < 1e-12 and c["tok_mix_residual"].max() <= 1e-12
        assert c["seq_mix_residual"].max() < 1e-12 and c["dpo_residual"].max() <= 1e-12
        laws = tg["laws"]
        if rho == 0.0:  # a Bradley-Terry judge: online DPO's limit is mu exp(s / tau) (SPEC §5.6)
            closed = rlhf_target(mu, task.bt_reward(docs, rho), 0.1)
            assert np.abs(np.log(laws["dpo"]) - np.log(closed)).max() <= 1e-10
        assert kl(laws["tok_mix"], laws["seq_mix"]).mean() > 0  # the per-token mixture moves the point
        m = policy_metrics(laws["nash"], P, mu, 0.1, tg)
        assert m["gap"].max() < 1e-12 and m["kl_to/nash"].max() < 1e-20
        m = policy_metrics(mu, P, mu, 0.1, tg)
        assert m["gap"].min() > 1e-3  # SFT is not the equilibrium
    # the dial moves the exact win rate of pi* against the RLHF optimum upwards
    wins = []
    for rho in (0.0, 1.0):
        P = task.preference(docs, rho)
        laws = targets(P, mu, 0.1, 0.125, task.bt_reward(docs, rho), task.space)["laws"]
        wins.append(win_rate(P, laws["nash"], laws["rlhf"]).mean())
    assert wins[1] > wins[0] and wins[1] > 0.5


def _run(*args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "llm", "exact", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, **kw)


def test_exact_command_tiny_run_resume_and_bad_input(tmp_path):
    out = tmp_path / "run"
    r = _run("--out", str(out), "--preset", "tiny")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == {"0", "1"}
    e = summary["methods"]["1"]["online_ipo"]
    assert e["chains"] == 2 and e["test"]["mass_outside"]["mean"] < 1e-12
    assert summary["targets"]["1"]["test"]["certificate/nash_gap"] < 1e-12
    # a second run, its two chains in two worker processes, reproduces it bit for bit (CPU), as
    # `exact-report --compare` checks
    r = _run("--out", str(tmp_path / "again"), "--preset", "tiny", "--workers", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    from llm.exact_report import compare

    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert again["config"]["workers"] == 2
    verdict = compare(summary, again)
    assert verdict["bit_for_bit"] and verdict["within"] and verdict["numbers"] > 1000
    again["methods"]["1"]["rl"]["test"]["gap"]["mean"] += 1e-12  # one number moved: caught
    assert compare(summary, again)["differ"] == 1
    # resume: every unit is done, nothing is retrained, the numbers are the same
    before = (out / "units" / "chain000" / "rho1" / "rl.json").read_text()
    r = _run("--out", str(out), "--preset", "tiny", "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "units" / "chain000" / "rho1" / "rl.json").read_text() == before
    # an existing run without --resume/--overwrite, and bad flags: one line, exit 2
    for args in (["--out", str(out), "--preset", "tiny"],
                 ["--out", str(tmp_path / "x"), "--rhos", "0,-1"],
                 ["--out", str(tmp_path / "x"), "--methods", "online_ipo,nope"],
                 ["--out", str(tmp_path / "x"), "--chains", "-2"],
                 ["--out", str(tmp_path / "x"), "--workers", "0"],
                 ["--out", str(tmp_path / "x"), "--beta", "1.5"]):
        r = _run(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("preset", ["tiny", "small", "reference"])
def test_presets_resolve(preset):
    from llm.exact import ExactConfig, resolve

    cfg = resolve(ExactConfig(out="x", preset=preset))
    assert cfg.chains >= 1 and cfg.steps >= 1


def test_readme_block_is_the_render_of_the_committed_reference():
    """The manual's exact-report block (docs/llm_exact.md) equals `python -m llm exact-report
    llm/reference/exact`."""
    from llm.exact_report import BLOCK_END, BLOCK_START, render

    summary = json.loads(open(os.path.join(ROOT, "llm", "reference", "exact", "summary.json")).read())
    text = open(os.path.join(ROOT, "docs", "llm_exact.md")).read()
    block = text.split(BLOCK_START)[1].split(BLOCK_END)[0].strip()
    assert block == render(summary).strip()


def test_pi_star_is_stationary_for_online_ipo_not_for_dpo_or_slic():
    """On the task's own games: the population online-IPO gradient (pairs from pi, the shared loss)
    vanishes at pi* to round-off (Prop. 4.1); the online-DPO and SLiC gradients do not (App. F): the
    two cannot end at pi*, which is why the experiment measures where they land against it."""
    from llm.exact_targets import pairwise_stationarity

    task = EnumerableTask(K=4, L=3, prompt_len=3)
    docs = task.prompt_indices("test")[:4]
    mu = task.human_law(docs)
    P = task.preference(docs, 1.0)
    laws = targets(P, mu, 0.1, 0.125, task.bt_reward(docs, 1.0), task.space)["laws"]
    nash = laws["nash"]
    assert np.abs(pairwise_stationarity(P, nash, mu, 0.1, "ipo")).max() < 1e-12
    for loss in ("dpo", "slic"):
        assert np.abs(pairwise_stationarity(P, nash, mu, 0.1, loss)).max(-1).min() > 1e-4
    # online DPO's own target is stationary for it (the autodiff gradient over 2 tau pi, i.e. Eq. (1)
    # of tabular.pairwise_limits recomputed through the shared loss)
    dpo = laws["dpo"]
    assert np.abs(pairwise_stationarity(P, dpo, mu, 0.1, "dpo") / (0.2 * dpo)).max() < 1e-11
