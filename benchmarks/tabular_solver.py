"""Accuracy and speed of ``solve_equilibrium`` (n = 10, 100, 1000; tau = 0.01, 0.1, 1), with peers.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tabular_solver.py [--quick]``.

mu is a fixed non-uniform reference. Columns: duality gap and fixed-point residual of the returned policy
(its certificate), iterations and method, wall seconds (median of ``--repeat`` runs, one thread). Peers,
in the same run, each stopped at gap <= 1e-12 (checked every 10 iterations, as one would write it) or
after ``--fp-iters`` iterations: plain fixed-point iteration ``pi <- T(pi)`` (undamped) and damped
iteration ``pi <- (1 - a) pi + a T(pi)`` with ``a = min(1, tau)``, ``T(pi) = softmax(log mu + P pi /
tau)``. Plain iteration converges fast wherever T contracts (most games at tau >= 0.1) and stalls or
oscillates where it does not; damping by tau slows it ~tau^-1 times where it contracts and rescues only
some oscillating cases. The ratio columns are peer seconds / our seconds (a peer that missed 1e-12 is
marked). Peer 3, tau = 0: our solve_zero_sum against nashpy's ``Game.linear_program`` (if nashpy is
installed), exploitability and seconds. Prints a table; writes nothing. Bad flags: one line, exit 2.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trl_common import positive_int  # noqa: E402  (the benchmarks' shared flag types)

from opo_toolkit.cliargs import Parser, run_command
from opo_toolkit.provenance import measured_provenance
from tabular import exploitability, make_game, solve_equilibrium
from tabular.solvers import duality_gap, fixed_point_map

FAMILIES = {"random": "random:{n}:0", "bt": "bt:{n}:0", "cyclic": "cyclic:{n}",
            "majority": "majority:{n}:3:0"}
GAP_TARGET = 1e-12


def reference(n: int) -> np.ndarray:
    """A non-uniform mu = softmax(N(0, 1/4)) (with uniform mu, cyclic games are trivial: pi* = mu)."""
    logits = np.random.default_rng(0).normal(0.0, 0.5, size=n)
    mu = np.exp(logits - logits.max())
    return mu / mu.sum()


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def fixed_point_iteration(P, mu, tau, iters, damping=1.0):
    """Peer: ``pi <- (1 - a) pi + a T(pi)`` (a = 1: plain), gap checked every 10 iterations."""
    pi = mu.copy()
    for k in range(1, iters + 1):
        pi = (1 - damping) * pi + damping * fixed_point_map(P, mu, tau, pi)
        if k % 10 == 0 and duality_gap(P, mu, tau, pi) <= GAP_TARGET:
            break
    return pi, k


def sizes_list(text):
    try:
        values = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 2 or max(values) > 4096:
        raise argparse.ArgumentTypeError(f"sizes must lie in [2, 4096], got {text!r}")
    return values


def taus_list(text):
    try:
        values = [float(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or not all(np.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"taus must be finite and > 0, got {text!r}")
    return values


def peer_cell(P, mu, tau, iters, damping, secs):
    (pi, k), peer_secs = timed(lambda: fixed_point_iteration(P, mu, tau, iters, damping), 1)
    gap = float(duality_gap(P, mu, tau, pi))
    mark = "" if gap <= GAP_TARGET else "*"
    return f"{gap:9.1e} {k:>6} {peer_secs:8.4f} {peer_secs / secs:7.1f}{mark or ' '}"


def run(args) -> int:
    sizes, taus, repeat = args.sizes, args.taus, args.repeat
    if args.quick:
        sizes, repeat = [s for s in sizes if s <= 100] or sizes[:1], 1
    machine = measured_provenance(torch_info=False)
    print(f"# {machine['cpu']['model']}, {machine['cpu']['logical_cores']} cores, "
          f"OMP_NUM_THREADS={machine['threads']['OMP_NUM_THREADS']}, load average "
          f"{machine['load_average']['1min']} (1 min); numpy {machine['versions']['numpy']}; git "
          f"{(machine['git']['commit'] or '?')[:10]}{' (dirty)' if machine['git']['dirty'] else ''}")
    print(f"{'family':<9} {'n':>5} {'tau':>5} | {'gap':>9} {'residual':>9} {'iters':>5} "
          f"{'method':<19} {'seconds':>8} | {'plain gap':>9} {'iters':>6} {'s':>8} {'/ours':>8} | "
          f"{'damped gap':>9} {'iters':>6} {'s':>8} {'/ours':>8}")
    worst_gap = 0.0
    for family, spec in FAMILIES.items():
        for n in sizes:
            P, _ = make_game(spec.format(n=n))
            mu = reference(n)
            for tau in taus:
                eq, secs = timed(lambda: solve_equilibrium(P, mu, tau), repeat)
                worst_gap = max(worst_gap, abs(eq.gap))
                plain = peer_cell(P, mu, tau, args.fp_iters, 1.0, secs)
                damped = peer_cell(P, mu, tau, args.fp_iters, min(1.0, tau), secs)
                print(f"{family:<9} {n:>5} {tau:>5g} | {eq.gap:9.1e} {eq.residual:9.1e} "
                      f"{eq.iterations:>5} {eq.method:<19} {secs:8.4f} | {plain} | {damped}")
    print(f"worst |gap| over the table: {worst_gap:.2e}; * = the peer missed gap {GAP_TARGET:g}")

    try:
        import nashpy
    except ImportError:
        print("nashpy not installed: skipping the tau = 0 LP comparison")
        return 0
    print(f"\ntau = 0: ours (interior-point support, exact solve; HiGHS fallback) vs nashpy "
          f"{nashpy.__version__} Game.linear_program")
    print(f"{'family':<9} {'n':>5} | {'expl ours':>10} {'s ours':>8} | {'expl nashpy':>11} "
          f"{'s nashpy':>8} {'ratio':>6}")
    for family, spec in FAMILIES.items():
        for n in [s for s in sizes if s <= 100]:
            P, _ = make_game(spec.format(n=n))
            eq, secs = timed(lambda: solve_equilibrium(P, None, 0.0), repeat)
            game = nashpy.Game(P - 0.5)
            (row, _col), ns = timed(lambda: game.linear_program(), repeat)
            row = np.clip(row, 0, None) / np.clip(row, 0, None).sum()
            print(f"{family:<9} {n:>5} | {float(exploitability(P, eq.pi)):10.1e} {secs:8.4f} | "
                  f"{float(exploitability(P, row)):11.1e} {ns:8.4f} {ns / secs:6.1f}")
    return 0


def main(argv=None):
    parser = Parser(prog="tabular_solver.py", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=sizes_list, default=[10, 100, 1000],
                        help="comma-separated n, each in [2, 4096]")
    parser.add_argument("--taus", type=taus_list, default=[0.01, 0.1, 1.0],
                        help="comma-separated tau > 0")
    parser.add_argument("--repeat", type=positive_int, default=3, help="timing repeats (median)")
    parser.add_argument("--fp-iters", type=positive_int, default=2000,
                        help="peer iteration budget")
    parser.add_argument("--quick", action="store_true", help="n <= 100 only, one repeat")
    args = parser.parse_args(argv)
    return run_command("tabular_solver.py", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
