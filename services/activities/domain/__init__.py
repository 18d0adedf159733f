"""The activities service's rules, pure: no I/O, and the clock is always a ``now`` parameter.

- ``projects``: the yearly key project list, its versions, activities checked against it;
- ``lifecycle``: planned → published → ongoing → completed, or cancelled; rescheduling;
- ``orders``: the 四单 workflow (点单, 派单, 接单, 评单) and escalation;
- ``attendance``: sign-up with a waitlist, check-in/out, hours credited, 补录;
- ``months``: month boundaries, calendars and the monthly early warning.

Every module follows one principle: township events come duplicated and out of order, so
state is kept as facts that combine independently of arrival order (latest statement wins,
min/max, or a replay in event-time order), and statuses are derived from them.
"""

from services.activities.domain.lifecycle import (
    Activity,
    Cancellation,
    Completion,
    Publication,
    RefusedActivity,
    Schedule,
    apply_cancelled,
    apply_completed,
    apply_published,
    apply_scheduled,
)

__all__ = [
    "Activity",
    "Cancellation",
    "Completion",
    "Publication",
    "RefusedActivity",
    "Schedule",
    "apply_cancelled",
    "apply_completed",
    "apply_published",
    "apply_scheduled",
]
