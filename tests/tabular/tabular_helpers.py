"""Independent reference implementations for the tabular tests (nothing here imports tabular)."""

from types import SimpleNamespace

import numpy as np
import torch


def random_preference(n: int, rng: np.random.Generator) -> np.ndarray:
    """A valid P built here, independently of tabular.game: P = 1/2 + skew(U(-1/2, 1/2))."""
    U = rng.uniform(-0.5, 0.5, size=(n, n))
    A = np.triu(U, 1)
    return 0.5 + A - A.T


def random_reference(n: int, rng: np.random.Generator, spread: float = 1.0) -> np.ndarray:
    logits = rng.normal(0.0, spread, size=n)
    mu = np.exp(logits - logits.max())
    return mu / mu.sum()


def fixed_point_map(P, mu, tau, pi):
    """T(pi) = mu exp(P pi / tau) / Z, written out here (not imported) for independent checks."""
    z = np.log(mu) + P @ pi / tau
    z -= z.max()
    w = np.exp(z)
    return w / w.sum()


def payoff(P, mu, tau, pi, pi_prime):
    """V(pi, pi') = pi P pi' - tau KL(pi||mu) + tau KL(pi'||mu) (SPEC §2), written out here."""
    def kl(p, q):
        m = p > 0
        return float(np.sum(p[m] * np.log(p[m] / q[m])))
    return float(pi @ P @ pi_prime) - tau * kl(pi, mu) + tau * kl(pi_prime, mu)


class OneTokenLM(torch.nn.Module):
    """A causal "LM" whose next-token logits are a parameter vector whatever the prefix: with
    one-token responses over a vocabulary of n actions it is the tabular policy softmax(theta)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor(np.asarray(logits, np.float64)))

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None,
                use_cache=False, **unused):
        B, L = input_ids.shape
        return SimpleNamespace(logits=self.logits.expand(B, L, -1), past_key_values=None)  # (B, L, V)
