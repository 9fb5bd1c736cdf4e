"""`ailab doctor`: one check per runbook (docs/runbooks/), each answering pass / warn / fail / skip with what
it saw and the runbook to read."""

from ailab.ops.doctor.base import Check, Outcome, Result, all_checks, run_checks, select_checks
from ailab.ops.doctor.context import DoctorContext, Thresholds

__all__ = [
    "Check",
    "DoctorContext",
    "Outcome",
    "Result",
    "Thresholds",
    "all_checks",
    "run_checks",
    "select_checks",
]
