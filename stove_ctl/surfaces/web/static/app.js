// The kitchen page: plain JS, no build step, no external assets (docs/WEB.md).
"use strict";

const WORDS = {
  en: {
    title: "Kitchen", offline: "offline", live: "live", token: "Token", sign_in: "Sign in",
    signed_in: "Signed in", sign_out: "sign out", wrong_token: "wrong token",
    all_off: "Everything off", timers: "Pending timers", shutoffs: "Shutoffs",
    events: "Event log", burner: "Burner", all: "all", off: "Shut off",
    in_min: (m) => `in ${m} min`, mode: "Mode", flame: "Flame", circuit: "Circuit",
    lock: "Lock", next_cut: "Next cut", last: "Last shutoff", unlock: "Unlock",
    cancel: "Cancel", no_timers: "No timers", no_shutoffs: "No shutoffs yet",
    sign_in_to: "sign in to cancel or unlock", none: "-", locked_by: (s) => `locked by ${s}`,
    ready: "ready", cutting: "cutting", locked: "locked", fault: "fault",
    lit: "lit", out: "out", unknown: "unknown", going_out: "going out",
    intact: "intact", cut: "cut", by: (s) => `by ${s}`, restored: "restored",
    done: "done", sent: "sending…", mv: "mV", need_sign_in: "Sign in with the page's token.",
    step: {
      timer_fired: "timer fired", command: "command", cut_commanded: "cut sent",
      cut_confirmed: "cut confirmed", flame_out_confirmed: "flame out",
      flame_relit: "relit", restore_commanded: "restore sent",
      restore_confirmed: "restored", lock: "locked", lock_reasserted: "lock again",
      unlock: "unlocked", fault: "fault", recovered: "recovered", alarm: "alarm",
    },
  },
  zh: {
    title: "厨房", offline: "离线", live: "实时", token: "令牌", sign_in: "登录",
    signed_in: "已登录", sign_out: "退出", wrong_token: "令牌不对",
    all_off: "全部关火", timers: "待执行的定时", shutoffs: "关火记录",
    events: "事件日志", burner: "灶眼", all: "全部", off: "关火",
    in_min: (m) => `${m} 分钟后关`, mode: "状态", flame: "火焰", circuit: "电路",
    lock: "锁定", next_cut: "下次关火", last: "上次关火", unlock: "解锁",
    cancel: "取消", no_timers: "没有定时", no_shutoffs: "还没有关火记录",
    sign_in_to: "登录后才能取消或解锁", none: "-", locked_by: (s) => `由 ${s} 锁定`,
    ready: "就绪", cutting: "正在关火", locked: "已锁定", fault: "故障",
    lit: "燃烧中", out: "已熄灭", unknown: "未知", going_out: "正在熄灭",
    intact: "接通", cut: "断开", by: (s) => `来自 ${s}`, restored: "已恢复",
    done: "完成", sent: "发送中…", mv: "毫伏", need_sign_in: "请用令牌登录。",
    step: {
      timer_fired: "定时触发", command: "命令", cut_commanded: "发出断开",
      cut_confirmed: "确认断开", flame_out_confirmed: "火已灭",
      flame_relit: "重新点燃", restore_commanded: "发出恢复",
      restore_confirmed: "已恢复", lock: "锁定", lock_reasserted: "再次锁定",
      unlock: "解锁", fault: "故障", recovered: "恢复正常", alarm: "警报",
    },
  },
};
const TIMELINE_KINDS = new Set(Object.keys(WORDS.en.step));
const $ = (id) => document.getElementById(id);
const page = { lang: "en", status: null, offset: 0, authed: false, filter: "", events: [] };

function chooseLanguage() {
  const saved = localStorage.getItem("stove-ctl-lang");
  if (saved === "en" || saved === "zh") return saved;
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
  for (const lang of wanted) {
    if (/^zh\b/i.test(lang)) return "zh";
    if (/^en\b/i.test(lang)) return "en";
  }
  return "en";
}
const t = (key, ...args) => {
  const word = WORDS[page.lang][key];
  return typeof word === "function" ? word(...args) : word === undefined ? key : word;
};
const stepName = (kind) => WORDS[page.lang].step[kind] || kind;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}
function svg(tag, attrs = {}, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Times in the daemon's zone, as the CLI shows them.
function clock(unix, seconds = true) {
  if (unix === null || unix === undefined) return t("none");
  const zone = page.status && page.status.timezone;
  const opts = { hour: "2-digit", minute: "2-digit", hour12: false };
  if (seconds) opts.second = "2-digit";
  try { return new Intl.DateTimeFormat(page.lang === "zh" ? "zh-CN" : "en-GB", { ...opts, timeZone: zone }).format(new Date(unix * 1000)); }
  catch (e) { return new Date(unix * 1000).toLocaleTimeString(); }
}
const nowServer = () => Date.now() / 1000 + page.offset;
function duration(ms) {
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
}

async function api(path, body) {
  const init = body === undefined ? { credentials: "same-origin" }
    : { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const res = await fetch(path, init);
  let data;
  try { data = await res.json(); } catch (e) { data = { ok: false, error: res.statusText }; }
  if (res.status === 401 && data.code === "not_local") showLogin(true);
  return data;
}

async function command(body, button) {
  const reply = $("reply");
  reply.className = "reply";
  reply.textContent = t("sent");
  if (button) button.disabled = true;
  const id = Math.random().toString(16).slice(2, 14);
  try {
    const data = await api("/api/command", { id, ts: nowServer(), ...body });
    reply.className = data.ok === false ? "reply bad" : "reply";
    reply.textContent = data.ok === false ? data.error : t("done");
    return data;
  } finally {
    if (button) button.disabled = false;
    refreshTimers();
  }
}

function showLogin(needed) {
  $("login-box").hidden = page.authed;
  $("signed-in").hidden = !page.authed;
  if (needed) {
    $("login-box").open = true;
    $("problem").hidden = false;
    $("problem").textContent = t("need_sign_in");
  }
}

// -- burners -----------------------------------------------------------------

function card(b) {
  const flame = b.going_out ? "going_out" : b.flame;
  const last = b.last_shutoff;
  const lastText = last ? `${clock(last.cut_at)} ${t("by", last.source || "?")}` : t("none");
  const lock = b.lock ? t("locked_by", b.lock.source || b.lock.owner || "?") : t("none");
  const next = b.next_cut ? clock(Date.parse(b.next_cut) / 1000, false) : t("none");
  const timerButtons = [10, 20, 30].map((m) => el("button", {
    type: "button", class: "small timer", "data-min": m,
    onclick: (e) => command({ action: "timer", burner: b.burner, in: m * 60 }, e.currentTarget),
  }, t("in_min", m)));
  return el("article", { class: "card", id: `card-${b.burner.replace("/", "-")}`, "data-burner": b.burner, "data-mode": b.mode },
    el("h3", {}, el("span", { class: "name" }, b.name || b.burner), el("span", { class: "mode" }, t(b.mode))),
    el("dl", {},
      el("dt", {}, t("flame")), el("dd", { class: `flame flame-${flame}` }, t(flame)),
      el("dt", {}, t("circuit")), el("dd", { class: "circuit" }, t(b.circuit)),
      el("dt", {}, t("lock")), el("dd", { class: "lock" }, lock),
      el("dt", {}, t("next_cut")), el("dd", { class: "next" }, next),
      el("dt", {}, t("last")), el("dd", { class: "last" }, lastText)),
    b.fault ? el("p", { class: "fault" }, b.fault) : null,
    el("button", { type: "button", class: "off big shutoff", onclick: (e) => command({ action: "shutoff", burner: b.burner }, e.currentTarget) }, t("off")),
    el("div", { class: "row" }, timerButtons),
    b.lock ? el("div", { class: "row" }, el("button", {
      type: "button", class: "small unlock", disabled: !page.authed, title: page.authed ? null : t("sign_in_to"),
      onclick: (e) => command({ action: "unlock", burner: b.burner }, e.currentTarget),
    }, t("unlock"))) : null);
}

function renderStatus(status) {
  page.status = status;
  if (typeof status.now === "number") page.offset = status.now - Date.now() / 1000;
  if (typeof status.authenticated === "boolean") page.authed = status.authenticated;
  const stores = ["event_store", "state_store", "timer_store"].map((k) => status[k]).filter((v) => v && v !== "ok");
  $("problem").hidden = stores.length === 0;
  if (stores.length) $("problem").textContent = stores.join("; ");
  $("burners").replaceChildren(...status.burners.map(card));
  const filter = $("filter");
  if (filter.options.length !== status.burners.length + 1) {
    filter.replaceChildren(el("option", { value: "" }, t("all")),
      ...status.burners.map((b) => el("option", { value: b.burner }, b.name || b.burner)));
    filter.value = page.filter;
  }
  showLogin(false);
}

// -- timers ------------------------------------------------------------------

let timersDue = null;
function refreshTimers() {
  clearTimeout(timersDue);
  timersDue = setTimeout(async () => {
    const data = await api("/api/timers");
    if (data.ok === false) return;
    const items = data.timers.map((tm) => el("li", { "data-timer": tm.id },
      el("span", {}, `${clock(Date.parse(tm.due) / 1000, false)} · ${tm.action} · ${tm.burners.join(", ")}`),
      tm.from_config ? null : el("button", {
        type: "button", class: "small cancel", disabled: !page.authed, title: page.authed ? null : t("sign_in_to"),
        onclick: (e) => command({ action: "cancel", timer: tm.id }, e.currentTarget),
      }, t("cancel"))));
    $("timers").replaceChildren(...(items.length ? items : [el("li", { class: "note" }, t("no_timers"))]));
  }, 150);
}

// -- shutoff timelines -------------------------------------------------------

function timeline(s) {
  // One row per step: what happened, when (after the first step), and how long it
  // took after the one before (a bar on a log scale: 1 ms to 30 s).
  const W = 320, ROW = 17, top = 4;
  const rows = s.steps.length;
  const plot = s.readings.length > 1 ? 70 : 0;
  const H = top + rows * ROW + (plot ? plot + 14 : 0) + 4;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "timeline", "data-burner": s.burner, "data-command": s.command_id, role: "img" });
  root.append(svg("title", {}, `${s.burner} ${s.command_id}`));
  let previous = s.steps[0].ts;
  s.steps.forEach((step, i) => {
    const y = top + i * ROW + 12;
    const gap = Math.max(0, (step.ts - previous) * 1000);
    previous = step.ts;
    const bar = i === 0 ? 0 : Math.max(2, Math.min(1, Math.log10(gap + 1) / Math.log10(30001)) * 90);
    const kind = step.kind === "fault" || step.kind === "alarm" ? "bad" : step.kind.endsWith("confirmed") ? "ok" : "";
    root.append(svg("circle", { cx: 6, cy: y - 4, r: 3.5, class: `bar ${kind}` }));
    root.append(svg("text", { x: 14, y }, stepName(step.kind)));
    root.append(svg("text", { x: 118, y, class: "muted" }, i === 0 ? clock(step.ts) : `+${duration((step.ts - s.steps[0].ts) * 1000)}`));
    if (i > 0) {
      root.append(svg("rect", { x: 190, y: y - 9, width: bar.toFixed(1), height: 10, rx: 2, class: `bar ${kind}` }));
      root.append(svg("text", { x: 194 + bar, y, class: "muted" }, duration(gap)));
    }
  });
  if (plot) root.append(millivolts(s, top + rows * ROW + 10, W, plot));
  return root;
}

function millivolts(s, y0, W, H) {
  // The flame input's readings around the cut, with the cut and the restore marked.
  const g = svg("g", { class: "plot" });
  const ts = s.readings.map((r) => r[0]), mv = s.readings.map((r) => r[1]);
  const t0 = Math.min(...ts, s.start), t1 = Math.max(...ts, s.end), span = Math.max(1, t1 - t0);
  const hi = Math.max(...mv, 1), x = (v) => 30 + ((v - t0) / span) * (W - 36), y = (v) => y0 + H - (v / hi) * H;
  g.append(svg("line", { x1: 30, y1: y0 + H, x2: W - 6, y2: y0 + H, class: "axis" }));
  g.append(svg("text", { x: 0, y: y0 + 10, class: "muted" }, `${hi.toFixed(0)} ${t("mv")}`));
  g.append(svg("text", { x: 0, y: y0 + H, class: "muted" }, "0"));
  for (const step of s.steps) {
    if (step.kind === "cut_confirmed" || step.kind === "restore_confirmed") {
      g.append(svg("line", { x1: x(step.ts), y1: y0, x2: x(step.ts), y2: y0 + H, class: `mark ${step.kind === "restore_confirmed" ? "restore" : ""}` }));
    }
  }
  g.append(svg("polyline", { points: s.readings.map((r) => `${x(r[0]).toFixed(1)},${y(r[1]).toFixed(1)}`).join(" "), class: "mv" }));
  return g;
}

let shutoffsDue = null;
function refreshShutoffs() {
  clearTimeout(shutoffsDue);
  shutoffsDue = setTimeout(async () => {
    const q = page.filter ? `&burner=${encodeURIComponent(page.filter)}` : "";
    const data = await api(`/api/shutoffs?n=6${q}`);
    if (data.ok === false) return;
    const items = data.shutoffs.reverse().map((s) => el("div", { class: "shutoff" },
      el("h4", {}, `${s.burner} · ${s.action} · ${t("by", s.source || "?")}`), timeline(s)));
    $("shutoffs").replaceChildren(...(items.length ? items : [el("p", { class: "note" }, t("no_shutoffs"))]));
  }, 300);
}

// -- event log ---------------------------------------------------------------

function eventLine(e) {
  const parts = [clock(e.ts), e.kind, e.burner || "-", e.source || "-"];
  if (e.latency_ms !== null && e.latency_ms !== undefined) parts.push(duration(e.latency_ms));
  const detail = Object.keys(e.detail || {}).length ? JSON.stringify(e.detail) : "";
  return el("li", { "data-kind": e.kind, "data-burner": e.burner || "" },
    `${parts[0]} `, el("span", { class: "kind" }, parts[1]), ` ${parts.slice(2).join(" ")} ${detail}`);
}
async function refreshEvents() {
  const q = page.filter ? `&burner=${encodeURIComponent(page.filter)}` : "";
  const data = await api(`/api/events?n=50${q}`);
  if (data.ok === false) return;
  page.events = data.events;
  $("events").replaceChildren(...page.events.slice().reverse().map(eventLine));
}
function addEvent(e) {
  if (page.filter && e.burner !== page.filter) return;
  $("events").prepend(eventLine(e));
  while ($("events").children.length > 50) $("events").lastChild.remove();
}

// -- live --------------------------------------------------------------------

function connect() {
  const source = new EventSource("/api/stream");
  source.addEventListener("open", () => {
    $("live").className = "live on";
    $("live").textContent = t("live");
    refreshAll();
  });
  source.addEventListener("error", () => {
    $("live").className = "live";
    $("live").textContent = t("offline");
  });
  source.addEventListener("status", (m) => renderStatus({ ...JSON.parse(m.data), authenticated: page.authed }));
  source.addEventListener("event", (m) => {
    const e = JSON.parse(m.data);
    addEvent(e);
    if (e.kind.startsWith("timer_")) refreshTimers();
    if (TIMELINE_KINDS.has(e.kind)) refreshShutoffs();
  });
}

async function refreshAll() {
  const status = await api("/api/status");
  if (status.ok === false) return;
  renderStatus(status);
  refreshTimers();
  refreshShutoffs();
  refreshEvents();
}

function applyLanguage() {
  document.documentElement.lang = page.lang === "zh" ? "zh-CN" : "en";
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  $("lang").textContent = page.lang === "zh" ? "EN" : "中文";
  $("live").textContent = t($("live").classList.contains("on") ? "live" : "offline");
  if (page.status) renderStatus(page.status);
  refreshTimers();
  refreshShutoffs();
  refreshEvents();
}

function start() {
  page.lang = chooseLanguage();
  $("lang").addEventListener("click", () => {
    page.lang = page.lang === "zh" ? "en" : "zh";
    localStorage.setItem("stove-ctl-lang", page.lang);
    applyLanguage();
  });
  $("all-off").addEventListener("click", (e) => command({ action: "shutoff", burner: "all" }, e.currentTarget));
  $("filter").addEventListener("change", (e) => { page.filter = e.target.value; refreshEvents(); refreshShutoffs(); });
  $("login").addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = await api("/api/login", { token: $("token").value });
    $("login-note").textContent = data.ok === false ? t("wrong_token") : "";
    if (data.ok !== false) { $("token").value = ""; $("problem").hidden = true; refreshAll(); }
  });
  $("logout").addEventListener("click", async () => { await api("/api/logout", {}); page.authed = false; refreshAll(); });
  applyLanguage();
  refreshAll();
  connect();
}
document.addEventListener("DOMContentLoaded", start);
