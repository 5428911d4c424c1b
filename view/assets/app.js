// flywheel view's pages: tables, a table at a version (rows, schema, saved queries), statistics,
// lineage, job, SQL. Everything comes from the JSON API (view/src/api.rs); links carry T@V.
"use strict";

const { el } = FW;
const PAGE_ROWS = 50;
const app = () => document.getElementById("app");

async function api(path, body) {
  const opts = body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
  if (!r.ok) throw new Error(data.error || `${r.status}`);
  return data;
}

function show(...children) { app().replaceChildren(...children.filter((c) => c !== null && c !== undefined)); }
function fail(e) { show(el("div", { class: "error", id: "error" }, `error: ${e.message}`)); }
const q = (s) => encodeURIComponent(s);
const tableLink = (name, v, rest) => `/t/${name}@${v}${rest || ""}`;
const num = (n) => (n === null || n === undefined) ? "" : Number(n).toLocaleString("en");

function grid(headers, rows) {
  return el("table", { class: "grid" }, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c))))));
}

async function tablesPage() {
  const { tables } = await api("/api/tables");
  show(el("h1", {}, "Tables"), grid(["table", "version", "versions", "rows", "size", "last change", "operation"],
    tables.map((t) => [el("a", { href: tableLink(t.name, t.version ?? "latest") }, t.name), t.version ?? "", t.versions,
      num(t.rows), t.bytes === null ? "" : FW.size(t.bytes), t.changed ?? "", t.operation ?? ""])));
}

function header(info, tab) {
  const picker = el("select", { id: "version", onchange: (e) => { location.href = tableLink(info.name, e.target.value, tab); } },
    info.versions.map((v) => el("option", { value: v.version, ...(v.version === info.version ? { selected: "" } : {}) },
      `@${v.version} · ${v.operation} · ${num(v.rows)} rows · ${v.created_at}`)));
  const tabs = [["", "Rows"], ["/stats", "Statistics"], ["/lineage", "Lineage and versions"], ["/job", "Job"]]
    .map(([t, label]) => el("a", { href: tableLink(info.name, info.version, t), class: t === tab ? "tab on" : "tab" }, label));
  const sqlHref = `/sql?tables=${q(`t=${info.name}@${info.version}`)}&sql=${q("SELECT * FROM t LIMIT 10")}`;
  tabs.push(el("a", { href: sqlHref, class: "tab" }, "SQL"));
  return el("div", { class: "head" }, el("h1", {}, `${info.name}@${info.version}`), el("label", {}, "version ", picker),
    el("p", { class: "meta" }, `${num(info.rows)} rows · ${info.files} files · ${FW.size(info.bytes)} · ${info.operation} at ${info.created_at}`),
    el("nav", { class: "tabs" }, tabs));
}

function rowsTable(data, t, first) {
  const headers = ["#"].concat(data.columns.map((c) => el("span", {}, c.name, el("br"), el("small", {}, c.type))));
  return grid(headers, data.rows.map((row, i) => {
    const n = first + i;
    const ctx = t ? { t, row: n } : null;
    const head = t ? el("a", { href: `${tableLink(...t.split(/@(?=[^@]*$)/))}/row/${n}`, class: "rownum" }, n) : n;
    return [head].concat(row.map((cell, c) => FW.node(cell, [data.columns[c].name], ctx)));
  }));
}

function pager(total, page, go) {
  const pages = Math.max(1, Math.ceil(total / PAGE_ROWS));
  const input = el("input", { id: "page", type: "number", min: 1, max: pages, value: page });
  return el("div", { class: "pager" },
    el("button", { id: "prev", onclick: () => go(Math.max(1, page - 1)), ...(page <= 1 ? { disabled: "" } : {}) }, "‹ prev"),
    " page ", input, ` of ${num(pages)} `,
    el("button", { onclick: () => go(Math.min(pages, Math.max(1, Number(input.value) || 1))) }, "go"),
    el("button", { id: "next", onclick: () => go(Math.min(pages, page + 1)), ...(page >= pages ? { disabled: "" } : {}) }, "next ›"));
}

function queriesList(info) {
  if (!info.queries.length) return el("p", { id: "queries" }, "No saved queries read this table yet.");
  return el("div", { id: "queries" }, grid(["name", "SQL", "tables", "who", "when", ""], info.queries.map((s) => {
    const tables = Object.entries(s.tables).map(([k, v]) => `${k}=${v}`).join(", ");
    const href = `/sql?tables=${q(tables)}&sql=${q(s.sql)}`;
    return [el("span", { class: "qname" }, s.name), el("code", {}, s.sql), tables, s.who, s.created_at, el("a", { href }, "run")];
  })));
}

async function tablePage(addr, page) {
  const info = await api(`/api/info?t=${q(addr)}`);
  const t = `${info.name}@${info.version}`;
  const data = await api(`/api/rows?t=${q(t)}&offset=${(page - 1) * PAGE_ROWS}&limit=${PAGE_ROWS}`);
  const go = (p) => { location.href = `${tableLink(info.name, info.version)}?page=${p}`; };
  show(header(info, ""),
    el("details", { class: "schema" }, el("summary", {}, "Schema: ", el("code", {}, info.schema_text)),
      grid(["column", "type"], info.schema.map((c) => [c.name, el("code", {}, c.type)]))),
    el("h2", {}, "Rows"), pager(data.total, page, go), el("div", { class: "rows", id: "rows" }, rowsTable(data, t, data.offset)),
    el("h2", {}, "Saved queries (existing uses)"), queriesList(info));
}

async function rowPage(addr, row) {
  const info = await api(`/api/info?t=${q(addr)}`);
  const t = `${info.name}@${info.version}`;
  const data = await api(`/api/rows?t=${q(t)}&offset=${row}&limit=1`);
  if (!data.rows.length) throw new Error(`${t} has no row ${row} (it has ${data.total})`);
  const ctx = { t, row };
  show(header(info, `/row/${row}`), el("h2", {}, `Row ${row}`),
    grid(["column", "type", "value"], data.columns.map((c, i) => [c.name, el("code", {}, c.type), FW.node(data.rows[0][i], [c.name], ctx)])));
}

function bars(h, cls) {
  if (!h || !h.bins) return null;
  const most = Math.max(1, ...h.bins.counts);
  const box = el("div", { class: cls || "hist", title: `${h.of}: ${h.bins.min} … ${h.bins.max}` });
  for (const c of h.bins.counts) { const b = el("span", { title: String(c) }); b.style.height = `${(100 * c) / most}%`; box.append(b); }
  return el("div", {}, el("small", {}, `${h.of} ${h.bins.min} … ${h.bins.max}`), box);
}

async function statsPage(addr) {
  const info = await api(`/api/info?t=${q(addr)}`);
  const s = await api(`/api/stats?t=${q(`${info.name}@${info.version}`)}`);
  const keys = ["count", "nulls", "min", "max", "mean", "min_length", "mean_length", "max_length", "distinct"];
  show(header(info, "/stats"), s.sampled ? el("p", { class: "note", id: "sampled" }, s.sampled) : null,
    el("div", { class: "cards" }, s.columns.map((c) => el("section", { class: "card" }, el("h3", {}, c.name, " ", el("code", {}, c.type)),
      grid(["", ""], keys.filter((k) => c[k] !== undefined).map((k) => [k, typeof c[k] === "object" ? JSON.stringify(c[k]) : String(c[k])])),
      bars(c.histogram),
      c.top ? grid(["top value", "count"], c.top.map((x) => [typeof x.value === "string" ? x.value : JSON.stringify(x.value), num(x.count)])) : null))));
}

async function lineagePage(addr) {
  const info = await api(`/api/info?t=${q(addr)}`);
  const l = await api(`/api/lineage?t=${q(`${info.name}@${info.version}`)}`);
  const entries = l.versions.slice().reverse().map((v) => {
    const input = v.input_served ? el("a", { href: tableLink(v.input_served.name, v.input_served.version ?? "latest") },
      `${v.input_served.name}@${v.input_served.version ?? "latest"}`) : (v.input ?? "");
    const ch = v.changes;
    const changed = ch ? `from @${ch.from}: rows ${ch.rows >= 0 ? "+" : ""}${num(ch.rows)}, files +${ch.files_added} −${ch.files_removed}` +
      `${ch.schema_changed ? ", schema changed (was " + ch.schema_before + ")" : ""}, statistics changed in ${ch.stats.length} columns` : "first version";
    return el("section", { class: v.version === info.version ? "card on" : "card" },
      el("h3", {}, el("a", { href: tableLink(info.name, v.version) }, `@${v.version}`), ` ${v.operation} · ${v.created_at} · ${num(v.rows)} rows`),
      grid(["", ""], [["mapper", v.mapper ? `${v.mapper.spec}${v.mapper.sha256 ? " sha256 " + v.mapper.sha256 : ""}` : ""], ["input", input],
        ["Slurm jobs", (v.slurm_job_ids || []).join(", ")], ["job id", v.job_id ?? ""], ["changes", changed],
        ["options", el("code", {}, JSON.stringify(v.options))]]));
  });
  const derived = l.derived.length ? grid(["table", "version", "from version"], l.derived.map((d) => [
    el("a", { href: tableLink(d.name, d.version) }, d.name), `@${d.version}`, d.from_version ? `@${d.from_version}` : "latest"]))
    : el("p", {}, "No served table was derived from this one.");
  show(header(info, "/lineage"), el("h2", {}, "Derived tables"), derived, el("h2", {}, "Versions"), ...entries);
}

function progressBox(p) {
  const eta = p.eta_s === null ? "" : ` · ETA ${Math.round(p.eta_s)}s`;
  return el("section", { class: "card on", id: "running" }, el("h3", {}, `A job is running on this table (job ${p.job_id ?? ""})`),
    el("p", { id: "running-progress" }, `chunks ${p.chunks_done}/${p.chunks} · rows ${num(p.rows_done)}/${num(p.rows)} · rows out ${num(p.rows_out)} · ${num(Math.round(p.rows_per_s))} rows/s${eta}`),
    grid(["worker", "host", "chunks", "rows out", "GPU"], p.workers.map((w) => [w.rank, w.host, w.chunks, num(w.rows_out),
      w.gpu ? `${w.gpu.name} last ${w.gpu.last_utilization}% mean ${w.gpu.mean_utilization}%` : ""])));
}

function jobView(j) {
  const r = j.report;
  const longest = Math.max(1, ...j.timeline.map((w) => w.chunks.reduce((a, c) => a + (c.wall_ms || 0), 0)));
  const lanes = j.timeline.map((w) => {
    const lane = el("div", { class: "lane" });
    for (const c of w.chunks) {
      const bar = el("span", { class: c.attempt > 1 ? "chunk retry" : "chunk", title: `chunk ${c.chunk} attempt ${c.attempt}: ${c.rows_out} rows in ${c.wall_ms} ms` });
      bar.style.width = `${(100 * (c.wall_ms || 0)) / longest}%`;
      lane.append(bar);
    }
    const wr = (r.workers || []).find((x) => x.rank === w.worker) || {};
    const rate = wr.busy_ms ? `${num(Math.round((wr.rows_out * 1000) / wr.busy_ms))} rows/s` : "";
    const gpu = wr.gpu ? ` · GPU ${wr.gpu} ${wr.gpu_utilization ?? "?"}%` : "";
    return el("div", { class: "worker" }, el("span", { class: "who" }, `worker ${w.worker} ${wr.host ?? ""}`), lane,
      el("small", {}, `${w.chunks.length} chunks · ${rate} · failures ${wr.failures ?? 0} · speculative wins ${wr.speculative_wins ?? 0}${gpu}${wr.drained ? " · drained: " + wr.drained : ""}`));
  });
  return [el("p", { class: "meta" }, `job ${j.job_id ?? ""} · ${num(r.rows_in)} rows in · ${num(r.rows_out)} out · ${r.chunks} chunks · retries ${r.retries} · failures ${r.failures} · speculative ${r.speculative_runs} · wall ${r.wall_s}s · ${num(Math.round(r.rows_per_s))} rows/s · GPU: ${r.gpu}`),
    el("p", { class: "note" }, "Each worker's kept chunks laid end to end in the order the version lists them (the manifest records each chunk's duration); later attempts (retries, speculative copies) are marked."),
    el("div", { class: "timeline" }, lanes)];
}

async function jobPage(addr) {
  const info = await api(`/api/info?t=${q(addr)}`);
  const p = (await api(`/api/progress?t=${q(info.name)}`)).progress;
  const running = p && p.state === "running";
  let done = [];
  try {
    done = jobView(await api(`/api/job?t=${q(`${info.name}@${info.version}`)}`));
  } catch (e) {
    if (!running) throw e;
  }
  show(header(info, "/job"), running ? progressBox(p) : null, ...done);
  // While the job runs, its progress is read again every 2 s.
  if (running) setTimeout(route, 2000);
}

function parseTables(text) {
  const out = {};
  for (const part of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const i = part.indexOf("=");
    if (i < 0) out.t = part; else out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

async function sqlPage(params) {
  const { tables } = await api("/api/tables");
  const first = tables[0] ? `t=${tables[0].name}@${tables[0].version}` : "";
  const tablesBox = el("input", { id: "sql-tables", size: 60, value: params.get("tables") || first });
  const box = el("textarea", { id: "sql", rows: 6, cols: 90 }, params.get("sql") || "SELECT * FROM t LIMIT 10");
  const out = el("div", { id: "result" });
  const csv = el("a", { id: "csv" }, "download CSV");
  let offset = 0;
  const ask = () => ({ sql: box.value, tables: parseTables(tablesBox.value) });
  const run = async () => {
    out.replaceChildren(el("p", {}, "running…"));
    try {
      const res = await api("/api/sql", { ...ask(), offset, limit: PAGE_ROWS });
      csv.href = `/api/sql.csv?q=${q(JSON.stringify(ask()))}`;
      const page = Math.floor(offset / PAGE_ROWS) + 1;
      out.replaceChildren(el("p", { id: "result-count" }, `${num(res.total)} rows`),
        pager(res.total, page, (p) => { offset = (p - 1) * PAGE_ROWS; run(); }), rowsTable(res, null, res.offset));
    } catch (e) { out.replaceChildren(el("div", { class: "error", id: "error" }, `error: ${e.message}`)); }
  };
  const name = el("input", { id: "save-name", placeholder: "name" });
  const who = el("input", { id: "save-who", placeholder: "who (default: the viewer's user)" });
  const saved = el("span", { id: "saved" });
  const save = async () => {
    const t = ask();
    const into = Object.values(t.tables)[0] || "";
    try {
      const r = await api("/api/queries", { table: into.replace(/@[^@]*$/, ""), name: name.value, sql: t.sql, tables: t.tables, who: who.value });
      saved.textContent = `saved as ${r.saved} with ${r.table}`;
    } catch (e) { saved.textContent = `error: ${e.message}`; }
  };
  show(el("h1", {}, "SQL"), el("p", { class: "note" }, "Read-only: one SELECT, WITH or EXPLAIN. Tables: NAME=TABLE@V, comma-separated."),
    el("label", {}, "tables ", tablesBox), el("br"), box, el("br"),
    el("button", { id: "run", onclick: () => { offset = 0; run(); } }, "Run"), " ", csv,
    el("p", {}, "Save with the first table: ", name, " ", who, " ", el("button", { id: "save", onclick: save }, "Save"), " ", saved), out);
  if (params.get("sql")) run();
}

async function route() {
  const path = decodeURIComponent(location.pathname);
  const params = new URLSearchParams(location.search);
  try {
    if (path === "/") return await tablesPage();
    if (path === "/sql") return await sqlPage(params);
    const m = path.match(/^\/t\/(.+@[^/@]+)(\/stats|\/lineage|\/job|\/row\/(\d+))?$/);
    if (m) {
      if (m[2] === "/stats") return await statsPage(m[1]);
      if (m[2] === "/lineage") return await lineagePage(m[1]);
      if (m[2] === "/job") return await jobPage(m[1]);
      if (m[3] !== undefined) return await rowPage(m[1], Number(m[3]));
      return await tablePage(m[1], Math.max(1, Number(params.get("page")) || 1));
    }
    throw new Error(`no page at ${path}`);
  } catch (e) { fail(e); }
}

route();
