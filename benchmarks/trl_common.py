"""Helpers shared by the TRL comparison and the sampler-speed benchmarks (not part of the package).

- :func:`tiny_models`: the project's GPT-2 (``llm.models.new_causal_lm``), policy and reference from
  different seeds, the token embedding scaled so the next-token distributions are far from uniform
  (a fresh GPT-2 is near-uniform, which would hide any sampling error);
- :func:`timed`: median and spread of repeated wall-clock measurements;
- :func:`machine`: what the numbers were measured on.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time

import torch

from llm.models import new_causal_lm
from tabular.files import package_versions

__all__ = ["tiny_models", "timed", "machine", "versions"]


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
