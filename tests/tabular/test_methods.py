"""The method table: one entry per method, consistent with the losses and the mixture semantics."""

import pytest

from tabular.losses import PAIRWISE_LOSSES
from tabular.methods import METHODS, Method, sampled_methods


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

