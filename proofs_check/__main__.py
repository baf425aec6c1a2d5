"""``python -m proofs_check [--quick] [--json] [--seed N] [--only NAME ...]``: print the ledger."""

from __future__ import annotations

import argparse
import sys

from tabular.cli import _Parser  # usage errors: one line, exit code 2
from tabular.game import validate_seed

from .checks import CHECKS, run_ledger
from .ledger import format_table, to_json


def main(argv=None) -> int:
    parser = _Parser(
        prog="python -m proofs_check", description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8 instances per row (CI)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON on stdout")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed of every row")
    parser.add_argument("--only", nargs="*", default=None,
                        help="run the checks whose function name contains one of these")
    args = parser.parse_args(argv)
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
    sys.exit(main())
