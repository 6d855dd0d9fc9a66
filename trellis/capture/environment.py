"""Describe the machine and Python environment a run executes in, and mask secrets in argv.

The description is stored once per distinct content hash and shared by the runs that match it,
so it holds only what is the same from one run to the next on the same machine and
environment: no pid, time, working directory or free memory. Environment variables are
recorded only from an allowlist of names that change results (threads, devices, seeds,
environments), never wholesale, so credentials in the environment never reach the store.

Everything is read from the running interpreter and from ``/proc`` (no psutil, and never
torch: importing it to count GPUs would cost seconds), and ``importlib.metadata`` is imported
only when the description is taken, so importing this module stays cheap. It runs in a
background thread of the user's process: ``describe_environment`` never raises and reports a
failure as an ``"error"`` key next to what it found.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path
from typing import Any, Callable

MASK = "***"

ENV_ALLOWLIST = (
    "CONDA_DEFAULT_ENV",
    "CONDA_PREFIX",
    "CUBLAS_WORKSPACE_CONFIG",
    "CUDA_HOME",
    "CUDA_LAUNCH_BLOCKING",
    "CUDA_VISIBLE_DEVICES",
    "HF_HUB_OFFLINE",
    "LD_LIBRARY_PATH",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NVIDIA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "PYTHONHASHSEED",
    "PYTHONPATH",
    "PYTORCH_CUDA_ALLOC_CONF",
    "SLURM_JOB_ID",
    "TF_DETERMINISTIC_OPS",
    "TOKENIZERS_PARALLELISM",
    "TRANSFORMERS_OFFLINE",
    "VIRTUAL_ENV",
)
"""The only environment variables recorded: those that can change what a run computes."""

_NVIDIA = Path("/proc/driver/nvidia")
_GPU_FIELDS = {
    "Model": "model",
    "GPU UUID": "uuid",
    "Bus Location": "bus_location",
    "Video BIOS": "video_bios",
}
_DRIVER_VERSION = re.compile(r"Kernel Module\b.*?\s(\d+\.\d+(?:\.\d+)?)\s")

# "token" also occurs in names that hold no secret: --tokenizer, --max_tokens (a count); "pass"
# and "pwd" count as words only (--db-pass, not --passes or --bypass), "auth" not in --author.
_SECRET_NAME = re.compile(
    r"token(?!iz|s(?![a-z]))|passw(?:or)?d|secret|key|(?<![a-z])(?:pass(?:phrase)?|pwd)(?![a-z])"
    r"|auth(?!or(?!i[sz]))|credential|cookie|bearer"
)
# A short option that is ambiguous, but holds a password often enough (mysql -p, many scripts'
# argparse) that its value is masked: -p VALUE, -p=VALUE.
_SECRET_SHORT_OPTIONS = ("-p",)
_ASSIGNMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def describe_environment(cache: Path | None = None) -> dict:
    """Return the environment of this process as a JSON-ready dict with a stable content.

    Keys: ``python_version``, ``python_implementation``, ``python_executable``, ``os``,
    ``platform``, ``release``, ``machine``, ``hostname``, ``cpu_count``, ``memory_total``
    (bytes), ``gpus`` (``[{"model", "uuid", "bus_location", "video_bios"}]`` by bus),
    ``gpu_driver``, ``packages`` (``{normalised name: version}``, sorted) and ``env_vars``
    (allowlisted only, sorted). Keys are always inserted in this order, so the dict is the same
    from run to run; hash ``json.dumps(d, sort_keys=True)`` to identify it.

    Reading every package's metadata is most of the cost (about 70 ms for 100 packages); with
    ``cache`` (a folder), the list is reused while no folder on ``sys.path`` has changed.
    """
    env: dict = {}
    try:
        env["python_version"] = platform.python_version()
        env["python_implementation"] = platform.python_implementation()
        env["python_executable"] = sys.executable
        env["os"] = platform.system()
        env["platform"] = platform.platform()
        env["release"] = platform.release()
        env["machine"] = platform.machine()
        env["hostname"] = platform.node()
        env["cpu_count"] = os.cpu_count()
        env["memory_total"] = _memory_total()
        env["gpus"], env["gpu_driver"] = _nvidia_gpus(_NVIDIA)
        env["packages"] = _cached_packages(cache) if cache is not None else _packages()
        env["env_vars"] = {name: os.environ[name] for name in ENV_ALLOWLIST if name in os.environ}
    except Exception as exc:  # never raise into the user's program: report and return
        env["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return env


def is_secret_name(name: str) -> bool:
    """Whether an option or variable called ``name`` probably holds a secret.

    True when the name (case-insensitive, leading dashes ignored) contains ``token``,
    ``password``, ``passwd``, ``secret``, ``key``, ``auth``, ``credential``, ``cookie`` or
    ``bearer``, or has the word ``pass``, ``passphrase`` or ``pwd``: ``--api-key``,
    ``API_TOKEN``, ``db_password``, ``--auth``, ``--db-pass``. ``--tokenizer``, token counts
    such as ``--max_tokens``, ``--passes`` and ``--author`` are not secrets.
    """
    return _SECRET_NAME.search(name.lstrip("-").lower()) is not None


def mask_secrets(argv: list[str]) -> list[str]:
    """Return a copy of ``argv`` with the values of secret-named arguments replaced by ``***``.

    Handles ``--api-key VALUE``, ``--api_key=VALUE``, ``NAME=VALUE``, ``--env=NAME=VALUE`` and
    ``-p VALUE`` arguments; everything else is kept as it is. After a secret-named option
    without ``=``, the next argument is masked unless it is itself a long option (``--…``).
    """
    masked: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next and not arg.startswith("--"):
            masked.append(MASK)
            hide_next = False
            continue
        hide_next = (arg.startswith("-") and "=" not in arg
                     and (is_secret_name(arg) or arg in _SECRET_SHORT_OPTIONS))
        masked.append(_mask_assignment(arg))
    return masked


def mask_command(line: str) -> str:
    """A shell command line with the values of secret-named arguments replaced by ``***``,
    written as it was otherwise (a recipe line keeps its quoting, pipes and redirections)."""
    import shlex

    try:
        words = shlex.split(line)
    except ValueError:  # unbalanced quotes: words as the shell would roughly see them
        words = line.split()
    cursor = 0  # where the next word starts at the earliest, so each value is masked in place
    for word, masked in zip(words, mask_secrets(words)):
        if masked == word:
            found = line.find(word, cursor)
            cursor = found + len(word) if found >= 0 else cursor
            continue
        secret = word if masked == MASK else word[len(masked) - len(MASK):]
        # the value as a whole word, so that a short one does not mask part of another
        value = re.compile(rf"(?<![^\s'\"=]){re.escape(secret)}(?![^\s'\";|&)])")
        found = value.search(line, cursor) if secret else None
        if found is None:  # quoted in a way that hides it from a plain search: the words, re-quoted
            return shlex.join(mask_secrets(words))
        line = line[:found.start()] + MASK + line[found.end():]
        cursor = found.start() + len(MASK)
    return line


def _mask_assignment(arg: str) -> str:
    """Mask the value of ``NAME=VALUE`` or ``--name=VALUE`` when the name is a secret's.

    A value that is itself such an assignment is masked in turn: ``--env=API_KEY=x``.
    """
    name, has_value, value = arg.partition("=")
    if not has_value or not (name.startswith("-") or _ASSIGNMENT_NAME.fullmatch(name)):
        return arg
    if is_secret_name(name) or name in _SECRET_SHORT_OPTIONS:
        return f"{name}={MASK}"
    return f"{name}={_mask_assignment(value)}"


def _memory_total() -> int | None:
    """Total physical memory in bytes: /proc/meminfo's MemTotal, else sysconf, else None."""
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def _nvidia_gpus(driver: Path) -> tuple[list[dict[str, str]], str | None]:
    """Return the NVIDIA GPUs (ordered by bus location) and driver version from ``driver``.

    ``driver`` is the NVIDIA kernel module's /proc directory; without it, there are no GPUs.
    """
    gpus = []
    for information in sorted((driver / "gpus").glob("*/information")):
        gpu: dict[str, str] = {}
        try:
            text = information.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in _GPU_FIELDS:
                gpu[_GPU_FIELDS[key.strip()]] = value.strip()
        gpus.append(gpu)
    try:
        found = _DRIVER_VERSION.search((driver / "version").read_text(errors="replace"))
    except OSError:
        found = None
    return gpus, found[1] if found else None


def user_cache() -> Path:
    """The per-user folder where descriptions of Python environments are kept between runs."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trellis"


def _cached_packages(cache: Path) -> dict[str, str | None]:
    return _cached(cache, "packages", _packages)


def module_distributions(cache: Path | None = None) -> dict[str, list[str]]:
    """``importlib.metadata.packages_distributions()`` (top-level module -> distributions),
    kept in ``cache`` like the package list: reading every distribution's file list takes
    100+ ms, which a kernel would otherwise spend at each start."""
    import importlib.metadata

    if cache is None:
        return importlib.metadata.packages_distributions()
    return _cached(cache, "modules", importlib.metadata.packages_distributions)


def _cached(cache: Path, kind: str, compute: Callable[[], Any]) -> Any:
    """``compute()``, reused while no ``sys.path`` entry gains, loses or renames a
    distribution's metadata folder.

    The key is the names of the ``.dist-info``/``.egg-info`` folders on ``sys.path``, which carry
    the version, rather than folder mtimes: the script's own folder is on ``sys.path`` and its
    mtime changes whenever the program writes a file there.
    """
    import hashlib
    import json

    key = hashlib.sha256(json.dumps([sys.executable, _metadata_names()]).encode()).hexdigest()[:24]
    path = cache / f"{kind}-{key}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    value = compute()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(value))
        os.replace(temporary, path)
        _prune(cache, kind)
    except OSError:
        pass
    return value


_KEEP = 16  # environments remembered per kind: a user's virtualenvs, not every one ever made


def _prune(cache: Path, kind: str) -> None:
    def age(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return 0.0

    kept = sorted(cache.glob(f"{kind}-*.json"), key=age, reverse=True)
    for stale in kept[_KEEP:]:
        stale.unlink(missing_ok=True)


def _metadata_names() -> list:
    """Per ``sys.path`` entry that holds distributions, their metadata folders (or a zip's
    mtime). Entries without any are left out: the script's own folder is one, and a new
    project, or a temporary folder, must not make the key new."""
    names: list = []
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as found:
                held = sorted(item.name for item in found if item.name.endswith((".dist-info", ".egg-info")))
        except NotADirectoryError:
            names.append((entry, _mtime(entry)))
            continue
        except OSError:
            continue
        if held:
            names.append((entry, held))
    return names


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _packages() -> dict[str, str | None]:
    """Return ``{name: version}`` of the installed distributions, names normalised (PEP 503).

    When a name is installed twice on ``sys.path``, the first one wins, as it does on import.
    """
    import importlib.metadata  # 10+ ms to import: only when a description is taken

    packages: dict[str, str | None] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages.setdefault(re.sub(r"[-_.]+", "-", name).lower(), dist.version)
    return dict(sorted(packages.items()))
