"""Ownership rules of the evidence service (pure): a township names only uploads issued to it,
attaches evidence only to its own township's activities, and never replaces another
township's stored evidence; the refusals name nothing of the other township."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.evidence.domain import (
    KnownActivity,
    RefusedEvidence,
    check_activity,
    check_owner,
    check_upload_key,
    upload_prefix,
)
from tests.unit.test_evidence_rules import submitted

T0 = datetime(2020, 6, 12, 1, 0, tzinfo=UTC)
OURS, THEIRS = "431381101", "431381102"


def test_uploads_are_issued_under_the_senders_own_prefix() -> None:
    assert upload_prefix(OURS) == f"{OURS}/"
    assert upload_prefix(None) == "office/"


@pytest.mark.parametrize("key", [f"{THEIRS}/abc", "office/abc", f"{OURS}0/abc", "abc", f"x/{OURS}/abc"])
def test_a_township_names_only_its_own_uploads(key: str) -> None:
    with pytest.raises(RefusedEvidence) as refused:
        check_upload_key(key, OURS)
    assert refused.value.field == "data.object_key"
    assert THEIRS not in str(refused.value)  # the key (which may name its owner) is not echoed
    check_upload_key(f"{OURS}/abc", OURS)
    check_upload_key(key, None)  # the office names any


def test_stored_evidence_is_never_replaced_by_another_township() -> None:
    with pytest.raises(RefusedEvidence) as refused:
        check_owner(THEIRS, True, "e1", OURS)
    assert str(refused.value) == "evidence e1 is another township's: choose an id of your own"
    assert refused.value.field == "data.evidence_id"
    check_owner(OURS, True, "e1", OURS)  # its own: restated
    check_owner(THEIRS, True, "e1", None)  # the office
    check_owner(None, False, "e1", OURS)  # a new id


def test_evidence_for_another_townships_activity_is_refused_naming_nothing_of_it() -> None:
    activity = KnownActivity("a1", f"{THEIRS}201", None, T0, T0 + timedelta(hours=1))
    data = submitted(activity_id="a1", unit_id=f"{OURS}201")
    with pytest.raises(RefusedEvidence) as refused:
        check_activity(data, activity, THEIRS, OURS)
    assert str(refused.value) == "activity a1 is another township's: choose an id of your own"
    assert THEIRS not in str(refused.value)
    # Within one township (or for the office) the units may be named.
    with pytest.raises(RefusedEvidence, match=f"is run by unit '{THEIRS}201'"):
        check_activity(data, activity, THEIRS, None)
