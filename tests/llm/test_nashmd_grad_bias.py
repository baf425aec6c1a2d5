"""benchmarks/nashmd_grad_bias.py: the exact enumeration agrees with our Nash-MD-PG loss to round-off.

The TRL parts are skipped when TRL (the ``bench-trl`` extra) is not installed. No timing here.
"""

import importlib.util
from pathlib import Path

import pytest
import torch

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "nashmd_grad_bias.py"
_spec = importlib.util.spec_from_file_location("nashmd_grad_bias", _PATH)
bias = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bias)


@pytest.mark.parametrize("eos", [None, bias.V - 1])
def test_enumeration_is_a_distribution(eos):
    resp, mask = bias.all_responses(3, eos)
    policy, _ = bias.tiny_pair()
    ids, pmask = bias._prompt(len(resp))
    with torch.no_grad():
        total = bias.token_logprobs(policy, ids, pmask, resp, mask).sum(-1).exp().sum()
    assert abs(float(total) - 1) < 1e-13
    assert len(resp) == (bias.V ** 3 if eos is None else 1 + 3 + 9 + 27)  # ends at <eos> or after 3 tokens


@pytest.mark.parametrize("eos", [None, bias.V - 1])
def test_our_expected_gradient_is_exact(eos):
    g = bias.gradients(2, eos, tau=0.5, with_trl=False)
    assert bias.relative_error(g["ours"], g["exact"]) < 1e-12
    assert bias.relative_error(g["ours_kl"], g["exact_kl"]) < 1e-12
    assert g["exact_kl"].norm() > 1e-3 * g["exact"].norm()  # the KL term really contributes


def test_trl_weighting_is_biased_beyond_one_token_and_exact_for_one():
    pytest.importorskip("trl")
    one = bias.gradients(1, None, tau=0.5)  # one token: own log-ratio = reward-to-go, both unbiased
    assert bias.relative_error(one["trl"], one["exact"]) < 1e-12
    two = bias.gradients(2, bias.V - 1, tau=0.5)
    assert bias.relative_error(two["trl_kl"], two["exact_kl"]) > 1e-2
