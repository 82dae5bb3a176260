"""A job's energy numbers for the report, read through quest.energy.record (the only code that
knows energy.json's schema): write energy per training sample (the last epoch's updates), read
energy per inference sample (the last validation epoch measured), both for one R-S pattern.
"""
from __future__ import annotations

from dataclasses import dataclass

from quest.energy.record import (  # noqa: F401 - the report's readers of energy.json
    ACTIVITY_KEYS,
    activity_by_layer,
    activity_epochs,
    activity_series,
    headline,
    last_activity,
    last_cmos,
    last_write_epoch,
    pattern_states,
    read_by_layer,
    totals_by_pattern,
    transition_shares,
    weight_levels,
    write_by_layer,
    write_section,
    write_windows,
)
from quest.report.jobs import Job


@dataclass
class EnergySummary:
    """A job's headline energy figures; numbers are None where they do not exist."""

    reason: str | None  # why there is no device energy (not realizable, no energy.json), or None
    selected_pattern: int | None
    write_fJ: float | None  # per sample, summed over layers, selected pattern
    read_fJ: float | None  # per sample, summed over layers, selected pattern
    ann_pJ: float | None
    snn_pJ: float | None
    ann_over_snn: float | None

    @property
    def total_fJ(self) -> float | None:
        if self.write_fJ is None or self.read_fJ is None:
            return None
        return self.write_fJ + self.read_fJ


def summarize(job: Job) -> EnergySummary:
    """The job's headline energy (quest.energy.record.headline, the block results.json holds)."""
    if job.energy is None:
        return EnergySummary(job.energy_problem or "no energy.json", None, None, None, None, None, None)
    h = headline(job.energy, configured=(job.config.get("pattern") or {}).get("selection"))
    return EnergySummary(
        reason=h["reason"],
        selected_pattern=h["selected_pattern"],
        write_fJ=h["write_energy_per_sample_fJ"],
        read_fJ=h["read_energy_per_sample_fJ"],
        ann_pJ=h["cmos_ann_pJ"],
        snn_pJ=h["cmos_snn_pJ"],
        ann_over_snn=h["cmos_ann_over_snn"],
    )
