"""``wmsj township add|show|list|rotate|revoke``: township systems' identities.

The broker side (user, permissions, reply queue) is made through the RabbitMQ management
HTTP API by ``shared.onboarding`` (also behind the registry's office route ``/townships``).
The HTTP API key is a line of ``WMSJ_API_KEYS``, which every service reads at start: with
``--env-file deploy/.env`` the command writes the township's entry there (replacing an old
one), and ``docker compose up -d`` then gives it to the services; without, it prints the
entry to add.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from shared.onboarding import TownshipAccess, TownshipInfo, api_key_role, permissions

__all__ = ["access_text", "info_text", "permissions", "set_api_key"]

_API_KEYS_LINE = re.compile(r"^(?P<export>export\s+)?WMSJ_API_KEYS=(?P<value>.*)$", re.MULTILINE)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def set_api_key(env_file: Path, township_id: str, key: str | None) -> None:
    """Replace the township's entry of ``WMSJ_API_KEYS`` in ``env_file`` by ``key`` (None:
    remove it). Other entries and lines are kept as they are; the file keeps its mode."""
    text = env_file.read_text(encoding="utf-8")
    match = _API_KEYS_LINE.search(text)
    keys: dict[str, str] = json.loads(_unquote(match.group("value"))) if match else {}
    role = api_key_role(township_id)
    keys = {k: r for k, r in keys.items() if r != role}
    if key is not None:
        keys[key] = role
    line = f"WMSJ_API_KEYS='{json.dumps(keys, ensure_ascii=False)}'"
    if match:
        text = text[: match.start()] + (match.group("export") or "") + line + text[match.end() :]
    else:
        text = text.rstrip("\n") + "\n" + line + "\n"
    env_file.write_text(text, encoding="utf-8")


def access_text(access: TownshipAccess, env_file: Path | None) -> str:
    """Everything the township system needs, to hand over once (it holds secrets)."""
    entry = json.dumps(access.api_key_entry, ensure_ascii=False)
    if env_file:
        where = f"written to WMSJ_API_KEYS in {env_file}; run `docker compose up -d` so the services read it"
    else:
        where = f"add {entry} to WMSJ_API_KEYS (deploy/.env) and restart the services"
    return "\n".join(
        [
            f"township {access.township_id} — hand this over once, over a safe channel; it is not shown again",
            f"  AMQP URL:       {access.amqp_url}",
            f"  user:           {access.user}   (set it as the user_id property of every message)",
            f"  password:       {access.password}",
            f"  reply queue:    {access.reply_queue}   (refusals of your events arrive here)",
            f"  HTTP API key:   {access.api_key}   (Authorization: Bearer <key>)",
            f"  upload prefix:  {access.upload_prefix}   (POST /uploads/policy on the evidence API)",
            f"  API key entry:  {where}",
        ]
    )


def info_text(info: TownshipInfo) -> str:
    waiting = "no reply queue!" if info.refusals_waiting is None else f"{info.refusals_waiting} waiting"
    return "\n".join(
        [
            f"township {info.township_id}",
            f"  AMQP URL:       {info.amqp_url}   (password not shown: `wmsj township rotate` makes a new one)",
            f"  user:           {info.user}",
            f"  reply queue:    {info.reply_queue}   ({waiting})",
            f"  may publish:    {info.may_publish or 'nothing (no topic permission)'}",
            f"  upload prefix:  {info.upload_prefix}",
            f"  HTTP API key:   the WMSJ_API_KEYS entry with role {info.api_key_role!r}",
        ]
    )
