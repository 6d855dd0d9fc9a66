"""The environment description (stable content, allowlisted variables only) and secret masking,
checked in real interpreter subprocesses."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trellis.capture.environment import (
    _nvidia_gpus,
    describe_environment,
    is_secret_name,
    mask_command,
    mask_secrets,
)

REPO = Path(__file__).resolve().parents[2]
DESCRIBE = (
    "import hashlib, json\n"
    "from trellis.capture.environment import describe_environment\n"
    "text = json.dumps(describe_environment(), sort_keys=True)\n"
    "print(json.dumps({'hash': hashlib.sha256(text.encode()).hexdigest(), 'text': text}))\n"
)


def describe_in_subprocess(cwd: Path, **env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", DESCRIBE],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(done.stdout)


def test_content_hash_is_stable_across_processes(tmp_path: Path) -> None:
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()

    first = describe_in_subprocess(first_dir, UNLISTED_SETTING="one")
    second = describe_in_subprocess(second_dir, UNLISTED_SETTING="two")

    assert first["hash"] == second["hash"]
    assert "error" not in json.loads(first["text"])
    assert str(first_dir) not in first["text"]  # no working directory
    assert "UNLISTED_SETTING" not in first["text"]


def test_allowlisted_variables_change_the_description_others_never_appear(tmp_path: Path) -> None:
    plain = describe_in_subprocess(tmp_path)
    threaded = describe_in_subprocess(tmp_path, OMP_NUM_THREADS="3", AWS_SECRET_ACCESS_KEY="do-not-store")

    assert json.loads(threaded["text"])["env_vars"]["OMP_NUM_THREADS"] == "3"
    assert threaded["hash"] != plain["hash"]
    assert "do-not-store" not in threaded["text"]
    assert "AWS_SECRET_ACCESS_KEY" not in threaded["text"]


def test_description_content() -> None:
    env = describe_environment()

    assert "error" not in env, env.get("error")
    assert env["python_version"] == platform.python_version()
    assert env["python_implementation"] == platform.python_implementation()
    assert env["python_executable"] == sys.executable
    assert env["os"] == platform.system()
    assert env["machine"] == platform.machine()
    assert env["cpu_count"] == os.cpu_count()
    assert isinstance(env["memory_total"], int) and env["memory_total"] > 0
    if Path("/proc/meminfo").exists():
        kib = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
        assert env["memory_total"] == int(kib[1]) * 1024
    assert env["packages"]["pytest"] == importlib.metadata.version("pytest")
    assert list(env["packages"]) == sorted(env["packages"])
    assert all(re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", name) for name in env["packages"])
    assert isinstance(env["gpus"], list)
    assert set(env["env_vars"]) <= {
        "CONDA_DEFAULT_ENV", "CONDA_PREFIX", "CUBLAS_WORKSPACE_CONFIG", "CUDA_HOME",
        "CUDA_LAUNCH_BLOCKING", "CUDA_VISIBLE_DEVICES", "HF_HUB_OFFLINE", "LD_LIBRARY_PATH",
        "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "NVIDIA_VISIBLE_DEVICES", "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS", "PYTHONHASHSEED", "PYTHONPATH", "PYTORCH_CUDA_ALLOC_CONF",
        "SLURM_JOB_ID", "TF_DETERMINISTIC_OPS", "TOKENIZERS_PARALLELISM", "TRANSFORMERS_OFFLINE",
        "VIRTUAL_ENV",
    }  # fmt: skip
    assert str(os.getpid()) not in json.dumps(env)


def test_nvidia_gpus_from_the_driver_files(tmp_path: Path) -> None:
    driver = tmp_path / "nvidia"
    for bus, model, uuid in [
        ("0000:81:00.0", "NVIDIA A100-SXM4-40GB", "GPU-bbbb"),
        ("0000:07:00.0", "NVIDIA A100-SXM4-40GB", "GPU-aaaa"),
    ]:
        info = driver / "gpus" / bus / "information"
        info.parent.mkdir(parents=True)
        info.write_text(
            f"Model: \t\t {model}\nIRQ:   \t\t 123\nGPU UUID: \t {uuid}\nVideo BIOS: \t 92.00.19.00.01\n"
            f"Bus Type: \t PCIe\nDMA Size: \t 47 bits\nBus Location: \t {bus}\nDevice Minor: \t 0\n"
        )
    (driver / "version").write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
        "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
    )

    gpus, driver_version = _nvidia_gpus(driver)

    assert driver_version == "535.104.05"
    assert gpus == [
        {
            "model": "NVIDIA A100-SXM4-40GB",
            "uuid": f"GPU-{letter * 4}",
            "video_bios": "92.00.19.00.01",
            "bus_location": bus,
        }
        for letter, bus in [("a", "0000:07:00.0"), ("b", "0000:81:00.0")]
    ]
    assert _nvidia_gpus(tmp_path / "no-driver") == ([], None)


def test_open_kernel_module_driver_version(tmp_path: Path) -> None:
    (tmp_path / "version").write_text(
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build"
        "  (dvs-builder@U16-I3-B11-2)\n"
    )
    assert _nvidia_gpus(tmp_path) == ([], "550.54.15")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train.py", "--api-key", "X", "--lr", "0.1"], ["train.py", "--api-key", "***", "--lr", "0.1"]),
        (["train.py", "--api_key=X", "--epochs=3"], ["train.py", "--api_key=***", "--epochs=3"]),
        (["API_TOKEN=X", "LR=1"], ["API_TOKEN=***", "LR=1"]),
        (["password=x"], ["password=***"]),
        (["--DB-Password", "hunter2"], ["--DB-Password", "***"]),
        (["--secret-file", "s.json", "data.csv"], ["--secret-file", "***", "data.csv"]),
        (["--passwd"], ["--passwd"]),
        (["--hf-token", "--verbose"], ["--hf-token", "--verbose"]),
        (["--eval=DB_PASSWORD=x", "--env=MODE=fast"], ["--eval=DB_PASSWORD=***", "--env=MODE=fast"]),
        (["--tokenizer", "bert", "--max_new_tokens", "64"], ["--tokenizer", "bert", "--max_new_tokens", "64"]),
        (["-c", "key = 1; print(key)"], ["-c", "key = 1; print(key)"]),
        (["data/key=1.csv", "monkey.py"], ["data/key=1.csv", "monkey.py"]),
        ([], []),
    ],
)
def test_mask_secrets(argv: list[str], expected: list[str]) -> None:
    original = list(argv)
    assert mask_secrets(argv) == expected
    assert argv == original  # a copy, not in place



@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("python train.py --db-password pw-1 auth_token=t --epochs 1 > log.txt",
         "python train.py --db-password *** auth_token=*** --epochs 1 > log.txt"),
        ("python t.py --password 1 --epochs 1 --api-key=1", "python t.py --password *** --epochs 1 --api-key=***"),
        ('python t.py --token "a b" x', 'python t.py --token "***" x'),
        ("python t.py --token a\\ b x", "python t.py --token '***' x"),
        ("cat x | python t.py API_KEY=$$KEY && echo $$KEY", "cat x | python t.py API_KEY=*** && echo $$KEY"),
        ("python t.py --lr 0.1 'unbalanced", "python t.py --lr 0.1 'unbalanced"),
    ],
)
def test_mask_command(line: str, expected: str) -> None:
    assert mask_command(line) == expected

@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("--api-key", True),
        ("API_TOKEN", True),
        ("hf_token", True),
        ("Password", True),
        ("db_passwd", True),
        ("CLIENT_SECRET", True),
        ("--ssh-keys", True),
        ("--tokenizer", False),
        ("--max_tokens", False),
        ("tokens_per_batch", False),
        ("--lr", False),
        ("--epochs", False),
    ],
)
def test_is_secret_name(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_capture_modules_import_only_the_standard_library() -> None:
    code = (
        "import sys\n"
        "import trellis\n"
        "before = set(sys.modules)\n"
        "import trellis.capture.environment, trellis.capture.makefile, trellis.capture.snapshot\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
        check=True,
    )
    added = {name.split(".")[0] for name in done.stdout.split()}
    assert added - {"trellis"} <= set(sys.stdlib_module_names) | {"_virtualenv"}
    assert "importlib.metadata" not in done.stdout.split()  # imported only when describing


def test_package_list_cache_follows_installs(tmp_path):
    import subprocess
    import sys

    site = tmp_path / "site"
    site.mkdir()
    cache = tmp_path / "cache"
    code = (
        "import json, pathlib; from trellis.capture.environment import describe_environment;"
        f"print(json.dumps(describe_environment(pathlib.Path({str(cache)!r}))['packages']))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}

    def packages():
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        return json.loads(done.stdout)

    first = packages()
    assert len(list(cache.glob("packages-*.json"))) == 1
    assert packages() == first and "fake-pkg" not in first
    info = site / "fake_pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake_pkg\nVersion: 1.0\n")
    assert packages()["fake-pkg"] == "1.0"


def test_module_distributions_are_cached_until_an_install_and_not_by_the_script_folder(tmp_path):
    import subprocess
    import sys

    site, script_folder, cache = tmp_path / "site", tmp_path / "work", tmp_path / "cache"
    site.mkdir()
    script_folder.mkdir()
    (script_folder / "probe.py").write_text(
        "import json, pathlib, sys; from trellis.capture.environment import module_distributions;"
        "print(json.dumps(module_distributions(pathlib.Path(sys.argv[1]))))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}

    def modules():
        done = subprocess.run([sys.executable, "probe.py", str(cache)], cwd=script_folder, capture_output=True,
                              text=True, env=env, check=True)
        (script_folder / f"output-{len(list(script_folder.iterdir()))}.csv").write_text("x")  # the script writes
        return json.loads(done.stdout)

    first = modules()
    assert modules() == first and len(list(cache.glob("modules-*.json"))) == 1  # its folder changed: same key
    info = site / "fake_pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake_pkg\nVersion: 1.0\n")
    (info / "top_level.txt").write_text("fakemod\n")
    assert modules()["fakemod"] == ["fake_pkg"]
    assert len(list(cache.glob("modules-*.json"))) == 2


def test_the_cache_keeps_the_newest_environments_only(tmp_path, monkeypatch):
    from trellis.capture import environment

    cache = tmp_path / "cache"
    for number in range(20):
        monkeypatch.setattr(environment.sys, "path", [str(tmp_path / f"env{number}")])
        (tmp_path / f"env{number}" / f"pkg{number}-1.0.dist-info").mkdir(parents=True)
        assert environment._cached(cache, "probe", lambda: number) == number
        written = max(cache.glob("probe-*.json"), key=lambda p: p.stat().st_mtime_ns)  # just now
        os.utime(written, (1_700_000_000 + number,) * 2)  # an older day each, in order
    kept = list(cache.glob("probe-*.json"))
    assert len(kept) == environment._KEEP
    assert environment._cached(cache, "probe", lambda: "again") == 19  # the newest is still known
