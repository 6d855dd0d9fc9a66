"""Files a run reads and writes, seen through the interpreter's audit hook.

``sys.addaudithook`` sees every ``open`` — from ``open()``, pandas, numpy, pickle, PIL, sqlite3
and most readers — at a fraction of a microsecond per event. The hook only notes the path, the
direction and the file's stat; hashing happens later, off the user's path, when the run is
flushed. A read is hashed only if the file still has the stat it had when it was opened; a write
is hashed at a consistent point (``commit`` or the end of the run), when the writer is done.
"""

from __future__ import annotations

import fnmatch
import os
import stat as stat_module
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from trellis.capture.environment import user_cache
from trellis.capture.snapshot import SECRET_PATTERNS
from trellis.store.file_hashes import file_digest

READ, WRITE = "read", "write"

# Code, compiled extensions, fonts, translations, and the stylesheets and templates libraries
# render their HTML with are how programs run, not what they use.
_NOISE_SUFFIXES = frozenset({
    ".py", ".pyc", ".pyo", ".pyi", ".so", ".pyd", ".dll", ".dylib", ".pth", ".ttf", ".otf",
    ".ttc", ".afm", ".mo", ".typed", ".egg-link", ".css", ".tpl", ".jinja", ".jinja2", ".mplstyle",
})
_NOISE_PREFIXES = (
    "/proc/", "/sys/", "/dev/", "/etc/", "/usr/share/", "/usr/lib/", "/run/",
    # font and style caches that plotting libraries keep for themselves
    os.path.expanduser("~/.cache/matplotlib/"), os.path.expanduser("~/.cache/fontconfig/"),
    os.path.expanduser("~/.config/matplotlib/"), os.path.expanduser("~/.matplotlib/"),
    f"{user_cache()}{os.sep}",  # trellis's own
)
_NOISE_PARTS = ("/.git/", "/__pycache__/", ".dist-info/", ".egg-info/")
# Inside installed packages only data folders hold data (scikit-learn's datasets, matplotlib's
# sample data); the rest are the packages' own resources (scripts, stylesheets, settings).
_PACKAGE_ROOTS = ("/site-packages/", "/dist-packages/")
_PACKAGE_DATA = frozenset({"data", "datasets", "descr", "images", "sample_data"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

# Audit events of a program starting another: what it writes no hook of this process sees.
_SPAWNS = frozenset({"subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn", "os.exec",
                     "os.fork", "os.forkpty"})
# The scan for files written behind the hook's back looks at this many entries at most.
SCAN_LIMIT = 20_000
_UNSCANNED_FOLDERS = frozenset({"__pycache__", "node_modules", "site-packages", "dist-packages"})
_SECRETS = tuple(pattern for pattern in SECRET_PATTERNS if not pattern.startswith("!"))

_installed: "FileWatcher | None" = None




def _temporary_folders() -> tuple[str, ...]:
    """Where ``tempfile`` puts files, found as it does, without importing it (6 ms)."""
    named = [os.environ[name] for name in ("TMPDIR", "TEMP", "TMP") if os.environ.get(name)]
    folder = named[0] if named else "/tmp"
    return tuple({os.path.abspath(folder) + os.sep, os.path.realpath(folder) + os.sep})


class FileWatcher:
    """Collects (path, direction) events of one run; the hook stays cheap for every other event."""

    def __init__(self, root: Path, store_dir: Path) -> None:
        self.root = str(root)
        self.ignored = (str(store_dir) + os.sep,)
        # Outside the project, the temporary folder holds scratch files: joblib's memoized
        # results, multiprocessing's and tempfile's folders. A project inside it is still watched.
        # Scratch is what this process writes there, or finds there changed since it started; a
        # file that was there before (a dataset cache) is an input wherever it lives.
        self.scratch = _temporary_folders()
        self.started_ns = time.time_ns()
        self.seen: set[tuple[str, str]] = set()
        self.reads: deque = deque()
        # (step, path) -> (when first opened for writing, the file's identity just before)
        self.writes: dict[tuple[int, str], tuple[float, tuple | None]] = {}
        self.quiet_threads: set[int] = set()
        self.permanently_quiet: set[int] = set()
        self.step = 0
        self.step_paths: dict[tuple[int, str], set[str]] = {}
        self.written: set[tuple[int, str]] = set()  # (step, path) this process opened to write
        self.spawned: set[int] = set()  # steps that started another program
        self.found_after: list[tuple[int, str, float]] = []
        self.settled: list[tuple] = []  # writes of finished steps, hashed when they ended
        self.writes_lock = threading.Lock()
        self.failed = False

    def hook(self, event: str, args: tuple) -> None:
        if event != "open":
            if event in _SPAWNS and threading.get_ident() not in self.quiet_threads:
                self.spawned.add(self.step)  # trellis's own (git for the snapshot) are quiet
            elif event == "os.rename":  # os.replace and shutil.move too
                try:
                    self._renamed(args)
                except Exception:
                    self.failed = True
            return
        try:
            self._opened(args)
        except Exception:
            # An audit hook that raises would break the user's open(); never let it.
            self.failed = True

    def note(self, path: str, direction: str) -> None:
        """A file or URL used by a reader the audit hook cannot see."""
        try:
            if "://" in path:
                self._url(path)
            else:
                self._opened((path, "r" if direction == READ else "w", 0))
        except Exception:
            self.failed = True

    def _url(self, url: str) -> None:
        if threading.get_ident() in self.quiet_threads:
            return
        key = (url, READ, self.step)
        if key in self.seen:
            return
        self.seen.add(key)
        if self.step:
            self.step_paths.setdefault((self.step, READ), set()).add(url)
        self.reads.append((self.step, url, time.time(), None))

    def _opened(self, args: tuple) -> None:
        if threading.get_ident() in self.quiet_threads:
            return
        target, mode, flags = args
        if isinstance(target, int):
            return
        path = os.fsdecode(target)
        if not os.path.isabs(path):
            path = os.path.abspath(path)
        if mode is not None:
            direction = READ if set(mode) <= {"r", "b", "t"} else WRITE
        else:
            direction = WRITE if flags & _WRITE_FLAGS else READ
        key = (path, direction, self.step)
        if key in self.seen:
            return
        self.seen.add(key)
        if _is_noise(path) or path.startswith(self.ignored):
            return
        # an environment may itself live in the temporary folder: its packages are not scratch
        scratch = (path.startswith(self.scratch) and not path.startswith(self.root + os.sep)
                   and not any(root in path for root in _PACKAGE_ROOTS))
        if scratch and direction == WRITE:
            return
        if direction == READ:
            try:
                stat = os.stat(path)
            except OSError:
                return
            if stat_module.S_ISDIR(stat.st_mode):  # shutil.rmtree and os.scandir open folders
                return
            if scratch and stat.st_mtime_ns >= self.started_ns:
                return
            self.reads.append((self.step, path, time.time(), (stat.st_mtime_ns, stat.st_size)))
        else:
            self.writes.setdefault((self.step, path), (time.time(), _identity(path)))
            self.written.add((self.step, path))
        if self.step:  # only what was recorded: a folder or a failed open is no dependency
            self.step_paths.setdefault((self.step, direction), set()).add(self.relative(path))

    def _renamed(self, args: tuple) -> None:
        """A file written under a temporary name and renamed (an atomic save), or written in a
        folder that is renamed, is written under its final name; a file moved is new where it
        lands. The audit event comes before the rename: the source still exists."""
        source, target, source_folder, target_folder = args
        if threading.get_ident() in self.quiet_threads or source_folder != -1 or target_folder != -1:
            return  # paths relative to folder descriptors name no file we can find again
        source = os.path.abspath(os.fsdecode(source))
        target = os.path.abspath(os.fsdecode(target))
        inside = source + os.sep
        for step, path in [key for key in self.writes if key[1] == source or key[1].startswith(inside)]:
            del self.writes[step, path]
            self.seen.discard((path, WRITE, step))
            self.step_paths.get((step, WRITE), set()).discard(self.relative(path))
            if path != source:
                self._opened((target + path[len(source):], "w", 0))
        if not os.path.isdir(source):
            self._opened((target, "w", 0))

    def drain(self, include_writes: bool) -> list[tuple]:
        """(step, path relative to the project, direction, sha256, size, time) of new events."""
        with self.quietly():  # hashing opens the files again: that is not the run's I/O
            return self._drain(include_writes)

    @contextmanager
    def quietly(self) -> Iterator[None]:
        """What this thread opens or starts meanwhile is trellis's own, not the run's."""
        me = threading.get_ident()
        self.quiet_threads.add(me)
        try:
            yield
        finally:
            if me not in self.permanently_quiet:
                self.quiet_threads.discard(me)

    def quiet(self, thread: threading.Thread) -> None:
        """Ignore the opens of one of trellis's own threads."""
        if thread.ident is not None:
            self.permanently_quiet.add(thread.ident)
            self.quiet_threads.add(thread.ident)

    def _drain(self, include_writes: bool) -> list[tuple]:
        events = []
        for _ in range(len(self.reads)):
            step, path, at, opened_stat = self.reads.popleft()
            digest, size = (None, None) if opened_stat is None else file_digest(path, opened_stat)
            events.append((step, self.relative(path), READ, digest, size, at, None))
        while self.found_after:
            step, path, at = self.found_after.pop()
            digest, size = file_digest(path, None)
            if size is not None:
                events.append((step, self.relative(path), WRITE, digest, size, at, 1))
        with self.writes_lock:
            events += self.settled
            self.settled = []
        if include_writes:
            events += self._written(None)
        return events

    def settle(self, step: int) -> None:
        """Hash now what a finished step (a cell) wrote: a later step writing the same file must
        not lend this one its content."""
        with self.quietly():
            found = self._written({step})
            with self.writes_lock:
                self.settled += found

    def _written(self, steps: set[int] | None) -> list[tuple]:
        events = []
        with self.writes_lock:
            for (step, path), (at, before) in list(self.writes.items()):
                if steps is not None and step not in steps:
                    continue
                if _identity(path) == before:
                    # an open that failed (mode "x", no permission) or wrote nothing yet; the
                    # last drain of the run drops it
                    continue
                if self.writes.pop((step, path), None) is None:
                    continue  # renamed meanwhile: recorded under its new name
                # a file written again after this point is a new version
                self.seen.discard((path, WRITE, step))
                digest, size = file_digest(path, None)
                if size is None:
                    continue  # opened for writing but never created
                events.append((step, self.relative(path), WRITE, digest, size, at, None))
        return events

    def find_written_after(self, step: int, since: float, exclude: tuple[str, ...] = ()) -> None:
        """Files of the project created or changed since ``since`` (a time) that no open of this
        process wrote in ``step``: a child process (``!dot -Tpng``, ``subprocess.run``) or a C
        library wrote them. They are recorded as written by ``step``, seen after the fact. The
        scan is bounded (``SCAN_LIMIT`` entries) and skips hidden, cache and environment folders,
        the store, and files that look like secrets."""
        with self.quietly():
            since_ns = int(since * 1e9)
            known = {path for known_step, path in self.written if not step or known_step == step}
            for path, at in _changed_files(self.root, since_ns):
                if (path in known or path in exclude or path.startswith(self.ignored)
                        or _is_noise(path)):
                    continue
                self.found_after.append((step, path, at))
                if step:
                    self.step_paths.setdefault((step, WRITE), set()).add(self.relative(path))

    def spawned_in(self, step: int) -> bool:
        if step in self.spawned:
            self.spawned.discard(step)
            return True
        return False

    def paths_read_in(self, step: int) -> list[str]:
        return sorted(self.step_paths.pop((step, READ), ()))

    def paths_written_in(self, step: int) -> list[str]:
        """Files the step changed and left behind: an open for writing that failed (no such
        folder, mode "x" on a file that exists, no permission), or a file removed again, wrote
        nothing a later step could read."""
        written = self.step_paths.pop((step, WRITE), ())
        return sorted(path for path in written if self._changed_in(step, path))

    def _changed_in(self, step: int, path: str) -> bool:
        full = path if os.path.isabs(path) else os.path.join(self.root, path)
        opened = self.writes.get((step, full))
        now = _identity(full)
        return now is not None and (opened is None or now != opened[1])

    def relative(self, path: str) -> str:
        if path.startswith(self.root + os.sep):
            return path[len(self.root) + 1:]
        return path


def _changed_files(root: str, since_ns: int) -> list[tuple[str, float]]:
    """(path, modification time) of the files under ``root`` changed at or after ``since_ns``."""
    found: list[tuple[str, float]] = []
    folders, visited = [root], 0
    while folders:
        try:
            entries = os.scandir(folders.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                visited += 1
                if visited > SCAN_LIMIT:
                    return found
                name = entry.name
                if name.startswith("."):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if name not in _UNSCANNED_FOLDERS:
                            folders.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        modified = entry.stat(follow_symlinks=False).st_mtime_ns
                        if modified >= since_ns and not any(fnmatch.fnmatch(name, p) for p in _SECRETS):
                            found.append((entry.path, modified / 1e9))
                except OSError:
                    continue
    return found


def _identity(path: str) -> tuple | None:
    """What changes when a file is written: inode, modification time, size (None: no file)."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_ino, found.st_mtime_ns, found.st_size) if stat_module.S_ISREG(found.st_mode) else None


def _is_noise(path: str) -> bool:
    if path.startswith(_NOISE_PREFIXES) or any(part in path for part in _NOISE_PARTS):
        return True
    # before the data folders: scikit-image's lazy loader reads the stub next to its images
    if os.path.splitext(path)[1] in _NOISE_SUFFIXES:
        return True
    for root in _PACKAGE_ROOTS:
        if root in path:
            folders = path.split(root, 1)[1].split("/")[:-1]
            return not _PACKAGE_DATA.intersection(folders)
    return path.startswith(sys.base_prefix + os.sep + "lib")


def watch(root: Path, store_dir: Path) -> FileWatcher:
    """Start watching this process's file opens (an audit hook cannot be removed, so once)."""
    global _installed
    if _installed is None:
        _installed = FileWatcher(root, store_dir)
        sys.addaudithook(_installed.hook)
    return _installed


def hash_file(path: Any) -> str | None:
    return file_digest(os.fspath(path), None)[0]
