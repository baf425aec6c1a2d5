"""Exact equilibria of the KL-regularised preference game, with certificates.

The game (SPEC §2): ``V(pi, pi') = pi @ P @ pi' - tau KL(pi || mu) + tau KL(pi' || mu)``. Its unique
Nash equilibrium is the fixed point ``pi* = T(pi*)``, ``T(pi) = softmax(log mu + P @ pi / tau)``.

Certificates (both public, both used by every solver, algorithm, test and proofs_check):

- :func:`duality_gap` — closed form ``2 [tau log sum mu exp(P pi / tau) + tau KL(pi || mu)] - 1``.
  Derivation: ``max_a V(a, pi) = tau logsumexp(log mu + P pi / tau) + tau KL(pi||mu)`` (Gibbs
  variational principle) and, since ``pi P b = 1 - b P pi``, ``min_b V(pi, b) = 1 -
  max_a V(a, pi)``; the gap is their difference. Equivalently ``gap = 2 tau KL(pi || T(pi))``.
- :func:`fixed_point_residual` — ``max_y |log pi(y) - log T(pi)(y)|`` on the support of ``pi``.

Method (:func:`solve_equilibrium`, tau > 0): Newton's method on
``F(z) = z - log mu - A softmax(z) / tau`` in logit space ``z`` (``A = P - 1/2`` is skew), whose
Jacobian ``I - A D / tau`` (``D = diag(pi) - pi pi^T``) is never singular because ``A D`` has
spectrum on the imaginary axis in the ``D``-inner product. Backtracking on ``||F||`` globalises
each solve; when Newton from the uniform start stalls (small tau), the solve follows a
geometrically decreasing tau path with warm starts. tau == 0: the symmetric zero-sum linear
program (scipy HiGHS).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linprog
from scipy.special import log_softmax, logsumexp

from .game import kl, validate_game, validate_tau

__all__ = [
    "Equilibrium",
    "duality_gap",
    "duality_gap_closed_form",
    "exploitability",
    "fixed_point_map",
    "fixed_point_residual",
    "solve_equilibrium",
    "solve_zero_sum",
    "mixture_fixed_point",
]


@dataclass(frozen=True)
class Equilibrium:
    """Result of :func:`solve_equilibrium`.

    pi: the equilibrium policy (n,). log_pi: its log (exact also where pi underflows to 0).
    gap: duality gap (closed form). residual: fixed-point residual ``max |log pi - log T(pi)|``
    (tau > 0) or exploitability (tau == 0). iterations: Newton steps (or LP iterations).
    converged: whether gap <= gap_tol. method: ``"newton"``, ``"newton-continuation"`` or ``"lp"``.
    """

    pi: np.ndarray
    log_pi: np.ndarray
    tau: float
    gap: float
    residual: float
    iterations: int
    converged: bool
    method: str
    message: str = field(default="")


def duality_gap_closed_form(P, mu, tau: float, pi) -> np.ndarray:
    """SPEC §2 verbatim: ``2 [tau log sum_y mu(y) exp((P @ pi)[y] / tau) + tau KL(pi || mu)] - 1``.

    Equal to :func:`duality_gap` in exact arithmetic (kept to check the identity; less accurate
    near the equilibrium because it cancels O(1) terms).
    """
    Ppi = np.einsum("...ij,...j->...i", np.asarray(P, np.float64), np.asarray(pi, np.float64))
    lse = logsumexp(np.log(mu) + Ppi / tau, axis=-1)
    return 2.0 * (tau * lse + tau * kl(pi, mu)) - 1.0


def duality_gap(P, mu, tau: float, pi) -> np.ndarray:
    """Duality gap (exploitability) of ``pi`` in the tau-regularised game; batched over leading axes.

    ``gap(pi) = 2 [tau log sum_y mu(y) exp((P @ pi)[y] / tau) + tau KL(pi || mu)] - 1
              = 2 tau KL(pi || T(pi)) >= 0``.
    For ``tau == 0``: ``2 max_y (P @ pi)[y] - 1 = 2 exploitability``.
    """
    P = np.asarray(P, dtype=np.float64)
    pi = np.asarray(pi, dtype=np.float64)
    Ppi = np.einsum("...ij,...j->...i", P, pi)
    if tau == 0:
        return 2.0 * Ppi.max(-1) - 1.0
    # Evaluated as the identical 2 tau KL(pi || T(pi)) (expand log T = log mu + P pi/tau - lse and
    # use pi P pi = 1/2), which avoids cancelling the O(1) terms of "2 (tau lse + tau KL) - 1".
    # KL itself is summed as sum_{pi>0} pi (d + expm1(-d)) + T(pi = 0), d = log pi - log T: the
    # same number (sum pi expm1(-d) = sum_{pi>0} T - 1), but every term is >= 0 and O(d^2), so
    # round-off in d (~1e-16) gives ~1e-32 rather than ~1e-16: the certificate stays at round-off
    # even when multiplied by a large tau (e.g. tau / (1 - beta) with beta near 1).
    log_T = log_softmax(np.log(mu) + Ppi / tau, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.log(pi) - log_T
        terms = np.where(pi > 0, pi * (d + np.expm1(-d)), np.exp(log_T))
    return 2.0 * tau * terms.sum(-1)


def exploitability(P, pi) -> np.ndarray:
    """Unregularised exploitability ``max_y (P @ pi)[y] - 1/2`` (zero exactly on the tau=0 Nash set)."""
    Ppi = np.einsum("...ij,...j->...i", np.asarray(P, dtype=np.float64), np.asarray(pi, np.float64))
    return Ppi.max(-1) - 0.5


def fixed_point_map(P, mu, tau: float, pi, log: bool = False) -> np.ndarray:
    """``T(pi) = softmax(log mu + P @ pi / tau)`` (the regularised best response)."""
    Ppi = np.einsum("...ij,...j->...i", P, pi)
    out = log_softmax(np.log(mu) + Ppi / tau, axis=-1)
    return out if log else np.exp(out)


def fixed_point_residual(P, mu, tau: float, pi, log_pi=None) -> np.ndarray:
    """``max_y |log pi(y) - log T(pi)(y)|`` (pass ``log_pi`` when pi underflows)."""
    pi = np.asarray(pi, dtype=np.float64)
    if log_pi is None:
        with np.errstate(divide="ignore"):
            log_pi = np.log(pi)
    logT = fixed_point_map(P, mu, tau, pi, log=True)
    return np.abs(log_pi - logT).max(-1)


# --------------------------------------------------------------------------------------------
# Newton in logit space.
# --------------------------------------------------------------------------------------------
def _newton(A, log_mu, tau, z, max_iter, tol):
    """Damped Newton on F(z) = z - log mu - A softmax(z)/tau; z kept normalised (z = log pi)."""
    n = z.shape[0]
    eye = np.eye(n)

    def residual(z):
        pi = np.exp(z)
        F = z - log_mu - A @ pi / tau
        return F - F.max(), pi  # shift-invariant: only F up to a constant matters

    def norm(F):
        # F is defined up to an additive constant; measure its spread.
        return F.max() - F.min()

    F, pi = residual(z)
    r = norm(F)
    it = 0
    for it in range(1, max_iter + 1):
        if r <= tol:
            return z, r, it - 1, True
        # A D = A diag(pi) - (A pi) pi^T, formed in O(n^2) instead of a dense O(n^3) product.
        J = eye - (A * pi[None, :] - np.outer(A @ pi, pi)) / tau
        dz = np.linalg.solve(J, -F)
        step = 1.0
        while True:
            z_new = log_softmax(z + step * dz)
            F_new, pi_new = residual(z_new)
            r_new = norm(F_new)
            if r_new < r or step < 1e-10:
                break
            step *= 0.5
        if not r_new < r:  # no decrease at all: round-off floor reached (or stalled)
            return z, r, it, r <= 1e3 * tol
        z, F, pi, r = z_new, F_new, pi_new, r_new
    return z, r, it, r <= tol


def solve_equilibrium(
    P,
    mu=None,
    tau: float = 1.0,
    *,
    gap_tol: float = 1e-12,
    max_iter: int = 100,
    tau_path_ratio: float = 0.5,
    tau_start: float = 1.0,
    init=None,
) -> Equilibrium:
    """The Nash equilibrium ``pi* ∝ mu exp(P @ pi* / tau)`` with its certificate.

    Args:
      P: (n, n) preference matrix. mu: (n,) reference (default uniform). tau: >= 0.
      gap_tol: target duality gap; ``converged`` reports whether it was met (a warning names the
        remedy otherwise). max_iter: Newton steps per tau stage. tau_path_ratio, tau_start: the
        continuation path ``tau_start * ratio^k`` down to ``tau``, used when direct Newton stalls.
      init: optional warm start (a policy with full support).

    Returns: :class:`Equilibrium`. For ``tau == 0`` see :func:`solve_zero_sum`.
    """
    P, mu = validate_game(P, mu)
    if P.ndim != 2:
        raise ValueError(f"solve_equilibrium takes one game (n, n), got shape {P.shape}")
    tau = validate_tau(tau, allow_zero=True)
    if tau == 0:
        return solve_zero_sum(P)
    A = P - 0.5
    log_mu = np.log(mu)
    tol = 1e-14  # on the spread of F: well below what gap_tol needs (gap ~ tau * spread^2)

    z0 = log_mu.copy() if init is None else log_softmax(np.log(np.asarray(init, np.float64)))
    z, r, iters, ok = _newton(A, log_mu, tau, z0, max_iter, tol)
    method = "newton"
    total = iters
    if not ok:
        # Continuation: follow tau_k = tau_start * ratio^k down to tau, warm-starting each stage.
        method = "newton-continuation"
        t = max(tau_start, tau)
        z = log_mu.copy()
        while True:
            z, r, iters, ok = _newton(A, log_mu, t, z, max_iter, tol)
            total += iters
            if t == tau:
                break
            t = max(t * tau_path_ratio, tau)
    pi = np.exp(z)
    gap = float(duality_gap(P, mu, tau, pi))
    residual = float(fixed_point_residual(P, mu, tau, pi, log_pi=z))
    converged = bool(gap <= gap_tol)
    message = "gap within tolerance" if converged else (
        f"duality gap {gap:.3g} > {gap_tol:g}; increase max_iter or lower tau_path_ratio")
    if not converged:
        warnings.warn(f"solve_equilibrium: {message}", RuntimeWarning, stacklevel=2)
    return Equilibrium(pi, z, tau, gap, residual, total, converged, method, message)


def solve_zero_sum(P) -> Equilibrium:
    """tau == 0: a Nash equilibrium of the symmetric zero-sum game with payoff ``P - 1/2``.

    Linear program (HiGHS): minimise ``v`` s.t. ``(P - 1/2) pi <= v``, ``sum pi = 1``, ``pi >= 0``;
    the value is 0. When the Nash set is not a single point, the policy returned is the vertex
    HiGHS's dual simplex ends on (deterministic for a given ``P``, but not the maximum-entropy
    point nor, in general, the limit of ``pi*_tau`` as tau -> 0). ``residual`` is the exploitability.
    """
    P = np.asarray(P, dtype=np.float64)
    n = P.shape[0]
    A = P - 0.5
    c = np.zeros(n + 1)
    c[-1] = 1.0
    A_ub = np.hstack([A, -np.ones((n, 1))])
    A_eq = np.hstack([np.ones((1, n)), np.zeros((1, 1))])
    bounds = [(0, None)] * n + [(None, None)]
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(n), A_eq=A_eq, b_eq=[1.0], bounds=bounds,
                  method="highs-ds")
    if res.status != 0:
        raise RuntimeError(f"zero-sum LP failed: {res.message}")
    pi = np.clip(res.x[:n], 0.0, None)
    pi /= pi.sum()
    expl = float(exploitability(P, pi))
    with np.errstate(divide="ignore"):
        log_pi = np.log(pi)
    converged = expl <= 1e-9
    return Equilibrium(pi, log_pi, 0.0, 2 * expl, expl, int(res.nit), converged, "lp", res.message)


def mixture_fixed_point(P, mu, tau: float, beta: float, **kwargs) -> Equilibrium:
    """Fixed point of IPO-MD(beta) / Nash-MD-PG(beta): ``pi ∝ mu exp(P @ mix_beta(pi) / tau)``.

    By Prop. 5.2 (SPEC §5.4), ``m = mix_beta(pi)`` is the equilibrium at temperature
    ``tau / (1 - beta)``, so ``pi ∝ mu exp(P @ m / tau)`` with ``m`` from :func:`solve_equilibrium`.
    This function computes it that way; proofs_check verifies the identity independently.
    ``beta == 1``: ``m = mu`` (offline IPO point). Returned ``gap``/``residual`` certify the
    equation itself: ``residual = max |log pi - log(mu exp(P mix_beta(pi)/tau))|`` and
    ``gap`` is the duality gap of ``m`` at temperature ``tau / (1 - beta)`` (0 when beta = 1).
    """
    P, mu = validate_game(P, mu)
    tau = validate_tau(tau)
    if beta >= 1.0:
        m = mu
        gap = 0.0
    else:
        eq = solve_equilibrium(P, mu, tau / (1.0 - beta), **kwargs)
        m, gap = eq.pi, eq.gap
    log_pi = log_softmax(np.log(mu) + P @ m / tau)
    pi = np.exp(log_pi)
    log_m = log_softmax((1 - beta) * log_pi + beta * np.log(mu))
    residual = float(np.abs(log_pi - log_softmax(np.log(mu) + P @ np.exp(log_m) / tau)).max())
    return Equilibrium(pi, log_pi, tau, float(gap), residual, 0, residual <= 1e-12,
                       "prop-5.2", f"beta={beta}")
