"""No secret reaches the store: a script run by make with secrets on its command line, in make
variables and in environment variables, then every stored row and every export searched for
them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trellis
from trellis.store.schema import TABLES

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")

SECRETS = {
    "argv option": "pw-on-the-command-line",
    "argv name=value": "tok-as-name-value",
    "make variable": "mk-variable-secret",
    "environment": "aws-environment-secret",
    "parameter default": "default-key-value",
}


def test_no_secret_is_stored_or_exported(project, monkeypatch):
    project.write("train.py", """
        import trellis
        password = trellis.arg("db_password", "")
        token = trellis.arg("auth_token", "")
        key = trellis.arg("api_key", "default-key-value")
        epochs = trellis.arg("epochs", 2)
        for epoch in trellis.loop("epoch", range(epochs)):
            trellis.log("connected", bool(password and token and key))
    """)
    (project.root / "Makefile").write_text(textwrap.dedent("""
        train:
        \tpython train.py --db-password $(DB_PASSWORD) auth_token=tok-as-name-value --epochs 2
    """))
    env = project.env(AWS_SECRET_ACCESS_KEY=SECRETS["environment"], GITHUB_TOKEN=SECRETS["environment"])
    env["PATH"] = f"{__import__('sys').executable.rsplit('/', 1)[0]}:{env['PATH']}"
    import subprocess

    subprocess.run(["make", "train", f"DB_PASSWORD={SECRETS['argv option']}",
                    f"API_TOKEN={SECRETS['make variable']}"],
                   cwd=project.root, env=env, check=True, capture_output=True, text=True, timeout=120)

    monkeypatch.chdir(project.root)
    assert trellis.dataframe("connected")["connected"].tolist() == [True, True]  # the script got them
    params = trellis.dataframe().iloc[0]
    assert params["db_password"] == params["auth_token"] == params["api_key"] == "***"
    assert params["epochs"] == 2

    stored = []
    for table in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", TABLES):
        frame = trellis.query(f"SELECT * FROM {table}")
        stored.append(frame.to_json(orient="values", default_handler=str))
    assert "train.py" in stored[[*re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", TABLES)].index("runs")]
    exports = [trellis.export(everything=True, format=kind) for kind in ("json", "turtle")]
    assert "***" in exports[0]
    for where, secret in SECRETS.items():
        for text in (*stored, *exports):
            assert secret not in text, f"the {where} secret was recorded"


# -- secret-looking files and code snapshots ------------------------------------------------------

SECRET_FILES = {  # each secret starts with "leaked-"
    ".env": "DB_PASSWORD=leaked-env-password\n",
    ".env.production": "API_TOKEN=leaked-production-token\n",
    "deploy/server.pem": "-----BEGIN PRIVATE KEY-----\nleaked-pem\n",
    "id_ed25519": "leaked-ed25519\n",
    "config/.netrc": "machine example.org password leaked-netrc\n",
    ".aws/credentials": "aws_secret_access_key = leaked-aws\n",
    "kaggle.json": '{"key": "leaked-kaggle"}\n',
}


def _snapshot_of_latest(project):
    from trellis.queries.overview import snapshot_text

    store = project.store()
    try:
        (commit, described), = store.execute("SELECT git_commit, git FROM runs ORDER BY started DESC LIMIT 1")
        files = set(subprocess.run(["git", "ls-tree", "-r", "--name-only", commit], cwd=project.root,
                                   capture_output=True, text=True, check=True).stdout.split())
        shown = {}
        for path in SECRET_FILES:
            try:
                shown[path] = snapshot_text(store, "latest", path)["text"]
            except trellis.TrellisError:
                pass
    finally:
        store.close()
    return commit, json.loads(described), files, shown


def test_secret_looking_untracked_files_stay_out_of_the_code_snapshot(project):
    project.write("train.py", "import trellis\ntrellis.log('x', 1)\n")
    for path, text in SECRET_FILES.items():
        project.write(path, text)
    project.write(".env.example", "DB_PASSWORD=change-me\n")  # a template, no secret: kept
    project.write("keys.py", "KEYS = 1\n")
    project.write("tracked.key", "committed-on-purpose\n")
    subprocess.run(["git", "add", "tracked.key"], cwd=project.root, check=True)
    project.run("train.py")

    commit, described, files, shown = _snapshot_of_latest(project)
    assert {"train.py", ".env.example", "keys.py", "tracked.key"} <= files
    assert not files & set(SECRET_FILES)
    assert shown == {}  # the dashboard's code view has none of them to serve
    assert sorted(described["withheld"]) == sorted(SECRET_FILES)
    grep = subprocess.run(["git", "grep", "-F", "leaked-", commit], cwd=project.root, capture_output=True)
    assert grep.returncode == 1 and grep.stdout == b""  # 1: no match anywhere in the snapshot


def test_trellisignore_adds_patterns_and_takes_defaults_back(project):
    project.write("train.py", "import trellis\ntrellis.log('x', 1)\n")
    project.write(".env", "MODE=fast\n")
    project.write("vault/token.txt", "vault-token\n")
    project.write("notes.txt", "kept\n")
    project.write(".trellisignore", "# this project's .env holds no secret\n!.env\nvault/\n")
    project.run("train.py")
    _, described, files, _ = _snapshot_of_latest(project)
    assert {".env", "notes.txt", ".trellisignore"} <= files
    assert "vault/token.txt" not in files
    assert described["withheld"] == ["vault/token.txt"]


_NAME_PARTS = st.sampled_from([
    ".env", ".env.local", ".env.example", "env", "x.pem", "pem", "a.key", "keys", "keyboard.py",
    "id_rsa", "id_rsa.pub", "id_ed25519", ".netrc", ".pypirc", ".npmrc", "credentials",
    "credentials.json", "gcp.credentials", "credentials.py", ".git-credentials", "store.p12",
    "cert.pfx", "kaggle.json", "secrets.toml", "train.py", "data.csv", "README",
])
_PATHS = st.lists(
    st.tuples(st.lists(_NAME_PARTS, max_size=2), _NAME_PARTS).map(lambda t: "/".join([*t[0], t[1]])),
    min_size=1, max_size=12, unique=True,
)


def _left_out(path: str, patterns: tuple[str, ...]) -> bool:
    """gitignore for slash-free patterns: a component is out when the last pattern matching it
    is not a negation, and a file is out when it or a folder above it is."""
    import fnmatch

    for component in path.split("/"):
        decision = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            if fnmatch.fnmatchcase(component, pattern.lstrip("!")):
                decision = not negated
        if decision:
            return True
    return False


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(paths=_PATHS)
def test_what_a_snapshot_leaves_out_follows_the_patterns(tmp_path_factory, paths):
    from trellis.capture.snapshot import SECRET_PATTERNS, take_snapshot
    from trellis.store.snapshots import files_at

    root = tmp_path_factory.mktemp("snapshot")
    files = [p for p in paths if not any(p.startswith(q + "/") for q in paths)]  # a file is no folder
    for path in files:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(path)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    taken = take_snapshot(root, "property")
    assert "error" not in taken, taken
    expected_out = sorted(p for p in files if _left_out(p, SECRET_PATTERNS))
    assert sorted(taken.get("withheld", [])) == expected_out
    assert sorted(files_at(root, taken["commit"])) == sorted(set(files) - set(expected_out))


# -- secret-named arguments ---------------------------------------------------------------------

@pytest.mark.parametrize("option", [
    "--auth", "--pass", "--credentials", "--passphrase", "--api-key", "--apikey", "--access-key",
    "--private-key", "--client-secret", "--cookie", "--bearer", "--pwd", "--db-pass", "--authorization",
    "--oauth", "--basic-auth", "-p",
])
@pytest.mark.parametrize("form", ["separate", "equals"])
def test_secret_named_options_are_masked_in_both_forms(option, form):
    from trellis.capture.environment import mask_command, mask_secrets

    given = [option, "leaked-1"] if form == "separate" else [f"{option}=leaked-1"]
    masked = mask_secrets(["train.py", *given, "--lr", "0.1"])
    assert masked == ["train.py", *([option, "***"] if form == "separate" else [f"{option}=***"]), "--lr", "0.1"]
    assert "leaked" not in mask_command(" ".join(["python", "train.py", *given, "--lr", "0.1"]))


@pytest.mark.parametrize("argv", [
    ["--passes", "3"], ["--path", "data/x.csv"], ["--author", "ada"], ["--authority", "x"],
    ["--bypass", "1"], ["--num-passes=2"], ["-P", "22"], ["--pretrained", "bert"], ["--compass", "n"],
    ["--passage-len", "128"], ["-v", "run.py"],
])
def test_names_that_only_look_like_secrets_are_kept(argv):
    from trellis.capture.environment import is_secret_name, mask_secrets

    assert mask_secrets(["train.py", *argv]) == ["train.py", *argv]
    assert not is_secret_name(argv[0])


@pytest.mark.parametrize(("name", "secret"), [
    ("pass", True), ("db_pass", True), ("passphrase", True), ("pwd", True), ("auth", True),
    ("credentials", True), ("cookie", True), ("bearer_token", True), ("passes", False), ("path", False),
    ("author", False), ("p", False),  # trellis.arg("p", 0.5) is a dropout rate, read as --p
])
def test_arg_names_of_secrets(name, secret):
    from trellis.capture.environment import is_secret_name

    assert is_secret_name(name) is secret


def test_new_secret_names_are_kept_out_of_argv_params_and_exports(project, monkeypatch):
    project.write("train.py", """
        import trellis
        auth = trellis.arg("auth", "")
        passes = trellis.arg("passes", 1)
        path = trellis.arg("path", "")
        trellis.log("ready", bool(auth) and passes == 3)
    """)
    project.run("train.py", "--auth", "leaked-auth", "--pass=leaked-pass", "-p", "leaked-p",
                "--credentials", "leaked-credentials", "--passes", "3", "--path", "data.csv")
    monkeypatch.chdir(project.root)
    assert trellis.dataframe("ready")["ready"].tolist() == [True]
    argv = json.loads(trellis.query("SELECT argv FROM runs")["argv"][0])
    assert argv[1:] == ["--auth", "***", "--pass=***", "-p", "***", "--credentials", "***",
                        "--passes", "3", "--path", "data.csv"]
    params = trellis.dataframe().iloc[0]
    assert params["auth"] == "***" and params["passes"] == 3 and params["path"] == "data.csv"
    for kind in ("json", "turtle", "prov-json"):
        assert "leaked-" not in trellis.export(everything=True, format=kind)
