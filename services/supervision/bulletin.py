"""The monthly supervision bulletin (督查通报): what a county office circulates.

``compose`` gathers its content from what the API shows (pure: the ranking rows, the
month's flagged evidence and inspections); ``docx`` writes it as a Word file (offices edit
and print those), ``pdf`` as a PDF with a Chinese font embedded (for circulation). Both
carry the same title, figures, rankings, lists, chart and findings.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from services.supervision.domain import CITY_TIME
from services.supervision.labels import kind_label, township_of

# Debian's fonts-wqy-microhei (scripts/setup.sh, the image): one font with every Chinese
# character, embedded in the PDF so it reads the same on any machine.
CJK_FONTS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
)
SIGNALS = {
    "same-file": "同一文件重复使用",
    "near-duplicate": "近似照片",
    "taken-before-activity": "拍摄早于活动",
}
VERDICTS = {"accepted": "已认可", "rejected": "已驳回", None: "待审核"}


def cjk_font() -> Path:
    for path in CJK_FONTS:
        if path.exists():
            return path
    raise RuntimeError("no Chinese font: install fonts-wqy-microhei (scripts/setup.sh does)")


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]


@dataclass
class Bulletin:
    title: str
    issued: str
    period: str
    due: bool
    summary: list[tuple[str, str]]
    tables: list[Table] = field(default_factory=list)
    chart_title: str = ""
    chart: list[tuple[str, float]] = field(default_factory=list)  # (township, mean score)


def _score(x: Any) -> str:
    return f"{float(x):g}"


def compose(
    period: str,
    rows: list[dict[str, Any]],
    flagged: list[dict[str, Any]],
    findings: list[dict[str, Any]],
    due: bool,
    now: datetime,
) -> Bulletin:
    """The bulletin's content: ``rows`` as ``GET /scores`` gives them (ranked), ``flagged``
    the month's flagged evidence, ``findings`` its inspection findings (with unit names)."""
    year, _, month = period.partition("-")
    when = f"{year}年{int(month)}月" if month and "Q" not in month else period
    names = {r["unit_id"]: r.get("name") or r["unit_id"] for r in rows}
    active = [
        r for r in rows if any(i["rule"] == "monthly_activity" and i["points"] > 0 for i in r["breakdown"])
    ]
    idle = [r for r in rows if r not in active]
    red = [r for r in rows if r.get("list") == "red"]
    black = [r for r in rows if r.get("list") == "black"]
    mean = sum(r["score"] for r in rows) / len(rows) if rows else 0.0
    summary = [
        ("参评单位", str(len(rows))),
        ("平均得分", f"{mean:.1f}"),
        ("开展活动单位", str(len(active))),
        ("未开展活动单位", str(len(idle))),
        ("红榜单位", str(len(red)) if due else "未到公布时间"),
        ("黑榜单位", str(len(black)) if due else "未到公布时间"),
        ("疑似问题图文资料", str(len(flagged))),
        ("督查发现问题", str(sum(int(f.get("occurrences", 1)) for f in findings))),
    ]
    out = Bulletin(
        title=f"文明实践工作督查通报（{when}）",
        issued=now.astimezone(CITY_TIME).strftime("%Y年%m月%d日"),
        period=period,
        due=due,
        summary=summary,
    )
    header = ["名次", "单位", "类型", "得分"]

    def line(r: dict[str, Any], rank_key: str) -> list[str]:
        return [str(r[rank_key]), str(names[r["unit_id"]]), kind_label(r.get("kind")), _score(r["score"])]

    townships: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        townships.setdefault(township_of(r) or "市直", []).append(r)
    for township_id, members in sorted(townships.items()):
        title = f"{names.get(township_id, township_id)} 排名"
        ranked = sorted(members, key=lambda r: r["rank_in_township_id"])
        out.tables.append(Table(title, header, [line(r, "rank_in_township_id") for r in ranked]))
    kinds: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        kinds.setdefault(str(r.get("kind") or ""), []).append(r)
    for kind, members in sorted(kinds.items()):
        ranked = sorted(members, key=lambda r: r["rank_in_kind"])
        out.tables.append(
            Table(f"{kind_label(kind) or '未登记'} 排名", header, [line(r, "rank_in_kind") for r in ranked])
        )
    if due:
        out.tables.append(Table("红榜", ["名次", "单位", "类型", "得分"], [line(r, "rank") for r in red]))
        out.tables.append(Table("黑榜", ["名次", "单位", "类型", "得分"], [line(r, "rank") for r in black]))
    else:
        out.tables.append(
            Table("红榜、黑榜", ["说明"], [["本月尚未到公布时间，红榜、黑榜暂不发布（得分为截至目前）"]])
        )
    out.tables.append(
        Table(
            "未开展活动单位",
            ["单位", "类型", "所属乡镇"],
            [
                [
                    str(names[r["unit_id"]]),
                    kind_label(r.get("kind")),
                    str(names.get(township_of(r) or "", township_of(r) or "市直")),
                ]
                for r in idle
            ],
        )
    )
    out.tables.append(
        Table(
            "疑似问题图文资料",
            ["单位", "资料编号", "问题", "审核"],
            [
                [
                    str(names.get(f["unit_id"], f["unit_id"])),
                    f["evidence_id"],
                    SIGNALS.get(f.get("signal") or "", f.get("signal") or "疑似问题"),
                    VERDICTS.get(f.get("review"), "待审核"),
                ]
                for f in flagged
            ],
        )
    )
    out.tables.append(
        Table(
            "督查发现问题",
            ["单位", "督查日期", "事项", "说明", "次数"],
            [
                [
                    str(f["unit_name"]),
                    f["date"],
                    f["rule_label"],
                    f.get("note", ""),
                    str(f.get("occurrences", 1)),
                ]
                for f in findings
            ],
        )
    )
    out.chart_title = "各乡镇平均得分"
    out.chart = [
        (str(names.get(t, t)), round(sum(r["score"] for r in m) / len(m), 1))
        for t, m in sorted(townships.items())
    ]
    return out


def chart_png(bulletin: Bulletin, width: int = 900, height: int = 360) -> bytes:
    """The townships' mean scores as a bar chart (an image both files embed)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(cjk_font()), 16)
    draw.text((20, 10), bulletin.chart_title, fill="black", font=font)
    bars = bulletin.chart or [("", 0.0)]
    left, bottom, top = 60, height - 60, 50
    step = (width - left - 20) / len(bars)
    draw.line((left, top, left, bottom), fill="black")
    draw.line((left, bottom, width - 20, bottom), fill="black")
    for tick in (0, 50, 100):
        y = bottom - (bottom - top) * tick / 100
        draw.text((20, y - 8), str(tick), fill="black", font=font)
    for n, (name, value) in enumerate(bars):
        x0 = left + n * step + step * 0.2
        x1 = left + (n + 1) * step - step * 0.2
        y = bottom - (bottom - top) * min(value, 100) / 100
        draw.rectangle((x0, y, x1, bottom), fill="#c23531")
        draw.text((x0, y - 20), f"{value:g}", fill="black", font=font)
        draw.text((x0, bottom + 8), name[:8], fill="black", font=font)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def docx(bulletin: Bulletin) -> bytes:
    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml.ns import qn
    from docx.shared import Cm, Pt

    document = Document()
    style = document.styles["Normal"]
    style.font.name = "SimSun"  # type: ignore[attr-defined]
    style.font.size = Pt(11)  # type: ignore[attr-defined]
    style.element.rPr.rFonts.set(qn("w:eastAsia"), "宋体")  # type: ignore[attr-defined]
    heading = document.add_heading(bulletin.title, level=0)
    heading.alignment = WD_ALIGN_PARAGRAPH.CENTER
    issued = document.add_paragraph(f"市文明办  {bulletin.issued}")
    issued.alignment = WD_ALIGN_PARAGRAPH.CENTER
    document.add_heading("一、总体情况", level=1)
    summary = document.add_table(rows=0, cols=2)
    summary.style = "Table Grid"
    for label, value in bulletin.summary:
        cells = summary.add_row().cells
        cells[0].text, cells[1].text = label, value
    document.add_heading("二、图表", level=1)
    document.add_picture(io.BytesIO(chart_png(bulletin)), width=Cm(16))
    document.add_heading("三、排名与名单", level=1)
    for table in bulletin.tables:
        document.add_heading(table.title, level=2)
        grid = document.add_table(rows=1, cols=len(table.header))
        grid.style = "Table Grid"
        for cell, text in zip(grid.rows[0].cells, table.header, strict=True):
            cell.text = text
            for run in cell.paragraphs[0].runs:
                run.bold = True
        for row in table.rows or [["（无）", *[""] * (len(table.header) - 1)]]:
            for cell, text in zip(grid.add_row().cells, row, strict=False):
                cell.text = text
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pdf(bulletin: Bulletin) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import cm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer
    from reportlab.platypus import Table as Grid

    if "CJK" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("CJK", str(cjk_font()), subfontIndex=0))
    title = ParagraphStyle("title", fontName="CJK", fontSize=18, leading=26, alignment=1)
    h1 = ParagraphStyle("h1", fontName="CJK", fontSize=14, leading=22, spaceBefore=10)
    h2 = ParagraphStyle("h2", fontName="CJK", fontSize=12, leading=18, spaceBefore=8)
    body = ParagraphStyle("body", fontName="CJK", fontSize=10, leading=14, wordWrap="CJK")
    centre = ParagraphStyle("centre", parent=body, alignment=1)
    grid_style = [
        ("FONTNAME", (0, 0), (-1, -1), "CJK"),
        ("FONTSIZE", (0, 0), (-1, -1), 9),
        ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
    ]

    def cell(text: str) -> Paragraph:
        return Paragraph(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"), body)

    story: list[Any] = [Paragraph(bulletin.title, title), Paragraph(f"市文明办  {bulletin.issued}", centre)]
    story += [Paragraph("一、总体情况", h1)]
    story.append(
        Grid(
            [[cell(k), cell(v)] for k, v in bulletin.summary],
            colWidths=[5 * cm, 5 * cm],
            style=grid_style[:3],
        )
    )
    story += [
        Paragraph("二、图表", h1),
        Image(io.BytesIO(chart_png(bulletin)), width=16 * cm, height=6.4 * cm),
    ]
    story.append(Paragraph("三、排名与名单", h1))
    for table in bulletin.tables:
        story.append(Paragraph(table.title, h2))
        rows = table.rows or [["（无）", *[""] * (len(table.header) - 1)]]
        story.append(
            Grid(
                [[cell(h) for h in table.header]] + [[cell(v) for v in r] for r in rows],
                repeatRows=1,
                style=grid_style,
            )
        )
        story.append(Spacer(1, 4))
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=A4, title=bulletin.title, leftMargin=2 * cm, rightMargin=2 * cm).build(
        story
    )
    return out.getvalue()
