"""Gold judges: exact majority probabilities, antisymmetry, intransitivity; PM metrics."""

import itertools

import numpy as np
import pytest
import torch

from llm.tasks import SyntheticTask, majority_prob
from llm.train import pm_metrics


def test_majority_prob_equals_brute_force_vote_enumeration():
    p = np.random.default_rng(0).random((6, 5))
    want = np.zeros(6)
    for votes in itertools.product([0, 1], repeat=5):
        v = np.array(votes)
        prob = np.prod(np.where(v == 1, p, 1 - p), axis=1)
        want += prob * (v.sum() >= 3)
    np.testing.assert_allclose(majority_prob(p), want, atol=1e-12)


def test_three_raters_by_hand():
    # p = (0.9, 0.2, 0.6): P(>= 2 yes) = .9*.2*.4 + .9*.8*.6 + .1*.2*.6 + .9*.2*.6 = .072+.432+.012+.108
    assert majority_prob(np.array([[0.9, 0.2, 0.6]]))[0] == pytest.approx(0.624)


def _random_summaries(task, doc, rng, n):
    facts = doc.split() + [f"f{i}" for i in range(task.n_fact_types)][:4]
    return [" ".join(rng.choice(facts, rng.integers(1, 5))) for _ in range(n)]


def test_gold_probabilities_are_antisymmetric_with_half_on_the_diagonal():
    task = SyntheticTask()
    rng = np.random.default_rng(1)
    doc = task.prompts("heldout", 1)[0]
    a, b = _random_summaries(task, doc, rng, 50), _random_summaries(task, doc, rng, 50)
    p_ab, p_ba = task.gold_prob([doc] * 50, a, b), task.gold_prob([doc] * 50, b, a)
    np.testing.assert_allclose(p_ab + p_ba, 1.0, atol=1e-12)
    np.testing.assert_allclose(task.gold_prob([doc] * 50, a, a), 0.5)
    assert ((p_ab >= 0) & (p_ab <= 1)).all()


def test_faithful_salient_short_summary_beats_invented_long_one():
    task = SyntheticTask()
    doc = task.prompts("heldout", 1)[0]
    facts = doc.split()
    top = max(facts, key=lambda f: task.salience[int(f[1:])])
    invented = [f"f{i}" for i in range(task.n_fact_types) if f"f{i}" not in facts][:3]
    assert task.gold_prob([doc], [top], [" ".join(invented)])[0] > 0.9


def test_the_synthetic_gold_judge_is_intransitive_somewhere():
    """Majority of transitive raters (Condorcet): a cycle a > b > c > a exists among summaries."""
    task = SyntheticTask()
    rng = np.random.default_rng(2)
    found = False
    for doc in task.prompts("heldout", 20):
        cands = sorted(set(_random_summaries(task, doc, rng, 40)))
        n = len(cands)
        P = np.array([task.gold_prob([doc] * n, [a] * n, cands) for a in cands])  # (n, n)
        beats = P > 0.5
        if np.any((beats.astype(int) @ beats.astype(int) @ beats.astype(int)).diagonal() > 0):
            found = True
            break
    assert found


def test_pm_metrics_by_hand():
    q = torch.tensor([0.9, 0.2, 0.6, 0.55])
    p = torch.tensor([0.8, 0.4, 0.3, 0.5])  # last is a tie: excluded from accuracy
    m = pm_metrics(q, p, bins=10)
    assert m["accuracy"] == pytest.approx(2 / 3)
    # bins: 0.9 -> 9, 0.2 -> 2, 0.6 -> 6, 0.55 -> 5: each alone; ECE = mean |q - p|
    assert m["calibration_error"] == pytest.approx((0.1 + 0.2 + 0.3 + 0.05) / 4)
    assert m["mean_abs_error"] == pytest.approx((0.1 + 0.2 + 0.3 + 0.05) / 4)


def test_text_task_parses_stdlib_docstrings_and_round_trips_the_tokenizer():
    """~6-15 s: parses the CPython standard library with ast and trains a byte-level BPE."""
    from llm.models import Codec, train_tokenizer
    from llm.tasks import TextTask

    task = TextTask()
    assert len(task) > 300
    doc = task.prompts("heldout", 1)[0]
    ref = task.reference_summary(doc, None)
    codec = Codec(train_tokenizer(task), task.max_prompt_tokens)
    assert codec.decode(codec.encode_summaries([ref])[0]) == [ref]
    # the human summary beats an empty-ish hallucinated one under the gold panel
    assert task.gold_prob([doc], [ref], ["zebra quantum"])[0] > 0.9
    np.testing.assert_allclose(task.gold_prob([doc], [ref], [ref]), 0.5)
