"""Virtualenvs beside the project's own, for what the project does not install: the peers
trellis is compared with (FlorDB, MLflow) and heavy libraries a test needs (torch).

Each is made once and reused while the probe prints the wanted version; the test processes of
`pytest -n` share them, so one process makes an environment while the others wait on its lock.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
import sysconfig
from pathlib import Path


def _probe(python: Path, probe: str) -> str | None:
    if not python.exists():
        return None
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def side_python(folder: Path, probe: str, wanted: str, requirements: list[str], *, with_ours: bool = False) -> Path:
    """The interpreter of the virtualenv at ``folder``, with ``requirements`` installed by pip
    if ``probe`` (Python code) does not print ``wanted``. ``with_ours`` also puts this
    interpreter's packages (trellis, editable, and its dependencies) behind the environment's own,
    so a test can run trellis with a library the project does not depend on."""
    python = folder / "bin" / "python"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name.lstrip('.')}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _probe(python, probe) != wanted:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True, timeout=1800)
            if with_ours:  # only now, so pip never sees (or upgrades) the project's packages
                theirs = Path(_probe(python, "import sysconfig; print(sysconfig.get_paths()['purelib'])"))
                ours = sysconfig.get_paths()["purelib"]
                # a line starting with `import` runs, so the .pth files of ours are read too
                (theirs / "_project_packages.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    found = _probe(python, probe)
    assert found == wanted, f"could not install {' '.join(requirements)} into {folder}: {found}"
    return python
