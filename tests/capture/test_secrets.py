"""No secret reaches the store: a script run by make with secrets on its command line, in make
variables and in environment variables, then every stored row and every export searched for
them."""

from __future__ import annotations

import re
import shutil
import textwrap

import pytest

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
