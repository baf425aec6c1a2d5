"""Configs: one method table, one hyperparameter value (MethodParams), typed list flags with one
parser each (words on the command line, values in the config, either form read back)."""

import copy
import dataclasses
import json
import os

import pytest

from llm.cli import build_parser
from llm.config import (
    AlignConfig,
    EvalConfig,
    MethodParams,
    PipelineConfig,
    PMConfig,
    SFTConfig,
    StudyConfig,
)
from llm.flag_values import recorded_config
from opo_toolkit.cliargs import UsageError, config_from_args
from tabular.losses import PAIRWISE_LOSSES
from tabular.methods import METHODS, Method, sampled_methods, slic_lr

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_align_offers_exactly_the_shared_tables_sampled_methods():
    choices = {f.name: f.metadata.get("choices") for f in dataclasses.fields(AlignConfig)}
    assert choices["method"]() == tuple(sampled_methods())
    assert set(METHODS) - set(choices["method"]()) == {"nash_md", "extragradient"}


def test_a_method_added_to_the_table_is_an_align_choice(monkeypatch):
    """Issue 20: a new method is one loss and one row of tabular.methods.METHODS; ``llm align``
    offers it (its --method choices are read when the parser is built, not at import) and
    MethodParams validates it."""
    monkeypatch.setitem(PAIRWISE_LOSSES, "sq_hinge", PAIRWISE_LOSSES["slic"])  # stands in for a new loss
    monkeypatch.setitem(METHODS, "online_sq_hinge",
                        Method("pairwise", "sq_hinge", "pi", "pi", "online squared hinge", slic_lr))
    args = build_parser().parse_args(["align", "--out", "x", "--sft", "s", "--pm", "p",
                                      "--method", "online_sq_hinge", "--tau", "0.5"])
    cfg = config_from_args(AlignConfig, args)
    cfg.validate()
    assert cfg.method_params() == MethodParams("online_sq_hinge", 0.5, cfg.beta)
    assert cfg.method_params().spec.loss == "sq_hinge"


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


def test_pipeline_taus_are_typed_and_a_missing_tau_is_an_error_not_0_1():
    cfg = PipelineConfig(out="x", methods=["online_ipo", "rl"], taus={"online_ipo": 0.2, "rl": 0.05},
                         sweep_taus=(0.5, 2.0), sweep_betas=(0.0, 1.0))
    before = copy.deepcopy(cfg)
    cfg.validate()
    assert cfg == before  # validate changes nothing
    assert cfg.tau_of("rl") == 0.05
    lacking = dataclasses.replace(cfg, methods=["online_ipo", "ipo_md"])
    with pytest.raises(UsageError, match="--taus lacks a tau for ipo_md"):
        lacking.validate()
    with pytest.raises(UsageError, match="--taus lacks a tau for ipo_md"):
        cfg.tau_of("ipo_md")
    with pytest.raises(UsageError, match="--taus lacks a tau for ipo_md"):  # the beta sweep runs ipo_md
        dataclasses.replace(cfg, sweep=True).validate()


@pytest.mark.parametrize("kw, message", [
    (dict(taus={"online_ipo": 0.1, "nash_md": 0.1}), "--taus nash_md=0.1: unknown method 'nash_md'"),
    (dict(taus={"online_ipo": -1.0}), "--taus online_ipo=-1: tau > 0 required, got tau = -1.0"),
    (dict(taus={"online_ipo": float("inf")}), "--taus online_ipo=inf: tau > 0 required"),
    (dict(sweep_betas=(0.5, 1.5)), "--sweep-betas 1.5: beta must lie in [0, 1]"),
    (dict(sweep_taus=(-1.0,)), "--sweep-taus -1: tau > 0 required"),
    (dict(sweep_taus=(0.1, 0.1)), "--sweep-taus gives 0.1 twice"),
    (dict(sweep_taus=()), "--sweep-taus and --sweep-betas need at least one value each"),
    # the words belong to the command line: the config holds their values
    (dict(taus=["online_ipo=0.1"]), "--taus must hold a mapping {method: tau} (its words parsed)"),
    (dict(taus={"online_ipo": "0.1"}), "--taus must hold a mapping {method: tau}"),
    (dict(sweep_taus=[0.5]), "--sweep-taus must hold a tuple of numbers"),
])
def test_pipeline_bad_numbers_name_the_flag_and_entry(kw, message):
    cfg = PipelineConfig(out="x", **{"methods": ["online_ipo"], "taus": {"online_ipo": 0.1}, **kw})
    with pytest.raises(UsageError) as e:
        cfg.validate()
    assert message in str(e.value) and "\n" not in str(e.value)


def _parsed(stage, *argv):
    """The config ``python -m llm STAGE --out x ARGV`` runs."""
    cls = {"pipeline": PipelineConfig, "study": StudyConfig}[stage]
    return config_from_args(cls, build_parser().parse_args([stage, "--out", "x", *argv]))


def test_the_command_line_words_become_typed_values_and_defaults_stay_typed():
    cfg = _parsed("pipeline", "--taus", "online_ipo=0.2", "rl=5e-2", "--sweep-taus", "0.5", "2",
                  "--sweep-betas", "0", "1")
    assert cfg.taus == {"online_ipo": 0.2, "rl": 0.05}
    assert (cfg.sweep_taus, cfg.sweep_betas) == ((0.5, 2.0), (0.0, 1.0))
    assert _parsed("pipeline") == PipelineConfig(out="x")  # flags left out: the typed defaults
    study = _parsed("study", "--taus", "online_ipo=0.1,1", "nash_md_pg=0.02", "--betas", "0", "0.5")
    assert study.taus == {"online_ipo": (0.1, 1.0), "nash_md_pg": (0.02,)} and study.betas == (0.0, 0.5)
    assert _parsed("study") == StudyConfig(out="x")


@pytest.mark.parametrize("stage, argv, message", [
    ("pipeline", ["--taus", "online_ipo=0.1,0.2"], "--taus gives one tau per method, got online_ipo=0.1,0.2"),
    ("pipeline", ["--taus", "online_ipo=0.1", "online_ipo=0.2"], "--taus gives online_ipo twice"),
    ("pipeline", ["--taus", "online_ipo"],
     "--taus entries must be METHOD=VALUE[,VALUE...], got 'online_ipo'"),
    ("pipeline", ["--taus", "online_ipo=-1"], "--taus online_ipo=-1: tau > 0 required, got tau = -1.0"),
    ("pipeline", ["--sweep-betas", "0.5", "1.5"], "--sweep-betas 1.5: beta must lie in [0, 1]"),
    ("study", ["--taus", "online_ipo=0.1,1e-1"], "--taus online_ipo=0.1,1e-1 gives 0.1 twice"),
    ("study", ["--betas", "x"], "--betas x: beta must be a number, got 'x'"),
])
def test_bad_words_are_one_line_usage_errors_naming_the_flag(stage, argv, message):
    with pytest.raises(UsageError) as e:
        _parsed(stage, *argv)
    assert str(e.value).startswith(message), str(e.value)


def _help(stage, capsys):
    from llm.cli import main

    with pytest.raises(SystemExit):
        main([stage, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_help_shows_the_typed_defaults_as_words(capsys):
    text = _help("pipeline", capsys)
    assert "(default: offline_ipo=0.05 offline_dpo=0.5 offline_slic=0.5 online_ipo=0.05" in text
    assert "(default: 0.02 0.05 0.2 1)" in text and "{" not in text.split("--taus")[-1].split("--beta")[0]
    text = _help("study", capsys)
    assert "(default: online_ipo=0.005,0.01,0.02,0.05,0.1,0.2,0.5,1 ipo_md=" in text
    assert "(default: 0 0.125 0.25 0.5)" in text


def test_study_grids_are_typed():
    cfg = StudyConfig(out="x", methods=["online_ipo", "nash_md_pg"],
                      taus={"online_ipo": (0.1, 1.0), "nash_md_pg": (0.02,)}, betas=(0.0, 0.5),
                      select_against="sft")
    before = copy.deepcopy(cfg)
    cfg.validate()  # (no rl in --methods: the selection is against SFT)
    assert cfg == before


@pytest.mark.parametrize("kw, message", [
    (dict(taus={"online_ipo": (0.1, 0.1)}), "--taus online_ipo=0.1,0.1 gives 0.1 twice"),
    (dict(taus={"online_ipo": 0.1}), "--taus must hold a mapping {method: (tau, ...)}"),
    (dict(taus={"online_ipo": (0.1,), "nash_md": (0.1,)}), "--taus nash_md=0.1: unknown method 'nash_md'"),
    (dict(methods=["online_ipo", "rl"]), "--taus lacks a grid for rl"),
    (dict(betas=(0.5, 2.0)), "--betas 2: beta must lie in [0, 1]"),
    (dict(betas=()), "--betas needs at least one value"),
    (dict(betas=["0.5"]), "--betas must hold a tuple of numbers"),
])
def test_study_bad_grids_name_the_flag(kw, message):
    cfg = StudyConfig(out="x", **{"methods": ["online_ipo"], "taus": {"online_ipo": (0.1,)},
                                  "select_against": "sft", **kw})
    with pytest.raises(UsageError) as e:
        cfg.validate()
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("cfg", [
    PipelineConfig(out="x"), StudyConfig(out="x"), AlignConfig(out="x", sft="s"),
    PipelineConfig(out="x", taus={"online_ipo": 0.1, "rl": 0.0123456789}, sweep_taus=(1.0, 0.1 + 0.2)),
    StudyConfig(out="x", taus={"rl": (0.05, 1e-7)}, betas=(1.0,)),
])
def test_config_json_round_trips(cfg, tmp_path):
    """config.json records the typed values (a JSON mapping / list of numbers); read back, they
    give the same config."""
    from llm.runtime import write_config

    write_config(cfg, str(tmp_path / "config.json"))
    with open(tmp_path / "config.json") as f:
        recorded = json.load(f)
    if isinstance(cfg, PipelineConfig):
        assert recorded["taus"] == cfg.taus and recorded["sweep_taus"] == list(cfg.sweep_taus)
    assert type(cfg)(**recorded_config(type(cfg), recorded)) == cfg


def test_a_run_recorded_with_the_words_reads_as_the_typed_values():
    """Runs and summaries written before the flags were typed recorded the words: they read back as
    the same values, so such a run resumes (and the committed references render) unchanged."""
    from llm.runtime import _check_same

    with open(os.path.join(ROOT, "llm", "reference", "summary.json")) as f:
        old = json.load(f)["config"]
    assert old["taus"][0] == "online_ipo=0.05" and old["sweep_taus"] == ["0.02", "0.05", "0.2", "1.0"]
    read = recorded_config(PipelineConfig, old)
    assert read["taus"] == PipelineConfig(out="x").taus and read["sweep_taus"] == (0.02, 0.05, 0.2, 1.0)
    cfg = PipelineConfig(**read)
    cfg.validate()
    _check_same(old, dataclasses.asdict(cfg), "old/config.json", cfg)  # resumes: unchanged
    changed = dataclasses.replace(cfg, taus={**cfg.taus, "rl": 0.5})
    with pytest.raises(UsageError, match="mismatch in old/config.json: taus differ"):
        _check_same(old, dataclasses.asdict(changed), "old/config.json", changed)
    with open(os.path.join(ROOT, "llm", "reference", "study", "summary.json")) as f:
        old = json.load(f)["config"]
    study = StudyConfig(**recorded_config(StudyConfig, old))
    assert study.taus["rl"] == (0.0025, 0.01, 0.05) and study.betas == (0.125, 0.5)
    # words that no longer parse are left as recorded: they differ from any typed value
    assert recorded_config(StudyConfig, {"taus": ["no_such=1"]}) == {"taus": ["no_such=1"]}


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
    lacking = dataclasses.asdict(cfg)
    lacking.pop("tau")  # not an added field: its absence is not read as its default
    with pytest.raises(UsageError, match="tau"):
        _check_same(lacking, dataclasses.asdict(cfg), "x/config.json", cfg)


def test_a_run_folder_from_before_an_added_field_resumes_and_another_stages_does_not(tmp_path):
    """prepare_run_dir, which reads the folder's config.json before _check_same: a field of
    ADDED_FIELDS missing there is no reason to refuse; a judges folder (its fields a subset of
    the pipeline's) is still another stage's run."""
    import dataclasses
    import json

    from llm.config import AlignConfig, JudgesConfig, PipelineConfig
    from llm.runtime import prepare_run_dir
    from opo_toolkit.cliargs import UsageError

    out = tmp_path / "align"
    out.mkdir()
    cfg = AlignConfig(out=str(out), sft="s", pm="p", resume=True)
    old = dataclasses.asdict(cfg)
    old.pop("eval_vs")
    (out / "config.json").write_text(json.dumps(old))
    assert prepare_run_dir(cfg) is True
    judges = tmp_path / "judges"
    judges.mkdir()
    (judges / "config.json").write_text(json.dumps(dataclasses.asdict(JudgesConfig(out=str(judges)))))
    with pytest.raises(UsageError, match="another stage"):
        prepare_run_dir(PipelineConfig(out=str(judges), resume=True))


def test_every_stage_runs_the_checks_of_every_mixin_it_is_built_from():
    """The mixins' validate()s chain through super(): a stage built from a mixin refuses that
    mixin's bad value (so no stage's validate() breaks the chain)."""
    from llm.config import STAGE_CONFIGS, DataParallel, JudgeTraining, ModelShape, RunConfig

    minimal = {"sft": {}, "train-pm": {"sft": "s"}, "align": {"sft": "s", "pm": "p"},
               "evaluate": {"models": ["a=b"]}, "pipeline": {}, "study": {}, "judges": {}}
    bad = {RunConfig: ({"threads": 0}, "--threads"), ModelShape: ({"n_embd": 65}, "--n-embd"),
           DataParallel: ({"shards": -1}, "--shards"), JudgeTraining: ({"pm_steps": 0}, "--pm-steps")}
    checked = 0
    for stage, cls in STAGE_CONFIGS.items():
        cls(out="x", **minimal[stage]).validate()  # valid as built
        for mixin, (change, flag) in bad.items():
            if issubclass(cls, mixin):
                with pytest.raises(UsageError, match=flag):
                    cls(out="x", **minimal[stage], **change).validate()
                checked += 1
    assert checked == 7 + 5 + 3 + 3  # RunConfig everywhere; ModelShape 5, DataParallel 3, JudgeTraining 3
