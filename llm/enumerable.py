"""The enumerable task: every prompt is a tabular preference game the transformer can be measured on.

A response is at most ``L`` tokens from ``K`` content tokens, ended by ``<eos>`` or by the cap, so
each prompt has exactly ``n = 1 + K + ... + K^L`` possible responses (K = 8, L = 3: 585). The
tokenizer holds the six special tokens and the K content tokens; the policy's head gives every
other token than ``<eos>`` and the content tokens a logit of ``-1e4`` (:func:`mask_response_vocab`),
which is ``exp(-1e4) = 0`` in float32, so no mass can fall outside the enumeration (the exact law
measures what falls outside, :func:`exact_law`, and the experiment reports it).

Everything per prompt ``x`` is then exact:

- ``mu_x``: the SFT transformer's law over the n responses, by enumerating the response tree with
  one batched forward over the ``K^(L-1)`` longest prefixes (:func:`exact_law`);
- ``P_x``: the gold judge, ``P_x(y, y') = sigmoid(s_x(y) - s_x(y') + rho C_x(y, y'))``
  (:meth:`EnumerableTask.preference`): ``s_x`` a transitive score, ``C_x`` a rock-paper-scissors
  term, ``rho`` the intransitivity dial;
- every target of :mod:`llm.exact_targets`, solved by :mod:`tabular` per prompt.

The gold judge. Response ``y = (t_1 .. t_k)`` of content tokens; prompt ``x`` = ``prompt_len``
content tokens. Transitive score
``s_x(y) = sum over distinct t in y of (coverage 1[t in x] + value_t) - length_cost k - repeat_cost
#repeats``, with ``value_t`` hidden (drawn from the task seed). Cyclic term: token ``t`` has type
``(t + x_1) mod 3`` (it depends on the prompt), ``phi_x(y)`` counts the types of ``y``'s tokens,
and ``C_x(y, y') = phi_x(y)^T A phi_x(y')`` with ``A`` the rock-paper-scissors matrix
(antisymmetric), so ``P_x(y, y') + P_x(y', y) = 1`` exactly.

Bradley-Terry part and the non-transitive share (HodgeRank). The logits ``l_x(y, y')`` form an
antisymmetric matrix; its least-squares projection onto differences ``r(y) - r(y')`` (all pairs
weighted alike) is ``r_x(y) = mean_y' l_x(y, y')`` — the Bradley-Terry reward nearest to the
judge, exact (no sampled fit). ``rho = 0`` gives ``r_x = s_x - mean s_x``: the judge *is*
Bradley-Terry. The remainder ``l - (r(y) - r(y'))`` is the cyclic (non-transitive) part; its share
of ``||l||^2`` is :func:`intransitive_share`. RL's reward is ``r_x / 4`` (4 = 1 / the logistic's
slope at 0), so that RL and the preference methods share tau and agree to first order at rho = 0.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import torch

from tabular.fixed_point import log_normalise_logaddexp

from .tasks import partition, split_name

__all__ = ["ResponseSpace", "EnumerableTask", "mask_response_vocab", "exact_law", "law_from_conditionals",
           "conditionals_from_law", "per_token_mixture", "intransitive_share", "bt_agreement", "prompt_ids",
           "response_index", "N_SPECIAL"]

N_SPECIAL = 6  # llm.models.SPECIAL_TOKENS come first in the vocabulary: content token t has id 6 + t
_RPS = np.array([[0.0, 1.0, -1.0], [-1.0, 0.0, 1.0], [1.0, -1.0, 0.0]])  # type i beats type i + 1


@dataclass(frozen=True)
class ResponseSpace:
    """All responses of at most ``L`` tokens from ``K`` content tokens, in canonical order: by
    length, then lexicographically. Response ``(t_1 .. t_k)`` has index
    ``offset[k] + sum_i t_i K^(k - i)``, ``offset[k] = 1 + K + ... + K^(k-1)``."""

    K: int = 8
    L: int = 3

    @property
    def n(self) -> int:
        return sum(self.K ** k for k in range(self.L + 1))

    @property
    def offsets(self) -> np.ndarray:  # (L + 2,)
        return np.concatenate([[0], np.cumsum([self.K ** k for k in range(self.L + 1)])])

    def tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """(n, L) content indices (-1 past the end) and (n,) lengths, in canonical order."""
        rows, lengths = [], []
        for k in range(self.L + 1):
            for t in itertools.product(range(self.K), repeat=k):
                rows.append(list(t) + [-1] * (self.L - k))
                lengths.append(k)
        return np.array(rows, dtype=np.int64).reshape(-1, self.L), np.array(lengths)

    def index(self, content: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """(N, L) content indices (anything past ``lengths``) and (N,) lengths -> (N,) indices."""
        content = np.asarray(content, np.int64)
        lengths = np.asarray(lengths, np.int64)
        idx = np.zeros(len(lengths), np.int64)
        for i in range(self.L):
            inside = i < lengths
            idx = np.where(inside, idx * self.K + np.clip(content[:, i], 0, None), idx)
        return self.offsets[lengths] + idx


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # exactly antisymmetric: sigmoid(-z) = 1 - sigmoid(z)


@dataclass
class EnumerableTask:
    """Prompts, the SFT data's law, and the exact gold judge with intransitivity dial ``rho``.

    The document space is every sequence of ``prompt_len`` content tokens (K^prompt_len
    documents), partitioned once into the splits train / pm / valid / test (:data:`llm.tasks.SPLITS`).
    """

    name: str = "enumerable"
    seed: int = 0
    K: int = 8
    L: int = 3
    prompt_len: int = 3
    rho: float = 0.0
    coverage: float = 1.0
    length_cost: float = 0.3
    repeat_cost: float = 1.0
    p_copy: float = 0.6  # the SFT data: each token is a prompt token w.p. p_copy, else uniform
    length_probs: tuple = (0.1, 0.3, 0.3, 0.3)  # the SFT data's response lengths 0 .. L
    space: ResponseSpace = field(init=False)

    def __post_init__(self):
        if not np.isfinite(self.rho) or self.rho < 0:
            raise ValueError(f"rho must be finite and >= 0, got {self.rho!r}")
        if len(self.length_probs) != self.L + 1 or abs(sum(self.length_probs) - 1) > 1e-12:
            raise ValueError(f"length_probs must be {self.L + 1} probabilities summing to 1")
        self.space = ResponseSpace(self.K, self.L)
        rng = np.random.default_rng([self.seed, 17])
        self.value = rng.normal(0.0, 0.5, self.K)  # hidden per-token value
        self.documents = np.array(list(itertools.product(range(self.K), repeat=self.prompt_len)))
        self._split_docs = partition(len(self.documents), np.random.default_rng([self.seed, 5]))
        self._tokens, self._lengths = self.space.tokens()  # (n, L), (n,)

    # -- prompts ------------------------------------------------------------------------------
    def prompt_indices(self, split: str) -> np.ndarray:
        """Indices into :attr:`documents` of every document of ``split``, in a fixed order."""
        return self._split_docs[split_name(split)]

    def prompt_tokens(self, doc_index) -> np.ndarray:
        return self.documents[np.asarray(doc_index)]  # (..., prompt_len) content indices

    def split_of(self, doc_index: int) -> str:
        for s, idx in self._split_docs.items():
            if doc_index in idx:
                return s
        raise ValueError(f"no document {doc_index}")

    # -- the SFT data's law --------------------------------------------------------------------
    def human_law(self, doc_index) -> np.ndarray:
        """(B, n) law of the "human" responses SFT imitates: length ~ ``length_probs``, each token a
        prompt token w.p. ``p_copy`` (uniformly among the prompt's positions), else uniform."""
        x = self.prompt_tokens(np.atleast_1d(doc_index))  # (B, prompt_len)
        q = (1 - self.p_copy) / self.K + self.p_copy * (
            (x[:, :, None] == np.arange(self.K)).mean(1))  # (B, K) per-token law
        logq = np.log(q)
        tok, lengths = self._tokens, self._lengths
        logp = np.log(np.asarray(self.length_probs))[lengths] * np.ones((len(x), 1))  # (B, n)
        for i in range(self.L):
            inside = i < lengths
            logp = logp + np.where(inside, logq[:, np.clip(tok[:, i], 0, None)], 0.0)
        return np.exp(logp)

    # -- the gold judge ------------------------------------------------------------------------
    def scores(self, doc_index) -> np.ndarray:
        """(B, n) transitive score ``s_x(y)`` of every response."""
        x = self.prompt_tokens(np.atleast_1d(doc_index))  # (B, prompt_len)
        tok, lengths = self._tokens, self._lengths
        onehot = (tok[:, :, None] == np.arange(self.K)).any(1)  # (n, K) distinct tokens of y
        counts = (tok[:, :, None] == np.arange(self.K)).sum(1)  # (n, K)
        repeats = (counts - onehot).sum(1)  # (n,)
        in_prompt = (x[:, :, None] == np.arange(self.K)).any(1).astype(float)  # (B, K)
        gain = self.coverage * in_prompt + self.value  # (B, K)
        return gain @ onehot.T.astype(float) - self.length_cost * lengths - self.repeat_cost * repeats

    def type_counts(self, doc_index) -> np.ndarray:
        """(B, n, 3): how many tokens of each rock-paper-scissors type a response has."""
        x = self.prompt_tokens(np.atleast_1d(doc_index))
        tok = self._tokens  # (n, L)
        types = (tok[None, :, :] + x[:, :1, None]) % 3  # (B, n, L)
        valid = tok[None] >= 0
        return ((types[..., None] == np.arange(3)) & valid[..., None]).sum(2).astype(float)

    def logits(self, doc_index, rho: float | None = None) -> np.ndarray:
        """(B, n, n) antisymmetric judge logits ``l_x(y, y') = s(y) - s(y') + rho phi(y)^T A phi(y')``."""
        rho = self.rho if rho is None else rho
        s = self.scores(doc_index)  # (B, n)
        out = s[:, :, None] - s[:, None, :]
        if rho:
            phi = self.type_counts(doc_index)  # (B, n, 3)
            out = out + rho * np.einsum("bia,ac,bjc->bij", phi, _RPS, phi)
        return out

    def preference(self, doc_index, rho: float | None = None) -> np.ndarray:
        """(B, n, n) exact ``P_x(y, y')``; ``P + P^T = 1`` holds exactly (the logits are antisymmetric)."""
        return _sigmoid(self.logits(doc_index, rho))

    def pair_preference(self, doc_index, y, y_prime, rho: float | None = None) -> np.ndarray:
        """(N,) ``P_x(y, y')`` for aligned arrays of documents and response indices (no n x n table)."""
        rho = self.rho if rho is None else rho
        doc_index, y, y_prime = (np.asarray(a, np.int64) for a in (doc_index, y, y_prime))
        s = self.scores(doc_index)  # (N, n)
        rows = np.arange(len(y))
        z = s[rows, y] - s[rows, y_prime]
        if rho:
            phi = self.type_counts(doc_index)  # (N, n, 3)
            z = z + rho * np.einsum("ia,ac,ic->i", phi[rows, y], _RPS, phi[rows, y_prime])
        return _sigmoid(z)

    def bt_reward(self, doc_index, rho: float | None = None) -> np.ndarray:
        """(B, n) HodgeRank reward ``r_x(y) = mean_y' l_x(y, y')``: the Bradley-Terry scores nearest
        (least squares over all pairs) to the judge's logits. In closed form:
        ``s(y) - mean s + rho phi(y)^T A mean_y' phi(y')``."""
        rho = self.rho if rho is None else rho
        s = self.scores(doc_index)
        r = s - s.mean(-1, keepdims=True)
        if rho:
            phi = self.type_counts(doc_index)
            r = r + rho * np.einsum("bia,ac,bc->bi", phi, _RPS, phi.mean(1))
        return r


def intransitive_share(logits: np.ndarray) -> np.ndarray:
    """(B, n, n) antisymmetric logits -> (B,) share of ``||l||^2`` outside the gradient subspace
    (HodgeRank, uniform weights): 0 for Bradley-Terry logits, 1 for a pure cycle."""
    r = logits.mean(-1)  # (B, n)
    grad = r[:, :, None] - r[:, None, :]
    return ((logits - grad) ** 2).sum((1, 2)) / np.maximum((logits ** 2).sum((1, 2)), 1e-300)


def bt_agreement(logits: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(B,) share of decided pairs (``l != 0``) on which the HodgeRank reward orders the pair as the
    judge does; pairs weighted by ``weights`` (B, n) ⊗ itself (default uniform)."""
    r = logits.mean(-1)
    agree = np.sign(r[:, :, None] - r[:, None, :]) == np.sign(logits)
    decided = logits != 0
    w = np.ones(logits.shape[:2]) if weights is None else weights
    ww = w[:, :, None] * w[:, None, :] * decided
    return (ww * agree).sum((1, 2)) / ww.sum((1, 2))


# -- laws over the response tree ----------------------------------------------------------------
def law_from_conditionals(log_cond: list, space: ResponseSpace):
    """Law over the n responses from per-prefix next-token log-probabilities.

    Args:
      log_cond: ``L`` arrays/tensors; ``log_cond[k]`` (B, K^k, K + 1) is ``log q(. | u)`` for every
        prefix ``u`` of length k (index 0 = ``<eos>``, 1 + t = content token t). The cap ends a
        response of length L without ``<eos>``.
    Returns:
      (B, n) log-law, canonical order (numpy in, numpy out; torch in, torch out, differentiable).
    """
    lib = torch if isinstance(log_cond[0], torch.Tensor) else np
    B = log_cond[0].shape[0]
    prefix = log_cond[0][:, :, 0] * 0  # (B, 1): log P(prefix = empty) = 0
    parts = []
    for k in range(space.L):
        c = log_cond[k]  # (B, K^k, K + 1)
        parts.append(prefix + c[:, :, 0])  # terminated at length k
        prefix = (prefix[:, :, None] + c[:, :, 1:]).reshape(B, -1)  # (B, K^(k+1))
    parts.append(prefix)  # length L: ended by the cap
    return lib.concatenate(parts, 1) if lib is np else torch.cat(parts, 1)


def conditionals_from_law(law: np.ndarray, space: ResponseSpace) -> list:
    """Inverse of :func:`law_from_conditionals`: the per-prefix conditionals of a law (B, n),
    from subtree masses (a prefix of zero mass gets the uniform conditional). Returns log-probs."""
    B, off, K = law.shape[0], space.offsets, space.K
    term = [law[:, off[k]:off[k + 1]] for k in range(space.L + 1)]  # (B, K^k) terminated at length k
    mass = [None] * (space.L + 1)
    mass[space.L] = term[space.L]
    for k in range(space.L - 1, -1, -1):
        mass[k] = term[k] + mass[k + 1].reshape(B, K ** k, K).sum(-1)
    out = []
    for k in range(space.L):
        joint = np.concatenate([term[k][:, :, None], mass[k + 1].reshape(B, K ** k, K)], -1)  # (B, K^k, K+1)
        total = joint.sum(-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            cond = np.where(total > 0, joint / np.where(total > 0, total, 1), 1.0 / (K + 1))
            out.append(np.log(cond))
    return out


def per_token_mixture(law_pi: np.ndarray, law_mu: np.ndarray, beta: float, space: ResponseSpace):
    """(B, n) law of the **per-token** geometric mixture the llm samples from (SPEC §4):
    at every prefix ``q(. | u) ∝ pi(. | u)^(1 - beta) mu(. | u)^beta``. Differs from the sequence-level
    mixture ``pi^(1-beta) mu^beta / Z`` except for one-token responses."""
    cp, cm = conditionals_from_law(law_pi, space), conditionals_from_law(law_mu, space)
    mixed = []
    for a, b in zip(cp, cm):
        z = (1 - beta) * a + beta * b if beta not in (0.0, 1.0) else (a if beta == 0.0 else b)
        mixed.append(log_normalise_logaddexp(z))
    return np.exp(law_from_conditionals(mixed, space))


# -- the transformer side -----------------------------------------------------------------------
class _MaskedHead(torch.nn.Module):
    """The LM head plus a fixed additive mask: -1e4 on tokens a response can never hold."""

    def __init__(self, head: torch.nn.Module, mask: torch.Tensor):
        super().__init__()
        self.head = head
        self.register_buffer("mask", mask, persistent=False)

    @property
    def weight(self):  # tied-weight lookups by transformers read lm_head.weight
        return self.head.weight

    def forward(self, hidden):
        return self.head(hidden) + self.mask.to(hidden.dtype if hidden.is_floating_point() else torch.float32)


def mask_response_vocab(model, vocab_size: int, eos_id: int, K: int) -> None:
    """Give every token except ``<eos>`` and the K content tokens the logit -1e4 (in place).

    -1e4 rather than -inf: the sampler mixes ``(1 - beta) log pi + beta log mu`` and ``0 * -inf`` is
    nan; ``exp(-1e4)`` is exactly 0 in float32, so the law has no mass outside the enumeration."""
    mask = torch.full((vocab_size,), -1e4)
    mask[eos_id] = 0.0
    mask[N_SPECIAL:N_SPECIAL + K] = 0.0
    model.lm_head = _MaskedHead(model.lm_head, mask)


def prompt_ids(task: EnumerableTask, doc_index, bos_id: int, sep_id: int) -> torch.Tensor:
    """(B, prompt_len + 2) ``<bos> x <sep>`` (every prompt has the same length: no padding)."""
    x = torch.as_tensor(task.prompt_tokens(np.atleast_1d(doc_index)) + N_SPECIAL)
    B = x.shape[0]
    return torch.cat([torch.full((B, 1), bos_id), x, torch.full((B, 1), sep_id)], 1)


def exact_law(model, task: EnumerableTask, doc_index, bos_id: int, sep_id: int, eos_id: int,
              grad: bool = False, chunk: int = 256, float64: bool = True):
    """The model's exact law over the n responses of each prompt, by enumerating the tree.

    One forward of the ``K^(L-1)`` longest prefixes per prompt (batched over prompts, ``chunk``
    prompts at a time) gives the next-token distribution at every prefix (a prefix of length k is
    read at position k of any longer sequence that starts with it: causal attention).

    Returns: (B, n) law (float64 numpy unless ``grad``: then a differentiable torch log-law) and
    (B,) the mass outside the enumeration (tokens other than ``<eos>`` and content tokens).
    """
    K, L = task.K, task.L
    doc_index = np.atleast_1d(doc_index)
    longest = torch.as_tensor(np.array(list(itertools.product(range(K), repeat=L - 1))).reshape(-1, L - 1)
                              + N_SPECIAL)  # (K^(L-1), L-1)
    logs, outside = [], []
    vocab_keep = torch.tensor([eos_id] + list(range(N_SPECIAL, N_SPECIAL + K)))
    ctx = torch.enable_grad() if grad else torch.no_grad()
    with ctx:
        for i in range(0, len(doc_index), chunk):
            ids = prompt_ids(task, doc_index[i:i + chunk], bos_id, sep_id)  # (b, P)
            b, P = ids.shape
            seq = torch.cat([ids[:, None, :].expand(b, len(longest), P),
                             longest[None].expand(b, -1, -1)], 2).reshape(-1, P + L - 1)
            logits = model(input_ids=seq.to(next(model.parameters()).device)).logits  # (b K^(L-1), P+L-1, V)
            logits = logits.double() if float64 else logits.float()
            logp = torch.log_softmax(logits[:, P - 1:], -1).reshape(b, len(longest), L, -1)  # (b, M, L, V)
            log_cond = []
            for k in range(L):
                # prefix of length k: its K^k distinct values are every K^(L-1-k)-th longest prefix
                rows = logp[:, ::K ** (L - 1 - k), k]  # (b, K^k, V)
                log_cond.append(rows[:, :, vocab_keep.to(rows.device)])
            log_law = law_from_conditionals(log_cond, task.space)  # (b, n)
            logs.append(log_law)
            outside.append(1 - torch.exp(torch.logsumexp(log_law, -1)))
    log_law = torch.cat(logs)
    out = torch.cat(outside)
    if grad:
        return log_law, out
    return torch.exp(log_law).cpu().numpy().astype(np.float64), out.cpu().numpy().astype(np.float64)


def response_index(task: EnumerableTask, response: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """(N, T) sampled response ids and their mask (1 up to and incl. ``<eos>``) -> (N,) indices.
    Raises if a response holds a token outside the enumeration (cannot happen with the masked head)."""
    r = response.cpu().numpy()
    m = mask.cpu().numpy().astype(bool)
    if r.shape[1] < task.L:  # the sampler stops early once every row has ended
        r = np.pad(r, ((0, 0), (0, task.L - r.shape[1])))
        m = np.pad(m, ((0, 0), (0, task.L - m.shape[1])))
    content = r - N_SPECIAL
    is_content = (content >= 0) & (content < task.K)
    lengths = (m & is_content).sum(1)
    ok = (is_content | ~m).all(1) | ((~is_content & m).sum(1) == 1)  # at most the <eos> is not content
    if not ok.all():
        raise ValueError("a sampled response holds a token outside the enumeration")
    return task.space.index(np.where(is_content, content, 0), lengths)

