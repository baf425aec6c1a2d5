"""GPU check of ``--preset gpu``: sampling speed, step time per method, MFU, peak memory, win rate.

Run through ``benchmarks/gpu_check.sh`` (it sets the time limit). One process, installs nothing;
needs only torch and transformers (the GPU machine's torch 2.11 / transformers 5.17 included).
Steps, top to bottom:
  1. SFT of the preset's GPT-2 (12 layers, d = 768) on the text task (``run_sft``, bf16 autocast);
  2. sampling throughput of :func:`llm.sampling.sample` (KV-cached): the policy alone (beta = 0) and
     the per-token geometric mixture with the reference (beta = 0.125, two models);
  3. the training step's model-FLOPs utilisation: the policy's forward + backward + AdamW on a
     sampled batch, timed alone, ``MFU = flops / (seconds * peak)`` with
     ``flops = (6 N + 12 L d S) * tokens`` (PaLM, arXiv:2204.02311 app. B: N = matmul parameters
     = all but the position table (the tied token embedding counts once, as the output head),
     L layers, width d, S the padded sequence length); and the MFU of a whole online-IPO step
     (sampling + reference + policy update) from the measured step time;
  4. step time and peak memory of every method (``run_align``, gold judge, ``log_every = 1``; the
     median step after the first, which pays for warm-up);
  5. the gold win rate against the SFT model after a short online-IPO run.
Writes ``OUT/gpu_check.json`` (atomically, after every phase: a run cut short keeps what it measured).

Environment: ``GPU_CHECK_DEVICE`` (cuda), ``GPU_CHECK_TINY=1`` (a 1-layer d = 32 model, tiny
batches, a few steps: proves the script on a CPU; its numbers are not GPU numbers),
``GPU_CHECK_OUT`` (runs/gpu_check), ``GPU_CHECK_PEAK_TFLOPS`` (overrides the peak table).
Flags: ``--smoke`` (CPU, a 1-layer d = 16 model, 1-2 steps per phase, online IPO and Nash-MD-PG
only: the CI smoke test, seconds),
``--out`` (overrides ``GPU_CHECK_OUT``). The report holds the measured provenance
(:func:`opo_toolkit.provenance.measured_provenance`) and the load average before and after.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time

import torch

from llm.align import run_align
from llm.config import AlignConfig, PipelineConfig, SFTConfig
from llm.models import load_causal_lm
from llm.runtime import autocast, resolve_device
from llm.sampling import sample, token_logprobs
from llm.tasks import make_task
from llm.train import run_sft
from opo_toolkit.cliargs import Parser
from opo_toolkit.files import atomic_write_json
from opo_toolkit.provenance import LoadWindow, load_average, measured_provenance

# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, in FLOP/s. H200 is the
# H100 SXM chip with more memory: same 989 TFLOPS. Matched in this order against the device name.
BF16_PEAK = [
    ("H200", 989.4e12),
    ("H100 PCIe", 756.0e12),
    ("H100 NVL", 835.0e12),
    ("H100", 989.4e12),
    ("A100", 312.0e12),
]
METHODS = ["online_ipo", "ipo_md", "online_dpo", "online_slic", "nash_md_pg", "rl"]


def bf16_peak(device: torch.device) -> tuple[float | None, str]:
    """(peak FLOP/s or None, where it came from)."""
    if os.environ.get("GPU_CHECK_PEAK_TFLOPS"):
        return float(os.environ["GPU_CHECK_PEAK_TFLOPS"]) * 1e12, "GPU_CHECK_PEAK_TFLOPS"
    if device.type != "cuda":
        return None, "no bf16 peak for a CPU: MFU not computed"
    name = torch.cuda.get_device_name(device)
    for key, peak in BF16_PEAK:
        if key in name:
            return peak, f"{key} dense bf16 data-sheet peak"
    return None, f"unknown GPU {name!r}: set GPU_CHECK_PEAK_TFLOPS"


def matmul_params(model) -> int:
    """N of ``6 N``: every parameter but the position table (GPT-2's token embedding is tied to the
    output head, so it counts once, as the head's matmul)."""
    wpe = model.transformer.wpe.weight.numel() if hasattr(model, "transformer") else 0
    return sum(p.numel() for p in model.parameters()) - wpe


def train_flops(n_params: int, n_layer: int, d: int, seq: int, sequences: int) -> float:
    """Forward + backward FLOPs of ``sequences`` padded sequences of ``seq`` tokens:
    ``(6 N + 12 L d S) * tokens`` (PaLM app. B; the attention term counts the full S x S scores)."""
    return (6 * n_params + 12 * n_layer * d * seq) * seq * sequences


def forward_flops(n_params: int, n_layer: int, d: int, seq: int, sequences: int) -> float:
    """One third of :func:`train_flops`: a forward pass."""
    return train_flops(n_params, n_layer, d, seq, sequences) / 3


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn, device, repeat: int) -> float:
    """Mean wall time of ``fn`` over ``repeat`` calls after one warm-up call (kernel choice, allocator)."""
    fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / repeat


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def settings(tiny: bool, smoke: bool = False) -> dict:
    """Stage sizes: the preset's on a GPU; with ``tiny``, values a CPU runs in minutes, with
    ``smoke`` in seconds (each differs from the field's default, so the preset does not fill it
    back in)."""
    if smoke:
        return {
            "shape": dict(n_layer=1, n_embd=16, n_head=2),
            "sft_steps": 2,
            "sft_batch": 4,
            "align_batch": 2,
            "method_steps": 2,
            "winrate_steps": 1,
            "eval_prompts": 2,
            "repeat": 1,
        }
    if tiny:
        return {
            "shape": dict(n_layer=1, n_embd=32, n_head=2),
            "sft_steps": 30,
            "sft_batch": 16,
            "align_batch": 4,
            "method_steps": 3,
            "winrate_steps": 4,
            "eval_prompts": 8,
            "repeat": 2,
        }
    return {
        "shape": {},
        "sft_steps": int(os.environ.get("GPU_CHECK_SFT_STEPS", 300)),
        "sft_batch": 256,
        "align_batch": 256,
        "method_steps": 8,
        "winrate_steps": int(os.environ.get("GPU_CHECK_ALIGN_STEPS", 100)),
        "eval_prompts": 512,
        "repeat": 5,
    }


def main(argv=None) -> int:
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true",
                    help="CPU, a 1-layer d = 16 model, 2 steps per phase: proves the script runs (CI)")
    ap.add_argument("--out", default=os.environ.get("GPU_CHECK_OUT", "runs/gpu_check"),
                    help="folder for gpu_check.json and the runs (env GPU_CHECK_OUT)")
    args = ap.parse_args(argv)
    tiny = args.smoke or os.environ.get("GPU_CHECK_TINY", "0") == "1"
    device_name = "cpu" if args.smoke else os.environ.get("GPU_CHECK_DEVICE", "cuda")
    out = args.out
    if device_name.startswith("cuda") and not torch.cuda.is_available():
        print(
            "gpu_check: error: CUDA is not available "
            "(GPU_CHECK_DEVICE=cpu GPU_CHECK_TINY=1 runs the CPU proof)",
            file=sys.stderr,
        )
        return 2
    device = resolve_device(device_name)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    s = settings(tiny, args.smoke)
    # --preset gpu needs CUDA (llm.runtime refuses it on a CPU): the CPU proof gives every size itself
    preset = "gpu" if device.type == "cuda" else "none"
    common = dict(task="text", device=device_name, preset=preset, overwrite=True, checkpoint_every=10**6)
    peak, peak_source = bf16_peak(device)
    report = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "tiny": tiny,
        "smoke": args.smoke,
        "preset": preset,
        "provenance": measured_provenance(),
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "bf16_peak_flops": peak,
        "bf16_peak_source": peak_source,
        "settings": s,
    }
    path = os.path.join(out, "gpu_check.json")
    os.makedirs(out, exist_ok=True)

    started = time.perf_counter()
    load = LoadWindow(before=load_average())  # "after" is read again at every save

    def save(phase):
        report["completed"] = phase
        load.after = load_average()
        report["load_average"] = load.as_dict()
        report.setdefault("phase_end_s", {})[phase] = (
            time.perf_counter() - started
        )  # wall seconds since start
        atomic_write_json(path, report)
        print(f"[{time.strftime('%H:%M:%S')}] {phase} done", flush=True)

    import transformers

    report["transformers"] = transformers.__version__
    print(f"gpu_check on {report['device']} (tiny={tiny}); writes {path}", flush=True)

    # -- 1. SFT --
    t0 = time.perf_counter()
    sft = run_sft(
        SFTConfig(
            out=os.path.join(out, "sft"),
            steps=s["sft_steps"],
            batch_size=s["sft_batch"],
            log_every=max(1, s["sft_steps"] // 10),
            **s["shape"],
            **common,
        ),
        progress=False,
    )
    report["sft"] = {
        "seconds": time.perf_counter() - t0,
        "steps": s["sft_steps"],
        "final_nll": sft["final_nll"],
    }
    save("sft")

    # -- 2. sampling throughput, 3. MFU of the policy update --
    task = make_task("text")
    policy, codec = load_causal_lm(sft["model"], "sft", task.max_prompt_tokens)
    ref, _ = load_causal_lm(sft["model"], "sft", task.max_prompt_tokens)
    policy.to(device).eval()
    ref.to(device).eval().requires_grad_(False)
    cfg = policy.config
    report["model"] = {
        "parameters": sum(p.numel() for p in policy.parameters()),
        "matmul_parameters": matmul_params(policy),
        "n_layer": cfg.n_layer,
        "n_embd": cfg.n_embd,
        "vocab": cfg.vocab_size,
    }
    B = 2 * s["align_batch"]  # an alignment step's responses (two per prompt)
    ids, mask = codec.encode_prompts(task.prompts("train", B))
    ids, mask = ids.to(device), mask.to(device)  # (B, P)
    gen = torch.Generator(device).manual_seed(0)
    T = task.max_new_tokens
    rates = {}
    for name, model_ref, beta in [("policy (beta=0)", None, 0.0), ("mixture (beta=0.125)", ref, 0.125)]:
        with autocast(device, True):
            secs = seconds_per_call(
                lambda: sample(policy, model_ref, ids, mask, T, gen, None, codec.pad_id, beta=beta),
                device,
                s["repeat"],
            )
        rates[name] = {"seconds": secs, "tokens_per_s": B * T / secs}  # eos_id None: exactly B x T tokens
    report["sampling"] = {"batch": B, "new_tokens": T, "prompt_width": ids.shape[1], **rates}
    save("sampling")

    with autocast(device, True):
        resp, resp_mask = sample(policy, None, ids, mask, T, gen, codec.eos_id, codec.pad_id)  # (B, T)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=0.0)  # times the update without changing the model

    def update():
        with autocast(device, True):
            loss = -token_logprobs(policy, ids, mask, resp, resp_mask).sum() / resp_mask.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    reset_peak(device)
    secs = seconds_per_call(update, device, s["repeat"])
    seq = ids.shape[1] + resp.shape[1]
    flops = train_flops(matmul_params(policy), cfg.n_layer, cfg.n_embd, seq, B)
    report["policy_update"] = {
        "seconds": secs,
        "tokens": B * seq,
        "flops": flops,
        "achieved_flops_per_s": flops / secs,
        "mfu": flops / secs / peak if peak else None,
        "peak_memory_gib": peak_gib(device),
    }
    save("mfu")
    # drop the references, so that the per-method peaks below count only their own run
    policy = ref = optimizer = update = resp = resp_mask = None
    if device.type == "cuda":
        torch.cuda.empty_cache()

    # -- 4. step time and peak memory per method --
    taus = PipelineConfig(out="x")
    report["methods"] = {}
    # --smoke times one pairwise and one policy-gradient method: every run_align rebuilds the text
    # task (seconds on a CPU), and rl's gold Bradley-Terry fit alone takes longer (tests/llm run all)
    for method in (["online_ipo", "nash_md_pg"] if args.smoke else METHODS):
        reset_peak(device)
        run_out = os.path.join(out, method)
        done = run_align(
            AlignConfig(
                out=run_out,
                sft=sft["model"],
                judge="gold",
                method=method,
                tau=taus.tau_of(method),
                steps=s["method_steps"],
                batch_size=s["align_batch"],
                eval_every=0,
                log_every=1,
                **common,
            ),
            progress=False,
        )
        with open(os.path.join(run_out, "metrics.jsonl")) as f:
            times = [r["charts/step_time_s"] for r in map(json.loads, f) if "charts/step_time_s" in r]
        report["methods"][method] = {
            "step_time_s_median": statistics.median(times[1:] or times),
            "first_step_s": times[0],
            "steps": len(times),
            "peak_memory_gib": peak_gib(device),
            "tau": done["tau"],
        }
        save(f"method {method}")
    # whole online-IPO step: sampling (prefill + decode of the policy), reference forward, policy update
    N, L, d = report["model"]["matmul_parameters"], cfg.n_layer, cfg.n_embd
    step_flops = 2 * N * B * seq + forward_flops(N, L, d, seq, B) + flops
    step_s = report["methods"]["online_ipo"]["step_time_s_median"]
    report["online_ipo_step"] = {
        "model_flops": step_flops,
        "seconds": step_s,
        "mfu": step_flops / step_s / peak if peak else None,
    }

    # -- 5. gold win rate against SFT after a short online-IPO run --
    t0 = time.perf_counter()
    done = run_align(
        AlignConfig(
            out=os.path.join(out, "winrate"),
            sft=sft["model"],
            judge="gold",
            method="online_ipo",
            tau=taus.tau_of("online_ipo"),
            steps=s["winrate_steps"],
            batch_size=s["align_batch"],
            eval_every=s["winrate_steps"],
            eval_prompts=s["eval_prompts"],
            **common,
        ),
        progress=False,
    )
    report["winrate"] = {
        "method": "online_ipo",
        "judge": "gold",
        "steps": s["winrate_steps"],
        "eval_prompts": 2 * s["eval_prompts"],
        "winrate_vs_sft": done["final_winrate_vs_sft"],
        "seconds": time.perf_counter() - t0,
    }
    save("winrate")
    print_table(report)
    return 0


def print_table(r: dict) -> None:
    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f} %"

    def gib(x):
        return "n/a (CPU)" if x is None else f"{x:.1f} GiB"

    print(
        f"\n{'TINY CPU PROOF: not GPU numbers' if r['tiny'] else 'GPU check'} -- {r['device']}, "
        f"torch {r['torch']}, transformers {r['transformers']}, {r['date_utc']} UTC"
    )
    m = r["model"]
    print(
        f"model: {m['parameters']:,} parameters ({m['n_layer']} layers, d={m['n_embd']}, vocab {m['vocab']})"
    )
    sp = r["sampling"]
    for name in ("policy (beta=0)", "mixture (beta=0.125)"):
        print(
            f"sampling {name:>22}: {sp[name]['tokens_per_s']:12,.0f} tokens/s "
            f"({sp['batch']} x {sp['new_tokens']} new tokens, prompt width {sp['prompt_width']})"
        )
    u = r["policy_update"]
    print(
        f"policy update (fwd+bwd+AdamW, {u['tokens']:,} tokens): {u['seconds'] * 1e3:.1f} ms, "
        f"{u['achieved_flops_per_s'] / 1e12:.2f} TFLOP/s, MFU {pct(u['mfu'])} ({r['bf16_peak_source']}), "
        f"peak memory {gib(u['peak_memory_gib'])}"
    )
    print(f"whole online-IPO step: MFU {pct(r['online_ipo_step']['mfu'])} (sampling is sequential decoding)")
    for method, row in r["methods"].items():
        print(
            f"step {method:>12}: {row['step_time_s_median'] * 1e3:9.1f} ms "
            f"(median of {row['steps'] - 1} after the first, {row['first_step_s'] * 1e3:.0f} ms), "
            f"peak memory {gib(row['peak_memory_gib'])}"
        )
    w = r["winrate"]
    print(
        f"gold win rate vs SFT after {w['steps']} online-IPO steps: {w['winrate_vs_sft']:.3f} "
        f"({w['eval_prompts']} held-out prompts)"
    )


if __name__ == "__main__":
    sys.exit(main())
