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
  const shown = [];
  for (const a of acts) {
    const tr = document.createElement("tr");
    tr.id = "activity-" + a.activity_id;
    [a.activity_id, a.ended_at, a.project_id, a.volunteers, a.service_hours,
      a.complete_with ? "complete" : "not complete",
      a.ratings.map((r) => r.order_id + ": " + r.rating + "★").join("; ")].forEach((v) => cell(tr, v));
    const td = cell(tr, "");
    for (const e of a.evidence) shown.push(showEvidence(td, e));
    ab.appendChild(tr);
  }
  await Promise.all(shown);
}

// Where the evidence service's API is (the supervision service's setting), asked once.
let evidenceApi = null;
function evidenceUrl() {
  if (!evidenceApi) {
    evidenceApi = fetch("/dashboard/config.json").then((r) => (r.ok ? r.json() : {}))
      .then((c) => c.evidence_url || "", () => "");
  }
  return evidenceApi;
}

// One piece of evidence: what supervision knows of it, and the photo itself. The photo comes
// from the evidence service: a view link (valid for a while) asked for with the office's key
// from this page, so supervision neither calls the evidence service nor handles its files.
async function showEvidence(td, e) {
  const figure = document.createElement("figure");
  figure.id = "evidence-" + e.evidence_id;
  const caption = document.createElement("figcaption");
  const state = e.review ? e.review + " by the office" : e.flagged ? "flagged, awaiting review" : "";
  caption.textContent = e.evidence_id + " (" + [e.content_type, e.reported_at || e.stored_at, state]
    .filter((x) => x).join(", ") + ")";
  figure.appendChild(caption);
  td.appendChild(figure);
  const base = await evidenceUrl();
  if (!base) return;
  try {
    const r = await fetch(base + "/evidence/" + encodeURIComponent(e.evidence_id) + "/links",
      { headers: { Authorization: "Bearer " + $("key").value } });
    if (!r.ok) throw new Error("HTTP " + r.status);
    const links = await r.json();
    const open = document.createElement("a");
    open.href = links.original;
    open.target = "_blank";
    if (e.content_type.startsWith("image/")) {
      const img = document.createElement("img");
      img.alt = e.evidence_id;
      img.height = 120;
      await new Promise((done) => {
        img.onload = () => { img.dataset.loaded = String(img.naturalWidth > 0); done(); };
        img.onerror = () => { img.dataset.loaded = "false"; done(); };
        img.src = links.thumbnail || links.original;
        open.appendChild(img);
        figure.insertBefore(open, caption);
      });
    } else {
      open.textContent = "open";
      caption.appendChild(document.createTextNode(" "));
      caption.appendChild(open);
    }
  } catch (error) {
    caption.appendChild(document.createTextNode(" — no view link: " + error.message));
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
