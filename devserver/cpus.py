"""How many CPUs this process may really use: `--prod`'s default number of workers.

`os.cpu_count()` is the machine's count. In a container the kernel lets the process use fewer:
the CPUs it is pinned to (its affinity: `taskset`, Docker's `--cpuset-cpus`) and the CPU time
its cgroup allows (Docker's `--cpus`, a Kubernetes CPU limit: a quota per period). One worker per
CPU the process can use, rounded up: 1.5 CPUs of quota make 2 workers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def usable_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """The CPUs of this process's affinity, capped by its cgroup's CPU quota; at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_quota(root, proc_cgroup)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def cgroup_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """The CPUs' worth of time this process's cgroup (or one above it) allows, None when
    unlimited or unknown. Reads cgroup v2's `cpu.max` or v1's `cpu.cfs_quota_us`."""
    try:
        entries = proc_cgroup.read_text().splitlines()
        return _tightest(root, entries)
    except OSError:  # unreadable (a confined container): no limit we can see
        return None


def _tightest(root: Path, entries: list[str]) -> float | None:
    limits = []
    for entry in entries:
        hierarchy, _, rest = entry.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":  # cgroup v2, the unified hierarchy
            unified = root / "unified"  # the hybrid layout: v2 beside the v1 controllers
            limits += _along(unified if os.path.isdir(unified) else root, path, _v2)
        elif "cpu" in controllers.split(","):  # cgroup v1: cpu, or cpu,cpuacct
            mount = root / controllers if os.path.isdir(root / controllers) else root / "cpu"
            limits += _along(mount, path, _v1)
    return min(limits, default=None)


def _along(mount: Path, path: str, read: Callable[[Path], float | None]) -> list[float]:
    """The limits set on the cgroup and on each one above it that this mount shows (inside a
    container's cgroup namespace its own cgroup is the mount's root)."""
    found = []
    directory = mount / path.strip("/")
    while True:
        limit = read(directory)
        if limit is not None:
            found.append(limit)
        if directory == mount or mount not in directory.parents:
            return found
        directory = directory.parent


def _v2(directory: Path) -> float | None:
    try:
        quota, _, period = (directory / "cpu.max").read_text().partition(" ")
        if quota == "max":
            return None
        return int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _v1(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:  # -1: no quota
        return None
    return quota / period
