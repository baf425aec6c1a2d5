"""The result types of the equilibrium solver: :class:`Equilibrium` (one game) and
:class:`EquilibriumBatch` (a batch of games, one entry per game).

They are returned by :func:`~tabular.solvers.solve_equilibrium` and by the solvers behind it
(:mod:`tabular.newton`, :mod:`tabular.solver_batch`, :mod:`tabular.zero_sum`); this module holds
the types alone, so that every solver can build them without importing another solver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Equilibrium", "EquilibriumBatch"]


@dataclass(frozen=True)
class Equilibrium:
    """Result of :func:`~tabular.solvers.solve_equilibrium` on one game.

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
    """Result of :func:`~tabular.solvers.solve_equilibrium` on a batch: a stack ``P`` (B, n, n),
    or one ``P`` shared by B games with ``mu`` (B, n) or ``tau`` (B,).

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
