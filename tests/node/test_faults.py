"""The short fault campaign in CI (``python -m tests.faults --long`` runs every scenario):
real processes behind TCP proxies, a steady load, the primary cut off alone, a kill -9 and
restart, the primary paused; every acknowledged transaction ends on every node, the
chains are identical and no node died but the one killed."""

from __future__ import annotations

from pathlib import Path

from tests.faults.campaign import Campaign


def test_the_short_fault_campaign_loses_nothing(tmp_path: Path) -> None:
    report = Campaign(tmp_path / "net").run(Campaign.SHORT, log=lambda _: None)
    assert report.ok, report.problems
    assert report.acknowledged > 0 and report.height > 0
    assert len(report.recoveries_s) == len(Campaign.SHORT), report.recoveries_s
