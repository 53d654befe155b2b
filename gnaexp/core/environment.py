"""What machine and software produced a result: the block support asks for first."""

from __future__ import annotations

import copy
import functools
import os
import platform
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=None)
def package_version(package: str) -> str | None:
    """The installed version of a distribution, None when it is not installed (read once per process: cache keys
    ask for it on every run, and reading a package's metadata costs milliseconds)."""
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:  # noqa: BLE001 — absent package: reported as None
        return None


def capture() -> dict[str, Any]:
    """OS, CPU, Python and package versions, OpenVINO devices. No user names or home paths."""
    return copy.deepcopy(_capture_once())


@functools.lru_cache(maxsize=1)
def _capture_once() -> dict[str, Any]:
    # Read once per process: package metadata and device queries cost tens of ms, and a study saves many records.
    env: dict[str, Any] = {
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(terse=True),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "gnaexp": package_version("gnaexp"),
        "torch": package_version("torch"),
        "openvino": package_version("openvino"),
        "nncf": package_version("nncf"),
        "numpy": package_version("numpy"),
    }
    try:
        import openvino as ov

        core = ov.Core()
        env["openvino_build"] = ov.__version__
        env["openvino_devices"] = {d: device_name(core, d) for d in core.available_devices}
        env["gna_plugin"] = "GNA" in core.available_devices
    except Exception as exc:  # noqa: BLE001 — environment capture never fails a run
        env["openvino_error"] = str(exc)
    return env


def device_name(core: Any, device: str) -> str:
    """The device's full name (its short name when OpenVINO does not say)."""
    try:
        return str(core.get_property(device, "FULL_DEVICE_NAME"))
    except Exception:  # noqa: BLE001 — a missing property must not fail a run
        return device


# What a process that executes notebooks may take: the worker (about 0.1 GiB), its kernel zygote with torch and the
# nets preloaded (about 0.3 GiB) and the notebook run forked from it.
WORKER_MEMORY = 1 << 30


def local_capacity() -> tuple[int, str]:
    """(how many notebook-running worker processes this machine holds, why): one per core this process may use (a notebook run
    keeps a core busy; more workers only take turns), and no more than its memory holds at WORKER_MEMORY each
    (a container's memory limit where there is one)."""
    import psutil

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    memory = psutil.virtual_memory().total
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with suppress(OSError, ValueError):
            memory = min(memory, int(Path(limit_file).read_text().strip()))  # "max": no limit
    by_memory = max(1, memory // WORKER_MEMORY)
    return min(cores, by_memory), (f"{cores} core(s) and {memory / 2**30:.1f} GiB of memory, about "
                                   f"{WORKER_MEMORY / 2**30:g} GiB per worker")
