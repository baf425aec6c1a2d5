"""``python -m figures``: see :mod:`figures.cli`."""

from opo_toolkit.cliargs import main_status

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main_status(main))
