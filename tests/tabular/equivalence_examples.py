"""Hypothesis strategies for the equivalence properties (tests/tabular/test_equivalence_properties.py).

An :class:`Example` is one generated game with everything a property needs:

- ``P`` from every family of :mod:`tabular.game` (built by :func:`tabular.game.make_game` from a
  ``FAMILY:ARGS`` spec, so the generated games are exactly the CLI's), ``n`` from 2 to ``n_max``;
- ``mu`` from a symmetric Dirichlet(alpha) with ``alpha`` log-uniform (alpha = 0.05 gives very
  uneven references: a few actions hold almost all the mass), drawn by inverse-CDF from uniforms so
  that Hypothesis can shrink it (towards the uniform reference), floored at ``MU_FLOOR`` relative
  to its largest entry so the reference keeps full support in float64;
- ``tau`` log-uniform over several decades, ``beta`` in [0, 1), ``eta = eta_tau / tau`` with
  ``eta_tau`` in (0, 1) (Nash-MD needs ``eta tau <= 1``), policy logits ``theta`` (the policy at
  which gradients are compared) and an integer ``seed`` for the sampled forms.

Every draw shrinks towards a small, readable instance: family ``bt``, n = 2, uniform mu, tau at the
lower end of its range, beta = 0, theta = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from scipy.special import gammaincinv

from tabular.game import make_game, validate_game

FAMILIES = ("bt", "cyclic", "rps", "perturbed_rps", "biased_rps", "random", "majority", "blend")
"""Every family of :data:`tabular.game.GAME_FAMILIES` except ``file`` (a test checks the list)."""
MU_FLOOR = 1e-12  # smallest mu(y) / max mu: log mu spans up to 27.6 nats


@dataclass(frozen=True)
class Example:
    """One generated game and parameters; its repr is what Hypothesis prints for a counterexample."""

    spec: str
    P: np.ndarray
    mu: np.ndarray
    tau: float
    beta: float
    eta: float
    theta: np.ndarray
    seed: int
    alpha: float

    @property
    def n(self) -> int:
        return self.P.shape[0]

    def __repr__(self) -> str:
        with np.printoptions(precision=3, linewidth=200):
            return (f"Example(spec={self.spec!r}, n={self.n}, tau={self.tau:.6g}, beta={self.beta:.6g}, "
                    f"eta={self.eta:.6g}, alpha={self.alpha:.4g}, min_mu={self.mu.min():.3g}, "
                    f"seed={self.seed}, mu={self.mu}, theta={self.theta})")


def _log_uniform(lo: float, hi: float):
    return st.floats(np.log10(lo), np.log10(hi)).map(lambda e: float(10.0 ** e))


@st.composite
def game_specs(draw, n_max: int = 30, families=FAMILIES) -> str:
    """A ``make_game`` spec string; n >= 3 where the family needs it (cyclic, blend)."""
    family = draw(st.sampled_from(families))
    if family in ("rps", "perturbed_rps", "biased_rps"):
        return family
    n = draw(st.integers(3 if family in ("cyclic", "blend") else 2, max(n_max, 3)))
    seed = draw(st.integers(0, 2**16))
    if family == "cyclic":
        return f"cyclic:{n}:{draw(st.floats(0.0, 0.5))!r}"
    if family == "majority":
        return f"majority:{n}:{draw(st.sampled_from([1, 3, 5]))}:{seed}"
    if family == "blend":
        return f"blend:{n}:{draw(st.floats(0.0, 1.0))!r}:{seed}"
    return f"{family}:{n}:{seed}"


def dirichlet(alpha: float, u: np.ndarray) -> np.ndarray:
    """Symmetric Dirichlet(alpha) from uniforms ``u``: Gamma(alpha) quantiles, normalised, floored."""
    g = gammaincinv(alpha, u)  # Gamma(alpha, 1) inverse CDF
    mu = np.maximum(g / g.max(), MU_FLOOR)
    return mu / mu.sum()


@st.composite
def examples(draw, n_max: int = 30, families=FAMILIES, tau_range=(1e-3, 10.0),
             alpha_range=(0.05, 20.0), logit_scale: float = 5.0, beta_max: float = 0.999) -> Example:
    """Strategy for :class:`Example` (see the module docstring for the distributions)."""
    spec = draw(game_specs(n_max, families))
    P = make_game(spec).P
    n = P.shape[0]
    alpha = draw(_log_uniform(*alpha_range))
    u = np.asarray(draw(st.lists(st.floats(1e-6, 1 - 1e-6), min_size=n, max_size=n)))
    # Shrinks towards u = 1e-6 everywhere, i.e. the uniform reference.
    mu = dirichlet(alpha, u)
    P, mu = validate_game(P, mu)
    tau = draw(_log_uniform(*tau_range))
    beta = draw(st.floats(0.0, beta_max))
    eta_tau = draw(st.floats(1e-3, 1.0))
    theta = np.asarray(draw(st.lists(st.floats(-logit_scale, logit_scale), min_size=n, max_size=n)))
    seed = draw(st.integers(0, 2**31 - 1))
    return Example(spec, P, mu, tau, beta, eta_tau / tau, theta, seed, alpha)
