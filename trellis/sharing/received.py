"""What provenance from someone else must be before any of it is written here.

Every import (a notebook's ``metadata.trellis``, a JSON export, another store through push, pull
or ``trellis import x.db``) is checked whole first: types, ranges and formats of every value,
keys that stay inside the run that claims them, digests that name only objects. A document
that fails is refused with one line naming the first problem, and the store is not touched.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
import sys
from pathlib import Path
from typing import Any, Callable

from trellis._errors import StoreError, TrellisError
from trellis.store.schema import BIGINT, JSON, RUN_SHIFT, SCHEMA_VERSION, TABLES

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
NUMBER_LIMIT = 1 << RUN_SHIFT  # a key's low half: the number of a row within its run
RUN_LIMIT = 1 << (63 - RUN_SHIFT)  # a run's keys, run << RUN_SHIFT | number, fit a signed 64-bit integer
INT64 = (-(1 << 63), (1 << 63) - 1)
_LAST_SECOND = 253402300799.0  # 9999-12-31T23:59:59Z: later times cannot be shown as dates
_SHOWN = 160  # characters of a bad value quoted in a message


def _quote(value: Any) -> str:
    text = repr(value).replace("\n", " ")
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def digest_problem(value: Any) -> str | None:
    """Why ``value`` cannot name an object (the object store's own check), or None."""
    from trellis.store.objects import ObjectError, check_digest

    try:
        check_digest(value)
    except ObjectError as error:
        return str(error).split(";")[0]
    return None


def _output_digests(outputs: list[dict[str, Any]]) -> str | None:
    for output in outputs:
        for entry in output["data"].values():
            if entry["object"] is not None:
                problem = digest_problem(entry["object"])
                if problem:
                    return problem
    return None


def parse_json(text: str | bytes, what: str) -> Any:
    """JSON as Python writes it: NaN and Infinity are read as floats (trellis writes them for
    logged values that are not finite); nesting too deep to read is refused."""
    try:
        return json.loads(text)
    except RecursionError:
        raise TrellisError(f"{what} is nested too deeply to read; nothing was imported") from None
    except ValueError as error:  # UnicodeDecodeError and json.JSONDecodeError among them
        raise TrellisError(f"{what} is not valid JSON ({_one_line(error)}); nothing was imported") from None


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 2 * _SHOWN else text[:2 * _SHOWN] + "…"


def check_text(value: Any, what: str) -> None:
    """Every string (and key) inside ``value`` is text a store can hold: no lone surrogates."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is str:
            if not _encodable(item):
                raise TrellisError(f"{what} holds a string that is not Unicode text ({_quote(item)});"
                                   " nothing was imported")
        elif type(item) is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --- notebook provenance (metadata.trellis) -------------------------------------------------

NOTEBOOK_FORMAT = "trellis-notebook-provenance/1"
SCHEMA_FILE = Path(__file__).resolve().parent / "notebook-provenance.schema.json"


@functools.lru_cache(maxsize=1)
def notebook_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def _date_time(value: Any) -> bool:
    from datetime import datetime

    if type(value) is not str:
        return True  # the type is the schema's "type" to check
    try:
        parsed = datetime.fromisoformat(value)
        parsed.timestamp()
    except (ValueError, OverflowError, OSError):
        return False
    return parsed.tzinfo is not None


@functools.lru_cache(maxsize=8)
def validator(pointer: str = "") -> Any:
    """A validator of the published schema (or of its ``$defs`` entry ``pointer``) in which an
    integer is an int, never 1.0, and formats are checked, not only described."""
    import jsonschema
    from jsonschema import Draft202012Validator, FormatChecker

    types = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: type(value) is int)
    strict = jsonschema.validators.extend(Draft202012Validator, type_checker=types)
    formats = FormatChecker(formats=())
    formats.checks("date-time")(_date_time)
    formats.checks("uuid")(lambda value: type(value) is not str or UUID.fullmatch(value) is not None)
    schema = notebook_schema()
    if pointer:
        schema = {"$defs": schema["$defs"], "$ref": f"#/$defs/{pointer}"}
    return strict(schema, format_checker=formats)


def schema_problem(document: Any, pointer: str = "") -> str | None:
    """Where and how ``document`` breaks the schema, in a line; None when it follows it."""
    from jsonschema.exceptions import best_match

    try:
        error = best_match(validator(pointer).iter_errors(document))
    except RecursionError:
        return "it is nested too deeply"
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "the top"
    if error.validator in ("type", "pattern", "format", "enum", "const", "minimum", "maximum", "not",
                           "minLength", "anyOf"):
        reason = f"{_quote(error.instance)} is not {_expected(error)}"
    else:
        reason = " ".join(error.message.split())
        reason = reason if len(reason) <= 2 * _SHOWN else reason[:2 * _SHOWN] + "…"
    return f"at {where}: {reason}"


def _expected(error: Any) -> str:
    schema = error.schema
    if error.validator == "anyOf":
        return "any of " + ", ".join(str(option.get("$ref", option.get("type", option))).split("/")[-1]
                                    for option in schema["anyOf"])
    if error.validator == "not":
        return "allowed here"
    return f"{error.validator} {_quote(error.validator_value)}"


def check_notebook(embedded: Any, where: str) -> None:
    """``embedded`` follows the schema, and its keys stay inside their epochs."""
    check_text(embedded, where)
    problem = schema_problem(embedded)
    if problem:
        raise TrellisError(f"{where} does not follow the notebook provenance schema {problem};"
                           " nothing was imported")
    for number, epoch in enumerate(embedded["epochs"]):
        seen: set[int] = set()
        for execution in epoch["executions"]:
            run_id, step = execution_key(execution["id"])
            if run_id != epoch["run_id"]:
                raise TrellisError(f"{where}: execution {execution['id']} is listed in epoch {epoch['run_id']}"
                                   f" (epochs/{number}) but names another; nothing was imported")
            if step in seen:
                raise TrellisError(f"{where}: execution {execution['id']} appears twice; nothing was imported")
            seen.add(step)
            for dependency in execution["depends_on"]:
                execution_key(dependency["execution"])
            problem = _output_digests(execution["outputs"])
            if problem:
                raise TrellisError(f"{where}: execution {execution['id']} has an output that {problem};"
                                   " nothing was imported")


def execution_key(key: str) -> tuple[str, int]:
    """(epoch uuid, number) of ``<uuid>/<number>``; the number must fit a key's low half."""
    run_id, _, number = key.rpartition("/")
    if UUID.fullmatch(run_id) is None or not number.isdigit() or not number.isascii() or int(number) >= NUMBER_LIMIT:
        raise TrellisError(f"the execution id {_quote(key)} is not <epoch uuid>/<number below 2^32>;"
                           " nothing was imported")
    return run_id, int(number)


def read_notebook(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The provenance in the notebook's metadata, and the output contents its cells carry, by
    their digest: an import keeps only the outputs that came with the notebook."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise TrellisError(f"{path} is not a readable notebook: {error.strerror or error}") from None
    document = parse_json(raw, f"{path}")
    metadata = document.get("metadata") if isinstance(document, dict) else None
    embedded = metadata.get("trellis") if isinstance(metadata, dict) else None
    if not isinstance(embedded, dict):
        if not isinstance(metadata, dict):
            raise TrellisError(f"{path} is not a notebook (no metadata); nothing was imported")
        raise TrellisError(f"{path} holds no trellis provenance; run `trellis notebook embed` on it first")
    return embedded, carried_outputs(document)


# Output contents a notebook holds as base64 text, where the kernel's display gave bytes.
_TEXTUAL = ("text/", "application/json", "application/javascript", "image/svg+xml")


def carried_outputs(document: dict[str, Any]) -> dict[str, bytes]:
    """Every output content in the notebook's cells, as capture hashed it, by BLAKE3 digest."""
    from blake3 import blake3

    carried: dict[str, bytes] = {}
    cells = document.get("cells")
    for cell in cells if isinstance(cells, list) else []:
        outputs = cell.get("outputs") if isinstance(cell, dict) else None
        for output in outputs if isinstance(outputs, list) else []:
            data = output.get("data") if isinstance(output, dict) else None
            for mime, content in data.items() if isinstance(data, dict) else ():
                if isinstance(content, list) and all(isinstance(line, str) for line in content):
                    content = "".join(content)  # nbformat's multi-line strings
                candidates = []
                if isinstance(content, str):
                    candidates.append(content.encode("utf-8", "replace"))
                    if not mime.startswith(_TEXTUAL) and not mime.endswith("+json"):
                        try:
                            candidates.append(base64.b64decode(content))
                        except (binascii.Error, ValueError):
                            pass
                else:
                    candidates.append(json.dumps(content).encode("utf-8", "replace"))
                for raw in candidates:
                    carried[blake3(raw).hexdigest()] = raw
    return carried


# --- JSON exports (trellis-export/1) ----------------------------------------------------------

EXPORTED_TABLES = ("environments", "runs", "params", "iterations", "loops", "logs", "checkpoints",
                   "files", "run_inputs", "steps", "modules", "dependencies", "variables", "replays")

# Keys of a table whose high half is the run of the row (its ``run`` column).
OWN_KEYS = {"iterations": ("id", "parent"), "logs": ("id", "step", "iteration"), "steps": ("id",),
            "files": ("step",), "run_inputs": ("step",), "modules": ("step",), "checkpoints": ("iteration",)}
TIMES = {"runs": ("started", "ended", "committed"), "iterations": ("started", "ended"),
         "files": ("at",), "run_inputs": ("at",), "steps": ("started", "ended"),
         "replays": ("started", "ended")}
# Columns that hold JSON, and what their top level must be.
JSON_COLUMNS = {("environments", "data"): dict, ("runs", "argv"): list, ("runs", "problems"): list,
                ("runs", "git"): dict, ("runs", "build"): dict, ("steps", "analysis"): dict,
                ("steps", "outputs"): list, ("variables", "summary"): dict, ("replays", "names"): list,
                ("iterations", "starts_us"): list, ("runs", "output_times"): dict}
DIGESTS = {("checkpoints", "object"), ("replays", "code")}
# Floats a run may have logged as they are: inf, -inf (NaN is stored as its text).
ANY_FLOAT = {("logs", "float_value"), ("params", "float_value")}


@functools.lru_cache(maxsize=1)
def table_columns() -> dict[str, dict[str, tuple[type, bool]]]:
    """table -> column -> (Python type of its values, whether a row must give it), from the DDL."""
    tables: dict[str, dict[str, tuple[type, bool]]] = {}
    for name, body in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);", TABLES, re.S):
        columns = {}
        for line in body.splitlines():
            found = re.fullmatch(r"\s*(\w+) (\{\w+\}|TEXT)(.*?),?", line)
            if found:
                column, token, rest = found.groups()
                kind = {"{float}": float, "TEXT": str}.get(token, int)
                columns[column] = (kind, token in ("{id}", "{key}") or ("NOT NULL" in rest and "DEFAULT" not in rest))
        tables[name] = columns
    return tables


def _damaged(table: str, number: int, column: str | None, problem: str) -> TrellisError:
    at = f"row {number} of {table}" + (f", column {column}" if column else "")
    return TrellisError(f"the export is damaged: {at}: {problem}; nothing was imported")


def check_export(exported: Any) -> dict[str, list[dict[str, Any]]]:
    """The rows of a ``trellis-export/1`` document, table by table, once every value is checked."""
    if type(exported) is not dict or exported.get("format") != "trellis-export/1" \
            or type(exported.get("tables")) is not dict:
        raise TrellisError("this is not a trellis JSON export (format trellis-export/1)")
    version = exported.get("schema_version", 1)
    if type(version) is not int or version < 1:
        raise TrellisError(f"the export's schema_version {_quote(version)} is not a version number;"
                           " nothing was imported")
    if version > SCHEMA_VERSION:
        raise TrellisError("the export comes from a newer trellis; upgrade trellis to import it")
    unknown = sorted(set(exported["tables"]) - set(EXPORTED_TABLES))
    if unknown:
        raise TrellisError(f"the export has a table {_quote(unknown[0])} that trellis-export/1 does not have;"
                           " nothing was imported")
    tables = {table: _table_rows(exported["tables"], table) for table in EXPORTED_TABLES}
    _check_keys(tables)
    objects = exported.get("objects")
    if objects is not None and type(objects) is not dict:
        raise TrellisError("the export's objects are not a mapping of digest to base64; nothing was imported")
    return tables


def _table_rows(tables: dict[str, Any], table: str) -> list[dict[str, Any]]:
    found = tables.get(table)
    if found is None:
        return []
    if type(found) is not dict or type(found.get("columns")) is not list or type(found.get("rows")) is not list:
        raise TrellisError(f"the export is damaged: {table} is not columns and rows; nothing was imported")
    known = table_columns()[table]
    columns = found["columns"]
    for column in columns:
        if type(column) is not str or column not in known:
            raise TrellisError(f"the export is damaged: {table} has a column {_quote(column)} that this"
                               " trellis does not know; nothing was imported")
    if len(set(columns)) != len(columns):
        raise TrellisError(f"the export is damaged: {table} names a column twice; nothing was imported")
    missing = [c for c, (_, required) in known.items() if required and c not in columns]
    if missing and found["rows"]:
        raise TrellisError(f"the export is damaged: {table} lacks the column {missing[0]}; nothing was imported")
    width = len(columns)
    for number, row in enumerate(found["rows"]):
        if type(row) is not list or len(row) != width:
            raise TrellisError(f"the export is damaged: row {number} of {table} has"
                               f" {len(row) if type(row) is list else 'no list of'} values for {width}"
                               " columns; nothing was imported")
    values = list(zip(*found["rows"])) or [()] * width
    for column, column_values in zip(columns, values):
        _check_column(table, column, column_values, *known[column])
    if table in ("logs", "params") and found["rows"]:
        _check_logged(table, dict(zip(columns, values)))
    return [dict(zip(columns, row)) for row in found["rows"]]


def _check_column(table: str, column: str, values: tuple, kind: type, required: bool) -> None:
    """Every value of a column at once where that can be told quickly (as a push of many values
    needs), else value by value, to name the first bad one."""
    present = [value for value in values if value is not None]
    if (required and len(present) != len(values)) or not _fast_pass(table, column, present, kind):
        check = _value_check(table, column, kind, required)
        for number, value in enumerate(values):
            problem = check(value)
            if problem:
                raise _damaged(table, number, column, problem)


def _fast_pass(table: str, column: str, present: list, kind: type) -> bool:
    """Whether all these (non-null) values are surely good; False means: look at each."""
    if not present:
        return True
    types = set(map(type, present))
    if kind is int:
        return types == {int} and INT64[0] <= min(present) and max(present) <= INT64[1]
    if kind is float:
        if not types <= {int, float} or math.isnan(sum(present)):
            return False  # each NaN is looked at: a logged one may be kept
        lowest, highest = _float_bounds(table, column)
        return lowest <= min(present) and max(present) <= highest
    if types != {str} or (table, column) in DIGESTS or (table, column) in JSON_COLUMNS:
        return False
    joined = "".join(present)
    return joined.isascii() or _encodable(joined)


def _float_bounds(table: str, column: str) -> tuple[float, float]:
    if (table, column) in ANY_FLOAT:
        return -math.inf, math.inf
    if column in TIMES.get(table, ()):
        return 0.0, _LAST_SECOND
    return -sys.float_info.max, sys.float_info.max


def _check_logged(table: str, columns: dict[str, tuple]) -> None:
    """A logged value's kind is one trellis has, and its text reads back as that kind."""
    kinds, texts = columns.get("kind", ()), columns.get("text_value", ())
    for number, kind in enumerate(kinds):
        if type(kind) is not int or not 0 <= kind <= BIGINT:
            raise _damaged(table, number, "kind", f"{_quote(kind)} is not a value kind")
    for number, (kind, text) in enumerate(zip(kinds, texts)):
        if text is None or kind not in (BIGINT, JSON):
            continue
        if kind == BIGINT and re.fullmatch(r"-?[0-9]+", text) is None:
            raise _damaged(table, number, "text_value", f"{_quote(text)} is not the digits of an integer")
        if kind == JSON:
            try:
                parse_json(text, "the value")
            except TrellisError:
                raise _damaged(table, number, "text_value", f"{_quote(text)} is not JSON") from None


def _value_check(table: str, column: str, kind: type, required: bool) -> Callable[[Any], str | None]:
    """A function that says what is wrong with a value of this column, or None.

    The common value passes the first test of its function: a push checks every value it sends.
    """
    low, high = INT64
    lowest, highest = _float_bounds(table, column)
    shape = JSON_COLUMNS.get((table, column))
    digest = (table, column) in DIGESTS

    def missing() -> str | None:
        return "a value is required here" if required else None

    if kind is int:
        def check(value: Any) -> str | None:
            if type(value) is int and low <= value <= high:
                return None
            if value is None:
                return missing()
            return f"{value} does not fit 64 bits" if type(value) is int else f"{_quote(value)} is not an integer"
        return check

    if kind is float:
        any_float = (table, column) in ANY_FLOAT

        def check(value: Any) -> str | None:
            if type(value) is float and (lowest <= value <= highest or (value != value and any_float)):
                return None  # a logged NaN (a loss that diverged) is a value like any other
            if value is None:
                return missing()
            if type(value) is int and low <= value <= high and lowest <= value <= highest:
                return None
            if type(value) not in (int, float):
                return f"{_quote(value)} is not a number"
            if highest == _LAST_SECOND:
                return f"{value} is not a time (seconds since 1970, before the year 10000)"
            return f"{value} is not a number this column can hold"
        return check

    def check(value: Any) -> str | None:
        if type(value) is not str:
            return missing() if value is None else f"{_quote(value)} is not text"
        if not value.isascii() and not _encodable(value):
            return f"{_quote(value)} is not Unicode text"
        if digest:
            problem = digest_problem(value)
            if problem:
                return problem
        if shape is None:
            return None
        try:
            parsed = parse_json(value, "the value")
        except TrellisError:
            return f"{_quote(value)} is not JSON"
        if type(parsed) is not shape:
            return f"{_quote(value)} is not a JSON {'object' if shape is dict else 'array'}"
        if (table, column) in (("steps", "outputs"), ("steps", "analysis")):
            problem = schema_problem(parsed, column)
            if problem:
                return f"the {column} {problem}"
            return _output_digests(parsed) if column == "outputs" else None
        if column in ("names", "starts_us"):
            wanted = str if column == "names" else int
            if not all(type(item) is wanted for item in parsed):
                return f"{_quote(value)} is not a list of {'names' if wanted is str else 'integers'}"
        return None
    return check


def _check_keys(tables: dict[str, list[dict[str, Any]]]) -> None:
    """Run ids fit the key scheme, and every key stays in the run of its row."""
    runs: set[int] = set()
    for number, run in enumerate(tables["runs"]):
        if not 1 <= run["id"] < RUN_LIMIT:
            raise _damaged("runs", number, "id", f"{run['id']} is not a run id (1 to 2^31 - 1)")
        if run["id"] in runs:
            raise _damaged("runs", number, "id", f"the run {run['id']} is listed twice")
        runs.add(run["id"])
        if UUID.fullmatch(run["uuid"]) is None:
            raise _damaged("runs", number, "uuid", f"{_quote(run['uuid'])} is not a UUID")
    environments: set[int] = set()
    for number, environment in enumerate(tables["environments"]):
        if environment["id"] in environments:
            raise _damaged("environments", number, "id", f"the environment {environment['id']} is listed twice")
        environments.add(environment["id"])
    for table, columns in OWN_KEYS.items():
        rows = tables[table]
        for column in columns:
            bad = next((number for number, row in enumerate(rows) if row[column] is not None
                        and (row[column] < 0 or row[column] >> RUN_SHIFT != row["run"])), None) \
                if rows and column in rows[0] else None
            if bad is not None:
                raise _damaged(table, bad, column,
                               f"the key {rows[bad][column]} does not belong to run {rows[bad]['run']} of its row")
    for table, columns in (("dependencies", ("step", "depends_on")), ("variables", ("step",))):
        for number, row in enumerate(tables[table]):
            for column in columns:
                if not 1 <= row[column] >> RUN_SHIFT < RUN_LIMIT:
                    raise _damaged(table, number, column, f"{row[column]} is not the key of a step")


def check_objects(objects: Any) -> dict[str, bytes]:
    """The export's embedded objects, decoded, each verified against the digest it is filed under."""
    from blake3 import blake3

    from trellis.store.objects import check_digest

    decoded: dict[str, bytes] = {}
    for digest, encoded in (objects or {}).items():
        check_digest(digest)
        try:
            content = base64.b64decode(encoded, validate=True) if type(encoded) is str else None
        except (binascii.Error, ValueError):
            content = None
        if content is None:
            raise TrellisError(f"the export's object {digest} is not base64; nothing was imported")
        found = blake3(content).hexdigest()
        if found != digest:
            raise TrellisError(f"the export's object {digest} is not the object it claims to be (its content"
                               f" hashes to {found}); nothing was imported")
        decoded[digest] = content
    return decoded


# --- another store (push, pull, trellis import x.db) -----------------------------------------

def is_database_error(error: BaseException) -> bool:
    """An error of either driver about the database itself (not of trellis's own code)."""
    import sqlite3

    return isinstance(error, sqlite3.Error) or type(error).__module__.startswith("psycopg")


@functools.lru_cache(maxsize=1)
def _added_later() -> set[tuple[str, str]]:
    """Columns a migration added: a store of an earlier version may lack them."""
    from trellis.store.schema import MIGRATIONS

    return {found for statements in MIGRATIONS.values() for statement in statements
            for found in re.findall(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", statement)}


def check_store(store: Any) -> None:
    """``store`` is a trellis store this trellis can read: its tables with their columns, and a
    schema version not newer than this trellis's."""
    try:
        versions = store.execute("SELECT MAX(version) FROM schema_version")
        present = {}
        for table in EXPORTED_TABLES:
            cursor = store.connection.cursor()
            try:
                cursor.execute(f"SELECT * FROM {table} LIMIT 0")
                present[table] = [c[0] for c in cursor.description]
            finally:
                cursor.close()
    except Exception as error:
        if not is_database_error(error):
            raise
        raise StoreError(f"{store.location} is not a trellis store ({_one_line(error)}); nothing was copied") from None
    version = versions[0][0] if versions else None
    if type(version) is not int:
        raise StoreError(f"{store.location} is not a trellis store (it has no schema version); nothing was copied")
    if version > SCHEMA_VERSION:
        raise StoreError(f"the store at {store.location} has schema version {version}, newer than this"
                         f" trellis ({SCHEMA_VERSION}); upgrade trellis to copy from it")
    for table, columns in present.items():
        known = table_columns()[table]
        odd = [c for c in columns if c not in known]
        lacking = [c for c in known if c not in columns and (table, c) not in _added_later()]
        if odd or lacking:
            what = f"a column {odd[0]}" if odd else f"no column {lacking[0]}"
            raise StoreError(f"{store.location} is not a trellis store (its table {table} has {what});"
                             " nothing was copied")
