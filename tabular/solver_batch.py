"""Batches of games for :func:`~tabular.solvers.solve_equilibrium`: many games solved together.

Batches: ``solve_equilibrium`` takes ``P`` of shape (B, n, n), or one (n, n) ``P`` shared by B
games with ``mu`` of shape (B, n) (a stride-0 broadcast stack is read as shared), ``tau`` a
scalar or (B,), and returns an :class:`EquilibriumBatch` (per-game certificates). Games are
solved in chunks that bound the working memory (``chunk``, default ``BATCH_MEMORY`` bytes): the
fixed-point stage on the whole chunk (one matrix product per iteration for a shared P), one
vectorised dense Newton for the games it hands over (n <= ``DENSE_MAX_N``; above, Newton-Krylov
one game at a time), and the full single-game solver for what is left (tau = 0, tiny tau, a
stalled Newton). A stack is validated chunk by chunk, naming the first bad game; results whose
size alone exceeds ``MEMORY_LIMIT`` are refused in one line.

The batch's own tuning constants (``BATCH_MEMORY``, ``STACK_CACHE``) are here; those it shares
with the single-game solver (``DENSE_MAX_N``, ``TAU_FROM_ZERO``, ...) are :mod:`tabular.newton`'s.
:func:`~tabular.solvers.solve_equilibrium` (:mod:`tabular.equilibrium`) calls :func:`solve_batch`.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from scipy.special import log_softmax

from .certificates import duality_gap_unchecked, fixed_point_residual, gap_and_log_T
from .fixed_point import FP_DEPTH, P_times_batch, anderson_fixed_point
from .game import check_allocation, uniform, validate_preference, validate_reference, validate_tau
from .newton import (
    DENSE_MAX_N,
    FP_WARM_GAIN,
    NEWTON_TOL,
    TAU_FROM_ZERO,
    SolverOptions,
    check_path_length,
    solve_one,
    uses_dense_lu,
)
from .solver_results import EquilibriumBatch
from .zero_sum import solve_zero_sum

__all__ = ["solve_batch", "BATCH_MEMORY", "STACK_CACHE"]

BATCH_MEMORY = 2**28  # bytes of working memory a batch chunk may use (256 MiB), inputs aside
# Bytes of a stack's P solved together: measured at n = 585 (256 games, tau = 0.1), chunks of 47
# games (128 MB of P streamed from memory every iteration) took 1.3x a one-by-one loop, whose
# 2.7 MB game stays in cache; chunks within the cache are no slower than the loop.
STACK_CACHE = 2**22


# --------------------------------------------------------------------------------------------
# Batches of games: the fixed-point stage on the whole chunk, one vectorised dense Newton
# iteration (n <= DENSE_MAX_N) or the single-game Newton-Krylov (above) for the games it hands
# over, the full single-game solver for what is left.
# --------------------------------------------------------------------------------------------
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


def _validate_batch(P, mu, B, n, size, check_game=True):
    """Validate a batch chunk by chunk (bounded memory); a bad game is named by its index
    (``check_game=False``: P's O(n^2) range and P + P.T = 1 checks left out)."""
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

    if P.ndim == 2 and check_game:
        validate_preference(P)
    if mu is not None and mu.ndim == 1:
        validate_reference(mu, n)
    for start in range(0, B, size):
        stop = min(B, start + size)
        if P.ndim == 3 and check_game:
            named(validate_preference, start, stop, P)
        if mu is not None and mu.ndim == 2:
            named(lambda m: validate_reference(m, n), start, stop, mu)


def solve_batch(P, mu, tau, games, options: SolverOptions, chunk,
                check_game: bool = True) -> EquilibriumBatch:
    """:func:`~tabular.solvers.solve_equilibrium` on a batch (its ``P``, ``mu``, ``tau``, ``chunk``,
    ``check_game``; ``games``: the number of games when ``P`` is one matrix shared by the batch,
    else None)."""
    gap_tol = options.gap_tol
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
    _validate_batch(P, mu, B, n, size, check_game)
    tau_list = np.broadcast_to(np.asarray(tau, dtype=object), (B,))
    tau_arr = np.array([validate_tau(t, allow_zero=True) for t in tau_list], dtype=np.float64)
    for t in np.unique(tau_arr[tau_arr > 0]):
        check_path_length(t, options.tau_start, options.tau_path_ratio)
    mu = uniform(n) if mu is None else mu
    out = EquilibriumBatch(np.empty((B, n)), np.empty((B, n)), tau_arr, np.empty(B), np.empty(B),
                           np.zeros(B, np.int64), np.zeros(B, bool), [""] * B, "",
                           np.zeros(B, np.int64))
    for start in range(0, B, size):
        sl = slice(start, min(B, start + size))
        Pc = P if P.ndim == 2 else np.asarray(P[sl], dtype=np.float64)
        mu_c = np.array(np.broadcast_to(mu, (B, n))[sl], dtype=np.float64)
        _solve_chunk(Pc, mu_c, tau_arr[sl], out, sl, options)
    converged = out.gap <= gap_tol
    out.converged[:] = converged
    counts = {m: out.method.count(m) for m in sorted(set(out.method))}
    message = (f"{int(converged.sum())}/{B} games within gap_tol {gap_tol:g}; methods: "
               + ", ".join(f"{m} {c}" for m, c in counts.items()))
    if not converged.all():
        warnings.warn(f"solve_equilibrium: worst duality gap {out.gap.max():.3g} > {gap_tol:g} in "
                      f"{int((~converged).sum())} of {B} games", RuntimeWarning, stacklevel=3)
    return dataclasses.replace(out, method=tuple(out.method), message=message)


def _solve_chunk(P, mu, tau, out, sl, options: SolverOptions):
    """Solve games ``sl`` of the batch into ``out``: P (n, n) shared or (b, n, n), mu (b, n)."""
    gap_tol, max_iter, linear, fixed_point = (options.gap_tol, options.max_iter, options.linear,
                                              options.fixed_point)
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
                                   z[fast].copy(), rescue=not uses_dense_lu(linear, n))
        gained = run.converged | (run.residual <= FP_WARM_GAIN * run.start_residual)
        z[fast[gained]] = run.z[gained]
        fp_iters[fast] = iters[fast] = run.iterations
        for i in fast[run.converged]:
            methods[i] = "fixed-point"
        newton = fast[~run.converged]
    dense = uses_dense_lu(linear, n)
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
            g, log_T = gap_and_log_T(run.P_pi[run.converged][sel], mu[idx[sel]], float(t),
                                     pi[idx[sel]])
            gap[idx[sel]] = g
            residual[idx[sel]] = np.abs(z[idx[sel]] - log_T).max(-1)
    if dense and newton.size:  # the batched Newton's games (the others go to the loop below)
        Pn = P if shared else P[newton]
        gap[newton] = _batch_gap(Pn, mu[newton], safe_tau[newton], pi[newton])
        residual[newton] = _batch_residual(Pn, mu[newton], safe_tau[newton], pi[newton],
                                           z[newton])
    ok = (gap <= gap_tol) & (tau >= TAU_FROM_ZERO)
    single = dataclasses.replace(options, fixed_point=False)  # the chunk's stage is done
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # one summary warning for the batch
        for i in np.flatnonzero(~ok):  # tau = 0, tiny tau, Newton's games above DENSE_MAX_N,
            # or games the batched stages left: the full single-game solver
            Pi = P if shared else P[i]
            if tau[i] == 0:
                eq = solve_zero_sum(Pi, mu[i])
            else:
                warm = z[i] if tau[i] >= TAU_FROM_ZERO else None
                eq = solve_one(Pi, mu[i], tau[i], warm, single)
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
