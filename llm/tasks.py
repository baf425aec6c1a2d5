"""Tasks: prompts, reference summaries for SFT, and a gold judge with exact preference probabilities.

A task gives
  1. ``prompts(split, n)``: documents to summarise (deterministic per split). The splits partition
     the **document space** (not the draws), so no document of one split can occur in another:
     ``train`` (SFT and alignment), ``pm`` (preference/reward-model training), ``valid`` (PM
     held-out metrics, training curves, the study's selection) and ``test`` (the final side-by-side
     evaluation; ``heldout`` is another name for it). ``split_of(prompt)`` names a document's split;
  2. ``reference_summary(prompt, rng)``: the "human" summary SFT imitates (deliberately imperfect),
  3. ``gold_prob(prompts, a, b)``: the exact probability ``P(a > b | prompt)`` that the hidden judge
     prefers summary ``a`` to ``b`` (the paper's stronger side-by-side judge, SPEC §6),
  4. ``corpus()``: text to train the tokenizer on.

The gold judge is a **panel of Bradley-Terry raters aggregated by majority**. Rater ``k`` scores a
summary by ``w_k . phi(x, y)`` (``phi`` = a few interpretable features) and prefers ``a`` to ``b``
with probability ``sigmoid(w_k . (phi(a) - phi(b)))``. The panel's verdict is the majority vote of
independent raters, whose probability is exact (Poisson-binomial, :func:`majority_prob`). Each
rater alone is transitive; their majority is not (Condorcet): with criteria that disagree there are
summaries ``a > b > c > a``, which is where Nash solutions and reward maximisation part ways.
``P(a > b) + P(b > a) = 1`` holds exactly because every rater's probabilities do.
"""

from __future__ import annotations

import abc
import ast
import itertools
import os
import re
import sysconfig
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Task", "SyntheticTask", "TextTask", "make_task", "TASKS", "majority_prob", "SPLITS",
           "split_name", "partition",
           "fit_bradley_terry"]

# Fraction of the document space in each split (in this order); "heldout" is an alias of "test".
SPLITS = {"train": 0.5, "pm": 0.2, "valid": 0.15, "test": 0.15}
_ALIASES = {"heldout": "test"}


def split_name(split: str) -> str:
    """The canonical name of ``split`` (``heldout`` -> ``test``); a one-line ValueError if unknown."""
    return _split_name(split)


def partition(n: int, rng: np.random.Generator) -> dict:
    """A random partition of ``range(n)`` into the :data:`SPLITS` (every task's document space)."""
    return _partition(n, rng)


def _split_name(split: str) -> str:
    name = _ALIASES.get(split, split)
    if name not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join([*SPLITS, *_ALIASES])}")
    return name


def _partition(n: int, rng: np.random.Generator) -> dict:
    """A random partition of ``range(n)`` into the :data:`SPLITS`, by their fractions. {split: indices}."""
    order = rng.permutation(n)
    edges = np.round(np.cumsum([0.0, *SPLITS.values()]) * n).astype(int)
    return {s: np.sort(order[a:b]) for s, a, b in zip(SPLITS, edges[:-1], edges[1:])}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for large |z|, exactly antisymmetric


def majority_prob(p: np.ndarray) -> np.ndarray:
    """Probability that a strict majority of independent raters vote "yes".

    Args:
      p: (N, K) per-rater probabilities, K odd.
    Returns:
      (N,) ``P(#yes > K/2)``, by dynamic programming over the vote count (Poisson-binomial).
    """
    n, k = p.shape
    dist = np.zeros((n, k + 1))  # dist[:, j] = P(j yes votes so far)
    dist[:, 0] = 1.0
    for r in range(k):
        shifted = np.zeros_like(dist)
        shifted[:, 1:] = dist[:, :-1] * p[:, r:r + 1]
        dist = dist * (1 - p[:, r:r + 1]) + shifted
    return dist[:, k // 2 + 1:].sum(axis=1)


@dataclass
class Task(abc.ABC):
    """Base class: a gold judge from a feature map ``phi`` and rater weights ``rater_weights``."""

    name: str = "task"
    max_new_tokens: int = 8
    max_prompt_tokens: int = 64
    rater_names: tuple = ()
    feature_names: tuple = ()  # the names of phi's entries, in order
    rater_weights: np.ndarray = field(default_factory=lambda: np.zeros((1, 1)))  # (K, F)

    def features(self, prompts: list[str], summaries: list[str]) -> np.ndarray:  # (N, F)
        return np.array([self.phi(x, y) for x, y in zip(prompts, summaries)], dtype=np.float64)

    def gold_prob_from_features(self, phi_a: np.ndarray, phi_b: np.ndarray) -> np.ndarray:
        """(N, F), (N, F) -> (N,) exact majority-of-raters probability that ``a`` beats ``b``."""
        per_rater = _sigmoid((phi_a - phi_b) @ self.rater_weights.T)  # (N, K)
        return majority_prob(per_rater)

    def gold_prob(self, prompts: list[str], a: list[str], b: list[str]) -> np.ndarray:  # (N,)
        return self.gold_prob_from_features(self.features(prompts, a), self.features(prompts, b))

    @abc.abstractmethod
    def phi(self, prompt: str, summary: str) -> list[float]:
        """The features of ``summary`` for ``prompt`` that the raters weigh (one task, one map)."""

    def new_tokenizer(self, special_tokens):
        """The task's choice of tokenizer: ``(untrained Tokenizer, its trainer)`` for ``corpus()``
        (:func:`llm.models.train_tokenizer` trains it). Default: word level on whitespace."""
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        return tok, trainers.WordLevelTrainer(special_tokens=special_tokens)


@dataclass
class SyntheticTask(Task):
    """Documents of ``doc_facts`` distinct facts ``f0 .. f{n-1}``; each fact type has a hidden salience.

    A good summary states the most salient facts of the document, briefly, faithfully (no fact that
    is not in the document, no repeats) and in document order. Reference summaries (the SFT data) are
    noisy on purpose: random length 1..``max_summary``, uniformly chosen facts, an invented fact with
    probability ``p_invent``, shuffled order; so the SFT model ``mu`` is a broad, mediocre policy
    and alignment has something to learn: which facts matter (only the judge knows the salience).

    Features ``phi``: coverage (sum of saliences of distinct true facts stated), length (tokens),
    unfaithful tokens (invented facts, repeats, non-fact tokens), order inversions, and "no
    content" (no true fact at all: every rater rejects an empty summary). Raters:
    coverage-minded, brevity-minded, faithfulness/order-minded; majority of the three.
    """

    name: str = "synthetic"
    seed: int = 0
    n_fact_types: int = 12
    doc_facts: int = 5
    max_summary: int = 4
    p_invent: float = 0.15
    max_new_tokens: int = 6
    max_prompt_tokens: int = 16
    rater_names: tuple = ("coverage", "brevity", "faithfulness")
    feature_names: tuple = ("coverage", "length", "unfaithful", "inversions", "no_content")  # phi's order

    def __post_init__(self):
        rng = np.random.default_rng([self.seed, 7])
        self.salience = rng.permutation(self.n_fact_types) / (self.n_fact_types - 1)  # (n,) hidden
        # Every rater finds a summary without any true fact worthless ("no content", -2); beyond
        # that they trade coverage against length and faithfulness differently, so the majority
        # can cycle. Adding a true fact of salience s pays 5s - 0.5 (coverage rater), 3s - 1.5
        # (brevity rater: only salient facts are worth it), 2s - 0.3 (faithfulness rater).
        #                      coverage length unfaithful inversions no_content
        self.rater_weights = np.array([[5.0, -0.5, -1.0, 0.0, -2.0],
                                       [3.0, -1.5, -1.0, 0.0, -2.0],
                                       [2.0, -0.3, -3.0, -1.5, -2.0]])  # (K=3, F=5)
        # the document space: every set of doc_facts fact types, partitioned once into the splits
        self._sets = np.array(list(itertools.combinations(range(self.n_fact_types), self.doc_facts)))
        self._split_sets = _partition(len(self._sets), np.random.default_rng([self.seed, 5]))
        self._set_split = {frozenset(self._sets[i].tolist()): s
                           for s, idx in self._split_sets.items() for i in idx}

    def corpus(self) -> list[str]:
        return [" ".join(f"f{i}" for i in range(self.n_fact_types))]

    def prompts(self, split: str, n: int) -> list[str]:
        """``n`` documents of ``split``: a fact set drawn uniformly from the split's sets, in a
        uniformly random order (the same fact set never occurs in two splits)."""
        split = _split_name(split)
        sets = self._sets[self._split_sets[split]]  # (S, doc_facts)
        rng = np.random.default_rng([self.seed, 1 + list(SPLITS).index(split)])
        docs = rng.permuted(sets[rng.integers(len(sets), size=n)], axis=1)  # (n, doc_facts)
        return [" ".join(f"f{i}" for i in d) for d in docs]

    def split_of(self, prompt: str) -> str:
        """The split whose document space holds ``prompt`` (by its set of facts)."""
        return self._set_split[frozenset(int(f[1:]) for f in prompt.split())]

    def reference_summary(self, prompt: str, rng: np.random.Generator) -> str:
        facts = prompt.split()
        length = int(rng.integers(1, self.max_summary + 1))
        chosen = list(rng.choice(facts, min(length, len(facts)), replace=False))
        outside = [f"f{i}" for i in range(self.n_fact_types) if f"f{i}" not in facts]
        chosen = [str(rng.choice(outside)) if rng.random() < self.p_invent else f for f in chosen]
        return " ".join(chosen)

    def phi(self, prompt: str, summary: str) -> list[float]:
        position = {f: i for i, f in enumerate(prompt.split())}
        tokens = summary.split()
        seen, coverage, unfaithful, stated = set(), 0.0, 0, []
        for tok in tokens:
            if tok in position and tok not in seen:
                seen.add(tok)
                coverage += self.salience[int(tok[1:])]
                stated.append(position[tok])
            else:
                unfaithful += 1  # invented fact, repeat, or a non-fact token
        inversions = sum(a > b for i, a in enumerate(stated) for b in stated[i + 1:])
        return [coverage, float(len(tokens)), float(unfaithful), float(inversions), float(not seen)]


_WORD = re.compile(r"[a-z0-9_]+")


@dataclass
class TextTask(Task):
    """Real human-written text that ships offline: CPython standard-library docstrings.

    Prompt = the docstring body (first ``max_doc_words`` words), reference summary = its one-line
    summary (human written). Gold judge: raters on unigram F1 overlap with the human summary (or the
    document's first sentence for a prompt without one), brevity, novelty (fraction of summary words
    in neither the document nor the human summary: hallucination) and fluency (fraction of summary
    bigrams seen in the human summaries). Honest scope: a model of 1e5-1e6 parameters trained for
    minutes learns the surface form (short imperative lines, copying salient words of the document,
    stopping); it does not learn to understand code documentation.
    """

    name: str = "text"
    seed: int = 0
    max_doc_words: int = 40
    max_new_tokens: int = 24
    max_prompt_tokens: int = 64
    rater_names: tuple = ("overlap", "brevity", "faithfulness")
    feature_names: tuple = ("overlap_f1", "length", "novelty", "fluency")  # phi's order

    def __post_init__(self):
        pairs = {}
        stdlib = sysconfig.get_paths()["stdlib"]
        for root, dirs, files in os.walk(stdlib):
            dirs[:] = sorted(d for d in dirs if d not in ("test", "tests", "idlelib", "site-packages"))
            for name in sorted(files):
                if name.endswith(".py"):
                    self._collect(os.path.join(root, name), pairs)
        items = sorted(pairs.items())
        rng = np.random.default_rng([self.seed, 11])
        order = rng.permutation(len(items))
        self._pairs = [items[i] for i in order]  # [(doc, summary)]
        parts = _partition(len(self._pairs), np.random.default_rng([self.seed, 5]))
        self._split = {s: [self._pairs[i] for i in idx] for s, idx in parts.items()}  # disjoint documents
        self._doc_split = {doc: s for s, pool in self._split.items() for doc, _ in pool}
        self._reference = dict(self._pairs)
        self._bigrams = {bg for _, s in self._split["train"] for bg in zip(_words(s), _words(s)[1:])}
        #                       overlap length novelty fluency
        self.rater_weights = np.array([[6.0, -0.1, -2.0, 1.0],
                                       [2.0, -0.5, -2.0, 0.5],
                                       [2.0, -0.1, -6.0, 2.0]])  # (K=3, F=4)

    def _collect(self, path: str, pairs: dict) -> None:
        try:
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            return
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                doc = ast.get_docstring(node)
                if not doc or "\n\n" not in doc:
                    continue
                head, body = doc.split("\n\n", 1)
                summary = " ".join(head.split())
                body = " ".join(body.split()[: self.max_doc_words])
                if 3 <= len(summary.split()) <= 12 and len(body.split()) >= 8:
                    pairs.setdefault(body, summary)

    def __len__(self) -> int:
        return len(self._pairs)

    def corpus(self) -> list[str]:
        return [t for pair in self._pairs for t in pair]

    def new_tokenizer(self, special_tokens):
        """Byte-level BPE (2000 tokens): real text has an open vocabulary."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        return tok, trainers.BpeTrainer(vocab_size=2000, special_tokens=special_tokens,
                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())

    def prompts(self, split: str, n: int) -> list[str]:
        pool = self._split[_split_name(split)]
        return [pool[i % len(pool)][0] for i in range(n)]

    def split_of(self, prompt: str) -> str:
        return self._doc_split[prompt]

    def reference_summary(self, prompt: str, rng: np.random.Generator) -> str:
        return self._reference.get(prompt) or prompt.split(". ")[0]

    def phi(self, prompt: str, summary: str) -> list[float]:
        words, doc = _words(summary), set(_words(prompt))
        ref = _words(self._reference.get(prompt) or prompt.split(". ")[0])
        common = len(set(words) & set(ref))
        f1 = 2 * common / (len(set(words)) + len(set(ref))) if words else 0.0
        novelty = sum(w not in doc and w not in ref for w in words) / max(len(words), 1)
        fluency = (sum(bg in self._bigrams for bg in zip(words, words[1:])) / (len(words) - 1)
                   if len(words) > 1 else 0.0)
        return [f1, float(len(words)), novelty, fluency]


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def fit_bradley_terry(dphi: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The Bradley-Terry fit of a preference function in feature space: the weights ``w`` that
    minimise the soft-label cross-entropy ``-mean(p log s + (1 - p) log(1 - s))``,
    ``s = sigmoid(w . (phi(a) - phi(b)))`` (convex; L-BFGS to gradient norm 1e-10).

    Args:
      dphi: (N, F) feature differences ``phi(a) - phi(b)``; p: (N,) target ``P(a > b)``.
    Returns:
      (F,) weights: ``r(x, y) = w . phi(x, y)`` is the best transitive (reward) model of ``p``.
    """
    from scipy.optimize import minimize

    dphi, p = np.asarray(dphi, np.float64), np.asarray(p, np.float64)

    def loss_grad(w):
        z = dphi @ w
        loss = np.mean(np.logaddexp(0.0, z) - p * z)  # = soft cross-entropy, stable
        return loss, dphi.T @ (_sigmoid(z) - p) / len(p)

    res = minimize(loss_grad, np.zeros(dphi.shape[1]), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-10, "ftol": 0.0, "maxiter": 10_000})
    return res.x


TASKS = {"synthetic": SyntheticTask, "text": TextTask}


def make_task(name: str, seed: int = 0) -> Task:
    """Build a task by name (``synthetic`` or ``text``); ``seed`` fixes the hidden judge and splits."""
    return TASKS[name](seed=seed)
