"""Energy measurement: RAPL counters (with wraparound and unreadable domains) and the labelled
CPU-time estimate used when a machine exposes none."""

from __future__ import annotations

from pathlib import Path

from sekisho.arena.energy import EnergyMeter, rapl_domains


def _domain(root: Path, name: str, energy_uj: int, max_uj: int = 262_143_328_850) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


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
    sum(i * i for i in range(300_000))  # burn some CPU time
    joules = stop()
    assert joules > 0.0


def test_no_powercap_at_all(tmp_path):
    meter = EnergyMeter(powercap=tmp_path / "missing")
    assert meter.source.is_estimate
