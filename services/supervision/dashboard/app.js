// The office's workbench and the townships' to-do: plain JS calling the supervision API (no
// build step). Signed in by a form: the key goes once in a POST body and comes back as an
// HttpOnly session cookie; the page keeps it only in memory (for the evidence service's
// photo links) — never in the URL or the browser's storage.
"use strict";
const $ = (id) => document.getElementById(id);
const TZ = "Asia/Shanghai";

// ------------------------------------------------------------------ words (中文 first)
const WORDS = {
  zh: {
    title: "文明实践督查工作台", signin: "登录", signout: "退出登录", key: "访问密钥", period: "期间",
    township: "乡镇", kind: "类型", search: "搜索", searchHint: "单位名称或编号", show: "查询", all: "全部",
    bulletinDocx: "督查通报 Word", bulletinPdf: "督查通报 PDF", tabRanking: "排名", tabCharts: "图表",
    tabHeatmap: "活动覆盖", tabTodo: "本月待办", tabOffice: "市文明办操作", red: "红榜", black: "黑榜",
    rank: "名次", unitId: "单位编号", name: "单位名称", score: "得分", max: "满分", inKind: "类型内名次",
    inTownship: "乡镇内名次", list: "榜单", breakdownOf: "得分明细", rule: "评分项代码", item: "评分项",
    points: "得分", why: "说明", facts: "依据", activities: "活动与图文资料", activity: "活动",
    ended: "结束时间", project: "重点项目", volunteers: "志愿者", hours: "服务时长", evidenceComplete: "图文资料",
    ratings: "四单评价", evidence: "资料", chartTrend: "全市月度得分趋势", chartDistribution: "各乡镇得分分布",
    chartCompleteness: "各乡镇图文资料完整率", heatmapHint: "每格为当月完成的活动数；红色为无活动。点击乡镇名称展开或收起。",
    projectsTitle: "重点项目清单", template: "下载模板", year: "年度", preview: "预览", publish: "发布",
    projectId: "项目编号", theme: "主题", months: "月份", participants: "参与单位", minPhotos: "最少照片",
    reportDays: "报送时限", reviewsTitle: "图文资料审核（疑似重复照片成对显示）", inspectionTitle: "录入督查",
    inspectedOn: "督查日期", occurrences: "次数/分值", note: "说明", record: "提交", townshipsTitle: "乡镇接入",
    townshipId: "乡镇编号", addTownship: "新增乡镇", brokerUser: "消息总线账号", refusalsWaiting: "待取拒收消息", uploadPrefix: "上传目录", actions: "操作",
    rotate: "轮换密码与密钥", revoke: "撤销", confirmRevoke: (id) => `确定撤销乡镇 ${id} 的接入？其系统将无法再发送消息。`,
    secretOnce: (id) => `乡镇 ${id} 的接入信息（只显示这一次，请立即交给该乡镇并妥善保存）：`, revoked: (id) => `已撤销乡镇 ${id}`,
    secretLabels: { user: "消息总线账号", password: "密码", amqp_url: "消息总线地址（AMQP）", reply_queue: "回执队列", api_key: "API 密钥（加入 WMSJ_API_KEYS）", upload_prefix: "上传目录" },
    townshipsNeedKey: "重新登录后可管理乡镇接入", townshipsOff: "本页未配置登记服务地址，无法管理乡镇接入",
    units: "个单位", rules: "评分规则", veto: "一票否决", complete: "齐全", incomplete: "不齐全",
    flaggedWait: "疑似问题，待审核", accepted: "已认可", rejected: "已驳回", byOffice: "（市文明办）",
    inProgress: (p, at) => `${p} 尚未到公布时间：显示截至目前的得分；红榜、黑榜将于 ${at} 公布。`,
    noLists: "未到公布时间", none: "无", prev: "上一页", next: "下一页", page: (a, b, n) => `第 ${a}/${b} 页，共 ${n} 条`,
    cityLevel: "市直", mean: "平均得分", activeUnits: "开展活动单位数", activitiesDone: "完成活动",
    completeShare: "资料齐全", noPhotoLink: "照片暂不可见", open: "打开", signInForPhotos: "重新登录后可查看照片",
    todoWithout: "未完成活动的单位", todoIncomplete: "图文资料不齐全的活动", todoFlagged: "疑似问题待审核的资料",
    todoLate: "逾期报送", todoOrders: "临近升级的四单", ordersNeedKey: "重新登录后可查看四单订单", ordersOff: "本页未配置活动服务地址，四单订单暂不显示",
    orderStatus: { placed: "已点单", dispatched: "已派单", declined: "被拒单", escalated: "已升级" },
    orderLine: (o, unit, at, overdue) => `${o.order_id}（${o.need || ""}）：${o.status}，承接单位 ${unit}，${overdue ? "已超时，待升级" : "将于 " + at + " 升级"}`, nothing: "（无）",
    pairThis: "被标记的资料", pairOther: "另一处出现", exif: "拍摄时间（EXIF）", reported: "报送时间",
    verdictBoth: "两者均认可", verdictThis: "认可本条、驳回另一条", verdictOther: "认可另一条（原件）、驳回本条",
    verdictNeither: "两者均驳回", reviewState: "审核状态", notFlagged: "未标记（计分）", reason: "理由", submitVerdict: "提交审核意见", settled: "已审核",
    published: (v, n) => `已发布第 ${v} 版（${n} 个项目），等待活动服务确认…`, accepted_on_bus: (v) => `第 ${v} 版已生效`,
    keptVersion: (y, v) => (v ? `${y} 年现行清单：第 ${v} 版` : `${y} 年尚无清单`), refused: "被拒绝：",
    recorded: "督查已录入，得分已更新", signals: { "same-file": "同一文件重复使用", "near-duplicate": "近似照片", "taken-before-activity": "拍摄早于活动" },
  },
  en: {
    title: "Civilization practice supervision", signin: "Sign in", signout: "Sign out", key: "API key", period: "Period",
    township: "Township", kind: "Kind", search: "Search", searchHint: "unit name or id", show: "Show", all: "All",
    bulletinDocx: "Bulletin (Word)", bulletinPdf: "Bulletin (PDF)", tabRanking: "Ranking", tabCharts: "Charts",
    tabHeatmap: "Coverage", tabTodo: "To-do", tabOffice: "Office actions", red: "Red list", black: "Black list",
    rank: "#", unitId: "Unit id", name: "Name", score: "Score", max: "Max", inKind: "In kind",
    inTownship: "In township", list: "List", breakdownOf: "Breakdown", rule: "Rule", item: "Item",
    points: "Points", why: "Why", facts: "Facts", activities: "Activities and evidence", activity: "Activity",
    ended: "Ended", project: "Project", volunteers: "Volunteers", hours: "Hours", evidenceComplete: "Evidence",
    ratings: "四单 ratings", evidence: "Files", chartTrend: "City monthly trend", chartDistribution: "Scores by township",
    chartCompleteness: "Evidence completeness by township", heatmapHint: "Activities completed per month; red: none. Click a township to fold it.",
    projectsTitle: "Key project list", template: "Template", year: "Year", preview: "Preview", publish: "Publish",
    projectId: "Project", theme: "Theme", months: "Months", participants: "Participants", minPhotos: "Min photos",
    reportDays: "Report within", reviewsTitle: "Evidence review (flagged pairs)", inspectionTitle: "Record an inspection",
    inspectedOn: "Date", occurrences: "Count/points", note: "Note", record: "Record", townshipsTitle: "Townships",
    units: "units", rules: "rules", veto: "veto", complete: "complete", incomplete: "incomplete",
    flaggedWait: "flagged, awaiting review", accepted: "accepted", rejected: "rejected", byOffice: " by the office",
    inProgress: (p, at) => `${p} is in progress: scores so far; the red and black lists are due ${at}.`,
    noLists: "not due yet", none: "none", prev: "Prev", next: "Next", page: (a, b, n) => `page ${a}/${b}, ${n} rows`,
    cityLevel: "city level", mean: "Mean score", activeUnits: "Units with an activity", activitiesDone: "Activities",
    completeShare: "Complete evidence", noPhotoLink: "no view link", open: "open", signInForPhotos: "sign in again to see photos",
    todoWithout: "Units without a completed activity", todoIncomplete: "Activities with incomplete evidence", todoFlagged: "Flagged evidence awaiting review",
    todoLate: "Late reports", todoOrders: "四单 orders near escalation", ordersNeedKey: "Sign in again to see the 四单 orders", ordersOff: "The activities service's address is not configured: orders not shown",
    orderStatus: { placed: "placed", dispatched: "dispatched", declined: "declined", escalated: "escalated" },
    orderLine: (o, unit, at, overdue) => `${o.order_id} (${o.need || ""}): ${o.status}, held by ${unit}, ${overdue ? "overdue, escalating" : "escalates " + at}`,
    townshipId: "Township id", addTownship: "Add township", brokerUser: "Broker user", refusalsWaiting: "Refusals waiting", uploadPrefix: "Upload prefix", actions: "Actions",
    rotate: "Rotate password and key", revoke: "Revoke", confirmRevoke: (id) => `Revoke township ${id}? Its system will no longer be able to publish.`,
    secretOnce: (id) => `Township ${id}'s access (shown only this once: hand it over now and keep it safe):`, revoked: (id) => `Township ${id} revoked`,
    secretLabels: { user: "Broker user", password: "Password", amqp_url: "AMQP URL", reply_queue: "Reply queue", api_key: "API key (add to WMSJ_API_KEYS)", upload_prefix: "Upload prefix" },
    townshipsNeedKey: "Sign in again to manage townships", townshipsOff: "The registry's address is not configured: townships cannot be managed here", nothing: "(none)",
    pairThis: "Flagged", pairOther: "Other occurrence", exif: "Taken (EXIF)", reported: "Reported",
    verdictBoth: "Accept both", verdictThis: "Accept this, reject the other", verdictOther: "Accept the other (original), reject this",
    verdictNeither: "Reject both", reviewState: "Review", notFlagged: "not flagged (counts)", reason: "Reason", submitVerdict: "Submit verdict", settled: "settled",
    published: (v, n) => `Published version ${v} (${n} projects); waiting for the activities service…`, accepted_on_bus: (v) => `version ${v} in force`,
    keptVersion: (y, v) => (v ? `${y}: version ${v} in force` : `${y}: no list yet`), refused: "Refused: ",
    recorded: "Inspection recorded; score updated", signals: { "same-file": "same file", "near-duplicate": "near duplicate", "taken-before-activity": "taken before the activity" },
  },
};
const KINDS = {
  zh: { city: "市", township: "乡", town: "镇", street: "街道", village: "村", community: "社区", department: "市直单位",
    enterprise: "企业", school: "学校", institution: "事业单位", practice_centre: "文明实践中心", practice_institute: "文明实践所",
    practice_station: "文明实践站", general_team: "志愿服务总队", brigade: "志愿服务大队", squad: "志愿服务分队" },
  en: { city: "city", township: "township", town: "town", street: "street", village: "village", community: "community",
    department: "department", enterprise: "enterprise", school: "school", institution: "institution",
    practice_centre: "practice centre", practice_institute: "practice institute", practice_station: "practice station",
    general_team: "general team", brigade: "brigade", squad: "squad" },
};
const TOWNSHIP_KINDS = ["township", "town", "street"]; // 乡/镇/街道: each is its own township
let lang = "zh";
const t = (k) => WORDS[lang][k];
// The scoring rules explain each item in English words (the API's, for every client); the
// page says the same in Chinese.
const REASONS = [
  [/^VETO: /, "一票否决："], [/^no veto: /, "未触发否决："], [/^grade (C#|[ABC]): /, "等级 $1："],
  [/no activity completed in (\d{4}(?:-Q?\d+)?)/g, "$1 无已完成活动"],
  [/(\d+) activities completed in (\d{4}(?:-Q?\d+)?)/g, "$2 完成活动 $1 次"],
  [/ \(needs ([\d.]+)\): met/, "（要求 $1）：达标"], [/ \(needs ([\d.]+)\): not met/, "（要求 $1）：未达标"],
  [/no key project due in (\d{4}(?:-Q?\d+)?)/, "$1 无应开展的重点项目"],
  [/(\d+) of (\d+) key projects due in (\d{4}(?:-Q?\d+)?) done/, "$3 应开展重点项目 $2 项，完成 $1 项"],
  [/(\d+) of (\d+) completed activities have their evidence/, "已完成活动 $2 次，图文资料齐全 $1 次"],
  [/(\d+) activities reported late or not yet/, "逾期或未报送 $1 次"],
  [/([\d.]+) volunteer attendances/, "志愿者参与 $1 人次"], [/([\d.]+) service hours/, "服务时长 $1 小时"],
  [/no rated 四单 order/, "无四单评价"], [/(\d+) rated orders, mean ([\d.]+) of 5/, "四单评价 $1 条，平均 $2 星"],
  [/, counted as (C#|[ABC])/, "，按 $1 计"], [/(\d+) findings/, "督查发现问题 $1 次"],
  [/, −([\d.]+) each \(floor (-?[\d.]+)\)/, "，每次扣 $1 分（最低 $2）"],
  [/, \+([\d.]+) each beyond (\d+)/, "，超过 $2 次后每次加 $1 分"],
  [/not assessed by an inspector: default ([\d.]+)/, "未经督查评定：默认 $1"], [/not assessed/, "未评定"],
  [/set by inspection (\S+)/, "由督查 $1 评定"], [/^mean of /, "平均："],
];
// The evidence service's flag details, in Chinese.
const FLAG_DETAILS = [
  [/evidence '([^']+)' of activity '([^']+)' \(unit '([^']+)'\)/, "单位 $3 活动 $2 的资料 $1"],
  [/^the same file was already reported as (.*)$/, "同一文件已作为$1报送过"],
  [/^a near-duplicate \((\d+) of 64 bits differ\) of (.*)$/, "与$2高度相似（64 位中 $1 位不同）"],
  [/^the photo was taken at (\S+), (\d+) days before the activity started \((\S+)\)$/, "照片拍摄于 $1，早于活动开始（$3）$2 天"],
];
function flagText(text) {
  if (lang !== "zh") return text || "";
  return FLAG_DETAILS.reduce((s, [pattern, zh]) => s.replace(pattern, zh), text || "");
}

function reasonText(text) {
  if (lang !== "zh") return text;
  return REASONS.reduce((s, [pattern, zh]) => s.replace(pattern, zh), text || "");
}
const kindName = (k) => (k ? KINDS[lang][k] || k : "");
function applyWords() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  document.querySelectorAll("[data-tp]").forEach((el) => { el.placeholder = t(el.dataset.tp); });
  $("lang").textContent = lang === "zh" ? "English" : "中文";
  document.title = t("title");
}

// ------------------------------------------------------------------ calling the API
let memoryKey = ""; // only for the evidence service's photo links; gone on reload
let caller = null;

const STATUS_ZH = {
  400: "请求有误", 401: "未登录或密钥无效，请重新登录", 403: "无权限执行此操作", 404: "未找到",
  413: "文件过大", 422: "参数有误", 503: "服务暂不可用", 500: "服务器内部错误",
};
class ApiError extends Error {
  constructor(status, detail) {
    const base = STATUS_ZH[status] || "请求失败（HTTP " + status + "）";
    let extra = "";
    if (detail && typeof detail === "object" && !Array.isArray(detail)) {
      extra = (detail.reason || "") + ((detail.errors || []).map((e) => "；" + e.location + "：" + e.message).join(""));
    } else if (Array.isArray(detail)) {
      extra = detail.map((e) => (e.loc || []).slice(1).join(".") + "：" + e.msg).join("；");
    } else if (typeof detail === "string") {
      extra = detail;
    }
    super(base + (extra ? "：" + extra : ""));
    this.status = status;
  }
}
async function call(path, options = {}) {
  const r = await fetch(path, { credentials: "same-origin", ...options });
  if (!r.ok) {
    let detail = null;
    try { detail = (await r.json()).detail; } catch (_) { /* not JSON */ }
    if (r.status === 401 && caller) showSignIn();
    throw new ApiError(r.status, detail);
  }
  return r;
}
const api = async (path, options) => (await call(path, options)).json();
const q = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined)).toString();

function fail(error, where) {
  (where || $("error")).textContent = error.message;
}

// Downloads: fetched with the session; a refusal is shown, never saved as the file.
async function download(path, filename) {
  $("error").textContent = "";
  try {
    const blob = await (await call(path)).blob();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = filename;
    link.id = "last-download";
    document.body.appendChild(link);
    link.click();
    link.remove();
  } catch (error) {
    fail(error);
  }
}

// ------------------------------------------------------------------ helpers
const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { timeZone: TZ, hour12: false }) : "");
function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}
function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}
function thisMonth() {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: TZ, year: "numeric", month: "2-digit" }).formatToParts(new Date());
  return parts.find((p) => p.type === "year").value + "-" + parts.find((p) => p.type === "month").value;
}
const charts = {};
function chart(id) {
  if (typeof echarts === "undefined") return null;
  if (!charts[id]) {
    charts[id] = echarts.init($(id));
  }
  return charts[id];
}

// ------------------------------------------------------------------ state
const state = { rows: [], names: {}, sort: { key: "rank", dir: 1 }, page: 1, size: 20, unit: null };
const filters = () => ({ period: $("period").value.trim(), township: $("township").value, kind: $("kind").value, search: $("search").value.trim().toLowerCase() });

function filtered() {
  const f = filters();
  return state.rows.filter((r) =>
    (!f.township || r.township_id === f.township || r.unit_id === f.township) &&
    (!f.kind || r.kind === f.kind) &&
    (!f.search || (r.name || "").toLowerCase().includes(f.search) || r.unit_id.toLowerCase().includes(f.search)));
}

// ------------------------------------------------------------------ ranking
function showRanking() {
  const { key, dir } = state.sort;
  const rows = filtered().sort((a, b) => {
    const x = a[key] ?? "", y = b[key] ?? "";
    return (x < y ? -1 : x > y ? 1 : 0) * dir || a.rank - b.rank;
  });
  const pages = Math.max(1, Math.ceil(rows.length / state.size));
  state.page = Math.min(state.page, pages);
  const body = $("ranking").querySelector("tbody");
  body.replaceChildren();
  for (const r of rows.slice((state.page - 1) * state.size, state.page * state.size)) {
    const tr = document.createElement("tr");
    tr.id = "row-" + r.unit_id;
    if (r.list) tr.className = r.list;
    cell(tr, r.rank);
    const link = el("a", r.unit_id, { class: "link" });
    link.onclick = () => showDetail(r.unit_id);
    cell(tr, "").appendChild(link);
    const own = TOWNSHIP_KINDS.includes(r.kind) ? r.unit_id : r.township_id;
    const township = own ? (state.names[own] || own) : t("cityLevel");
    [r.name, kindName(r.kind), township, r.score, r.max_score, r.rank_in_kind, r.rank_in_township_id,
      r.vetoed ? t("veto") : r.list ? t(r.list) : ""].forEach((v) => cell(tr, v));
    tr.children[5].className = "score";
    body.appendChild(tr);
  }
  document.querySelectorAll("#ranking th[data-sort]").forEach((th) => {
    th.className = th.dataset.sort === key ? (dir > 0 ? "asc" : "desc") : "";
  });
  const pager = $("ranking-pager");
  pager.replaceChildren();
  const prev = el("button", t("prev"), { type: "button", id: "page-prev" });
  prev.disabled = state.page <= 1;
  prev.onclick = () => { state.page -= 1; showRanking(); };
  const next = el("button", t("next"), { type: "button", id: "page-next" });
  next.disabled = state.page >= pages;
  next.onclick = () => { state.page += 1; showRanking(); };
  pager.append(prev, el("span", t("page")(state.page, pages, rows.length)), next);
  // The lists, from the same rows (none while the month is in progress).
  for (const which of ["red", "black"]) {
    const ol = $(which + "-list");
    ol.replaceChildren();
    const due = state.rows.length === 0 || state.rows[0].due;
    ol.className = due ? "" : "not-due";
    if (!due) { ol.appendChild(el("li", t("noLists"))); continue; }
    rows.filter((r) => r.list === which).sort((a, b) => a.rank - b.rank)
      .forEach((r) => ol.appendChild(el("li", `${r.name || r.unit_id}（${r.score}）`)));
  }
}

document.querySelectorAll("#ranking th[data-sort]").forEach((th) => {
  th.onclick = () => {
    const key = th.dataset.sort;
    state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : key === "score" ? -1 : 1 };
    showRanking();
  };
});

function fillFilters() {
  const townships = new Map(), kinds = new Set();
  for (const r of state.rows) {
    const own = TOWNSHIP_KINDS.includes(r.kind) ? r.unit_id : r.township_id;
    if (own) townships.set(own, state.names[own] || own);
    if (r.kind) kinds.add(r.kind);
  }
  for (const [select, entries] of [["township", [...townships.entries()].sort()], ["kind", [...kinds].sort().map((k) => [k, kindName(k)])]]) {
    const keep = $(select).value;
    const first = $(select).options[0];
    $(select).replaceChildren(first);
    for (const [value, label] of entries) $(select).appendChild(el("option", label, { value }));
    $(select).value = entries.some(([v]) => v === keep) ? keep : "";
  }
}

// ------------------------------------------------------------------ a unit
async function showDetail(unitId) {
  state.unit = unitId;
  delete $("detail").dataset.loaded;
  const period = filters().period;
  const score = await api("/scores/" + encodeURIComponent(unitId) + "?" + q({ period }));
  $("detail").hidden = false;
  $("detail-unit").textContent = unitId;
  $("detail-name").textContent = score.name || unitId;
  $("detail-score").textContent = score.score + " / " + score.max_score;
  const body = $("breakdown").querySelector("tbody");
  body.replaceChildren();
  for (const i of score.breakdown) {
    const tr = document.createElement("tr");
    tr.className = "item-" + i.rule;
    [i.rule, i.label, i.points, i.max_points, reasonText(i.reason), i.facts.join(" ")].forEach((v) => cell(tr, v));
    body.appendChild(tr);
  }
  await showUnitChart(unitId, period.slice(0, 4));
  const acts = await api("/units/" + encodeURIComponent(unitId) + "/activities?" + q({ period }));
  const ab = $("activities").querySelector("tbody");
  ab.replaceChildren();
  const shown = [];
  for (const a of acts) {
    const tr = document.createElement("tr");
    tr.id = "activity-" + a.activity_id;
    [a.activity_id, fmtTime(a.ended_at), a.project_id, a.volunteers, a.service_hours,
      a.complete_with ? t("complete") : t("incomplete"),
      a.ratings.map((r) => r.order_id + "：" + r.rating + "★").join("；")].forEach((v) => cell(tr, v));
    const td = cell(tr, "");
    for (const e of a.evidence) shown.push(showEvidence(td, e));
    ab.appendChild(tr);
  }
  await Promise.all(shown);
  $("detail").dataset.loaded = unitId; // drawn, photos included
  $("detail").scrollIntoView();
}

// A unit's year: its monthly score, stacked by item, so a lost point shows where it went.
async function showUnitChart(unitId, year) {
  const history = await api("/units/" + encodeURIComponent(unitId) + "/history");
  const months = Array.from({ length: 12 }, (_, i) => year + "-" + String(i + 1).padStart(2, "0"));
  const byMonth = Object.fromEntries(history.filter((s) => months.includes(s.period)).map((s) => [s.period, s]));
  const items = new Map();
  for (const s of Object.values(byMonth)) for (const i of s.items) if (!i.bonus && i.max_points > 0) items.set(i.rule, i.label);
  const series = [...items.entries()].map(([rule, label]) => ({
    name: label, type: "bar", stack: "items",
    data: months.map((m) => { const s = byMonth[m]; const i = s && s.items.find((x) => x.rule === rule); return i ? i.points : 0; }),
  }));
  series.push({ name: t("score"), type: "line", data: months.map((m) => (byMonth[m] ? byMonth[m].score : null)) });
  const c = chart("chart-unit");
  if (c) c.setOption({ animation: false, tooltip: { trigger: "axis" }, legend: { top: 0 }, grid: { top: 60 }, xAxis: { type: "category", data: months.map((m) => m.slice(5) + (lang === "zh" ? "月" : "")) }, yAxis: { type: "value", min: 0, max: 110 }, series }, true); // no animation: captured and printed as drawn
  $("chart-unit").dataset.ready = String(series.length);
}

// The other services' APIs the page reads straight from the browser, with the key held in
// memory (supervision calls no other service): evidence (photo links), activities (open
// 四单 orders), the registry (townships).
let serviceUrls = null;
function serviceUrl(name) {
  if (!serviceUrls) {
    serviceUrls = fetch("/dashboard/config.json").then((r) => (r.ok ? r.json() : {}), () => ({}));
  }
  return serviceUrls.then((c) => c[name + "_url"] || "");
}
async function serviceCall(name, path, options = {}) {
  const base = await serviceUrl(name);
  if (!base || !memoryKey) return null;
  const r = await fetch(base + path, { ...options, headers: { Authorization: "Bearer " + memoryKey, ...(options.headers || {}) } });
  if (!r.ok) {
    let detail = null;
    try { detail = (await r.json()).detail; } catch (_) { /* not JSON */ }
    throw new ApiError(r.status, detail);
  }
  return r.status === 204 ? {} : r.json();
}
const evidenceCall = (path) => serviceCall("evidence", path);

// One piece of evidence and its photo: a view link asked for from the evidence service
// with the key held in memory, so supervision neither calls that service nor handles files.
async function showEvidence(td, e) {
  const figure = el("figure", null, { id: "evidence-" + e.evidence_id });
  const caption = document.createElement("figcaption");
  const state = e.review ? t(e.review) + t("byOffice") : e.flagged ? t("flaggedWait") : "";
  caption.textContent = e.evidence_id + "（" + [e.content_type, fmtTime(e.reported_at || e.stored_at), state].filter((x) => x).join("，") + "）";
  figure.appendChild(caption);
  td.appendChild(figure);
  try {
    const links = await evidenceCall("/evidence/" + encodeURIComponent(e.evidence_id) + "/links");
    if (!links) { if (!memoryKey) caption.appendChild(document.createTextNode(" " + t("signInForPhotos"))); return; }
    const open = el("a", null, { href: links.original, target: "_blank", rel: "noopener" });
    if (e.content_type.startsWith("image/")) {
      const img = el("img", null, { alt: e.evidence_id, height: "120" });
      await new Promise((done) => {
        img.onload = () => { img.dataset.loaded = String(img.naturalWidth > 0); done(); };
        img.onerror = () => { img.dataset.loaded = "false"; done(); };
        img.src = links.thumbnail || links.original;
        open.appendChild(img);
        figure.insertBefore(open, caption);
      });
    } else {
      open.textContent = t("open");
      caption.append(" ", open);
    }
  } catch (error) {
    caption.appendChild(document.createTextNode(" — " + t("noPhotoLink") + "：" + error.message));
  }
}

// ------------------------------------------------------------------ charts
async function showCharts() {
  const { period, township } = filters();
  const year = period.slice(0, 4);
  const [trend, dist, comp] = await Promise.all([
    api("/charts/trend?" + q({ year, township_id: township })),
    api("/charts/distribution?" + q({ period })),
    api("/charts/completeness?" + q({ period })),
  ]);
  const months = trend.months.map((m) => m.slice(5) + (lang === "zh" ? "月" : ""));
  let c = chart("chart-trend");
  if (c) c.setOption({ animation: false,
    tooltip: { trigger: "axis" }, legend: { top: 0 }, xAxis: { type: "category", data: months },
    yAxis: [{ type: "value", name: t("mean"), min: 0, max: 100 }, { type: "value", name: t("activeUnits"), minInterval: 1 }],
    series: [{ name: t("mean"), type: "line", data: trend.mean }, { name: t("activeUnits"), type: "bar", yAxisIndex: 1, data: trend.active }],
  }, true);
  c = chart("chart-distribution");
  if (c) {
    const bands = ["<60", "60-79", "80-89", "≥90"];
    c.setOption({ animation: false,
      tooltip: { trigger: "axis" }, legend: { top: 0 }, xAxis: { type: "category", data: dist.map((d) => d.name) },
      yAxis: [{ type: "value", name: t("units"), minInterval: 1 }, { type: "value", name: t("mean"), min: 0, max: 100 }],
      series: bands.map((b) => ({ name: b, type: "bar", stack: "bands", data: dist.map((d) => d.bands[b]) }))
        .concat([{ name: t("mean"), type: "scatter", symbolSize: 12, data: dist.map((d) => d.mean), yAxisIndex: 1 }]),
    }, true);
  }
  c = chart("chart-completeness");
  if (c) c.setOption({ animation: false,
    tooltip: { trigger: "axis" }, legend: { top: 0 }, xAxis: { type: "category", data: comp.map((d) => d.name) },
    yAxis: { type: "value", minInterval: 1 },
    series: [{ name: t("activitiesDone"), type: "bar", data: comp.map((d) => d.activities) },
      { name: t("completeShare"), type: "bar", data: comp.map((d) => d.complete) }],
  }, true);
  $("chart-trend").dataset.ready = "1";
}

// ------------------------------------------------------------------ heatmap: grouped by township
async function showHeatmap() {
  const { period } = filters();
  const map = await api("/heatmap?" + q({ year: period.slice(0, 4) }));
  const f = filters();
  const groups = new Map();
  for (const [unit, counts] of Object.entries(map.units)) {
    const info = map.info[unit] || {};
    if (f.kind && info.kind !== f.kind) continue;
    if (f.search && !((info.name || "").toLowerCase().includes(f.search) || unit.toLowerCase().includes(f.search))) continue;
    const township = TOWNSHIP_KINDS.includes(info.kind) ? unit : info.township_id || "";
    if (f.township && township !== f.township) continue;
    if (!groups.has(township)) groups.set(township, []);
    groups.get(township).push([unit, info, counts]);
  }
  const root = $("heatmap");
  root.replaceChildren();
  for (const [township, units] of [...groups.entries()].sort()) {
    const details = el("details", null, { id: "heat-" + (township || "city") });
    details.open = groups.size <= 3;
    const idle = units.filter(([, , c]) => c.every((n) => n === 0)).length;
    details.appendChild(el("summary", `${township ? state.names[township] || map.info[township]?.name || township : t("cityLevel")}（${units.length}，${lang === "zh" ? "全年无活动" : "no activity"} ${idle}）`));
    const table = el("table");
    const head = document.createElement("tr");
    [t("name"), t("kind")].forEach((h) => head.appendChild(el("th", h)));
    map.months.forEach((m) => head.appendChild(el("th", m.slice(5))));
    table.appendChild(el("thead")).appendChild(head);
    const body = table.appendChild(el("tbody"));
    for (const [unit, info, counts] of units.sort((a, b) => (a[1].name || a[0]).localeCompare(b[1].name || b[0], "zh"))) {
      const tr = el("tr", null, { id: "heat-row-" + unit });
      const name = el("a", info.name || unit, { class: "link", title: unit });
      name.onclick = () => { switchTab("ranking-tab"); showDetail(unit); };
      cell(tr, "").appendChild(name);
      cell(tr, kindName(info.kind));
      for (const n of counts) cell(tr, n, "cell " + (n === 0 ? "zero" : n === 1 ? "one" : "many"));
      body.appendChild(tr);
    }
    details.appendChild(table);
    root.appendChild(details);
  }
}

// ------------------------------------------------------------------ to-do
async function showTodo() {
  const { period, township } = filters();
  const todo = await api("/todo?" + q({ period, township_id: caller.role === "office" ? township : "" }));
  const root = $("todo");
  root.replaceChildren();
  const section = (id, title, items, line) => {
    const box = el("section", null, { id });
    box.appendChild(el("h3", `${title}（${items ? items.length : "—"}）`));
    const ul = box.appendChild(el("ul"));
    if (items && items.length === 0) ul.appendChild(el("li", t("nothing")));
    for (const item of items || []) ul.appendChild(el("li", line(item)));
    root.appendChild(box);
  };
  section("todo-without", t("todoWithout"), todo.without_activity, (u) => `${u.name || u.unit_id}（${kindName(u.kind)}）`);
  section("todo-incomplete", t("todoIncomplete"), todo.incomplete_evidence, (a) => `${a.name}：${a.activity_id} — ${a.missing.join("，")}`);
  section("todo-flagged", t("todoFlagged"), todo.flagged_evidence, (e) => `${e.name}：${e.evidence_id}（${e.activity_id}）`);
  section("todo-late", t("todoLate"), todo.late_reports, (a) => `${a.name}：${a.activity_id}，${lang === "zh" ? "截止" : "due"} ${fmtTime(a.deadline)}`);
  // 四单 orders are the activities service's: its open ones the caller's key sees, the
  // soonest to escalate first.
  let orders = null, why = "";
  try {
    orders = await serviceCall("activities", "/orders?open=true");
    if (orders === null) why = (await serviceUrl("activities")) ? t("ordersNeedKey") : t("ordersOff");
    else if (caller.role === "office" && township) {
      // The office filtered to one township: the orders held by or placed by its units.
      const theirs = new Set(state.rows.filter((r) => r.township_id === township || r.unit_id === township).map((r) => r.unit_id));
      orders = orders.filter((o) => [o.handler_id, o.requester_id, o.team_id].some((u) => theirs.has(u)));
    }
  } catch (error) {
    why = error.message;
  }
  section("todo-orders", t("todoOrders"), orders, (o) => t("orderLine")(
    { ...o, status: t("orderStatus")[o.status] || o.status },
    state.names[o.handler_id] || o.handler_id || "-", o.accept_due_at ? fmtTime(o.accept_due_at) : "-", o.overdue));
  if (why) $("todo-orders").appendChild(el("p", why, { class: "hint" }));
}

// ------------------------------------------------------------------ office actions
async function showOffice() {
  if (!caller || caller.role !== "office") return;
  const year = $("projects-year").value || filters().period.slice(0, 4);
  $("projects-year").value = year;
  const kept = await api("/office/projects?" + q({ year }));
  showKept(year, kept);
  await showReviews();
  const rules = await api("/rules");
  const select = $("inspection-rule");
  if (!select.options.length) {
    for (const i of rules.items) {
      if ((i.measure === "findings" && i.mode === "deduction") || i.mode === "discretionary") {
        select.appendChild(el("option", i.label + (i.mode === "discretionary" ? `（0-${i.points}）` : `（−${i.per_occurrence}/次）`), { value: i.id, "data-mode": i.mode }));
      }
    }
    select.appendChild(el("option", "一票否决（严重问题）", { value: "serious_violation", "data-mode": "veto" }));
  }
  await showTownships();
}

// ------------------------------------------------------------------ townships (乡镇接入)
// The registry's office route, called from the browser with the office's key held in memory.
// A township's password and API key are shown once, after add or rotate, and kept nowhere.
async function showTownships() {
  const body = $("townships").querySelector("tbody");
  let listed = null;
  try {
    listed = await serviceCall("registry", "/townships");
  } catch (error) {
    fail(error, $("townships-status"));
    return;
  }
  body.replaceChildren();
  if (listed === null) {
    $("townships-status").textContent = (await serviceUrl("registry")) ? t("townshipsNeedKey") : t("townshipsOff");
    return;
  }
  for (const info of listed) {
    const tr = el("tr", null, { id: "township-" + info.township_id });
    cell(tr, info.township_id);
    cell(tr, info.user);
    cell(tr, info.refusals_waiting === null ? "-" : info.refusals_waiting);
    cell(tr, info.upload_prefix);
    const actions = cell(tr, "");
    const rotate = actions.appendChild(el("button", t("rotate"), { type: "button", class: "rotate" }));
    rotate.onclick = () => townshipAction(info.township_id, "/rotate", "POST");
    const revoke = actions.appendChild(el("button", t("revoke"), { type: "button", class: "revoke" }));
    revoke.onclick = () => { if (confirm(t("confirmRevoke")(info.township_id))) townshipAction(info.township_id, "", "DELETE"); };
    body.appendChild(tr);
  }
}

async function townshipAction(id, suffix, method) {
  $("townships-status").textContent = "";
  $("township-secret").hidden = true;
  $("township-secret").replaceChildren();
  try {
    const made = await serviceCall("registry", "/townships/" + encodeURIComponent(id) + suffix, { method });
    if (made === null) { $("townships-status").textContent = t("townshipsNeedKey"); return; }
    if (method === "DELETE") $("townships-status").textContent = t("revoked")(id);
    else showSecret(made);
    await showTownships();
  } catch (error) {
    fail(error, $("townships-status"));
  }
}

function showSecret(access) {
  const box = $("township-secret");
  box.appendChild(el("p", t("secretOnce")(access.township_id)));
  const dl = box.appendChild(el("dl"));
  for (const [k, v] of Object.entries({ user: access.user, password: access.password, amqp_url: access.amqp_url, reply_queue: access.reply_queue, api_key: access.api_key, upload_prefix: access.upload_prefix })) {
    dl.appendChild(el("dt", t("secretLabels")[k]));
    dl.appendChild(el("dd", v, { id: "secret-" + k }));
  }
  box.hidden = false;
}

$("townships-form").onsubmit = (e) => {
  e.preventDefault();
  const id = $("township-new").value.trim();
  if (id) townshipAction(id, "", "POST").then(() => { $("township-new").value = ""; });
};

function showKept(year, kept) {
  const versions = (kept.versions || []).map((v) => (lang === "zh" ? `第 ${v.version} 版（${v.projects} 项）` : `v${v.version} (${v.projects})`));
  $("projects-kept").textContent = t("keptVersion")(year, kept.version) + (versions.length ? (lang === "zh" ? "；历史版本：" : "; versions: ") + versions.join("，") : "");
  $("projects-kept").dataset.version = kept.version || "";
}

function projectFile() {
  const file = $("projects-file").files[0];
  if (!file) throw new Error(lang === "zh" ? "请先选择 XLSX 文件" : "choose an XLSX file first");
  const form = new FormData();
  form.append("file", file);
  return form;
}

$("projects-template").onclick = (e) => { e.preventDefault(); download("/office/projects/template.xlsx", "重点项目清单模板.xlsx"); };
$("projects-preview-button").onclick = async () => {
  $("projects-status").textContent = "";
  $("projects-publish-button").disabled = true;
  try {
    const preview = await api("/office/projects/preview", { method: "POST", body: projectFile() });
    const body = $("projects-preview").querySelector("tbody");
    body.replaceChildren();
    for (const p of preview.projects) {
      const tr = el("tr", null, { id: "project-" + p.project_id });
      [p.project_id, p.theme, p.months.join(","), [...p.lead_unit_ids, ...p.participant_kinds.map(kindName), ...p.participant_unit_ids].join("，"),
        p.evidence.min_photos, p.evidence.report_within_days + (lang === "zh" ? " 天" : " d")].forEach((v) => cell(tr, v));
      body.appendChild(tr);
    }
    $("projects-publish-button").disabled = false;
  } catch (error) {
    fail(error, $("projects-status"));
  }
};
$("projects-publish-button").onclick = async () => {
  try {
    const form = projectFile();
    const year = $("projects-year").value;
    form.append("year", year);
    const done = await api("/office/projects", { method: "POST", body: form });
    $("projects-status").textContent = t("published")(done.version, done.projects);
    $("projects-publish-button").disabled = true;
    for (let i = 0; i < 120; i++) { // the accepted list comes back on the bus
      await new Promise((r) => setTimeout(r, 500));
      const outcome = await api("/office/outcomes/" + encodeURIComponent(done.event_id));
      if (outcome.refused) { $("projects-status").textContent = t("refused") + outcome.refused.reason; return; }
      const kept = await api("/office/projects?" + q({ year }));
      if (kept.version >= done.version) {
        $("projects-status").textContent = t("accepted_on_bus")(kept.version);
        showKept(year, kept);
        return;
      }
    }
  } catch (error) {
    fail(error, $("projects-status"));
  }
};

async function showReviews() {
  const pairs = await api("/office/reviews");
  const root = $("reviews");
  root.replaceChildren();
  if (!pairs.length) root.appendChild(el("p", t("nothing")));
  for (const pair of pairs) {
    const box = el("div", null, { class: "pair" + (pair.settled ? " settled" : ""), id: "pair-" + pair.this.evidence_id });
    box.appendChild(el("div", `${t("signals")[pair.signal] || pair.signal || ""}：${flagText(pair.detail)}`, { class: "verdict" }));
    for (const [label, side] of [[t("pairThis"), pair.this], [t("pairOther"), pair.other]]) {
      const div = el("div", null, { class: "side" });
      div.appendChild(el("h4", label));
      if (!side) { div.appendChild(el("p", t("none"))); box.appendChild(div); continue; }
      const dl = el("ul");
      [[t("name"), `${side.unit_name || side.unit_id}（${side.unit_id}）`], [t("activity"), side.activity_id], [t("evidence"), side.evidence_id],
        [t("reported"), fmtTime(side.reported_at)], [t("exif"), "…"],
        [t("reviewState"), side.review ? t(side.review) : side.flagged ? t("flaggedWait") : t("notFlagged")]]
        .forEach(([k, v]) => dl.appendChild(el("li", `${k}：${v}`)));
      div.appendChild(dl);
      const exif = dl.children[4];
      evidenceCall("/evidence/" + encodeURIComponent(side.evidence_id)).then((doc) => {
        exif.textContent = `${t("exif")}：${doc && doc.taken_at ? fmtTime(doc.taken_at) : "—"}`;
      }, () => { exif.textContent = `${t("exif")}：—`; });
      const figure = el("div");
      div.appendChild(figure);
      showEvidence(figure, { evidence_id: side.evidence_id, content_type: side.content_type || "", reported_at: side.reported_at, review: side.review, flagged: side.flagged });
      box.appendChild(div);
    }
    if (!pair.settled) {
      const form = el("form", null, { class: "verdict" });
      const select = el("select", null, { name: "verdict" });
      for (const v of ["both", "this", "other", "neither"]) select.appendChild(el("option", t("verdict" + v[0].toUpperCase() + v.slice(1)), { value: v }));
      const reason = el("input", null, { name: "reason", size: "30", placeholder: t("reason") });
      const submit = el("button", t("submitVerdict"), { type: "submit" });
      const status = el("span");
      form.append(select, " ", reason, " ", submit, " ", status);
      form.onsubmit = async (e) => {
        e.preventDefault();
        try {
          await api("/office/reviews", {
            method: "POST", headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ evidence_id: pair.this.evidence_id, other_evidence_id: pair.other ? pair.other.evidence_id : null, verdict: select.value, reason: reason.value }),
          });
          status.textContent = t("settled");
          submit.disabled = true;
        } catch (error) {
          status.textContent = error.message;
        }
      };
      box.appendChild(form);
    } else {
      box.appendChild(el("div", t("settled"), { class: "verdict" }));
    }
    root.appendChild(box);
  }
}

$("inspection-form").onsubmit = async (e) => {
  e.preventDefault();
  const option = $("inspection-rule").selectedOptions[0];
  const date = $("inspection-date").value;
  const at = new Date(date + "T10:00:00+08:00");
  const count = Number($("inspection-count").value || 1);
  const body = {
    inspection_id: "web-" + Date.now().toString(36), unit_id: $("inspection-unit").value.trim(),
    period: date.slice(0, 7), inspected_at: at.toISOString(), inspector: "市文明办", findings: [], assessments: [],
  };
  if (option.dataset.mode === "discretionary") body.assessments.push({ rule: option.value, points: count });
  else body.findings.push({ rule: option.value, note: $("inspection-note").value, occurrences: Math.max(1, Math.round(count)), veto: option.dataset.mode === "veto" });
  try {
    await api("/inspections", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    $("inspection-status").textContent = t("recorded");
    await load();
  } catch (error) {
    fail(error, $("inspection-status"));
  }
};

// ------------------------------------------------------------------ tabs, loading, sign-in
let currentTab = "ranking-tab";
async function switchTab(id) {
  currentTab = id;
  document.querySelectorAll(".tab").forEach((s) => { s.hidden = s.id !== id; });
  document.querySelectorAll("#tabs button").forEach((b) => { b.className = b.dataset.tab === id ? "on" : ""; });
  $("error").textContent = "";
  try {
    if (id === "charts-tab") { await showCharts(); Object.values(charts).forEach((c) => c.resize()); }
    if (id === "heatmap-tab") await showHeatmap();
    if (id === "todo-tab") await showTodo();
    if (id === "office-tab") await showOffice();
  } catch (error) {
    fail(error);
  }
}
document.querySelectorAll("#tabs button").forEach((b) => { b.onclick = () => switchTab(b.dataset.tab); });

async function load() {
  const { period } = filters();
  $("error").textContent = "";
  $("status").textContent = "…";
  try {
    state.rows = await api("/scores?" + q({ period }));
    state.names = Object.fromEntries(state.rows.map((r) => [r.unit_id, r.name]));
    fillFilters();
    showRanking();
    const due = state.rows.length === 0 || state.rows[0].due;
    $("progress").hidden = due;
    if (!due) {
      const lists = await api("/lists?" + q({ period }));
      $("progress").textContent = t("inProgress")(period, fmtTime(lists.due_at));
    }
    $("status").textContent = `${state.rows.length} ${t("units")}，${t("rules")} ${state.rows[0] ? state.rows[0].rules_version : "-"}`;
    if (state.unit) await showDetail(state.unit);
    if (currentTab !== "ranking-tab") await switchTab(currentTab);
  } catch (error) {
    $("status").textContent = "";
    fail(error);
  }
}

$("controls").onsubmit = (e) => { e.preventDefault(); state.page = 1; load(); };
["township", "kind"].forEach((id) => { $(id).onchange = () => { state.page = 1; showRanking(); if (currentTab !== "ranking-tab") switchTab(currentTab); }; });
$("search").oninput = () => { state.page = 1; showRanking(); };
$("csv").onclick = () => download("/exports/scores.csv?" + q({ period: filters().period }), `scores-${filters().period}.csv`);
$("xlsx").onclick = () => download("/exports/scores.xlsx?" + q({ period: filters().period }), `scores-${filters().period}.xlsx`);
$("bulletin-docx").onclick = () => download(`/bulletins/${encodeURIComponent(filters().period)}.docx`, `督查通报-${filters().period}.docx`);
$("bulletin-pdf").onclick = () => download(`/bulletins/${encodeURIComponent(filters().period)}.pdf`, `督查通报-${filters().period}.pdf`);
$("lang").onclick = () => { lang = lang === "zh" ? "en" : "zh"; applyWords(); if (caller) { fillFilters(); showRanking(); switchTab(currentTab); } };

function showSignIn() {
  caller = null;
  $("main").hidden = true;
  $("signin").hidden = false;
  $("signout").hidden = true;
  $("who").textContent = "";
}
async function signedIn(who) {
  caller = who;
  $("signin").hidden = true;
  $("main").hidden = false;
  $("signout").hidden = false;
  $("who").textContent = who.role === "office" ? "市文明办" : (lang === "zh" ? "乡镇 " : "township ") + who.township_id;
  $("office-tab-button").hidden = who.role !== "office";
  if (who.role !== "office") {
    $("township").value = "";
    currentTab = "todo-tab";
  }
  await load();
  if (who.role !== "office") $("who").textContent = (lang === "zh" ? "乡镇 " : "township ") + (state.names[who.township_id] || who.township_id);
  await switchTab(currentTab);
}
$("signin-form").onsubmit = async (e) => {
  e.preventDefault();
  $("signin-error").textContent = "";
  const key = $("signin-key").value;
  try {
    const who = await api("/dashboard/session", { method: "POST", body: new URLSearchParams({ key }) });
    memoryKey = key;
    $("signin-key").value = "";
    await signedIn(who);
  } catch (error) {
    $("signin-error").textContent = error.status === 401 ? (lang === "zh" ? "密钥无效" : "unknown key") : error.message;
  }
};
$("signout").onclick = async () => {
  memoryKey = "";
  await fetch("/dashboard/session", { method: "DELETE", credentials: "same-origin" });
  showSignIn();
};

async function start() {
  applyWords();
  $("period").value = thisMonth();
  $("inspection-date").value = new Intl.DateTimeFormat("en-CA", { timeZone: TZ }).format(new Date()); // YYYY-MM-DD, city time
  const r = await fetch("/dashboard/whoami", { credentials: "same-origin" });
  if (r.ok) await signedIn(await r.json());
  else showSignIn();
}
start();
