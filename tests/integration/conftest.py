"""The four services running inside the test process, against the real servers.

The fixtures (``apps``, ``tap``, ``township``, ``s3``) live in ``tests/conftest.py``, so that
tests/security shares the one session's services instead of starting (reloading) them twice."""

from __future__ import annotations
