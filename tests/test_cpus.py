"""`--prod`'s default number of workers: one per CPU devserve may use, which in a container is
fewer than the machine has. Real runs under `taskset` and, where this machine lets the tests
make one, under a real cgroup with a CPU quota; the cgroup files' formats on made-up trees."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devserver.control.client import ControlClient
from devserver.cpus import cgroup_quota, usable_cpus
from tests.utils import Process, clean_env, devserve_command, require_tool, spawned, until

V1_CPU = Path("/sys/fs/cgroup/cpu")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# --------------------------------------------------------------------------- the files' formats
def test_cgroup_v2_quota_in_a_containers_namespace(tmp_path: Path) -> None:
    """Inside a container the cgroup is the mount's root: `cpu.max` there is the limit."""
    write(tmp_path / "proc", "0::/\n")
    write(tmp_path / "cg" / "cpu.max", "150000 100000\n")
    assert cgroup_quota(tmp_path / "cg", tmp_path / "proc") == 1.5
    assert usable_cpus(tmp_path / "cg", tmp_path / "proc") == min(2, len(os.sched_getaffinity(0)))


def test_cgroup_v2_the_tightest_limit_on_the_way_up_wins(tmp_path: Path) -> None:
    """A pod's limit above the container's cgroup counts; "max" is no limit."""
    write(tmp_path / "proc", "0::/kubepods/pod7/app\n")
    write(tmp_path / "cg" / "kubepods" / "cpu.max", "max 100000\n")
    write(tmp_path / "cg" / "kubepods" / "pod7" / "cpu.max", "50000 100000\n")
    write(tmp_path / "cg" / "kubepods" / "pod7" / "app" / "cpu.max", "max 100000\n")
    assert cgroup_quota(tmp_path / "cg", tmp_path / "proc") == 0.5
    assert usable_cpus(tmp_path / "cg", tmp_path / "proc") == 1


def test_cgroup_v1_quota_and_no_quota(tmp_path: Path) -> None:
    write(tmp_path / "proc", "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n")
    quota = tmp_path / "cg" / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us"
    write(quota, "300000\n")
    write(quota.with_name("cpu.cfs_period_us"), "100000\n")
    assert cgroup_quota(tmp_path / "cg", tmp_path / "proc") == 3.0
    write(quota, "-1\n")
    assert cgroup_quota(tmp_path / "cg", tmp_path / "proc") is None


def test_no_cgroup_files_means_the_affinity(tmp_path: Path) -> None:
    """Not Linux's cgroups, or unreadable: the CPUs the process is pinned to, as before."""
    assert cgroup_quota(tmp_path, tmp_path / "missing") is None
    write(tmp_path / "proc", "0::/\n")
    write(tmp_path / "cpu.max", "garbage\n")
    assert cgroup_quota(tmp_path, tmp_path / "proc") is None
    assert usable_cpus(tmp_path, tmp_path / "missing") == len(os.sched_getaffinity(0))


# --------------------------------------------------------------------------- real processes
@contextlib.contextmanager
def prod_devserve(tmp_path: Path, prefix: list[str], **popen: object) -> Iterator[Process]:
    control = str(tmp_path / "ctl.sock")
    command = devserve_command("--prod", "--port", "0", "--control", control)
    env = {k: v for k, v in clean_env().items() if k != "WEB_CONCURRENCY"}  # it would win
    with spawned(prefix + command, env, **popen) as process:  # type: ignore[arg-type]
        process.out.wait_for("serving on", timeout=20)
        yield process


def worker_count(tmp_path: Path) -> int:
    return len(ControlClient(str(tmp_path / "ctl.sock")).request("status")["workers"])


def test_prod_pinned_to_one_cpu_starts_one_worker(tmp_path: Path) -> None:
    with prod_devserve(tmp_path, [require_tool("taskset"), "-c", "0"]) as process:
        assert worker_count(tmp_path) == 1
        process.out.stop()


@contextlib.contextmanager
def cpu_cgroup(quota_us: int) -> Iterator[Path]:
    """A real cgroup v1 CPU cgroup with `quota_us` per 100 ms, removed afterwards."""
    group = V1_CPU / f"devserve-test-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot make a cgroup here: {exc}")
    try:
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text(str(quota_us))
        yield group
    finally:
        # its processes are gone once devserve has stopped
        until(lambda: removed(group), "the test cgroup's processes to go")


def removed(group: Path) -> bool:
    """Remove the cgroup `group`; whether it is gone (it cannot go while it has processes)."""
    try:
        group.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


@pytest.mark.skipif(not (V1_CPU / "cgroup.procs").exists(), reason="needs cgroup v1's cpu")
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to tell them apart")
def test_prod_under_a_half_cpu_quota_starts_one_worker(tmp_path: Path) -> None:
    """Docker's --cpus 0.5, for real: the machine has 2 CPUs or more, devserve starts one."""
    with cpu_cgroup(50_000) as group:

        def join() -> None:
            (group / "cgroup.procs").write_text(str(os.getpid()))

        with prod_devserve(tmp_path, [], preexec_fn=join) as process:
            assert worker_count(tmp_path) == 1
            process.out.stop()
