"""Code snapshots against real git repositories: the user's branch, index, HEAD and status stay
byte-identical, untracked files are captured, ignored ones are not, and runs never collide."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trellis.capture.snapshot import find_git_root, take_snapshot
from trellis.store.snapshots import files_at, source_at

REPO = Path(__file__).resolve().parents[2]
COMMITTER = ["-c", "user.name=tester", "-c", "user.email=tester@localhost"]


@pytest.fixture(autouse=True)
def bare_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No git identity and no global or system config, as on a fresh machine or CI runner."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    for name in list(os.environ):
        if name.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_", "GIT_DIR", "GIT_INDEX")) or name == "EMAIL":
            monkeypatch.delenv(name)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def new_repo(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    # Without trellis's own identity, commit-tree would refuse to guess one.
    git(root, "config", "user.useConfigOnly", "true")
    return root


def commit_all(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, *COMMITTER, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


def user_state(root: Path) -> dict:
    """Everything of the user's that a snapshot must leave alone, byte for byte."""
    index = root / ".git" / "index"
    return {
        "index": index.read_bytes() if index.exists() else None,
        "status": git(root, "--no-optional-locks", "status", "--porcelain=v1", "-uall", "--ignored"),
        "head": (root / ".git" / "HEAD").read_bytes(),
        "branches": git(root, "for-each-ref", "refs/heads"),
        "stash": git(root, "stash", "list"),
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A repository with every kind of change: modified, staged, deleted, untracked, ignored."""
    root = new_repo(tmp_path / "project")
    write(root / ".gitignore", "*.log\nignored/\n")
    write(root / "train.py", "print('v1')\n")
    write(root / "gone.py", "x = 1\n")
    commit_all(root, "first")
    write(root / "train.py", "print('v2, not committed')\n")
    write(root / "staged.py", "y = 2\n")
    git(root, "add", "staged.py")
    (root / "gone.py").unlink()
    write(root / "notes/untracked.py", "z = 3\n")
    write(root / "debug.log", "ignored by pattern\n")
    write(root / "ignored/weights.bin", "ignored by directory\n")
    return root


def test_snapshot_captures_the_working_tree_and_leaves_user_state_identical(project: Path) -> None:
    head = git(project, "rev-parse", "HEAD")
    before = user_state(project)

    snap = take_snapshot(project, "run-1")

    assert user_state(project) == before
    assert "error" not in snap, snap
    assert snap["ref"] == "refs/trellis/runs/run-1"
    assert git(project, "rev-parse", snap["ref"]) == snap["commit"]
    assert snap["head"] == head
    assert snap["branch"] == "main"
    assert snap["dirty"] is True
    assert git(project, "rev-parse", f"{snap['commit']}^") == head
    assert git(project, "log", "-1", "--format=%s|%an|%ae|%cn|%ce", snap["commit"]) == (
        "trellis snapshot run-1|trellis|trellis@localhost|trellis|trellis@localhost"
    )
    assert sorted(files_at(project, snap["commit"])) == [
        ".gitignore",
        "notes/untracked.py",
        "staged.py",
        "train.py",
    ]
    assert source_at(project, snap["commit"], "train.py") == "print('v2, not committed')\n"
    assert source_at(project, snap["commit"], str(project / "notes/untracked.py")) == "z = 3\n"
    assert source_at(project, snap["commit"], "debug.log") is None
    assert source_at(project, snap["commit"], "gone.py") is None


def test_clean_tree_is_not_dirty_and_keeps_heads_tree(tmp_path: Path) -> None:
    root = new_repo(tmp_path / "clean")
    write(root / "a.py", "a = 1\n")
    head = commit_all(root, "only")

    snap = take_snapshot(root, "clean-run")

    assert snap["dirty"] is False
    assert git(root, "rev-parse", f"{snap['commit']}^{{tree}}") == git(root, "rev-parse", f"{head}^{{tree}}")


def test_repository_without_commits(tmp_path: Path) -> None:
    root = new_repo(tmp_path / "fresh")
    write(root / "model.py", "m = 0\n")
    write(root / "data/prep.py", "p = 0\n")
    assert not (root / ".git" / "index").exists()
    before = user_state(root)

    snap = take_snapshot(root, "first-run")

    assert "error" not in snap, snap
    assert user_state(root) == before
    assert not (root / ".git" / "index").exists()
    assert snap["head"] is None
    assert snap["branch"] == "main"
    assert snap["dirty"] is True
    assert git(root, "rev-list", "--parents", "-n", "1", snap["commit"]) == snap["commit"]  # no parent
    assert sorted(files_at(root, snap["commit"])) == ["data/prep.py", "model.py"]
    assert subprocess.run(["git", "rev-parse", "-q", "--verify", "HEAD"], cwd=root).returncode != 0


def test_staged_files_in_a_repository_without_commits(tmp_path: Path) -> None:
    root = new_repo(tmp_path / "staged")
    write(root / "a.py", "a\n")
    write(root / "b.py", "b\n")
    git(root, "add", "a.py")
    before = user_state(root)

    snap = take_snapshot(root, "staged-run")

    assert user_state(root) == before
    assert sorted(files_at(root, snap["commit"])) == ["a.py", "b.py"]


def test_large_untracked_files_are_listed_not_stored(tmp_path: Path) -> None:
    root = new_repo(tmp_path / "large")
    write(root / "big_tracked.txt", "t" * 5000)
    commit_all(root, "tracked")
    write(root / "checkpoint.pt", "c" * 5000)
    write(root / "small.py", "s\n")

    snap = take_snapshot(root, "large-run", max_untracked_size=1000)

    assert "error" not in snap, snap
    assert snap["skipped"] == ["checkpoint.pt"]
    assert sorted(files_at(root, snap["commit"])) == ["big_tracked.txt", "small.py"]


def test_worktree(project: Path, tmp_path: Path) -> None:
    worktree = tmp_path / "feature-tree"
    git(project, "worktree", "add", "-q", "-b", "feature", str(worktree))
    write(worktree / "feature.py", "f = 1\n")
    (worktree / "deep").mkdir()
    main_index = (project / ".git" / "index").read_bytes()
    worktree_index = Path(git(worktree, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    worktree_index_bytes = worktree_index.read_bytes()

    assert (worktree / ".git").is_file()
    assert find_git_root(worktree / "deep") == worktree
    snap = take_snapshot(worktree, "worktree-run")

    assert "error" not in snap, snap
    assert snap["branch"] == "feature"
    assert snap["head"] == git(project, "rev-parse", "main")
    assert "feature.py" in files_at(project, snap["commit"])
    assert git(project, "rev-parse", "refs/trellis/runs/worktree-run") == snap["commit"]
    assert (project / ".git" / "index").read_bytes() == main_index
    assert worktree_index.read_bytes() == worktree_index_bytes


def test_detached_head_has_no_branch(project: Path) -> None:
    git(project, "checkout", "-q", "--detach")
    snap = take_snapshot(project, "detached-run")
    assert snap["branch"] is None
    assert snap["head"] == git(project, "rev-parse", "HEAD")


def test_find_git_root(project: Path, tmp_path: Path) -> None:
    assert find_git_root(project / "notes") == project
    assert find_git_root(project) == project
    outside = tmp_path / "outside"
    outside.mkdir()
    assert find_git_root(outside) is None


def test_failures_are_reported_not_raised(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    snap = take_snapshot(plain, "nowhere")
    assert snap["commit"] is None
    assert "not a git repository" in snap["error"]
    assert "\n" not in snap["error"]
    assert files_at(plain, "HEAD") == []
    assert source_at(plain, "HEAD", "x.py") is None


def test_bad_ref_name_is_reported(project: Path) -> None:
    snap = take_snapshot(project, "bad..name")
    assert snap["commit"] is None
    assert "update-ref" in snap["error"]
    assert git(project, "for-each-ref", "refs/trellis") == ""


def test_concurrent_processes_get_distinct_snapshots(project: Path) -> None:
    for i in range(50):
        write(project / f"pkg/module_{i}.py", f"value = {i}\n")
    before = user_state(project)
    code = (
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "from trellis.capture.snapshot import take_snapshot\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "print(json.dumps(take_snapshot(Path(sys.argv[1]), sys.argv[3])))\n"
    )
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath}
    start = str(time.time() + 1.5)  # all four start snapshotting at the same moment
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(project), start, f"concurrent-{i}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))

    assert all("error" not in snap for snap in results), results
    assert len({snap["ref"] for snap in results}) == 4
    assert len({snap["commit"] for snap in results}) == 4
    for snap in results:
        assert git(project, "rev-parse", snap["ref"]) == snap["commit"]
        assert "pkg/module_49.py" in files_at(project, snap["commit"])
    refs = git(project, "for-each-ref", "--format=%(refname)", "refs/trellis/runs").splitlines()
    assert sorted(refs) == [f"refs/trellis/runs/concurrent-{i}" for i in range(4)]
    assert user_state(project) == before
