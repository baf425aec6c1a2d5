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


def test_splits_partition_the_document_space_so_no_document_is_shared():
    from llm.tasks import SPLITS

    task = SyntheticTask()
    # every fact set belongs to exactly one split (a partition of all C(12, 5) = 792 sets)
    owners = {}
    for split, idx in task._split_sets.items():
        for i in idx:
            key = frozenset(task._sets[i].tolist())
            assert key not in owners, f"fact set in {owners.get(key)} and {split}"
            owners[key] = split
    assert len(owners) == 792 and set(owners.values()) == set(SPLITS)
    # and every drawn prompt lies in its split's part: no document (nor a reordering of one) is shared
    drawn = {s: task.prompts(s, 3000) for s in SPLITS}
    for s, prompts in drawn.items():
        assert {task.split_of(x) for x in prompts} == {s}
    sets = {s: {frozenset(x.split()) for x in p} for s, p in drawn.items()}
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not sets[a] & sets[b], (a, b)
    assert task.prompts("heldout", 50) == task.prompts("test", 50)
    with pytest.raises(ValueError, match="unknown split"):
        task.prompts("validation", 1)


def test_text_task_splits_share_no_document():
    from llm.tasks import SPLITS, TextTask

    task = TextTask()
    pools = {s: {doc for doc, _ in task._split[s]} for s in SPLITS}
    assert sum(map(len, pools.values())) == len(task)  # a partition of the parsed documents
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not pools[a] & pools[b], (a, b)


def test_bradley_terry_fit_recovers_weights_and_cannot_fit_a_cycle():
    from llm.tasks import fit_bradley_terry

    rng = np.random.default_rng(3)
    dphi = rng.normal(size=(4000, 3))
    w = np.array([1.5, -0.5, 2.0])
    p = 1 / (1 + np.exp(-dphi @ w))
    np.testing.assert_allclose(fit_bradley_terry(dphi, p), w, atol=1e-6)
    # a cycle a > b > c > a (p = 0.9 each way round) on one-hot features: the best BT fit is a tie
    e = np.eye(3)
    cyc = np.array([e[0] - e[1], e[1] - e[2], e[2] - e[0]])
    w_cyc = fit_bradley_terry(cyc, np.full(3, 0.9))
    np.testing.assert_allclose(cyc @ w_cyc, 0.0, atol=1e-6)


def test_the_task_chooses_its_tokenizer():
    """train_tokenizer asks the task (Task.new_tokenizer): synthetic is word level (one id per fact),
    text is byte-level BPE, and a new task plugs its own in without touching llm.models."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from llm.models import SPECIAL_TOKENS, train_tokenizer
    from llm.tasks import SyntheticTask, make_task

    synthetic = train_tokenizer(make_task("synthetic", 0))
    assert len(synthetic.encode("f0 f3 f11").ids) == 3
    assert type(make_task("text", 0).new_tokenizer(SPECIAL_TOKENS)[0].model).__name__ == "BPE"

    class Characters(SyntheticTask):
        def new_tokenizer(self, special_tokens):
            tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
            tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
            return tok, trainers.WordLevelTrainer(special_tokens=special_tokens)

    chars = train_tokenizer(Characters())
    assert len(chars.encode("f0 f3").ids) > 3  # characters, not words: the task's own choice
