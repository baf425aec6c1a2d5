"""The list flags' words and the typed values they stand for (:mod:`llm.config` declares the flags).

The pipeline's ``--taus`` is a mapping ``{method: tau}``, the study's ``{method: (tau, ...)}``,
``--sweep-taus`` / ``--sweep-betas`` / ``--betas`` tuples of numbers. Each has one parser
(:func:`tau_table`, :func:`tau_grids`, :func:`numbers`), declared as the field's
``metadata["parse"]`` with ``metadata["words"]`` for the way back (:data:`TAU_TABLE`,
:data:`TAU_GRIDS`, :func:`number_flag`): the CLI turns the words into the value with it
(:func:`opo_toolkit.cliargs.config_from_args`), ``validate`` checks the value with it, and
:func:`recorded_config` reads a recorded config with it. ``config.json`` records the value (a JSON
mapping / list of numbers); runs and summaries written before the flags were typed recorded the
words (``["online_ipo=0.05", ...]``), which read back as the same value. Every bad word is a
one-line :class:`~opo_toolkit.cliargs.UsageError` naming its flag.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from opo_toolkit.cliargs import UsageError
from tabular.game import validate_tau
from tabular.methods import sampled_methods

__all__ = ["checked", "known_method", "numbers", "number_words", "table_words", "method_values", "tau_table",
           "tau_grids", "number_flag", "TAU_TABLE", "TAU_GRIDS", "recorded_config"]


def checked(flag: str, check, value):
    """``check(value)`` (a tabular validator), its ValueError re-raised as a one-line UsageError
    that names the flag."""
    try:
        return check(value)
    except ValueError as e:
        raise UsageError(f"{flag}: {e}") from None


def known_method(name, where: str = "") -> None:
    """``name`` is a method the llm runs (one the shared table samples), else a one-line UsageError."""
    if name not in sampled_methods():
        raise UsageError(f"{where}unknown method {name!r}; choose from {', '.join(sampled_methods())}")


def _distinct(values: tuple, flag: str) -> tuple:
    """``values`` unless one number appears twice (``0.1,1e-1`` too): a grid point run twice
    would be written twice."""
    seen = set()
    for v in values:
        if v in seen:
            raise UsageError(f"{flag} gives {v:g} twice")
        seen.add(v)
    return values


def _word(value) -> str:
    """A number as a flag word: ``%g`` where that is exact (``0.05``, ``1``), else its repr; a word
    stays as given."""
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def number_words(values) -> list[str]:
    """A tuple of numbers as the flag's words (``--help``'s default, the study's printed preset)."""
    return [_word(v) for v in values]


def table_words(table) -> list[str]:
    """``{method: tau}`` or ``{method: (tau, ...)}`` as ``METHOD=V[,V...]`` words."""
    return [f"{m}={','.join(number_words(v if isinstance(v, (tuple, list)) else (v,)))}"
            for m, v in table.items()]


def numbers(values, flag: str, check) -> tuple[float, ...]:
    """A list flag's words (or numbers) as a tuple of distinct numbers, each through ``check``
    (``validate_tau`` / ``validate_beta``)."""
    return _distinct(tuple(checked(f"{flag} {_word(v)}", check, v) for v in values), flag)


def method_values(entries, flag: str, check) -> dict[str, tuple[float, ...]]:
    """``METHOD=V1,V2,...`` words, or the mapping ``{method: (v1, v2, ...)}`` they stand for, as
    ``{method: (v1, v2, ...)}``, each value through ``check``.

    One-line UsageError for an entry without ``=``, an unknown method, a repeated method or value,
    or a bad value.
    """
    items = []  # (method, its values, the entry as messages name it)
    if isinstance(entries, Mapping):
        for method, values in entries.items():
            if not isinstance(values, (tuple, list)):
                raise UsageError(f"{flag} {method}: its grid must be a sequence of numbers, got {values!r}")
            items.append((method, values, table_words({method: values})[0]))
    else:
        for entry in entries:
            method, sep, values = entry.partition("=")
            if not sep or not values:
                raise UsageError(f"{flag} entries must be METHOD=VALUE[,VALUE...], got {entry!r}")
            items.append((method, values.split(","), entry))
    table = {}
    for method, values, entry in items:
        known_method(method, f"{flag} {entry}: ")
        if method in table:
            raise UsageError(f"{flag} gives {method} twice")
        table[method] = _distinct(tuple(checked(f"{flag} {entry}", check, v) for v in values),
                                  f"{flag} {entry}")
    return table


def tau_table(entries) -> dict[str, float]:
    """``METHOD=TAU`` words (the pipeline's ``--taus``), or the mapping ``{method: tau}``, as
    ``{method: tau}``: one tau per method."""
    if isinstance(entries, Mapping):
        entries = {method: (tau,) for method, tau in entries.items()}
    table = method_values(entries, "--taus", validate_tau)
    for method, taus in table.items():
        if len(taus) != 1:
            raise UsageError(f"--taus gives one tau per method, got {method}={','.join(map(str, taus))}")
    return {method: taus[0] for method, taus in table.items()}


def tau_grids(entries) -> dict[str, tuple[float, ...]]:
    """The study's ``--taus``: ``METHOD=T1,T2,...`` words (or the mapping) as ``{method: (tau, ...)}``."""
    return method_values(entries, "--taus", validate_tau)


def number_flag(flag: str, check, metavar: str) -> dict:
    """The metadata of a flag that holds a tuple of numbers: its parser and how --help shows it."""
    return {"parse": lambda values: numbers(values, flag, check), "words": number_words, "metavar": metavar}


# The metadata of the two --taus flags.
TAU_TABLE = {"parse": tau_table, "words": table_words, "metavar": "METHOD=TAU"}
TAU_GRIDS = {"parse": tau_grids, "words": table_words, "metavar": "METHOD=T1,T2,..."}


def recorded_config(cls, data: dict) -> dict:
    """A recorded config of the dataclass ``cls`` (``config.json``, a checkpoint's or a summary's
    ``config``) with each typed list flag read back through its parser: from the value recorded (a
    JSON mapping / list of numbers) or, in runs written before the flags were typed, from the words
    given. ``cls(**recorded_config(cls, json.loads(json.dumps(asdict(cfg)))))`` equals ``cfg``. A value
    that reads in neither form is left as recorded (it differs from any typed value)."""
    out = dict(data)
    for f in dataclasses.fields(cls):
        parse = f.metadata.get("parse")
        if parse is not None and f.name in out:
            try:
                out[f.name] = parse(out[f.name])
            except (ValueError, TypeError, AttributeError):  # UsageError is a ValueError
                pass
    return out
