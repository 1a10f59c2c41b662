"""Usable CPUs from the affinity mask and the cgroup quota, on /proc and /sys trees as
containers, systemd slices and Docker lay them out (cgroup v2, v1 and the hybrid of both)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tts_service.synthesis.cpus import UsableCpus, cgroup_quota, usable_cpus

# /proc/self/mountinfo lines as the kernel writes them.
V2_MOUNT = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 " \
    "cgroup2 rw,nsdelegate,memory_recursiveprot\n"
V1_CPU_MOUNT = "32 31 0:29 {root} /sys/fs/cgroup/cpu,cpuacct ro,nosuid,nodev,noexec,relatime " \
    "master:11 - cgroup cgroup rw,cpu,cpuacct\n"
V1_MEMORY_MOUNT = "35 31 0:32 {root} /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n"
HYBRID_MOUNTS = (
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
)


def _tree(root: Path, cgroup: str, mountinfo: str, files: dict[str, str]) -> Path:
    """A fixture tree: /proc/self/cgroup, /proc/self/mountinfo and cgroup files under root."""
    for path, text in {"proc/self/cgroup": cgroup, "proc/self/mountinfo": mountinfo,
                       **files}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="ascii")
    return root


def test_a_pod_with_a_quota_of_2_cpus_on_a_64_core_node_has_2(tmp_path: Path) -> None:
    # Kubernetes `limits: cpu: 2` with cgroup v2 and its own cgroup namespace.
    root = _tree(tmp_path, "0::/\n", V2_MOUNT, {"sys/fs/cgroup/cpu.max": "200000 100000\n"})
    assert usable_cpus(root, affinity=64) == UsableCpus(count=2, affinity=64, quota=2.0)


def test_no_quota_leaves_the_affinity_mask(tmp_path: Path) -> None:
    root = _tree(tmp_path, "0::/\n", V2_MOUNT, {"sys/fs/cgroup/cpu.max": "max 100000\n"})
    assert usable_cpus(root, affinity=8) == UsableCpus(count=8, affinity=8, quota=None)


@pytest.mark.parametrize(("cpu_max", "count"), [
    ("150000 100000", 1),  # 1.5 CPUs of time: rounded down, a second engine would be throttled
    ("250000 100000", 2),
    ("50000 100000", 1),  # half a CPU still runs one engine
])
def test_a_fractional_quota_is_rounded_down_to_at_least_one(tmp_path: Path, cpu_max: str,
                                                            count: int) -> None:
    root = _tree(tmp_path, "0::/\n", V2_MOUNT, {"sys/fs/cgroup/cpu.max": cpu_max})
    assert usable_cpus(root, affinity=16).count == count


def test_taskset_to_one_cpu_wins_over_a_larger_quota(tmp_path: Path) -> None:
    root = _tree(tmp_path, "0::/\n", V2_MOUNT, {"sys/fs/cgroup/cpu.max": "400000 100000"})
    assert usable_cpus(root, affinity=1) == UsableCpus(count=1, affinity=1, quota=4.0)


def test_a_limit_on_a_parent_slice_applies_to_the_service_in_it(tmp_path: Path) -> None:
    # No container namespace: the process's cgroup is a path under the v2 mount, and the limit
    # (systemd CPUQuota=300%) sits on the slice above the service.
    root = _tree(tmp_path, "0::/tts.slice/tts.service\n", V2_MOUNT, {
        "sys/fs/cgroup/cpu.max": "max 100000",
        "sys/fs/cgroup/tts.slice/cpu.max": "300000 100000",
        "sys/fs/cgroup/tts.slice/tts.service/cpu.max": "max 100000",
    })
    assert cgroup_quota(root) == 3.0
    assert usable_cpus(root, affinity=32).count == 3


def test_the_tightest_level_wins(tmp_path: Path) -> None:
    root = _tree(tmp_path, "0::/outer/inner\n", V2_MOUNT, {
        "sys/fs/cgroup/outer/cpu.max": "800000 100000",
        "sys/fs/cgroup/outer/inner/cpu.max": "200000 100000",
    })
    assert cgroup_quota(root) == 2.0


def test_cgroup_v1_docker_quota(tmp_path: Path) -> None:
    # Docker with --cpus=3 on cgroup v1: the container's cgroup is the mount's root.
    container = "/docker/0123abcd"
    root = _tree(tmp_path,
                 f"5:memory:{container}\n4:cpu,cpuacct:{container}\n0::/\n",
                 V1_MEMORY_MOUNT.format(root=container) + V1_CPU_MOUNT.format(root=container),
                 {"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "300000\n",
                  "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert usable_cpus(root, affinity=16) == UsableCpus(count=3, affinity=16, quota=3.0)


def test_cgroup_v1_without_a_quota(tmp_path: Path) -> None:
    root = _tree(tmp_path, "4:cpu,cpuacct:/\n", V1_CPU_MOUNT.format(root="/"),
                 {"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
                  "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert cgroup_quota(root) is None


def test_hybrid_hierarchy_reads_the_v1_cpu_controller(tmp_path: Path) -> None:
    # systemd's hybrid layout: controllers on v1, an empty v2 hierarchy at .../unified.
    root = _tree(tmp_path, "1:cpu:/\n0::/\n", HYBRID_MOUNTS,
                 {"sys/fs/cgroup/cpu/cpu.cfs_quota_us": "200000",
                  "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000"})
    assert cgroup_quota(root) == 2.0


@pytest.mark.parametrize("broken", [
    {},  # no cgroup files at all: not Linux, or /proc not mounted
    {"proc/self/cgroup": "0::/\n", "proc/self/mountinfo": V2_MOUNT,
     "sys/fs/cgroup/cpu.max": "lots of CPUs\n"},
    {"proc/self/cgroup": "0::/\n", "proc/self/mountinfo": V2_MOUNT},  # controller not enabled
])
def test_unreadable_cgroup_files_mean_no_quota(tmp_path: Path, broken: dict[str, str]) -> None:
    for path, text in broken.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text, encoding="ascii")
    assert usable_cpus(tmp_path, affinity=4) == UsableCpus(count=4, affinity=4, quota=None)


def test_this_process_counts_its_affinity_mask() -> None:
    cpus = usable_cpus()
    assert cpus.affinity == len(os.sched_getaffinity(0))
    assert 1 <= cpus.count <= cpus.affinity


def test_describe_says_where_the_number_comes_from() -> None:
    assert UsableCpus(2, 64, 2.0).describe() == \
        "2 usable CPUs (affinity 64, cgroup quota 2 CPUs)"
    assert UsableCpus(1, 1, None).describe() == \
        "1 usable CPU (affinity 1, cgroup quota none)"
