"""Tabular solver at scale, side by side with the peers, in one process on the same games.

Run: ``OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/tabular_scale.py [--quick] [--big]``
(peers: ``pip install '.[bench]' -c constraints-cpu.txt``: cvxpy + Clarabel, nashpy).

Sections (games: ``random_game(n, seed)`` for seeds 0..games-1, mu uniform):
- ``tau>0``: ours (``solve_equilibrium``) against cvxpy + Clarabel on the exponential-cone program
  ``max_pi min ...`` written as the regularised best-response dual (the peer), gap of each answer
  by the same ``duality_gap``.
- ``tau=0``: ours (``solve_equilibrium(P, None, 0)``) against nashpy ``Game.linear_program``;
  exploitability ``max (P pi) - 1/2`` of each.
- ``small tau``: tau = 1e-4, 1e-7, 1e-300 (n = 300, 1000; 2 games): path taken, gap, warnings.
- ``batch``: ``solve_equilibrium`` on a stack (B, 10, 10) against the Python loop over the games.
- ``throughput``: ``tabular.run`` exact and sampled forms, 1000 games x 10 actions, steps*games/s
  (measured over ``--steps`` steps; the 10^4-step time is that rate extrapolated, and says so).

Writes ``benchmarks/measured/tabular_scale.json`` (rows + machine + date) atomically; ``--render``
prints the README table from that file and draws ``benchmarks/measured/tabular_scale.png``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from tabular import METHODS, AlgorithmConfig, duality_gap, exploitability, run, solve_equilibrium
from tabular.files import atomic_write_json
from tabular.game import random_game

RESULTS = Path(__file__).resolve().parent / "measured" / "tabular_scale.json"  # committed


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


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


def bench_throughput(games, n, steps, rows):
    P = np.stack([random_game(n, seed) for seed in range(games)])
    scores = np.random.default_rng(0).normal(size=(games, n))  # rl's Bradley-Terry scores
    pi_star = solve_equilibrium(P, None, 0.1).pi  # batched; not part of the simulation time
    run(AlgorithmConfig("online_ipo", tau=0.1), P[:2], steps=2, pi_star=pi_star[:2])  # warm-up:
    # the first autograd call of a process costs seconds (measured ~8 s here), not per-step work
    for name in METHODS:
        for sampled in (False, True):
            cfg = AlgorithmConfig(name, tau=0.1, sampled=sampled, batch=16)
            _, t = timed(lambda: run(cfg, P, steps=steps, seed=0, record_every=steps,
                                     pi_star=pi_star, scores=scores if name == "rl" else None))
            rate = steps * games / t
            row = {"section": "throughput", "n": n, "tau": 0.1, "games": games,
                   "method": name, "variant": "sampled" if sampled else "exact",
                   "median_s": t, "min_s": t, "max_s": t, "steps": steps,
                   "steps_games_per_s": rate, "extrapolated_1e4_steps_s": 1e4 * games / rate}
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


def print_row(row):
    keys = ("section", "n", "tau", "games", "method", "variant", "median_s", "min_s", "max_s",
            "worst_gap", "worst_expl", "ratio_vs_ours", "loop_s", "steps_games_per_s", "warnings")
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
        out.append(f"- throughput, exact forms, {worst['games']} games × {worst['n']} actions × "
                   f"10⁴ "
                   f"steps ≤ 30 s (extrapolated from {worst['steps']} steps): met for "
                   f"{len(exact) - len(slow)} of {len(exact)} algorithms"
                   + (f"; **NOT met** for {names}" if slow else ""))
    small = pick("small tau")
    if small:
        worst_g = max(r["worst_gap"] for r in small)
        warned = sum(r["warnings"] for r in small)
        taus = ", ".join(sorted({f"{r['tau']:g}" for r in small}))
        out.append(f"- extreme τ ({taus}; n ≤ "
                   f"{max(r['n'] for r in small)}): worst gap {worst_g:.1e}, {warned} warnings: "
                   f"{verdict(worst_g <= 1e-12)}")
    return out


def render(path):
    """The README table (markdown) from the results file, and the log-log figure."""
    data = json.loads(Path(path).read_text())
    rows = data["rows"]
    print(f"Machine: {data['machine']}; {data['date']}; command: `{data['command']}`.\n")
    print("| section | n | τ | games | method | median s (min–max) | worst gap / expl. | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        cert = r.get("worst_gap", r.get("worst_expl"))
        cert_s = "" if cert is None else f"{cert:.1e}"
        ratio = r.get("ratio_vs_ours")
        extra = ""
        if r["section"] == "throughput":
            extra = f" ({r['steps_games_per_s']:.3g} steps·games/s; 10⁴ steps ≈ " \
                    f"{r['extrapolated_1e4_steps_s']:.0f} s, extrapolated)"
        if "solve_peak_gib" in r:
            extra = f" (one solve: {r['solve_peak_gib']:.2f} GiB incl. P)"
        if r["section"] == "batch":
            extra = f" (loop {r['loop_s']:.2f} s)"
        if r["section"] == "small tau":
            extra = f" ({r['warnings']} warnings)"
        print(f"| {r['section']} | {r['n']} | {r['tau']:g} | {r['games']} | {r['method']} "
              f"{r.get('variant', '')} | {r['median_s']:.3g} ({r['min_s']:.3g}–{r['max_s']:.3g})"
              f"{extra} | {cert_s} | {'' if ratio is None else f'{ratio:.1f}×'} |")
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
    ax.set_title("Equilibrium solve time (1 thread, shared 2-core machine)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    png = Path(path).with_suffix(".png")
    fig.savefig(png, dpi=120)
    print(f"\nfigure: {png}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    parser.add_argument("--big", action="store_true", help="add n = 10000 (800 MB per game)")
    parser.add_argument("--games", type=int, default=5, help="random games per (n, tau)")
    parser.add_argument("--steps", type=int, default=200, help="throughput: steps measured")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--render", action="store_true", help="only render --out's table/figure")
    args = parser.parse_args()
    if args.render:
        render(args.out)
        return
    rows = []
    if args.quick:
        bench_regularised([30, 100], [1.0, 0.1], 2, 100, rows)
        bench_zero_sum([30, 100], 2, 100, rows)
        bench_small_tau([30], [1e-5, 1e-300], 2, rows)
        bench_batch(200, 10, 0.1, rows)
        bench_throughput(100, 10, 20, rows)
    else:
        bench_regularised([100, 300, 1000, 3000], [1.0, 0.1, 0.01], args.games, 300, rows)
        if args.big:
            bench_regularised([10000], [0.1, 0.01], 2, 0, rows)
        bench_zero_sum([100, 300, 1000], args.games, 300, rows)
        bench_zero_sum([2000], 2, 0, rows)
        bench_small_tau([300, 1000], [1e-4, 1e-7, 1e-300], 2, rows)
        bench_batch(10000, 10, 0.1, rows)
        bench_throughput(1000, 10, args.steps, rows)
    data = {"rows": rows, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="minutes"), "machine": f"{platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}, 1 thread, 2 cores shared "
        f"with 3 other jobs", "command": " ".join(["python"] + sys.argv)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, data)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
