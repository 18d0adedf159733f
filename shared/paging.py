"""Paging of the HTTP APIs' list routes: every list answers at most ``limit`` items from
``offset``, and says in ``X-Total-Count`` how many there are, so no request reads or sends
a whole province at once and a client can walk the rest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Query, Response

T = TypeVar("T")

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


@dataclass(frozen=True)
class Page:
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def of(self, items: Sequence[T], response: Response | None = None) -> list[T]:
        """This page of ``items`` (the whole list, in its order), with its total count."""
        if response is not None:
            response.headers["X-Total-Count"] = str(len(items))
        return list(items[self.offset : self.offset + self.limit])


def _page(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, description="items skipped")] = 0,
) -> Page:
    return Page(limit, offset)


Paged = Annotated[Page, Depends(_page)]
