"""``python -m proofs_check [--quick] [--json] [--seed N] [--only NAME ...]``: print the ledger."""

from __future__ import annotations

import argparse
import sys

from .checks import run_ledger
from .ledger import format_table, to_json


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proofs_check", description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8 instances per row (CI)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON on stdout")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed of every row")
    parser.add_argument("--only", nargs="*", default=None,
                        help="run the checks whose function name contains one of these")
    args = parser.parse_args(argv)
    rows = run_ledger(quick=args.quick, seed=args.seed, only=args.only)
    print(to_json(rows) if args.json else format_table(rows))
    return 0 if all(r.status == "PASS" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
