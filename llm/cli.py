"""``python -m llm sft|train-pm|align|evaluate|pipeline``: one subcommand per stage.

The flags of each subcommand are built from its config dataclass (:mod:`llm.config`): one flag per
field, its help from the field's metadata, its default shown by ``ArgumentDefaultsHelpFormatter``.
A usage error (bad flag value, bad path, run folder already used, ...) prints one line on stderr
and exits with status 2, without a traceback and before anything is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from .config import STAGE_CONFIGS
from .models import UsageError

__all__ = ["main", "build_parser", "STAGES"]


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints the usage block before an error; we print one line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_flags(parser: argparse.ArgumentParser, cls) -> None:
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        # argparse %-formats help strings ("%(default)s"): a literal "%" must be doubled
        meta = dict(f.metadata, help=f.metadata["help"].replace("%", "%%"))
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        if f.type == "bool":
            action = "store_true" if default is False else argparse.BooleanOptionalAction
            parser.add_argument(flag, action=action, default=default, help=meta["help"])
        elif f.type == "list":
            parser.add_argument(flag, nargs="+", default=default, required=meta.get("required", False),
                                help=meta["help"])
        else:
            kind = {"int": int, "float": float, "str": str}[f.type]
            parser.add_argument(flag, type=kind, default=None if meta.get("required") else default,
                                required=meta.get("required", False), choices=meta.get("choices"),
                                help=meta["help"])


def _stages():
    from .align import run_align
    from .evaluate import run_evaluate
    from .pipeline import run_pipeline
    from .study import run_study
    from .train import run_sft, run_train_pm

    return {"sft": run_sft, "train-pm": run_train_pm, "align": run_align, "evaluate": run_evaluate,
            "pipeline": run_pipeline, "study": run_study}


STAGES = tuple(STAGE_CONFIGS)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="python -m llm", description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, cls in STAGE_CONFIGS.items():
        p = sub.add_parser(name, help=cls.__doc__.split("\n")[0], description=cls.__doc__,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        _add_flags(p, cls)
    for name, help in _TOOLS.items():  # own argument parsers: main() hands them argv first
        sub.add_parser(name, help=help, add_help=False)
    return parser


# Subcommands that are not stages (no run folder): ``python -m llm NAME --help``.
_TOOLS = {"report": "render the README's LLM tables from RUN_DIR/summary.json"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "report":
        from .report import main as report_main

        return report_main(argv[1:])
    args = build_parser().parse_args(argv)
    cls = STAGE_CONFIGS[args.stage]
    config = cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
    try:
        result = _stages()[args.stage](config, progress=True)
    except UsageError as e:
        print(f"python -m llm {args.stage}: error: {e}", file=sys.stderr)
        return 2
    if args.stage not in ("pipeline", "study"):
        print(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}, indent=2, default=str))
    return 0
