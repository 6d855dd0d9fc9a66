"""Replay is exact, or says it is not: values replayed into past runs are compared, bit for bit,
with a full forward run of the same code (real scripts, real git, real stores, real processes)."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import Project, git
from tests.side_python import side_python
from tests.replaying.test_replay import _Database, commit

# The issue's training script: minibatches drawn from a Generator outside checkpointing().
ISSUE_SCRIPT = '''
import numpy as np
import trellis

rng = np.random.default_rng(7)
X = rng.normal(size=(60, 5)); y = X @ rng.normal(size=5); w = np.zeros(5)
with trellis.checkpointing({checkpointed}):
    for epoch in trellis.loop("epoch", range(6)):
        for step in trellis.loop("step", range(6)):
            idx = rng.integers(0, 60, size=10)        # minibatch sampling: state outside checkpointing
            w -= 0.05 * X[idx].T @ (X[idx] @ w - y[idx]) / 10
            trellis.log("loss", float(np.mean((X @ w - y) ** 2)))
'''
W_NORM = '        trellis.log("w_norm", float(np.linalg.norm(w)))   # added afterwards, then replayed\n'


def values_of(project: Project, name: str, **env: str) -> dict[str, list[tuple[int, float]]]:
    """Each run's (epoch, value) pairs of ``name``, floats exactly as stored."""
    done = project.python(f"""
        import json, trellis
        frame = trellis.dataframe({name!r})
        rows = frame[["run_id", "epoch", {name!r}]].values.tolist()
        print(json.dumps(rows))
    """, **env)
    found: dict[str, list[tuple[int, float]]] = {}
    for run, epoch, value in json.loads(done.stdout):
        found.setdefault(run, []).append((int(epoch), value))
    return found


def forward_reference(project: Project, source: str, tmp, *args: str) -> list[tuple[int, float]]:
    """``source`` run forward into a store of its own: the truth a replay must equal."""
    reference = tmp / "reference"
    reference.mkdir(exist_ok=True)
    (reference / "reference.py").write_text(source)
    store = str(reference / f"store-{len(list(reference.iterdir()))}.db")
    done = project.run(str(reference / "reference.py"), *args, TRELLIS_STORE=store)
    assert done.returncode == 0
    (found,) = values_of(project, "w_norm", TRELLIS_STORE=store).values()
    return found


def keep_checkpoints(project: Project, run: str, indexes: set[int] | None, generators: bool = True) -> None:
    """Leave only the checkpoints after ``indexes`` (None: all), as a checkpoint budget that
    kept fewer does; ``generators=False`` drops the generator states, as in runs recorded before
    they were saved."""
    store = _writable(project)
    try:
        (run_id,) = store.execute("SELECT id FROM runs WHERE uuid = ?", (run,))[0]
        with store.transaction():
            if indexes is not None:
                marks = ", ".join("?" * len(indexes)) or "NULL"
                store.execute(f"DELETE FROM checkpoints WHERE run = ? AND idx NOT IN ({marks})", (run_id, *indexes))
            if not generators:
                store.execute("DELETE FROM checkpoints WHERE run = ? AND name = 'random-state'", (run_id,))
    finally:
        store.close()


def _writable(project: Project, url: str | None = None):
    from tests import postgres
    from trellis.store.connection import open_store

    postgres.configure(project.root)
    return open_store(url, root=project.root)


def replay(project: Project, *args: str, check: bool = True) -> dict:
    done = project.cli("replay", "w_norm", "--yes", "--json", *args, check=check)
    report = json.loads(done.stdout)
    report["returncode"] = done.returncode
    return report


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_issues_script_replays_exactly_what_a_full_run_logs(project, tmp_path, workers):
    source = ISSUE_SCRIPT.format(checkpointed="w=w")
    project.write("train.py", source)
    commit(project, "train")
    project.run("train.py", TRELLIS_CHECKPOINT_SHARE="1")
    (run,) = [uuid for (uuid,) in _Database(project).execute("SELECT uuid FROM runs")]
    keep_checkpoints(project, run, {0, 3, 5})  # what a 5 % budget keeps of short epochs
    today = source + W_NORM
    project.write("train.py", today)

    plan = project.cli("replay", "w_norm", "--dry-run", "--workers", workers).stdout
    assert "epoch 1-2, 4 run in full, not with inner loops restored: the run kept checkpoints after 3 of 6" in plan
    report = replay(project, "--workers", workers)
    assert [r["status"] for r in report["runs"]] == ["exact"]
    assert report["runs"][0]["compared"] >= 3 * 6  # the loss of every step it re-ran
    assert values_of(project, "w_norm")[run] == forward_reference(project, today, tmp_path)


def test_runs_recorded_without_generator_states_are_made_exact_from_an_earlier_point(project, tmp_path):
    source = ISSUE_SCRIPT.format(checkpointed="w=w")
    project.write("train.py", source)
    commit(project, "train")
    project.run("train.py", TRELLIS_CHECKPOINT_SHARE="1")
    (run,) = [uuid for (uuid,) in _Database(project).execute("SELECT uuid FROM runs")]
    keep_checkpoints(project, run, {0, 3, 5}, generators=False)
    today = source + W_NORM
    project.write("train.py", today)

    done = project.cli("replay", "w_norm", "--yes", "--workers", "2")
    line = next(line for line in done.stdout.splitlines() if line.startswith(run[:8]))
    assert line.startswith(f"{run[:8]}  exact after re-running from an earlier point: 6 values of w_norm")
    assert "resuming after epoch 0: loss at epoch 1, step 0:" in done.stdout
    assert values_of(project, "w_norm")[run] == forward_reference(project, today, tmp_path)
    verified = _Database(project).execute("SELECT DISTINCT verified FROM logs WHERE name = 'w_norm'").fetchall()
    verified = {v for (v,) in verified}
    assert "rerun" in verified and verified <= {"checkpoint", "exact", "rerun"}


def test_a_checkpointed_generator_is_restored_in_place(project, tmp_path):
    source = ISSUE_SCRIPT.format(checkpointed="w=w, rng=rng")
    project.write("train.py", source)
    commit(project, "train")
    project.run("train.py", TRELLIS_CHECKPOINT_SHARE="1")
    (run,) = [uuid for (uuid,) in _Database(project).execute("SELECT uuid FROM runs")]
    keep_checkpoints(project, run, {1, 4}, generators=False)  # the generator's own checkpoint remains
    today = source + W_NORM
    project.write("train.py", today)
    report = replay(project, "--workers", "2")
    assert [r["status"] for r in report["runs"]] == ["exact"] and not report["runs"][0]["failed"]
    assert values_of(project, "w_norm")[run] == forward_reference(project, today, tmp_path)


def test_what_cannot_be_made_exact_is_reported_and_not_stored(project):
    # The run read a variable that the replay does not set: no checkpoint can make it exact.
    source = ISSUE_SCRIPT.format(checkpointed="w=w").replace(
        "import numpy as np\n", "import os\nimport numpy as np\n").replace(
        "w -= 0.05 *", "w -= float(os.environ.get('LR', '0.05')) *")
    project.write("train.py", source)
    commit(project, "train")
    project.run("train.py", TRELLIS_CHECKPOINT_SHARE="1", LR="0.04")
    (run,) = [uuid for (uuid,) in _Database(project).execute("SELECT uuid FROM runs")]
    keep_checkpoints(project, run, {2})
    project.write("train.py", source + W_NORM)
    done = project.cli("replay", "w_norm", "--yes", check=False)
    assert done.returncode == 1
    line = next(line for line in done.stdout.splitlines() if line.startswith(run[:8]))
    assert line.startswith(f"{run[:8]}  could not be made exact: loss at epoch 0, step 0: ")
    assert "even from the start of the run" in line and "values of w_norm not stored" in line
    stored = _Database(project).execute("SELECT name, verified FROM logs WHERE name = 'w_norm'").fetchall()
    assert stored == []
    (status, error) = _Database(project).execute("SELECT status, error FROM replays").fetchone()
    assert status == "inexact" and error.startswith("loss at epoch 0, step 0")


def test_overrides_reach_the_args_and_verification_judges_them(project, tmp_path):
    # `device` changes nothing the run computes; `lr` changes every value
    source = ISSUE_SCRIPT.format(checkpointed="w=w").replace(
        "rng = np.random.default_rng(7)\n",
        "rng = np.random.default_rng(7)\ndevice = trellis.arg('device', 'gpu')\nlr = trellis.arg('lr', 0.05)\n",
    ).replace("w -= 0.05 *", "w -= lr *")
    project.write("train.py", source)
    commit(project, "train")
    project.run("train.py", TRELLIS_CHECKPOINT_SHARE="1")
    (run,) = [uuid for (uuid,) in _Database(project).execute("SELECT uuid FROM runs")]
    keep_checkpoints(project, run, {1, 3})
    today = source + W_NORM.replace("trellis.log(", "print(device); trellis.log(", 1)
    project.write("train.py", today)

    planned = project.cli("replay", "w_norm", "--dry-run", "--override", "device=cpu").stdout
    assert "with device=cpu instead of each run's own" in planned
    report = replay(project, "--override", "device=cpu", "--override", "lr=0.06", check=False)
    assert report["returncode"] == 1 and report["runs"][0]["status"] == "inexact"
    # the lr changed what the run logged: nothing stored
    assert _Database(project).execute("SELECT COUNT(*) FROM logs WHERE name = 'w_norm'").fetchone() == (0,)

    report = replay(project, "--override", "device=cpu")
    assert [r["status"] for r in report["runs"]] == ["exact"]
    assert values_of(project, "w_norm")[run] == forward_reference(project, today, tmp_path)
    recorded = _Database(project).execute("SELECT status, overrides FROM replays ORDER BY id").fetchall()
    assert recorded == [("inexact", '{"device": "cpu", "lr": "0.06"}'), ("exact", '{"device": "cpu"}')]
    shown = json.loads(project.cli("show", run, "--json").stdout)["replays"]
    assert [r["overrides"] for r in shown] == [{"device": "cpu", "lr": "0.06"}, {"device": "cpu"}]


STEP_W_NORM = '            trellis.log("w_norm", float(np.linalg.norm(w)))\n'


def stepwise(project, **env) -> list[list]:
    """(epoch, step, w_norm) of every stored value."""
    done = project.python("""
        import json, trellis
        frame = trellis.dataframe("w_norm")
        print(json.dumps(frame[["epoch", "step", "w_norm"]].values.tolist()))
    """, **env)
    return [[int(e), int(s), v] for e, s, v in json.loads(done.stdout)]


def test_where_on_an_inner_loop_stores_only_its_selected_iterations(project, tmp_path):
    source = ISSUE_SCRIPT.format(checkpointed="w=w")
    project.write("train.py", source)
    commit(project, "train")
    project.run("train.py", TRELLIS_CHECKPOINT_SHARE="1")
    today = source + STEP_W_NORM
    project.write("train.py", today)
    reference = tmp_path / "reference.py"
    reference.write_text(today)
    project.run(str(reference), TRELLIS_STORE=str(tmp_path / "reference.db"))
    truth = stepwise(project, TRELLIS_STORE=str(tmp_path / "reference.db"))
    assert len(truth) == 36

    report = replay(project, "--where", "epoch >= 4 and step == last")
    assert [r["status"] for r in report["runs"]] == ["exact"] and report["runs"][0]["values"] == 2
    assert stepwise(project) == [row for row in truth if row[0] >= 4 and row[1] == 5]

    report = replay(project, "--force", "--where", "step in (0, 2)")
    assert report["runs"][0]["values"] == 12
    # what the first replay stored stays beside it
    assert sorted(stepwise(project)) == [row for row in truth if row[1] in (0, 2) or (row[0] >= 4 and row[1] == 5)]

    for where, message in (("epoch == 1 or step == 0", "each condition names one loop's index"),
                           ("batch == 0", "--where names the loop 'batch', which this run did not run")):
        done = project.cli("replay", "w_norm", "--yes", "--force", "--where", where, check=False)
        assert message in done.stdout + done.stderr, (where, done.stdout, done.stderr)


def test_failed_runs_are_skipped_unless_asked_for(project):
    source = ISSUE_SCRIPT.format(checkpointed="w=w") + "import sys\nif len(sys.argv) > 1:\n    raise RuntimeError('diverged')\n"
    project.write("train.py", source)
    commit(project, "train")
    project.run("train.py", TRELLIS_CHECKPOINT_SHARE="1")
    project.run("train.py", "fail", TRELLIS_CHECKPOINT_SHARE="1", check=False)
    good, failed = [uuid for (uuid,) in _Database(project).execute("SELECT uuid FROM runs ORDER BY id")]
    project.write("train.py", source.replace(
        '            trellis.log("loss", float(np.mean((X @ w - y) ** 2)))\n',
        '            trellis.log("loss", float(np.mean((X @ w - y) ** 2)))\n' + W_NORM))
    done = project.cli("replay", "w_norm", "--yes")
    assert f"{failed[:8]}  skipped: the run failed (--include-failed to try it)" in done.stdout
    assert f"{good[:8]}  exact from checkpoints: 6 values of w_norm" in done.stdout
    # It failed after the loop, which an epoch-level statement does not need to reach.
    again = project.cli("replay", "w_norm", "--yes", "--include-failed", "--run", failed)
    assert f"{failed[:8]}  exact from checkpoints: 6 values of w_norm" in again.stdout


def test_where_without_checkpoints_stores_exactly_the_selected_iterations(project, tmp_path):
    source = ISSUE_SCRIPT.replace("with trellis.checkpointing({checkpointed}):", "if True:")
    project.write("train.py", source)
    commit(project, "train")
    project.run("train.py")
    project.write("train.py", source + W_NORM)
    report = replay(project, "--where", "epoch == 1")
    assert [r["status"] for r in report["runs"]] == ["exact"] and report["runs"][0]["values"] == 1
    (run,) = report["runs"]
    reference = forward_reference(project, source + W_NORM, tmp_path)
    assert values_of(project, "w_norm")[run["run"]] == [reference[1]]


@pytest.mark.parametrize("imports, prefix", [
    ("import trellis", "trellis."),
    ("import trellis as tr", "tr."),
    ("from trellis import log, loop", ""),
    ("from trellis import flor", "flor."),
    ("import trellis.flor as flor", "flor."),
    ("import trellis.flor", "trellis.flor."),
])
def test_the_planner_knows_every_documented_import_form(imports, prefix):
    from trellis.analysis.propagation import find_statements, place

    old = textwrap.dedent(f"""
        {imports}
        for epoch in {prefix}loop("epoch", range(3)):
            for step in {prefix}loop("step", range(2)):
                {prefix}log("loss", 1.0)
    """)
    today = old + f"    {prefix}log(\"val_loss\", 2.0)\n"
    (found,) = find_statements(today, ["val_loss"])
    placement = place(today, found, old, "epoch", names=["val_loss"])
    assert placement.loops == ["epoch"] and placement.light


def test_a_share_of_one_keeps_a_checkpoint_at_every_epoch(project):
    project.write("train.py", """
        import numpy as np
        import trellis
        w = np.zeros(500_000)  # far costlier to save than an epoch takes
        with trellis.checkpointing(w=w):
            for epoch in trellis.loop("epoch", range(12)):
                w += 1
    """)
    project.run("train.py", TRELLIS_CHECKPOINT_SHARE="1")
    kept = _Database(project).execute("SELECT COUNT(DISTINCT idx) FROM checkpoints").fetchone()
    assert kept == (12,)


# -- a differential test over generated training scripts ---------------------------------------

DRAWS = {
    "generator": ("rng = np.random.default_rng(SEED)", "rng.integers(0, 40, size=8)", "rng.permutation(40)"),
    "legacy": ("np.random.seed(SEED)", "np.random.randint(0, 40, size=8)", "np.random.permutation(40)"),
    "random": ("random.seed(SEED)", "np.array([random.randrange(40) for _ in range(8)])",
               "np.array(random.sample(range(40), 40))"),
}
TORCH_PIN = "torch==2.13.0"
# torch's own generators, run in a side environment that has torch (the project does not install it)
TORCH_DRAWS = {
    "torch": ("torch.manual_seed(SEED)", "torch.randint(0, 40, (8,))", "torch.randperm(40)"),
    "torch-generator": ("rng = torch.Generator().manual_seed(SEED)", "torch.randint(0, 40, (8,), generator=rng)",
                        "torch.randperm(40, generator=rng)"),
}


@dataclass
class Case:
    draws: str
    shuffle: bool
    momentum: bool
    epochs: int
    budget: str  # all, some, none, all-without-generators
    workers: int
    dask: bool
    seed: int
    tensors: bool = False  # the weights are torch tensors
    generator_checkpointed: bool = False  # rng is passed to checkpointing() too

    def script(self, version: int, new_statement: bool) -> str:
        setup, draw, permutation = {**DRAWS, **TORCH_DRAWS}[self.draws]
        torch = self.tensors or self.draws in TORCH_DRAWS
        checkpointed = "w=w, rng=rng" if self.generator_checkpointed and "rng =" in setup else "w=w"
        lines = [
            "import random", "import numpy as np", *(["import torch"] if torch else []), "import trellis",
            f"SEED = {self.seed}", setup,
            "data = np.random.default_rng(1000 + SEED).normal(size=(40, 3))",
            "X, y = data, data @ np.array([1.0, -2.0, 0.5])",
        ]
        if self.tensors:
            lines += ["X, y = torch.from_numpy(X), torch.from_numpy(y)",
                      "w = torch.zeros(3, dtype=torch.float64)", "v = torch.zeros(3, dtype=torch.float64)"]
        else:
            lines += ["w = np.zeros(3)", "v = np.zeros(3)"]
        lines += ['lr = trellis.arg("lr", 0.05)', f"with trellis.checkpointing({checkpointed}):",
                  f'    for epoch in trellis.loop("epoch", range({self.epochs})):']
        if self.shuffle:
            lines.append(f"        order = {permutation}")
        lines.append('        for step in trellis.loop("step", range(3)):')
        index = "order[step * 8:step * 8 + 8]" if self.shuffle else draw
        if torch and not self.tensors:
            index = f"np.asarray({index})"
        lines.append(f"            idx = {index}")
        lines.append("            g = X[idx].T @ (X[idx] @ w - y[idx]) / 8")
        if self.momentum:  # v lives outside checkpointing()
            lines += ["            v *= 0.5", "            v += g", "            w -= lr * v"]
        else:
            lines.append("            w -= lr * g")
        if version == 2:
            lines.append("            w *= 0.999")
        lines.append('            trellis.log("loss", float(((X @ w - y) ** 2).mean()))')
        if new_statement:
            lines.append('        trellis.log("w_norm", float((w ** 2).sum() ** 0.5))')
        return "\n".join(lines) + "\n"


cases = st.builds(
    Case, draws=st.sampled_from(sorted(DRAWS)), shuffle=st.booleans(), momentum=st.booleans(),
    epochs=st.integers(2, 5), budget=st.sampled_from(["all", "some", "none", "all-without-generators"]),
    workers=st.sampled_from([1, 2, 4]), dask=st.booleans(), seed=st.integers(0, 2**16),
    generator_checkpointed=st.booleans(),
)
torch_cases = st.builds(
    Case, draws=st.sampled_from(sorted({**DRAWS, **TORCH_DRAWS})), shuffle=st.booleans(), momentum=st.booleans(),
    epochs=st.integers(2, 4), budget=st.sampled_from(["all", "some", "none", "all-without-generators"]),
    workers=st.sampled_from([1, 2]), dask=st.just(False), seed=st.integers(0, 2**16),
    tensors=st.booleans(), generator_checkpointed=st.booleans(),
)


@pytest.fixture(scope="module")
def dask_address():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address.replace("tcp://", "dask://")


def check_case(case: Case, root, dask_address: str | None, interpreter: str | None = None) -> None:
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    project = Project(root)
    project.interpreter = interpreter or project.interpreter
    runs = []
    for version, lr in ((1, "0.05"), (2, "0.03")):
        project.write("train.py", case.script(version, new_statement=False))
        commit(project, f"version {version}")
        project.run("train.py", "--lr", lr, TRELLIS_CHECKPOINT_SHARE="1")
        runs.append((version, lr))
    uuids = [uuid for (uuid,) in _Database(project).execute("SELECT uuid FROM runs ORDER BY id")]
    for uuid in uuids:
        if case.budget == "some":
            keep_checkpoints(project, uuid, set(range(0, case.epochs, 2)))
        elif case.budget == "none":
            keep_checkpoints(project, uuid, set())
        elif case.budget == "all-without-generators":
            keep_checkpoints(project, uuid, None, generators=False)
    project.write("train.py", case.script(2, new_statement=True))
    executor = ["--executor", dask_address] if case.dask else []
    report = replay(project, "--workers", str(case.workers), *executor, check=False)
    assert len(report["runs"]) == 2, report
    database = _Database(project)
    for uuid, (version, lr), outcome in zip(uuids, runs, report["runs"]):
        (run_id,) = database.execute("SELECT id FROM runs WHERE uuid = ?", (uuid,)).fetchone()
        stored = [v for (v,) in database.execute(
            "SELECT float_value FROM logs WHERE run = ? AND name = 'w_norm' ORDER BY iteration", (run_id,))]
        assert outcome["status"] in ("exact", "rerun", "unchecked"), (case, outcome)
        if case.budget == "all":  # every iteration has its checkpoint and generator states
            assert outcome["status"] == "exact", (case, outcome)
        assert stored == epoch_values(project, case.script(version, new_statement=True), root.parent, lr), (case, outcome)
    assert report["returncode"] == 0


def epoch_values(project: Project, source: str, folder, lr: str) -> list[float]:
    """The values of w_norm a forward run of ``source`` logs, epoch by epoch, read from its own
    SQLite store."""
    import sqlite3

    script = folder / f"reference-{lr}.py"
    script.write_text(source)
    store = folder / f"reference-{lr}.db"
    project.run(str(script), "--lr", lr, TRELLIS_STORE=str(store))
    with sqlite3.connect(store) as database:
        return [v for (v,) in database.execute("SELECT float_value FROM logs WHERE name = 'w_norm' ORDER BY id")]


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases)
@example(case=Case("generator", shuffle=True, momentum=False, epochs=5, budget="some", workers=2, dask=False, seed=3))
@example(case=Case("legacy", shuffle=False, momentum=True, epochs=4, budget="all-without-generators", workers=4,
                   dask=True, seed=11))
def test_generated_training_scripts_replay_exactly(case, tmp_path_factory, dask_address):
    check_case(case, tmp_path_factory.mktemp("case") / "proj", dask_address)


@pytest.mark.sqlite_only("the longer run of the generated scripts; the store does not change what it checks")
@pytest.mark.timeout(1800)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases)
def test_generated_training_scripts_replay_exactly_at_length(case, tmp_path_factory, dask_address):
    check_case(case, tmp_path_factory.mktemp("case") / "proj", dask_address)


@pytest.fixture(scope="module")
def torch_python() -> str:
    """An interpreter with torch (CPU) and this project's packages."""
    return str(side_python(Path(__file__).parent / ".torch",
                           "import torch, trellis; print(torch.__version__.split('+')[0])", TORCH_PIN.split("==")[1],
                           [TORCH_PIN], with_ours=True))


@pytest.mark.sqlite_only("torch's generators and tensors are what it checks, not the store")
@pytest.mark.timeout(1800)
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=torch_cases)
@example(case=Case("torch-generator", shuffle=True, momentum=True, epochs=3, budget="all", workers=2, dask=False,
                   seed=5, tensors=True, generator_checkpointed=True))
@example(case=Case("torch", shuffle=False, momentum=False, epochs=3, budget="some", workers=1, dask=False,
                   seed=9, tensors=False))
def test_generated_torch_training_scripts_replay_exactly(case, tmp_path_factory, torch_python):
    check_case(case, tmp_path_factory.mktemp("case") / "proj", None, torch_python)


def test_the_dataframe_shows_how_each_value_was_verified(project):
    source = ISSUE_SCRIPT.format(checkpointed="w=w")
    project.write("train.py", source)
    commit(project, "train")
    project.run("train.py", TRELLIS_CHECKPOINT_SHARE="1")
    (run,) = [uuid for (uuid,) in _Database(project).execute("SELECT uuid FROM runs")]
    keep_checkpoints(project, run, {0, 1, 2, 3, 5})
    project.write("train.py", source + W_NORM)
    project.cli("replay", "w_norm", "--yes")
    done = project.python("""
        import json, trellis
        frame = trellis.dataframe("loss", "w_norm", verified=True)
        epochs = frame.dropna(subset=["w_norm"])
        print(json.dumps([sorted(set(frame["loss_verified"].dropna())), epochs["w_norm_verified"].tolist()]))
    """)
    loss, w_norm = json.loads(done.stdout)
    assert loss == ["logged"]
    # One segment re-ran epoch 4 from the checkpoint after epoch 3, so it recomputed losses to compare.
    assert w_norm == ["exact"] * 6
