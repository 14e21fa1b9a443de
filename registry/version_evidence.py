"""One version's record for its page: its history, provenance, shadow record, and the evidence
against the champion (the paired daily difference, its running mean with the gate's anytime
bound after each day, and the gate's report on it).

The I/O half: read from the database, hand the arrays to the scorer. Pandas and scipy come with
it (through ``registry.evidence``), so callers import this module on first use.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from registry import store
from registry.config import PodiumConfig
from registry.evidence import champion_first_day, judge_track
from registry.lifecycle import State
from scorer.evidence_path import evidence_path
from scorer.jsonsafe import json_safe
from scorer.pairing import in_window, paired


def read_version_evidence(session: Session, *, version_id: str,
                          config: PodiumConfig) -> dict[str, Any]:
    """Everything the version page shows about ``version_id`` (JSON-safe)."""
    version = store.get_version(session, version_id)
    decision, versions, daily = judge_track(session, track=version.track, config=config)
    champion = next((v for v in versions if v.state == State.CHAMPION.value), None)
    own = daily[version_id]
    record = {
        "days": len(own),
        "first_day": own.index[0].date().isoformat() if len(own) else None,
        "last_day": own.index[-1].date().isoformat() if len(own) else None,
        "cumulative_net": float(own["net"].sum()) if len(own) else None,
        "mean_net": float(own["net"].mean()) if len(own) else None,
        "mean_turnover": float(own["turnover"].mean()) if len(own) else None,
        "mean_cost": float(own["cost"].mean()) if len(own) else None,
        "curve": {"days": [d.date().isoformat() for d in own.index],
                  "cumulative_net": [float(x) for x in own["net"].cumsum()]},
    }
    report = None
    if decision is not None and version.state == State.CHALLENGER.value:
        report = decision.report(version_id).to_dict()
    evidence = None
    if champion is not None and version.state == State.CHALLENGER.value:
        since = champion_first_day(session, champion)
        mine, theirs = paired(in_window(own, since), in_window(daily[champion.version_id], since))
        difference = (mine["net"] - theirs["net"]).to_numpy()
        k_active = report["k_active"] if report else 1  # the k the gate divided α by
        path = evidence_path(difference, settings=config.gate,
                             level=config.gate.alpha / max(k_active, 1))
        evidence = {"champion": champion.version_id, "margin": config.gate.margin,
                    "mode": config.gate.mode, "min_days": config.gate.min_days,
                    "days": [d.date().isoformat() for d in mine.index],
                    "difference": path.difference, "running_mean": path.running_mean,
                    "lower_bound": path.lower_bound}
    audit = store.list_audit(session, version_id=version_id, limit=store.MAX_PAGE)
    registered_by = next((e.actor for e in reversed(audit) if e.action == "register"), None)
    return json_safe({
        "version_id": version.version_id, "track": version.track, "state": version.state,
        "label": version.label, "spec": version.spec_name, "train_cutoff":
            version.train_cutoff.isoformat(), "fingerprint": version.fingerprint,
        "bundle_path": version.bundle_path, "bundle_digest": version.bundle_digest,
        "registered_at": store.as_utc(version.created_at).isoformat(),
        "registered_by": registered_by,
        "champion_since": store.as_utc(version.champion_since).isoformat()
        if version.champion_since else None,
        "details": version.details or {},
        "record": record, "report": report, "evidence": evidence,
        "audit": [{"id": e.id, "when": store.as_utc(e.created_at).isoformat(),
                   "action": e.action, "from_state": e.from_state, "to_state": e.to_state,
                   "actor": e.actor, "reason": e.reason, "forced": e.forced,
                   "verdict": (e.gate_report or {}).get("verdict")} for e in audit],
    })
