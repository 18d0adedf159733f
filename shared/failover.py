"""Connecting to a RabbitMQ cluster through any of its nodes.

``WMSJ_AMQP_URL`` may list several nodes' URLs, comma-separated (``amqp://u:p@rabbit-1/,
amqp://u:p@rabbit-2/,amqp://u:p@rabbit-3/``). A service connects to the first that answers
and, when its node goes away, reconnects to the next one (aio-pika's robust connection
reconnects to one URL only). Quorum queues live on every node, so consumers resume where
they were on whichever node they reach; what was unacknowledged is redelivered (and ignored
as a duplicate if it was handled).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from aio_pika import RobustConnection
from yarl import URL

log = logging.getLogger("wmsj.failover")


def amqp_urls(setting: str) -> list[str]:
    """The URLs in a ``WMSJ_AMQP_URL`` setting (one, or several comma-separated)."""
    return [u.strip() for u in setting.split(",") if u.strip()]


class FailoverConnection(RobustConnection):
    """A robust connection that moves on to the next node's URL whenever an attempt to
    connect fails (including the first attempt after the current node went away)."""

    urls: ClassVar[list[URL]] = []

    def __init__(self, url: URL, loop: Any = None, **kwargs: Any) -> None:
        super().__init__(url, loop=loop, **kwargs)
        others = [u for u in type(self).urls if u != url]
        self._urls = [url, *others]

    async def _RobustConnection__connect_transport(self) -> None:  # the name aio-pika calls
        try:
            await super()._RobustConnection__connect_transport()  # type: ignore[misc]
        except BaseException:
            if len(self._urls) > 1:
                self._urls = [*self._urls[1:], self._urls[0]]
                self.url = self._urls[0]
                log.warning("broker unreachable; next attempt: %s", self.url.with_password("***"))
            raise


def failover_class(urls: list[str]) -> type[FailoverConnection]:
    """A ``FailoverConnection`` class for these URLs (aio-pika builds the connection)."""
    return type("Failover", (FailoverConnection,), {"urls": [URL(u) for u in urls]})
