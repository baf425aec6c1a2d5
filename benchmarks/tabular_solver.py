"""Accuracy and speed of ``solve_equilibrium`` (n = 10, 100, 1000; tau = 0.01, 0.1, 1), with peers.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tabular_solver.py [--quick]``.

mu is a fixed non-uniform reference. Columns: duality gap and fixed-point residual of the returned policy
(its certificate), Newton iterations, wall seconds (median of ``--repeat`` runs, one thread). Peer 1, in
the same run: damped fixed-point iteration ``pi <- (1 - a) pi + a T(pi)`` with ``a = min(1, tau)`` (T is
a contraction for large tau only), stopped at gap <= 1e-12 or after ``--fp-iters`` iterations; the ratio
column is peer seconds / our seconds. Peer 2, tau = 0: our solve_zero_sum against nashpy's
``Game.linear_program`` (if nashpy is installed), exploitability and seconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from tabular import exploitability, make_game, solve_equilibrium
from tabular.solvers import duality_gap, fixed_point_map

FAMILIES = {"random": "random:{n}:0", "bt": "bt:{n}:0", "cyclic": "cyclic:{n}",
            "majority": "majority:{n}:3:0"}


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


def damped_fixed_point(P, mu, tau, iters):
    """Peer: the simplest solver one would write; converges for large tau, stalls for small."""
    a = min(1.0, tau)
    pi = mu.copy()
    for k in range(1, iters + 1):
        pi = (1 - a) * pi + a * fixed_point_map(P, mu, tau, pi)
        if k % 20 == 0 and duality_gap(P, mu, tau, pi) <= 1e-12:
            break
    return pi, k


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--taus", default="0.01,0.1,1")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats (median)")
    parser.add_argument("--fp-iters", type=int, default=2000, help="peer iteration budget")
    parser.add_argument("--quick", action="store_true", help="n = 10, 100 only, one repeat")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    taus = [float(t) for t in args.taus.split(",")]
    repeat = args.repeat
    if args.quick:
        sizes, repeat = [s for s in sizes if s <= 100], 1

    print(f"{'family':<9} {'n':>5} {'tau':>5} | {'gap':>9} {'residual':>9} {'iters':>5} "
          f"{'method':<19} {'seconds':>8} | {'FP gap':>9} {'FP iters':>8} {'FP s':>8} "
          f"{'FP/ours':>8}")
    worst_gap = 0.0
    for family, spec in FAMILIES.items():
        for n in sizes:
            P, _ = make_game(spec.format(n=n))
            mu = reference(n)
            for tau in taus:
                eq, secs = timed(lambda: solve_equilibrium(P, mu, tau), repeat)
                worst_gap = max(worst_gap, abs(eq.gap))
                (pi_fp, k), fp_secs = timed(
                    lambda: damped_fixed_point(P, mu, tau, args.fp_iters), 1)
                fp_gap = float(duality_gap(P, mu, tau, pi_fp))
                print(f"{family:<9} {n:>5} {tau:>5g} | {eq.gap:9.1e} {eq.residual:9.1e} "
                      f"{eq.iterations:>5} {eq.method:<19} {secs:8.4f} | {fp_gap:9.1e} {k:>8} "
                      f"{fp_secs:8.4f} {fp_secs / secs:8.1f}")
    print(f"worst |gap| over the table: {worst_gap:.2e}")

    try:
        import nashpy
    except ImportError:
        print("nashpy not installed: skipping the tau = 0 LP comparison")
        return
    print(f"\ntau = 0: ours (interior-point support, exact solve; HiGHS fallback) vs nashpy "
          f"{nashpy.__version__} "
          f"Game.linear_program")
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


if __name__ == "__main__":
    main()
