"""``arg``: a parameter from the command line, cast to the type of its default."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

from trellis._errors import BadArgumentError, TrellisError
from trellis.capture import run as _runs
from trellis.capture.imports import when_imported
from trellis.capture.values import encode
from trellis.store.cells import PLAIN

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


class _Bare(str):
    """A ``--name`` given without a value: a bool argument's "true", no other argument's value."""


BARE = _Bare("true")


def from_command_line(name: str, argv: list[str]) -> str | None:
    """The raw value given for ``name`` as ``--name value``, ``--name=value`` or ``name=value``.

    Dashes and underscores are interchangeable in the name; a bare ``--name`` is ``BARE``.
    """
    wanted = {name, name.replace("_", "-"), name.replace("-", "_")}
    found: str | None = None
    position = 0
    while position < len(argv):
        token = argv[position]
        if token.startswith("--"):
            key, equals, raw = token[2:].partition("=")
            if key in wanted:
                if equals:
                    found = raw
                elif position + 1 < len(argv) and not argv[position + 1].startswith("--"):
                    found = argv[position + 1]
                    position += 1
                else:
                    found = BARE
        else:
            key, equals, raw = token.partition("=")
            if equals and key in wanted:
                found = raw
        position += 1
    return found


def cast(name: str, raw: str, default: Any) -> Any:
    kind = type(default)
    if raw is BARE and kind is not bool:
        flag = name.replace("_", "-")
        raise BadArgumentError(
            f"argument {name}: --{flag} needs a value (--{flag} VALUE or --{flag}=VALUE); only an"
            f" argument whose default is True or False may be given alone"
        )
    try:
        if default is None or kind is str:
            return raw
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(raw)
        if kind in (int, float):
            return kind(raw)
        if kind in (list, dict, tuple):
            parsed = json.loads(raw)
            if kind is tuple and isinstance(parsed, list):
                parsed = tuple(parsed)
            if not isinstance(parsed, kind):
                raise ValueError(raw)
            return parsed
        return kind(raw)
    except (ValueError, TypeError):
        expected = "JSON " + kind.__name__ if kind in (list, dict, tuple) else kind.__name__
        raise BadArgumentError(
            f"argument {name}: expected {expected} (like its default {default!r}), got {raw!r}"
        ) from None


def arg(name: str, default: Any = None) -> Any:
    """A parameter: from the command line if given there, else ``default``; recorded as such."""
    if type(name) is not str:
        raise TrellisError(
            f"trellis.arg: the name must be a str, like trellis.arg(\"lr\", 0.1), not {type(name).__name__}"
        )
    run = _runs.current() or _runs.begin()
    raw = from_command_line(name, sys.argv[1:])
    value = default if raw is None else cast(name, raw, default)
    if run is not None and run.replaying is not None:
        return run.replaying.arg(name, value)
    if run is not None and name not in run.params:
        from trellis.capture.environment import is_secret_name

        recorded = "***" if is_secret_name(name) else value
        if type(recorded) not in PLAIN:
            try:  # now, so that a later change to the value cannot change what is recorded
                recorded = encode(name, recorded, "trellis.arg")
            except Exception as error:
                run.problem(f"the value of argument {name!r}", error)
                return value
        run.params[name] = (recorded, "default" if raw is None else "command line")
    return value


def watch_argparse() -> None:
    """What the script's own ``argparse`` parser reads from its command line is recorded as
    params, as ``arg`` records its own (a name ``arg`` recorded first keeps its value)."""
    when_imported("argparse", _patch_argparse)


def _patch_argparse(argparse: Any) -> None:
    parse = argparse.ArgumentParser.parse_known_args
    if getattr(parse, "__trellis_wrapped__", False):
        return

    @functools.wraps(parse)
    def parse_known_args(self: Any, args: Any = None, namespace: Any = None) -> Any:
        parsed = parse(self, args, namespace)
        if args is None:  # the command line itself, not a list the program parses for itself
            _record_parsed(self, parsed[0])
        return parsed

    parse_known_args.__trellis_wrapped__ = True  # type: ignore[attr-defined]
    argparse.ArgumentParser.parse_known_args = parse_known_args


def _record_parsed(parser: Any, namespace: Any) -> None:
    run = _runs.current()
    if run is None or run.replaying is not None:
        return
    from trellis.capture.environment import is_secret_name

    try:
        for name, value in vars(namespace).items():
            if name in run.params:
                continue
            source = "default" if value == parser.get_default(name) else "command line"
            if is_secret_name(name) and value is not None:  # None: no secret was given
                value = "***"
            elif type(value) not in PLAIN:
                # lists of plain values keep their items; anything else (a path, an open file)
                # is recorded as the text it shows
                value = encode(name, value, "argparse") if _plain_items(value) else str(value)[:1000]
            run.params[name] = (value, source)
    except Exception as error:
        run.problem("the arguments argparse read", error)


def _plain_items(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(type(item) in PLAIN for item in value)
