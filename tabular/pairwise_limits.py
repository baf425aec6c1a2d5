"""Where online DPO lands: the stationary point of its population loss, solved and certified.

Online DPO samples both responses from the current policy ``pi`` (no gradient through the
sampling) and descends ``E_{y,y' ~ pi} loss_dpo(h(y, y'), P(y, y'))`` with ``h`` the margin of
``rho = log pi - log mu``. Its gradient in the logits is ``2 tau pi_a G_a(rho)`` with

    G_a(rho) = sum_y pi(y) [sigmoid(tau (rho_a - rho_y)) - P(a, y)]                (1)

(the loss' derivative ``tau (sigmoid(tau h) - p)`` is antisymmetric in the pair, so the two
orderings add). So the limit is the solution of ``G(rho) = 0``, a system that, unlike Eq. 13,
has no closed form in general (SPEC §5.6). Two facts make it well posed:

- ``G_a`` increases in ``rho_a`` from ``-sum pi P(a, .) < 0`` to ``sum pi (1 - P(a, .)) > 0``, so no
  action is driven to the boundary: the point is interior, with every ``pi_a > 0``;
- under Bradley-Terry, ``P(a, y) = sigmoid(s_a - s_y)``, ``rho = s / tau`` solves (1) exactly: the
  limit is the RLHF optimum ``mu exp(s / tau)`` (SPEC §5.6), which is Newton's starting point
  here (``s`` the row means of ``logit P``, HodgeRank's fit on the complete graph).

The residual ``max_a |G_a|`` is the certificate. It is the gradient divided by ``2 tau pi_a``, so it
weighs an action of probability 1e-40 as much as the mode: a plain gradient norm would not see
such actions at all. Solved in log space for the same reason (the limit's smallest entries reach
1e-70 on the enumerable task's games at tau = 0.1).

Online SLiC has no such point in general: its hinge makes ``G`` piecewise constant in ``rho``, so
its stationary set is made of kinks (pairs at margin exactly ``±1 / tau``) and sampled training
oscillates about it; this module does not claim one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit

from .fixed_point import log_normalise_logaddexp

__all__ = ["PairwiseLimit", "online_dpo_limit", "online_dpo_residual"]


@dataclass(frozen=True)
class PairwiseLimit:
    """Result of :func:`online_dpo_limit` for a batch of games (leading shape of ``mu``).

    pi, log_pi: the stationary point (..., n). residual: its certificate ``max_a |G_a|`` (...,) of
    Eq. (1). converged: residual <= tol. iterations: Newton steps taken (the batch's maximum).
    """

    pi: np.ndarray
    log_pi: np.ndarray
    tau: float
    residual: np.ndarray
    converged: np.ndarray
    iterations: int


def _parts(P, log_mu, tau, rho):
    pi = np.exp(log_normalise_logaddexp(log_mu + rho))
    S = expit(tau * (rho[..., :, None] - rho[..., None, :]))
    D = S - P
    G = np.einsum("...ay,...y->...a", D, pi)
    return pi, S, D, G


def online_dpo_residual(P, mu, tau: float, pi) -> np.ndarray:
    """``max_a |G_a|`` of Eq. (1) at ``pi`` (..., n): 0 exactly at online DPO's stationary point."""
    P, mu, pi = (np.asarray(a, np.float64) for a in (P, mu, pi))
    with np.errstate(divide="ignore"):
        rho = np.log(pi) - np.log(mu)
    return np.abs(_parts(P, np.log(mu), tau, rho)[3]).max(-1)


def _solve(A, b):
    """Batched ``A x = b``; a singular system gets its least-squares solution instead."""
    try:
        return np.linalg.solve(A, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        flatA, flatb = A.reshape(-1, *A.shape[-2:]), b.reshape(-1, b.shape[-1])
        x = [np.linalg.lstsq(a, v, rcond=None)[0] for a, v in zip(flatA, flatb)]
        return np.nan_to_num(np.stack(x)).reshape(b.shape)


def _newton(P, log_mu, tau, rho, tol, max_iter):
    """Damped Newton on G(rho) = 0 per game; returns (rho, max |G|, steps)."""
    n = P.shape[-1]
    pi, S, D, G = _parts(P, log_mu, tau, rho)
    res = np.abs(G).max(-1)
    it = 0
    while it < max_iter and (res > tol).any():
        it += 1
        Sp = tau * S * (1 - S)  # d sigmoid(tau (rho_a - rho_y)) / d rho_a
        # J_ab = pi_b D_ab - G_a pi_b + delta_ab sum_y pi_y S'_ay - pi_b S'_ab
        J = (D - G[..., :, None] - Sp) * pi[..., None, :]
        J[..., np.arange(n), np.arange(n)] += np.einsum("...ay,...y->...a", Sp, pi)
        c = np.abs(J).max((-2, -1), keepdims=True)
        d = _solve(J + c, -G)
        d[res <= tol] = 0.0  # converged games stay put
        # a nearly singular J can ask for huge steps: move no pair's tau * margin by more than 4
        big = tau * np.abs(d).max(-1, keepdims=True)
        d = np.where(big > 4.0, d * 4.0 / np.maximum(big, 4.0), d)
        step = np.ones(res.shape)
        new_rho, new_res = rho, res
        for _ in range(40):  # halve until max |G| decreases, per game
            cand = rho + step[..., None] * d
            rc = np.abs(_parts(P, log_mu, tau, cand)[3]).max(-1)
            rc = np.where(np.isfinite(rc), rc, np.inf)
            ok = (rc < res) | (res <= tol)
            new_rho = np.where(ok[..., None], cand, new_rho)
            new_res = np.where(ok, rc, new_res)
            if ok.all():
                break
            step = np.where(ok, step, step / 2)
        if np.array_equal(new_res, res):
            break  # no game improved: stop rather than spin
        rho, res = new_rho, new_res
        pi, S, D, G = _parts(P, log_mu, tau, rho)
    return rho, res, it


def online_dpo_limit(P, mu, tau: float, *, tol: float = 1e-12, max_iter: int = 100,
                     path_stages: int = 6) -> PairwiseLimit:
    """Online DPO's limit ``pi ∝ mu exp(rho)``, ``G(rho) = 0`` of Eq. (1), for one game (n, n) or a
    batch (B, n, n) with ``mu`` (n,) or (B, n); ``P`` must lie strictly inside (0, 1).

    Newton on ``rho`` from the Bradley-Terry fit, with a backtracking line search on ``max |G|``.
    ``G`` is invariant to ``rho + c``, so its Jacobian ``J`` is singular along the constant vector;
    the step solves ``(J + c 1 1^T) d = -G`` instead, which fixes that gauge (``1^T d = 0`` at
    the solution). Games that have converged stop moving. Never raises for slow convergence:
    read ``converged`` / ``residual``.
    """
    P = np.asarray(P, np.float64)
    mu = np.broadcast_to(np.asarray(mu, np.float64), P.shape[:-1])
    if not (np.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be a positive number, got {tau!r}")
    if not ((P > 0) & (P < 1)).all():
        raise ValueError("online DPO's limit needs 0 < P < 1 (its logit is the target margin)")
    if not (mu > 0).all():
        raise ValueError("mu must be positive on every action")
    log_mu = np.log(mu)
    rho = logit(P).mean(-1) / tau  # the BT fit's s / tau; exact when P is Bradley-Terry
    rho, res, it = _newton(P, log_mu, tau, rho, tol, max_iter)
    todo = res > tol
    if todo.any():
        # continuation in tau for the games Newton missed: solve at a tau 2^k times larger (easier:
        # G is smoother), then halve towards tau, warm-starting rho * tau_old / tau_new
        Pt, lt = P[todo], log_mu[todo]
        stages = tau * 2.0 ** np.arange(path_stages, -1, -1)
        r = logit(Pt).mean(-1) / stages[0]
        for k, t in enumerate(stages):
            if k:
                r = r * stages[k - 1] / t
            r, rt, i = _newton(Pt, lt, t, r, tol, max_iter)
            it += i
        better = rt < res[todo]
        rho[todo] = np.where(better[..., None], r, rho[todo])
        res[todo] = np.where(better, rt, res[todo])
    log_pi = log_normalise_logaddexp(log_mu + rho)
    return PairwiseLimit(np.exp(log_pi), log_pi, float(tau), res, res <= tol, it)
