"""The preference model (PM) and the Bradley-Terry reward model (RM): their forms, building, loading
and scoring, in one place.

Both are one-logit sequence classifiers (``GPT2ForSequenceClassification`` by default). The PM
input ``<bos> x <sep> y <vs> y' <eos>`` gives a logit ``g(x, y, y')``; the RM input
``<bos> x <sep> y <eos>`` gives ``r(x, y)``. The PM reads both inputs with one network and combines
them by its ``config.pm_form`` (:data:`PM_FORMS`, :func:`pm_prob_rows`), exactly antisymmetric:
``P(y > y') + P(y' > y) = 1``. Training is ``train-pm`` (:mod:`llm.train`); the judges that label
the alignment pairs with them are :class:`llm.judging.LearnedPM` and :class:`llm.judging.LearnedRM`.
"""

from __future__ import annotations

import json
import os

import torch

from opo_toolkit.cliargs import UsageError

from .models import gpt2_config, load_checked

__all__ = ["PM_FORMS", "new_scorer", "load_scorer", "pm_form", "pm_prob_rows", "rm_prob_rows", "pm_prob",
           "rm_reward", "token_rows"]

# How a preference model turns its logits into P(y > y' | x) (:func:`pm_prob_rows`; saved in the
# PM's config as ``pm_form``; a PM saved without it is "pairwise"). train-pm's --pm-form choices.
PM_FORMS = ("residual", "pairwise")


def new_scorer(vocab_size: int, n_layer: int = 2, n_embd: int = 64, n_head: int = 4,
               n_positions: int = 128, pad_id: int = 0):
    """A freshly initialised GPT-2 with a one-logit head (PM or RM); reads the last non-pad token."""
    from transformers import GPT2ForSequenceClassification

    config = gpt2_config(vocab_size, n_layer, n_embd, n_head, n_positions, pad_id)
    return GPT2ForSequenceClassification(config)


def load_scorer(path: str, what: str = "preference model", max_prompt_tokens: int = 64,
                kind: str | None = None):
    """Load a local one-logit sequence classifier (PM or RM) and its tokenizer. ``kind``
    (``preference`` or ``bradley-terry``): refuse a ``train-pm`` model saved as the other kind (its
    ``info.json``), e.g. the RM passed as ``--pm``, which would read as a pair-input PM."""
    from transformers import AutoModelForSequenceClassification

    def is_scorer(config):
        arch = (config.architectures or [""])[0]
        return arch.endswith("ForSequenceClassification") and config.num_labels == 1

    model, codec = load_checked(path, what, max_prompt_tokens, AutoModelForSequenceClassification, is_scorer,
                         "one-logit sequence classifier")
    info_path = os.path.join(path, "info.json")
    saved_as = None
    if kind is not None and os.path.isfile(info_path):
        with open(info_path) as f:
            saved_as = json.load(f).get("kind")
    if saved_as is not None and saved_as != kind:
        raise UsageError(f"{what} {path} was saved by train-pm as a {saved_as} model, not a {kind} model "
                         "(the PM is OUT/pm, the RM OUT/rm)")
    form = getattr(model.config, "pm_form", "pairwise")
    if form not in PM_FORMS:  # refused before any stage starts, not at its first PM call
        raise UsageError(f"{what} {path} has pm_form {form!r} in its config.json; known forms: "
                         f"{', '.join(PM_FORMS)}")
    return model, codec


def token_rows(ids: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
    """Each row's tokens where ``mask`` is 1 (padding dropped), as lists."""
    return [[t for t, m in zip(r, mr) if m] for r, mr in zip(ids.tolist(), mask.tolist())]


def _one_logit(model, ids, mask, device) -> torch.Tensor:
    return model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, 0].float()


def _in_chunks(fn, batch: int, *rows: list) -> torch.Tensor:
    """``fn`` on aligned row lists, ``batch`` rows at a time (bounded memory), concatenated."""
    n = len(rows[0])
    return torch.cat([fn(*(r[i:i + batch] for r in rows)) for i in range(0, n, batch)])


def pm_form(pm) -> str:
    """The form of a loaded PM (``config.pm_form``, default ``pairwise``); ValueError if unknown."""
    form = getattr(pm.config, "pm_form", "pairwise")
    if form not in PM_FORMS:
        raise ValueError(f"preference model has pm_form {form!r}; known forms: {', '.join(PM_FORMS)}")
    return form


def pm_prob_rows(pm, codec, x_rows, y_rows, yp_rows, device, batch: int = 512) -> torch.Tensor:
    """``P(y > y' | x)`` from the preference model on token-id rows. Returns (N,). The single
    definition used in training, in alignment (:func:`pm_prob`) and in evaluation.

    One network, two inputs: the pair input ``x y <vs> y'`` gives a logit ``g(x, y, y')``; the
    single-response input ``x y`` (the RM's) gives a score ``r(x, y)``. By ``pm_form(pm)``:

    - ``residual``: ``sigmoid(r(x, y) - r(x, y') + (g(x, y, y') - g(x, y', y)) / 2)``, a
      Bradley-Terry term plus an antisymmetric pairwise residual. The residual is what lets the PM
      represent intransitive preferences (which no score difference can); the Bradley-Terry term
      gives it the RM's inductive bias (the RM is its special case of a constant residual). With
      the pair input alone, the PM's held-out accuracy was below the RM's (measured accuracies:
      llm/README.md's judge table).
    - ``pairwise``: ``(sigmoid(g(x, y, y')) + sigmoid(-g(x, y', y))) / 2``, the pair input only.

    Both are exactly antisymmetric: ``P(y > y') + P(y' > y) = 1``.
    """
    form = pm_form(pm)

    def chunk(x, y, yp):
        b = len(x)
        ids, mask = codec.pm_inputs(x + x, y + yp, yp + y)  # (2b, L): both orders
        g = _one_logit(pm, ids, mask, device)  # (2b,)
        if form == "pairwise":
            return 0.5 * (torch.sigmoid(g[:b]) + torch.sigmoid(-g[b:]))  # 1 - sigmoid(a) = sigmoid(-a)
        ids, mask = codec.rm_inputs(x + x, y + yp)  # (2b, L'): y and y' alone
        r = _one_logit(pm, ids, mask, device)  # (2b,)
        return torch.sigmoid((r[:b] - r[b:]) + 0.5 * (g[:b] - g[b:]))  # (b,)
    return _in_chunks(chunk, batch, x_rows, y_rows, yp_rows)


def rm_prob_rows(rm, codec, x_rows, y_rows, yp_rows, device, batch: int = 512) -> torch.Tensor:
    """Bradley-Terry ``P(y > y' | x) = sigmoid(r(x, y) - r(x, y'))`` from the reward model. (N,)."""
    def chunk(x, y, yp):
        ids, mask = codec.rm_inputs(x + x, y + yp)  # (2b, L)
        r = _one_logit(rm, ids, mask, device)  # (2b,)
        b = len(x)
        return torch.sigmoid(r[:b] - r[b:])
    return _in_chunks(chunk, batch, x_rows, y_rows, yp_rows)


def pm_prob(pm, codec, prompt_ids, prompt_mask, y, y_mask, y_prime, y_prime_mask) -> torch.Tensor:
    """:func:`pm_prob_rows` on sampled (B, T) tensors (the summary part of each response). (B,)."""
    return pm_prob_rows(pm, codec, token_rows(prompt_ids, prompt_mask),
                        [codec.summary_ids(r) for r in token_rows(y, y_mask)],
                        [codec.summary_ids(r) for r in token_rows(y_prime, y_prime_mask)], prompt_ids.device)


def rm_reward(rm, codec, prompt_ids, prompt_mask, y, y_mask) -> torch.Tensor:
    """Bradley-Terry reward ``r(x, y)`` from the reward model. Returns (B,)."""
    ids, mask = codec.rm_inputs(token_rows(prompt_ids, prompt_mask),
                                [codec.summary_ids(r) for r in token_rows(y, y_mask)])
    return _one_logit(rm, ids, mask, prompt_ids.device)
