"""The batch and the judge: what one alignment step samples for and who scores the samples.

:func:`llm.align.alignment_loss` reads a :class:`PromptBatch` (token ids, attention mask and, where
the prompts are text, the texts), samples :class:`Responses` for it, and asks a judge:

- a :class:`PairJudge` labels the pairwise methods and Nash-MD-PG: ``prob(batch, y, y_prime)`` is
  the (B,) probability ``P(y > y' | x)``;
- a :class:`RewardJudge` scores ``rl``: ``reward(batch, y)`` is the (B,) reward ``r(x, y)``.

The judges of ``llm align``:

====================  ===============================  =========================================
``--judge``           pairwise methods, Nash-MD-PG     ``rl``
====================  ===============================  =========================================
``pm``                :class:`LearnedPM`               :class:`LearnedRM`
``gold``              :class:`GoldJudge` (exact)       :class:`GoldBradleyTerry` (its BT fit)
====================  ===============================  =========================================

The enumerable task's exact judge and reward live with that experiment (:mod:`llm.exact`), and
:class:`TableJudge` / :class:`TableReward` score responses by an exact table (one-token bridges to
the tabular core in the tests). A new judge (an LLM judge on a GPU, say) is one class with
``prob`` or ``reward``; the loop does not change. Judges return float32 tensors on the batch's
device and are called without gradient.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .scorers import pm_prob, rm_reward

__all__ = ["PromptBatch", "Responses", "PairJudge", "RewardJudge", "LearnedPM", "LearnedRM", "GoldJudge",
           "GoldBradleyTerry", "TableJudge", "TableReward", "first_token"]


@dataclass(frozen=True)
class PromptBatch:
    """B prompts: (B, P) left-padded token ids, their attention mask, and their texts (``None``
    where the prompts exist only as ids, e.g. the enumerable task's)."""

    ids: torch.Tensor
    mask: torch.Tensor
    texts: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.texts is not None and len(self.texts) != self.ids.shape[0]:
            raise ValueError(f"{len(self.texts)} prompt texts for {self.ids.shape[0]} rows of ids")

    def __len__(self) -> int:
        return self.ids.shape[0]

    def repeat(self, k: int) -> PromptBatch:
        """The batch ``k`` times over, stacked (row ``i + j B`` is prompt ``i``)."""
        return PromptBatch(self.ids.repeat(k, 1), self.mask.repeat(k, 1),
                           None if self.texts is None else self.texts * k)

    def require_texts(self, who: str) -> tuple[str, ...]:
        if self.texts is None:
            raise ValueError(f"{who} reads the prompts' texts; this batch has token ids only")
        return self.texts


@dataclass(frozen=True)
class Responses:
    """B sampled responses: (B, T) right-padded token ids (``<eos>`` included) and their mask."""

    ids: torch.Tensor
    mask: torch.Tensor

    def rows(self, start: int, stop: int) -> Responses:
        """Rows ``start:stop``."""
        return Responses(self.ids[start:stop], self.mask[start:stop])


class PairJudge(abc.ABC):
    """Labels a pair of responses to each prompt: the probability that ``y`` is preferred."""

    @abc.abstractmethod
    def prob(self, batch: PromptBatch, y: Responses, y_prime: Responses) -> torch.Tensor:
        """(B,) ``P(y_i > y'_i | x_i)``, float32, on the batch's device."""


class RewardJudge(abc.ABC):
    """Scores one response to each prompt (the ``rl`` baseline's reward)."""

    @abc.abstractmethod
    def reward(self, batch: PromptBatch, y: Responses) -> torch.Tensor:
        """(B,) ``r(x_i, y_i)``, float32, on the batch's device."""


class LearnedPM(PairJudge):
    """The trained preference model (``train-pm``), antisymmetric by construction
    (:func:`llm.scorers.pm_prob`)."""

    def __init__(self, pm, codec):
        self.pm, self.codec = pm, codec

    def prob(self, batch, y, y_prime):
        return pm_prob(self.pm, self.codec, batch.ids, batch.mask, y.ids, y.mask, y_prime.ids, y_prime.mask)


class LearnedRM(RewardJudge):
    """The trained Bradley-Terry reward model (``train-pm --reward-model``)."""

    def __init__(self, rm, codec):
        self.rm, self.codec = rm, codec

    def reward(self, batch, y):
        return rm_reward(self.rm, self.codec, batch.ids, batch.mask, y.ids, y.mask)


class GoldJudge(PairJudge):
    """The task's exact hidden judge, on the decoded texts (``Task.gold_prob``)."""

    def __init__(self, task, codec):
        self.task, self.codec = task, codec

    def prob(self, batch, y, y_prime):
        p = self.task.gold_prob(list(batch.require_texts("the gold judge")), self.codec.decode(y.ids),
                                self.codec.decode(y_prime.ids))
        return torch.as_tensor(p, dtype=torch.float32, device=batch.ids.device)


class GoldBradleyTerry(RewardJudge):
    """``r(x, y) = w . phi(x, y)``: the Bradley-Terry fit ``w`` of the gold judge on the task's
    features (:func:`llm.align.gold_bradley_terry`). It cannot represent the judge's intransitive
    part."""

    def __init__(self, task, codec, weights: np.ndarray):
        self.task, self.codec, self.weights = task, codec, weights

    def reward(self, batch, y):
        phi = self.task.features(list(batch.require_texts("the gold Bradley-Terry reward")),
                                 self.codec.decode(y.ids))
        return torch.as_tensor(phi @ self.weights, dtype=torch.float32, device=batch.ids.device)


def first_token(responses: Responses) -> torch.Tensor:
    """(B,) each response's first token: its index in a one-token response space."""
    return responses.ids[:, 0]


class TableJudge(PairJudge):
    """An exact preference table ``P[a, b]`` over a finite response set, ``index`` mapping
    responses to rows (default: the first token)."""

    def __init__(self, P: torch.Tensor, index: Callable[[Responses], torch.Tensor] = first_token):
        self.P, self.index = P, index

    def prob(self, batch, y, y_prime):
        return self.P[self.index(y), self.index(y_prime)]


class TableReward(RewardJudge):
    """An exact reward table ``r[a]`` over a finite response set, ``index`` as :class:`TableJudge`."""

    def __init__(self, scores: torch.Tensor, index: Callable[[Responses], torch.Tensor] = first_token):
        self.scores, self.index = scores, index

    def reward(self, batch, y):
        return self.scores[self.index(y)]
