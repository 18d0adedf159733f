// The office's dashboard: plain JS calling the supervision API (no build step).
"use strict";
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
$("key").value = params.get("key") || localStorage.getItem("wmsj-key") || "";
$("period").value = params.get("period") || new Date().toISOString().slice(0, 7);

function api(path) {
  return fetch(path, { headers: { Authorization: "Bearer " + $("key").value } }).then((r) => {
    if (!r.ok) throw new Error(path + ": " + r.status);
    return r.json();
  });
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

async function showRanking(period) {
  const rows = await api("/scores?period=" + encodeURIComponent(period));
  const body = $("ranking").querySelector("tbody");
  body.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.id = "row-" + r.unit_id;
    if (r.list) tr.className = r.list;
    cell(tr, r.rank);
    const link = document.createElement("a");
    link.textContent = r.unit_id;
    link.onclick = () => showDetail(r.unit_id, period);
    cell(tr, "").appendChild(link);
    [r.name, r.kind, r.township_id, r.score, r.max_score, r.rank_in_kind, r.rank_in_township,
      r.vetoed ? "veto" : r.list].forEach((v) => cell(tr, v));
    tr.children[5].className = "score";
    body.appendChild(tr);
  }
  $("status").textContent = rows.length + " units, rules " + (rows[0] ? rows[0].rules_version : "-");
  return rows;
}

async function showDetail(unitId, period) {
  const score = await api("/scores/" + encodeURIComponent(unitId) + "?period=" + encodeURIComponent(period));
  $("detail").hidden = false;
  $("detail-unit").textContent = unitId;
  $("detail-score").textContent = score.score + " / " + score.max_score;
  const body = $("breakdown").querySelector("tbody");
  body.replaceChildren();
  for (const i of score.breakdown) {
    const tr = document.createElement("tr");
    tr.className = "item-" + i.rule;
    [i.rule, i.label, i.points, i.max_points, i.reason, i.facts.join(" ")].forEach((v) => cell(tr, v));
    body.appendChild(tr);
  }
  const acts = await api("/units/" + encodeURIComponent(unitId) + "/activities?period=" + encodeURIComponent(period));
  const ab = $("activities").querySelector("tbody");
  ab.replaceChildren();
  for (const a of acts) {
    const tr = document.createElement("tr");
    [a.activity_id, a.ended_at, a.project_id, a.volunteers, a.service_hours,
      a.evidence.map((e) => e.evidence_id + " (" + e.content_type + ", " + e.stored_at + ")").join("; ")]
      .forEach((v) => cell(tr, v));
    ab.appendChild(tr);
  }
}

async function showHeatmap(year) {
  const map = await api("/heatmap?year=" + year);
  const head = document.createElement("tr");
  cell(head, "unit");
  map.months.forEach((m) => cell(head, m.slice(5)));
  $("heatmap").querySelector("thead").replaceChildren(head);
  const body = $("heatmap").querySelector("tbody");
  body.replaceChildren();
  for (const [unit, counts] of Object.entries(map.units)) {
    const tr = document.createElement("tr");
    cell(tr, unit);
    for (const n of counts) {
      const td = cell(tr, n, "cell");
      td.style.background = n === 0 ? "#f4cccc" : n === 1 ? "#d9ead3" : "#93c47d";
    }
    body.appendChild(tr);
  }
}

async function show() {
  const period = $("period").value;
  localStorage.setItem("wmsj-key", $("key").value);
  for (const kind of ["csv", "xlsx"]) {
    // The exports need the key too: fetch them and hand the file to the browser.
    $(kind).onclick = async () => {
      const r = await fetch("/exports/scores." + kind + "?period=" + encodeURIComponent(period),
        { headers: { Authorization: "Bearer " + $("key").value } });
      const link = document.createElement("a");
      link.href = URL.createObjectURL(await r.blob());
      link.download = "scores-" + period + "." + kind;
      link.click();
    };
  }
  try {
    await showRanking(period);
    await showHeatmap(period.slice(0, 4));
    const unit = params.get("unit");
    if (unit) await showDetail(unit, period);
  } catch (error) {
    $("status").textContent = "error: " + error.message;
  }
}

$("controls").onsubmit = (e) => { e.preventDefault(); show(); };
show();
