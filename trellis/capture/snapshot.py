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

from trellis.store.snapshots import REF_PREFIX, TIMEOUT, GitError, git, git_env

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

_UPDATE_REF_ATTEMPTS = 5


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
    env = git_env()
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
        tree = git(root, "write-tree", env=env)

        if head:
            base_tree = git(root, "rev-parse", f"{head}^{{tree}}", env=env)
        else:
            base_tree = _empty_tree(root, env)
        result["dirty"] = tree != base_tree

        parents = ["-p", head] if head else []
        message = f"trellis snapshot {run_uuid}"
        commit = git(root, "commit-tree", "--no-gpg-sign", tree, *parents, "-m", message, env=env)
        _update_ref(root, env, ref, commit)
        result["commit"] = commit
    except Exception as exc:  # never raise into the user's program: report and return
        result["error"] = _one_line(exc)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def _index_and_head(root: Path, env: dict[str, str]) -> tuple[Path, str | None]:
    """Return the path of the real index file and HEAD's commit (None before the first commit)."""
    proc = subprocess.run(
        ["git", "rev-parse", "--git-path", "index", "--verify", "-q", "HEAD^{commit}"],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=TIMEOUT,
    )
    lines = proc.stdout.decode("utf-8", errors="surrogateescape").splitlines()
    if not lines:  # not a repository at all; --verify -q alone fails silently
        reason = proc.stderr.decode("utf-8", errors="replace").strip() or "not a git repository"
        raise GitError(f"git rev-parse: {reason}")
    head = lines[1] if proc.returncode == 0 and len(lines) > 1 else None
    return root / lines[0], head


def _branch(root: Path, env: dict[str, str]) -> str | None:
    """Return the checked-out branch (also before its first commit), None on a detached HEAD."""
    try:
        full = git(root, "symbolic-ref", "-q", "HEAD", env=env)
    except GitError:
        return None
    return full.removeprefix("refs/heads/")


def _untracked(root: Path, env: dict[str, str], *exclude: str) -> list[str]:
    """The untracked files (relative paths) that are not ignored, nor matched by ``exclude``."""
    listing = git(root, "ls-files", "-z", "--others", "--exclude-standard",
                  *(f"--exclude={pattern}" for pattern in exclude), env=env, strip=False)
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
        git(root, "-c", "advice.addEmbeddedRepo=false", "add", "-A", env=env)
        return
    pathspecs = ["."] + [f":(exclude,literal){name}" for name in skipped]
    git(
        root,
        "-c",
        "advice.addEmbeddedRepo=false",
        "add",
        "-A",
        "--pathspec-from-file=-",
        "--pathspec-file-nul",
        env=env,
        data="\0".join(pathspecs).encode("utf-8", errors="surrogateescape"),
    )


def _empty_tree(root: Path, env: dict[str, str]) -> str:
    """Return the id of the empty tree in this repository's hash algorithm."""
    return git(root, "hash-object", "-t", "tree", "--stdin", data=b"", env=env)


def _update_ref(root: Path, env: dict[str, str], ref: str, commit: str) -> None:
    """Point ``ref`` at ``commit``, retrying briefly if another process holds a ref lock."""
    for attempt in range(_UPDATE_REF_ATTEMPTS):
        try:
            git(root, "update-ref", "-m", "trellis snapshot", ref, commit, env=env)
            return
        except GitError:
            if attempt == _UPDATE_REF_ATTEMPTS - 1:
                raise
            time.sleep(0.02 * (attempt + 1))


def _one_line(exc: BaseException) -> str:
    """A one-line message for ``exc``."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, GitError) else f"{type(exc).__name__}: {text}"
