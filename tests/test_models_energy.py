"""Energy measurement: RAPL counters (with wraparound and unreadable domains), the labelled
CPU-time estimate used when a machine exposes none, and what one model call is charged when
several requests run at once (Metering: per thread, per process, a loopback server, remote)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from sekisho.config import BackendConfig
from sekisho.models import Capability, ModelInfo
from sekisho.models.energy import EnergyMeter, Metering, _listening_pids, rapl_domains


def _domain(root: Path, name: str, energy_uj: int, max_uj: int = 262_143_328_850) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


def _burn() -> int:
    return sum(i * i for i in range(300_000))


def test_rapl_sums_package_domains_only(tmp_path):
    pkg0 = _domain(tmp_path, "intel-rapl:0", 1_000_000)
    pkg1 = _domain(tmp_path, "intel-rapl:1", 5_000_000)
    core = _domain(tmp_path, "intel-rapl:0:0", 0)  # a sub-domain of package 0: counted within it
    meter = EnergyMeter(powercap=tmp_path)
    assert meter.source.kind == "rapl" and not meter.source.is_estimate
    stop = meter.start()
    (pkg0 / "energy_uj").write_text("3500000\n")  # +2.5 J
    (pkg1 / "energy_uj").write_text("6000000\n")  # +1.0 J
    (core / "energy_uj").write_text("9000000\n")
    assert stop() == 3.5


def test_rapl_counter_wraparound(tmp_path):
    pkg = _domain(tmp_path, "intel-rapl:0", 999_000_000, max_uj=1_000_000_000)
    meter = EnergyMeter(powercap=tmp_path)
    stop = meter.start()
    (pkg / "energy_uj").write_text("2000000\n")  # wrapped: 1_000_000 to the top + 2_000_000
    assert stop() == 3.0


def test_unreadable_rapl_falls_back_to_a_labelled_estimate(tmp_path):
    denied = tmp_path / "intel-rapl:0"
    (denied / "energy_uj").mkdir(parents=True)  # reading it fails, as energy_uj does for non-root users
    assert rapl_domains(tmp_path) == []
    meter = EnergyMeter(powercap=tmp_path, watts_per_core=10.0)
    assert meter.source.kind == "estimate" and meter.source.is_estimate
    assert "推定" in meter.source.label and "estimate" in meter.source.label
    assert "10 W" in meter.source.label
    stop = meter.start()
    _burn()
    joules = stop()
    assert joules > 0.0


def test_no_powercap_at_all(tmp_path):
    meter = EnergyMeter(powercap=tmp_path / "missing")
    assert meter.source.is_estimate


# --- one model call (the request path's Metering) -------------------------------------------

def _info(*, local: bool = True, capabilities=frozenset({Capability.CONCURRENT})) -> ModelInfo:
    return ModelInfo(name="m", kind="test", model="m", local=local, capabilities=capabilities)


def test_a_remote_backend_is_not_measured(tmp_path):
    meter = Metering(powercap=tmp_path)
    for config in (BackendConfig(kind="openai", base_url="https://api.example.com/v1"), None):
        call = meter.meter_for(_info(local=False), config)()
        call.begin()
        _burn()
        call.end()
        energy = call.energy().to_json()
        assert energy["joules"] is None and energy["source"] == "remote" and "remote" in energy["label"]
    # Declared local but served from another machine of the organisation: not measurable here either.
    elsewhere = BackendConfig(kind="openai", base_url="http://10.0.0.5:8000/v1", local=True)
    energy = Metering(powercap=tmp_path).meter_for(_info(), elsewhere)().energy()
    assert energy.joules is None and energy.source == "remote" and "another machine" in energy.label


def test_a_concurrent_backend_is_charged_its_own_threads_cpu_time_only(tmp_path):
    """The call waits while another thread burns CPU: a thread clock gives the call nothing of it,
    then the call burns the same work itself and is charged for it."""
    call = Metering(powercap=tmp_path, watts_per_core=5.0).meter_for(_info(), None)()
    assert call.source == "estimate" and "thread" in call.energy().label
    burnt = threading.Event()

    def waiting_call() -> None:
        burnt.wait()

    other = threading.Thread(target=lambda: (_burn(), _burn(), burnt.set()))
    other.start()
    call.thread(waiting_call)()
    other.join()
    idle = call.energy().joules
    call.thread(_burn)()
    call.thread(_burn)()
    busy = call.energy().joules - idle
    assert busy > 0 and idle < busy / 10


def test_streamed_pieces_are_charged_as_they_are_made(tmp_path):
    call = Metering(powercap=tmp_path).meter_for(_info(), None)()

    def model():
        for _ in range(3):
            _burn()
            yield "piece"

    pieces = []
    for piece in call.pieces(model()):
        pieces.append(piece)
    after_model = call.energy().joules
    _burn()  # the reader's own work between pieces and after the last is not the model's
    assert pieces == ["piece"] * 3 and after_model > 0 and call.energy().joules == after_model


def test_a_one_at_a_time_model_is_charged_the_process_cpu_time(tmp_path):
    call = Metering(powercap=tmp_path).meter_for(_info(capabilities=frozenset()), None)()
    assert "process" in call.label
    call.begin()
    _burn()
    call.end()
    assert call.energy().source == "estimate" and call.energy().joules > 0


def test_a_loopback_server_declared_local_is_charged_its_process_cpu_time(tmp_path):
    with socket.socket() as listening:  # this process stands in for the model server
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert _listening_pids(port) == [os.getpid()]
        config = BackendConfig(kind="openai", base_url=f"http://127.0.0.1:{port}/v1", local=True)
        call = Metering(powercap=tmp_path).meter_for(_info(), config)()
        call.begin()
        _burn()
        call.end()
    energy = call.energy().to_json()
    assert energy["source"] == "estimate" and energy["joules"] > 0 and "loopback" in energy["label"]


def test_rapl_measures_every_local_call(tmp_path):
    pkg = _domain(tmp_path, "intel-rapl:0", 1_000_000)
    call = Metering(powercap=tmp_path).meter_for(_info(), None)()
    call.begin()
    (pkg / "energy_uj").write_text("1250000\n")
    call.end()
    assert call.energy().to_json() == {"joules": 0.25, "source": "rapl", "label": call.label}
    call = Metering(powercap=tmp_path).meter_for(_info(), None)()
    call.begin()
    (pkg / "energy_uj").unlink()  # unreadable mid-way: unknown, never guessed
    call.end()
    assert call.energy().to_json()["joules"] is None and call.source == "rapl"


def test_a_loopback_server_that_went_away_is_unknown_not_zero(tmp_path):
    server = subprocess.Popen([sys.executable, "-c", "import socket, sys, time\n"
                               "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
                               "print(s.getsockname()[1], flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        config = BackendConfig(kind="openai", base_url=f"http://127.0.0.1:{port}/v1", local=True)
        meter = Metering(powercap=tmp_path).meter_for(_info(), config)
        running = meter()
        running.begin()
        running.end()
        assert running.energy().joules == 0.0  # found, and idle
    finally:
        server.kill()
        server.wait()
    gone = meter()
    gone.begin()
    gone.end()
    assert gone.energy().joules is None and gone.energy().source == "estimate"
