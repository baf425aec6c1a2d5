"""The one CLI toolkit shared by every entry point (``tabular``, ``llm``, ``figures``, ``proofs_check``).

Bad user input raises :class:`UsageError`; every CLI prints its one-line message and exits with 2.
"""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(ValueError):
    """A bad user input: the CLI prints its one-line message and exits with status 2."""
