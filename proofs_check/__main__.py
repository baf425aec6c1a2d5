"""``python -m proofs_check [--quick] [--json] [--seed N] [--only NAME ...]``: print the ledger."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from opo_toolkit.cliargs import Parser, add_dataclass_flags, config_from_args, main_status
from tabular.game import validate_seed

from .checks import CHECKS, run_ledger
from .ledger import format_table, to_json


@dataclass(frozen=True)
class LedgerConfig:
    quick: bool = False
    """8 instances per row (CI)"""
    json: bool = False
    """print the rows as JSON on stdout"""
    seed: int = 0
    """hypothesis seed of every row"""
    only: list[str] | None = field(default=None, metadata={"nargs": "*"})  # bare --only: refused below
    """run the checks whose function name contains one of these"""


def main(argv=None) -> int:
    parser = Parser(prog="python -m proofs_check", description=__doc__)
    add_dataclass_flags(parser, LedgerConfig)
    args = config_from_args(LedgerConfig, parser.parse_args(argv))
    if args.only is not None:
        names = [fn.__name__ for fn in CHECKS]
        # "" (or blanks) is a substring of every name: refuse it rather than run the whole ledger.
        unmatched = [repr(o) if not o.strip() else o for o in args.only
                     if not o.strip() or not any(o in name for name in names)]
        if not args.only or unmatched:
            parser.error(f"--only: no check matches {', '.join(unmatched) or '(nothing given)'}; "
                         f"the checks are {', '.join(names)}")
    try:
        validate_seed(args.seed)
    except ValueError as e:
        parser.error(str(e))
    rows = run_ledger(quick=args.quick, seed=args.seed, only=args.only)
    print(to_json(rows) if args.json else format_table(rows))
    return 0 if all(r.status == "PASS" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main_status(main))
