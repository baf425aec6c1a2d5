"""The equilibrium solver's entry point, :func:`solve_equilibrium` (re-exported by
:mod:`tabular.solvers`, with the rest of the solver's public names).

It validates the numerical options once (a :class:`~tabular.newton.SolverOptions`) and sends the
game where it belongs: one game at tau > 0 to :func:`tabular.newton.solve_one`, tau == 0 to
:func:`tabular.zero_sum.solve_zero_sum`, a batch of games to :func:`tabular.solver_batch.solve_batch`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import log_softmax

from .certificates import real_array, validate_policy
from .game import preference_shape, uniform, validate_game, validate_reference, validate_tau
from .newton import SolverOptions, check_path_length, solve_one
from .solver_batch import solve_batch
from .zero_sum import solve_zero_sum

__all__ = ["solve_equilibrium"]


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
    check_game: bool = True,
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
      tau_path_ratio: in (0, 1), with ``tau_start`` > 0: the continuation path
        ``tau_start * ratio^k`` down to ``tau``, used when direct Newton stalls (at most
        :data:`~tabular.newton.MAX_PATH_STAGES` stages).
      tau_start: the path's first tau.
      init: optional warm start (a policy with full support; one game only).
      linear: ``"auto"`` (dense LU for small n, GMRES above), ``"dense"`` or ``"krylov"``.
      fixed_point: start with the contraction-aware fixed-point stage
        (:mod:`tabular.fixed_point`), handing over to Newton where it contracts slowly; False:
        Newton from the start.
      chunk: games solved together in a batch (default: as many as fit in ``BATCH_MEMORY``
        bytes of working memory, and for a stack as many whose P fits in ``STACK_CACHE`` bytes,
        both of :mod:`tabular.solver_batch`). The batch's working memory is bounded by the
        chunk; the inputs and the (B, n) outputs come on top, and outputs above
        ``MEMORY_LIMIT`` are refused with a one-line ValueError.
      check_game: check that ``P`` is a preference matrix (entries in [0, 1], ``P + P.T = 1``
        within ``SYMMETRY_TOL``): two passes over ``P``, one of them transposed, which cost 5-8
        products ``P @ pi`` (measured at n = 1000-3000: as much as half of a solve that the
        fixed-point stage finishes in 8-14 iterations). False skips only that check, as scipy's
        ``check_finite=False`` does, for a ``P`` already validated (``validate_preference``),
        e.g. one matrix solved at many tau or mu; shapes, tau and mu are checked regardless. A
        ``P`` that is not a preference matrix then gives a meaningless answer, not an error.

    Returns: :class:`~tabular.solver_results.Equilibrium` for one game;
    :class:`~tabular.solver_results.EquilibriumBatch` (per-game fields) for a batch. For
    ``tau == 0`` see :func:`~tabular.zero_sum.solve_zero_sum`. Every result carries its duality gap.
    """
    _validate_solver_options(gap_tol, max_iter, tau_path_ratio, tau_start)
    if linear not in ("auto", "dense", "krylov"):
        raise ValueError(f"linear must be 'auto', 'dense' or 'krylov', got {linear!r}")
    for name, flag in (("fixed_point", fixed_point), ("check_game", check_game)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {flag!r}")
    options = SolverOptions(gap_tol, max_iter, tau_path_ratio, tau_start, linear, bool(fixed_point))
    P = real_array(P, "P")
    mu = None if mu is None else real_array(mu, "mu")
    games = None  # number of games when P is one matrix shared by a batch
    if P.ndim == 3 and P.shape[0] > 0 and P.strides[0] == 0:
        games, P = P.shape[0], P[0]  # np.broadcast_to(P, (B, n, n)): one shared matrix
    if games or P.ndim == 3 or (mu is not None and mu.ndim == 2) or np.ndim(tau) == 1:
        if init is not None:
            raise ValueError("init is for one game; a batch starts from mu")
        return solve_batch(P, mu, tau, games, options, chunk, bool(check_game))
    if P.ndim != 2:
        raise ValueError(f"solve_equilibrium takes one game (n, n) or a stack (B, n, n), got "
                         f"shape {P.shape}")
    if check_game:
        P, mu = validate_game(P, mu)
    else:
        P = preference_shape(P)
        mu = uniform(P.shape[-1]) if mu is None else validate_reference(mu, P.shape[-1])
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

