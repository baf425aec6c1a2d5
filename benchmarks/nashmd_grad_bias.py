"""Nash-MD policy-gradient bias by exact enumeration: TRL 1.13's KL weighting vs ours and the exact gradient.

Run: ``OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/nashmd_grad_bias.py --write`` (TRL column: ``pip
install '.[bench-trl]' -c constraints-cpu.txt``; without TRL that column is skipped with one line, and
``--write``, which replaces ``benchmarks/measured/nashmd_grad_bias.json``, is refused: the committed
table keeps its TRL column). ``--out PATH`` writes elsewhere; without either nothing is written.
``--render`` prints the README table from the results file; ``--smoke``: two-token rows only (CI).

Setting: a tiny GPT-2 from ``llm.models.new_causal_lm`` (1 layer, d = 16, float64), policy pi and
reference mu from different seeds, one prompt, vocabulary V = 4, every response of up to L = 2 or 3
tokens. Without ``<eos>`` the responses are all V^L sequences; with ``<eos>`` (token V - 1) a
response ends at its first ``<eos>`` (sum over all of them of ``pi(y)`` is 1, checked). The
Nash-MD objective the policy gradient ascends (SPEC §4, paper Eq. 12):

    J(pi) = sum_y pi(y) (p(y) - 1/2) - tau KL(pi || mu),   p(y) = sum_y' P(y, y') mix_beta(y')

with a random preference table ``P`` over the responses (``P + P^T = 1``) and ``mix_beta`` the
per-token geometric mixture (beta = 0.125), held fixed (the policy gradient treats the opponent as
given). Three gradients of the policy parameters, all exact expectations over every response y
(each per-sample loss weighted by the detached ``pi(y)``, summed):

- ``exact``: autograd of ``-J``, with ``pi(y) = prod_t pi(y_t | x, y_<t)`` in full;
- ``ours``: ``llm.objectives.nash_md_pg_loss`` (token t weighted by the reward-to-go of the
  log-ratio, ``sum_{s >= t} log(pi/mu)(y_s)``);
- ``TRL``: ``trl.experimental.nash_md.NashMDTrainer._compute_losses`` of TRL 1.13.0, called directly
  on the same per-token log-probs (``loss = beta * sum_t log_ratio_t.detach() * log pi(y_t) -
  (p - 1/2) * sum_t log pi(y_t)``: token t weighted by its own log-ratio only; TRL's ``beta`` is
  the paper's tau).

Reported: the relative error ``||g - g_exact|| / ||g_exact||`` of ``ours`` and ``TRL``, and the
relative error of their KL parts alone (the ``p - 1/2`` parts are the same and unbiased).
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trl_common import (  # noqa: E402
    benchmark_parser,
    destination,
    measure_provenance,
    peer,
    provenance_line,
    render_or_check,
    write_and_render,
)

from llm.models import new_causal_lm  # noqa: E402
from llm.objectives import nash_md_pg_loss  # noqa: E402
from llm.sampling import token_logprobs  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "measured" / "nashmd_grad_bias.json"
V, PAD = 4, 0
PROMPT = [1, 2, 3, 1]


def tiny_pair(seed: int = 0, sharpen: float = 4.0):
    """Policy and reference, float64, embeddings x ``sharpen`` (far-apart laws: the KL term matters)."""
    out = []
    for s in (seed, seed + 1):
        torch.manual_seed(s)
        m = new_causal_lm(V, n_layer=1, n_embd=16, n_head=2, n_positions=8, pad_id=PAD).double().eval()
        with torch.no_grad():
            m.transformer.wte.weight.mul_(sharpen)
        out.append(m)
    return out[0], out[1]


def all_responses(length: int, eos: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every response of ``length`` tokens, or, with ``eos``, every one that ends at its first ``eos``
    or at ``length`` tokens (right-padded with ``PAD``). Returns ids (N, L), mask (N, L) (1 up to and
    including ``eos``), as the sampler returns them."""
    rows = set()
    for seq in itertools.product(range(V), repeat=length):
        seq = list(seq)
        if eos is not None and eos in seq:
            cut = seq.index(eos) + 1
            seq = seq[:cut] + [None] * (length - cut)
        rows.add(tuple(seq))
    rows = sorted(rows, key=lambda r: [-1 if t is None else t for t in r])
    ids = torch.tensor([[PAD if t is None else t for t in r] for r in rows])
    mask = torch.tensor([[int(t is not None) for t in r] for r in rows])
    return ids, mask


def _prompt(n: int):
    ids = torch.tensor([PROMPT] * n)
    return ids, torch.ones_like(ids)


@torch.no_grad()
def mixture_logprob(policy, ref, resp, mask, beta: float) -> torch.Tensor:
    """``log mix_beta(y | x)`` of each response: per-token ``log_softmax((1-beta) log pi + beta log mu)``."""
    ids, pmask = _prompt(len(resp))
    full, fmask = torch.cat([ids, resp], 1), torch.cat([pmask, mask], 1)
    P = ids.shape[1]
    lp = [torch.log_softmax(m(input_ids=full, attention_mask=fmask).logits[:, P - 1:-1], -1)
          for m in (policy, ref)]
    mixed = torch.log_softmax((1 - beta) * lp[0] + beta * lp[1], -1)
    return (mixed.gather(-1, resp[..., None]).squeeze(-1) * mask).sum(-1)  # (N,)


def preference_table(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, n, generator=g, dtype=torch.float64)
    return torch.triu(a, 1) + torch.tril(1 - a.T, -1) + 0.5 * torch.eye(n, dtype=torch.float64)  # P + P^T = 1


def trl_losses(tok, ref_tok, p, tau: float) -> torch.Tensor:
    """Per-response loss of TRL 1.13's ``NashMDTrainer._compute_losses`` (called one row at a time:
    it returns the batch mean). None if TRL is not installed."""
    try:
        from trl.experimental.nash_md import NashMDTrainer
    except ImportError:
        return None
    trainer = SimpleNamespace(beta=tau)  # the method reads only self.beta (TRL's beta = the paper's tau)
    return torch.stack([NashMDTrainer._compute_losses(trainer, tok[i:i + 1], ref_tok[i:i + 1], p[i:i + 1])[0]
                        for i in range(len(p))])


def gradients(length: int, eos: int | None, tau: float, beta: float = 0.125, seed: int = 0,
              with_trl: bool = True) -> dict:
    """Flattened gradients (``exact``, ``ours``, ``trl``) of the policy parameters, and their KL parts."""
    policy, ref = tiny_pair(seed)
    resp, mask = all_responses(length, eos)
    ids, pmask = _prompt(len(resp))
    params = list(policy.parameters())
    tok = token_logprobs(policy, ids, pmask, resp, mask)  # (N, L), with grad
    with torch.no_grad():
        ref_tok = token_logprobs(ref, ids, pmask, resp, mask)
        opponent = mixture_logprob(policy, ref, resp, mask, beta).exp()  # (N,)
    log_pi, log_mu = tok.sum(-1), ref_tok.sum(-1)
    pi = log_pi.exp()
    total = float(pi.detach().sum())
    if abs(total - 1) > 1e-12 or abs(float(opponent.sum()) - 1) > 1e-12:
        raise AssertionError(f"enumeration is not a distribution: sum pi = {total}")
    p = preference_table(len(resp), seed + 7) @ opponent  # (N,) P(y > y'), y' ~ mix_beta

    def flat(objective):
        grads = torch.autograd.grad(objective, params, retain_graph=True, allow_unused=True)
        return torch.cat([(g if g is not None else torch.zeros_like(q)).flatten()
                          for g, q in zip(grads, params)])

    w = pi.detach()
    half = torch.full_like(p, 0.5)  # p = 1/2: only the KL term is left
    out = {"responses": len(resp),
           "exact": flat(-((pi * (p - 0.5)).sum() - tau * (pi * (log_pi - log_mu)).sum())),
           "exact_kl": flat(tau * (pi * (log_pi - log_mu)).sum()),
           "ours": flat((w * nash_md_pg_loss(tok, ref_tok, mask, p, tau)).sum()),
           "ours_kl": flat((w * nash_md_pg_loss(tok, ref_tok, mask, half, tau)).sum())}
    if with_trl:
        theirs, theirs_kl = trl_losses(tok, ref_tok, p, tau), trl_losses(tok, ref_tok, half, tau)
        if theirs is not None:
            out["trl"], out["trl_kl"] = flat((w * theirs).sum()), flat((w * theirs_kl).sum())
    return out


def relative_error(g: torch.Tensor, exact: torch.Tensor) -> float:
    return float((g - exact).norm() / exact.norm())


def table(taus=(0.1, 1.0), lengths=(2, 3), seed: int = 0, with_trl: bool = True) -> list[dict]:
    rows = []
    for length, eos, tau in itertools.product(lengths, (None, V - 1), taus):
        g = gradients(length, eos, tau, seed=seed, with_trl=with_trl)
        row = {"length": length, "eos": eos is not None, "tau": tau, "responses": g["responses"],
               "ours": relative_error(g["ours"], g["exact"]),
               "ours_kl": relative_error(g["ours_kl"], g["exact_kl"])}
        if "trl" in g:
            row["trl"] = relative_error(g["trl"], g["exact"])
            row["trl_kl"] = relative_error(g["trl_kl"], g["exact_kl"])
        rows.append(row)
        print(f"L={length} eos={row['eos']!s:5} tau={tau}: ours {row['ours']:.1e}"
              + (f", TRL {row['trl']:.1%} (KL part {row['trl_kl']:.1%})" if "trl" in row
                 else ", TRL not installed"),
              flush=True)
    return rows


def render(path: Path) -> str:
    d = json.loads(path.read_text())
    lines = [provenance_line(d), "",
             f"{'TRL ' + d['trl'] if d.get('trl') else 'TRL not installed'}, float64"
             f"{' (`--smoke`)' if d.get('smoke') else ''}. Relative error ||g - g_exact|| / ||g_exact|| of "
             "the expected gradient, by exact enumeration over every response (vocabulary 4, one prompt):",
             "",
             "| tokens | `<eos>` | responses | tau | ours: total / KL part | TRL 1.13: total / KL part |",
             "|---|---|---|---|---|---|"]
    for r in d["rows"]:
        trl = f"{r['trl']:.1%} / {r['trl_kl']:.1%}" if "trl" in r else "not installed"
        lines.append(f"| {r['length']} | {'yes' if r['eos'] else 'no'} | {r['responses']} | {r['tau']} | "
                     f"{r['ours']:.1e} / {r['ours_kl']:.1e} | {trl} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = benchmark_parser(__doc__, RESULTS, smoke="two-token rows at one tau only (CI)")
    args = ap.parse_args(argv)
    trl = None if args.render else peer("trl.experimental.nash_md", "TRL column",
                                         "pip install '.[bench-trl]' -c constraints-cpu.txt")
    code = render_or_check(args, render, partial=[] if trl is not None or args.render else ["TRL 1.13"])
    if code is not None:
        return code
    data = {"seed": args.seed, "vocabulary": V, "beta": 0.125, "smoke": args.smoke,
            "trl": getattr(importlib.import_module("trl"), "__version__", None) if trl is not None else None}
    with measure_provenance(data, extra_packages=("trl",), timing=False):  # exact numbers: load-free
        data["rows"] = table(taus=(0.1,) if args.smoke else (0.1, 1.0),
                             lengths=(2,) if args.smoke else (2, 3), seed=args.seed, with_trl=trl is not None)
    return write_and_render(destination(args), data, render)


if __name__ == "__main__":
    sys.exit(main())
