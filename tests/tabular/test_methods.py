"""The method table: one entry per method, consistent with the losses and the mixture semantics."""

import dataclasses

import numpy as np
import pytest
import torch

import tabular.methods
from tabular import AlgorithmConfig, bradley_terry_random, run
from tabular.algorithms import method_loss
from tabular.losses import PAIRWISE_LOSSES
from tabular.methods import METHODS, Method, method_table, sampled_methods, slic_lr


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
