"""Sampling from the policy, the reference, or their token-level geometric mixture; log-probs; scores.

The mixture used by IPO-MD and Nash-MD-PG is applied **per token** (SPEC §4):

    log mix(. | x, y_<t) = (1 - beta) log pi(. | x, y_<t) + beta log mu(. | x, y_<t) + const_t,

renormalised at every position t. This is *not* the sequence-level geometric mixture
``pi(y|x)^(1-beta) mu(y|x)^beta / Z(x)``: that one would need normalisers ``Z`` over all sequences
(intractable); the per-token version equals it only for one-token responses (tested against the
exact mixture in ``tests/llm/test_objectives.py``). SPEC §4 prescribes this tractable version.

:func:`sample` steps:
  1. one forward of the prompt through each model that is needed, keeping its KV cache;
  2. per new token: mixed logits ``(1 - beta) log_softmax(pi / T) + beta log_softmax(mu / T)``;
  3. Gumbel-max draw ``argmax(mixed + g)``, ``g = -log(-log u)``, ``u ~ U(0,1)^(B, V)`` from the given
     generator (one (B, V) draw per position whatever beta is, so the random stream is shared:
     beta = 0 reproduces exactly the policy's samples and beta = 1 exactly the reference's);
  4. one forward of the new token through each model, reusing its cache; stop when all rows ended.

``beta`` may be a scalar or one value per row ((B,) tensor), so ``y ~ pi`` and ``y' ~ mix`` come out
of one call. Temperature ``T`` divides the logits for sampling and, by default (T = 1), the
log-probs used in the losses are at the same temperature (:func:`token_logprobs` takes it too).
"""

from __future__ import annotations

import functools
import inspect
import zlib
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Decoding", "LOGP_REDUCTIONS", "sample", "sample_responses", "token_logprobs", "sequence_logprob",
           "gumbel", "stream_seed"]


@dataclass(frozen=True)
class Decoding:
    """How :func:`sample` ends and pads the responses of one run: at most ``max_new_tokens`` tokens,
    a row ends at ``eos_id`` (None: every row runs to the cap), ``pad_id`` after it."""

    max_new_tokens: int
    eos_id: int | None
    pad_id: int


def stream_seed(*keys) -> int:
    """A 63-bit seed for one random stream, derived from ``keys`` (ints and strings, e.g. the run's
    seed, its method, the purpose, the step) by NumPy's ``SeedSequence`` (strings by CRC-32).
    Different keys give independent streams, so no two runs or evaluations share a draw."""
    entropy = [k if isinstance(k, int) else zlib.crc32(str(k).encode()) for k in keys]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> np.uint64(1))


def gumbel(shape, generator: torch.Generator, device) -> torch.Tensor:
    """Standard Gumbel noise from ``generator`` (the sampler's whole random stream)."""
    u = torch.rand(shape, generator=generator, device=device).clamp_min(1e-20)  # [0, 1) -> (0, 1)
    exponential = (-torch.log(u)).clamp_min(1e-20)  # (0, inf); clamp guards log(1 - tiny) = 0
    return -torch.log(exponential)


@functools.lru_cache(maxsize=None)
def _cache_keyword(model_class) -> str:
    """transformers >= 5.2x names the KV-cache argument ``cache``, earlier versions
    ``past_key_values`` (the GPU machine's 5.17). Looked up once per class: ``inspect.signature``
    on every token was 3 % of the sampler's time."""
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def _forward_cached(model, cache, **inputs):
    """One forward that reads and returns the KV cache."""
    key = _cache_keyword(type(model))
    out = model(**inputs, **{key: cache}, use_cache=True)
    return out.logits, getattr(out, key)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp_min(0)  # left padding: real tokens count from 0


@torch.no_grad()
def sample(policy, ref, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int,
           generator: torch.Generator, eos_id: int | None, pad_id: int, beta=0.0,
           temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample responses from the per-token geometric mixture of ``policy`` and ``ref`` with KV caches.

    Args:
      policy: causal LM (None when beta == 1).
      ref: causal LM (None when beta == 0).
      prompt_ids: (B, P) left-padded prompts.
      prompt_mask: (B, P) their attention mask.
      beta: float or (B,) tensor.
      eos_id: ends a row (None: always ``max_new_tokens`` tokens).
    Returns:
      response (B, T) with ``pad_id`` after ``<eos>``; response_mask (B, T), 1 up to and incl. ``<eos>``.
    """
    device = prompt_ids.device
    B = prompt_ids.shape[0]
    beta = torch.as_tensor(beta, dtype=torch.float32, device=device).expand(B)[:, None]  # (B, 1)
    use_pi = policy is not None and bool((beta < 1).any())
    use_mu = ref is not None and bool((beta > 0).any())
    if not use_pi and not use_mu:
        raise ValueError("sample needs the policy for beta < 1 and the reference for beta > 0")
    models = {"pi": policy if use_pi else None, "mu": ref if use_mu else None}
    # The whole attention mask is allocated once; step t reads the view of its first P + t + 1
    # columns (same values as growing it by torch.cat every token, without the copies).
    P = prompt_mask.shape[1]
    full_mask = torch.cat([prompt_mask, torch.ones_like(prompt_mask[:, :1]).expand(B, max_new_tokens)], 1)
    mask, pos = prompt_mask, _positions(prompt_mask)
    cache = {k: None for k in models}
    logp = {}
    for k, m in models.items():
        if m is not None:
            logits, cache[k] = _forward_cached(m, None, input_ids=prompt_ids, attention_mask=mask,
                                               position_ids=pos)
            logp[k] = torch.log_softmax(logits[:, -1].float() / temperature, -1)  # (B, V)
    pos = pos[:, -1:]  # (B, 1)
    weight_pi, weight_mu = 1 - beta, beta  # (B, 1) each, computed once
    pad = torch.full((B,), pad_id, dtype=torch.long, device=device)
    tokens, alive = [], torch.ones(B, dtype=torch.bool, device=device)
    for t in range(max_new_tokens):
        mixed = 0.0
        if use_pi:
            mixed = weight_pi * logp["pi"]  # (B, V)
        if use_mu:
            mixed = mixed + weight_mu * logp["mu"]  # (B, V); no renormalisation needed for Gumbel-max
        g = gumbel(mixed.shape, generator, device)  # (B, V)
        nxt = torch.where(alive, (mixed + g).argmax(-1), pad)  # (B,)
        tokens.append(nxt)
        if t == max_new_tokens - 1:
            break
        if eos_id is not None:  # the only host sync per token, and only when rows can end
            alive = alive & (nxt != eos_id)
            if not bool(alive.any()):
                break
        mask = full_mask[:, :P + t + 1]  # (B, P + t + 1)
        pos = pos + 1
        for k, m in models.items():
            if m is not None:
                logits, cache[k] = _forward_cached(m, cache[k], input_ids=nxt[:, None], attention_mask=mask,
                                                   position_ids=pos)  # one new token, cached prefix
                logp[k] = torch.log_softmax(logits[:, -1].float() / temperature, -1)  # (B, V)
    response = torch.stack(tokens, 1)  # (B, T)
    if eos_id is None:
        response_mask = torch.ones_like(response)
    else:
        ended_before = torch.cumsum((response == eos_id).long(), 1) - (response == eos_id).long()
        response_mask = (ended_before == 0).long()  # (B, T): tokens up to and including <eos>
    return response, response_mask


def token_logprobs(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, response: torch.Tensor,
                   response_mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per-token ``log model(y_t | x, y_<t)`` at ``temperature``, zero on padding. Returns (B, T)."""
    ids = torch.cat([prompt_ids, response], 1)  # (B, P + T)
    mask = torch.cat([prompt_mask, response_mask], 1)  # (B, P + T)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=_positions(mask)).logits  # (B, P+T, V)
    P = prompt_ids.shape[1]
    logits = logits[:, P - 1:-1]  # (B, T, V): position P-1 predicts y_0
    # at least float32 (bf16 under autocast is upcast); a float64 model keeps float64, so exact
    # enumerations (benchmarks/nashmd_grad_bias.py) agree to round-off
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature
    logp = torch.log_softmax(logits, -1).gather(-1, response[..., None]).squeeze(-1)  # (B, T)
    return logp * response_mask


# How a response's token log-probs become its sequence log-prob (:func:`sequence_logprob`).
LOGP_REDUCTIONS = ("sum", "mean")


def sequence_logprob(tok_logp: torch.Tensor, response_mask: torch.Tensor,
                     reduction: str = "sum") -> torch.Tensor:
    """(B, T) -> (B,): ``log pi(y|x) = sum_t`` (default, SPEC §3) or the per-token ``mean`` (option)."""
    total = tok_logp.sum(-1)
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / response_mask.sum(-1).clamp_min(1)
    raise ValueError(f"unknown log-prob reduction {reduction!r}; choose sum or mean")


@torch.no_grad()
def sample_responses(model, codec, prompts, seed, device, max_new_tokens, temperature=1.0, batch=512):
    """Responses of ``model`` to ``prompts`` (one generator seeded with ``seed``), ``batch`` prompts
    at a time: (texts, token-id rows without ``<eos>``)."""
    gen = torch.Generator(device).manual_seed(seed)
    model.to(device).eval()
    texts, rows = [], []
    for i in range(0, len(prompts), batch):
        ids, mask = codec.encode_prompts(prompts[i:i + batch])
        resp, _ = sample(model, None, ids.to(device), mask.to(device), max_new_tokens, gen, codec.eos_id,
                         codec.pad_id, temperature=temperature)
        texts += codec.decode(resp)
        rows += [codec.summary_ids(r) for r in resp.tolist()]
    return texts, rows
