"""Mixture sampler: beta = 0 / 1 identities, KV-cache equivalence with a no-cache reference, log-probs."""

import pytest
import torch

from llm.models import new_causal_lm, pad_left
from llm.sampling import sample, sequence_logprob, token_logprobs

V, EOS, PAD = 12, 3, 0


def reference_sample_no_cache(policy, ref, prompt_rows, max_new, seed, beta):
    """Inline reference implementation: rerun the whole prefix at every step (no KV cache), one
    prompt at a time (no padding), mix ``(1-beta) log_softmax(pi) + beta log_softmax(mu)`` and draw
    by Gumbel-max with the sampler's documented stream: one U(0,1)^(B, V) draw per position."""
    gen = torch.Generator().manual_seed(seed)
    B = len(prompt_rows)
    noise = []
    seqs = [list(r) for r in prompt_rows]
    out = [[] for _ in range(B)]
    alive = [True] * B
    for t in range(max_new):
        u = torch.rand((B, V), generator=gen).clamp_min(1e-20)
        g = -torch.log((-torch.log(u)).clamp_min(1e-20))
        noise.append(g)
        for i in range(B):
            if not alive[i]:
                out[i].append(PAD)
                continue
            ids = torch.tensor([seqs[i]])
            with torch.no_grad():
                lp_pi = torch.log_softmax(policy(input_ids=ids).logits[0, -1], -1) if beta < 1 else 0
                lp_mu = torch.log_softmax(ref(input_ids=ids).logits[0, -1], -1) if beta > 0 else 0
            tok = int(((1 - beta) * lp_pi + beta * lp_mu + g[i]).argmax())
            out[i].append(tok)
            seqs[i].append(tok)
            alive[i] = tok != EOS
        if not any(alive):
            break
    return torch.tensor(out)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    policy = new_causal_lm(V, n_layer=2, n_embd=32, n_head=2, n_positions=32, pad_id=PAD).eval()
    ref = new_causal_lm(V, n_layer=2, n_embd=32, n_head=2, n_positions=32, pad_id=PAD).eval()
    # random init makes near-uniform logits; sharpen them so the models really differ
    with torch.no_grad():
        policy.transformer.wte.weight.mul_(8.0)
        ref.transformer.wte.weight.mul_(8.0)
    return policy, ref


# prompts of different lengths: exercises left padding, position ids and the attention mask
PROMPTS = [[1, 5, 6, 7, 2], [1, 8, 2], [1, 9, 10, 11, 4, 6, 2], [1, 2]]


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_kv_cached_sampler_equals_no_cache_reference(models, beta):
    policy, ref = models
    ids, mask = pad_left(PROMPTS, PAD)
    got, got_mask = sample(policy, ref, ids, mask, 8, torch.Generator().manual_seed(1), EOS, PAD, beta=beta)
    want = reference_sample_no_cache(policy, ref, PROMPTS, 8, 1, beta)
    assert torch.equal(got, want[:, : got.shape[1]])
    # mask: 1 up to and including <eos>, 0 after it
    for row, m in zip(got.tolist(), got_mask.tolist()):
        n = row.index(EOS) + 1 if EOS in row else len(row)
        assert m == [1] * n + [0] * (len(row) - n)


def test_beta0_is_policy_and_beta1_is_reference_for_the_same_stream(models):
    policy, ref = models
    ids, mask = pad_left(PROMPTS * 4, PAD)  # (16, P)
    mix0, _ = sample(policy, ref, ids, mask, 8, torch.Generator().manual_seed(7), EOS, PAD, beta=0.0)
    pi_only, _ = sample(policy, None, ids, mask, 8, torch.Generator().manual_seed(7), EOS, PAD, beta=0.0)
    mix1, _ = sample(policy, ref, ids, mask, 8, torch.Generator().manual_seed(7), EOS, PAD, beta=1.0)
    mu_only, _ = sample(None, ref, ids, mask, 8, torch.Generator().manual_seed(7), EOS, PAD, beta=1.0)
    assert torch.equal(mix0, pi_only)
    assert torch.equal(mix1, mu_only)
    assert not torch.equal(pi_only, mu_only)  # the two models do differ: the test can fail


def test_per_row_beta_matches_scalar_calls(models):
    policy, ref = models
    ids, mask = pad_left(PROMPTS * 2, PAD)  # (8, P)
    betas = torch.tensor([0.0] * 4 + [1.0] * 4)
    both, _ = sample(policy, ref, ids, mask, 8, torch.Generator().manual_seed(3), EOS, PAD, beta=betas)
    want0 = reference_sample_no_cache(policy, ref, PROMPTS * 2, 8, 3, 0.0)
    want1 = reference_sample_no_cache(policy, ref, PROMPTS * 2, 8, 3, 1.0)
    T = both.shape[1]
    assert torch.equal(both[:4], want0[:4, :T])
    assert torch.equal(both[4:], want1[4:, :T])


def test_token_logprobs_equal_stepwise_no_cache_logprobs(models):
    policy, _ = models
    ids, mask = pad_left(PROMPTS, PAD)
    resp, resp_mask = sample(policy, None, ids, mask, 6, torch.Generator().manual_seed(5), EOS, PAD)
    with torch.no_grad():
        tok = token_logprobs(policy, ids, mask, resp, resp_mask)  # (B, T)
    for i, prompt in enumerate(PROMPTS):
        seq = list(prompt)
        for t in range(resp.shape[1]):
            if not resp_mask[i, t]:
                assert tok[i, t] == 0
                continue
            with torch.no_grad():
                lp = torch.log_softmax(policy(input_ids=torch.tensor([seq])).logits[0, -1], -1)
            assert tok[i, t].item() == pytest.approx(lp[resp[i, t]].item(), abs=1e-5)
            seq.append(int(resp[i, t]))
    # reductions: sum (default) and per-token mean
    n = resp_mask.sum(-1)
    assert torch.allclose(sequence_logprob(tok, resp_mask), tok.sum(-1))
    assert torch.allclose(sequence_logprob(tok, resp_mask, "mean"), tok.sum(-1) / n)


def test_temperature_scales_the_logits(models):
    """T -> large flattens the sampler; log-probs at temperature T equal log_softmax(logits / T)."""
    policy, _ = models
    ids, mask = pad_left([[1, 5, 2]], PAD)
    resp = torch.tensor([[6]])
    with torch.no_grad():
        lp = token_logprobs(policy, ids, mask, resp, torch.ones_like(resp), temperature=2.0)
        logits = policy(input_ids=ids).logits[0, -1]
    assert lp[0, 0].item() == pytest.approx(torch.log_softmax(logits / 2.0, -1)[6].item(), abs=1e-5)
