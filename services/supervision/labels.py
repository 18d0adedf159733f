"""The Chinese words the office reads in exports and bulletins for the codes the API keeps."""

from __future__ import annotations

KINDS = {
    "city": "市",
    "township": "乡",
    "town": "镇",
    "street": "街道",
    "village": "村",
    "community": "社区",
    "department": "市直单位",
    "enterprise": "企业",
    "school": "学校",
    "institution": "事业单位",
    "practice_centre": "文明实践中心",
    "practice_institute": "文明实践所",
    "practice_station": "文明实践站",
    "general_team": "志愿服务总队",
    "brigade": "志愿服务大队",
    "squad": "志愿服务分队",
}
LISTS = {"red": "红榜", "black": "黑榜", None: ""}


def kind_label(kind: str | None) -> str:
    return KINDS.get(kind or "", kind or "")


def list_label(row: dict[str, object]) -> str:
    if row.get("vetoed"):
        return "一票否决"
    found = row.get("list")
    return LISTS.get(found if isinstance(found, str) else None, "")


TOWNSHIP_KINDS = frozenset({"township", "town", "street"})  # 乡/镇/街道: each is its own township


def township_of(unit: dict[str, object]) -> str | None:
    """The township a unit belongs to: itself for a township, town or street (as
    ``shared.identity.owning_township`` says), else its ``township_id`` (None: city level)."""
    if unit.get("kind") in TOWNSHIP_KINDS:
        return str(unit.get("unit_id"))
    found = unit.get("township_id")
    return str(found) if found else None
