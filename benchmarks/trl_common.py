"""Helpers shared by the TRL comparison and the sampler-speed benchmarks (not part of the package).

- :func:`tiny_models`: the project's GPT-2 (``llm.models.new_causal_lm``), policy and reference from
  different seeds, the token embedding scaled so the next-token distributions are far from uniform
  (a fresh GPT-2 is near-uniform, which would hide any sampling error);
- :func:`timed`: median and spread of repeated wall-clock measurements;
- :func:`machine`: what the numbers were measured on.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from llm.models import new_causal_lm
from tabular.files import atomic_write_json, check_output_dir, package_versions

__all__ = ["tiny_models", "timed", "machine", "versions", "benchmark_parser", "render_or_check",
           "write_and_render"]


def tiny_models(vocab_size: int, n_layer: int = 2, n_embd: int = 64, n_head: int = 4, n_positions: int = 512,
                pad_id: int = 0, sharpen: float = 8.0, seed: int = 0):
    """Policy and reference: two GPT-2s from ``llm.models.new_causal_lm`` (seeds ``seed``, ``seed + 1``),
    eval mode, embeddings multiplied by ``sharpen`` (the tied output layer too: peaked logits)."""
    out = []
    for s in (seed, seed + 1):
        torch.manual_seed(s)
        m = new_causal_lm(vocab_size, n_layer, n_embd, n_head, n_positions, pad_id).eval()
        with torch.no_grad():
            m.transformer.wte.weight.mul_(sharpen)
        out.append(m)
    return out[0], out[1]


def timed(fn, repeats: int, warmup: int = 1) -> dict:
    """Run ``fn()`` ``warmup`` + ``repeats`` times; wall-clock seconds of the timed runs (median, min,
    max) and the median CPU seconds of this process (``time.process_time``: on shared cores the wall
    clock also counts waiting for a core, the CPU time does not)."""
    for _ in range(warmup):
        fn()
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "cpu_median_s": statistics.median(cpu), "repeats": repeats}


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), "
            f"torch threads {torch.get_num_threads()}, {platform.system()} {platform.release()}")


def versions(extra=()) -> dict:
    return {**package_versions(("numpy", "torch", "transformers", *extra)),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes")}


def benchmark_parser(doc: str, results: Path) -> argparse.ArgumentParser:
    """The options every benchmark here shares: ``--seed``, ``--out`` (its JSON), ``--render``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=results, help="the results JSON")
    ap.add_argument("--render", action="store_true", help="print the markdown table(s) from --out and exit")
    return ap


def render_or_check(args, render) -> int | None:
    """``--render``: print ``render(args.out)`` and return the exit code. Otherwise check, before
    minutes of measuring, that the results file's folder is writable: an exit code (2, one line on
    stderr) if not, None to go on."""
    if args.render:
        if not args.out.is_file():
            print(f"error: no results file {args.out}; run without --render first", file=sys.stderr)
            return 2
        print(render(args.out))
        return 0
    try:
        check_output_dir(args.out.parent)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return None


def write_and_render(path: Path, data: dict, render) -> int:
    """Write the results JSON atomically, print its rendered tables; exit code 0."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, data)
    print(render(path))
    print(f"wrote {path}")
    return 0
