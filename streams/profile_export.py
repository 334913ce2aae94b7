"""What cadence holds about one person, in words: for access requests (GDPR art. 15).

Built from the worker's table record (``streams.state.UserState`` with the
``profiles.user.UserProfile`` inside) and the person's recent verdicts; never from
raw events, which the export does not read. The profile itself is a statistical
model (histograms, quantiles, running means); the export gives its size, state and
the readable summary statistics the detector explains its verdicts with.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from profiles.reasons import KEYBOARD_SUMMARY, MOUSE_SUMMARY, RunningSummary
from profiles.user import MODEL_VERSION
from streams.judge import background, enrollment_policy
from streams.state import UserState
from streams.verdict import Verdict


def _summary(names: tuple[str, ...], summary: RunningSummary) -> dict[str, dict[str, float]]:
    sd = np.sqrt(np.maximum(summary.var, 0.0))
    return {
        name: {"mean": round(float(m), 4), "sd": round(float(s), 4)}
        for name, m, s in zip(names, summary.mean, sd, strict=True)
    }


def describe(user: str, state_bytes: bytes | None, verdicts: list[Verdict]) -> dict[str, Any]:
    """A JSON-able description of everything cadence keeps about ``user``."""
    out: dict[str, Any] = {"user": user, "profile": None}
    if state_bytes:
        from profiles.user import UserProfile

        # Outside the try: a bad CADENCE_BACKGROUND or threshold is the operator's to fix
        # (streams.env.SettingError), not something wrong with this person's record.
        shared, policy = background(), enrollment_policy()
        try:
            state = UserState.from_bytes(state_bytes)
            profile = UserProfile.from_bytes(state.profile, shared, policy)
        except (MemoryError, RecursionError):
            raise  # the process, not the bytes
        except Exception as exc:  # noqa: BLE001 - whatever damaged or old bytes raise
            # The worker starts such a user over (streams.app, streams.judge.load_profile):
            # the answer is that a record is held and cannot be read, not a traceback.
            out["profile"] = {"unreadable": repr(exc), "stored_bytes": len(state_bytes)}
            return _with_verdicts(out, verdicts)
        out["profile"] = {
            "model_version": MODEL_VERSION,
            "enrollment": profile.enrollment,
            "trust": round(float(profile.trust.value), 2),
            "windows_judged": state.windows,
            "keyboard": {
                "active": profile.keyboard_active(),
                "key_presses_learned": profile.keyboard.presses,
                "sessions": profile.keyboard.sessions,
                "summary": _summary(KEYBOARD_SUMMARY, profile.keyboard.summary),
            },
            "mouse": {
                "active": profile.mouse_active(),
                "actions_learned": profile.mouse.actions,
                "sessions": profile.mouse.sessions,
                "summary": _summary(MOUSE_SUMMARY, profile.mouse.summary),
            },
            "devices": {d: {"last_seq": c.last_seq} for d, c in state.cursors.items()},
            "stored_bytes": len(state_bytes),
        }
    return _with_verdicts(out, verdicts)


def _with_verdicts(out: dict[str, Any], verdicts: list[Verdict]) -> dict[str, Any]:
    out["recent_verdicts"] = [
        {
            "verdict_id": v.verdict_id,
            "window_end_ms": v.window_end_ms,
            "level": v.level,
            "trust": v.trust,
            "keyboard_score": v.keyboard_score,
            "mouse_score": v.mouse_score,
            "reasons": list(v.reasons),
            "enrollment": v.enrollment,
            "device": v.device,
        }
        for v in verdicts
    ]
    return out


def render(report: dict[str, Any]) -> str:
    """The report as text for the person who asked."""
    lines = [f"cadence data about pseudonym {report['user']}", ""]
    profile = report["profile"]
    if profile is None:
        lines.append("profile: none (never enrolled, or erased)")
    elif "unreadable" in profile:
        lines.append(
            f"profile: unreadable ({profile['unreadable']}), {profile['stored_bytes']} bytes; "
            "the worker starts this profile over at the person's next activity"
        )
    else:
        lines += [
            f"profile: {profile['enrollment']}, model {profile['model_version']}, "
            f"trust {profile['trust']}/100, {profile['windows_judged']} windows judged, "
            f"{profile['stored_bytes']} bytes",
        ]
        for modality, count in (("keyboard", "key_presses_learned"), ("mouse", "actions_learned")):
            m = profile[modality]
            lines.append(
                f"  {modality}: {'active' if m['active'] else 'learning'}, "
                f"{m[count]} {count.replace('_', ' ')}, {m['sessions']} sessions"
            )
            for name, stat in m["summary"].items():
                lines.append(f"    {name}: mean {stat['mean']}, sd {stat['sd']}")
        lines.append(f"  devices: {', '.join(profile['devices']) or '-'}")
    covered = report.get("verdicts_covered")
    lines += ["", f"recent verdicts: {len(report['recent_verdicts'])}"]
    if covered:
        lines[-1] += f" ({covered})"
    for v in report["recent_verdicts"]:
        lines.append(
            f"  {v['window_end_ms'] / 1000:.0f} {v['level']:<10} trust={v['trust']:5.1f} "
            f"{v['enrollment']} {'; '.join(v['reasons'])}"
        )
    lines += ["", "raw input events are kept only hours on the events topic and are not exported"]
    return "\n".join(lines) + "\n"
