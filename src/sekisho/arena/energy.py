"""Energy per model call: Intel RAPL counters when the machine exposes them, otherwise an
estimate from CPU time x watts per core, always labelled as such.

RAPL measures the whole CPU package (every process on the machine), so on a shared host it
over-counts; the CPU-time estimate counts only this process, its children and the processes
serving a loopback HTTP backend, but depends on a guessed wattage. Both say which they are.
"""

from __future__ import annotations

import os
import re
import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

POWERCAP = Path("/sys/class/powercap")
DEFAULT_WATTS_PER_CORE = 5.0

_PACKAGE_DOMAIN = re.compile(r"^intel-rapl:\d+$")  # intel-rapl:0:0 etc. are sub-domains of a package


@dataclass(frozen=True)
class EnergySource:
    kind: str  # "rapl" | "estimate"
    label: str  # shown in the report
    watts_per_core: float | None = None

    @property
    def is_estimate(self) -> bool:
        return self.kind == "estimate"


class _RaplDomain:
    def __init__(self, path: Path) -> None:
        self.counter = path / "energy_uj"
        try:
            self.max_uj = int((path / "max_energy_range_uj").read_text())
        except (OSError, ValueError):
            self.max_uj = 2**32

    def read(self) -> int:
        return int(self.counter.read_text())


def rapl_domains(root: Path | None = None) -> list[_RaplDomain]:
    """Package-level RAPL domains whose counter this user may read (since 2020 Linux makes
    energy_uj root-only by default: unreadable domains are skipped, not an error)."""
    domains = []
    for path in sorted((root or POWERCAP).glob("intel-rapl:*")):
        if not _PACKAGE_DOMAIN.match(path.name):
            continue
        domain = _RaplDomain(path)
        try:
            domain.read()
        except (OSError, ValueError):
            continue
        domains.append(domain)
    return domains


def _listening_pids(port: int) -> list[int]:
    """PIDs of this user's processes listening on a local TCP port (via /proc, no psutil)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    pids = []
    if not inodes:
        return pids
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _own_cpu_seconds() -> float:
    self_ = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return self_.ru_utime + self_.ru_stime + kids.ru_utime + kids.ru_stime


class EnergyMeter:
    """Measures the joules of one call: `stop = meter.start(); ...; joules = stop()`."""

    def __init__(self, *, watts_per_core: float = DEFAULT_WATTS_PER_CORE, server_port: int | None = None,
                 powercap: Path | None = None) -> None:
        self.domains = rapl_domains(powercap)
        self.watts_per_core = watts_per_core
        self.server_pids = _listening_pids(server_port) if server_port else []
        if self.domains:
            self.source = EnergySource("rapl", "Intel RAPL パッケージ実測 (measured, whole CPU package)")
        else:
            extra = " + ローカルサーバープロセス (local server process)" if self.server_pids else ""
            self.source = EnergySource(
                "estimate",
                f"推定値 (estimate): CPU時間 × {watts_per_core:g} W/コア{extra}",
                watts_per_core,
            )

    def _read_rapl(self) -> list[int]:
        return [d.read() for d in self.domains]

    def _cpu_seconds(self) -> float:
        return _own_cpu_seconds() + sum(_proc_cpu_seconds(p) for p in self.server_pids)

    def start(self) -> Callable[[], float]:
        """Start a measurement; the returned function gives the joules since the start."""
        if self.domains:
            try:
                before = self._read_rapl()
            except (OSError, ValueError):
                return lambda: float("nan")  # counter became unreadable: unknown, never guessed

            def stop_rapl() -> float:
                try:
                    after = self._read_rapl()
                except (OSError, ValueError):
                    return float("nan")
                total = 0
                for d, b, a in zip(self.domains, before, after):
                    total += a - b if a >= b else a + d.max_uj - b  # the counter wrapped
                return total / 1e6
            return stop_rapl
        cpu_before = self._cpu_seconds()
        return lambda: (self._cpu_seconds() - cpu_before) * self.watts_per_core
