"""Snapshot the user's working tree as a git commit on a side ref, without touching their state.

Each run records the exact code it ran as a commit on ``refs/trellis/runs/<run uuid>``. The
commit is built with plumbing only, against a temporary index file, so the user's branch,
index, HEAD and ``git status`` stay byte-identical: nothing is committed on their branch and
their staging area is never rewritten. The temporary index is seeded from a copy of the real
one, so ``git add -A`` only re-hashes files whose stat data changed; untracked files are
included and ignored ones are not, exactly as git sees them.

Concurrent runs never share a lock: each has its own temporary index (and so its own
``index.lock``), object writes are lock-free in git, and each ref is distinct. Untracked files
above a size limit are left out (and listed) so that a stray checkpoint or data file is not
hashed into the object store on every run.

Untracked files that look like secrets (``SECRET_PATTERNS``: ``.env``, private keys,
``.netrc``, cloud credentials, ...) are left out too, and listed by name only, since a snapshot
is shown by the dashboard and travels with exports. A ``.trellisignore`` at the top of the
working tree adds patterns, or takes one back with ``!`` (gitignore syntax, read after the
built-in ones; the last that matches decides). Tracked files are kept whatever their name: the
user chose to commit them, and they are in the repository's history already.

This runs in a background thread of the user's process: the functions never raise, and
``take_snapshot`` reports a failure as an ``"error"`` key next to whatever it got.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REF_PREFIX = "refs/trellis/runs/"
MAX_UNTRACKED_SIZE = 10 * 1024 * 1024
"""Untracked files larger than this (bytes) are left out of a snapshot and listed instead."""
SECRET_PATTERNS = (
    ".env", ".env.*", "!.env.example", "!.env.sample", "!.env.template",
    "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
    ".netrc", "_netrc", ".pgpass", ".pypirc", ".npmrc", ".git-credentials", ".htpasswd", ".s3cfg",
    ".boto", ".vault-token", ".dockercfg", "credentials", "credentials.json", "*.credentials",
    "client_secret*.json", "kaggle.json", "secrets.toml",
)
"""Untracked files matching these (gitignore patterns) are left out of a snapshot: secrets."""
IGNORE_FILE = ".trellisignore"

_IDENTITY = {
    "GIT_AUTHOR_NAME": "trellis",
    "GIT_AUTHOR_EMAIL": "trellis@localhost",
    "GIT_COMMITTER_NAME": "trellis",
    "GIT_COMMITTER_EMAIL": "trellis@localhost",
}
# Variables that would point git at another repository, index or object store than `root`'s
# (set, for instance, when the user's script runs from inside a git hook).
_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)
_TIMEOUT = 120.0
_UPDATE_REF_ATTEMPTS = 5


class _GitError(Exception):
    """A git command failed; the message is its one-line reason."""


def find_git_root(start: Path) -> Path | None:
    """Return the nearest directory at or above ``start`` holding a ``.git`` entry.

    ``.git`` may be a directory (a normal clone) or a file (a worktree or a submodule). No git
    process is started, so this is cheap enough to call on every run.
    """
    try:
        here = Path(start).absolute()
        for directory in (here, *here.parents):
            if (directory / ".git").exists():
                return directory
    except OSError:
        pass
    return None


def take_snapshot(
    root: Path, run_uuid: str, *, max_untracked_size: int = MAX_UNTRACKED_SIZE
) -> dict:
    """Commit the working tree under ``root`` to ``refs/trellis/runs/<run_uuid>``.

    ``root`` is the top of the working tree, as ``find_git_root`` returns it.

    Returns ``{"commit", "ref", "head", "branch", "dirty"}`` and, when untracked files were too
    large to include, ``"skipped"`` (their paths); when some looked like secrets, ``"withheld"``
    (theirs). ``head`` is None before the first commit, ``branch`` (the short name, also before
    the first commit) None on a detached HEAD.
    ``dirty`` is True when the snapshot's tree differs from HEAD's (in a repository without
    commits: when it is not empty). On failure, an ``"error"`` key says why and the keys that
    could not be filled are None.
    """
    ref = REF_PREFIX + run_uuid
    result: dict = {"commit": None, "ref": ref, "head": None, "branch": None, "dirty": None}
    root = Path(root)
    env = _git_env()
    tmp = None
    try:
        index_path, head = _index_and_head(root, env)
        result["head"] = head
        result["branch"] = _branch(root, env)

        tmp = tempfile.mkdtemp(prefix="trellis-index-")
        env["GIT_INDEX_FILE"] = os.path.join(tmp, "index")
        if index_path.is_file():
            # copy2 keeps the index's mtime, which git compares with each entry's to re-read files
            # edited within the same second as the last index write ("racily clean" entries)
            shutil.copy2(index_path, env["GIT_INDEX_FILE"])
        untracked = _untracked(root, env)
        skipped = _larger_than(root, untracked, max_untracked_size)
        withheld = _secret_looking(root, env, untracked)
        _stage_all(root, env, skipped + [name for name in withheld if name not in skipped])
        if skipped:
            result["skipped"] = skipped
        if withheld:
            result["withheld"] = withheld
        tree = _git(root, env, "write-tree")

        if head:
            base_tree = _git(root, env, "rev-parse", f"{head}^{{tree}}")
        else:
            base_tree = _empty_tree(root, env)
        result["dirty"] = tree != base_tree

        parents = ["-p", head] if head else []
        message = f"trellis snapshot {run_uuid}"
        commit = _git(root, env, "commit-tree", "--no-gpg-sign", tree, *parents, "-m", message)
        _update_ref(root, env, ref, commit)
        result["commit"] = commit
    except Exception as exc:  # never raise into the user's program: report and return
        result["error"] = _one_line(exc)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def snapshot_files(root: Path, commit: str) -> list[str]:
    """Return the paths (relative to the repository root) of every file in ``commit``.

    Returns an empty list when the commit cannot be read.
    """
    try:
        listing = _git(
            Path(root), _git_env(), "ls-tree", "-r", "-z", "--name-only", commit, strip=False
        )
    except (_GitError, OSError, subprocess.SubprocessError, ValueError):
        return []
    return [name for name in listing.split("\0") if name]


def snapshot_source(root: Path, commit: str, path: str) -> str | None:
    """Return the text of ``path`` as it was in ``commit``, or None when it is not there.

    ``path`` is relative to the repository root (an absolute path inside ``root`` is accepted
    too). Bytes that are not UTF-8 are replaced, so binary files come back mangled.
    """
    try:
        relative = Path(path)
        if relative.is_absolute():
            relative = relative.relative_to(Path(root).absolute())
        proc = subprocess.run(
            ["git", "cat-file", "blob", f"{commit}:{relative.as_posix()}"],
            cwd=root,
            env=_git_env(),
            capture_output=True,
            timeout=_TIMEOUT,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.decode("utf-8", errors="replace")


def _git_env() -> dict[str, str]:
    """The environment for git commands: the user's, less repository overrides, plus an identity."""
    env = {name: value for name, value in os.environ.items() if name not in _LOCATION_VARS}
    env.update(_IDENTITY)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_OPTIONAL_LOCKS"] = "0"
    return env


def _git(
    root: Path, env: dict[str, str], *args: str, data: bytes | None = None, strip: bool = True
) -> str:
    """Run ``git args`` in ``root`` (``data`` on its stdin) and return its stdout.

    Raises _GitError with git's own message when the command fails.
    """
    proc = subprocess.run(
        ["git", *args],
        cwd=root,
        env=env,
        input=data,
        stdin=None if data is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=_TIMEOUT,
    )
    if proc.returncode != 0:
        reason = proc.stderr.decode("utf-8", errors="replace").strip()
        reason = reason or f"exit status {proc.returncode}"
        raise _GitError(f"git {args[0]}: {reason}")
    out = proc.stdout.decode("utf-8", errors="surrogateescape")
    return out.strip() if strip else out


def _index_and_head(root: Path, env: dict[str, str]) -> tuple[Path, str | None]:
    """Return the path of the real index file and HEAD's commit (None before the first commit)."""
    proc = subprocess.run(
        ["git", "rev-parse", "--git-path", "index", "--verify", "-q", "HEAD^{commit}"],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=_TIMEOUT,
    )
    lines = proc.stdout.decode("utf-8", errors="surrogateescape").splitlines()
    if not lines:  # not a repository at all; --verify -q alone fails silently
        reason = proc.stderr.decode("utf-8", errors="replace").strip() or "not a git repository"
        raise _GitError(f"git rev-parse: {reason}")
    head = lines[1] if proc.returncode == 0 and len(lines) > 1 else None
    return root / lines[0], head


def _branch(root: Path, env: dict[str, str]) -> str | None:
    """Return the checked-out branch (also before its first commit), None on a detached HEAD."""
    try:
        full = _git(root, env, "symbolic-ref", "-q", "HEAD")
    except _GitError:
        return None
    return full.removeprefix("refs/heads/")


def _untracked(root: Path, env: dict[str, str], *exclude: str) -> list[str]:
    """The untracked files (relative paths) that are not ignored, nor matched by ``exclude``."""
    listing = _git(root, env, "ls-files", "-z", "--others", "--exclude-standard",
                   *(f"--exclude={pattern}" for pattern in exclude), strip=False)
    return [name for name in listing.split("\0") if name]


def _secret_looking(root: Path, env: dict[str, str], untracked: list[str]) -> list[str]:
    """The ``untracked`` files that ``SECRET_PATTERNS`` and ``.trellisignore`` leave out.

    git matches them: patterns given with ``--exclude`` outrank the ``.gitignore`` files, so a
    ``.gitignore`` cannot take one back, and the files they leave out are those missing from the
    listing made with them."""
    if not untracked:
        return []
    patterns = list(SECRET_PATTERNS)
    try:
        lines = (root / IGNORE_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    patterns += [line.rstrip() for line in lines if line.strip() and not line.startswith("#")]
    kept = set(_untracked(root, env, *patterns))
    return [name for name in untracked if name not in kept]


def _larger_than(root: Path, untracked: list[str], limit: int) -> list[str]:
    """The ``untracked`` files larger than ``limit`` bytes."""
    large = []
    for name in untracked:
        try:
            if os.lstat(root / name).st_size > limit:
                large.append(name)
        except OSError:
            continue  # vanished since it was listed; `git add -A` will not see it either
    return large


def _stage_all(root: Path, env: dict[str, str], skipped: list[str]) -> None:
    """``git add -A`` into the temporary index, leaving out the ``skipped`` files."""
    if not skipped:
        _git(root, env, "-c", "advice.addEmbeddedRepo=false", "add", "-A")
        return
    pathspecs = ["."] + [f":(exclude,literal){name}" for name in skipped]
    _git(
        root,
        env,
        "-c",
        "advice.addEmbeddedRepo=false",
        "add",
        "-A",
        "--pathspec-from-file=-",
        "--pathspec-file-nul",
        data="\0".join(pathspecs).encode("utf-8", errors="surrogateescape"),
    )


def _empty_tree(root: Path, env: dict[str, str]) -> str:
    """Return the id of the empty tree in this repository's hash algorithm."""
    return _git(root, env, "hash-object", "-t", "tree", "--stdin", data=b"")


def _update_ref(root: Path, env: dict[str, str], ref: str, commit: str) -> None:
    """Point ``ref`` at ``commit``, retrying briefly if another process holds a ref lock."""
    for attempt in range(_UPDATE_REF_ATTEMPTS):
        try:
            _git(root, env, "update-ref", "-m", "trellis snapshot", ref, commit)
            return
        except _GitError:
            if attempt == _UPDATE_REF_ATTEMPTS - 1:
                raise
            time.sleep(0.02 * (attempt + 1))


def _one_line(exc: BaseException) -> str:
    """A one-line message for ``exc``."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, _GitError) else f"{type(exc).__name__}: {text}"
