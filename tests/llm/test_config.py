"""Configs: one method table, one hyperparameter value (MethodParams), one parser per list flag."""

import dataclasses

import pytest

from llm.config import AlignConfig, EvalConfig, MethodParams, PipelineConfig, PMConfig, SFTConfig, StudyConfig
from opo_toolkit.cliargs import UsageError
from tabular.methods import METHODS, sampled_methods


def test_align_offers_exactly_the_shared_tables_sampled_methods():
    choices = {f.name: f.metadata.get("choices") for f in dataclasses.fields(AlignConfig)}
    assert choices["method"] == tuple(sampled_methods())
    assert set(METHODS) - set(choices["method"]) == {"nash_md", "extragradient"}


def test_method_params_is_frozen_normalised_and_reads_the_table():
    p = MethodParams("nash_md_pg", tau=1, beta=0.25)
    assert (p.tau, p.beta, type(p.tau)) == (1.0, 0.25, float)
    assert p.spec is METHODS["nash_md_pg"] and p.betas() == (0.0, 0.25)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.tau = 2.0


@pytest.mark.parametrize("kw, message", [
    (dict(method="nash_md", tau=0.1, beta=0.1), "unknown method 'nash_md'"),  # tabular-only (closed form)
    (dict(method="online_ipo", tau=0.0, beta=0.1), "--tau: tau > 0 required"),
    (dict(method="online_ipo", tau=float("nan"), beta=0.1), "--tau: tau > 0 required"),
    (dict(method="online_ipo", tau="x", beta=0.1), "--tau: tau must be a number"),
    (dict(method="ipo_md", tau=0.1, beta=1.5), "--beta: beta must lie in [0, 1]"),
    (dict(method="ipo_md", tau=0.1, beta=0.5, temperature=0.0), "--temperature must be a finite number > 0"),
    (dict(method="ipo_md", tau=0.1, beta=0.5, label_type="fuzzy"), "--label-type must be one of"),
    (dict(method="ipo_md", tau=0.1, beta=0.5, logp_reduction="max"), "--logp-reduction must be one of"),
    (dict(method="rl", tau=0.1, beta=0.5, label_type="hard"), "--label-type applies to methods labelled"),
])
def test_method_params_refuses_bad_hyperparameters_in_one_line(kw, message):
    with pytest.raises(UsageError) as e:
        MethodParams(**kw)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_align_config_validates_through_method_params():
    cfg = AlignConfig(out="x", sft="s", pm="p", method="ipo_md", tau=0.2, beta=0.3, label_type="hard",
                      logp_reduction="mean", temperature=0.7)
    assert cfg.method_params() == MethodParams("ipo_md", 0.2, 0.3, "hard", "mean", 0.7)
    with pytest.raises(UsageError, match="--tau"):
        dataclasses.replace(cfg, tau=-1.0).validate()


@pytest.mark.parametrize("cfg, flag", [
    (SFTConfig(out="x", batch_size=0), "--batch-size"),
    (PMConfig(out="x", sft="s", heldout_pairs=0), "--heldout-pairs"),
    (PMConfig(out="x", sft="s", lr=float("inf")), "--lr"),
    (AlignConfig(out="x", sft="s", pm="p", eval_prompts=0), "--eval-prompts"),
    (AlignConfig(out="x", sft="s", pm="p", eval_every=-1), "--eval-every"),
    (EvalConfig(out="x", models=["a=b"], samples_per_prompt=0), "--samples-per-prompt"),
    (PipelineConfig(out="x", pm_pairs=0), "--pm-pairs"),
    (PipelineConfig(out="x", align_lr=0.0), "--align-lr"),
    (StudyConfig(out="x", valid_prompts=0), "--valid-prompts"),
    (StudyConfig(out="x", chains=0), "--chains"),
    (StudyConfig(out="x", beta=-0.5), "--beta"),
])
def test_every_stage_checks_its_own_fields(cfg, flag):
    with pytest.raises(UsageError, match=flag):
        cfg.validate()


def test_pipeline_taus_are_parsed_once_and_a_missing_tau_is_an_error_not_0_1():
    cfg = PipelineConfig(out="x", methods=["online_ipo", "rl"], taus=["online_ipo=0.2", "rl=0.05"],
                         sweep_taus=["0.5", "2"], sweep_betas=["0", "1"])
    cfg.validate()
    assert cfg.tau_table == {"online_ipo": 0.2, "rl": 0.05} and cfg.tau_of("rl") == 0.05
    assert cfg.sweep_tau_grid == (0.5, 2.0) and cfg.sweep_beta_grid == (0.0, 1.0)
    lacking = dataclasses.replace(cfg, methods=["online_ipo", "ipo_md"])
    with pytest.raises(UsageError, match="--taus lacks a tau for ipo_md"):
        lacking.validate()
    with pytest.raises(UsageError, match="--taus lacks a tau for ipo_md"):
        cfg.tau_of("ipo_md")
    with pytest.raises(UsageError, match="--taus lacks a tau for ipo_md"):  # the beta sweep runs ipo_md
        dataclasses.replace(cfg, sweep=True).validate()


@pytest.mark.parametrize("kw, message", [
    (dict(taus=["online_ipo=0.1,0.2", "rl=0.1"]), "--taus gives one tau per method"),
    (dict(taus=["online_ipo=0.1", "online_ipo=0.2", "rl=0.1"]), "--taus gives online_ipo twice"),
    (dict(taus=["online_ipo=0.1", "nash_md=0.1"]), "--taus nash_md=0.1: unknown method 'nash_md'"),
    (dict(sweep_betas=["0.5", "1.5"]), "--sweep-betas 1.5: beta must lie in [0, 1]"),
    (dict(sweep_taus=["-1"]), "--sweep-taus -1: tau > 0 required"),
])
def test_pipeline_bad_numbers_name_the_flag_and_entry(kw, message):
    cfg = PipelineConfig(out="x", **{"methods": ["online_ipo"], "taus": ["online_ipo=0.1"], **kw})
    with pytest.raises(UsageError) as e:
        cfg.validate()
    assert message in str(e.value)


def test_study_grids_are_typed():
    cfg = StudyConfig(out="x", methods=["online_ipo", "nash_md_pg"],
                      taus=["online_ipo=0.1,1", "nash_md_pg=0.02"], betas=["0", "0.5"], select_against="sft")
    cfg.validate()  # (no rl in --methods: the selection is against SFT)
    assert cfg.tau_grid == {"online_ipo": (0.1, 1.0), "nash_md_pg": (0.02,)} and cfg.beta_grid == (0.0, 0.5)


def test_a_field_added_since_a_run_started_does_not_block_its_resume():
    """A run folder's config.json written before a flag existed (e.g. align's --eval-vs) resumes
    when the current run leaves that flag at its default, and is refused when it does not."""
    import dataclasses

    from llm.config import AlignConfig
    from llm.runtime import _check_same
    from opo_toolkit.cliargs import UsageError

    cfg = AlignConfig(out="x", sft="s", pm="p", rm="r")
    old = dataclasses.asdict(cfg)
    old.pop("eval_vs")
    _check_same(old, dataclasses.asdict(cfg), "x/config.json", cfg)
    changed = dataclasses.replace(cfg, eval_vs="some/policy")
    with pytest.raises(UsageError, match="eval_vs"):
        _check_same(old, dataclasses.asdict(changed), "x/config.json", changed)
    with pytest.raises(UsageError, match="eval_vs"):  # without the config: no default to assume
        _check_same(old, dataclasses.asdict(cfg), "x/config.json")
