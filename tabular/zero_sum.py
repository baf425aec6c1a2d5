"""The unregularised game, tau == 0: a Nash equilibrium of the symmetric zero-sum game.

tau == 0 (:func:`solve_zero_sum`): the symmetric zero-sum game ``P - 1/2`` has value 0, so ``pi`` is
a Nash equilibrium iff ``pi`` is on the simplex and ``max_y (A pi)(y) <= 0`` (the LP optimality
conditions: primal and dual are the same vector). The support is identified by a dense
interior-point path (Mehrotra), the indifference equations ``A_SS pi_S = 0, sum pi_S = 1`` are
solved exactly on it (with a few support corrections), and the conditions above are verified;
the general LP (HiGHS dual simplex) is the fallback (:func:`solve_zero_sum_lp`, the LP alone).

Results are :class:`~tabular.solver_results.Equilibrium` objects, as from
:func:`~tabular.solvers.solve_equilibrium` (:mod:`tabular.equilibrium`), which calls
:func:`solve_zero_sum` at tau = 0.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import lu_factor, lu_solve
from scipy.optimize import linprog

from .certificates import exploitability
from .game import validate_game
from .solver_results import Equilibrium

__all__ = ["solve_zero_sum", "solve_zero_sum_lp", "SUPPORT_TOL"]

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
    eq = solve_zero_sum_lp(P)
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


def solve_zero_sum_lp(P) -> Equilibrium:
    """The zero-sum LP (HiGHS dual simplex): minimise ``v`` s.t. ``A pi <= v``, ``sum pi = 1``.

    :func:`solve_zero_sum`'s fallback, an :class:`~tabular.solver_results.Equilibrium` (method
    ``"lp"``) on the vertex HiGHS ends on; ``P`` validated by the caller."""
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
