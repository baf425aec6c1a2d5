"""The one CLI toolkit shared by every entry point (``tabular``, ``llm``, ``figures``, ``proofs_check``).

- :class:`Parser`: argparse with every default shown in ``--help`` and one error format, the line
  ``PROG: error: MESSAGE`` on stderr and exit status 2 (argparse prints a usage block first).
- :func:`add_dataclass_flags`: one flag per field of a stage's config dataclass, ``--field-name``,
  its help from ``field.metadata["help"]`` or else the field's attribute docstring (the string
  literal under it, as CleanRL writes ``Args``); type, default and ``choices`` from the field
  (``choices`` may be a zero-argument callable, read when the parser is built, so a registry can
  grow after import). A field whose value is typed (a mapping, a tuple of numbers) declares
  ``metadata["parse"]`` (the flag's words -> the value) and ``metadata["words"]`` (the value ->
  words, for the default shown by ``--help``).
- :func:`config_from_args`: the dataclass back from the parsed flags (``parse`` applied there: call
  it where a :class:`UsageError` becomes one line, under :func:`run_command`).
- :func:`run_command`: runs a command and turns a bad-input exception (:class:`UsageError`; in
  ``tabular`` also the ``ValueError`` of its input checks) into that same one line and exit 2,
  without a traceback; Ctrl-C into one line saying where the command stopped and how to go on,
  and exit 130 (128 + SIGINT, as a shell reports it).
- :func:`main_status`: an entry point's exit status, ``| head`` ending it quietly (141, no traceback).
- :func:`fields_from`: a config that takes some fields of another dataclass (type and default
  declared once, there, the CLI help here), e.g. ``tabular run`` takes ``AlgorithmConfig``'s
  hyperparameters.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import os
import sys
import textwrap
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, field

__all__ = ["UsageError", "Parser", "flag", "add_dataclass_flags", "config_from_args", "run_command",
           "fields_from", "one_line", "shown_value", "main_status"]


class UsageError(ValueError):
    """A bad user input: the CLI prints its one-line message and exits with status 2."""


def one_line(message) -> str:
    """``message`` on one line (newlines and runs of blanks become one space)."""
    return " ".join(str(message).split())


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that states each default in ``--help`` and reports a usage error
    as one line ``PROG: error: MESSAGE`` with exit status 2. Subparsers are of this class too."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):  # argparse prints the usage block before the message; we do not
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


def run_command(prog: str, command: Callable[[], int],
                errors: tuple[type[BaseException], ...] = (UsageError,),
                interrupted: str = "interrupted: rerun the command") -> int:
    """``command()``, or 2 after printing ``PROG: error: MESSAGE`` when it raises one of ``errors``,
    or 130 after printing ``PROG: MESSAGE`` on Ctrl-C (``KeyboardInterrupt``).

    ``errors`` names what counts as bad input: :class:`UsageError` everywhere; ``tabular`` adds
    ``ValueError`` because its input checks (``tabular.game.validate_*``) are library functions
    that raise the standard exception. On Ctrl-C the message is the interrupt's first note (a
    stage that knows where it stopped adds one, e.g. ``llm.runtime.stage_function``), else
    ``interrupted``: one line, no traceback.
    """
    try:
        return command()
    except errors as e:
        print(f"{prog}: error: {one_line(e) or type(e).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        notes = getattr(e, "__notes__", None)
        print(f"{prog}: {one_line(notes[0] if notes else interrupted)}", file=sys.stderr, flush=True)
        return 130


def main_status(main: Callable[[], int | None]) -> int:
    """The exit status of an entry point's ``main()``. When the reader of stdout goes away (``| head``)
    it ends quietly with 141 (128 + SIGPIPE, as a shell tool reports it) instead of a traceback."""
    try:
        code = main()
        sys.stdout.flush()  # a closed pipe shows here at the latest, not at interpreter exit
        return code or 0
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to write to
        return 141


# --------------------------------------------------------------------------------------------
# Dataclass -> flags
# --------------------------------------------------------------------------------------------
def flag(help: str, default=MISSING, **kw):
    """A dataclass field whose ``help`` (and ``choices``, ...) the CLI flag uses; no default means
    the flag is required."""
    return field(default=default, metadata={"help": help, **kw})


# Field metadata passed to ``add_argument`` as is (other keys are for other readers).
_ARGPARSE_KEYS = ("choices", "metavar", "nargs", "type", "action")


def _attribute_docstrings(cls) -> dict[str, str]:
    """``{field: docstring}`` from the string literal under each annotated field, over the MRO."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):  # built in memory or without source
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = one_line(inspect.cleandoc(after.value.value))
    return docs


def _value_type(annotation):
    """``(type, is_list)`` of a field: ``X | None`` -> X; ``list`` / ``list[X]`` -> (X or str, True)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"a flag takes one type, not {annotation}")
        annotation = args[0]
    if annotation is list or typing.get_origin(annotation) is list:
        args = typing.get_args(annotation)
        return (args[0] if args else str), True
    return annotation, False


def _default(f: dataclasses.Field):
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def shown_value(f: dataclasses.Field, value) -> str:
    """``value`` of the field ``f`` as its flag would take it: ``metadata["words"](value)`` joined
    by blanks (``online_ipo=0.05 ipo_md=0.05``), else ``str(value)``."""
    words = f.metadata.get("words")
    return " ".join(words(value)) if words else str(value)


def add_dataclass_flags(parser: argparse.ArgumentParser, cls) -> None:
    """One flag ``--field-name`` per field of the dataclass ``cls``.

    help: ``metadata["help"]``, else the attribute docstring (a field with neither is a bug).
    bool: ``store_true`` (default False) or ``--x/--no-x`` (default True). list: ``nargs="+"``.
    Typed value (``metadata["parse"]``): ``nargs="+"`` words, parsed by :func:`config_from_args`;
    the default, left out of the namespace, is the field's own, shown as ``metadata["words"]``
    gives it. ``metadata["choices"]``: a tuple, or a zero-argument callable called now.
    Required: no default, or ``metadata["required"]``; ``--help`` then shows no default.
    """
    hints = typing.get_type_hints(cls)
    docs = None
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        help_text = meta.get("help")
        if help_text is None:
            docs = _attribute_docstrings(cls) if docs is None else docs
            help_text = docs.get(f.name)
        if help_text is None:
            raise TypeError(f"{cls.__name__}.{f.name} has no help (metadata or docstring)")
        kwargs = {"help": help_text.replace("%", "%%")}  # argparse %-formats help strings
        default = _default(f)
        if default is MISSING or meta.get("required"):
            kwargs.update(required=True, default=argparse.SUPPRESS)  # no "(default: ...)"
        elif "parse" in meta:  # absent from the namespace unless given; its default stated here
            text = shown_value(f, default).replace("%", "%%")
            kwargs.update(default=argparse.SUPPRESS, help=f"{kwargs['help']} (default: {text})")
        else:
            kwargs["default"] = default
        kind, is_list = (str, True) if "parse" in meta else _value_type(hints[f.name])
        if kind is bool:
            kwargs["action"] = (argparse.BooleanOptionalAction if default is True else "store_true")
        else:
            kwargs["type"] = kind
            if is_list:
                kwargs["nargs"] = "+"
        kwargs.update({k: meta[k] for k in _ARGPARSE_KEYS if k in meta})
        if callable(kwargs.get("choices")):  # a registry, read now (it may have grown since import)
            kwargs["choices"] = tuple(kwargs["choices"]())
        parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def config_from_args(cls, args: argparse.Namespace):
    """The dataclass ``cls`` from the flags :func:`add_dataclass_flags` made for it. A typed field's
    words go through its ``metadata["parse"]`` (which raises :class:`UsageError` on bad words);
    left out, it takes the field's default."""
    values = {}
    for f in dataclasses.fields(cls):
        parse = f.metadata.get("parse")
        if parse is None:
            values[f.name] = getattr(args, f.name)
        elif hasattr(args, f.name):
            values[f.name] = parse(getattr(args, f.name))
    return cls(**values)


def fields_from(source, after: str, flags: dict[str, dict]):
    """Class decorator (put it under ``@dataclass``): adds the fields of the dataclass ``source``
    named in ``flags``, with ``source``'s type and default, after the field ``after``; ``flags``
    maps each name to its CLI metadata (``help``, ``choices``). The type and default stay declared
    once, in ``source``; pass the values on with ``source(**{name: getattr(config, name) ...})``."""
    hints = typing.get_type_hints(source)
    borrowed = {f.name: f for f in dataclasses.fields(source) if f.name in flags}
    missing = set(flags) - set(borrowed)
    if missing:
        raise TypeError(f"{source.__name__} has no field {', '.join(sorted(missing))}")

    def decorate(cls):
        own = dict(cls.__dict__.get("__annotations__", {}))
        if after not in own:
            raise TypeError(f"{cls.__name__} has no field {after!r}")
        annotations = {}
        for name, annotation in own.items():
            annotations[name] = annotation
            if name == after:
                for b, meta in flags.items():
                    annotations[b] = hints[b]
                    setattr(cls, b, field(default=_default(borrowed[b]), metadata=meta))
        cls.__annotations__ = annotations
        return cls

    return decorate
