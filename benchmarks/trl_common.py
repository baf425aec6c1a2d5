"""Helpers shared by the benchmarks in this folder (not part of the package).

- :func:`benchmark_parser` / :func:`destination` / :func:`render_or_check`: the flags every
  benchmark shares and what they mean. A results file is written only when asked: ``--write``
  replaces the committed file under ``benchmarks/measured/`` (refused for a ``--quick``/``--smoke``
  run or with a peer missing: never a partial committed table), ``--out PATH`` writes elsewhere
  (the CI smoke test writes to a temporary folder); with neither the tables are printed and
  nothing is written. ``--render`` prints the README tables from ``--out`` (default: the committed
  file); a missing or unreadable file is one line on stderr and exit 2. Bad values are the project
  parser's one line and exit 2 (:class:`opo_toolkit.cliargs.Parser`).
- :func:`interleaved` and :func:`ratio_stats`: timed repeats that alternate the contenders, so a
  change in the shared machine's load hits both, and the median and spread of the per-repeat ratio.
- :func:`measure_provenance`: :func:`opo_toolkit.provenance.measured_provenance`, the load average
  before and after the measurement and a ``load_warning`` when it exceeded what the benchmark needs;
  :func:`provenance_line` renders them.
- :func:`peer`: import an optional peer (TRL, cvxpy, nashpy) or print one line saying its column
  is skipped.
- :func:`tiny_models`: the project's GPT-2 (``llm.models.new_causal_lm``), policy and reference from
  different seeds, the token embedding scaled so the next-token distributions are far from uniform.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

from opo_toolkit.cliargs import Parser, UsageError, one_line
from opo_toolkit.files import atomic_write_json, check_output_dir
from opo_toolkit.provenance import load_too_high, load_warning, load_window, measured_provenance

__all__ = ["tiny_models", "interleaved", "ratio_stats", "benchmark_parser", "positive_int",
           "destination", "render_or_check", "write_and_render", "measure_provenance", "provenance_line",
           "peer", "UsageError"]


def positive_int(text: str) -> int:
    """argparse ``type``: an integer >= 1 (the parser turns the error into its one line, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def tiny_models(vocab_size: int, n_layer: int = 2, n_embd: int = 64, n_head: int = 4, n_positions: int = 512,
                pad_id: int = 0, sharpen: float = 8.0, seed: int = 0):
    """Policy and reference: two GPT-2s from ``llm.models.new_causal_lm`` (seeds ``seed``, ``seed + 1``),
    eval mode, embeddings multiplied by ``sharpen`` (the tied output layer too: peaked logits)."""
    import torch

    from llm.models import new_causal_lm

    out = []
    for s in (seed, seed + 1):
        torch.manual_seed(s)
        m = new_causal_lm(vocab_size, n_layer, n_embd, n_head, n_positions, pad_id).eval()
        with torch.no_grad():
            m.transformer.wte.weight.mul_(sharpen)
        out.append(m)
    return out[0], out[1]


def interleaved(fns: dict, repeats: int, warmup: int = 1) -> dict:
    """Time every ``fns[name]()`` ``repeats`` times, alternating the contenders within each repeat
    (and reversing their order every other repeat, so none always runs right after another), after
    ``warmup`` untimed calls each. Returns, per name, wall-clock seconds (median, min, max, every
    repeat) and CPU seconds of this process (``time.process_time``: on shared cores the wall clock
    also counts waiting for a core, the CPU time does not)."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {n: {"median_s": statistics.median(wall[n]), "min_s": min(wall[n]), "max_s": max(wall[n]),
                "cpu_median_s": statistics.median(cpu[n]), "repeats": repeats, "all_s": wall[n],
                "all_cpu_s": cpu[n]} for n in names}


def ratio_stats(numerator: dict, denominator: dict, key: str = "all_s") -> dict:
    """The per-repeat ratio ``numerator[key][i] / denominator[key][i]`` of two :func:`interleaved`
    cells (repeat i of both ran back to back): median, min, max and every value."""
    ratios = [a / b for a, b in zip(numerator[key], denominator[key])]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "all": ratios}


def benchmark_parser(doc: str, results: Path, smoke: str | None = None, seed: bool = True) -> Parser:
    """The project's parser (one-line usage errors, exit 2) with the flags every benchmark shares:
    ``--write`` / ``--out`` (where results go, see the module docstring), ``--render``, ``--seed``
    (unless ``seed=False``: a benchmark with fixed seeds) and ``--smoke`` (a tiny run for CI,
    described by ``smoke``) when given."""
    ap = Parser(description=doc.splitlines()[0])
    if seed:
        ap.add_argument("--seed", type=int, default=0, help="seed of the models and random streams")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--write", action="store_true",
                       help=f"replace the committed results file {results.relative_to(results.parents[2])}")
    where.add_argument("--out", type=Path, default=None,
                       help="write the results JSON here instead (with --render: read it)")
    ap.add_argument("--render", action="store_true",
                    help="print the markdown table(s) from --out (default: the committed file) and exit")
    if smoke:
        ap.add_argument("--smoke", action="store_true", help=smoke)
    ap.set_defaults(results=results)
    return ap


def destination(args) -> Path | None:
    """Where the results go: ``--out``, the committed file with ``--write``, else None (print only)."""
    return args.out if args.out is not None else (args.results if args.write else None)


def render_or_check(args, render, partial: list[str] = ()) -> int | None:
    """``--render``: print ``render(path)`` and return the exit code (2 and one line if the file is
    missing or not a results file of this benchmark). Otherwise refuse, before minutes of measuring,
    a ``--write`` of a partial table (``--quick``, ``--smoke``, or the peers named in ``partial``
    missing) and an output folder that cannot be written; return None to go on."""
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "benchmark"
    if args.render:
        path = args.out if args.out is not None else args.results
        if not path.is_file():
            print(f"{prog}: error: no results file {path}; run with --write or --out first", file=sys.stderr)
            return 2
        try:
            text = render(path)
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError, ValueError,
                AttributeError) as e:
            print(f"{prog}: error: {path} is not a results file of this benchmark "
                  f"({type(e).__name__}: {one_line(e)[:120]})", file=sys.stderr)
            return 2
        print(text)
        return 0
    if args.write:
        small = [f for f in ("quick", "smoke") if getattr(args, f, False)]
        if small:
            print(f"{prog}: error: --write replaces the committed table; a --{small[0]} run is not that "
                  "table (use --out PATH)", file=sys.stderr)
            return 2
        if partial:
            print(f"{prog}: error: --write would commit a table without {', '.join(partial)} "
                  "(not installed); install it, or use --out PATH", file=sys.stderr)
            return 2
    out = destination(args)
    if out is not None:
        try:
            if out.is_dir():
                raise ValueError(f"--out {out} is a folder; name the results file")
            check_output_dir(out.parent)
        except ValueError as e:
            print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
            return 2
    return None


def peer(module: str, column: str, install: str):
    """``importlib.import_module(module)``, or None after printing one line: the column is skipped."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        print(f"{column}: skipped ({module} not importable: {one_line(e)[:100]}; {install})", flush=True)
        return None


@contextlib.contextmanager
def measure_provenance(data: dict, threads: int = 1, extra_packages=(), timing: bool = True):
    """``with measure_provenance(data, threads): measure()`` fills ``data["provenance"]`` (measured at
    the start), ``data["load_average"]`` (before / after, 1/5/15 min) and ``data["load_warning"]``:
    a line when the others' load left fewer than ``threads`` free cores (before: the 1-minute load
    above ``cores - threads``; after: the same once the benchmark's own ``threads`` are taken off),
    else None (always None for a benchmark that times nothing, ``timing=False``). The result is still
    written: the flag says the ratio is not a quiet machine's."""
    data["provenance"] = measured_provenance(extra_packages=extra_packages)
    cores = os.cpu_count() or 1
    with load_window() as window:
        yield window
    data["load_average"] = window.as_dict()
    threshold = max(cores - threads, 0)
    data["load_warning"] = (load_warning(threshold, window, own_threads=threads)
                            if timing and load_too_high(threshold, window, own_threads=threads) else None)


def provenance_line(d: dict) -> str:
    """One markdown line: date, CPU, kernels, threads, versions, commit, load before/after, warning."""
    p, load = d["provenance"], d["load_average"]
    v = p["versions"]
    git = p["git"]
    commit = (f"{git['commit'][:10]}{' + local changes' if git['dirty'] else ''}" if git["commit"]
              else "no git")
    text = (f"Measured {p['date_utc'].replace('T', ' ').replace('+00:00', ' UTC')} on {p['cpu']['model']} "
            f"({p['cpu']['logical_cores']} logical cores, torch CPU capability {p['cpu']['capability']}"
            + "".join(f", {k}={val}" for k, val in p["cpu"]["float_path_env"].items())
            + f"), {p['threads']['torch']} torch thread(s); Python {v['python']}, torch {v['torch']}, "
            f"transformers {v['transformers']}"
            + "".join(f", {k} {v[k] or 'absent'}" for k in ("trl",) if k in v)
            + f"; commit {commit}. Load average (1 min) {load['before']['1min']} before, "
            f"{load['after']['1min']} after.")
    if d.get("load_warning"):
        text += f" **Load warning:** {d['load_warning']}."
    return text


def write_and_render(path: Path | None, data: dict, render) -> int:
    """Write the results JSON atomically (if ``path``), print its rendered tables; exit code 0."""
    import tempfile

    if path is None:
        with tempfile.TemporaryDirectory() as tmp:
            scratch = Path(tmp) / "results.json"
            atomic_write_json(scratch, data)
            print(render(scratch))
        print("not written (--write replaces the committed file, --out PATH writes elsewhere)")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, data)
    print(render(path))
    print(f"wrote {path}")
    return 0
