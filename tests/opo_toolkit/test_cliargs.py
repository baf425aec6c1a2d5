"""The shared CLI toolkit: dataclass fields -> flags, one error format, the main wrapper."""

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from opo_toolkit.cliargs import (
    Parser,
    UsageError,
    add_dataclass_flags,
    config_from_args,
    fields_from,
    flag,
    run_command,
)
from tabular.algorithms import AlgorithmConfig


@dataclass(frozen=True)
class Documented:
    """A config in the CleanRL style: each field's docstring is its help."""

    target: str = flag("where to (metadata help wins over a docstring)")
    """not this one"""
    size: int = 3
    """how many (in %)"""
    name: str | None = None
    """an optional name"""
    verbose: bool = False
    """say more"""
    colour: bool = True
    """use colour"""
    paths: list[Path] = field(default_factory=lambda: [Path("a")])
    """one or more paths"""
    mode: str = field(default="fast", metadata={"choices": ("fast", "slow")})
    """how to go"""


def parse(cls, argv):
    parser = Parser(prog="prog")
    add_dataclass_flags(parser, cls)
    return parser, config_from_args(cls, parser.parse_args(argv))


def test_fields_become_flags_with_their_types_and_defaults():
    _, cfg = parse(Documented, ["--target", "x"])
    assert cfg == Documented(target="x")
    _, cfg = parse(Documented, ["--target", "x", "--size", "5", "--name", "n", "--verbose",
                                "--no-colour", "--paths", "p", "q", "--mode", "slow"])
    assert cfg == Documented("x", 5, "n", True, False, [Path("p"), Path("q")], "slow")


def test_help_comes_from_docstrings_or_metadata_and_states_defaults():
    parser, _ = parse(Documented, ["--target", "x"])
    text = " ".join(parser.format_help().split())
    assert "how many (in %) (default: 3)" in text  # "%" escaped for argparse, default stated
    assert "an optional name (default: None)" in text and "{fast,slow}" in text
    assert "where to (metadata help wins over a docstring)" in text and "not this one" not in text
    # a required flag states no default (argparse would print "(default: None)")
    assert "docstring) (default" not in text


def test_a_field_without_help_is_a_bug():
    @dataclass
    class NoHelp:
        x: int = 1

    with pytest.raises(TypeError, match="NoHelp.x has no help"):
        add_dataclass_flags(Parser(), NoHelp)


def test_bad_flag_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        parse(Documented, ["--target", "x", "--size", "many"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and re.fullmatch(r"prog: error: argument --size: .*\n", err), err
    with pytest.raises(SystemExit):
        parse(Documented, [])  # the required --target
    assert "required" in capsys.readouterr().err


def test_run_command_turns_listed_errors_into_one_line(capsys):
    def bad():
        raise UsageError("two\n  lines")

    assert run_command("prog cmd", bad) == 2
    assert capsys.readouterr().err == "prog cmd: error: two lines\n"
    assert run_command("prog", lambda: 7) == 7

    def bug():
        raise ValueError("a bug, not bad input")

    with pytest.raises(ValueError):  # only the listed exceptions are usage errors
        run_command("prog", bug)
    assert run_command("prog", bug, errors=(ValueError,)) == 2


def test_run_command_turns_ctrl_c_into_one_line_and_exit_130(capsys):
    def interrupted():
        raise KeyboardInterrupt

    def interrupted_with_a_note():
        e = KeyboardInterrupt()
        e.add_note("interrupted after 3 of 9 steps in\nrun; rerun with --resume")  # what a stage knows
        raise e

    assert run_command("prog cmd", interrupted) == 130
    assert capsys.readouterr().err == "prog cmd: interrupted: rerun the command\n"
    assert run_command("prog cmd", interrupted, interrupted="interrupted; solve writes nothing") == 130
    assert capsys.readouterr().err == "prog cmd: interrupted; solve writes nothing\n"
    assert run_command("prog cmd", interrupted_with_a_note) == 130
    assert capsys.readouterr().err == "prog cmd: interrupted after 3 of 9 steps in run; rerun with --resume\n"


REGISTRY = {"a": 1}


@dataclass(frozen=True)
class FromRegistry:
    kind: str = field(default="a", metadata={"choices": lambda: tuple(REGISTRY)})
    """one of the registry's names, as it stands when the parser is built"""


def test_callable_choices_are_read_when_the_parser_is_built(monkeypatch):
    monkeypatch.setitem(REGISTRY, "b", 2)  # registered after the class was defined
    parser, cfg = parse(FromRegistry, ["--kind", "b"])
    assert cfg == FromRegistry("b") and "{a,b}" in parser.format_help()
    with pytest.raises(SystemExit):
        parse(FromRegistry, ["--kind", "c"])


def _grid(words):
    if not all(w.replace(".", "", 1).isdigit() for w in words):
        raise UsageError(f"--grid takes numbers, got {' '.join(words)}")
    return tuple(float(w) for w in words)


@dataclass(frozen=True)
class Typed:
    grid: tuple[float, ...] = field(default=(0.5, 2.0), metadata={
        "parse": _grid, "words": lambda values: [f"{v:g}" for v in values], "metavar": "X"})
    """numbers, held as a tuple"""


def test_a_typed_field_parses_its_words_and_shows_its_default_as_words():
    parser, cfg = parse(Typed, [])
    assert cfg == Typed() and type(cfg.grid) is tuple  # left out: the field's own default
    assert "numbers, held as a tuple (default: 0.5 2)" in " ".join(parser.format_help().split())
    assert parse(Typed, ["--grid", "1", "3.5"])[1] == Typed((1.0, 3.5))
    with pytest.raises(UsageError, match="--grid takes numbers, got 1 x"):  # run_command's one line
        parse(Typed, ["--grid", "1", "x"])


@dataclass(frozen=True)
@fields_from(AlgorithmConfig, after="first", flags={"lr": {"help": "step size"},
                                                    "optimizer": {"help": "opt", "choices": ("sgd", "adam")}})
class Borrowing:
    first: int = flag("first", 1)
    last: int = flag("last", 2)


def test_fields_from_takes_type_and_default_from_the_source():
    assert [f.name for f in dataclasses.fields(Borrowing)] == ["first", "lr", "optimizer", "last"]
    cfg = Borrowing()
    assert (cfg.lr, cfg.optimizer) == (AlgorithmConfig.lr, AlgorithmConfig.optimizer)
    _, cfg = parse(Borrowing, ["--lr", "0.5", "--optimizer", "adam"])
    assert cfg.lr == 0.5 and cfg.optimizer == "adam"
    with pytest.raises(SystemExit):
        parse(Borrowing, ["--optimizer", "rmsprop"])
    with pytest.raises(TypeError, match="no field nosuch"):
        fields_from(AlgorithmConfig, after="first", flags={"nosuch": {"help": "x"}})


def test_run_config_defaults_are_algorithm_config_defaults():
    """``tabular run`` declares no hyperparameter of its own: its defaults are AlgorithmConfig's."""
    from tabular.cli import ALGORITHM_FLAGS, RunConfig

    run = RunConfig(algorithms="online_ipo", game="bt:3", tau=0.5, out="x")
    values = {name: getattr(run, name) for name in ALGORITHM_FLAGS}
    assert AlgorithmConfig("online_ipo", tau=0.5, **values) == AlgorithmConfig("online_ipo", tau=0.5)


def _entry_points():
    from figures.cli import main as figures_main
    from llm.cli import main as llm_main
    from proofs_check.__main__ import main as ledger_main
    from tabular.cli import main as tabular_main

    return {"python -m tabular run": lambda a: tabular_main(["run", *a]),
            "python -m llm sft": lambda a: llm_main(["sft", *a]),
            "python -m figures": figures_main, "python -m proofs_check": ledger_main}


@pytest.mark.parametrize("prog", ["python -m tabular run", "python -m llm sft", "python -m figures",
                                  "python -m proofs_check"])
def test_every_entry_point_has_the_one_error_format(prog, capsys):
    main = _entry_points()[prog]
    with pytest.raises(SystemExit) as e:
        main(["--seed", "x"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err == f"{prog}: error: argument --seed: invalid int value: 'x'\n", err


def test_a_reader_that_leaves_ends_the_command_quietly_with_141():
    """``python -m ... | head``: once head has its line the writer ends with 141, not a traceback."""
    import subprocess
    import sys

    code = ("import sys; from opo_toolkit.cliargs import main_status\n"
            "def main():\n    for i in range(10**6):\n        print('line', i)\n    return 0\n"
            "sys.exit(main_status(main))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"line 0\n"
    proc.stdout.close()  # the reader leaves
    assert proc.wait(timeout=60) == 141 and proc.stderr.read() == b""
    proc.stderr.close()
