"""Certificates of the KL-regularised preference game: how far a policy is from the equilibrium.

The game (SPEC §2): ``V(pi, pi') = pi @ P @ pi' - tau KL(pi || mu) + tau KL(pi' || mu)``, with the
regularised best response ``T(pi) = softmax(log mu + P @ pi / tau)`` (:func:`fixed_point_map`);
its equilibrium ``pi* = T(pi*)`` is computed by :mod:`tabular.solvers`.

Certificates (both public, both used by every solver, algorithm, test and proofs_check):

- :func:`duality_gap` — closed form ``2 [tau log sum mu exp(P pi / tau) + tau KL(pi || mu)] - 1``.
  Derivation: ``max_a V(a, pi) = tau logsumexp(log mu + P pi / tau) + tau KL(pi||mu)`` (Gibbs
  variational principle) and, since ``pi P b = 1 - b P pi``, ``min_b V(pi, b) = 1 -
  max_a V(a, pi)``; the gap is their difference. Equivalently ``gap = 2 tau KL(pi || T(pi))``.
  As tau -> 0 it tends to ``2 exploitability(pi)``, and it is evaluated so that it stays finite
  and accurate at any tau > 0 (down to 5e-324).
- :func:`fixed_point_residual` — ``max_y |log pi(y) - log T(pi)(y)|`` on the support of ``pi``.
  (Below tau ~ 1e-13 it is dominated by the round-off of ``P @ pi`` divided by tau: there the gap
  is the certificate.)

Also here: :func:`exploitability` (the tau = 0 certificate), :func:`duality_gap_closed_form`
(SPEC's formula verbatim, kept to check the identity), and the helpers the solvers share with the
certificates: :func:`validate_policy`, :func:`real_array` and :func:`gap_and_log_T` (the gap and
``log T(pi)`` from one product ``P @ pi``).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from .fixed_point import log_normalise, logsumexp_last
from .game import kl_log, validate_game, validate_tau

__all__ = [
    "duality_gap",
    "duality_gap_unchecked",
    "duality_gap_closed_form",
    "exploitability",
    "fixed_point_map",
    "fixed_point_residual",
    "validate_policy",
    "real_array",
    "gap_and_log_T",
    "SIMPLEX_TOL",
]

SIMPLEX_TOL = 1e-9  # |sum(pi) - 1| accepted by duality_gap (policies normalised in float64)


def validate_policy(pi, n: int, name: str = "pi") -> np.ndarray:
    """``pi`` on the probability simplex (..., n): finite, >= 0, sums to 1 within SIMPLEX_TOL."""
    pi = np.asarray(pi, dtype=np.float64)
    if pi.ndim < 1 or pi.shape[-1] != n:
        raise ValueError(f"{name} must have {n} entries (..., {n}), got shape {pi.shape}")
    if not np.all(np.isfinite(pi)):
        raise ValueError(f"{name} has non-finite entries (nan or inf)")
    if pi.min() < 0.0:
        raise ValueError(f"{name} must be a probability vector: min entry {pi.min():.6g} < 0")
    dev = np.abs(pi.sum(-1) - 1.0).max()
    if dev > SIMPLEX_TOL:
        raise ValueError(f"{name} must sum to 1 (within {SIMPLEX_TOL:g}); deviation {dev:.3g}")
    return pi


def _P_times(P, pi) -> np.ndarray:
    """``P @ pi`` over leading batch axes (matmul: BLAS, unlike einsum, for one game too); one
    shared P (n, n) with policies (B, n) is one matrix product."""
    if P.ndim == 2 and pi.ndim == 2:
        return pi @ P.T
    return np.matmul(P, pi[..., None])[..., 0]


def duality_gap_closed_form(P, mu, tau: float, pi) -> np.ndarray:
    """SPEC §2 verbatim: ``2 [tau log sum_y mu(y) exp((P @ pi)[y] / tau) + tau KL(pi || mu)] - 1``.

    Equal to :func:`duality_gap` in exact arithmetic (kept to check the identity; less accurate
    near the equilibrium because it cancels O(1) terms).
    """
    Ppi = _P_times(np.asarray(P, np.float64), np.asarray(pi, np.float64))
    lse = logsumexp(np.log(mu) + Ppi / tau, axis=-1)
    pi = np.asarray(pi, np.float64)
    with np.errstate(divide="ignore"):
        kl_pi_mu = kl_log(np.log(pi), np.log(mu), p=pi)
    return 2.0 * (tau * lse + tau * kl_pi_mu) - 1.0


def duality_gap(P, mu, tau: float, pi) -> np.ndarray:
    """Duality gap (exploitability) of ``pi`` in the tau-regularised game; batched over leading axes.

    ``gap(pi) = 2 [tau log sum_y mu(y) exp((P @ pi)[y] / tau) + tau KL(pi || mu)] - 1
              = 2 tau KL(pi || T(pi)) >= 0``.
    For ``tau == 0``: ``2 max_y (P @ pi)[y] - 1 = 2 exploitability``.

    Validates its input (a one-line ``ValueError``: P a preference matrix, mu a full-support
    reference, tau >= 0, pi on the simplex); :func:`duality_gap_unchecked` is the same number for
    callers that already validated (the algorithms' per-step metrics).
    """
    P = real_array(P, "P")
    mu = None if mu is None else real_array(mu, "mu")
    P, mu = validate_game(P, mu)
    tau = validate_tau(tau, allow_zero=True)
    pi = validate_policy(real_array(pi, "pi"), P.shape[-1])
    return duality_gap_unchecked(P, mu, tau, pi)


def duality_gap_unchecked(P, mu, tau: float, pi) -> np.ndarray:
    """:func:`duality_gap` without input validation (trusted callers only)."""
    P = np.asarray(P, dtype=np.float64)
    pi = np.asarray(pi, dtype=np.float64)
    Ppi = _P_times(np.asarray(P, np.float64), np.asarray(pi, np.float64))
    if tau == 0:
        return 2.0 * Ppi.max(-1) - 1.0
    return gap_and_log_T(Ppi, mu, tau, pi)[0]


def gap_and_log_T(Ppi, mu, tau: float, pi):
    """The gap of ``pi`` (tau > 0) from its product ``Ppi = P @ pi``, and ``log T(pi)`` on the way
    (the fixed-point residual is ``max |log pi - log T|``): the certificates without a second
    product with P."""
    # Evaluated as the identical 2 tau KL(pi || T(pi)) (expand log T = log mu + P pi/tau - lse and
    # use pi P pi = 1/2), which avoids cancelling the O(1) terms of "2 (tau lse + tau KL) - 1".
    # KL itself is summed as sum_{pi>0} pi (d + expm1(-d)) + T(pi = 0), d = log pi - log T: the
    # same number (sum pi expm1(-d) = sum_{pi>0} T - 1), but every term is >= 0 and O(d^2), so
    # round-off in d (~1e-16) gives ~1e-32 rather than ~1e-16: the certificate stays at round-off
    # even when multiplied by a large tau (e.g. tau / (1 - beta) with beta near 1).
    # Tiny tau: P pi is shifted by its max before dividing by tau (no overflow), and tau d is
    # formed directly (finite even where T underflows and d = inf); for |d| > 1 the term is
    # written pi tau d - tau (pi - T) (the same, since pi e^-d = T), so the gap tends to
    # 2 exploitability as tau -> 0 instead of inf or nan.
    log_mu = np.log(np.asarray(mu, np.float64))
    shift = Ppi - Ppi.max(-1, keepdims=True)  # <= 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scaled = log_mu + shift / tau
        lse = logsumexp_last(scaled)
        T = np.exp(scaled - lse)
        tau_d = tau * (np.log(pi) - log_mu + lse) - shift  # tau (log pi - log T)
        d = tau_d / tau
        near = pi * (tau_d + tau * np.expm1(-d))
        if near.ndim == 1 and np.minimum.reduce(pi) > 0 and np.maximum.reduce(np.abs(d)) <= 1.0:
            terms = near  # what the where below selects everywhere (the usual case: pi near T)
        else:
            far = pi * tau_d - tau * (pi - T)
            terms = np.where(pi > 0, np.where(np.abs(d) <= 1.0, near, far), tau * T)
    return 2.0 * terms.sum(-1), scaled - lse


def exploitability(P, pi) -> np.ndarray:
    """Unregularised exploitability ``max_y (P @ pi)[y] - 1/2`` (zero exactly on the tau=0 Nash set)."""
    Ppi = _P_times(np.asarray(P, np.float64), np.asarray(pi, np.float64))
    return Ppi.max(-1) - 0.5


def fixed_point_map(P, mu, tau: float, pi, log: bool = False) -> np.ndarray:
    """``T(pi) = softmax(log mu + P @ pi / tau)`` (the regularised best response)."""
    Ppi = _P_times(np.asarray(P, np.float64), np.asarray(pi, np.float64))
    # Shifting P pi by its max changes nothing (softmax) but cannot overflow at tiny tau.
    with np.errstate(divide="ignore", over="ignore"):
        out = log_normalise(np.log(mu) + (Ppi - Ppi.max(-1, keepdims=True)) / tau)
    return out if log else np.exp(out)


def fixed_point_residual(P, mu, tau: float, pi, log_pi=None) -> np.ndarray:
    """``max_y |log pi(y) - log T(pi)(y)|`` (pass ``log_pi`` when pi underflows)."""
    pi = np.asarray(pi, dtype=np.float64)
    if log_pi is None:
        with np.errstate(divide="ignore"):
            log_pi = np.log(pi)
    logT = fixed_point_map(P, mu, tau, pi, log=True)
    with np.errstate(invalid="ignore"):
        diff = np.where(pi > 0, np.abs(log_pi - logT), 0.0)
    return diff.max(-1)

def real_array(x, name: str) -> np.ndarray:
    """``x`` as an array (no copy of a float64 array); complex input refused in one line instead
    of numpy's ComplexWarning and a silently dropped imaginary part."""
    x = np.asarray(x)
    if np.iscomplexobj(x):
        raise ValueError(f"{name} must be real; got complex entries ({x.dtype})")
    return x

