"""The preference model's two forms (``pm_form``): antisymmetry, the Bradley-Terry special case,
intransitive preferences that only the pairwise residual can fit, and the form saved with the PM."""

import pytest
import torch

from llm.models import Codec, train_tokenizer
from llm.scorers import load_scorer, new_scorer, pm_form, pm_prob_rows, rm_prob_rows
from llm.tasks import SyntheticTask
from opo_toolkit.cliargs import UsageError


@pytest.fixture(scope="module")
def codec():
    task = SyntheticTask()
    return Codec(train_tokenizer(task), task.max_prompt_tokens)


def _scorer(codec, form, seed=0):
    torch.manual_seed(seed)
    m = new_scorer(codec.vocab_size, 1, 32, 2, 64, codec.pad_id)
    with torch.no_grad():
        m.score.weight.normal_(0.0, 1.0)  # GPT-2's init (std 0.02) keeps every logit near 0
    if form is not None:
        m.config.pm_form = form
    return m.eval()


def _rows(codec, seed, n=24):
    g = torch.Generator().manual_seed(seed)
    x = [codec.prompt_ids("f1 f3 f4 f7 f9")] * n
    ys = [[int(t) for t in torch.randint(4, codec.vocab_size, (int(k),), generator=g)]
          for k in torch.randint(1, 6, (2 * n,), generator=g)]
    return x, ys[:n], ys[n:]


@pytest.mark.parametrize("form", ["residual", "pairwise"])
def test_both_forms_are_exactly_antisymmetric(codec, form):
    pm = _scorer(codec, form)
    x, y, yp = _rows(codec, 1)
    with torch.no_grad():
        forward, backward = pm_prob_rows(pm, codec, x, y, yp, "cpu"), pm_prob_rows(pm, codec, x, yp, y, "cpu")
    assert forward.std() > 1e-3  # a random network: not all 1/2
    torch.testing.assert_close(forward + backward, torch.ones_like(forward), rtol=0, atol=1e-6)


def test_residual_form_without_a_pair_signal_is_the_bradley_terry_model(codec, monkeypatch):
    """With the pair input made uninformative (the same tokens for every pair, so g(y, y') = g(y', y)),
    the residual PM is exactly the Bradley-Terry model of the same network's scores."""
    pm = _scorer(codec, "residual")
    x, y, yp = _rows(codec, 2)
    with torch.no_grad():
        bt = rm_prob_rows(pm, codec, x, y, yp, "cpu")
        full = pm_prob_rows(pm, codec, x, y, yp, "cpu")
        blank = Codec.pm_inputs(codec, x + x, [[5]] * (2 * len(x)), [[5]] * (2 * len(x)))  # both orders
        monkeypatch.setattr(codec, "pm_inputs", lambda *a: blank)
        no_pair = pm_prob_rows(pm, codec, x, y, yp, "cpu")
    torch.testing.assert_close(no_pair, bt, rtol=0, atol=1e-6)
    assert (full - bt).abs().max() > 1e-3  # and the pair input does move it otherwise


def _fit(pm, codec, prob_fn, x, y, yp, target, steps=300):
    opt = torch.optim.Adam(pm.parameters(), lr=3e-3)
    pm.train()
    for _ in range(steps):
        opt.zero_grad()
        q = prob_fn(pm, codec, x, y, yp, "cpu").clamp(1e-6, 1 - 1e-6)
        (-(target * q.log() + (1 - target) * (1 - q).log()).mean()).backward()
        opt.step()
    pm.eval()
    with torch.no_grad():
        return prob_fn(pm, codec, x, y, yp, "cpu")


def test_only_the_pairwise_residual_fits_an_intransitive_cycle(codec):
    """a > b > c > a, each with probability 0.9: no score difference can order a cycle (at most 2
    of its 3 pairs), the residual PM fits all three."""
    a, b, c = [codec.encode(s) for s in ("f1", "f3 f4", "f9 f7 f1")]
    x = [codec.prompt_ids("f1 f3 f4 f7 f9")] * 3
    y, yp, target = [a, b, c], [b, c, a], torch.full((3,), 0.9)
    residual = _fit(_scorer(codec, "residual"), codec, pm_prob_rows, x, y, yp, target)
    bt = _fit(_scorer(codec, "residual"), codec, rm_prob_rows, x, y, yp, target)
    assert (residual > 0.75).all()
    # the Bradley-Terry fit of a symmetric cycle is equal scores (its loss is convex in the scores
    # and invariant under rotating the cycle): every pair near 1/2
    assert bt.max() < 0.75


def test_the_form_travels_with_the_saved_pm_and_old_pms_read_as_pairwise(codec, tmp_path):
    from llm.models import save_model

    for form in ("residual", "pairwise", None):
        save_model(_scorer(codec, form), codec, str(tmp_path / str(form)))
        loaded, _ = load_scorer(str(tmp_path / str(form)))
        assert pm_form(loaded) == (form or "pairwise")
    with pytest.raises(ValueError, match="pm_form 'bogus'"):
        pm_form(_scorer(codec, "bogus"))
    save_model(_scorer(codec, "bogus"), codec, str(tmp_path / "bogus"))
    with pytest.raises(UsageError, match="has pm_form 'bogus' in its config.json"):
        load_scorer(str(tmp_path / "bogus"), "--pm preference model")


def test_train_pm_saves_the_residual_form_by_default(tiny):
    from llm.config import PMConfig

    assert PMConfig(out="x", sft="y").pm_form == "residual"
    assert pm_form(load_scorer(tiny["pm"])[0]) == "residual"


def test_pm_init_rm_trains_the_same_rm_then_the_pm_from_its_weights(tiny, tmp_path):
    """``--pm-init rm``: phase 1 is the RM alone (bit for bit the RM that ``scratch`` trains side by
    side with its PM: disjoint parameters, the same batches and learning rates), phase 2 the PM,
    started from the RM's weights."""
    import json

    from llm.config import PMConfig
    from llm.train import run_train_pm

    flags = dict(sft=tiny["sft"], steps=5, n_pairs=64, heldout_pairs=32, batch_size=8, n_layer=1, n_embd=16,
                 n_head=2, log_every=1)
    runs = {init: run_train_pm(PMConfig(out=str(tmp_path / init), pm_init=init, **flags), progress=False)
            for init in ("rm", "scratch")}
    rm = {init: load_scorer(r["rm"])[0].state_dict() for init, r in runs.items()}
    assert all(torch.equal(rm["rm"][k], rm["scratch"][k]) for k in rm["rm"])
    pm = {init: load_scorer(r["pm"])[0].state_dict() for init, r in runs.items()}
    assert not all(torch.equal(pm["rm"][k], pm["scratch"][k]) for k in pm["rm"])
    with open(tmp_path / "rm" / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert [r["step"] for r in rows] == list(range(1, 11))
    assert all(set(r) == {"step", "loss/rm"} for r in rows[:5]) and all(set(r) == {"step", "loss/pm"}
                                                                          for r in rows[5:])
    # the PM's phase starts at the RM's weights: its first loss is the RM-initialised PM's
    assert runs["rm"]["heldout"]["pm"]["accuracy"] >= 0.0


def test_pm_init_rm_needs_the_reward_model():
    from llm.config import PMConfig

    with pytest.raises(UsageError, match="--pm-init rm starts the PM from the reward model"):
        PMConfig(out="x", sft="y", reward_model=False).validate()
    PMConfig(out="x", sft="y", reward_model=False, pm_init="scratch").validate()


def test_the_rm_passed_as_pm_is_refused_with_one_line(tiny, tmp_path, capsys):
    """The RM is a one-logit classifier too: without its info.json kind it would read as a
    pair-input PM and label pairs with a model never trained on pairs."""
    from llm.cli import main

    assert load_scorer(tiny["pm"], "--pm preference model", kind="preference")[0] is not None
    assert load_scorer(tiny["rm"], "--rm reward model", kind="bradley-terry")[0] is not None
    with pytest.raises(UsageError, match="saved by train-pm as a bradley-terry model"):
        load_scorer(tiny["rm"], "--pm preference model", kind="preference")
    with pytest.raises(UsageError, match="saved by train-pm as a preference model"):
        load_scorer(tiny["pm"], "--rm reward model", kind="bradley-terry")
    out = tmp_path / "align"
    assert main(["align", "--out", str(out), "--sft", tiny["sft"], "--pm", tiny["rm"],
                 "--method", "online_ipo", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "bradley-terry model" in err and err.count("\n") == 1 and not out.exists()
