"""The single-game solver at tau > 0 (:func:`solve_one`), behind
:func:`~tabular.solvers.solve_equilibrium` and the batch's solver of last resort
(:mod:`tabular.solver_batch`); with the numerical options of a solve (:class:`SolverOptions`) and
the tuning constants shared with the batch.

Method: first the contraction-aware fixed-point stage of :mod:`tabular.fixed_point` (one product
with P per iteration, plain then Anderson-accelerated, the contraction rate estimated from the
residuals; ``method="fixed-point"`` when it reaches the round-off floor by itself, its certificates
then computed from the product it already made). A game it hands over goes to Newton, started from
the stage's best iterate where that cut the residual by ``FP_WARM_GAIN`` (else from mu, as without
the stage): Newton's method on ``G(z) = tau (z - log mu) - A softmax(z)`` in logit space ``z``
(``A = P - 1/2`` is skew), whose Jacobian ``tau I - A D`` (``D = diag(pi) - pi pi^T``) is never
singular because ``A D`` has spectrum on the imaginary axis in the ``D``-inner product. (G is tau
times the residual of the fixed point; the Newton steps are the same, but the scaled form keeps the
tau I term exact when ``A D / tau`` would swamp it in float64.) Linear solves: dense LU for n <=
``DENSE_MAX_N``; above, GMRES with O(n^2) matrix-vector products
``v -> tau v - A (pi * v) + (A pi)(pi . v)`` (Newton-Krylov, forcing term ``min(1e-2, |F|)``
floored at 1e-6: the inexact steps contract by 1e-6 or better, and F itself is always evaluated in
float64), falling back to LU when GMRES stalls and n <= ``DENSE_FALLBACK_MAX_N``. Backtracking on
``||G||`` globalises each solve. When Newton from the reference misses the gap target and
tau < 1e-2, Newton restarts from the tau = 0 solution (pi*_tau = pi0 + O(tau)); if that misses too,
the solve follows a geometrically decreasing tau path with warm starts (at most
``MAX_PATH_STAGES`` stages). Below ``TAU_FROM_ZERO`` only the start from tau = 0 is used (a path
from tau = 1 would be too long).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import LinearOperator, gmres
from scipy.special import log_softmax

from .certificates import duality_gap_unchecked, fixed_point_residual, gap_and_log_T
from .fixed_point import anderson_fixed_point
from .solver_results import Equilibrium
from .zero_sum import solve_zero_sum

__all__ = ["SolverOptions", "solve_one", "check_path_length", "uses_dense_lu", "DENSE_MAX_N",
           "DENSE_FALLBACK_MAX_N", "TAU_FROM_ZERO", "MAX_PATH_STAGES", "NEWTON_TOL", "FP_WARM_GAIN"]

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


@dataclass(frozen=True)
class SolverOptions:
    """The numerical options of :func:`~tabular.solvers.solve_equilibrium` (see its Args),
    validated and built once there and handed whole to the single-game solver :func:`solve_one`
    and to the batched :func:`~tabular.solver_batch.solve_batch`.

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
    """One game, tau > 0, validated: the single-game solver behind
    :func:`~tabular.solvers.solve_equilibrium`, also the batch's solver of last resort.

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
            z, _, iters, _, reached, krylov = _newton(P, log_mu, tau, z0, direct_iter, linear=linear)
            total += iters
            _, gap, _ = _certify(P, mu, tau, z, gap_tol)
            if not reached and iters == direct_iter < max_iter and gap <= gap_tol:
                # Cut short while still converging: the gap is met (it is quadratic in the
                # residual), the residual is not at round-off yet (measured: 4e-10 left after 30
                # steps at tau = 1.5e-3, n = 24, one step from 3e-16). Newton goes on.
                z, _, more, _, _, more_krylov = _newton(P, log_mu, tau, z, max_iter - iters, linear=linear)
                total += more
                krylov = krylov or more_krylov
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
