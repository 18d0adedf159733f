"""The ownership primitive every service applies (shared.ownership)."""

from __future__ import annotations

from shared.ownership import claimant, foreign, not_yours, owner_after


def test_the_first_township_to_state_an_id_owns_it() -> None:
    assert claimant("t1", "t2") == "t1"
    assert claimant(None, "t2") == "t2"  # the office: the township of the unit it is about
    assert owner_after(None, "t1", None) == "t1"
    assert owner_after("t1", "t2", None) == "t1"
    assert owner_after("t1", None, "t2") == "t1"


def test_only_another_townships_claimed_id_is_foreign() -> None:
    assert foreign("t1", "t2")
    assert not foreign("t1", "t1") and not foreign("t1", None) and not foreign(None, "t2")


def test_the_refusal_names_only_the_id() -> None:
    assert not_yours("order", "o1") == "order o1 is another township's: choose an id of your own"
