"""The method table: one entry per method, consistent with the losses and the mixture semantics."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from tabular_helpers import OneTokenLM

import tabular.methods
from tabular import AlgorithmConfig, bradley_terry_random, run
from tabular.algorithms import method_loss
from tabular.losses import PAIRWISE_LOSSES
from tabular.methods import METHODS, Method, ipo_lr, method_table, sampled_methods, slic_lr


def test_every_pairwise_method_names_a_shared_loss():
    for name, m in METHODS.items():
        if m.kind == "pairwise":
            assert m.loss in PAIRWISE_LOSSES, name
        else:
            assert m.loss is None, name


def test_betas_follow_the_sampler():
    assert METHODS["online_ipo"].betas(0.3) == (0.0, 0.0)
    assert METHODS["offline_dpo"].betas(0.3) == (1.0, 1.0)
    assert METHODS["ipo_md"].betas(0.3) == (0.3, 0.3)
    assert METHODS["nash_md_pg"].betas(0.3) == (0.0, 0.3)
    assert [n for n, m in METHODS.items() if m.uses_beta] == ["ipo_md", "nash_md_pg"]


def test_closed_form_methods_are_not_sampled():
    assert set(METHODS) - set(sampled_methods()) == {"nash_md", "extragradient"}


@pytest.mark.parametrize("bad", [dict(kind="ppo"), dict(kind="pairwise"), dict(kind="pg", loss="ipo"),
                                 dict(kind="pg", beta_y="nu")])
def test_bad_entries_are_refused(bad):
    with pytest.raises(ValueError):
        Method(**bad)



@pytest.mark.parametrize("bad", [dict(kind="md", llm_tau=0.1), dict(kind="rl", sgd_lr=ipo_lr, llm_tau=0.0),
                                 dict(kind="rl", sgd_lr=ipo_lr, llm_tau=float("nan"))])
def test_an_llm_default_tau_is_positive_and_only_for_a_method_that_learns_from_samples(bad):
    with pytest.raises(ValueError, match="llm_tau is a tau > 0"):
        Method(**bad)


def test_the_pipelines_default_taus_are_the_rows_llm_taus():
    from llm.config import PipelineConfig

    taus = PipelineConfig(out="x").taus
    assert taus == {name: m.llm_tau for name, m in sampled_methods().items()} and len(taus) == 10


@pytest.mark.parametrize("bad", [dict(kind="pg", beta_y="pi"), dict(kind="md", sgd_lr=lambda t: 0.1)])
def test_a_gradient_method_names_its_default_learning_rate_and_only_it(bad):
    with pytest.raises(ValueError, match="default learning rate"):
        Method(**bad)


def test_the_docstring_table_is_the_table():
    """The module docstring shows :func:`method_table` verbatim: a new row, or a changed one,
    shows up in the documentation or this test fails."""
    assert method_table() in tabular.methods.__doc__


def squared_hinge_loss(margin, p, tau):
    """A new pairwise loss for the test below: ``p relu(1 - tau h)^2 + (1 - p) relu(1 + tau h)^2``
    (minimised at ``tau h = 2 p - 1``)."""
    z = tau * margin
    return p * torch.relu(1 - z) ** 2 + (1 - p) * torch.relu(1 + z) ** 2


def test_a_new_method_is_one_loss_and_one_row(monkeypatch):
    """Issue 20: adding a method takes one loss and one table row. The tabular sandbox's exact
    and sampled forms then run it, its default lr and its name come from the row, and its exact
    form settles where the exact population gradient of the new loss (through the same pair
    weighting) vanishes, below where it started."""
    monkeypatch.setitem(PAIRWISE_LOSSES, "sq_hinge", squared_hinge_loss)
    monkeypatch.setitem(METHODS, "online_sq_hinge",
                        Method("pairwise", "sq_hinge", "pi", "pi", "online squared hinge", slic_lr))
    P, scores = bradley_terry_random(4, 0)
    mu = np.array([0.4, 0.3, 0.2, 0.1])
    cfg = AlgorithmConfig("online_sq_hinge", tau=1.0)
    assert cfg.effective_lr == slic_lr(1.0) and cfg.method.display == "online squared hinge"
    exact = run(cfg, P, mu, steps=4000, record_every=4000)
    sampled = run(dataclasses.replace(cfg, sampled=True, batch=64), P, mu, steps=50, record_every=50,
                  seed=3)
    assert np.all(np.isfinite(sampled.final_log_pi)) and sampled.metrics["loss"].shape == (2, 1)
    # the exact population gradient at the final policy, through the very loss and weighting
    theta = torch.tensor(exact.final_log_pi, requires_grad=True)
    log_mu = torch.log(torch.tensor(mu))[None]
    loss = method_loss(cfg, theta, log_mu, torch.tensor(P)[None])
    (grad,) = torch.autograd.grad(loss.sum(), theta)
    assert grad.abs().max().item() <= 1e-10
    start = method_loss(cfg, log_mu.clone().requires_grad_(True), log_mu, torch.tensor(P)[None])
    assert loss.item() < start.item()  # it moved, downhill


def test_a_new_method_runs_in_the_llm_half_with_the_same_loss(monkeypatch, tmp_path):
    """Issue 20, the llm half of the test above: with the same one loss and one row and nothing
    else, ``llm.align.alignment_loss`` on 2^16 one-token prompts (the KV-cached sampler, an exact
    table judge) estimates the tabular exact form's population loss within Hoeffding's radius
    (false-failure probability 1e-9), a radius that excludes online SLiC's value (so the row's loss,
    not another, is what runs); and ``llm align --judge gold`` trains a tiny GPT-2 with it."""
    from llm.align import alignment_loss, run_align
    from llm.config import AlignConfig, MethodParams, SFTConfig
    from llm.judging import PromptBatch, TableJudge
    from llm.sampling import Decoding
    from llm.train import run_sft

    monkeypatch.setitem(PAIRWISE_LOSSES, "sq_hinge", squared_hinge_loss)
    monkeypatch.setitem(METHODS, "online_sq_hinge",
                        Method("pairwise", "sq_hinge", "pi", "pi", "online squared hinge", slic_lr))
    P, _ = bradley_terry_random(4, 0)
    mu, pi = np.array([0.4, 0.3, 0.2, 0.1]), np.array([0.1, 0.2, 0.3, 0.4])
    tau, B, delta = 1.0, 2**16, 1e-9
    log_mu = torch.log(torch.tensor(mu))[None]

    def population_loss(name):
        return method_loss(AlgorithmConfig(name, tau=tau), torch.log(torch.tensor(pi))[None], log_mu,
                           torch.tensor(P)[None]).item()

    prompt = torch.zeros(B, 1, dtype=torch.long)
    loss, _ = alignment_loss(MethodParams("online_sq_hinge", tau, 0.0), OneTokenLM(np.log(pi)),
                             OneTokenLM(np.log(mu)).requires_grad_(False),
                             PromptBatch(prompt, torch.ones_like(prompt)), TableJudge(torch.tensor(P)),
                             Decoding(1, None, 0), generator=torch.Generator().manual_seed(0))
    ratio = np.log(pi / mu)
    worst = (1 + tau * (ratio.max() - ratio.min())) ** 2  # every pair's loss lies in [0, worst]
    radius = worst * np.sqrt(np.log(2 / delta) / (2 * B))
    exact = population_loss("online_sq_hinge")
    assert abs(loss.item() - exact) <= radius, (loss.item(), exact, radius)
    assert abs(population_loss("online_slic") - exact) > 2 * radius

    shape = dict(n_layer=1, n_embd=32, n_head=2)
    sft = run_sft(SFTConfig(out=str(tmp_path / "sft"), steps=20, batch_size=16, **shape), progress=False)
    done = run_align(AlignConfig(out=str(tmp_path / "align"), sft=sft["model"], judge="gold",
                                 method="online_sq_hinge", tau=0.5, steps=3, batch_size=8, eval_every=3,
                                 eval_prompts=8, log_every=1), progress=False)
    assert done["method"] == "online_sq_hinge" and done["steps"] == 3
    assert 0 <= done["final_winrate_vs_sft"] <= 1
    with open(tmp_path / "align" / "metrics.jsonl") as f:
        losses = [json.loads(line)["loss/train"] for line in f if "loss/train" in line]
    assert len(losses) == 3 and np.all(np.isfinite(losses))
