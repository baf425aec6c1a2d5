"""``python -m llm sft|train-pm|align|evaluate|pipeline|study|judges``: one subcommand per stage
(``report`` and ``compare`` are tools that read a finished run's summary).

The flags of each subcommand are built from its config dataclass (:mod:`llm.config`) by
:func:`opo_toolkit.cliargs.add_dataclass_flags`: one flag per field, its help from the field's
metadata, its default shown by ``ArgumentDefaultsHelpFormatter``.
A usage error (bad flag value, bad path, run folder already used, ...) prints one line on stderr
and exits with status 2, without a traceback and before anything is written.
"""

from __future__ import annotations

import json
import sys

from opo_toolkit.cliargs import Parser, add_dataclass_flags, config_from_args, run_command

from .config import STAGE_CONFIGS

__all__ = ["main", "build_parser"]


def _stages():
    from .align import run_align
    from .evaluate import run_evaluate
    from .judges import run_judges
    from .pipeline import run_pipeline
    from .study import run_study
    from .train import run_sft, run_train_pm

    return {"sft": run_sft, "train-pm": run_train_pm, "align": run_align, "evaluate": run_evaluate,
            "pipeline": run_pipeline, "study": run_study, "judges": run_judges}


def build_parser() -> Parser:
    parser = Parser(prog="python -m llm", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, cls in STAGE_CONFIGS.items():
        add_dataclass_flags(sub.add_parser(name, help=cls.__doc__.split("\n")[0], description=cls.__doc__),
                            cls)
    for name, help in _TOOLS.items():  # own argument parsers: main() hands them argv first
        sub.add_parser(name, help=help, add_help=False)
    return parser


# Subcommands that are not stages (no run folder): ``python -m llm NAME --help``.
_TOOLS = {"report": "render the README's LLM tables from RUN_DIR/summary.json",
          "compare": "check that a run reproduces a reference summary (bit for bit, or within its intervals)",
          "exact": "the enumerable task: transformers against their exact tabular targets (own flags)",
          "exact-report": "render the tables of an `exact` run (RUN_DIR/summary.json) into a README block",
          "features": "what a pipeline run's policies say, feature by feature, chain by chain (own flags)"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "report":
        from .report import main as report_main

        return report_main(argv[1:])
    if argv and argv[0] == "exact":
        from .exact import main as exact_main

        return exact_main(argv[1:])
    if argv and argv[0] == "exact-report":
        from .exact_report import main as exact_report_main

        return exact_report_main(argv[1:])
    if argv and argv[0] == "features":
        from .features import main as features_main

        return features_main(argv[1:])
    if argv and argv[0] == "compare":
        from .compare import main as compare_main

        return compare_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    # Ctrl-C: a stage notes where it stopped (llm.runtime.stage_function); before one opens its
    # folder nothing has been written
    return run_command(f"{parser.prog} {args.stage}", lambda: _run_stage(args),
                       interrupted="interrupted before anything was written: rerun the command")


def _run_stage(args) -> int:
    config = config_from_args(STAGE_CONFIGS[args.stage], args)
    result = _stages()[args.stage](config, progress=True)
    if args.stage not in ("pipeline", "study", "judges"):
        print(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}, indent=2, default=str))
    return 0
