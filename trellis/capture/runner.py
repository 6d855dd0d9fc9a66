"""Running a notebook or a script under capture, with no change to its code.

Notebooks run headless through nbclient in a kernel that loads the trellis extension; each
execute request carries the cell's id (``metadata.cellId``, as JupyterLab sends it), which
nbclient alone does not send. Scripts run in this process through ``runpy``, as ``__main__``.
"""

from __future__ import annotations

import os
import runpy
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from trellis._errors import TrellisError
from trellis.capture import run as _runs


def _notebook_tools() -> tuple[Any, Any]:
    try:
        import nbclient
        import nbformat
    except ImportError:
        raise TrellisError("running notebooks needs: pip install 'trellis[notebook]'") from None
    return nbclient, nbformat


def run_notebook(path: Path, output: Path | None = None, timeout: int = 600,
                 kernel: str = "python3") -> dict[str, Any]:
    """Execute every code cell of ``path`` in a fresh kernel under capture.

    Returns the number of cells executed and of those that failed; ``output`` receives the
    executed notebook (the input file is never changed).
    """
    nbclient, nbformat = _notebook_tools()
    try:
        notebook = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise TrellisError(f"no notebook at {path}") from None
    except Exception as error:
        raise TrellisError(f"{path} is not a readable notebook: {type(error).__name__}: {error}") from None
    _keep_cell_ids(notebook, path)

    class Client(nbclient.NotebookClient):
        """Sends each cell's id with its execute request."""

        current_cell: Any = None
        sockets: str | None = None

        def create_kernel_manager(self) -> Any:
            manager = super().create_kernel_manager()
            if os.name == "posix":  # sockets in a private folder, not TCP ports any local user can reach
                Client.sockets = _socket_folder()
                if Client.sockets is not None:
                    manager.transport = "ipc"
                    manager.ip = os.path.join(Client.sockets, "kernel")
            return manager

        async def async_execute_cell(self, cell: Any, cell_index: int, *args: Any, **kwargs: Any) -> Any:
            Client.current_cell = cell
            return await super().async_execute_cell(cell, cell_index, *args, **kwargs)

        async def async_start_new_kernel_client(self) -> Any:
            client = await super().async_start_new_kernel_client()
            send = client.session.msg

            def message(kind: str, content: Any = None, *args: Any, **kwargs: Any) -> Any:
                built = send(kind, content, *args, **kwargs)
                cell = Client.current_cell
                if kind == "execute_request" and cell is not None and cell.get("id"):
                    built["metadata"]["cellId"] = cell["id"]
                return built

            client.session.msg = message
            return client

    os.environ["TRELLIS_NOTEBOOK"] = str(Path(path).resolve())
    client = Client(
        notebook, timeout=timeout, kernel_name=kernel, allow_errors=True,
        extra_arguments=["--ext=trellis"],
        resources={"metadata": {"path": str(Path(path).resolve().parent)}},
    )
    try:
        client.execute()
    except nbclient.exceptions.DeadKernelError as error:
        raise TrellisError(f"the kernel died while running {path}: {error}") from None
    finally:
        os.environ.pop("TRELLIS_NOTEBOOK", None)
        if Client.sockets is not None:
            shutil.rmtree(Client.sockets, ignore_errors=True)
    cells = [c for c in notebook.cells if c.cell_type == "code" and c.source.strip()]
    failed = sum(any(o.get("output_type") == "error" for o in c.get("outputs", [])) for c in cells)
    if output is not None:
        nbformat.write(notebook, output)
    return {"notebook": str(path), "cells": len(cells), "failed": failed}


# A Unix socket's path has room for 107 bytes; the kernel's are this folder + "/kernel-NNNNN".
_SOCKET_FOLDER_LIMIT = 90


def _socket_folder() -> str | None:
    """A private folder for the kernel's sockets: in the temporary folder, or in /tmp when that
    one's path is too long for a socket; None (TCP on loopback) when neither will do."""
    for parent in (None, "/tmp"):
        try:
            folder = tempfile.mkdtemp(prefix="trellis-kernel-", dir=parent)
        except OSError:
            continue
        if len(os.fsencode(folder)) <= _SOCKET_FOLDER_LIMIT:
            return folder
        os.rmdir(folder)
    return None


def _keep_cell_ids(notebook: Any, path: Path) -> None:
    """Record cells by the ids the file holds: nbformat renumbers duplicated ids when it reads
    (a cell copied in some editors keeps its id), where a Jupyter frontend sends them as they are."""
    import json

    try:
        cells = json.loads(Path(path).read_text()).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return
    if len(cells) == len(notebook.cells):
        for cell, raw in zip(notebook.cells, cells):
            if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                cell["id"] = raw["id"]


def run_script(path: Path, args: list[str]) -> None:
    """Run ``path`` as ``__main__`` with ``args``, recorded as a run; its exceptions propagate."""
    if not Path(path).is_file():
        raise TrellisError(f"no script at {path}")
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(Path(path).resolve().parent))
    run = _runs.begin(kind="script", filename=str(Path(path).resolve()))
    before = set(sys.modules)
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        if run is not None:
            from trellis.capture.environment import module_distributions, user_cache
            from trellis.capture.notebook import module_versions

            imported = [m for m in sys.modules if m not in before]
            try:
                found = module_versions(imported, module_distributions(user_cache()))
                run.modules.extend((0, *m) for m in found)
            except Exception as error:
                run.problem("imported modules", error)


def install_kernel(user: bool = True, name: str = "trellis") -> str:
    """Install the "Python 3 (trellis)" kernelspec, which loads the extension in every kernel."""
    import json

    try:
        from jupyter_client.kernelspec import KernelSpecManager
    except ImportError:
        raise TrellisError("installing a kernel needs: pip install 'trellis[notebook]'") from None
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}", "--ext=trellis"],
        "display_name": "Python 3 (trellis)",
        "language": "python",
        "metadata": {"debugger": True},
    }
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "kernel.json").write_text(json.dumps(spec, indent=1))
        return KernelSpecManager().install_kernel_spec(
            folder, kernel_name=name, user=user, prefix=None if user else sys.prefix
        )
