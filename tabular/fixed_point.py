"""Contraction-aware fixed-point iteration of the regularised game, the first stage of the solver.

The equilibrium is the fixed point of ``T(pi) = softmax(log mu + P pi / tau)`` (SPEC §2, (NE)).
Where ``T`` contracts fast (large tau, most transitive games) one product ``P pi`` per iteration
beats Newton's tens of products per step; where it does not (small tau, cyclic games), Newton is
indispensable. :func:`anderson_fixed_point` iterates in logit space ``z = log pi`` and decides
per game, from the residuals it sees, whether to go on or to hand the game over to Newton:

1. ``g = log T(exp z)`` (one product with ``P``), residual ``f = g - z``; its spread
   ``max f - min f`` is the Newton residual ``G / tau`` of :mod:`tabular.newton` (same units, same
   round-off floor ``max(1e-14, 8 eps max|A pi| / tau)``).
2. Anderson mixing of depth ``FP_DEPTH`` (type II, least squares over the last differences of
   ``f`` and ``g``, solved by its regularised normal equations): ``z <- g - dG gamma``, normalised.
3. Contraction rate ``rho`` from the best residual ``FP_WINDOW`` iterations apart,
   ``rho = (r_k / r_{k - w})^(1 / w)``; the iterations still needed are
   ``log(tol / r_k) / log(rho)``. A game is handed over when more remain than Newton costs
   (``newton_cost`` fixed-point iterations, ``FP_NEWTON_COST`` by default), or when its rate is
   above ``FP_MAX_RATE``, judged from iteration ``FP_MIN_ITER`` on (Anderson's first iterations
   are a transient), and in any case after ``FP_MAX_ITER`` iterations. The rate is checked every
   ``FP_WINDOW`` iterations: plain iteration runs while every game contracts by
   ``FP_PLAIN_RATE`` or better (``FP_MAX_RATE`` where a product with P costs less than
   ``FP_PLAIN_WORK`` = B n^2: Anderson's bookkeeping would cost more), Anderson takes over
   (restarted from the best iterate) when one does not, and with ``rescue=False`` a game whose
   plain iteration made no progress at all goes to Newton at once (the solver's choice where
   Newton's LU is cheap, n <= 250).

Measured before choosing (one thread, families random, skew, majority-of-5, Bradley-Terry,
cyclic with a non-uniform mu, tau = 1, 0.1, 0.01, 1e-3, 400 iterations at most, n = 200 / 1000 /
3000): cells whose gap reached round-off within 400 iterations, out of 20 per n: plain iteration
10 / 11 / 11, damped by a = 1/2 11 / 11 / 12, Anderson(5) 12 / 12 / 14, Anderson(10) 12 / 15 /
14. Anderson(10) rescues the cells
where plain iteration oscillates or creeps (cyclic tau = 0.1: 34-35 iterations where plain
iteration diverges; majority-of-5 tau = 0.1, n = 1000: 24 against 370; Bradley-Terry tau = 0.1,
n = 3000: 15 against 50); where plain iteration contracts fast it needs as few iterations or
fewer (Bradley-Terry tau = 0.01, n = 1000: 5 against Anderson's 15) at a third of the
bookkeeping: hence plain first, Anderson when the rate says so. Damping costs 2-5x the
iterations where plain iteration contracts and rescues nothing Anderson does not. At tau <=
0.01 none of them reaches round-off on most random, skew, majority and cyclic games within
Newton's cost: Newton's cells (``benchmarks/tabular_scale.py --only grid`` measures the
hand-over cell by cell).

Games are a batch (B, n) throughout; ``P`` is one shared (n, n) matrix or a stack (B, n, n).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FixedPointRun", "anderson_fixed_point", "log_best_response", "log_normalise",
           "log_normalise_logaddexp", "logsumexp_last", "P_times_batch"]

FP_DEPTH = 10  # Anderson memory: fewer iterations than depth 5 on every slow cell measured
FP_WINDOW = 3  # iterations over which the contraction rate is measured
FP_MIN_ITER = 6  # no hand-over on predicted cost before this many iterations of a scheme ...
FP_MAX_RATE = 0.9  # ... nor on a rate above this before FP_WINDOW (transients)
FP_PLAIN_RATE = 0.3  # plain iteration while every game contracts at least this fast ...
FP_PLAIN_WORK = 250_000  # ... where a product with P costs this many B n^2 or more; below it,
# Anderson's per-iteration bookkeeping (~30 us at B = 1) outweighs the iterations it saves
# (measured 0.55-0.6x plain's count at rates 0.3-0.5), so plain iteration runs while the rate
# is at most FP_MAX_RATE (n = 200, skew, tau = 0.1: 35 plain iterations 0.5 ms, 24 mixed 0.85 ms)
FP_NEWTON_COST = 40  # Newton's cost in fixed-point iterations (measured 40-70 at n = 200-3000)
FP_MAX_ITER = 200  # a game still iterating here goes to Newton whatever its rate
FP_STALL = 1e-10  # a residual below this that stops decreasing is round-off: Newton polishes it
EPS = np.finfo(np.float64).eps
ONE_GAME_LOOP = True  # one game's plain phase in _plain_one_game (False: the batched loop; tests)
_max, _min, _sum = np.maximum.reduce, np.minimum.reduce, np.add.reduce


@dataclass(frozen=True)
class FixedPointRun:
    """Result of :func:`anderson_fixed_point` for a batch of B games.

    z: (B, n) the iterate with the smallest residual (normalised logits, ``log pi``). residual:
    (B,) its spread ``max f - min f``. iterations: (B,) fixed-point iterations (products with
    ``P``). converged: (B,) residual at or below the round-off tolerance; the others were handed
    over (rate: (B,) the last contraction-rate estimate, nan before ``FP_WINDOW`` iterations).
    start_residual: (B,) the residual at ``z0`` (how much the stage gained: Newton starts from
    ``z`` only where it gained, see :mod:`tabular.newton`). P_pi: (B, n) ``P @ exp(z)`` of the
    converged games (their certificates need no other product with P); 0 for the others.
    """

    z: np.ndarray
    residual: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    rate: np.ndarray
    start_residual: np.ndarray
    P_pi: np.ndarray


def P_times_batch(P, pi, rows=None) -> np.ndarray:
    """``P @ pi[b]`` for each game b: P (n, n) shared (one GEMM) or (B, n, n); pi (B, n).

    ``rows``: for a stack, the games of P that the rows of pi belong to (P[rows] is not copied:
    one matrix-vector product per game, which is what matmul does on a stack anyway).
    """
    if P.ndim == 2:
        return pi @ P.T
    if rows is None:
        return np.matmul(P, pi[:, :, None])[:, :, 0]
    out = np.empty_like(pi)
    for i, b in enumerate(rows):
        np.matmul(P[b], pi[i], out=out[i])
    return out


def logsumexp_last(s):
    """``logsumexp(s)`` over the last axis, keepdims (numpy only: scipy's costs ~0.1 ms a call in
    array-API dispatch, more than a whole iteration at n = 200). ``s`` may hold -inf, not +inf
    or nan."""
    # ufunc reductions called directly: the ndarray methods' wrappers cost ~1 us a call here
    top = _max(s, axis=-1, keepdims=True)
    return top + np.log(_sum(np.exp(s - top), axis=-1, keepdims=True))


def log_normalise(s):
    """``s - logsumexp(s)`` over the last axis (a log-softmax)."""
    return s - logsumexp_last(s)


def log_normalise_logaddexp(z):
    """``z - log sum exp(z)`` over the last axis, the sum taken by ``np.logaddexp.reduce``
    (pairwise, no max shift): the log-softmax online DPO's limit and the enumerable task's targets
    were certified and recorded with. Equal to :func:`log_normalise` up to round-off, not bit for
    bit, so each keeps its own."""
    return z - np.logaddexp.reduce(z, axis=-1, keepdims=True)


def log_best_response(P, log_mu, inv_tau, z, rows=None):
    """``(log T(exp z), P exp z)`` for a batch: z, log_mu (B, n), inv_tau (B, 1) = 1 / tau.

    ``P pi / tau`` is not shifted by its max first: it lies in [0, 1 / tau], finite for every
    tau the fixed-point stage is used at (>= ``TAU_FROM_ZERO`` in :mod:`tabular.newton`), and
    the normalisation subtracts the max before exponentiating.
    """
    P_pi = P_times_batch(P, np.exp(z), rows)
    return log_normalise(log_mu + P_pi * inv_tau), P_pi


def _plain_one_game(P, log_mu, inv_tau, z0, tol, newton_cost, may_mix, max_iter, rescue, plain_rate):
    """The plain phase of :func:`anderson_fixed_point` for one game (B = 1, P (n, n)): the same
    iterates, residuals and decisions as the batched loop (the same numpy operations on the same
    (1, n) arrays; the rate check on (1,) arrays), with the per-iteration bookkeeping on scalars.

    Returns ``(k, how, z, r, start, rate, P_pi)``: at iteration ``k`` the game is ``"done"``
    (``z`` reached the tolerance, ``r`` its residual, ``P_pi = P @ exp(z)``), handed to Newton
    (``"slow"``: ``z`` and ``r`` the best iterate and its residual), or to Anderson mixing
    (``"mix"``: the best iterate, from which mixing restarts). ``start``: the residual at
    ``z0``; ``rate``: the last contraction-rate estimate (nan before the first check).
    """
    PT, tol = P.T, tol[0]
    z = z_best = z0
    r_best = r_check = start = np.inf
    rate = np.nan
    for k in range(max_iter):
        P_pi = np.exp(z) @ PT
        g = log_normalise(log_mu + P_pi * inv_tau)
        f = g - z
        r = _max(f, axis=None) - _min(f, axis=None)
        if k == 0:
            start = r_check = r
        if k % FP_WINDOW == 0 and r < r_best:  # nan never counts as better
            z_best, r_best = z, r
        check = k % FP_WINDOW == 0 and k
        if check:  # the rate is recorded at a check even where the game is done there
            with np.errstate(divide="ignore", invalid="ignore"):  # as the batch computes them
                rho = ((np.array([r_best]) / r_check) ** (1.0 / FP_WINDOW))
                remaining = (np.log(np.array([tol]) / r_best) / np.log(rho))[0]
            rate = rho = rho[0]
        if r <= tol:
            return k, "done", z, r, start, rate, P_pi
        if check:
            hopeless = not rescue and not rho < 1.0
            if may_mix and not hopeless and rho > plain_rate:
                return k, "mix", z_best, r_best, start, rate, None
            slow = (not rho <= FP_MAX_RATE) or (
                k >= FP_MIN_ITER and (rho >= 1 or remaining > newton_cost))
            if slow or hopeless or (rho >= 1.0 and r_best <= FP_STALL):
                return k, "slow", z_best, r_best, start, rate, None
            r_check = r_best
        z = g
    return max_iter - 1, "slow", z_best, r_best, start, rate, None


def anderson_fixed_point(P, log_mu, tau, z0, *, newton_cost: float = FP_NEWTON_COST,
                         depth: int = FP_DEPTH, max_iter: int = FP_MAX_ITER,
                         rescue: bool = True) -> FixedPointRun:
    """Anderson-accelerated fixed-point iteration ``z <- log T(exp z)`` with per-game hand-over.

    Args:
      P: (n, n) shared by every game, or (B, n, n). log_mu: (B, n). tau: (B,) >= 1e-300. z0:
        (B, n) normalised logits to start from. newton_cost: hand a game over when more
        iterations than this are predicted to remain. depth: Anderson memory (0: plain
        iteration throughout). max_iter: cap on the products with P per game. rescue: try
        Anderson on a game whose plain iteration made no progress at all over the first
        ``FP_WINDOW`` iterations; False hands such a game straight to Newton (the solver's
        choice where Newton is cheap: dense LU, n <= 250, where measured cyclic games at tau =
        0.1 took 35 Anderson iterations, 1.2x Newton's time).

    Returns: :class:`FixedPointRun`. A game stops when its residual spread reaches
    ``max(1e-14, 4 eps / tau)`` (the Newton solver's round-off floor ``8 eps max|A pi| / tau``
    at its largest, ``max|A pi| <= 1/2``). Plain iterations are used while every game contracts
    by ``FP_PLAIN_RATE`` or better per iteration (Anderson would not save an iteration there
    and doubles the bookkeeping at n ~ 200), or by ``FP_MAX_RATE`` where a product with P is
    cheaper than ``FP_PLAIN_WORK`` (B n^2); Anderson mixing, restarted from the best iterate,
    from the first check where one does not. One game (B = 1, one P) runs its plain phase in
    :func:`_plain_one_game`, bit for bit the same run. The rate is checked every ``FP_WINDOW``
    iterations (a check costs as much as an iteration's bookkeeping at n ~ 200).
    """
    B, n = z0.shape
    tau = np.asarray(tau, np.float64)
    m = max(int(depth), 0)
    tol = np.maximum(1e-14, 4 * EPS / tau)
    plain_rate = FP_PLAIN_RATE if B * n * n >= FP_PLAIN_WORK else FP_MAX_RATE
    if B == 1 and P.ndim == 2 and ONE_GAME_LOOP:
        # One game: its plain phase with scalar bookkeeping (the batch's costs 2x the iteration
        # itself at n ~ 200); it ends the run or hands the game to Anderson mixing below.
        plain = _plain_one_game(P, log_mu, 1.0 / tau[:, None], z0, tol, newton_cost, m > 0,
                                max_iter, rescue, plain_rate)
        k, how, z_k, r_k, start_k, rate_k, P_pi = plain
        if how != "mix":
            return FixedPointRun(z_k.copy(), np.array([r_k]), np.array([k + 1]),
                                 np.array([how == "done"]), np.array([rate_k]),
                                 np.array([start_k]), P_pi if how == "done" else np.zeros((1, n)))
    out_z = z0.copy()
    out_r = np.full(B, np.inf)
    iterations = np.zeros(B, np.int64)
    converged = np.zeros(B, bool)
    rate = np.full(B, np.nan)
    start = np.full(B, np.inf)
    out_P_pi = np.zeros((B, n))
    if B == 0:
        return FixedPointRun(out_z, out_r, iterations, converged, rate, start, out_P_pi)
    # State of the games still iterating, row by row in the order of ``active``.
    active = np.arange(B)
    z, lm, inv_tau, Pa, rows = z0, log_mu, 1.0 / tau[:, None], P, None
    z_best, r_best, r_check = z0.copy(), np.full(B, np.inf), np.full(B, np.inf)
    eye = np.eye(m)
    mixing = False
    k_scheme = 0  # iteration at which the current scheme (plain, then Anderson) started
    f_prev = g_prev = dF = dG = gram = None
    h = 0  # filled Anderson slots
    k_first = 0
    if B == 1 and P.ndim == 2 and ONE_GAME_LOOP:
        # the state the loop below is in right after it switched to mixing at iteration k
        start[0], rate[0] = start_k, rate_k
        k_first, mixing, k_scheme = k + 1, True, k
        z_best, r_best[0], z = z_k.copy(), r_k, z_k.copy()
        dF, dG, gram = np.empty((1, m, n)), np.empty((1, m, n)), np.empty((1, m, m))

    def finish(rows, k, z_rows, ok):
        idx = active[rows]
        out_z[idx], iterations[idx], converged[idx] = z_rows, k + 1, ok
        out_r[idx] = r[rows] if ok else r_best[rows]

    for k in range(k_first, max_iter):
        g, P_pi = log_best_response(Pa, lm, inv_tau, z, rows)
        f = g - z
        r = f.max(-1) - f.min(-1)  # nan (a non-finite iterate) never counts as better
        if k == 0:
            start[:] = r_check[:] = r
        if mixing or k % FP_WINDOW == 0:  # plain iteration is near monotone: best at checks only
            better = r < r_best
            if better.any():
                z_best[better], r_best[better] = z[better], r[better]
        done = r <= tol
        leave = done
        any_leave = done.any()
        if any_leave:
            # z, not g = log T(z): its product with P is at hand, so its certificates are free.
            finish(done, k, z[done], True)
            out_P_pi[active[done]] = P_pi[done]
        if k % FP_WINDOW == 0 and k:
            with np.errstate(divide="ignore", invalid="ignore"):
                rho = (r_best / r_check) ** (1.0 / FP_WINDOW)
                remaining = np.log(tol / r_best) / np.log(rho)
            rate[active] = rho
            hopeless = np.zeros_like(done)
            if not mixing and not rescue:
                hopeless = ~done & ~(rho < 1.0)
            if not mixing and m and np.any(rho[~done & ~hopeless] > plain_rate):
                # Plain iteration is slow for some game: Anderson from its best point, judged
                # afresh (its first iterations may raise the residual).
                mixing, k_scheme = True, k
                dF, dG, gram = np.empty((len(active), m, n)), np.empty((len(active), m, n)), \
                    np.empty((len(active), m, m))
                z, rho = z_best.copy(), np.zeros_like(rho)
                f_prev = None
            judged = k - k_scheme
            slow = ((judged >= (FP_MIN_ITER if mixing else FP_WINDOW)) & ~(rho <= FP_MAX_RATE)) | (
                (judged >= FP_MIN_ITER) & ((rho >= 1) | (remaining > newton_cost)))
            slow |= (rho >= 1.0) & (r_best <= FP_STALL)  # round-off floor above tol
            slow = (slow | hopeless) & ~done
            if slow.any():
                finish(slow, k, z_best[slow], False)
                leave, any_leave = done | slow, True
            r_check = r_best.copy()
            if mixing and k == k_scheme:
                r_check[:] = np.inf  # the rate of the Anderson scheme is measured from here
        if k == max_iter - 1:
            break
        if any_leave:
            keep = ~leave
            active = active[keep]
            if active.size == 0:
                break
            z, g, f, lm, inv_tau, tol = z[keep], g[keep], f[keep], lm[keep], inv_tau[keep], tol[keep]
            z_best, r_best, r_check = z_best[keep], r_best[keep], r_check[keep]
            if P.ndim == 3:
                # Copy the remaining games of a stack only while that is cheap (small n);
                # else index P game by game (a (B, n, n) copy per departure cost 3x the loop
                # at n = 585).
                small = active.size * n * n * 8 <= 2**25
                Pa, rows = (P[active], None) if small else (P, active)
            if mixing:
                dF, dG, gram = dF[keep], dG[keep], gram[keep]
                if f_prev is not None:
                    f_prev, g_prev = f_prev[keep], g_prev[keep]
        if not mixing:
            z = g
            continue
        if k == k_scheme:  # Anderson restarts from z_best (set above)
            continue
        if f_prev is None:  # first mixing iteration: nothing to difference yet
            f_prev, g_prev, h, z = f, g, 0, g
            continue
        # Anderson (type II) over the last h <= m differences: minimise |f - dF gamma| and move to
        # g - dG gamma. All active games share the slot order (they iterate in step).
        slot = h if h < m else k % m
        dF[:, slot] = f - f_prev
        dG[:, slot] = g - g_prev
        h = min(h + 1, m)
        # (matmul rather than einsum: a third of the call overhead, which dominates at n ~ 200)
        row = np.matmul(dF[:, :h], dF[:, slot, :, None])[:, :, 0]
        gram[:, slot, :h] = row
        gram[:, :h, slot] = row
        # Tikhonov term relative to the largest entry: the normal equations stay solvable when
        # the differences become collinear near convergence.
        H = gram[:, :h, :h] + (1e-12 * np.maximum(row.max(-1), 1e-300))[:, None, None] * eye[:h, :h]
        rhs = np.matmul(dF[:, :h], f[:, :, None])
        f_prev, g_prev = f, g
        try:
            gamma = np.linalg.solve(H, rhs)  # (B, h, 1)
        except np.linalg.LinAlgError:
            z = g
            continue
        z = log_normalise(g - np.matmul(gamma[:, :, 0][:, None, :], dG[:, :h])[:, 0])
        bad = ~np.isfinite(z[:, 0])
        if bad.any():
            z[bad] = g[bad]
    else:
        k = max_iter - 1
    if active.size:  # still iterating at max_iter
        finish(np.ones(active.size, bool), k, z_best, False)
    return FixedPointRun(out_z, out_r, iterations, converged, rate, start, out_P_pi)
