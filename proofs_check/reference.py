"""Independent references the ledger compares the shared code against (numpy, float64).

Each function is written from the formula in SPEC / the paper, not from :mod:`tabular`: the closed-
form gradients use the softmax score ``grad_theta log pi(y) = e_y - pi``; the fixed point of Eq. 13
has its own Newton solver (it does not use Prop. 5.2, which :func:`tabular.mixture_fixed_point`
assumes); the game value ``V`` is evaluated from its definition.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_softmax

__all__ = [
    "score_matrix",
    "self_play_gradient",
    "ipo_md_gradient_centred",
    "ipo_md_gradient_uncentred",
    "online_dpo_gradient_two_actions",
    "solve_mixture_fixed_point",
    "game_value",
    "gibbs_best_response",
    "kl",
    "rel_error",
]


def kl(p, q) -> float:
    p, q = np.asarray(p, float), np.asarray(q, float)
    nz = p > 0
    return float(np.sum(p[nz] * (np.log(p[nz]) - np.log(q[nz]))))


def rel_error(a, b, term_scale=0.0, floor: float = 1e-4) -> float:
    """Element-wise relative error ``max_k |a_k - b_k| / max(|b_k|, floor * max|b|, floor * S)``.

    With the default floor 1e-4 and a tolerance 1e-10, a component smaller than 1e-4 x the largest
    one (or than S) is judged by its absolute error, <= 1e-14 x that size. The floor matters for
    components ``floor`` times smaller than the largest one, or than
    ``S = term_scale`` (a number, or one per component), the size of the terms the component is
    summed from (e.g. ``4/tau (1 + tau
    max|r|)`` for an IPO gradient): there round-off of those terms dominates (a gradient that is
    exactly 0, e.g. at pi = mu with P = 1/2, comes out as 0 or as 1e-33).
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = np.maximum(np.abs(b), floor * np.maximum(np.abs(b).max(), term_scale))
    scale = np.maximum(scale, 1e-300)
    return float(np.max(np.abs(a - b) / scale))


def score_matrix(pi) -> np.ndarray:
    """Row ``y``: ``grad_theta log pi(y) = e_y - pi`` for ``pi = softmax(theta)``; (n, n)."""
    pi = np.asarray(pi, float)
    return np.eye(pi.size) - pi[None, :]


def self_play_gradient(P, mu, tau, log_pi) -> np.ndarray:
    """``E_{y~pi}[grad log pi(y) (P(y > pi) - 1/2 - tau r_pi(y))]`` (Prop. 4.2, SPEC §5.2)."""
    pi = np.exp(log_pi)
    advantage = P @ pi - 0.5 - tau * (log_pi - np.log(mu))
    return pi @ (score_matrix(pi) * advantage[:, None])


def _mixture(log_pi, mu, beta):
    return np.exp(log_softmax((1 - beta) * log_pi + beta * np.log(mu)))


def ipo_md_gradient_uncentred(P, mu, tau, log_pi, beta) -> np.ndarray:
    """The "natural" closed form for IPO-MD(beta): Prop. 4.2 with pairs from ``m = mix_beta(pi)``,

    ``-(4/tau) E_{y~m}[grad log pi(y) (P(y > m) - 1/2 - tau r_pi(y))]`` (score of pi, not of m).
    """
    m = _mixture(log_pi, mu, beta)
    advantage = P @ m - 0.5 - tau * (log_pi - np.log(mu))
    return -(4.0 / tau) * (m @ (score_matrix(np.exp(log_pi)) * advantage[:, None]))


def ipo_md_gradient_centred(P, mu, tau, log_pi, beta) -> np.ndarray:
    """Derived here: the same with the log-ratio centred under ``m``,

    ``-(4/tau) E_{y~m}[grad log pi(y) (P(y > m) - 1/2 - tau (r_pi(y) - E_{y'~m} r_pi(y')))]``.
    Derivation: ``d ipo_loss / dh = -(2/tau) f``, ``f = P(y,y') - 1/2 - tau h``; ``f`` and
    ``grad h = s(y) - s(y')`` are odd in the pair, so ``E_{m x m}[f grad h] = 2 E[f s(y)]`` and
    ``E_{y'~m}[f] = P(y > m) - 1/2 - tau (r(y) - E_m r)``. For beta = 0 the centring term is
    ``tau E_pi[r] E_pi[s] = 0`` and this is Prop. 4.2; for beta > 0, ``E_m[s] = m - pi != 0``.
    """
    m = _mixture(log_pi, mu, beta)
    r = log_pi - np.log(mu)
    advantage = P @ m - 0.5 - tau * (r - m @ r)
    return -(4.0 / tau) * (m @ (score_matrix(np.exp(log_pi)) * advantage[:, None]))


def online_dpo_gradient_two_actions(p, tau, pi) -> np.ndarray:
    """Online-DPO population gradient at ``pi`` = its own sampling policy, two actions, at ``pi*``.

    At ``pi*``, ``tau h(0, 1) = (P pi*)[0] - (P pi*)[1] = p - 1/2`` and
    ``d dpo_loss/dh = tau (sigmoid(tau h) - p)``; summing both orders of the pair gives
    ``grad_0 = -grad_1 = 2 pi_0 pi_1 tau (sigmoid(p - 1/2) - p)``, zero only at ``p = 1/2``
    (``sigmoid(x - 1/2) - x`` decreases strictly, slope <= -3/4).
    """
    g0 = 2.0 * pi[0] * pi[1] * tau * (expit(p - 0.5) - p)
    return np.array([g0, -g0])


def solve_mixture_fixed_point(P, mu, tau, beta, tol: float = 1e-15, max_iter: int = 200):
    """Newton on ``F(z) = z - log mu - P m(z) / tau`` (mod constants), ``m = mix_beta(softmax z)``.

    Solves Eq. 13, ``pi ∝ mu exp(P mix_beta(pi) / tau)``, directly; the Jacobian is
    ``I - (1 - beta)/tau P (diag m - m m^T)``. Globalised by backtracking and a tau continuation
    (tau_k = 2^-k from 1 down to tau, warm-started) for small tau. Returns ``(log_pi, residual)``
    with ``residual = max - min of F`` (the spread of ``log pi - log(mu exp(P m / tau))``).
    """
    log_mu = np.log(mu)
    n = mu.size

    def F(z, t):
        m = _mixture(z, mu, beta)
        f = z - log_mu - P @ m / t
        return f - f.mean(), m

    def spread(f):
        return f.max() - f.min()

    def newton(z, t):
        f, m = F(z, t)
        for _ in range(max_iter):
            if spread(f) <= tol:
                break
            D = np.diag(m) - np.outer(m, m)
            J = np.eye(n) - (1 - beta) / t * P @ D
            dz = np.linalg.lstsq(J, -f, rcond=None)[0]
            step = 1.0
            while True:
                z_new = log_softmax(z + step * dz)
                f_new, m_new = F(z_new, t)
                if spread(f_new) < spread(f) or step < 1e-12:
                    break
                step /= 2
            if not spread(f_new) < spread(f):
                break
            z, f, m = z_new, f_new, m_new
        return z, spread(f)

    taus = [tau] if tau >= 1 else [2.0 ** -k for k in range(int(np.log2(1 / tau)) + 1)] + [tau]
    z = log_softmax(log_mu)
    for t in taus:
        z, res = newton(z, t)
    return z, res


def gibbs_best_response(P, mu, tau, pi) -> np.ndarray:
    """``argmax_a V(a, pi) ∝ mu exp(P pi / tau)`` (Gibbs variational principle)."""
    return np.exp(log_softmax(np.log(mu) + P @ pi / tau))


def game_value(P, mu, tau, pi, pi_prime) -> float:
    """``V(pi, pi') = pi P pi' - tau KL(pi || mu) + tau KL(pi' || mu)`` (SPEC §2), from the definition."""
    return float(pi @ P @ pi_prime - tau * kl(pi, mu) + tau * kl(pi_prime, mu))
