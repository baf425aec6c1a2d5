"""The ledger: one :class:`Row` per checked result, printed as an aligned table or as JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

__all__ = ["Row", "Variant", "format_table", "to_json"]


@dataclass(frozen=True)
class Variant:
    """Deliberately wrong variants, to show that the ledger can fail (used by the tests).

    self_play_factor: the factor in Prop. 4.2 (correct: 4), used by the closed-form reference.
    nash_md_bound: the constant in ``KL(pi* || pi_T) <= C / (tau^2 (T + 1))`` (correct: 8).
    A wrong *loss* (e.g. IPO target 1/tau) is injected by replacing
    ``tabular.losses.PAIRWISE_LOSSES["ipo"]`` (what a bug in the shared core would look like); the
    symbolic rows take it through their ``loss`` argument, see :func:`proofs_check.checks.run_ledger`.
    """

    self_play_factor: float = 4.0
    nash_md_bound: float = 8.0


@dataclass
class Row:
    """One result: ``status`` is PASS iff ``worst_error <= tolerance`` and every sub-check held."""

    name: str
    statement: str
    method: str
    instances: int
    worst_error: float
    tolerance: float
    status: str = "PASS"
    details: dict = field(default_factory=dict)
    seconds: float = 0.0

    @staticmethod
    def judge(name, statement, method, instances, worst_error, tolerance, ok=True, **details):
        worst_error = float(worst_error)
        passed = bool(ok) and math.isfinite(worst_error) and worst_error <= tolerance
        return Row(name, statement, method, int(instances), worst_error, float(tolerance),
                   "PASS" if passed else "FAIL", details)


def _fmt(x: float) -> str:
    return f"{x:.2e}" if math.isfinite(x) else str(x)


def format_table(rows: list[Row]) -> str:
    """Aligned table: name, method, instances, worst error, tolerance, status, seconds, statement."""
    head = ["name", "method", "instances", "worst_error", "tolerance", "status", "time_s", "statement"]
    body = [[r.name, r.method, str(r.instances), _fmt(r.worst_error), _fmt(r.tolerance), r.status,
             f"{r.seconds:.1f}", r.statement] for r in rows]
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head) - 1)]
    lines = []
    for cells in [head] + body:
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + cells[-1])
    lines.insert(1, "-" * len(lines[0]))
    n_fail = sum(r.status != "PASS" for r in rows)
    lines.append(f"{len(rows)} rows, {len(rows) - n_fail} PASS, {n_fail} FAIL")
    return "\n".join(lines)


def to_json(rows: list[Row]) -> str:
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        return v
    return json.dumps([{k: clean(v) for k, v in asdict(r).items()} for r in rows], indent=2,
                      default=float)
