"""How much of the owner a profile must have seen before it judges anyone."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EnrollmentPolicy:
    """How much of the owner a modality must have seen before it judges anyone."""

    min_presses: int = 1500
    min_actions: int = 300
    min_sessions: int = 2
    min_calibration: int = 16
    keyboard_cells: int = 300  # timing events a keyboard score rests on (~100 presses)
    min_keyboard_cells: int = 120
    mouse_actions: int = 20  # rolling context a mouse score rests on
    min_mouse_actions: int = 5
    learn_gate: float = 0.95  # calibrated score above which an active profile does not learn
    # Learn only while the verdict reads trusted: evidence against the owner that has
    # built up (an impostor at the upper edge of the owner's range) stops teaching.
    learn_min_trust: float = 70.0
    # The enrolment anchor: an active modality does not learn a window whose readable
    # summary (:mod:`profiles.reasons`) is more than this many standard deviations from
    # the owner's enrolment windows in any quantity, so that input drifting slowly away
    # from the enrolled owner cannot walk the profile along with it (docs/evaluation.md,
    # "Poisoning by slow drift"). ``inf`` learns as before the anchor.
    anchor_z: float = 4.0
    # Genuine scores the calibration ring keeps, per modality.
    calibration_size: int = 512
    # Fresh evidence (in contexts) between two scores the ring keeps. Consecutive
    # windows share most of their context, so keeping every window filled the ring
    # with near-copies: 512 windows were ~75 independent contexts, under an hour of
    # pointing from one session, and another day's session fell outside that range.
    # One score per context makes the entries ~independent and lets the ring span
    # several sessions (512 contexts: ~4 h of typing, ~10 h of pointing). While a
    # modality enrols, the ring must reach ``min_calibration`` entries within half
    # of the minimum evidence (the first windows cannot be scored yet, and the
    # last must not wait for the ring): 1500 presses = 15 contexts -> stride 0.47;
    # the demo's 200 presses -> 0.0625.
    calibration_stride: float = 1.0

    def enrolling_stride(self, min_units: int, per_context: int) -> float:
        """Ring stride while a modality enrols (see ``calibration_stride``).

        >>> EnrollmentPolicy().enrolling_stride(1500, 100)
        0.46875
        """
        contexts = min_units / per_context
        return min(self.calibration_stride, contexts / 2.0 / self.min_calibration)
