"""The figure notebook capture leaves out: hashing a large file a run reads.

A script reads a 512 MiB file once; it runs with trellis recording and with it disabled, in a
fresh git repository each time, and the table gives the added wall time and its ratio to the
time the read itself took. (sha256 of every file read is what makes data lineage exact; files
over TRELLIS_HASH_LIMIT, 512 MiB by default, are recorded with their size only.)

    python benchmarks/file_hashing.py [--python PATH] [--size-mib N] [--reps N]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = """
import time, trellis
started = time.perf_counter()
with open("data.bin", "rb") as handle:
    while handle.read(1 << 24):
        pass
print(time.perf_counter() - started)
"""


def once(python: str, root: Path, disabled: bool) -> tuple[float, float]:
    env = {**os.environ, "TRELLIS_PROGRESS": "0", "TRELLIS_DISABLE": "1" if disabled else "0"}
    started = time.perf_counter()
    done = subprocess.run([python, "read.py"], cwd=root, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, float(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_python = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "python"
    parser.add_argument("--python", default=str(default_python) if default_python.exists() else sys.executable)
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--reps", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        (root / ".gitignore").write_text("data.bin\n")
        (root / "read.py").write_text(SCRIPT)
        with open(root / "data.bin", "wb") as handle:
            for _ in range(options.size_mib):
                handle.write(os.urandom(1 << 20))
        once(options.python, root, True)  # warm the page cache
        plain, recorded, reads = [], [], []
        for _ in range(options.reps):
            seconds, read = once(options.python, root, True)
            plain.append(seconds)
            reads.append(read)
            recorded.append(once(options.python, root, False)[0])
        with sqlite3.connect(root / ".trellis" / "trellis.db") as store:
            row = store.execute("SELECT hash, size FROM files WHERE path = 'data.bin' LIMIT 1").fetchone()
    added = statistics.median(recorded) - statistics.median(plain)
    read = statistics.median(reads)
    print(f"| a {options.size_mib} MiB file read once (page cache warm), median of {options.reps} |"
          f" read {read * 1e3:.0f} ms | added by trellis {added * 1e3:.0f} ms ({added / read:.2f}× the read) |"
          f" hashed: {'yes' if row[0] else 'no'}, size {row[1]} |")


if __name__ == "__main__":
    main()
