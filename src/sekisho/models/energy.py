"""Energy of model calls: Intel RAPL counters when the machine exposes them, otherwise an estimate
from CPU time x watts per core, always labelled as such; nothing for a server on another machine.

Two users of one implementation:

- `EnergyMeter.start()` (the arena): the joules of one item, guards included: the CPU package
  (RAPL), or this process's CPU time, its children's and a loopback model server's.
- `Metering` (the request path): the joules of one model call, as far as they can be attributed
  to it when several requests run at once, with a `CallMeter` per call:

  | the backend | what is measured | source |
  |---|---|---|
  | on a server elsewhere (not declared local, or not on loopback) | nothing: joules null | remote |
  | RAPL readable, backend on this machine | the whole CPU package during the call | rapl |
  | in this process, serving calls on the caller's thread (extractive, tools) | that thread's CPU time while it works on the call: the call's own | estimate |
  | in this process, one call at a time on its own queue (llama.cpp, whose compute threads a thread clock cannot see) | the process's CPU time during the call: mostly the call, plus the checks of other requests meanwhile | estimate |
  | a model server on loopback, declared local | that server process's CPU time during the call, including other requests it serves meanwhile | estimate |

  Where a figure includes concurrent work (RAPL, process, server), summing it over concurrent
  calls counts that work more than once; each label says which figure it is.

Reading the clocks costs microseconds (a clock_gettime, a getrusage, a small /proc or sysfs read),
so every governed request is metered.
"""

from __future__ import annotations

import math
import os
import re
import resource
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from sekisho.config import BackendConfig
from sekisho.models.protocol import Capability, ModelInfo

POWERCAP = Path("/sys/class/powercap")
DEFAULT_WATTS_PER_CORE = 5.0

_PACKAGE_DOMAIN = re.compile(r"^intel-rapl:\d+$")  # intel-rapl:0:0 etc. are sub-domains of a package
_PID_REFRESH_S = 30.0  # how often a vanished loopback server is looked for again
T = TypeVar("T")


@dataclass(frozen=True)
class EnergySource:
    kind: str  # "rapl" | "estimate"
    label: str  # shown in the report
    watts_per_core: float | None = None

    @property
    def is_estimate(self) -> bool:
        return self.kind == "estimate"


@dataclass(frozen=True)
class Energy:
    """The energy of one model call, as the audit record and the answer's metadata carry it."""

    joules: float | None  # None: not measurable here (a remote server) or the counter failed
    source: str  # "rapl" | "estimate" | "remote"
    label: str  # what the figure is, Japanese first

    def to_json(self) -> dict[str, Any]:
        joules = None if self.joules is None or not math.isfinite(self.joules) else round(self.joules, 6)
        return {"joules": joules, "source": self.source, "label": self.label}


# --- the counters ---------------------------------------------------------------------------

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


class _Gauge:
    """A counter read before and after a stretch of work: `joules(before, after)`."""

    def snapshot(self) -> Any:
        raise NotImplementedError

    def joules(self, before: Any, after: Any) -> float:
        raise NotImplementedError


class _Rapl(_Gauge):
    def __init__(self, domains: list[_RaplDomain]) -> None:
        self.domains = domains

    def snapshot(self) -> list[int] | None:
        try:
            return [d.read() for d in self.domains]
        except (OSError, ValueError):
            return None  # the counter became unreadable: unknown, never guessed

    def joules(self, before: list[int] | None, after: list[int] | None) -> float:
        if before is None or after is None:
            return float("nan")
        total = 0
        for d, b, a in zip(self.domains, before, after):
            total += a - b if a >= b else a + d.max_uj - b  # the counter wrapped
        return total / 1e6


class _CpuTime(_Gauge):
    """CPU seconds from `seconds()`, turned into joules at `watts` per busy core."""

    def __init__(self, seconds: Callable[[], float], watts: float) -> None:
        self.seconds = seconds
        self.watts = watts

    def snapshot(self) -> float:
        return self.seconds()

    def joules(self, before: float, after: float) -> float:
        used = after - before
        return used if math.isnan(used) else max(0.0, used) * self.watts


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
    pids: list[int] = []
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


def _proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process; None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _ServerProcesses:
    """The processes listening on a loopback port. Finding them reads every process's open files
    (~50 ms), so it is done once when this is made (off the event loop) and again, on a thread of
    its own and at most every 30 s, when they are gone (a model server restarted while sekisho
    runs has a new pid); meanwhile their CPU time is unknown (NaN), never guessed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._lock = threading.Lock()
        self._searched_at = time.monotonic()
        self._searching = False
        self.pids: list[int] = _listening_pids(port)

    def _search_again(self) -> None:
        with self._lock:
            if self._searching or time.monotonic() - self._searched_at < _PID_REFRESH_S:
                return
            self._searching = True

        def search() -> None:
            try:
                self.pids = _listening_pids(self.port)
            finally:
                with self._lock:
                    self._searched_at, self._searching = time.monotonic(), False

        threading.Thread(target=search, name="sekisho-energy-pids", daemon=True).start()

    def cpu_seconds(self) -> float:
        seconds = [_proc_cpu_seconds(p) for p in self.pids]
        if not self.pids or None in seconds:
            self._search_again()
            return float("nan")
        return sum(s for s in seconds if s is not None)


def _own_cpu_seconds() -> float:
    self_ = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return self_.ru_utime + self_.ru_stime + kids.ru_utime + kids.ru_stime


def _process_cpu_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def loopback_port(config: BackendConfig | None) -> int | None:
    """The port of an HTTP backend served on this machine (whose process CPU time then counts)."""
    if config is None or not config.base_url:
        return None
    url = urlparse(config.base_url)
    if url.hostname in ("127.0.0.1", "localhost", "::1"):
        return url.port or (443 if url.scheme == "https" else 80)
    return None


# --- the arena: one item, guards included -----------------------------------------------------

class EnergyMeter:
    """Measures the joules of one stretch of work: `stop = meter.start(); ...; joules = stop()`."""

    def __init__(self, *, watts_per_core: float = DEFAULT_WATTS_PER_CORE, server_port: int | None = None,
                 powercap: Path | None = None) -> None:
        self.domains = rapl_domains(powercap)
        self.watts_per_core = watts_per_core
        server = _ServerProcesses(server_port) if server_port else None
        self.server_pids = server.pids if server else []
        if self.domains:
            self.source = EnergySource("rapl", "Intel RAPL パッケージ実測 (measured, whole CPU package)")
            self._gauge: _Gauge = _Rapl(self.domains)
        else:
            extra = " + ローカルサーバープロセス (local server process)" if self.server_pids else ""
            self.source = EnergySource("estimate", f"推定値 (estimate): CPU時間 × {watts_per_core:g} W/コア{extra}",
                                       watts_per_core)
            seconds = (lambda: _own_cpu_seconds() + server.cpu_seconds()) if self.server_pids else _own_cpu_seconds
            self._gauge = _CpuTime(seconds, watts_per_core)

    def start(self) -> Callable[[], float]:
        """Start a measurement; the returned function gives the joules since the start."""
        before = self._gauge.snapshot()
        return lambda: self._gauge.joules(before, self._gauge.snapshot())


# --- the request path: one model call ---------------------------------------------------------

class CallMeter:
    """Measures one model call. `begin()` and `end()` bracket the call where it is awaited;
    `thread(fn)` and `pieces(iterator)` wrap the code doing the call's work, so that a thread clock
    is read on the thread that works (wrapping costs nothing where no thread clock is used). This
    base measures nothing: the call ran on a server elsewhere."""

    def __init__(self, source: str, label: str) -> None:
        self.source, self.label = source, label

    def begin(self) -> None:
        return None

    def end(self) -> None:
        return None

    def thread(self, fn: Callable[..., T]) -> Callable[..., T]:
        return fn

    def pieces(self, pieces: Iterator[str]) -> Iterator[str]:
        return pieces

    @property
    def joules(self) -> float | None:
        return None

    def energy(self) -> Energy:
        return Energy(self.joules, self.source, self.label)


class _IntervalMeter(CallMeter):
    """A gauge read when the call begins and when it ends (RAPL, a process's CPU time)."""

    def __init__(self, source: str, label: str, gauge: _Gauge) -> None:
        super().__init__(source, label)
        self._gauge = gauge
        self._before: Any = None
        self._joules = 0.0

    def begin(self) -> None:
        self._before = self._gauge.snapshot()

    def end(self) -> None:
        if self._before is not None:
            self._joules += self._gauge.joules(self._before, self._gauge.snapshot())
            self._before = None

    @property
    def joules(self) -> float | None:
        # A call still running (a stream recorded as its reader leaves) counts up to now.
        running = self._gauge.joules(self._before, self._gauge.snapshot()) if self._before is not None else 0.0
        total = self._joules + running
        return None if math.isnan(total) else total


class _ThreadMeter(CallMeter):
    """The CPU time of the threads doing the call's work, read on each of them while it works
    (CLOCK_THREAD_CPUTIME_ID): other requests running meanwhile do not count."""

    def __init__(self, label: str, watts: float) -> None:
        super().__init__("estimate", label)
        self._watts = watts
        self._seconds = 0.0
        self._lock = threading.Lock()

    def _add(self, seconds: float) -> None:
        with self._lock:
            self._seconds += seconds

    def thread(self, fn: Callable[..., T]) -> Callable[..., T]:
        def measured(*args: Any, **kwargs: Any) -> T:
            started = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self._add(time.thread_time() - started)

        return measured

    def pieces(self, pieces: Iterator[str]) -> Iterator[str]:
        # Each piece measured as it is made, on whichever thread asks for it, so that the time a
        # reader spends between pieces (its own checks) is not the model's.
        iterator = iter(pieces)
        try:
            while True:
                started = time.thread_time()
                try:
                    piece = next(iterator)
                except StopIteration:
                    return
                finally:
                    self._add(time.thread_time() - started)
                yield piece
        finally:
            close = getattr(iterator, "close", None)
            if callable(close):
                close()

    @property
    def joules(self) -> float:
        return self._seconds * self._watts


REMOTE_LABEL = "外部サーバーのため計測できません (remote server: not measurable here)"
ELSEWHERE_LABEL = "別のマシンのサーバーのため計測できません (served by another machine: not measurable here)"


class Metering:
    """How each backend's calls are measured, chosen once per backend from what it declares and
    where it runs (the table in this module's docstring). Choosing may look for a loopback
    server's process (~50 ms): choose off the event loop."""

    def __init__(self, *, watts_per_core: float = DEFAULT_WATTS_PER_CORE, powercap: Path | None = None) -> None:
        self.watts = watts_per_core
        self._rapl = _Rapl(rapl_domains(powercap))
        self._servers: dict[int, _ServerProcesses] = {}
        self._lock = threading.Lock()

    def meter_for(self, info: ModelInfo, config: BackendConfig | None) -> Callable[[], CallMeter]:
        """A factory of one CallMeter per call of this backend (`config`: its configuration, None
        for the path's own answerers and tools, which run in this process)."""
        w = f"{self.watts:g} W/コア"
        if not info.local:
            return lambda: CallMeter("remote", REMOTE_LABEL)
        over_http = config is not None and bool(config.base_url)
        port = loopback_port(config) if over_http else None
        if over_http and port is None:
            return lambda: CallMeter("remote", ELSEWHERE_LABEL)
        if self._rapl.domains:
            label = "Intel RAPL パッケージ実測: 呼び出し中のCPU全体 (measured: whole CPU package during the call)"
            return lambda: _IntervalMeter("rapl", label, self._rapl)
        if port is not None:
            server = self._server(port)
            gauge = _CpuTime(server.cpu_seconds, self.watts)
            label = (f"推定値: ローカルモデルサーバーのCPU時間 × {w}、同時に処理した他の依頼を含む "
                     f"(estimate: the loopback model server's CPU time, other requests it served meanwhile included)")
            return lambda: _IntervalMeter("estimate", label, gauge)
        if info.can(Capability.CONCURRENT):
            label = f"推定値: 呼び出しスレッドのCPU時間 × {w} (estimate: CPU time of the threads doing the call)"
            return lambda: _ThreadMeter(label, self.watts)
        process = _CpuTime(_process_cpu_seconds, self.watts)
        label = (f"推定値: 呼び出し中のプロセスCPU時間 × {w}、同時に処理した他の依頼のチェックを含む "
                 f"(estimate: this process's CPU time during the call, checks of concurrent requests included)")
        return lambda: _IntervalMeter("estimate", label, process)

    def _server(self, port: int) -> _ServerProcesses:
        with self._lock:
            if port not in self._servers:
                self._servers[port] = _ServerProcesses(port)
            return self._servers[port]
