"""Volunteers' personal data (个人信息): PRC resident ID-card numbers and mobile phones.

- **Checked**: an ID-card number is 18 characters with the GB 11643 checksum; a phone is a
  mainland mobile number (11 digits, 1[3-9]…).
- **Encrypted at rest** with Fernet (AES-128-CBC + HMAC) under ``WMSJ_PII_KEY``; a keyed hash
  (HMAC-SHA256) makes the same number findable without decrypting anything.
- **Masked** wherever it is shown (``4313**********123X``, ``138****5678``).
- **Never logged**: ``scrub`` masks anything shaped like either in a text; the services' JSON
  log formatter runs every line through it, whatever a library put in its message.
- **Never served from free text**: people type numbers into captions, titles, reasons and
  descriptions too. ``scrub_free_text`` runs ``scrub`` over every text of a response or an
  export row except identifiers (``*_id``, keys, hashes), where the APIs and exports build them.

The development key below is public (it is in this file): it is the default only so that a
local run works; ``deploy/docker-compose.yml`` refuses to start without a real
``WMSJ_PII_KEY``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# DEVELOPMENT ONLY — public, never use it for real data. Deployments set WMSJ_PII_KEY.
DEV_PII_KEY = "ZGV2LW9ubHktd21zai1waWkta2V5LW5vdC1zZWNyZXQ="

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
ID_CARD_SHAPE = re.compile(r"^[1-9]\d{5}(18|19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\d{3}[\dX]$")
PHONE_SHAPE = re.compile(r"^1[3-9]\d{9}$")

# Anything that looks like either inside a longer text (not part of a longer code or hex string),
# also as people type them: grouped with spaces or hyphens (6-8-4, 3-4-4), a phone with +86.
_SEP = r"[ \-]?"
_ID_IN_TEXT = re.compile(rf"(?<![0-9A-Za-z])(\d{{6}}){_SEP}\d{{8}}{_SEP}(\d{{3}}[\dXx])(?![0-9A-Za-z])")
_PHONE_IN_TEXT = re.compile(
    rf"(?<![0-9A-Za-z])(?:\+?86{_SEP})?(1[3-9]\d){_SEP}\d{{4}}{_SEP}(\d{{4}})(?![0-9A-Za-z])"
)
# Keys whose values are identifiers, not text anyone typed: left as they are by
# ``scrub_free_text`` (an id is checked at the door and must stay findable).
_IDENTIFIER_KEYS = frozenset(
    {"id", "_id", "source", "subject", "type", "sha256", "period", "status", "kind", "content_type"}
)
_IDENTIFIER_ENDINGS = ("_id", "_ids", "_key", "_at", "_url", "_type", "_sha256")


class PiiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WMSJ_", extra="ignore")

    pii_key: str = Field(
        default=DEV_PII_KEY,
        description="Fernet key (urlsafe base64 of 32 bytes) for ID-card numbers and phones at rest",
    )


def id_card_checksum(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def id_card_problem(value: str) -> str | None:
    """Why ``value`` is not a valid 18-character resident ID-card number, or None. The
    reason never repeats the value: it ends up in rejections and error reports."""
    if not ID_CARD_SHAPE.fullmatch(value):
        return "must be an 18-character resident ID-card number (17 digits and a digit or X)"
    if id_card_checksum(value[:17]) != value[17]:
        return "the ID-card number's check character is wrong"
    return None


def phone_problem(value: str) -> str | None:
    if not PHONE_SHAPE.fullmatch(value):
        return "must be an 11-digit mainland mobile number"
    return None


def mask_id_card(value: str) -> str:
    return value[:4] + "*" * 10 + value[-4:] if len(value) == 18 else "*" * len(value)


def mask_phone(value: str) -> str:
    return value[:3] + "****" + value[-4:] if len(value) == 11 else "*" * len(value)


def scrub(text: str) -> str:
    """``text`` with every ID-card-like and phone-like number masked."""
    text = _ID_IN_TEXT.sub(lambda m: m.group(1) + "*" * 8 + m.group(2), text)
    return _PHONE_IN_TEXT.sub(lambda m: m.group(1) + "****" + m.group(2), text)


def _is_identifier(key: object) -> bool:
    return isinstance(key, str) and (key in _IDENTIFIER_KEYS or key.endswith(_IDENTIFIER_ENDINGS))


def scrub_free_text(value: Any, key: object = None) -> Any:
    """``value`` (a JSON-like tree: dicts, lists, texts) with ``scrub`` applied to every text
    that is not an identifier's: free text people typed (a caption, a title, a reason, a
    name) may hold an ID-card or phone number, and is shown masked like the structured
    fields. Under an identifier's key nothing is changed, however deep."""
    if isinstance(value, str):
        return value if _is_identifier(key) else scrub(value)
    if _is_identifier(key):
        return value
    if isinstance(value, dict):
        return {k: scrub_free_text(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_free_text(v, key) for v in value]
    return value


class Vault:
    """Encrypts personal data for storage; decrypts it only where a rule needs the value."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())
        self._hash_key = hashlib.sha256(b"wmsj-pii-lookup|" + key.encode()).digest()

    def seal(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def open(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()

    def fingerprint(self, value: str) -> str:
        """A keyed hash: equal values give equal fingerprints; it cannot be reversed without the key."""
        return hmac.new(self._hash_key, value.encode(), hashlib.sha256).hexdigest()


@lru_cache(maxsize=1)
def vault() -> Vault:
    return Vault(PiiSettings().pii_key)
