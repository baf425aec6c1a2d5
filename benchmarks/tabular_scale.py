"""Tabular solver at scale, side by side with the peers, in one process on the same games.

Run: ``OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/tabular_scale.py [--quick] [--big]
[--only SECTIONS] [--write | --out PATH]`` (peers: ``pip install '.[bench]' -c
constraints-cpu.txt``: cvxpy + Clarabel, nashpy; or ``--no-peers``).

Sections (``--only`` picks some; games: ``random_game(n, seed)`` for seeds 0..games-1, mu uniform,
unless said otherwise):
- ``regularised`` (rows ``tau>0``): ours (``solve_equilibrium``) against cvxpy + Clarabel on the
  exponential-cone program (the duality gap minimised), gap of each answer by the same
  ``duality_gap``.
- ``zero_sum`` (``tau=0``): ours (``solve_equilibrium(P, None, 0)``) against nashpy
  ``Game.linear_program``; exploitability ``max (P pi) - 1/2`` of each.
- ``small_tau``: tau = 1e-4, 1e-7, 1e-300 (n = 300, 1000; 2 games): path taken, gap, warnings.
- ``batch``: ``solve_equilibrium`` on a stack (B, 10, 10) against the Python loop over the games.
- ``grid`` (issue 22): families random, skew, majority-of-5, Bradley-Terry, cyclic; n = 200,
  1000, 3000 (``--big``: 10^4 too, one repeat, the five-line fixed point capped at 100
  iterations, without majority-of-5, whose construction needs ~10 GB there); tau = 1, 0.1, 0.01,
  1e-3; non-uniform mu. Ours
  against our Newton (``fixed_point=False``) and the fixed point in five lines
  (:func:`fixed_point_five_lines`), interleaved, medians of CPU and wall time, and the ratio to
  the better of the two.
- ``bulk`` (issue 22): per-prompt games, B = 256, 1024, 10^4 (``--bulk-max``) of n = 585, one mu
  per game, P shared ((n, n) with (B, n) mu) and, for B <= 512, a (B, n, n) stack: time, peak
  memory, certificates, beside a one-by-one loop.
- ``throughput``: ``tabular.run`` exact and sampled forms, 1000 games x 10 actions: the exact
  forms run the goal's 10^4 steps (measured; ~4 min for the twelve), the sampled forms
  ``--steps`` steps (their 10^4-step time extrapolated, and it says so).

Results are written only when asked: ``--write`` writes the committed
``benchmarks/measured/tabular_scale.json`` (a full run only: never with ``--quick`` or ``--only``),
``--out PATH`` any other file, atomically, with the measured provenance
(:func:`opo_toolkit.provenance.measured_provenance`: CPU, threads, versions, git commit, and the load
average before and after). ``--render`` prints the README tables from that file and draws
``benchmarks/measured/tabular_scale.png``. Bad flags: one line and exit 2.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import math
import os
import statistics
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from scipy.special import expit, log_softmax, logsumexp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trl_common import positive_int  # noqa: E402  (the benchmarks' shared flag types)

from opo_toolkit.cliargs import Parser, UsageError, run_command
from opo_toolkit.files import atomic_write_json
from opo_toolkit.provenance import load_window, measured_provenance
from tabular import METHODS, AlgorithmConfig, duality_gap, exploitability, run, solve_equilibrium
from tabular.game import (
    annotator_majority,
    bradley_terry_random,
    cyclic,
    intransitive_blend,
    random_game,
)

RESULTS = Path(__file__).resolve().parent / "measured" / "tabular_scale.json"  # committed


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def timed_cpu(fn):
    """``(out, wall seconds, CPU seconds of this process)``: with one thread the CPU time is the
    work itself, much less disturbed than the wall time when the cores are shared."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - start, time.process_time() - cpu


def summary(times):
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def cvxpy_equilibrium(P, tau):
    """Peer: pi* as the convex program min_pi tau KL(pi||mu) - ... written directly: the
    equilibrium minimises the duality gap, gap(pi) = 2 [tau logsumexp(log mu + P pi / tau)
    + tau KL(pi || mu)] - 1 (convex in pi), here with mu uniform."""
    import cvxpy as cp

    n = P.shape[0]
    pi = cp.Variable(n, nonneg=True)
    log_mu = -np.log(n)
    objective = tau * cp.log_sum_exp(log_mu + P @ pi / tau) + tau * cp.sum(
        cp.rel_entr(pi, np.full(n, 1.0 / n)))
    problem = cp.Problem(cp.Minimize(objective), [cp.sum(pi) == 1])
    problem.solve(solver=cp.CLARABEL)
    x = np.clip(np.asarray(pi.value, np.float64), 0.0, None)
    return x / x.sum(), problem.status


def solve_memory_gib(P, tau):
    """Peak memory of one solve: the input P plus the solver's own peak allocation (numpy
    reports its buffers to tracemalloc), in GiB; a separate, untimed solve."""
    tracemalloc.start()
    try:
        solve_equilibrium(P, None, tau)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (P.nbytes + peak) / 2**30


def bench_regularised(sizes, taus, games, peer_max_n, rows):
    if peer_max_n:
        cvxpy_equilibrium(random_game(5, 0), 0.1)  # warm-up: imports and first compile untimed
    for n in sizes:
        Ps = [random_game(n, seed) for seed in range(games)]
        for tau in taus:
            ours, gaps, methods = [], [], set()
            for P in Ps:
                eq, t = timed(lambda: solve_equilibrium(P, None, tau))
                assert eq.converged, eq.message  # every fast path returns its certificate
                ours.append(t)
                gaps.append(float(duality_gap(P, None, tau, eq.pi)))
                methods.add(eq.method)
            row = {"section": "tau>0", "n": n, "tau": tau, "games": games, "method": "ours",
                   "variant": "/".join(sorted(methods)), **summary(ours), "worst_gap": max(gaps)}
            if n >= 10000:
                row["solve_peak_gib"] = solve_memory_gib(Ps[0], tau)
            rows.append(row)
            print_row(row)
            if n <= peer_max_n:
                peer, pgaps, statuses = [], [], set()
                for P in Ps:
                    (pi, status), t = timed(lambda: cvxpy_equilibrium(P, tau))
                    statuses.add(status)
                    peer.append(t)
                    pgaps.append(float(duality_gap(P, None, tau, pi)))
                prow = {"section": "tau>0", "n": n, "tau": tau, "games": games,
                        "method": "cvxpy+clarabel", "variant": "/".join(sorted(statuses)),
                        **summary(peer),
                        "worst_gap": max(pgaps),
                        "ratio_vs_ours": statistics.median(peer) / statistics.median(ours)}
                rows.append(prow)
                print_row(prow)


def bench_zero_sum(sizes, games, peer_max_n, rows):
    for n in sizes:
        Ps = [random_game(n, seed) for seed in range(games)]
        ours, expl, methods = [], [], set()
        for P in Ps:
            eq, t = timed(lambda: solve_equilibrium(P, None, 0.0))
            ours.append(t)
            expl.append(float(exploitability(P, eq.pi)))
            methods.add(eq.method)
        row = {"section": "tau=0", "n": n, "tau": 0.0, "games": games, "method": "ours",
               "variant": "/".join(sorted(methods)), **summary(ours), "worst_expl": max(expl)}
        rows.append(row)
        print_row(row)
        if n <= peer_max_n:
            import nashpy

            peer, pexpl = [], []
            for P in Ps:
                (r, _c), t = timed(lambda: nashpy.Game(P - 0.5).linear_program())
                r = np.clip(r, 0, None)
                peer.append(t)
                pexpl.append(float(exploitability(P, r / r.sum())))
            prow = {"section": "tau=0", "n": n, "tau": 0.0, "games": games, "method": "nashpy",
                    "variant": "linear_program", **summary(peer), "worst_expl": max(pexpl),
                    "ratio_vs_ours": statistics.median(peer) / statistics.median(ours)}
            rows.append(prow)
            print_row(prow)


def bench_batch(B, n, tau, rows):
    P = np.stack([random_game(n, seed) for seed in range(B)])
    batch, t_batch = timed(lambda: solve_equilibrium(P, None, tau))
    assert batch.converged.all()
    _, t_loop = timed(lambda: [solve_equilibrium(P[b], None, tau) for b in range(B)])
    row = {"section": "batch", "n": n, "tau": tau, "games": B, "method": "ours-batch",
           "median_s": t_batch, "min_s": t_batch, "max_s": t_batch,
           "worst_gap": float(batch.gap.max()), "loop_s": t_loop, "ratio_vs_ours": t_loop / t_batch}
    rows.append(row)
    print_row(row)


def bench_throughput(games, n, steps, rows, exact_steps=None):
    """Every algorithm's exact and sampled form on ``games`` games of ``n`` actions (one run
    each, recording at the start and the end). The exact forms run ``exact_steps`` steps when
    given (the goal's 10^4: measured, not extrapolated; extrapolating 200 steps multiplied the
    two recordings' one-off cost by 50), the sampled forms ``steps``, extrapolated to 10^4."""
    P = np.stack([random_game(n, seed) for seed in range(games)])
    scores = np.random.default_rng(0).normal(size=(games, n))  # rl's Bradley-Terry scores
    pi_star = solve_equilibrium(P, None, 0.1).pi  # batched; not part of the simulation time
    run(AlgorithmConfig("online_ipo", tau=0.1), P[:2], steps=2, pi_star=pi_star[:2])  # warm-up:
    # the first autograd call of a process costs seconds (measured ~8 s here), not per-step work
    for name in METHODS:
        for sampled in (False, True):
            cfg = AlgorithmConfig(name, tau=0.1, sampled=sampled, batch=16)
            k = exact_steps if exact_steps and not sampled else steps
            _, t = timed(lambda: run(cfg, P, steps=k, seed=0, record_every=k,
                                     pi_star=pi_star, scores=scores if name == "rl" else None))
            rate = k * games / t
            row = {"section": "throughput", "n": n, "tau": 0.1, "games": games,
                   "method": name, "variant": "sampled" if sampled else "exact",
                   "median_s": t, "min_s": t, "max_s": t, "steps": k,
                   "steps_games_per_s": rate, "extrapolated_1e4_steps_s": 1e4 * games / rate,
                   "measured_1e4": k == 10_000}
            rows.append(row)
            print_row(row)


def bench_small_tau(sizes, taus, games, rows):
    """Extreme tau: the solve path taken and the gap it certifies (RuntimeWarning counted)."""
    import warnings

    for n in sizes:
        Ps = [random_game(n, seed) for seed in range(games)]
        for tau in taus:
            times, gaps, methods, warned = [], [], set(), 0
            for P in Ps:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    eq, t = timed(lambda: solve_equilibrium(P, None, tau))
                warned += len(caught)
                times.append(t)
                gaps.append(float(duality_gap(P, None, tau, eq.pi)))
                methods.add(eq.method)
            row = {"section": "small tau", "n": n, "tau": tau, "games": games, "method": "ours",
                   "variant": "/".join(sorted(methods)), **summary(times), "worst_gap": max(gaps),
                   "warnings": warned}
            rows.append(row)
            print_row(row)


# --------------------------------------------------------------------------------------------
# Issue 22: the solver against the fixed point in five lines and against our own Newton.
# --------------------------------------------------------------------------------------------
GRID_FAMILIES = ("random", "skew", "majority", "bt", "cyclic")
GRID_SIZES = (200, 1000, 3000)  # --big adds 10^4
GRID_TAUS = (1.0, 0.1, 0.01, 1e-3)


def grid_game(family: str, n: int, seed: int = 0) -> np.ndarray:
    """The grid's games: ``random_game``; ``skew``: ``P = sigmoid(G - G^T)``, G iid N(0, 1);
    ``majority``: majority of 5 Bradley-Terry annotators; ``bt``: Bradley-Terry with N(0, 2^2)
    scores; ``cyclic``: ``cyclic(n)``."""
    if family == "random":
        return random_game(n, seed)
    if family == "skew":
        G = np.random.default_rng(seed).normal(size=(n, n))
        return expit(G - G.T)
    if family == "majority":
        return annotator_majority(n, 5, seed)
    if family == "bt":
        return bradley_terry_random(n, seed)[0]
    if family == "cyclic":
        return cyclic(n)
    raise ValueError(f"unknown grid family {family!r}")


def grid_reference(n: int, seed: int = 0) -> np.ndarray:
    """A non-uniform mu = softmax(N(0, 1/4)) (with uniform mu, cyclic games are trivial: pi* = mu)."""
    logits = np.random.default_rng(seed).normal(0.0, 0.5, size=n)
    return np.exp(logits - logsumexp(logits))


def fixed_point_five_lines(P, mu, tau, max_iter):
    """The fixed point in five lines: pi <- softmax(log mu + P pi / tau), stopped when log pi moves
    by at most max(1e-14, 4 eps / tau) (round-off: the solver's own stopping rule)."""
    log_mu, log_pi, tol = np.log(mu), np.log(mu), max(1e-14, 4 * np.finfo(float).eps / tau)
    for k in range(1, max_iter + 1):
        new = log_softmax(log_mu + P @ np.exp(log_pi) / tau)
        step, log_pi = np.abs(new - log_pi).max(), new
        if step <= tol:
            break
    return np.exp(log_pi), k


def bench_grid(sizes, taus, families, repeats, fp_max_iter, rows, slow_cell_s=5.0,
               fast_cell_s=0.05, fast_repeats=41):
    """Every (n, family, tau) cell: ours, our Newton (``fixed_point=False``) and the five-line
    fixed point, interleaved (the order rotates each repeat), medians of wall and of CPU time
    (one thread: the CPU time is the work, the wall time adds what the neighbours took); a
    stalled fixed point is not repeated, nor a cell whose first round took over ``slow_cell_s``;
    a cell whose first round took under ``fast_cell_s`` gets ``fast_repeats`` (its solves take
    0.1-1 ms, where a neighbour's burst moves a median of 5 by 10-20 %).
    ``ratio_to_best``: ours / the better of Newton and a fixed point that reached gap <= 1e-12."""
    for n in sizes:
        for family in families:
            P, mu = grid_game(family, n), grid_reference(n)
            for tau in taus:
                runners = {  # the solves on a validated P; "checked": the default call
                    "ours": lambda: solve_equilibrium(P, mu, tau, check_game=False),
                    "newton": lambda: solve_equilibrium(P, mu, tau, fixed_point=False,
                                                        check_game=False),
                    "fp": lambda: fixed_point_five_lines(P, mu, tau, fp_max_iter),
                    "checked": lambda: solve_equilibrium(P, mu, tau),
                }
                times = {k: [] for k in runners}
                cpu = {k: [] for k in runners}
                out = {}
                load = os.getloadavg()[0]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    rep, target = 0, repeats
                    while rep < target:
                        order = list(runners)[rep % 4:] + list(runners)[:rep % 4]
                        for name in order:
                            if rep and name == "fp" and out["fp"][1] >= fp_max_iter:
                                continue  # stalled: its time is not a contender
                            out[name], t, c = timed_cpu(runners[name])
                            times[name].append(t)
                            cpu[name].append(c)
                        first = sum(t[0] for t in times.values()) if rep == 0 else None
                        if first is not None and first > slow_cell_s:
                            break
                        if first is not None and first < fast_cell_s:
                            target = max(repeats, fast_repeats)
                        rep += 1
                ours, newton, (fp_pi, fp_iters) = out["ours"], out["newton"], out["fp"]
                if not np.array_equal(ours.log_pi, out["checked"].log_pi):
                    raise AssertionError("check_game changed the answer")  # it must not
                times.pop("checked")
                gaps = {k: float(duality_gap(P, mu, tau, pi)) for k, pi in
                        (("ours", ours.pi), ("newton", newton.pi), ("fp", fp_pi))}
                med = {k: statistics.median(v) for k, v in times.items()}
                med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
                fp_ok = gaps["fp"] <= 1e-12 and fp_iters < fp_max_iter
                best = min(med["newton"], med["fp"] if fp_ok else math.inf)
                best_cpu = min(med_cpu["newton"], med_cpu["fp"] if fp_ok else math.inf)
                row = {"section": "grid", "family": family, "n": n, "tau": tau, "games": 1,
                       "method": "ours", "variant": ours.method, "median_s": med["ours"],
                       "min_s": min(times["ours"]), "max_s": max(times["ours"]),
                       "worst_gap": gaps["ours"], "fixed_point_iterations":
                       ours.fixed_point_iterations, "iterations": ours.iterations,
                       "newton_s": med["newton"], "newton_gap": gaps["newton"],
                       "newton_method": newton.method, "fp_s": med["fp"], "fp_gap": gaps["fp"],
                       "fp_iters": fp_iters, "fp_converged": bool(fp_ok),
                       "ratio_to_best": med["ours"] / best, "cpu_s": med_cpu["ours"],
                       "newton_cpu_s": med_cpu["newton"], "fp_cpu_s": med_cpu["fp"],
                       "cpu_ratio_to_best": med_cpu["ours"] / best_cpu,
                       "checked_cpu_s": med_cpu["checked"],
                       "cpu_ratio_checked": med_cpu["checked"] / best_cpu,
                       "repeats": len(times["ours"]),
                       "load_1min": round(load, 2)}
                rows.append(row)
                print_row(row)


def bench_bulk(sizes, n, tau, loop_games, rows, alpha=0.5):
    """Per-prompt games (the enumerable task's shape): B games of n actions, one mu per game
    (softmax of N(0, 1) logits, seeded per game), P one intransitive blend ``(1 - alpha) BT +
    alpha cyclic`` shared by the games ((n, n) with (B, n) mu) and, for B <= 512, a (B, n, n)
    stack of per-game blends. Time of the solve, and the peak memory of a second, untimed one
    (tracemalloc: numpy's buffers, results included; the inputs are counted apart), beside a
    one-by-one loop over the first ``loop_games`` games (extrapolated to B, and said so)."""
    for B in sizes:
        logits = np.random.default_rng(B).normal(size=(B, n))
        mu = np.exp(logits - logsumexp(logits, axis=-1, keepdims=True))
        layouts = [("shared", intransitive_blend(n, alpha, 0))]
        if B <= 512:
            layouts.append(("stack", np.stack([intransitive_blend(n, alpha, b) for b in range(B)])))
        for layout, P in layouts:
            load = os.getloadavg()[0]
            batch, t = timed(lambda: solve_equilibrium(P, mu, tau))
            tracemalloc.start()  # a second, untimed solve: tracing slows numpy's allocations
            try:
                solve_equilibrium(P, mu, tau)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            k = min(loop_games, B)
            one = (lambda b: P) if P.ndim == 2 else (lambda b: P[b])
            _, t_loop = timed(lambda: [solve_equilibrium(one(b), mu[b], tau) for b in range(k)])
            methods = {m: batch.method.count(m) for m in sorted(set(batch.method))}
            row = {"section": "bulk", "n": n, "tau": tau, "games": B, "method": "ours-batch",
                   "variant": f"P {layout}", "median_s": t, "min_s": t, "max_s": t,
                   "worst_gap": float(batch.gap.max()), "converged": int(batch.converged.sum()),
                   "methods": methods, "peak_gib": peak / 2**30,
                   "inputs_gib": (P.nbytes + mu.nbytes) / 2**30, "loop_games": k,
                   "loop_s": t_loop * B / k, "loop_extrapolated": k < B,
                   "ratio_vs_ours": t_loop * B / k / t, "load_1min": round(load, 2)}
            rows.append(row)
            print_row(row)


def print_row(row):
    keys = ("section", "family", "n", "tau", "games", "method", "variant", "median_s", "min_s",
            "max_s", "worst_gap", "worst_expl", "ratio_vs_ours", "loop_s", "steps_games_per_s",
            "warnings", "fixed_point_iterations", "newton_s", "newton_method", "fp_s", "fp_gap",
            "fp_iters", "ratio_to_best", "peak_gib", "load_1min")
    print("  ".join(f"{k}={row[k]:.3g}" if isinstance(row.get(k), float) else f"{k}={row[k]}"
                    for k in keys if k in row), flush=True)


def goal_lines(rows):
    """Issue 12's goals, each judged from the rows (met / NOT met, with the measured numbers)."""
    def pick(section, **kw):
        return [r for r in rows if r["section"] == section and r["method"] in kw.get("methods", (
            r["method"],)) and all(r.get(k) == v for k, v in kw.items() if k != "methods")]

    def verdict(ok):
        return "met" if ok else "**NOT met**"

    out = []
    big = [r for r in pick("tau>0", methods=("ours",)) if r["n"] >= 10000]
    if big:
        worst_t = max(r["median_s"] for r in big)
        worst_g = max(r["worst_gap"] for r in big)
        mem = max(r["solve_peak_gib"] for r in big)
        taus = ", ".join(f"{r['tau']:g}" for r in big)
        out.append(f"- τ > 0, n = 10⁴, τ ∈ {{{taus}}}: slowest "
                   f"median {worst_t:.1f} s (< 60 s), worst gap {worst_g:.1e} (≤ 1e-12), memory "
                   f"of one solve {mem:.2f} GiB incl. P (≤ 4): "
                   f"{verdict(worst_t < 60 and worst_g <= 1e-12 and mem <= 4)}")
    mid = [r for r in pick("tau>0", methods=("ours",)) if r["n"] == 1000 and r["tau"] in (0.1, 1.0)]
    if mid:
        worst_t = max(r["median_s"] for r in mid)
        out.append(f"- τ > 0, n = 1000, τ ∈ {{0.1, 1}}: slowest median {worst_t:.3f} s (≤ 0.05 s): "
                   f"{verdict(worst_t <= 0.05)}")
    zero = pick("tau=0", methods=("ours",))
    z1000 = [r for r in zero if r["n"] == 1000]
    if z1000:
        r = z1000[0]
        out.append(f"- τ = 0, n = 1000: median {r['median_s']:.2f} s (≤ 2 s), worst exploitability "
                   f"{r['worst_expl']:.1e} (≤ 1e-12): "
                   f"{verdict(r['median_s'] <= 2 and r['worst_expl'] <= 1e-12)}")
    z2000 = [r for r in zero if r["n"] == 2000]
    if z2000:
        r = z2000[0]
        out.append(f"- τ = 0, n = 2000 finishes: {r['games']} games, median {r['median_s']:.1f} s, "
                   f"worst exploitability {r['worst_expl']:.1e}: met")
    for r in pick("batch"):
        out.append(f"- batch of {r['games']} games, n = {r['n']}: {r['ratio_vs_ours']:.1f}× faster "
                   f"than the loop (≥ 10×), worst gap {r['worst_gap']:.1e}: "
                   f"{verdict(r['ratio_vs_ours'] >= 10 and r['worst_gap'] <= 1e-12)}")
    exact = [r for r in pick("throughput") if r["variant"] == "exact"]
    if exact:
        slow = [r for r in exact if r["extrapolated_1e4_steps_s"] > 30]
        worst = max(exact, key=lambda r: r["extrapolated_1e4_steps_s"])
        names = ", ".join(f"{r['method']} {r['extrapolated_1e4_steps_s']:.0f} s" for r in slow)
        how = ("measured" if all(r.get("measured_1e4") for r in exact) else
               f"extrapolated from {worst['steps']} steps")
        out.append(f"- throughput, exact forms, {worst['games']} games × {worst['n']} actions × "
                   f"10⁴ "
                   f"steps ≤ 30 s ({how}): met for "
                   f"{len(exact) - len(slow)} of {len(exact)} algorithms"
                   + (f"; **NOT met** for {names}" if slow else ""))
    grid = pick("grid")
    if grid:
        worst = max(grid, key=lambda r: r["cpu_ratio_to_best"])
        above = [r for r in grid if r["cpu_ratio_to_best"] > 1.2]
        worst_g = max(r["worst_gap"] for r in grid)
        names = ", ".join(f"{r['family']} n={r['n']} τ={r['tau']:g} {r['cpu_ratio_to_best']:.2f}×"
                          for r in above)
        out.append(f"- issue 22 grid, {len(grid)} cells: ours (on a validated P, "
                   f"`check_game=False`) ≤ 1.2× the better of the fixed "
                   f"point and our Newton on {len(grid) - len(above)} of {len(grid)} (CPU time; "
                   f"worst {worst['cpu_ratio_to_best']:.2f}×, wall "
                   f"{max(r['ratio_to_best'] for r in grid):.2f}×), worst gap {worst_g:.1e}: "
                   f"{verdict(not above and worst_g <= 1e-12)}"
                   + (f"; above 1.2×: {names}" if above else ""))
        if all("cpu_ratio_checked" in r for r in grid):
            rest = [r for r in grid if r["cpu_ratio_checked"] > 1.2]
            out.append(f"- the default call, which also checks that P is a preference matrix "
                       f"(the five-line fixed point checks nothing): ≤ 1.2× on "
                       f"{len(grid) - len(rest)} of {len(grid)} cells (worst "
                       f"{max(r['cpu_ratio_checked'] for r in grid):.2f}×)")
    bulk = [r for r in pick("bulk") if r["variant"] == "P shared"]
    if bulk:
        r = max(bulk, key=lambda r: r["games"])
        out.append(f"- {r['games']} per-prompt games of n = {r['n']}, τ = {r['tau']:g}: "
                   f"{r['median_s']:.1f} s, solver peak {r['peak_gib']:.2f} GiB, worst gap "
                   f"{r['worst_gap']:.1e}, {r['converged']} of {r['games']} within 1e-12: "
                   f"{verdict(r['worst_gap'] <= 1e-12 and r['converged'] == r['games'])}")
    small = pick("small tau")
    if small:
        worst_g = max(r["worst_gap"] for r in small)
        warned = sum(r["warnings"] for r in small)
        taus = ", ".join(sorted({f"{r['tau']:g}" for r in small}))
        out.append(f"- extreme τ ({taus}; n ≤ "
                   f"{max(r['n'] for r in small)}): worst gap {worst_g:.1e}, {warned} warnings: "
                   f"{verdict(worst_g <= 1e-12)}")
    return out


def describe_machine(data) -> str:
    """One line from the results file's provenance (older files carry a sentence instead)."""
    m = data["machine"]
    if isinstance(m, str):
        return m
    load = data.get("load_average", {})
    before, after = load.get("before") or {}, load.get("after") or {}
    return (f"{m['cpu']['model']}, {m['cpu']['logical_cores']} logical cores, "
            f"OMP_NUM_THREADS={m['threads']['OMP_NUM_THREADS']}, torch kernels "
            f"{m['cpu']['capability']}; Python {m['versions'].get('python')}, numpy "
            f"{m['versions'].get('numpy')}, scipy {m['versions'].get('scipy')}; git "
            f"{(m['git'].get('commit') or '?')[:10]}{' (dirty)' if m['git'].get('dirty') else ''}"
            f"; load average (1/5/15 min) {before.get('1min')}/{before.get('5min')}/"
            f"{before.get('15min')} before, {after.get('1min')}/{after.get('5min')}/"
            f"{after.get('15min')} after")


def render_grid(rows):
    grid = [r for r in rows if r["section"] == "grid"]
    if not grid:
        return
    print("\nIssue 22 grid: CPU ms per solve (median of interleaved repeats, one thread), ours "
          "against our Newton (`fixed_point=False`) and the fixed point in five lines, all three "
          "on a validated P (`check_game=False`: the five-line fixed point checks nothing); "
          "ratio = ours / the better of the two (the fixed point counts only where it reached "
          "gap ≤ 1e-12); 'default call': `solve_equilibrium(P, mu, tau)`, which also checks "
          "that P is a preference matrix (P in [0, 1], P + Pᵀ = 1: a pass over P and a "
          "transposed one), and its ratio to the same best.\n")
    print("| family | n | τ | ours (method, fixed-point it.) | Newton | fixed point in five lines "
          "(it.) | ratio CPU (wall) | default call (ratio) | gap ours | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in grid:
        fp = (f"{r['fp_cpu_s'] * 1e3:.3g} ({r['fp_iters']})" if r["fp_converged"] else
              f"stalls (gap {r['fp_gap']:.1e} after {r['fp_iters']})")
        print(f"| {r['family']} | {r['n']} | {r['tau']:g} | {r['cpu_s'] * 1e3:.3g} "
              f"({r['variant']}, {r['fixed_point_iterations']}) | {r['newton_cpu_s'] * 1e3:.3g} | "
              f"{fp} | {r['cpu_ratio_to_best']:.2f} ({r['ratio_to_best']:.2f}) | "
              f"{r.get('checked_cpu_s', math.nan) * 1e3:.3g} "
              f"({r.get('cpu_ratio_checked', math.nan):.2f}) | {r['worst_gap']:.1e} | "
              f"{r['load_1min']} |")


def render_bulk(rows):
    bulk = [r for r in rows if r["section"] == "bulk"]
    if not bulk:
        return
    print("\nPer-prompt games (one μ per game, P an intransitive blend shared by the games or one "
          "per game), through the batched path:\n")
    print("| games | n | τ | P | seconds | solver peak GiB (inputs) | one-by-one loop s | ratio | "
          "worst gap | methods |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in bulk:
        loop = f"{r['loop_s']:.3g}" + (f" (from {r['loop_games']} games)"
                                      if r["loop_extrapolated"] else "")
        methods = ", ".join(f"{k} {v}" for k, v in r["methods"].items())
        print(f"| {r['games']} | {r['n']} | {r['tau']:g} | {r['variant']} | {r['median_s']:.3g} | "
              f"{r['peak_gib']:.3f} ({r['inputs_gib']:.3f}) | {loop} | "
              f"{r['ratio_vs_ours']:.1f}× | {r['worst_gap']:.1e} | {methods} |")


def render(path):
    """The README table (markdown) from the results file, and the log-log figure."""
    data = json.loads(Path(path).read_text())
    rows = data["rows"]
    print(f"Machine: {describe_machine(data)}; {data['date']}; command: `{data['command']}`.\n")
    print("| section | n | τ | games | method | median s (min–max) | worst gap / expl. | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["section"] in ("grid", "bulk"):
            continue
        cert = r.get("worst_gap", r.get("worst_expl"))
        cert_s = "" if cert is None else f"{cert:.1e}"
        ratio = r.get("ratio_vs_ours")
        extra = ""
        if r["section"] == "throughput":
            extra = (f" ({r['steps_games_per_s']:.3g} steps·games/s; 10⁴ steps: "
                     f"{r['extrapolated_1e4_steps_s']:.1f} s, measured)" if r.get("measured_1e4") else
                     f" ({r['steps_games_per_s']:.3g} steps·games/s; 10⁴ steps ≈ "
                     f"{r['extrapolated_1e4_steps_s']:.0f} s, extrapolated)")
        if "solve_peak_gib" in r:
            extra = f" (one solve: {r['solve_peak_gib']:.2f} GiB incl. P)"
        if r["section"] == "batch":
            extra = f" (loop {r['loop_s']:.2f} s)"
        if r["section"] == "small tau":
            extra = f" ({r['warnings']} warnings)"
        print(f"| {r['section']} | {r['n']} | {r['tau']:g} | {r['games']} | {r['method']} "
              f"{r.get('variant', '')} | {r['median_s']:.3g} ({r['min_s']:.3g}–{r['max_s']:.3g})"
              f"{extra} | {cert_s} | {'' if ratio is None else f'{ratio:.1f}×'} |")
    render_grid(rows)
    render_bulk(rows)
    print()
    for line in goal_lines(rows):
        print(line)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    series = {}
    for r in rows:
        if r["section"] in ("tau>0", "tau=0"):
            label = f"{r['method']} τ={r['tau']:g}"
            series.setdefault(label, []).append((r["n"], r["median_s"]))
    for label, pts in sorted(series.items()):
        pts.sort()
        ax.loglog([p[0] for p in pts], [p[1] for p in pts], "o-" if "ours" in label else "s--",
                  label=label)
    ax.set_xlabel("n (actions)")
    ax.set_ylabel("median seconds per game")
    ax.set_title("Equilibrium solve time (1 thread)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    png = Path(path).with_suffix(".png")
    fig.savefig(png, dpi=120)
    print(f"\nfigure: {png}")


README_START = "<!-- TABLE: rendered by `python benchmarks/tabular_scale.py --render`"
README_END = "![median solve time"


def check_readme_block(readme: Path):
    """The README has exactly one rendered block of this benchmark, ended by the figure line."""
    if not readme.is_file():
        raise UsageError(f"--readme: no file {readme}")
    lines = readme.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(README_START)]
    if len(starts) != 1:
        raise UsageError(f"--readme: {readme} has {len(starts)} blocks starting "
                         f"{README_START!r}, expected 1")
    if not any(line.startswith(README_END) for line in lines[starts[0]:]):
        raise UsageError(f"--readme: no line starting {README_END!r} after the block in {readme}")
    return lines, starts[0]


def replace_readme_block(readme: Path, rendered: str):
    """The lines between the block's marker and its figure line become ``rendered`` (less the
    ``figure:`` line), the rest of the README untouched."""
    lines, start = check_readme_block(readme)
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(README_END))
    body = "\n".join(line for line in rendered.splitlines()
                     if not line.startswith("figure: ")).strip().splitlines()
    text = "\n".join(lines[:start + 1] + body + [""] + lines[end:]) + "\n"
    tmp = readme.with_name(readme.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, readme)


SECTIONS = ("regularised", "zero_sum", "small_tau", "batch", "grid", "bulk", "throughput")


def section_list(text):
    names = [s for s in text.split(",") if s]
    bad = [s for s in names if s not in SECTIONS]
    if bad or not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected distinct sections from {', '.join(SECTIONS)}, "
                                         f"got {text!r}")
    return names


def build_parser():
    parser = Parser(prog="tabular_scale.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run; "
                        "never written to the committed file)")
    parser.add_argument("--big", action="store_true",
                        help="add n = 10000 (800 MB per game): tau>0 at 0.1, 0.01 and the grid "
                             "(without majority-of-5)")
    parser.add_argument("--only", type=section_list, default=None, metavar="SECTIONS",
                        help=f"comma-separated subset of {', '.join(SECTIONS)} (never written to "
                             f"the committed file)")
    parser.add_argument("--games", type=positive_int, default=5, help="random games per (n, tau)")
    parser.add_argument("--repeats", type=positive_int, default=5,
                        help="grid: interleaved repeats per cell (median)")
    parser.add_argument("--steps", type=positive_int, default=200, help="throughput: steps measured")
    parser.add_argument("--bulk-max", type=positive_int, default=10000,
                        help="bulk: the largest number of per-prompt games")
    parser.add_argument("--no-peers", action="store_true",
                        help="skip cvxpy + Clarabel and nashpy (the 'bench' extra)")
    parser.add_argument("--write", action="store_true",
                        help=f"write the committed {RESULTS.relative_to(RESULTS.parents[2])} "
                             f"(a full run only)")
    parser.add_argument("--out", default=None, help="write the results to this file instead")
    parser.add_argument("--render", action="store_true",
                        help="only render the table and figure from --out (default: the committed "
                             "file)")
    parser.add_argument("--readme", default=None, metavar="PATH",
                        help="with --render: also replace the rendered block of this README (from "
                             "its '<!-- TABLE: rendered by' line to the figure line)")
    return parser


def run_benchmark(args) -> int:
    if args.render:
        path = Path(args.out) if args.out else RESULTS
        if not path.is_file():
            raise UsageError(f"--render: no results file {path}")
        readme = Path(args.readme) if args.readme else None
        if readme is not None:
            check_readme_block(readme)
        buffer = io.StringIO()
        try:
            with contextlib.redirect_stdout(buffer):
                render(path)
        except (ValueError, KeyError, TypeError) as e:  # not JSON, or not this benchmark's rows
            raise UsageError(f"--render: {path} is not a tabular_scale results file ({e})") from None
        print(buffer.getvalue(), end="")
        if readme is not None:
            replace_readme_block(readme, buffer.getvalue())
            print(f"replaced the rendered block of {readme}")
        return 0
    if args.readme:
        raise UsageError("--readme goes with --render")
    if args.write and (args.quick or args.only):
        raise UsageError("--write writes the committed file from a full run only: drop --quick "
                         "and --only (or give --out PATH)")
    if args.write and args.out:
        raise UsageError("give --write (the committed file) or --out PATH, not both")
    sections = args.only or list(SECTIONS)
    peers = not args.no_peers and any(s in sections for s in ("regularised", "zero_sum"))
    if peers:
        missing = [m for m in ("cvxpy", "clarabel", "nashpy") if importlib.util.find_spec(m) is None]
        if missing:
            raise UsageError(f"the peers need {', '.join(missing)}: pip install '.[bench]' -c "
                             f"constraints-cpu.txt, or pass --no-peers")
    peer_n = 0 if args.no_peers else (100 if args.quick else 300)
    rows = []
    with load_window() as window:
        if args.quick:
            plan = {
                "regularised": lambda: bench_regularised([30, 100], [1.0, 0.1], 2, peer_n, rows),
                "zero_sum": lambda: bench_zero_sum([30, 100], 2, peer_n, rows),
                "small_tau": lambda: bench_small_tau([30], [1e-5, 1e-300], 2, rows),
                "batch": lambda: bench_batch(200, 10, 0.1, rows),
                "grid": lambda: bench_grid([100], [1.0, 0.01], GRID_FAMILIES, 1, 200, rows),
                "bulk": lambda: bench_bulk([64], 100, 0.1, 16, rows),
                "throughput": lambda: bench_throughput(100, 10, 20, rows),
            }
        else:
            def regularised():
                bench_regularised([100, 300, 1000, 3000], [1.0, 0.1, 0.01], args.games, peer_n,
                                  rows)
                if args.big:
                    bench_regularised([10000], [0.1, 0.01], 2, 0, rows)

            def zero_sum():
                bench_zero_sum([100, 300, 1000], args.games, peer_n, rows)
                bench_zero_sum([2000], 2, 0, rows)

            def grid():
                bench_grid(GRID_SIZES, GRID_TAUS, GRID_FAMILIES, args.repeats, 1000, rows)
                if args.big:  # majority-of-5 at n = 10^4 needs ~10 GB to build: left out
                    bench_grid([10000], GRID_TAUS, [f for f in GRID_FAMILIES if f != "majority"],
                               1, 100, rows)

            bulk_sizes = sorted({b for b in (256, 1024, args.bulk_max) if b <= args.bulk_max})
            plan = {
                "regularised": regularised,
                "zero_sum": zero_sum,
                "small_tau": lambda: bench_small_tau([300, 1000], [1e-4, 1e-7, 1e-300], 2, rows),
                "batch": lambda: bench_batch(10000, 10, 0.1, rows),
                "grid": grid,
                "bulk": lambda: bench_bulk(bulk_sizes, 585, 0.1, 256, rows),
                "throughput": lambda: bench_throughput(1000, 10, args.steps, rows, exact_steps=10_000),
            }
        # throughput first: after the n = 10^4 sections' allocations the same torch runs took 20 %
        # longer in this process (online and offline DPO's exact forms: 30 s against 25 s for 10^4
        # steps in a fresh process, measured 2026-12-06), a cost of the heap, not of the method
        for name in sorted(sections, key=lambda s: s != "throughput"):
            plan[name]()
    machine = measured_provenance(torch_info=None)
    data = {"rows": rows, "date": machine["date_utc"], "machine": machine,
            "load_average": window.as_dict(), "command": " ".join(["python"] + sys.argv),
            "sections": sections}
    out = RESULTS if args.write else (Path(args.out) if args.out else None)
    if out is None:
        print("not written (give --write for the committed file, or --out PATH)")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, data)
    print(f"wrote {out}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    return run_command("tabular_scale.py", lambda: run_benchmark(args))


if __name__ == "__main__":
    sys.exit(main())
