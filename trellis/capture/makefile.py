"""Find out which Makefile target a run is building, and from what.

When a script runs inside a make recipe, its provenance includes the target it builds, that
target's prerequisites and the recipe line that started it. make does not tell its children
any of this (only ``MAKELEVEL``/``MAKEFLAGS`` say that make is involved), so it is
reconstructed from outside:

1. walk up the parent chain in ``/proc`` to the nearest make process, and read its working
   directory and command line (goals, ``-f`` makefiles, ``VAR=value`` overrides);
2. ask make itself, in that directory, for every expanded recipe line (``make -nB --trace``)
   and find the one that started us: the command string of the recipe shell below make, or,
   when make (or the shell) exec'd the command directly, the command's argv;
3. read that target's prerequisites and unexpanded recipe from make's database
   (``make -pnqrR <target>``).

Only Linux ``/proc`` is read; elsewhere the result says ``"kind": "command"``. The dry runs
are started with ``TRELLIS_MAKE_PROBE`` set, and a run that sees it does not start another
one: a recipe line that make runs even under ``-n`` (one using ``$(MAKE)`` or prefixed with
``+``) must not recurse. This runs in a background thread of the user's process, so
``build_context`` never raises: a failure is an ``"error"`` key next to what was found.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

from trellis import _config

from .environment import mask_command, mask_secrets

PROBE_VAR = "TRELLIS_MAKE_PROBE"
"""Set in the environment of trellis's own dry runs of make."""

_PROC = Path("/proc")
_MAKE_NAMES = {"make", "gmake"}
_MAX_ANCESTORS = 64
_TIMEOUT = 60.0
_DEFAULT_MAKEFILES = ("GNUmakefile", "makefile", "Makefile")
# Environment variables through which a running make configures its children; a dry run
# started from inside a recipe must not inherit them (jobserver, -n, -k, ...).
_MAKE_ENV_VARS = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")

# GNU make options. Those that change what the makefiles mean are passed on to the dry runs;
# the others (-C has already been applied to make's working directory) are dropped.
_SHORT_WITH_ARG = set("CfIoWE")
_SHORT_OPTIONAL_ARG = set("jlO")
# Numeric options whose argument may also be the next word (`-j 4`, `--jobs 4`), as make reads them.
_SHORT_NUMBER = set("jl")
_LONG_NUMBER = {"jobs", "load-average", "max-load"}
_SHORT_KEPT_WITH_ARG = set("fIE")
_SHORT_KEPT_FLAGS = set("eRr")
_LONG_WITH_ARG = {
    "directory",
    "file",
    "makefile",
    "include-dir",
    "old-file",
    "assume-old",
    "what-if",
    "new-file",
    "assume-new",
    "eval",
}
_LONG_KEPT_WITH_ARG = {"file": "-f", "makefile": "-f", "include-dir": "-I", "eval": "--eval"}
_LONG_KEPT_FLAGS = {
    "environment-overrides": "-e",
    "no-builtin-rules": "-r",
    "no-builtin-variables": "-R",
}

_TRACE_LINE = re.compile(
    r"^(?:.*:\d+|<builtin>): (?:update )?target '(?P<target>.+)' (?:does not exist|due to: .*)$"
)
_MAKE_MESSAGE = re.compile(r"^\S*make(?:\[\d+\])?: ")
_RULE_LINE = re.compile(r"^(?P<target>.+?)::?(?:\s+(?P<prerequisites>.*))?$")
_DEFAULT_GOAL = re.compile(r"^\.DEFAULT_GOAL :?= (?P<goal>.*)$", re.MULTILINE)


def build_context() -> dict:
    """Describe what started this process: a make target, or a plain command.

    Under make: ``{"kind": "make", "target", "prerequisites", "recipe", "recipe_source",
    "makefile", "directory", "goals", "make_command"}`` where ``recipe`` holds the target's
    expanded recipe lines, ``recipe_source`` the unexpanded ones, and ``goals`` the goals make
    was given (its default goal when none were). ``target`` is None when no recipe line
    matched this process. Otherwise: ``{"kind": "command", "parent_command": argv}``.
    Secrets in the command lines are masked.
    """
    if "MAKELEVEL" not in os.environ:
        return {"kind": "command", "parent_command": mask_secrets(_cmdline(os.getppid()))}
    if not _PROC.is_dir():
        error = "started by make, but /proc is not available"
        return {"kind": "command", "parent_command": [], "error": error}
    result: dict = {
        "kind": "make",
        "target": None,
        "prerequisites": [],
        "recipe": [],
        "recipe_source": [],
        "makefile": None,
        "directory": None,
        "goals": [],
        "make_command": [],
    }
    try:
        found = _find_make()
        if found is None:
            return {"kind": "command", "parent_command": mask_secrets(_cmdline(os.getppid()))}
        make_pid, child_argv = found
        make_argv = _cmdline(make_pid)
        result["make_command"] = mask_secrets(make_argv)
        result["invocation"] = _invocation(make_pid)
        directory = Path(os.readlink(_PROC / str(make_pid) / "cwd"))
        result["directory"] = str(directory)
        goals, makefiles, options, overrides = _parse_make_args(make_argv[1:])
        result["makefile"] = _main_makefile(directory, makefiles)
        result["goals"] = goals
        if _config.in_make_probe():
            result["error"] = "inside trellis's own dry run of make; not analysed again"
            return result

        make = [_make_executable(make_pid, make_argv), *options]
        make += [*_makeflags_overrides(), *overrides]  # later ones win, as on make's command line
        trace = _run_make(directory, [*make, "-nB", "--trace", *goals])
        match = _find_recipe(_parse_trace(trace.stdout), child_argv)
        database = _run_make(directory, [*make, "-pnqrR", *([match[0]] if match else goals)])
        if not goals:
            default = _DEFAULT_GOAL.search(database.stdout)
            result["goals"] = default["goal"].split() if default else []
        if match is None:
            reason = _last_line(trace.stderr) if trace.returncode else ""
            result["error"] = reason or "no recipe line of make's goals started this process"
            return result
        target, recipe = match
        prerequisites, source = _rule(database.stdout, target)
        result["target"], result["prerequisites"] = target, prerequisites
        result["recipe"] = [mask_command(line) for line in recipe]
        result["recipe_source"] = [mask_command(line) for line in source]
        if database.returncode > 1 and not result["recipe_source"]:  # -q exits 1 when out of date
            result["error"] = _last_line(database.stderr) or "make could not print its database"
    except Exception as exc:  # never raise into the user's program: report and return
        result["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return result


def _cmdline(pid: int) -> list[str]:
    """Return the argv of process ``pid``, or [] when it cannot be read."""
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [os.fsdecode(arg) for arg in raw.split(b"\0")[:-1]]


def _stat(pid: int) -> tuple[str, int]:
    """Return the command name and parent pid of process ``pid`` from /proc/<pid>/stat."""
    text = (_PROC / str(pid) / "stat").read_text(errors="replace")
    # The name is in parentheses and may itself contain spaces and parentheses.
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return name, int(fields[1])


def _invocation(pid: int) -> str | None:
    """What tells this make process from every other, here and later: the boot, its pid and its
    start (in clock ticks since boot). Runs of one ``make`` share it; lineage names the
    invocation by it (exporting/openlineage.py)."""
    try:
        boot = (_PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
        text = (_PROC / str(pid) / "stat").read_text(errors="replace")
        started = text[text.rindex(")") + 2 :].split()[19]
    except (OSError, IndexError, ValueError):
        return None
    return f"{boot}:{pid}:{started}"


def _find_make() -> tuple[int, list[str]] | None:
    """Return the nearest make ancestor's pid and the argv of its child on our side.

    That child is the recipe shell (``sh -c "<recipe line>"``) or, when make or the shell
    exec'd the command directly, the command itself (possibly this very process).
    """
    pid = os.getpid()
    _, parent = _stat(pid)
    for _ in range(_MAX_ANCESTORS):
        if parent <= 0:  # make may itself be pid 1, in a container
            return None
        name, grandparent = _stat(parent)
        argv = _cmdline(parent)
        if (os.path.basename(argv[0]) if argv else name) in _MAKE_NAMES or name in _MAKE_NAMES:
            return parent, _cmdline(pid)
        pid, parent = parent, grandparent
    return None


def _parse_make_args(args: list[str]) -> tuple[list[str], list[str], list[str], list[str]]:
    """Split make's arguments into goals, makefiles, options to pass on and ``VAR=value``s."""
    goals: list[str] = []
    makefiles: list[str] = []
    options: list[str] = []
    overrides: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            rest = args[i:]
            goals += [a for a in rest if "=" not in a]
            overrides += [a for a in rest if "=" in a]
            break
        if arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            if name in _LONG_WITH_ARG and not has_value and i < len(args):
                value, i = args[i], i + 1
            elif name in _LONG_NUMBER and not has_value and i < len(args) and _is_number(args[i]):
                i += 1
            if name in _LONG_KEPT_WITH_ARG:
                options += [_LONG_KEPT_WITH_ARG[name], value]
                if name in ("file", "makefile"):
                    makefiles.append(value)
            elif name in _LONG_KEPT_FLAGS:
                options.append(_LONG_KEPT_FLAGS[name])
        elif arg.startswith("-") and arg != "-":
            for position, letter in enumerate(arg[1:], start=1):
                if letter in _SHORT_WITH_ARG:
                    value = arg[position + 1 :]
                    if not value and i < len(args):
                        value, i = args[i], i + 1
                    if letter in _SHORT_KEPT_WITH_ARG:
                        options += [f"-{letter}", value]
                    if letter == "f":
                        makefiles.append(value)
                    break
                if letter in _SHORT_OPTIONAL_ARG:  # its argument, if any, is the rest of `arg`
                    last = position == len(arg) - 1
                    if last and letter in _SHORT_NUMBER and i < len(args) and _is_number(args[i]):
                        i += 1
                    break
                if letter in _SHORT_KEPT_FLAGS:
                    options.append(f"-{letter}")
        elif "=" in arg:
            overrides.append(arg)
        else:
            goals.append(arg)
    return goals, makefiles, options, overrides


def _is_number(word: str) -> bool:
    """Whether ``word`` is the numeric argument of ``-j``/``-l`` rather than a goal."""
    return re.fullmatch(r"\d+(?:\.\d*)?", word) is not None


def _makeflags_overrides() -> list[str]:
    """Return the ``VAR=value`` overrides in effect for our make, from our ``MAKEFLAGS``.

    A sub-make inherits its parent's command-line variables this way, not on its own command
    line. MAKEFLAGS reads ``<flags> -- A=1 B=x\\ y``, with spaces and backslashes escaped.
    """
    words: list[str] = []
    word: list[str] = []
    escaped = False
    for char in os.environ.get("MAKEFLAGS", "") + " ":
        if escaped:
            word.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == " ":
            if word:
                words.append("".join(word))
            word = []
        else:
            word.append(char)
    if "--" not in words:
        return []
    return [w for w in words[words.index("--") + 1 :] if "=" in w]


def _main_makefile(directory: Path, makefiles: list[str]) -> str | None:
    """Return the path of the makefile make read first: the first ``-f``, or make's default."""
    if makefiles:
        return str(directory / makefiles[0]) if makefiles[0] != "-" else None
    for name in _DEFAULT_MAKEFILES:
        if (directory / name).is_file():
            return str(directory / name)
    return None


def _make_executable(pid: int, argv: list[str]) -> str:
    """Return the make binary that process ``pid`` runs, so the dry runs use the same one."""
    try:
        return os.readlink(_PROC / str(pid) / "exe")
    except OSError:
        return argv[0] if argv else "make"


def _run_make(directory: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a dry make ``command`` in ``directory``, detached from the make that started us."""
    env = {name: value for name, value in os.environ.items() if name not in _MAKE_ENV_VARS}
    env[PROBE_VAR] = "1"
    env["LC_ALL"] = "C"  # make's --trace messages are translated otherwise
    return subprocess.run(
        command,
        cwd=directory,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=_TIMEOUT,
    )


def _parse_trace(output: str) -> list[tuple[str, list[str]]]:
    """Return ``[(target, expanded recipe lines)]`` from ``make -nB --trace`` output, in order.

    A recipe line continued with a backslash is kept as one line, newline included, as make
    hands it to the shell.
    """
    recipes: list[tuple[str, list[str]]] = []
    continued = False
    for line in output.splitlines():
        header = _TRACE_LINE.match(line)
        if header:
            recipes.append((header["target"], []))
            continued = False
        elif recipes and not _MAKE_MESSAGE.match(line):
            lines = recipes[-1][1]
            if continued:
                lines[-1] += "\n" + line
            else:
                lines.append(line)
            continued = line.endswith("\\")
    return recipes


def _find_recipe(
    recipes: list[tuple[str, list[str]]], argv: list[str]
) -> tuple[str, list[str]] | None:
    """Return the ``(target, recipe)`` whose recipe best matches ``argv``, or None.

    Best is the shell's command string equal to a recipe line (or, with ``.ONESHELL``, to the
    whole recipe); then a recipe line whose words are ``argv``; then one that contains ``argv``
    as consecutive words (``cd dir && python train.py``, exec'd by the shell). The first
    target wins a tie.
    """
    best: tuple[str, list[str]] | None = None
    best_score = 0
    for target, lines in recipes:
        score = max((_match_score(line, argv) for line in [*lines, "\n".join(lines)]), default=0)
        if score > best_score:
            best, best_score = (target, lines), score
    return best


def _match_score(line: str, argv: list[str]) -> int:
    """Score how well a recipe line matches argv: 3 shell command string, 2 argv, 1 part of it."""
    if not argv or not line.strip():
        return 0
    shell_flag = len(argv) >= 3 and argv[-2].startswith("-") and "c" in argv[-2]
    if shell_flag and argv[-1].strip() == line.strip():
        return 3
    words = _words(line)
    size = len(argv)
    for start in range(len(words) - size + 1):
        window = words[start : start + size]
        if os.path.basename(window[0]) == os.path.basename(argv[0]) and window[1:] == argv[1:]:
            return 2 if size == len(words) else 1
    return 0


def _words(line: str) -> list[str]:
    """Split a shell command line into words, operators (``&&``, ``>``, ``;``) apart."""
    lexer = shlex.shlex(line.replace("\\\n", ""), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes: not something a shell ran either
        return []


def _rule(database: str, target: str) -> tuple[list[str], list[str]]:
    """Return ``target``'s prerequisites and unexpanded recipe from ``make -p`` output.

    Order-only prerequisites (after ``|``) are left out.
    """
    start = database.find("\n# Files\n")
    end = database.find("\n# files hash-table stats", start)
    section = database[start : end if end >= 0 else len(database)] if start >= 0 else ""
    for block in section.split("\n\n"):
        lines = block.strip("\n").splitlines()
        if not lines or lines[0] == "# Not a target:":
            continue
        rule = next((line for line in lines if not line.startswith(("#", "\t"))), None)
        match = _RULE_LINE.match(rule) if rule else None
        if match is None or match["target"] != target:
            continue
        words = (match["prerequisites"] or "").split()
        prerequisites = words[: words.index("|")] if "|" in words else words
        recipe: list[str] = []
        for line in lines:
            if not line.startswith("\t"):
                continue
            if recipe and recipe[-1].endswith("\\"):
                recipe[-1] += "\n" + line[1:]
            else:
                recipe.append(line[1:])
        return prerequisites, recipe
    return [], []


def _last_line(text: str) -> str:
    """The last non-empty line of ``text``."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
