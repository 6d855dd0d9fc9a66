"""The store's tables, written once for both SQLite and PostgreSQL.

Column types are tokens that the dialect fills in, so the SQL stays portable. Logged values keep
their type in ``kind`` and live in the one column that fits it, so an int reads back as an int.

Iterations and logs are keyed ``run << 32 | number within the run``: a process numbers its own
rows without asking the database, the key orders them, and on SQLite it is the rowid, so the
hot tables carry no second index for their keys.

The innermost loops make most iterations, so a row of ``iterations`` stands for ``count``
consecutive iterations of one loop instance: keys ``id`` to ``id + count - 1``, indexes ``idx``
onwards, their start times in ``starts_us`` (see ``spans``) and ``ended`` the end of the
last. A loop with 1000 steps per epoch is one row per epoch, not 1000.

Logs carry no secondary index: maintaining one costs a third of a commit. ``log_names`` says
which runs logged which names, and a run's logs are one key range (``run_keys``), so a reader
scans only the runs it needs.

A run brought from elsewhere (``trellis pull``, ``trellis import``, ``trellis notebook import``)
says where in ``received_from``; a run recorded into this store leaves it NULL. Its objects are
someone else's: they are not unpickled unless the user says they trust them.
"""

from __future__ import annotations

SCHEMA_VERSION = 6
RUN_SHIFT = 32

# table -> how its rows belong to a run: a run column, or a key whose high half is the run
BY_RUN = {
    "runs": "id", "params": "run", "iterations": "run", "loops": "run", "logs": "run",
    "checkpoints": "run", "files": "run", "run_inputs": "run", "steps": "run", "modules": "run",
    "replays": "run",
}
BY_STEP = ("dependencies", "variables")

# Value kinds. Ints and bools read from int_value, floats from float_value, the rest from
# text_value (JSON for containers, a bounded repr for other objects, digits for huge ints).
NONE, BOOL, INT, FLOAT, TEXT, JSON, OBJECT, BIGINT = range(8)
INT_KINDS = (BOOL, INT)
TEXT_KINDS = (TEXT, JSON, OBJECT, BIGINT)



def run_keys(run: int) -> tuple[int, int]:
    """The range ``[low, high)`` of the keys of a run's logs, iterations and steps."""
    return run << RUN_SHIFT, (run + 1) << RUN_SHIFT


# The checkpoint entry that holds the random generators' states (capture/randomness.py): not an
# identifier, so no checkpointed name clashes; for replay only, not listed or loaded as a state.
GENERATOR_STATES = "random-state"

NOTE_LOG_NAME = "INSERT INTO log_names (run, name) VALUES (?, ?) ON CONFLICT (run, name) DO NOTHING"

# Statements that bring a store of the version before each key up to that version (with the
# dialect's column types, as in TABLES).
MIGRATIONS = {
    2: [
        "INSERT INTO log_names (run, name) SELECT DISTINCT run, name FROM logs WHERE true"
        " ON CONFLICT (run, name) DO NOTHING",
        "DROP INDEX IF EXISTS logs_by_name",
    ],
    3: [
        "ALTER TABLE iterations ADD COLUMN count {int} NOT NULL DEFAULT 1",
        "ALTER TABLE iterations ADD COLUMN starts_us TEXT",
    ],
    4: [
        "ALTER TABLE runs ADD COLUMN received_from TEXT",
        # How a replayed value was verified (replaying/verifying.py); NULL for logged values.
        "ALTER TABLE logs ADD COLUMN verified TEXT",
    ],
    5: [
        # 1: a write found by a scan after the step, not seen as it happened (capture/files.py)
        "ALTER TABLE files ADD COLUMN seen_after {int}",
    ],
    6: [
        # the order the run declared its params in (0, 1, ...); NULL in runs recorded before
        "ALTER TABLE params ADD COLUMN position {int}",
        # the params a replay set instead of the run's own (a JSON object); NULL: none
        "ALTER TABLE replays ADD COLUMN overrides TEXT",
        # when each kept line of stdout/stderr began: {"stdout": [microseconds after started]}
        "ALTER TABLE runs ADD COLUMN output_times TEXT",
    ],
}

TABLES = """
CREATE TABLE IF NOT EXISTS schema_version (
    version {int} NOT NULL
);
CREATE TABLE IF NOT EXISTS environments (
    id {id},
    hash TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id {id},
    uuid TEXT NOT NULL UNIQUE,
    projid TEXT NOT NULL,
    kind TEXT NOT NULL,
    filename TEXT,
    cwd TEXT,
    argv TEXT,
    started {float} NOT NULL,
    ended {float},
    committed {float},
    status TEXT NOT NULL,
    error TEXT,
    problems TEXT,
    host TEXT,
    pid {int},
    git_commit TEXT,
    git_ref TEXT,
    git TEXT,
    build_target TEXT,
    build TEXT,
    environment_id {int},
    parent_run {int},
    stdout TEXT,
    stderr TEXT,
    received_from TEXT,
    output_times TEXT
);
CREATE TABLE IF NOT EXISTS params (
    run {int} NOT NULL,
    name TEXT NOT NULL,
    kind {int} NOT NULL,
    int_value {int},
    float_value {float},
    text_value TEXT,
    origin TEXT NOT NULL,
    position {int},
    PRIMARY KEY (run, name)
);
CREATE TABLE IF NOT EXISTS iterations (
    id {key},
    run {int} NOT NULL,
    parent {int} NOT NULL,
    loop TEXT NOT NULL,
    depth {int} NOT NULL,
    idx {int} NOT NULL,
    value TEXT,
    started {float} NOT NULL,
    ended {float},
    count {int} NOT NULL DEFAULT 1,
    starts_us TEXT
);
CREATE TABLE IF NOT EXISTS loops (
    run {int} NOT NULL,
    loop TEXT NOT NULL,
    depth {int} NOT NULL,
    has_values {int} NOT NULL,
    PRIMARY KEY (run, loop, depth)
);
CREATE TABLE IF NOT EXISTS logs (
    id {key},
    run {int} NOT NULL,
    step {int},
    iteration {int} NOT NULL,
    name TEXT NOT NULL,
    kind {int} NOT NULL,
    int_value {int},
    float_value {float},
    text_value TEXT,
    source TEXT NOT NULL DEFAULT 'forward',
    verified TEXT
);
CREATE TABLE IF NOT EXISTS log_names (
    run {int} NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (run, name)
);
CREATE TABLE IF NOT EXISTS files (
    run {int} NOT NULL,
    step {int},
    path TEXT NOT NULL,
    mode TEXT NOT NULL,
    hash TEXT,
    size {int},
    at {float} NOT NULL,
    seen_after {int}
);
CREATE INDEX IF NOT EXISTS files_by_path ON files (path);
CREATE INDEX IF NOT EXISTS files_by_run ON files (run);
CREATE TABLE IF NOT EXISTS run_inputs (
    run {int} NOT NULL,
    step {int},
    source TEXT NOT NULL,
    via TEXT NOT NULL,
    detail TEXT,
    at {float} NOT NULL
);
CREATE INDEX IF NOT EXISTS run_inputs_by_run ON run_inputs (run);
CREATE TABLE IF NOT EXISTS steps (
    id {key},
    run {int} NOT NULL,
    kind TEXT NOT NULL,
    notebook TEXT,
    cell_id TEXT,
    execution_count {int},
    source TEXT,
    source_hash TEXT,
    started {float} NOT NULL,
    ended {float},
    status TEXT NOT NULL,
    error TEXT,
    stdout TEXT,
    stderr TEXT,
    outputs TEXT,
    analysis TEXT
);
CREATE INDEX IF NOT EXISTS steps_by_notebook ON steps (notebook, started);
CREATE TABLE IF NOT EXISTS dependencies (
    step {int} NOT NULL,
    depends_on {int} NOT NULL,
    name TEXT NOT NULL,
    via TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dependencies_by_step ON dependencies (step);
CREATE TABLE IF NOT EXISTS variables (
    step {int} NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    summary TEXT,
    fingerprint TEXT
);
CREATE INDEX IF NOT EXISTS variables_by_name ON variables (name);
CREATE TABLE IF NOT EXISTS modules (
    run {int} NOT NULL,
    step {int},
    module TEXT NOT NULL,
    distribution TEXT,
    version TEXT
);
CREATE TABLE IF NOT EXISTS replays (
    id {id},
    run {int} NOT NULL,
    names TEXT NOT NULL,
    code TEXT,
    git_commit TEXT,
    started {float} NOT NULL,
    ended {float},
    status TEXT NOT NULL,
    segments {int} NOT NULL,
    failed {int} NOT NULL,
    stored {int} NOT NULL,
    estimate {float},
    seconds {float},
    error TEXT,
    overrides TEXT
);
CREATE TABLE IF NOT EXISTS checkpoints (
    run {int} NOT NULL,
    iteration {int} NOT NULL,
    loop TEXT NOT NULL,
    idx {int} NOT NULL,
    name TEXT NOT NULL,
    object TEXT NOT NULL,
    format TEXT NOT NULL,
    size {int} NOT NULL,
    seconds {float} NOT NULL,
    PRIMARY KEY (run, iteration, name)
);
"""
