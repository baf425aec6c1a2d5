"""Exact equilibria of the KL-regularised preference game, with certificates.

The game (SPEC §2): ``V(pi, pi') = pi @ P @ pi' - tau KL(pi || mu) + tau KL(pi' || mu)``. Its unique
Nash equilibrium is the fixed point ``pi* = T(pi*)``, ``T(pi) = softmax(log mu + P @ pi / tau)``.

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

Method (:func:`solve_equilibrium`, tau > 0): first the contraction-aware fixed-point stage of
:mod:`tabular.fixed_point` (one product with P per iteration, plain then Anderson-accelerated,
the contraction rate estimated from the residuals; ``method="fixed-point"`` when it reaches the
round-off floor by itself, its certificates then computed from the product it already made). A
game it hands over goes to Newton, started from the stage's best iterate where that cut the
residual by ``FP_WARM_GAIN`` (else from mu, as without the stage): Newton's method on
``G(z) = tau (z - log mu) - A softmax(z)`` in logit space ``z`` (``A = P - 1/2`` is skew), whose
Jacobian ``tau I - A D`` (``D = diag(pi) - pi pi^T``) is never singular because ``A D`` has
spectrum on the imaginary axis in the ``D``-inner product. (G is tau times the residual of the
fixed point; the Newton steps are the same, but the scaled form keeps the tau I term exact when
``A D / tau`` would swamp it in float64.) Linear solves: dense LU for n <= ``DENSE_MAX_N``;
above, GMRES with O(n^2) matrix-vector products ``v -> tau v - A (pi * v) + (A pi)(pi . v)``
(Newton-Krylov, forcing term ``min(1e-2, |F|)`` floored at 1e-6: the inexact steps contract
by 1e-6 or better, and F itself is always evaluated in float64), falling back to LU when GMRES
stalls and n <= ``DENSE_FALLBACK_MAX_N``. Backtracking on ``||G||`` globalises each solve.
When Newton from the reference misses the gap target and tau < 1e-2, Newton restarts from the
tau = 0 solution (pi*_tau = pi0 + O(tau)); if that misses too, the solve follows a
geometrically decreasing tau path with warm starts (at most ``MAX_PATH_STAGES`` stages). Below
``TAU_FROM_ZERO`` only the start from tau = 0 is used (a path from tau = 1 would be too long).

tau == 0 (:func:`solve_zero_sum`): the symmetric zero-sum game ``P - 1/2`` has value 0, so ``pi`` is
a Nash equilibrium iff ``pi`` is on the simplex and ``max_y (A pi)(y) <= 0`` (the LP optimality
conditions: primal and dual are the same vector). The support is identified by a dense
interior-point path (Mehrotra), the indifference equations ``A_SS pi_S = 0, sum pi_S = 1`` are
solved exactly on it (with a few support corrections), and the conditions above are verified;
the general LP (HiGHS dual simplex) is the fallback.

Other closed-form limits, each with its own result type: :func:`mixture_fixed_point` ->
:class:`MixtureFixedPoint` (SPEC Eq. 13, the limit of IPO-MD(beta) / Nash-MD-PG(beta)) and
:func:`rlhf_optimum` -> :class:`RLHFOptimum` (``mu exp(s / tau)``, the limit of RL on
Bradley-Terry scores).

Batches: ``solve_equilibrium`` takes ``P`` of shape (B, n, n), or one (n, n) ``P`` shared by B
games with ``mu`` of shape (B, n) (a stride-0 broadcast stack is read as shared), ``tau`` a
scalar or (B,), and returns an :class:`EquilibriumBatch` (per-game certificates). Games are
solved in chunks that bound the working memory (``chunk``, default ``BATCH_MEMORY`` bytes): the
fixed-point stage on the whole chunk (one matrix product per iteration for a shared P), one
vectorised dense Newton for the games it hands over (n <= ``DENSE_MAX_N``; above, Newton-Krylov
one game at a time), and the full single-game solver for what is left (tau = 0, tiny tau, a
stalled Newton). A stack is validated chunk by chunk, naming the first bad game; results whose
size alone exceeds ``MEMORY_LIMIT`` are refused in one line.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import lu_factor, lu_solve
from scipy.optimize import linprog
from scipy.sparse.linalg import LinearOperator, gmres
from scipy.special import log_softmax, logsumexp

from .fixed_point import (
    FP_DEPTH,
    P_times_batch,
    anderson_fixed_point,
    log_normalise,
    logsumexp_last,
)
from .game import (
    check_allocation,
    kl_log,
    uniform,
    validate_beta,
    validate_game,
    validate_preference,
    validate_reference,
    validate_tau,
)

__all__ = [
    "Equilibrium",
    "EquilibriumBatch",
    "duality_gap",
    "duality_gap_unchecked",
    "duality_gap_closed_form",
    "exploitability",
    "fixed_point_map",
    "fixed_point_residual",
    "solve_equilibrium",
    "solve_zero_sum",
    "mixture_fixed_point",
    "MixtureFixedPoint",
    "rlhf_optimum",
    "RLHFOptimum",
]

DENSE_MAX_N = 250  # measured (random games, tau 0.01-1): dense LU is as fast or faster up to here
DENSE_FALLBACK_MAX_N = 4000  # J is n^2 floats (128 MB at 4000): beyond this only GMRES
TAU_FROM_ZERO = 1e-6  # below: start Newton from the tau = 0 solution, not a path from tau_start
MAX_PATH_STAGES = 1000  # bound on the continuation path (tau_start -> tau) length
SIMPLEX_TOL = 1e-9  # |sum(pi) - 1| accepted by duality_gap (policies normalised in float64)
NEWTON_TOL = 1e-14  # on the spread of F = G / tau: well below what gap_tol needs (gap ~ tau F^2)
# Newton starts from the fixed-point stage's best iterate only where that stage cut the residual
# by this factor; else from mu, as without the stage (measured: from an iterate the stage barely
# moved, direct Newton at tau = 1e-3 missed where it succeeds from mu, and the tau = 0 start
# cost 8x more, majority-of-5, n = 200).
FP_WARM_GAIN = 1e-2


@dataclass(frozen=True)
class Equilibrium:
    """Result of :func:`solve_equilibrium`.

    pi: the equilibrium policy (n,). log_pi: its log (exact also where pi underflows to 0).
    gap: duality gap (closed form; at tau == 0 it is 2 x the exploitability ``max (P pi) - 1/2``).
    residual: fixed-point residual ``max |log pi - log T(pi)|``; nan at tau == 0, where ``T`` is
    not defined and the gap is the certificate. iterations: fixed-point iterations plus Newton
    steps (or LP iterations, or support corrections). converged: whether gap <= gap_tol. method:
    ``"fixed-point"`` (the contraction-aware fixed-point stage reached round-off, no Newton),
    ``"newton"``, ``"newton-krylov"`` (GMRES linear solves), ``"newton-continuation"``,
    ``"newton-from-tau0"`` (tiny tau, Newton started at the tau = 0 solution), ``"support"``
    (tau = 0, exact solve on the identified support) or ``"lp"`` (tau = 0, HiGHS); in a batch
    also ``"newton-batch"`` (vectorised dense Newton). fixed_point_iterations: the part of
    ``iterations`` spent in the fixed-point stage (products with ``P``) before Newton took over.
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
    fixed_point_iterations: int = field(default=0)


@dataclass(frozen=True)
class EquilibriumBatch:
    """Result of :func:`solve_equilibrium` on a batch: a stack ``P`` (B, n, n), or one ``P`` shared
    by B games with ``mu`` (B, n) or ``tau`` (B,).

    The fields of :class:`Equilibrium`, one entry per game: pi, log_pi (B, n); tau, gap, residual
    (B,) float; iterations, fixed_point_iterations (B,) int; converged (B,) bool; method: tuple
    of B strings; message: a summary (games within gap_tol, how many each method solved).
    ``batch[b]`` is game b's :class:`Equilibrium`, with a message about game b alone.
    """

    pi: np.ndarray
    log_pi: np.ndarray
    tau: np.ndarray
    gap: np.ndarray
    residual: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    method: tuple
    message: str = field(default="")
    fixed_point_iterations: np.ndarray | None = field(default=None)

    def __len__(self) -> int:
        return self.pi.shape[0]

    def __getitem__(self, b: int) -> Equilibrium:
        gap, ok = float(self.gap[b]), bool(self.converged[b])
        message = "gap within tolerance" if ok else (
            f"duality gap {gap:.3g} above gap_tol; increase max_iter or lower tau_path_ratio")
        return Equilibrium(self.pi[b], self.log_pi[b], float(self.tau[b]), gap,
                           float(self.residual[b]), int(self.iterations[b]), ok, self.method[b], message,
                           0 if self.fixed_point_iterations is None else
                           int(self.fixed_point_iterations[b]))


# --------------------------------------------------------------------------------------------
# Certificates.
# --------------------------------------------------------------------------------------------
def _validate_policy(pi, n: int, name: str = "pi") -> np.ndarray:
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
    P = _real_array(P, "P")
    mu = None if mu is None else _real_array(mu, "mu")
    P, mu = validate_game(P, mu)
    tau = validate_tau(tau, allow_zero=True)
    pi = _validate_policy(_real_array(pi, "pi"), P.shape[-1])
    return duality_gap_unchecked(P, mu, tau, pi)


def duality_gap_unchecked(P, mu, tau: float, pi) -> np.ndarray:
    """:func:`duality_gap` without input validation (trusted callers only)."""
    P = np.asarray(P, dtype=np.float64)
    pi = np.asarray(pi, dtype=np.float64)
    Ppi = _P_times(np.asarray(P, np.float64), np.asarray(pi, np.float64))
    if tau == 0:
        return 2.0 * Ppi.max(-1) - 1.0
    return _gap_and_log_T(Ppi, mu, tau, pi)[0]


def _gap_and_log_T(Ppi, mu, tau: float, pi):
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


# --------------------------------------------------------------------------------------------
# Newton in logit space (one game).
# --------------------------------------------------------------------------------------------
def _scaled_residual(P, log_mu, tau, z):
    """``G(z) = tau (z - log mu) - A pi`` (shifted to max 0: only G up to a constant matters)."""
    pi = np.exp(z)
    A_pi = P @ pi - 0.5 * pi.sum()
    G = tau * (z - log_mu) - A_pi
    return G - G.max(), pi, A_pi


def _dense_step(P, tau, pi, A_pi, G):
    """Solve ``(tau I - A D) dz = -G`` by LU; ``A D = A diag(pi) - (A pi) pi^T`` in O(n^2)."""
    J = (0.5 * pi + A_pi[:, None] * pi[None, :]) - P * pi[None, :]
    J[np.diag_indices_from(J)] += tau
    return np.linalg.solve(J, -G)


def _krylov_step(P, tau, pi, A_pi, G, rtol, max_matvecs):
    """GMRES on ``(tau I - A D) dz = -G`` with O(n^2) products; returns (dz, matvecs, solved)."""
    n = pi.shape[0]
    count = [0]

    def matvec(v):
        count[0] += 1
        w = pi * v.ravel()
        return tau * v.ravel() - (P @ w - 0.5 * w.sum()) + A_pi * w.sum()

    restart = min(n, 60)
    J = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    dz, info = gmres(J, -G, rtol=rtol, atol=0.0, restart=restart,
                     maxiter=max(1, max_matvecs // restart))
    return dz, count[0], info == 0


def _newton(P, log_mu, tau, z, max_iter, tol=NEWTON_TOL, linear="auto"):
    """Damped Newton on G(z) = tau (z - log mu) - A softmax(z); z kept normalised (z = log pi).

    Stops when the spread of G is <= tol * tau, or when a step cannot decrease it (round-off
    floor, or stalled: the caller judges the result by its duality gap). Returns
    ``(z, spread, iterations, matvecs, reached_tol, used_krylov)``.
    """
    n = z.shape[0]
    dense = linear == "dense" or (linear == "auto" and n <= DENSE_MAX_N)
    used_krylov = False
    G, pi, A_pi = _scaled_residual(P, log_mu, tau, z)
    r = G.max() - G.min()
    # Below ~ 8 eps |A pi| the spread of G is round-off: stop there instead of stalling.
    tol = max(tol * tau, 8 * np.finfo(float).eps * np.abs(A_pi).max()) / tau
    matvecs = 0
    it = 0
    for it in range(1, max_iter + 1):
        if r <= tol * tau:
            return z, r, it - 1, matvecs, True, used_krylov
        try:
            if dense:
                dz = _dense_step(P, tau, pi, A_pi, G)
            else:
                used_krylov = True
                # Floor 1e-6: as many Newton steps, ~30% fewer products (measured at n = 3000).
                rtol = max(min(1e-2, r / tau), 1e-6)
                budget = 1000 if n > DENSE_FALLBACK_MAX_N else max(60, n // 6)
                dz, mv, solved = _krylov_step(P, tau, pi, A_pi, G, rtol, budget)
                matvecs += mv
                if not solved and n <= DENSE_FALLBACK_MAX_N and linear == "auto":
                    dense = True  # GMRES stalls on this game: LU from now on (cost ~ n/3 matvecs)
                    dz = _dense_step(P, tau, pi, A_pi, G)
        except np.linalg.LinAlgError:
            return z, r, it, matvecs, False, used_krylov
        if not np.all(np.isfinite(dz)):
            return z, r, it, matvecs, False, used_krylov
        step = 1.0
        while True:
            z_new = log_softmax(z + step * dz)
            G_new, pi_new, A_pi_new = _scaled_residual(P, log_mu, tau, z_new)
            r_new = G_new.max() - G_new.min()
            if r_new < r or step < 1e-10:
                break
            step *= 0.5
        if not r_new < r:  # no decrease at all: round-off floor reached (or stalled)
            return z, r, it, matvecs, r <= tol * tau, used_krylov
        floor = r_new > 0.5 * r and r_new <= 1e-10 * tau  # Newton would square a real residual
        z, G, pi, A_pi, r = z_new, G_new, pi_new, A_pi_new, r_new
        if floor:  # so a step that does not halve a tiny one has met the round-off floor
            return z, r, it, matvecs, True, used_krylov
    return z, r, it, matvecs, r <= tol * tau, used_krylov


def _validate_solver_options(gap_tol, max_iter, tau_path_ratio, tau_start):
    """One-line ValueErrors for the solver's numerical options (these bound its running time)."""
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    for name, value in (("gap_tol", gap_tol), ("tau_path_ratio", tau_path_ratio),
                        ("tau_start", tau_start)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, got {value!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if gap_tol < 0:
        raise ValueError(f"gap_tol must be >= 0, got {gap_tol!r}")
    if not 0.0 < float(tau_path_ratio) < 1.0:
        raise ValueError(f"tau_path_ratio must lie in (0, 1) (a decreasing tau path), got "
                         f"{tau_path_ratio!r}")
    if not float(tau_start) > 0.0:
        raise ValueError(f"tau_start must be > 0, got {tau_start!r}")


def _path_stages(tau, tau_start, ratio) -> int:
    """Number of continuation stages from ``max(tau_start, tau)`` down to ``tau`` (at least 1)."""
    if tau >= tau_start:
        return 1
    return 1 + math.ceil(math.log(tau / tau_start) / math.log(ratio) - 1e-12)


def _certify(P, mu, tau, z, gap_tol):
    pi = np.exp(z)
    gap = float(duality_gap_unchecked(P, mu, tau, pi))
    return pi, gap, gap <= gap_tol


def _log_from_zero_sum(P, log_mu, tau, pi0):
    """Logits of the tau-equilibrium's first guess from a tau = 0 solution ``pi0``: log pi0 on its
    support, ``log mu + (A pi0 - max A pi0) / tau`` off it (where pi* is exp(-margin/tau) small).
    """
    A_pi = P @ pi0 - 0.5
    with np.errstate(divide="ignore", over="ignore"):
        off = log_mu + (A_pi - A_pi.max()) / tau
        on = np.log(pi0)
    support = pi0 > 0
    c = np.max(on[support] - log_mu[support])
    z = np.where(support, on, off + c)
    return log_softmax(z)


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
    linear: str = "auto",
    fixed_point: bool = True,
    chunk: int | None = None,
):
    """The Nash equilibrium ``pi* ∝ mu exp(P @ pi* / tau)`` with its certificate.

    Args:
      P: (n, n) preference matrix, or a stack (B, n, n) of games (a broadcast view of one matrix,
        stride 0 on the game axis, is read as that one matrix: no (B, n, n) copy is made).
      mu: (n,) reference (default uniform), or (B, n), one per game: with an (n, n) ``P`` this is
        a batch of B games sharing ``P`` (the per-prompt games of a task). tau: >= 0, a scalar
        or (B,) (a (B,) tau with one (n, n) ``P`` is a batch too).
      gap_tol: target duality gap; ``converged`` reports whether it was met (a warning names the
        achieved gap and the remedy otherwise). max_iter: Newton steps per tau stage.
      tau_path_ratio in (0, 1), tau_start > 0: the continuation path ``tau_start * ratio^k`` down
        to ``tau``, used when direct Newton stalls (at most ``MAX_PATH_STAGES`` stages).
      init: optional warm start (a policy with full support; one game only).
      linear: ``"auto"`` (dense LU for small n, GMRES above), ``"dense"`` or ``"krylov"``.
      fixed_point: start with the contraction-aware fixed-point stage
        (:mod:`tabular.fixed_point`), handing over to Newton where it contracts slowly; False:
        Newton from the start.
      chunk: games solved together in a batch (default: as many as fit in ``BATCH_MEMORY``
        bytes of working memory, and for a stack as many whose P fits in ``STACK_CACHE``
        bytes). The batch's working memory is bounded by the chunk; the inputs and the (B, n)
        outputs come on top, and outputs above ``MEMORY_LIMIT`` are refused with a one-line
        ValueError.

    Returns: :class:`Equilibrium` for one game; :class:`EquilibriumBatch` (per-game fields) for a
    batch. For ``tau == 0`` see :func:`solve_zero_sum`. Every result carries its duality gap.
    """
    _validate_solver_options(gap_tol, max_iter, tau_path_ratio, tau_start)
    if linear not in ("auto", "dense", "krylov"):
        raise ValueError(f"linear must be 'auto', 'dense' or 'krylov', got {linear!r}")
    if not isinstance(fixed_point, (bool, np.bool_)):
        raise ValueError(f"fixed_point must be True or False, got {fixed_point!r}")
    P = _real_array(P, "P")
    mu = None if mu is None else _real_array(mu, "mu")
    games = None  # number of games when P is one matrix shared by a batch
    if P.ndim == 3 and P.shape[0] > 0 and P.strides[0] == 0:
        games, P = P.shape[0], P[0]  # np.broadcast_to(P, (B, n, n)): one shared matrix
    if games or P.ndim == 3 or (mu is not None and mu.ndim == 2) or np.ndim(tau) == 1:
        if init is not None:
            raise ValueError("init is for one game; a batch starts from mu")
        return _solve_batch(P, mu, tau, games, gap_tol=gap_tol, max_iter=max_iter,
                            tau_path_ratio=tau_path_ratio, tau_start=tau_start, linear=linear,
                            fixed_point=bool(fixed_point), chunk=chunk)
    if P.ndim != 2:
        raise ValueError(f"solve_equilibrium takes one game (n, n) or a stack (B, n, n), got "
                         f"shape {P.shape}")
    P, mu = validate_game(P, mu)
    if mu.ndim != 1:
        raise ValueError(f"mu must be (n,) or (B, n), got shape {mu.shape}")
    tau = validate_tau(tau, allow_zero=True)
    if tau == 0:
        return solve_zero_sum(P, mu)
    _check_path_length(tau, tau_start, tau_path_ratio)
    if init is not None:
        init = _validate_policy(init, P.shape[0], "init")
        if init.min() <= 0:
            raise ValueError("init must have full support (all entries > 0)")
        init = log_softmax(np.log(init))
    return _solve_one(P, mu, tau, gap_tol, max_iter, float(tau_path_ratio), float(tau_start),
                      init, linear, bool(fixed_point))


def _real_array(x, name: str) -> np.ndarray:
    """``x`` as an array (no copy of a float64 array); complex input refused in one line instead
    of numpy's ComplexWarning and a silently dropped imaginary part."""
    x = np.asarray(x)
    if np.iscomplexobj(x):
        raise ValueError(f"{name} must be real; got complex entries ({x.dtype})")
    return x


def _check_path_length(tau, tau_start, tau_path_ratio):
    stages = _path_stages(max(tau, TAU_FROM_ZERO), float(tau_start), float(tau_path_ratio))
    if stages > MAX_PATH_STAGES:
        target = max(tau, TAU_FROM_ZERO)
        raise ValueError(f"tau_path_ratio={tau_path_ratio!r} needs {stages} continuation stages "
                         f"from tau_start={tau_start!r} to tau={target:g} (at most "
                         f"{MAX_PATH_STAGES}): use a smaller ratio")


def _dense(linear: str, n: int) -> bool:
    """Whether Newton's linear solves are dense LU (cheap enough at small n that the fixed-point
    stage does not try Anderson on a game whose plain iteration made no progress)."""
    return linear == "dense" or (linear == "auto" and n <= DENSE_MAX_N)


def _solve_one(P, mu, tau, gap_tol, max_iter, ratio, tau_start, z_start, linear, fixed_point):
    """Fixed-point stage (if ``fixed_point``), then direct Newton from where it stopped; if that
    misses gap_tol: for tau < 1e-2 Newton from the tau = 0 solution (pi*_tau = pi0 + O(tau));
    then the continuation path. The smallest gap wins. ``z_start``: normalised logits or None."""
    log_mu = np.log(mu)
    candidates = []  # (gap, z, method, iterations)
    total = fp_iters = 0
    fp_residual = None  # the fixed-point stage's answer comes with its residual

    def best_gap():
        return min((c[0] for c in candidates), default=np.inf)

    if tau >= TAU_FROM_ZERO:
        z0 = log_mu.copy() if z_start is None else z_start
        if fixed_point:
            run = anderson_fixed_point(P, log_mu[None], np.array([tau]), z0[None],
                                       rescue=not _dense(linear, P.shape[0]))
            fp_iters = total = int(run.iterations[0])
            if run.converged[0]:
                gap, log_T = _gap_and_log_T(run.P_pi[0], mu, tau, np.exp(run.z[0]))
                fp_residual = float(np.abs(run.z[0] - log_T).max())
                candidates.append((float(gap), run.z[0], "fixed-point", total))
            elif run.residual[0] <= FP_WARM_GAIN * run.start_residual[0]:
                z0 = run.z[0]  # the stage gained: Newton starts from its best iterate
        if best_gap() > gap_tol:
            # Below tau = 1e-2 a start from tau = 0 follows, so a stalling direct attempt is cut
            # short.
            direct_iter = max_iter if tau >= 1e-2 else min(max_iter, 30)
            z, _, iters, _, _, krylov = _newton(P, log_mu, tau, z0, direct_iter, linear=linear)
            total += iters
            _, gap, _ = _certify(P, mu, tau, z, gap_tol)
            candidates.append((gap, z, "newton-krylov" if krylov else "newton", total))
    if best_gap() > gap_tol and tau < 1e-2:
        # Small tau: pi*_tau = pi0 + O(tau) around the tau = 0 equilibrium pi0; Newton from there.
        pi0 = solve_zero_sum(P, mu).pi
        z = _log_from_zero_sum(P, log_mu, tau, pi0)
        z, _, iters, _, _, _ = _newton(P, log_mu, tau, z, max_iter, linear=linear)
        total += iters
        _, gap, _ = _certify(P, mu, tau, z, gap_tol)
        candidates.append((gap, z, "newton-from-tau0", total))
    if best_gap() > gap_tol and tau >= TAU_FROM_ZERO:
        # Continuation: tau_k = tau_start * ratio^k down to tau (a bounded number of stages).
        t = max(tau_start, tau)
        z = log_mu.copy()
        for _ in range(_path_stages(tau, tau_start, ratio)):
            z, _, iters, _, _, _ = _newton(P, log_mu, t, z, max_iter, linear=linear)
            total += iters
            t = max(t * ratio, tau)
        _, gap, _ = _certify(P, mu, tau, z, gap_tol)
        candidates.append((gap, z, "newton-continuation", total))
    gap, z, method, _ = min(candidates, key=lambda c: (not np.isfinite(c[0]), c[0]))
    pi = np.exp(z)
    if method == "fixed-point":
        residual = fp_residual
    else:
        residual = float(fixed_point_residual(P, mu, tau, pi, log_pi=z))
    converged = bool(gap <= gap_tol)
    message = "gap within tolerance" if converged else (
        f"duality gap {gap:.3g} > {gap_tol:g}; increase max_iter or lower tau_path_ratio")
    if not converged:
        warnings.warn(f"solve_equilibrium: {message}", RuntimeWarning, stacklevel=3)
    return Equilibrium(pi, z, tau, gap, residual, total, converged, method, message, fp_iters)


# --------------------------------------------------------------------------------------------
# Batches of games: the fixed-point stage on the whole chunk, one vectorised dense Newton
# iteration (n <= DENSE_MAX_N) or the single-game Newton-Krylov (above) for the games it hands
# over, the full single-game solver for what is left.
# --------------------------------------------------------------------------------------------
BATCH_MEMORY = 2**28  # bytes of working memory a batch chunk may use (256 MiB), inputs aside
# Bytes of a stack's P solved together: measured at n = 585 (256 games, tau = 0.1), chunks of 47
# games (128 MB of P streamed from memory every iteration) took 1.3x a one-by-one loop, whose
# 2.7 MB game stays in cache; chunks within the cache are no slower than the loop.
STACK_CACHE = 2**22


def _game_bytes(n: int, stack: bool) -> int:
    """Working memory of one game in a chunk: the fixed-point stage's Anderson history and
    vectors (~(2 FP_DEPTH + 12) n floats); for n <= DENSE_MAX_N the batched Newton's Jacobian, its
    LU copy and a temporary (3 n^2 floats); for a stack also the float64 chunk of P and the
    validation's P + P^T (2 n^2)."""
    floats = (2 * FP_DEPTH + 12) * n
    if n <= DENSE_MAX_N:
        floats += 3 * n * n
    if stack:
        floats += 2 * n * n
    return 8 * floats


def _newton_batch(P, log_mu, tau, z, max_iter, tol=NEWTON_TOL):
    """Damped Newton on a batch: P (B, n, n) or one shared (n, n); log_mu, z (B, n), tau (B,).
    Each game stops at its own tolerance or stall; returns ``(z, iterations (B,), reached (B,))``."""
    B, n = z.shape
    tau_col = tau[:, None]
    shared = P.ndim == 2

    def residual(P, log_mu, tau_col, z):
        pi = np.exp(z)
        A_pi = P_times_batch(P, pi) - 0.5 * pi.sum(-1, keepdims=True)
        G = tau_col * (z - log_mu) - A_pi
        G = G - G.max(-1, keepdims=True)
        return G, pi, A_pi, G.max(-1) - G.min(-1)

    G, pi, A_pi, r = residual(P, log_mu, tau_col, z)
    iters = np.zeros(B, dtype=np.int64)
    reached = r <= tol * tau
    active = ~reached
    eye = np.eye(n)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        Pi, pii, Ai, ti = (P if shared else P[idx]), pi[idx], A_pi[idx], tau[idx]
        J = (0.5 * pii[:, None, :] + Ai[:, :, None] * pii[:, None, :]) - Pi * pii[:, None, :]
        J += ti[:, None, None] * eye
        try:
            dz = np.linalg.solve(J, -G[idx][..., None])[..., 0]
        except np.linalg.LinAlgError:
            active[idx] = False  # leave these to the single-game solver
            break
        finite = np.all(np.isfinite(dz), -1)
        dz[~finite] = 0.0
        step = np.ones(idx.size)
        accepted = np.zeros(idx.size, bool)
        z_new, G_new, pi_new, A_new, r_new = z[idx], G[idx], pi[idx], A_pi[idx], r[idx]
        for _ in range(34):  # halve down to 2^-33 ~ 1e-10, as the single-game search
            todo = ~accepted
            zt = log_softmax(z[idx][todo] + step[todo, None] * dz[todo], axis=-1)
            Gt, pit, At, rt = residual(Pi if shared else Pi[todo], log_mu[idx][todo],
                                       ti[todo, None], zt)
            better = rt < r[idx][todo]
            sel = np.flatnonzero(todo)[better]
            z_new[sel], G_new[sel], pi_new[sel], A_new[sel], r_new[sel] = (
                zt[better], Gt[better], pit[better], At[better], rt[better])
            accepted[sel] = True
            step[todo] *= 0.5
            if accepted.all():
                break
        iters[idx] += 1
        z[idx], G[idx], pi[idx], A_pi[idx], r[idx] = z_new, G_new, pi_new, A_new, r_new
        now = r[idx] <= tol * tau[idx]
        reached[idx] = now
        active[idx] = accepted & ~now & finite
    return z, iters, reached


def _batch_shape(P, mu, tau, games):
    """B and n of a batch, with one-line errors for inconsistent shapes."""
    n = P.shape[-1]
    if games is not None:
        B = games
    elif P.ndim == 3:
        B = P.shape[0]
    elif mu is not None and mu.ndim == 2:
        B = mu.shape[0]
    else:
        B = int(np.shape(tau)[0])
    if P.ndim not in (2, 3) or P.shape[-2] != n:
        raise ValueError(f"P must be a square matrix (n, n) or a stack (B, n, n), got shape "
                         f"{P.shape}")
    if mu is not None and mu.shape not in ((n,), (B, n)):
        raise ValueError(f"mu must have shape ({n},) or ({B}, {n}) for {B} games, got {mu.shape}")
    if np.ndim(tau) != 0 and np.shape(tau) != (B,):
        raise ValueError(f"tau must be a scalar or have one entry per game ({B},), got shape "
                         f"{np.shape(tau)}")
    return B, n


def _validate_batch(P, mu, B, n, size):
    """Validate a batch chunk by chunk (bounded memory); a bad game is named by its index."""
    def named(check, start, stop, *arrays):
        try:
            check(*(a[start:stop] for a in arrays))
        except ValueError:
            for b in range(start, stop):  # find the first bad game of the chunk
                try:
                    check(*(a[b:b + 1] for a in arrays))
                except ValueError as e:
                    raise ValueError(f"game {b} of {B}: {e}") from None
            raise

    if P.ndim == 2:
        validate_preference(P)
    if mu is not None and mu.ndim == 1:
        validate_reference(mu, n)
    for start in range(0, B, size):
        stop = min(B, start + size)
        if P.ndim == 3:
            named(validate_preference, start, stop, P)
        if mu is not None and mu.ndim == 2:
            named(lambda m: validate_reference(m, n), start, stop, mu)


def _solve_batch(P, mu, tau, games, *, gap_tol, max_iter, tau_path_ratio, tau_start, linear,
                 fixed_point, chunk):
    B, n = _batch_shape(P, mu, tau, games)
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer))
                              or chunk < 1):
        raise ValueError(f"chunk must be an integer >= 1 (games per chunk), got {chunk!r}")
    if chunk is not None:
        size = int(chunk)
    else:
        size = max(1, BATCH_MEMORY // _game_bytes(n, P.ndim == 3))
        if P.ndim == 3:  # a stack's games in lockstep stream the chunk's P from memory each
            size = min(size, max(1, STACK_CACHE // (8 * n * n)))  # iteration: keep it cached
    # The outputs (pi and log_pi, B x n each, and the per-game fields) are not chunked.
    check_allocation(8.0 * B * (2 * n + 8), f"solve_equilibrium on {B} games of {n} actions "
                     f"(the (B, n) results)")
    _validate_batch(P, mu, B, n, size)
    tau_list = np.broadcast_to(np.asarray(tau, dtype=object), (B,))
    tau_arr = np.array([validate_tau(t, allow_zero=True) for t in tau_list], dtype=np.float64)
    for t in np.unique(tau_arr[tau_arr > 0]):
        _check_path_length(t, tau_start, tau_path_ratio)
    mu = uniform(n) if mu is None else mu
    out = EquilibriumBatch(np.empty((B, n)), np.empty((B, n)), tau_arr, np.empty(B), np.empty(B),
                           np.zeros(B, np.int64), np.zeros(B, bool), [""] * B, "",
                           np.zeros(B, np.int64))
    for start in range(0, B, size):
        sl = slice(start, min(B, start + size))
        Pc = P if P.ndim == 2 else np.asarray(P[sl], dtype=np.float64)
        mu_c = np.array(np.broadcast_to(mu, (B, n))[sl], dtype=np.float64)
        _solve_chunk(Pc, mu_c, tau_arr[sl], out, sl, gap_tol=gap_tol, max_iter=max_iter,
                     tau_path_ratio=tau_path_ratio, tau_start=tau_start, linear=linear,
                     fixed_point=fixed_point)
    converged = out.gap <= gap_tol
    out.converged[:] = converged
    counts = {m: out.method.count(m) for m in sorted(set(out.method))}
    message = (f"{int(converged.sum())}/{B} games within gap_tol {gap_tol:g}; methods: "
               + ", ".join(f"{m} {c}" for m, c in counts.items()))
    if not converged.all():
        warnings.warn(f"solve_equilibrium: worst duality gap {out.gap.max():.3g} > {gap_tol:g} in "
                      f"{int((~converged).sum())} of {B} games", RuntimeWarning, stacklevel=3)
    return dataclasses.replace(out, method=tuple(out.method), message=message)


def _solve_chunk(P, mu, tau, out, sl, *, gap_tol, max_iter, tau_path_ratio, tau_start, linear,
                 fixed_point):
    """Solve games ``sl`` of the batch into ``out``: P (n, n) shared or (b, n, n), mu (b, n)."""
    b, n = mu.shape
    shared = P.ndim == 2
    log_mu = np.log(mu)
    z = log_mu.copy()
    iters = np.zeros(b, np.int64)
    fp_iters = np.zeros(b, np.int64)
    methods = [""] * b
    fast = np.flatnonzero(tau >= TAU_FROM_ZERO)
    newton = fast
    if fixed_point and fast.size:
        whole = shared or fast.size == b  # a stack is indexed (copied) only for a subset
        run = anderson_fixed_point(P if whole else P[fast], log_mu[fast], tau[fast],
                                   z[fast].copy(), rescue=not _dense(linear, n))
        gained = run.converged | (run.residual <= FP_WARM_GAIN * run.start_residual)
        z[fast[gained]] = run.z[gained]
        fp_iters[fast] = iters[fast] = run.iterations
        for i in fast[run.converged]:
            methods[i] = "fixed-point"
        newton = fast[~run.converged]
    dense = _dense(linear, n)
    if newton.size and dense:
        z[newton], steps, _ = _newton_batch(P if shared else P[newton], log_mu[newton],
                                            tau[newton], z[newton].copy(), max_iter)
        iters[newton] += steps
        for i in newton:
            methods[i] = "newton-batch"
    pi = np.exp(z)
    safe_tau = np.where(tau > 0, tau, 1.0)
    gap, residual = np.full(b, np.inf), np.full(b, np.inf)
    if fixed_point and fast.size and run.converged.any():
        # The stage's answers come with P @ pi: certificates without another product.
        idx = fast[run.converged]
        for t in np.unique(tau[idx]):
            sel = tau[idx] == t
            g, log_T = _gap_and_log_T(run.P_pi[run.converged][sel], mu[idx[sel]], float(t),
                                      pi[idx[sel]])
            gap[idx[sel]] = g
            residual[idx[sel]] = np.abs(z[idx[sel]] - log_T).max(-1)
    if dense and newton.size:  # the batched Newton's games (the others go to the loop below)
        Pn = P if shared else P[newton]
        gap[newton] = _batch_gap(Pn, mu[newton], safe_tau[newton], pi[newton])
        residual[newton] = _batch_residual(Pn, mu[newton], safe_tau[newton], pi[newton],
                                           z[newton])
    ok = (gap <= gap_tol) & (tau >= TAU_FROM_ZERO)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # one summary warning for the batch
        for i in np.flatnonzero(~ok):  # tau = 0, tiny tau, Newton's games above DENSE_MAX_N,
            # or games the batched stages left: the full single-game solver
            Pi = P if shared else P[i]
            if tau[i] == 0:
                eq = solve_zero_sum(Pi, mu[i])
            else:
                warm = z[i] if tau[i] >= TAU_FROM_ZERO else None
                eq = _solve_one(Pi, mu[i], tau[i], gap_tol, max_iter, float(tau_path_ratio),
                                float(tau_start), warm, linear, False)
            pi[i], z[i], gap[i], residual[i] = eq.pi, eq.log_pi, eq.gap, eq.residual
            iters[i] += eq.iterations
            methods[i] = eq.method
    out.pi[sl], out.log_pi[sl], out.gap[sl], out.residual[sl] = pi, z, gap, residual
    out.iterations[sl], out.fixed_point_iterations[sl] = iters, fp_iters
    out.method[sl] = methods


def _batch_gap(P, mu, tau, pi):
    """duality_gap_unchecked with a per-game tau (B,); P shared (n, n) or (B, n, n)."""
    out = np.empty(pi.shape[0])
    for t in np.unique(tau):
        sel = tau == t
        out[sel] = duality_gap_unchecked(P if P.ndim == 2 else P[sel], mu[sel], float(t), pi[sel])
    return out


def _batch_residual(P, mu, tau, pi, z):
    out = np.empty(pi.shape[0])
    for t in np.unique(tau):
        sel = tau == t
        out[sel] = fixed_point_residual(P if P.ndim == 2 else P[sel], mu[sel], float(t), pi[sel],
                                        log_pi=z[sel])
    return out


# --------------------------------------------------------------------------------------------
# tau = 0: support identification along tau -> 0, exact solve on the support, LP fallback.
# --------------------------------------------------------------------------------------------
SUPPORT_TOL = 1e-13  # exploitability accepted from the support solve (LP conditions, round-off)


def _solve_on_support(A, support, max_moves=10):
    """Solve ``A_SS pi_S = 0, sum pi_S = 1`` and correct the support until ``pi >= 0`` and
    ``max (A pi) <= SUPPORT_TOL`` (the LP optimality conditions). Returns (pi, moves) or None."""
    n = A.shape[0]
    support = support.copy()
    for move in range(1, max_moves + 1):
        idx = np.flatnonzero(support)
        m = idx.size
        if m == 0:
            return None
        M = np.zeros((m + 1, m + 1))
        M[:m, :m] = A[np.ix_(idx, idx)]
        M[:m, m] = -1.0  # the value v (0 for a symmetric game; solved for, as a check)
        M[m, :m] = 1.0
        rhs = np.zeros(m + 1)
        rhs[m] = 1.0
        try:
            sol = np.linalg.solve(M, rhs)
            sol += np.linalg.solve(M, rhs - M @ sol)  # one step of iterative refinement
        except np.linalg.LinAlgError:
            # Singular: the Nash set on this support is not a point; minimum-norm solution.
            sol = np.linalg.lstsq(M, rhs, rcond=None)[0]
        if not np.all(np.isfinite(sol)):
            return None
        p = sol[:m]
        if p.min() < -SUPPORT_TOL:
            support[idx[p < -SUPPORT_TOL]] = False
            continue
        pi = np.zeros(n)
        pi[idx] = np.clip(p, 0.0, None)
        pi /= pi.sum()
        A_pi = A @ pi
        outside = ~support & (A_pi > SUPPORT_TOL)
        if outside.any():
            support |= outside
            continue
        if A_pi.max() <= SUPPORT_TOL:
            return pi, move
        return None
    return None


def _interior_point(A, max_iter=100):
    """Mehrotra predictor-corrector on the self-dual LP of the symmetric game, yielding iterates.

    Unknowns ``pi >= 0``, the value ``v`` and slacks ``s = v 1 - A pi >= 0``, with ``sum pi = 1``
    and complementarity ``pi * s -> 0``. Eliminating ``ds`` leaves one (n+1) x (n+1) system per
    step, ``[[diag(s / pi) - A, 1], [1^T, 0]] [dpi; dv] = rhs``, nonsingular because its
    symmetric part ``diag(s / pi)`` is positive definite (A is skew); LU, O(n^3). Yields
    ``(pi, s, mu)`` after every step, ``mu = pi . s / n`` the complementarity gap.
    """
    n = A.shape[0]
    pi = np.full(n, 1.0 / n)
    v = float((A @ pi).max()) + 1.0
    s = v - A @ pi
    B = np.zeros((n + 1, n + 1))
    B[:n, n] = 1.0
    B[n, :n] = 1.0
    diag = np.arange(n)

    def max_step(x, dx):
        neg = dx < 0
        return min(1.0, float((-x[neg] / dx[neg]).min())) if neg.any() else 1.0

    for _ in range(max_iter):
        F1 = s - v + A @ pi  # primal-dual feasibility residual
        F2 = pi.sum() - 1.0
        mu = float(pi @ s) / n
        B[:n, :n] = -A
        B[diag, diag] += s / pi
        try:
            lu = lu_factor(B, check_finite=False)
        except (ValueError, np.linalg.LinAlgError):
            return

        def direction(F3):
            d = lu_solve(lu, np.concatenate([F1 - F3 / pi, [-F2]]), check_finite=False)
            return d[:n], d[n], d[n] - F1 - A @ d[:n]

        dpi, dv, ds = direction(pi * s)  # affine (predictor) direction
        step = min(max_step(pi, dpi), max_step(s, ds))
        sigma = (float((pi + step * dpi) @ (s + step * ds)) / n / mu) ** 3
        dpi, dv, ds = direction(pi * s + dpi * ds - sigma * mu)  # corrector
        step = 0.99 * min(max_step(pi, dpi), max_step(s, ds))
        pi, v, s = pi + step * dpi, v + step * dv, s + step * ds
        if not (np.all(np.isfinite(pi)) and np.all(pi > 0) and np.all(s > 0)):
            return
        yield pi, s, float(pi @ s) / n


def solve_zero_sum(P, mu=None) -> Equilibrium:
    """tau == 0: a Nash equilibrium of the symmetric zero-sum game with payoff ``A = P - 1/2``.

    ``pi`` is an equilibrium iff it is on the simplex and ``max_y (A pi)(y) <= 0`` (value 0; for a
    symmetric game the LP's primal and dual solutions coincide, so these are its optimality
    conditions). Method: an interior-point path (:func:`_interior_point`, the log-barrier
    analogue of the tau -> 0 path of regularised equilibria) proposes the support ``{pi > s}``
    once the complementarity gap is below 1e-4 (1e-8 for supports of more than n/4 actions);
    the indifference equations ``A_SS pi_S = 0, sum pi_S = 1`` are solved exactly on it (with
    support corrections), and the point is returned only if the conditions hold to
    ``SUPPORT_TOL`` (method ``"support"``). Otherwise the general LP (HiGHS dual simplex),
    polished by the same exact solve on its support (``"lp+support"``) or returned as it is
    (``"lp"``). ``mu`` is accepted for symmetry with :func:`solve_equilibrium` and does not enter
    the tau = 0 game.

    Which point when the Nash set is not a single point: ``"support"`` / ``"lp+support"`` return
    the solution of the indifference equations on the identified support (the minimum-norm one
    if they are singular there); ``"lp"`` the vertex HiGHS ends on. None of them is in general
    the limit of ``pi*_tau``. ``gap`` is twice the exploitability; ``residual`` is nan (no
    fixed-point map at tau = 0).
    """
    P, mu = validate_game(P, mu)
    A = P - 0.5
    steps = 0
    tried = set()
    for pi, s, gap in _interior_point(A):
        steps += 1
        support = pi > s
        key = support.tobytes()
        # An attempt costs ~(|S| / n)^3 of a step: small supports are tried early, large ones
        # once the path has nearly settled (measured: random games settle near gap 1e-10); a
        # support is never tried twice.
        small = support.sum() <= support.size // 4
        if gap > (1e-4 if small else 1e-8) or key in tried:
            continue
        tried.add(key)
        found = _solve_on_support(A, support, max_moves=3)
        if found is not None:
            return _zero_sum_result(P, found[0], steps, "support",
                                    f"support from {steps} interior-point steps")
        if gap < 1e-14:
            break
    eq = _solve_zero_sum_lp(P)
    found = _solve_on_support(A, eq.pi > 1e-9, max_moves=3)
    if found is not None and 2 * exploitability(P, found[0]) <= eq.gap:
        return _zero_sum_result(P, found[0], eq.iterations + found[1], "lp+support",
                                "HiGHS support, exact solve on it")
    return eq


def _zero_sum_result(P, pi, iterations, method, note):
    expl = float(exploitability(P, pi))
    with np.errstate(divide="ignore"):
        log_pi = np.log(pi)
    return Equilibrium(pi, log_pi, 0.0, 2 * expl, math.nan, iterations, expl <= 1e-9, method,
                       f"{note}; {int((pi > 0).sum())} actions, exploitability {expl:.3g}")


def _solve_zero_sum_lp(P) -> Equilibrium:
    """The zero-sum LP (HiGHS dual simplex): minimise ``v`` s.t. ``A pi <= v``, ``sum pi = 1``."""
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
    return Equilibrium(pi, log_pi, 0.0, 2 * expl, math.nan, int(res.nit), converged, "lp", res.message)


@dataclass(frozen=True)
class MixtureFixedPoint:
    """Result of :func:`mixture_fixed_point`: the solution of SPEC Eq. 13,
    ``pi ∝ mu exp(P @ mix_beta(pi) / tau)`` (the limit of IPO-MD(beta) and Nash-MD-PG(beta)).

    pi, log_pi: the point (n,). tau, beta: the equation's parameters. residual: its certificate,
    ``max |log pi - log(mu exp(P mix_beta(pi) / tau))|`` (normalised). mixture_gap: the duality
    gap of ``m = mix_beta(pi)`` in the game at temperature ``tau / (1 - beta)``, of which ``m`` is
    the equilibrium (Prop. 5.2; 0 at beta = 1, where ``m = mu``). converged: residual <= 1e-12.
    """

    pi: np.ndarray
    log_pi: np.ndarray
    tau: float
    beta: float
    residual: float
    mixture_gap: float
    converged: bool


def mixture_fixed_point(P, mu, tau: float, beta: float, **kwargs) -> MixtureFixedPoint:
    """Fixed point of IPO-MD(beta) / Nash-MD-PG(beta): ``pi ∝ mu exp(P @ mix_beta(pi) / tau)``.

    By Prop. 5.2 (SPEC §5.4), ``m = mix_beta(pi)`` is the equilibrium at temperature
    ``tau / (1 - beta)``, so ``pi ∝ mu exp(P @ m / tau)`` with ``m`` from :func:`solve_equilibrium`
    (``kwargs`` go to it). This function computes it that way; proofs_check verifies the identity
    independently. ``beta == 1``: ``m = mu`` (offline IPO point). beta must lie in [0, 1] (a
    one-line ValueError otherwise).
    """
    P, mu = validate_game(P, mu)
    tau = validate_tau(tau)
    beta = validate_beta(beta)
    if beta == 1.0:
        m = mu
        gap = 0.0
    else:
        eq = solve_equilibrium(P, mu, tau / (1.0 - beta), **kwargs)
        m, gap = eq.pi, eq.gap
    log_pi = log_softmax(np.log(mu) + P @ m / tau)
    pi = np.exp(log_pi)
    log_m = log_softmax((1 - beta) * log_pi + beta * np.log(mu))
    residual = float(np.abs(log_pi - log_softmax(np.log(mu) + P @ np.exp(log_m) / tau)).max())
    return MixtureFixedPoint(pi, log_pi, tau, beta, residual, float(gap), residual <= 1e-12)


@dataclass(frozen=True)
class RLHFOptimum:
    """Result of :func:`rlhf_optimum`: ``argmax_pi E_pi[s] - tau KL(pi || mu) = mu exp(s / tau)``
    normalised (closed form; the limit of ``rl``).

    pi, log_pi: the policy (n,). tau: the regularisation. gap: its duality gap in the preference
    game ``P`` (how far the reward optimum is from the Nash equilibrium; not a solver error).
    """

    pi: np.ndarray
    log_pi: np.ndarray
    tau: float
    gap: float


def rlhf_optimum(P, mu, tau: float, scores) -> RLHFOptimum:
    """The KL-regularised reward maximiser ``mu exp(s / tau)`` normalised, for Bradley-Terry
    ``scores`` (n,), with its duality gap in ``P``."""
    P, mu = validate_game(P, mu)
    tau = validate_tau(tau)
    log_pi = np.log(mu) + np.asarray(scores, np.float64) / tau
    log_pi = log_pi - np.logaddexp.reduce(log_pi)
    pi = np.exp(log_pi)
    return RLHFOptimum(pi, log_pi, tau, float(duality_gap(P, mu, tau, pi)))
