"""Who owns an id, pure: the rule every service applies to the ids townships introduce.

Ids (an activity's, an order's, a piece of evidence's, a volunteer's, an upload's key) are
one global namespace, chosen by the township systems. The first township to state an id
owns it — as the broker-validated identity says (``shared.identity.publisher_of``), never
the body — and any later statement about it from another township is refused. The refusal
names nothing of the owner (no unit, no township, no name): the id is simply not the
sender's to use. The office may state anything about any id, as before.

Who an id is recorded as owned by when it is first stated (``claimant``): the sending
township; for the office, the township of the unit the statement is about when that is
known (so that the township keeps its own activity the office wrote for it), else nobody
yet — then the first township to state it claims it.
"""

from __future__ import annotations

Owner = str | None  # a township id; None: not claimed by any township (the office's, or unknown)


def claimant(sender_township: str | None, unit_township: str | None) -> Owner:
    """The owner recorded for an id first stated now: the sending township (None: the
    office), or for the office the township of the unit it is about (None: not known)."""
    return sender_township if sender_township is not None else unit_township


def foreign(owner: Owner, sender_township: str | None) -> bool:
    """Whether an id recorded as ``owner``'s is another township's, for this sender (the
    office, ``sender_township`` None, may state anything; an unclaimed id is anybody's)."""
    return sender_township is not None and owner is not None and owner != sender_township


def not_yours(what: str, id_: str) -> str:
    """The reason for refusing a statement about another township's id: it names the id
    the sender chose, and nothing of its owner."""
    return f"{what} {id_} is another township's: choose an id of your own"


def owner_after(owner: Owner, sender_township: str | None, unit_township: str | None) -> Owner:
    """The owner once this (accepted) statement is kept: an unclaimed id is claimed by the
    first township that states it; a claimed one keeps its owner (even if the office
    restates it)."""
    return owner if owner is not None else claimant(sender_township, unit_township)
