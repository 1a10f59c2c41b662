"""How many CPUs this process may use: its affinity mask and its cgroup CPU quota.

os.cpu_count() counts the machine: a Kubernetes pod with `cpu: 2` on a 64-core node sees 64,
and the kernel still gives it 2 CPUs of time per period. Like uber-go/automaxprocs, the quota
of the process's own cgroup (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`) is
rounded down to whole CPUs, at least 1; the parent cgroups up to the mount are read too, since
a limit set on a slice applies to everything in it. Python 3.13's os.process_cpu_count()
covers the affinity mask only.

Pure but for the defaults: every file is read under `root`, so tests point it at fixture trees.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class UsableCpus:
    """The CPUs the pool is sized for, and where the number comes from."""

    count: int
    affinity: int  # CPUs in the affinity mask
    quota: float | None  # the cgroup CPU quota in CPUs; None when there is none

    def describe(self) -> str:
        quota = "none" if self.quota is None else f"{self.quota:g} CPUs"
        return (f"{self.count} usable CPU{'s' if self.count != 1 else ''} "
                f"(affinity {self.affinity}, cgroup quota {quota})")


def usable_cpus(root: Path = Path("/"), affinity: int | None = None) -> UsableCpus:
    """The affinity mask's CPUs, fewer if the cgroup quota allows fewer (at least 1)."""
    if affinity is None:
        affinity = len(os.sched_getaffinity(0))
    quota = cgroup_quota(root)
    count = affinity if quota is None else max(1, min(affinity, math.floor(quota)))
    return UsableCpus(count=count, affinity=affinity, quota=quota)


def cgroup_quota(root: Path = Path("/")) -> float | None:
    """The tightest CPU quota, in CPUs, on the way from this process's cgroup up to the mount;
    None when no level has one, or the files cannot be read (no cgroup filesystem)."""
    try:
        memberships = (root / "proc/self/cgroup").read_text(encoding="utf-8").splitlines()
        mounts = (root / "proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    quotas = []
    for line in memberships:
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and controllers == "":
            directory = _cgroup_directory(root, mounts, path, "cgroup2", None)
            quotas += _along(directory, _v2_quota)
        elif "cpu" in controllers.split(","):
            directory = _cgroup_directory(root, mounts, path, "cgroup", "cpu")
            quotas += _along(directory, _v1_quota)
    return min(quotas, default=None)


def _cgroup_directory(root: Path, mounts: list[str], path: str, fstype: str,
                      controller: str | None) -> tuple[Path, Path] | None:
    """(the cgroup's directory, its mount point) for `path` as /proc/self/cgroup names it."""
    for line in mounts:
        # "36 35 0:30 <root> <mount point> <options> [optional fields] - <fstype> <source>
        # <super options>"; root is where the mount starts in the hierarchy.
        fields, _, tail = line.partition(" - ")
        parts, described = fields.split(), tail.split()
        if len(parts) < 5 or len(described) < 3 or described[0] != fstype:
            continue
        if controller is not None and controller not in described[2].split(","):
            continue
        mount_root, mount_point = parts[3], root / parts[4].lstrip("/")
        relative = os.path.relpath(path, mount_root)
        if relative.startswith(".."):  # a cgroup outside what this mount shows
            continue
        return (mount_point / relative).resolve(), mount_point.resolve()
    return None


def _along(found: tuple[Path, Path] | None,
           read: Callable[[Path], float | None]) -> list[float]:
    """The quotas `read` finds in the cgroup's directory and each parent up to the mount."""
    if found is None:
        return []
    directory, mount_point = found
    quotas = []
    while True:
        quota = read(directory)
        if quota is not None:
            quotas.append(quota)
        if directory == mount_point or mount_point not in directory.parents:
            return quotas
        directory = directory.parent


def _v2_quota(directory: Path) -> float | None:
    # cpu.max: "<quota> <period>" in microseconds, or "max <period>" for no limit.
    try:
        quota, period = (directory / "cpu.max").read_text(encoding="ascii").split()
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(directory: Path) -> float | None:
    # cpu.cfs_quota_us is -1 for no limit.
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text(encoding="ascii"))
        period = int((directory / "cpu.cfs_period_us").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period
