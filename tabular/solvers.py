"""Exact equilibria of the KL-regularised preference game, with certificates.

The game (SPEC §2): ``V(pi, pi') = pi @ P @ pi' - tau KL(pi || mu) + tau KL(pi' || mu)``. Its unique
Nash equilibrium is the fixed point ``pi* = T(pi*)``, ``T(pi) = softmax(log mu + P @ pi / tau)``.

The rest of the solver lives in modules of its own, whose public names this module held before
and still re-exports: the certificates (:func:`duality_gap`, :func:`fixed_point_residual`, ...) in
:mod:`tabular.certificates`; tau == 0 (:func:`solve_zero_sum`) in :mod:`tabular.zero_sum`; the
closed-form limits (:func:`mixture_fixed_point` -> :class:`MixtureFixedPoint`,
:func:`rlhf_optimum` -> :class:`RLHFOptimum`) in :mod:`tabular.limits`; batches of games
(:class:`EquilibriumBatch` results) in :mod:`tabular.solver_batch`. The numerical options of a
solve travel as one :class:`SolverOptions`.

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
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse.linalg import LinearOperator, gmres
from scipy.special import log_softmax

from .certificates import SIMPLEX_TOL as SIMPLEX_TOL
from .certificates import (
    duality_gap,
    duality_gap_closed_form,
    duality_gap_unchecked,
    exploitability,
    fixed_point_map,
    fixed_point_residual,
    gap_and_log_T,
    real_array,
    validate_policy,
)
from .fixed_point import anderson_fixed_point
from .game import validate_game, validate_tau
from .limits import MixtureFixedPoint, RLHFOptimum, mixture_fixed_point, rlhf_optimum
from .zero_sum import SUPPORT_TOL as SUPPORT_TOL
from .zero_sum import solve_zero_sum, solve_zero_sum_lp

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
NEWTON_TOL = 1e-14  # on the spread of F = G / tau: well below what gap_tol needs (gap ~ tau F^2)
# Newton starts from the fixed-point stage's best iterate only where that stage cut the residual
# by this factor; else from mu, as without the stage (measured: from an iterate the stage barely
# moved, direct Newton at tau = 1e-3 missed where it succeeds from mu, and the tau = 0 start
# cost 8x more, majority-of-5, n = 200).
FP_WARM_GAIN = 1e-2
# Batches (:mod:`tabular.solver_batch`):
BATCH_MEMORY = 2**28  # bytes of working memory a batch chunk may use (256 MiB), inputs aside
# Bytes of a stack's P solved together: measured at n = 585 (256 games, tau = 0.1), chunks of 47
# games (128 MB of P streamed from memory every iteration) took 1.3x a one-by-one loop, whose
# 2.7 MB game stays in cache; chunks within the cache are no slower than the loop.
STACK_CACHE = 2**22

_solve_zero_sum_lp = solve_zero_sum_lp  # its name here before the split (test_solvers_scale.py)


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


@dataclass(frozen=True)
class SolverOptions:
    """The numerical options of :func:`solve_equilibrium` (see its Args), validated and built
    once there and handed whole to the single-game solver :func:`solve_one` and to the batched
    :func:`~tabular.solver_batch.solve_batch`.

    The values are kept as given (``fixed_point`` as a bool): ``float()`` is applied where they
    are used, so that error messages quote them as the caller wrote them.
    """

    gap_tol: float
    max_iter: int
    tau_path_ratio: float
    tau_start: float
    linear: str
    fixed_point: bool


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
    options = SolverOptions(gap_tol, max_iter, tau_path_ratio, tau_start, linear, bool(fixed_point))
    P = real_array(P, "P")
    mu = None if mu is None else real_array(mu, "mu")
    games = None  # number of games when P is one matrix shared by a batch
    if P.ndim == 3 and P.shape[0] > 0 and P.strides[0] == 0:
        games, P = P.shape[0], P[0]  # np.broadcast_to(P, (B, n, n)): one shared matrix
    if games or P.ndim == 3 or (mu is not None and mu.ndim == 2) or np.ndim(tau) == 1:
        if init is not None:
            raise ValueError("init is for one game; a batch starts from mu")
        from .solver_batch import solve_batch  # on use: tabular.solver_batch imports this module

        return solve_batch(P, mu, tau, games, options, chunk)
    if P.ndim != 2:
        raise ValueError(f"solve_equilibrium takes one game (n, n) or a stack (B, n, n), got "
                         f"shape {P.shape}")
    P, mu = validate_game(P, mu)
    if mu.ndim != 1:
        raise ValueError(f"mu must be (n,) or (B, n), got shape {mu.shape}")
    tau = validate_tau(tau, allow_zero=True)
    if tau == 0:
        return solve_zero_sum(P, mu)
    check_path_length(tau, tau_start, tau_path_ratio)
    if init is not None:
        init = validate_policy(init, P.shape[0], "init")
        if init.min() <= 0:
            raise ValueError("init must have full support (all entries > 0)")
        init = log_softmax(np.log(init))
    return solve_one(P, mu, tau, init, options)


def check_path_length(tau, tau_start, tau_path_ratio):
    """A one-line ValueError when the continuation path down to ``tau`` would need more than
    ``MAX_PATH_STAGES`` stages (checked before solving, per tau of a batch too)."""
    stages = _path_stages(max(tau, TAU_FROM_ZERO), float(tau_start), float(tau_path_ratio))
    if stages > MAX_PATH_STAGES:
        target = max(tau, TAU_FROM_ZERO)
        raise ValueError(f"tau_path_ratio={tau_path_ratio!r} needs {stages} continuation stages "
                         f"from tau_start={tau_start!r} to tau={target:g} (at most "
                         f"{MAX_PATH_STAGES}): use a smaller ratio")


def uses_dense_lu(linear: str, n: int) -> bool:
    """Whether Newton's linear solves are dense LU (cheap enough at small n that the fixed-point
    stage does not try Anderson on a game whose plain iteration made no progress)."""
    return linear == "dense" or (linear == "auto" and n <= DENSE_MAX_N)


def solve_one(P, mu, tau, z_start, options: SolverOptions) -> Equilibrium:
    """One game, tau > 0, validated: the single-game solver behind :func:`solve_equilibrium`,
    also the batch's solver of last resort.

    Fixed-point stage (if ``fixed_point``), then direct Newton from where it stopped; if that
    misses gap_tol: for tau < 1e-2 Newton from the tau = 0 solution (pi*_tau = pi0 + O(tau));
    then the continuation path. The smallest gap wins. ``z_start``: normalised logits or None."""
    gap_tol, max_iter, linear = options.gap_tol, options.max_iter, options.linear
    ratio, tau_start = float(options.tau_path_ratio), float(options.tau_start)
    log_mu = np.log(mu)
    candidates = []  # (gap, z, method, iterations)
    total = fp_iters = 0
    fp_residual = None  # the fixed-point stage's answer comes with its residual

    def best_gap():
        return min((c[0] for c in candidates), default=np.inf)

    if tau >= TAU_FROM_ZERO:
        z0 = log_mu.copy() if z_start is None else z_start
        if options.fixed_point:
            run = anderson_fixed_point(P, log_mu[None], np.array([tau]), z0[None],
                                       rescue=not uses_dense_lu(linear, P.shape[0]))
            fp_iters = total = int(run.iterations[0])
            if run.converged[0]:
                gap, log_T = gap_and_log_T(run.P_pi[0], mu, tau, np.exp(run.z[0]))
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
