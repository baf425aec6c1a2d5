"""Independent reference implementations for the tabular tests (nothing here imports tabular)."""

import numpy as np


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
