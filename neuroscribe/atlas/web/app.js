/* neuroscribe atlas: the web UI (docs/atlas.md). Vanilla ES2020, no build step, nothing fetched
 * but the same-origin API. A client-side router on location.pathname; internal links are real
 * <a href> (shareable, open in new tabs) that history.pushState intercepts.
 *
 * Security: every text from the API or the user goes through textContent / createTextNode (the
 * h() helper); there is no innerHTML in this file. Colours are set through the CSSOM (el.style),
 * which a strict Content-Security-Policy (style-src 'self', no unsafe-inline / unsafe-eval) allows.
 *
 * API key: an API call answered 401 shows #api-key-form; the key is kept in sessionStorage and
 * sent as X-API-Key on every API call (never on static files), and the call is retried. Links to API
 * files (artefacts, /v1/jobs/...) keep a real href (no key: the browser's own navigation, middle
 * click); with a key, a click fetches the file with the header and opens it in a new tab from a blob
 * URL, or downloads it. An HTML file's blob document runs under this page's CSP (no script; its own
 * styles re-applied through the CSSOM); the new tab gets no opener and no copy of the key. The key
 * never goes into a URL.
 *
 * Stable selectors (for browser tests):
 *   header    #search-form, #search-input, nav a[data-nav=jobs|models|concepts] (.active), #api-key-clear
 *   api key   #api-key-panel, #api-key-form, #api-key-input, #api-key-message
 *   any page  #main (h1 first), .error[role=alert] (.error-status, .error-detail), .loading,
 *             p.none ("none from the indexed jobs"), .breadcrumbs
 *   home      #home-search-input, #models-table .model-row, #indexed-jobs-table .indexed-job-row
 *   jobs      #jobs-table .job-row[data-job-id][data-status] (.job-status text = the status,
 *             .stage-progress[data-stage] progress, .job-cancel, .job-artefacts a.artefact-link, .job-error),
 *             a.job-link (a service job's artefacts list); an API link that failed: .link-error[role=alert]
 *             #jobs-error, #submit-form: #job-kind, #job-model, #job-concepts, #job-n-pos, #job-n-neg,
 *             #job-tau, #job-generator, #job-dataset (options: the server's packaged datasets, GET
 *             /v1/datasets, then "pasted"; #job-dataset-hint), #job-dataset-text, #job-ks, #job-layer,
 *             #job-json, #submit-button; #submit-errors li[data-field], .field-error[data-for],
 *             #submit-result[data-job-id] (the new job's id after a 201); #indexed-jobs-table (paged: #indexed-pager)
 *   models    #models-table .model-row
 *   model     #model-title, #layers-table .layer-row a
 *   layer     #neuron-filters: #filter-descriptor, #filter-concept, #filter-status (option values: the
 *             stored statuses, STATUSES), #filter-site;
 *             #neurons-table th[data-sort] a.sort-link, .neuron-row[data-unit] a.neuron-link,
 *             .badge.status-dead, .badge.status-rare; #pager .pager-prev, .pager-next, .pager-info
 *   neuron    #neuron-title, #neuron-prev, #neuron-next, .site-link, #histogram svg (rect.bar),
 *             #histogram-log, #stats-table, #exemplars .exemplar[data-kind][data-row]
 *             (.exemplar-activation, .exemplar-text, .tok[data-value], .tok.peak), #descriptors-table
 *             (.badge.verified), #explanations .explanation, #neuron-concepts-table, #ranks-table,
 *             #effects-table, #neuron-jobs-table; each empty section: p.none
 *   concepts  #concepts-table .concept-row
 *   concept   #concept-title, #concept-counts (experts per model x layer), #concept-experts .expert-row,
 *             #concept-top .top-row (units below tau), #concept-sweep (the sweeps' counts)
 *   search    #search-page-input, #search-results .search-result (.result-text, .result-kind,
 *             .result-match, .result-score, a.search-neuron)
 */
"use strict";

(() => {
  const KEY_STORE = "neuroscribe.apiKey";
  const PAGE_SIZE = 50;           // rows per page of server-paged lists
  const JOBS_PAGE = 20;           // indexed jobs per page (each carries its summary text)
  const LOCAL_PAGE = 100;         // rows per page of lists paged here
  const POLL_MS = 2000;
  const AUTO_ARTEFACTS = 10;      // succeeded jobs whose files are listed without asking
  const FINAL = new Set(["succeeded", "failed", "cancelled"]);
  const HEX32 = /^[0-9a-f]{32}$/;
  const SVGNS = "http://www.w3.org/2000/svg";
  const NONE_TEXT = "none from the indexed jobs";
  // the packaged datasets of describe / rank jobs: GET /v1/datasets (names), GET /v1/datasets/{name}
  // (a describe job's DatasetSpec: {name, texts, labels, label_names, label_word_match})
  const DATASETS_URL = "/v1/datasets";
  // the neurons table's status filter: the exact strings the atlas stores (jobs.describe.UnitStatus)
  const STATUSES = ["described", "no descriptor passed", "too few valid exemplars", "rare", "dead"];
  // API files a new tab can show (the others are downloaded); a path without an extension is JSON
  const VIEWABLE_EXT = /\.(html?|json|jsonl|txt|csv|tsv|md|log|svg|png|jpe?g|gif|webp|pdf)$/i;
  const BLOB_TTL_MS = 5 * 60 * 1000;  // a blob URL of an opened file lives this long

  // ------------------------------------------------------------------------------- DOM helpers

  const $ = (sel, root = document) => root.querySelector(sel);

  function append(el, kids) {
    for (const k of kids) {
      if (k === null || k === undefined || k === false) continue;
      if (Array.isArray(k)) append(el, k);
      else if (k instanceof Node) el.appendChild(k);
      else el.appendChild(document.createTextNode(String(k)));
    }
    return el;
  }

  function setAttrs(el, attrs) {
    if (!attrs) return el;
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") el.textContent = String(v);
      else if (k === "dataset") for (const [dk, dv] of Object.entries(v)) { if (dv !== null && dv !== undefined) el.dataset[dk] = String(dv); }
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "value" && (el.tagName === "INPUT" || el.tagName === "TEXTAREA")) el.value = String(v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    return el;
  }

  /** Append children (nodes, text, arrays; null / undefined / false skipped: Element.append would write "null"). */
  const add = (el, ...kids) => append(el, kids);
  /** An HTML element; children: nodes, or text (always as text nodes). */
  const h = (tag, attrs, ...kids) => append(setAttrs(document.createElement(tag), attrs), kids);
  /** An SVG element. */
  const s = (tag, attrs, ...kids) => append(setAttrs(document.createElementNS(SVGNS, tag), attrs), kids);

  const enc = encodeURIComponent;
  function dec(x) { try { return decodeURIComponent(x); } catch (e) { return x; } }
  const arr = (x) => (Array.isArray(x) ? x : []);
  const isObj = (x) => x !== null && typeof x === "object" && !Array.isArray(x);

  function setTitle(t) { document.title = t ? `${t} · neuroscribe atlas` : "neuroscribe atlas"; }

  // ------------------------------------------------------------------------------- formatting

  function fmt(v, digits = 3) {
    if (v === null || v === undefined || v === "") return "—";
    if (typeof v === "boolean") return v ? "yes" : "no";
    const n = Number(v);
    if (!Number.isFinite(n)) return typeof v === "string" ? v : "—";
    if (Number.isInteger(n)) return Math.abs(n) >= 10000 ? n.toLocaleString("en-US") : String(n);
    const a = Math.abs(n);
    if (a >= 1000) return n.toFixed(0);
    if (a >= 100) return n.toFixed(1);
    if (a >= 0.001) return n.toFixed(digits);
    return n.toExponential(1);
  }
  function fmtP(v) {  // p / q values: small numbers stay readable
    if (v === null || v === undefined) return "—";
    const n = Number(v);
    if (!Number.isFinite(n)) return "—";
    return n !== 0 && Math.abs(n) < 0.001 ? n.toExponential(1) : n.toFixed(3);
  }
  const fmtShare = (v) => (v === null || v === undefined || !Number.isFinite(Number(v)) ? "—" : `${(Number(v) * 100).toFixed(1)}%`);
  const fmtPercent = (v) => (v === null || v === undefined || !Number.isFinite(Number(v)) ? "—" : `${Number(v).toFixed(1)}%`);
  function fmtTime(v) {
    if (v === null || v === undefined || v === "") return "—";
    const d = typeof v === "number" ? new Date(v * 1000) : new Date(v);
    if (Number.isNaN(d.getTime())) return String(v);
    const p = (x) => String(x).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }
  function brief(v, max = 160) {
    if (v === null || v === undefined) return "";
    const t = typeof v === "string" ? v : JSON.stringify(v);
    return t.length > max ? `${t.slice(0, max - 1)}…` : t;
  }
  const slugClass = (x) => String(x ?? "unknown").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");

  // ------------------------------------------------------------------------------- the API

  class ApiError extends Error {
    constructor(status, detail, url) {
      super(detailText(detail));
      this.status = status;
      this.detail = detail;
      this.url = url;
    }
  }

  /** The field an error's ``loc`` names: ["body", "tau"] -> "tau"; ["query", "limit"] -> "limit". */
  function fieldOf(loc) {
    if (!Array.isArray(loc)) return "";
    const parts = ["body", "query", "path", "header"].includes(loc[0]) ? loc.slice(1) : loc;
    return parts.join(".");
  }

  function detailText(d) {
    if (d === null || d === undefined) return "";
    if (typeof d === "string") return d;
    if (Array.isArray(d)) {
      return d.map((e) => (isObj(e) && "msg" in e ? `${fieldOf(e.loc) || "job"}: ${e.msg}` : detailText(e))).join("; ");
    }
    if (isObj(d) && typeof d.msg === "string") return d.msg;
    return JSON.stringify(d);
  }

  async function readDetail(res) {
    const text = await res.text().catch(() => "");
    try {
      const j = JSON.parse(text);
      return isObj(j) && "detail" in j ? j.detail : j;
    } catch (e) {
      return text.trim() || res.statusText || `HTTP ${res.status}`;
    }
  }

  function getKey() { try { return sessionStorage.getItem(KEY_STORE) || ""; } catch (e) { return ""; } }
  function setKey(k) {
    try { if (k) sessionStorage.setItem(KEY_STORE, k); else sessionStorage.removeItem(KEY_STORE); } catch (e) { /* storage off */ }
    $("#api-key-clear").hidden = !k;
  }

  let keyWaiters = [];
  /** Show the key form; resolves once a key has been entered. */
  function askForKey(detail, usedKey) {
    const panel = $("#api-key-panel");
    $("#api-key-message").textContent = usedKey
      ? `The server refused this key: ${detailText(detail)}`
      : `This server needs an API key: ${detailText(detail)}`;
    panel.hidden = false;
    const input = $("#api-key-input");
    // a late 401 of a request sent with a refused key must not wipe a new key being typed
    if (usedKey && input.value.trim() === usedKey) input.value = "";
    input.focus();
    return new Promise((resolve) => keyWaiters.push(resolve));
  }

  /** A same-origin API call's response (2xx); ``body`` a string (JSON). A 401 shows the key form
   * (``onKeyNeeded()`` first) and retries with the key entered. Throws ApiError with the server's detail. */
  async function apiResponse(path, {method = "GET", body, accept = "application/json", onKeyNeeded} = {}) {
    for (;;) {
      const headers = {Accept: accept};
      const key = getKey();
      if (key) headers["X-API-Key"] = key;
      if (body !== undefined) headers["Content-Type"] = "application/json";
      let res;
      try {
        res = await fetch(path, {method, headers, body, credentials: "same-origin", cache: "no-store"});
      } catch (e) {
        throw new ApiError(0, `the server could not be reached (${e.message})`, path);
      }
      if (res.status === 401) {
        const detail = await readDetail(res);
        if (onKeyNeeded) onKeyNeeded();
        if (getKey() === key) await askForKey(detail, key);  // else: a new key came meanwhile; retry with it
        continue;
      }
      if (!res.ok) throw new ApiError(res.status, await readDetail(res), path);
      return res;
    }
  }

  /** JSON from the same-origin API; ``body`` a string (JSON). Throws ApiError with the server's detail. */
  async function api(path, opts = {}) {
    const res = await apiResponse(path, opts);
    const text = await res.text();
    if (!text) return null;
    try { return JSON.parse(text); } catch (e) { throw new ApiError(res.status, `the answer of ${path} is not JSON`, path); }
  }

  // --- API files (artefacts, /v1/jobs/...) under a key: a navigation cannot send X-API-Key, so a
  // click fetches the file with it and opens it from a blob URL (the key never goes into a URL)

  /** The same-origin API path (/v1/...) a link points to, or null. */
  function apiPathOf(a) {
    let url;
    try { url = new URL(a.getAttribute("href"), location.href); } catch (e) { return null; }
    return url.origin === location.origin && url.pathname.startsWith("/v1/") ? url.pathname + url.search : null;
  }

  function fileNameOf(path, res) {
    const cd = res.headers.get("Content-Disposition") || "";
    const m = /filename\*=(?:UTF-8'')?([^;]+)|filename="([^"]+)"|filename=([^;]+)/i.exec(cd);
    if (m) return dec((m[1] || m[2] || m[3]).trim());
    return dec(path.split("?")[0].split("/").filter(Boolean).pop() || "file");
  }

  /** Once ``w`` shows the HTML file at ``url``: its blob document runs under this page's CSP (no script,
   * no inline style: its own <style> and style attributes are blocked), so its styles come back
   * through the CSSOM, which the CSP allows (a constructed stylesheet, element.style); its relative
   * links are pointed at the file's API folder (``path``). */
  function restyle(w, url, path) {
    const deadline = Date.now() + 60000;
    const tick = () => {
      let doc;
      try {
        if (w.closed) return;
        doc = w.location.href === url && w.document.readyState !== "loading" ? w.document : null;
      } catch (e) { return; }  // navigated elsewhere: not ours any more
      if (!doc) { if (Date.now() < deadline) setTimeout(tick, 50); return; }
      try {
        const css = [...doc.querySelectorAll("style")].map((el) => el.textContent).join("\n");
        if (css.trim()) {
          const sheet = new w.CSSStyleSheet();
          sheet.replaceSync(css);
          doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
        }
        for (const el of doc.querySelectorAll("[style]")) el.style.cssText = el.getAttribute("style");
        const base = new URL(path, location.origin);
        for (const el of doc.querySelectorAll("a[href]")) {
          const v = el.getAttribute("href").trim();
          if (v && !v.startsWith("#") && !/^[a-z][a-z0-9+.-]*:/i.test(v)) el.setAttribute("href", new URL(v, base).href);
        }
      } catch (e) { /* unstyled, still readable */ }
    };
    tick();
  }

  function linkError(a, e) {
    const old = a.nextElementSibling;
    if (old && old.classList.contains("link-error")) old.remove();
    if (!e) return;
    const what = e instanceof ApiError ? `${e.status ? `${e.status}: ` : ""}${detailText(e.detail)}` : String(e && e.message || e);
    a.after(h("span", {class: "error-inline link-error", role: "alert"}, ` ${what}`));
  }

  /** A new tab for a file, cut off from this one: no opener, and no copy of the key (a tab opened by
   * script starts with a copy of this tab's sessionStorage). */
  function blankTab(what) {
    const w = window.open("", "_blank");
    if (!w) return null;
    try {
      w.opener = null;
      w.sessionStorage.removeItem(KEY_STORE);
      w.document.title = "Loading…";
      w.document.body.textContent = `Loading ${what}…`;
    } catch (e) { /* */ }
    return w;
  }

  /** Fetch an API file with the key and open it in a new tab from a blob URL (a file a tab cannot
   * show is downloaded under its name). The tab is opened at the click, so no popup blocker holds it. */
  async function openApiFile(path, a) {
    const bare = path.split("?")[0];
    const viewable = VIEWABLE_EXT.test(bare) || !/\.[A-Za-z0-9]{1,8}$/.test(bare);  // no extension: JSON
    let w = viewable ? blankTab(bare) : null;
    const dropTab = () => { if (w) { w.close(); w = null; } };
    linkError(a, null);
    a.setAttribute("aria-busy", "true");
    try {
      const res = await apiResponse(path, {accept: "*/*", onKeyNeeded: dropTab});
      const type = (res.headers.get("Content-Type") || "application/octet-stream").split(";")[0].trim().toLowerCase();
      let blob;
      if (type === "text/html") {
        blob = new Blob([await res.blob()], {type: "text/html;charset=utf-8"});
      } else if (type.startsWith("text/")) {
        blob = new Blob([await res.blob()], {type: "text/plain;charset=utf-8"});  // shown as text (csv, md...)
      } else {
        blob = await res.blob();
      }
      const url = URL.createObjectURL(blob);
      setTimeout(() => URL.revokeObjectURL(url), BLOB_TTL_MS);
      const show = type.startsWith("text/") || type === "application/json" || type.startsWith("image/") || type === "application/pdf";
      if (show) {
        if (!w) w = blankTab(bare);  // the first tab was closed while the key was asked for
        if (w) {
          w.location.href = url;
          if (type === "text/html") restyle(w, url, bare);
          return;
        }
      }
      dropTab();
      const dl = h("a", {href: url, download: fileNameOf(bare, res), hidden: true});
      document.body.appendChild(dl);
      dl.click();
      dl.remove();
    } catch (e) {
      dropTab();
      linkError(a, e);
    } finally {
      a.removeAttribute("aria-busy");
    }
  }

  let modelsPromise = null;
  function getModels(fresh = false) {
    if (fresh || !modelsPromise) {
      modelsPromise = api("/v1/atlas/models").then(arr);
      modelsPromise.catch(() => { modelsPromise = null; });
    }
    return modelsPromise;
  }

  // ------------------------------------------------------------------------------- building blocks

  const loading = (what = "Loading…") => h("p", {class: "loading", role: "status"}, what);
  const none = (text = NONE_TEXT) => h("p", {class: "none"}, text);

  function errorBox(e) {
    const status = e && e.status ? `${e.status}` : "";
    const detail = e instanceof ApiError ? e.detail : (e && e.message) || String(e);
    let body;
    if (Array.isArray(detail) && detail.some((d) => isObj(d) && "msg" in d)) {
      body = h("ul", {class: "error-detail"}, detail.map((d) => h("li", {dataset: {field: fieldOf(d.loc)}},
        isObj(d) && "msg" in d ? [h("strong", null, fieldOf(d.loc) || "request"), ": ", String(d.msg)] : detailText(d))));
    } else {
      body = h("span", {class: "error-detail"}, detailText(detail));
    }
    return h("div", {class: "error", role: "alert"},
      status ? h("span", {class: "error-status"}, `Error ${status}`) : h("span", {class: "error-status"}, "Error"), " ", body);
  }

  /** Fill ``container`` with ``build(await promise)``, or the error, unless the page was left. */
  async function fill(ctx, container, promise, build) {
    const spin = loading();
    container.appendChild(spin);
    try {
      const data = await promise;
      if (!ctx.alive()) return;
      spin.remove();
      append(container, [build(data)]);
    } catch (e) {
      if (!ctx.alive()) return;
      spin.remove();
      container.appendChild(errorBox(e));
    }
  }

  const link = (href, text, attrs = {}) => h("a", {href, ...attrs}, text);
  const modelHref = (m) => `/models/${enc(m)}`;
  const layerHref = (m, l) => `/models/${enc(m)}/${enc(l)}`;
  const conceptHref = (c) => `/concepts/${enc(c)}`;
  function neuronHref(model, layer, unit, site) {
    const base = `/neurons/${enc(model)}/${enc(layer)}/${enc(unit)}`;
    return site ? `${base}?site=${enc(site)}` : base;
  }
  const neuronLabel = (n) => `${n.model} L${n.layer}/${n.unit}${n.site ? ` (${n.site})` : ""}`;

  function badge(text, cls = "") { return h("span", {class: `badge ${cls}`.trim()}, text); }
  function statusBadge(st) {
    if (st === null || st === undefined || st === "") return h("span", {class: "muted"}, "—");
    return badge(String(st), `status status-${slugClass(st)}`);
  }

  /** A table; columns: [{label, key?, num?, cell(row) -> node/text, sort?}]. */
  function table(id, columns, rows, rowAttrs, caption) {
    return h("table", {id, class: "data"},
      caption ? h("caption", null, caption) : null,
      h("thead", null, h("tr", null, columns.map((c) => c.th || h("th", {scope: "col", class: c.num ? "num" : null, title: c.title || null}, c.label)))),
      h("tbody", null, rows.map((r, i) => h("tr", rowAttrs ? rowAttrs(r, i) : null,
        columns.map((c) => h("td", {class: c.num ? "num" : null}, c.cell ? c.cell(r, i) : fmt(r[c.key])))))));
  }

  /** Pages a list here (LOCAL_PAGE rows) with prev / next buttons. */
  function localPager(rows, draw, id) {
    const box = h("div", {class: "local-paged"});
    let offset = 0;
    const redraw = () => {
      const pageRows = rows.slice(offset, offset + LOCAL_PAGE);
      const nav = rows.length > LOCAL_PAGE ? h("nav", {class: "pager", id: id || null, "aria-label": "Pages"},
        h("button", {type: "button", class: "pager-prev", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - LOCAL_PAGE); redraw(); }}, "← Previous"),
        h("span", {class: "pager-info"}, `${offset + 1}–${offset + pageRows.length} of ${rows.length}`),
        h("button", {type: "button", class: "pager-next", disabled: offset + LOCAL_PAGE >= rows.length, onclick: () => { offset += LOCAL_PAGE; redraw(); }}, "Next →")) : null;
      box.replaceChildren(draw(pageRows), nav || "");
    };
    redraw();
    return box;
  }

  function jobKeyOf(ref) { return isObj(ref) ? ref.key ?? ref.id ?? "" : ref ?? ""; }

  /** The job that produced a row: its artefacts when the key is a service job id, else its folder. */
  function jobCell(ref, jobs) {
    const key = String(jobKeyOf(ref));
    const job = isObj(ref) ? ref : (jobs && jobs.get(key)) || null;
    const serviceJob = job && typeof job.service_job === "boolean" ? job.service_job && HEX32.test(key) : HEX32.test(key);
    if (serviceJob) {
      return h("a", {href: `/v1/jobs/${key}/artefacts`, class: "job-link", title: job && job.result_dir ? `${job.result_dir}` : key},
        `${job && job.kind ? `${job.kind} ` : ""}job ${key.slice(0, 8)}…`);
    }
    if (job && job.result_dir) return h("code", {class: "job-dir", title: key}, job.result_dir);
    return h("code", {class: "job-key"}, key || "—");
  }

  function breadcrumbs(...items) {
    return h("nav", {class: "breadcrumbs", "aria-label": "Breadcrumbs"},
      h("ol", null, items.map(([href, text]) => h("li", null, href ? link(href, text) : h("span", {"aria-current": "page"}, text)))));
  }

  function searchForm(id, value = "") {
    const input = h("input", {id, name: "q", type: "search", value, placeholder: "e.g. positive sentiment, animals, cat"});
    return h("form", {class: "search-form big", role: "search", action: "/search", method: "get",
      onsubmit: (ev) => { ev.preventDefault(); navigate(`/search?q=${enc(input.value.trim())}`); }},
      h("label", {for: id}, "Search descriptors, explanations and concepts"), " ", input, " ", h("button", {type: "submit"}, "Search"));
  }

  // ------------------------------------------------------------------------------- router

  const routes = [
    [/^\/$/, pageHome],
    [/^\/jobs\/?$/, pageJobs],
    [/^\/models\/?$/, pageModels],
    [/^\/models\/([^/]+)\/?$/, pageModel],
    [/^\/models\/([^/]+)\/([^/]+)\/?$/, pageLayer],
    [/^\/neurons\/([^/]+)\/([^/]+)\/([^/]+)\/?$/, pageNeuron],
    [/^\/concepts\/?$/, pageConcepts],
    [/^\/concepts\/(.+?)\/?$/, pageConcept],
    [/^\/search\/?$/, pageSearch],
  ];

  let generation = 0;
  let cleanups = [];

  function navigate(url, {replace = false} = {}) {
    history[replace ? "replaceState" : "pushState"](null, "", url);
    render(true);
    if (!replace) window.scrollTo(0, 0);
  }

  async function render(moveFocus = false) {
    for (const f of cleanups) { try { f(); } catch (e) { /* ignore */ } }
    cleanups = [];
    const gen = ++generation;
    const main = $("#main");
    main.replaceChildren();
    const params = new URLSearchParams(location.search);
    const ctx = {main, params, alive: () => gen === generation, onLeave: (f) => cleanups.push(f)};
    const path = location.pathname;
    $("#search-input").value = path.startsWith("/search") ? params.get("q") || "" : "";
    const section = path.split("/")[1] || "";
    for (const a of document.querySelectorAll(".site-nav a")) {
      const on = a.dataset.nav === section || (a.dataset.nav === "models" && section === "neurons");
      a.classList.toggle("active", on);
      if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    }
    if (moveFocus) main.focus({preventScroll: true});
    for (const [re, page] of routes) {
      const m = path.match(re);
      if (!m) continue;
      try {
        await page(ctx, ...m.slice(1).map(dec));
      } catch (e) {
        if (!ctx.alive()) return;
        for (const l of main.querySelectorAll(":scope > .loading")) l.remove();
        if (!main.querySelector("h1")) main.appendChild(h("h1", null, "Error"));
        main.appendChild(errorBox(e));
        if (!(e instanceof ApiError) && window.console) console.error(e);
      }
      return;
    }
    setTitle("Not found");
    add(main, h("h1", null, "Not found"), h("p", null, "No page at ", h("code", null, path), ". ", link("/", "Home")));
  }

  function isUiPath(p) { return !p.startsWith("/v1/") && !p.startsWith("/static/") && routes.some(([re]) => re.test(p)); }

  document.addEventListener("click", (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const a = ev.target.closest && ev.target.closest("a[href]");
    if (!a || a.hasAttribute("download")) return;
    const apiPath = apiPathOf(a);
    if (apiPath) {  // an API file: with a key, fetched with it; without, the browser's own navigation
      if (getKey()) { ev.preventDefault(); openApiFile(apiPath, a); }
      return;
    }
    if (a.target && a.target !== "_self") return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || !isUiPath(url.pathname)) return;
    if (url.hash && url.pathname === location.pathname && url.search === location.search) return;  // in-page anchor
    ev.preventDefault();
    navigate(url.pathname + url.search + url.hash);
  });
  window.addEventListener("popstate", () => render(true));

  // ------------------------------------------------------------------------------- home, models

  async function pageHome(ctx) {
    setTitle("");
    const modelsSec = h("section", {id: "models", "aria-labelledby": "models-h"}, h("h2", {id: "models-h"}, "Models"));
    const jobsSec = h("section", {id: "indexed-jobs", "aria-labelledby": "indexed-h"},
      h("h2", {id: "indexed-h"}, "Recently indexed jobs"));
    add(ctx.main, 
      h("h1", null, "Neuron atlas"),
      h("p", {class: "lede"}, "Every finding about a neuron, from every indexed job: expert concepts, descriptors, " +
        "explanations, rankings, activation statistics and exemplars."),
      searchForm("home-search-input"), modelsSec, jobsSec);
    await Promise.all([
      fill(ctx, modelsSec, getModels(true), modelsTable),
      fill(ctx, jobsSec, api("/v1/atlas/jobs?limit=10"), (d) => [
        indexedJobsTable(arr(d && d.items)),
        d && d.total > arr(d.items).length ? h("p", null, link("/jobs#indexed", `All ${d.total} indexed jobs`)) : null,
      ]),
    ]);
  }

  async function pageModels(ctx) {
    setTitle("Models");
    const sec = h("section", {id: "models"});
    add(ctx.main, breadcrumbs(["/", "Home"], [null, "Models"]), h("h1", null, "Models"), sec);
    await fill(ctx, sec, getModels(true), modelsTable);
  }

  function modelsTable(models) {
    if (!models.length) return none("No model in the atlas yet: index a result folder (docs/atlas.md).");
    return table("models-table", [
      {label: "Model", cell: (m) => link(modelHref(m.key), m.key, {class: "model-link"})},
      {label: "Model id", cell: (m) => h("code", null, m.model_id ?? "—")},
      {label: "Revision", cell: (m) => m.revision || "default"},
      {label: "Type", cell: (m) => [m.model_type || "—", m.random_init ? [" ", badge("random init", "random-init")] : null]},
      {label: "Layers", num: true, cell: (m) => fmt(arr(m.layers).length)},
      {label: "Sites", cell: (m) => arr(m.sites).join(", ") || "—"},
      {label: "Neurons", num: true, cell: (m) => fmt(m.n_neurons)},
    ], models, (m) => ({class: "model-row", dataset: {model: m.key}}));
  }

  function indexedJobsTable(items) {
    if (!items.length) return none("No job indexed yet.");
    return table("indexed-jobs-table", [
      {label: "Job", cell: (j) => jobCell(j)},
      {label: "Kind", key: "kind", cell: (j) => j.kind || "—"},
      {label: "Model", cell: (j) => (arr(j.models).length ? arr(j.models).map((m, i) => [i ? ", " : "", link(modelHref(m), m)])
        : isObj(j.provenance) && j.provenance.model ? h("code", null, j.provenance.model, j.provenance.requested_revision ? `@${j.provenance.requested_revision}` : "") : "—")},
      {label: "Created", cell: (j) => fmtTime(j.created_at)},
      {label: "Indexed", cell: (j) => fmtTime(j.indexed_at)},
      {label: "Folder", cell: (j) => h("code", {class: "job-dir"}, j.result_dir || "—")},
      {label: "Summary", cell: (j) => h("span", {class: "summary", title: brief(j.summary, 2000)}, brief(j.summary, 120))},
    ], items, (j) => ({class: "indexed-job-row", dataset: {key: j.key}}));
  }

  /** Layers of a model with their neuron counts: ``layers`` may list numbers or {layer, n_neurons}. */
  function layerRows(m) {
    const per = isObj(m.neurons_per_layer) ? m.neurons_per_layer : null;
    return arr(m.layers).map((l) => (isObj(l)
      ? {layer: l.layer, n: l.n_neurons ?? l.n ?? l.count ?? null}
      : {layer: l, n: per ? per[l] ?? null : null}));
  }

  async function pageModel(ctx, key) {
    setTitle(key);
    add(ctx.main, breadcrumbs(["/", "Home"], ["/models", "Models"], [null, key]), h("h1", {id: "model-title"}, key));
    const spin = loading();
    ctx.main.appendChild(spin);
    const models = await getModels();
    if (!ctx.alive()) return;
    spin.remove();
    const m = models.find((x) => x.key === key);
    if (!m) throw new ApiError(404, `no model ${key} in the atlas`);
    add(ctx.main, 
      h("dl", {class: "facts"},
        h("dt", null, "Model id"), h("dd", null, h("code", null, m.model_id ?? "—")),
        h("dt", null, "Revision"), h("dd", null, m.revision || "default"),
        h("dt", null, "Weights sha256"), h("dd", null, h("code", {title: m.weight_sha256 || ""}, (m.weight_sha256 || "—").slice(0, 16))),
        h("dt", null, "Type"), h("dd", null, m.model_type || "—", m.random_init ? [" ", badge("random init", "random-init")] : null),
        h("dt", null, "Sites"), h("dd", null, arr(m.sites).join(", ") || "—"),
        h("dt", null, "Neurons"), h("dd", null, fmt(m.n_neurons))),
      h("h2", null, "Layers"));
    const rows = layerRows(m);
    ctx.main.appendChild(rows.length ? table("layers-table", [
      {label: "Layer", cell: (r) => link(layerHref(key, r.layer), `Layer ${r.layer}`)},
      {label: "Neurons", num: true, cell: (r) => fmt(r.n)},
    ], rows, (r) => ({class: "layer-row", dataset: {layer: r.layer}})) : none());
  }

  // ------------------------------------------------------------------------------- layer: the neurons table

  const NEURON_SORTS = [
    ["unit", "Unit", "asc"], [null, "Status"], ["max_activation", "Max", "desc"], ["mean_activation", "Mean", "desc"],
    ["firing_density", "Firing", "desc"], [null, "Top descriptor"], ["n_descriptors", "Descriptors", "desc"],
    ["n_verified", "Verified", "desc"], [null, "Concepts"], ["best_ap", "Best AP", "desc"], ["best_rank", "Best rank", "asc"],
  ];
  const STATUS_FILTERS = [["all", "all"], ...STATUSES.map((x) => [x, x])];

  function layerUrl(model, layer, st) {
    const q = new URLSearchParams();
    for (const k of ["site", "descriptor", "concept"]) if (st[k]) q.set(k, st[k]);
    if (st.status && st.status !== "all") q.set("status", st.status);
    if (st.sort && st.sort !== "unit") q.set("sort", st.sort);
    if (st.order && st.order !== "asc") q.set("order", st.order);
    if (st.offset > 0) q.set("offset", String(st.offset));
    const qs = q.toString();
    return layerHref(model, layer) + (qs ? `?${qs}` : "");
  }

  async function pageLayer(ctx, model, layer) {
    const p = ctx.params;
    const st = {
      site: p.get("site") || "", descriptor: p.get("descriptor") || "", concept: p.get("concept") || "",
      status: p.get("status") || "all", sort: p.get("sort") || "unit",
      order: p.get("order") === "desc" ? "desc" : "asc", offset: Math.max(0, parseInt(p.get("offset"), 10) || 0),
    };
    setTitle(`${model} layer ${layer}`);
    const descriptor = h("input", {id: "filter-descriptor", name: "descriptor", type: "search", value: st.descriptor});
    const concept = h("input", {id: "filter-concept", name: "concept", type: "search", value: st.concept});
    const status = h("select", {id: "filter-status", name: "status"},
      STATUS_FILTERS.map(([v, t]) => h("option", {value: v, selected: v === st.status}, t)));
    const siteSel = h("select", {id: "filter-site", name: "site"}, h("option", {value: ""}, "all sites"));
    const siteField = h("span", {class: "field", hidden: true}, h("label", {for: "filter-site"}, "Site"), " ", siteSel);
    const apply = (ev) => {
      if (ev) ev.preventDefault();
      navigate(layerUrl(model, layer, {...st, descriptor: descriptor.value.trim(), concept: concept.value.trim(),
        status: status.value, site: siteSel.value, offset: 0}));
    };
    status.addEventListener("change", apply);
    siteSel.addEventListener("change", apply);
    const filters = h("form", {id: "neuron-filters", class: "filters", onsubmit: apply},
      h("span", {class: "field"}, h("label", {for: "filter-descriptor"}, "Descriptor"), " ", descriptor),
      h("span", {class: "field"}, h("label", {for: "filter-concept"}, "Concept"), " ", concept),
      h("span", {class: "field"}, h("label", {for: "filter-status"}, "Status"), " ", status),
      siteField,
      h("button", {type: "submit"}, "Filter"), " ",
      link(layerHref(model, layer), "Clear", {class: "clear-filters"}));
    const results = h("div", {id: "neurons"});
    add(ctx.main, breadcrumbs(["/", "Home"], [modelHref(model), model], [null, `Layer ${layer}`]),
      h("h1", null, `${model} · layer ${layer}`), filters, results);

    getModels().then((models) => {  // the site selector, when the model has several sites
      const m = models.find((x) => x.key === model);
      const sites = m ? arr(m.sites) : [];
      if (!ctx.alive() || sites.length < 2) return;
      for (const site of sites) siteSel.appendChild(h("option", {value: site, selected: site === st.site}, site));
      siteField.hidden = false;
    }).catch(() => {});

    const q = new URLSearchParams({model, layer, limit: String(PAGE_SIZE), offset: String(st.offset), sort: st.sort, order: st.order});
    for (const k of ["site", "descriptor", "concept"]) if (st[k]) q.set(k, st[k]);
    if (st.status !== "all") q.set("status", st.status);
    await fill(ctx, results, api(`/v1/atlas/neurons?${q}`), (d) => neuronsTable(model, layer, st, d));
  }

  function neuronsTable(model, layer, st, d) {
    const items = arr(d && d.items);
    const total = Number(d && d.total) || 0;
    const head = NEURON_SORTS.map(([key, label, first]) => {
      if (!key) return h("th", {scope: "col"}, label);
      const on = st.sort === key;
      const order = on ? (st.order === "asc" ? "desc" : "asc") : first;
      return h("th", {scope: "col", class: key === "unit" ? null : "num", "aria-sort": on ? (st.order === "asc" ? "ascending" : "descending") : "none", dataset: {sort: key}},
        link(layerUrl(model, layer, {...st, sort: key, order, offset: 0}), [label, on ? (st.order === "asc" ? " ▲" : " ▼") : ""], {class: "sort-link", title: `Sort by ${label.toLowerCase()}`}));
    });
    const cols = [
      {cell: (n) => link(neuronHref(n.model || model, n.layer ?? layer, n.unit, n.site), `Unit ${n.unit}`, {class: "neuron-link"})},
      {cell: (n) => statusBadge(n.status)},
      {num: true, cell: (n) => fmt(n.max_activation)},
      {num: true, cell: (n) => fmt(n.mean_activation)},
      {num: true, cell: (n) => fmtShare(n.firing_density)},
      {cell: (n) => n.top_descriptor || h("span", {class: "muted"}, "—")},
      {num: true, cell: (n) => fmt(n.n_descriptors)},
      {num: true, cell: (n) => (n.n_verified ? badge(fmt(n.n_verified), "verified") : fmt(n.n_verified))},
      {cell: (n) => conceptList(n.concepts)},
      {num: true, cell: (n) => fmt(n.best_ap)},
      {num: true, cell: (n) => fmt(isObj(n.best_rank) ? n.best_rank.position : n.best_rank)},
    ].map((c, i) => ({...c, th: head[i]})).filter((c, i) => NEURON_SORTS[i][1] !== "Concepts" || items.some((n) => "concepts" in n));
    const first = total ? st.offset + 1 : 0;
    const last = st.offset + items.length;
    const pager = h("nav", {id: "pager", class: "pager", "aria-label": "Pages"},
      st.offset > 0 ? link(layerUrl(model, layer, {...st, offset: Math.max(0, st.offset - PAGE_SIZE)}), "← Previous", {class: "pager-prev", rel: "prev"})
        : h("span", {class: "pager-prev disabled", "aria-disabled": "true"}, "← Previous"),
      h("span", {class: "pager-info"}, total ? `${first}–${last} of ${fmt(total)}` : "0 neurons"),
      last < total ? link(layerUrl(model, layer, {...st, offset: st.offset + PAGE_SIZE}), "Next →", {class: "pager-next", rel: "next"})
        : h("span", {class: "pager-next disabled", "aria-disabled": "true"}, "Next →"));
    if (!items.length) return [none(st.offset ? "No neurons on this page." : "No neuron of this layer matches (from the indexed jobs)."), pager];
    return [
      h("div", {class: "table-wrap"}, table("neurons-table", cols, items, (n) => ({class: "neuron-row", dataset: {unit: n.unit, status: n.status ?? ""}}))),
      pager,
    ];
  }

  function conceptList(cs) {
    const list = arr(cs);
    if (!list.length) return h("span", {class: "muted"}, "—");
    return list.slice(0, 6).map((c, i) => {
      const name = isObj(c) ? c.concept ?? c.name : c;
      const ap = isObj(c) && c.ap !== undefined ? ` (${fmt(c.ap)})` : "";
      return [i ? ", " : "", link(conceptHref(name), `${name}${ap}`, {class: "concept-link"})];
    }).concat(list.length > 6 ? [` +${list.length - 6}`] : []);
  }

  // ------------------------------------------------------------------------------- neuron page

  function neighbourLink(ref, model, site, id, text) {
    if (!ref) return h("span", {id, class: "neighbour disabled", "aria-disabled": "true"}, text);
    let href;
    if (typeof ref === "string") href = ref.startsWith("/") && !ref.startsWith("//") ? ref : null;
    else if (isObj(ref)) href = neuronHref(ref.model || model, ref.layer, ref.unit, ref.site || site);
    if (!href) return h("span", {id, class: "neighbour disabled"}, text);
    const label = isObj(ref) ? `${text} (L${ref.layer}/${ref.unit})` : text;
    return link(href, label, {id, class: "neighbour", rel: id === "neuron-prev" ? "prev" : "next"});
  }

  async function pageNeuron(ctx, model, layer, unit) {
    const site = ctx.params.get("site") || "";
    setTitle(`${model} L${layer}/${unit}`);
    add(ctx.main, breadcrumbs(["/", "Home"], [modelHref(model), model], [layerHref(model, layer), `Layer ${layer}`], [null, `Unit ${unit}`]),
      h("h1", {id: "neuron-title"}, `${model} · layer ${layer} · unit ${unit}`));
    const spin = loading();
    ctx.main.appendChild(spin);
    const path = `/v1/atlas/neurons/${enc(model)}/${enc(layer)}/${enc(unit)}${site ? `?site=${enc(site)}` : ""}`;
    const d = await api(path);
    if (!ctx.alive()) return;
    spin.remove();
    const n = d.neuron || {};
    const theSite = n.site || site;
    $("#neuron-title").textContent = `${n.model || model} · layer ${n.layer ?? layer} · unit ${n.unit ?? unit}${theSite ? ` · ${theSite}` : ""}`;
    setTitle(`${n.model || model} L${n.layer ?? layer}/${n.unit ?? unit}`);
    const jobs = new Map(arr(d.jobs).map((j) => [String(jobKeyOf(j)), j]));
    const sites = arr(d.sites);
    add(ctx.main, 
      h("p", {class: "neuron-meta"},
        "Model ", h("code", null, n.model_id || model), n.revision ? [" at revision ", h("code", null, n.revision)] : null,
        theSite ? [", site ", h("code", null, theSite)] : null, "."),
      sites.length > 1 ? h("p", {class: "sites"}, "Sites: ", sites.map((x, i) => [i ? " · " : "",
        x === theSite ? h("strong", null, x) : link(neuronHref(model, layer, unit, x), x, {class: "site-link"})])) : null,
      h("nav", {class: "neighbours", "aria-label": "Neighbouring neurons"},
        neighbourLink(d.prev, model, theSite, "neuron-prev", "← Previous"), " ",
        link(layerUrl(model, n.layer ?? layer, {site: theSite}), `All of layer ${n.layer ?? layer}`), " ",
        neighbourLink(d.next, model, theSite, "neuron-next", "Next →")),
      h("nav", {class: "toc", "aria-label": "Sections"}, [["activation", "Activation"], ["exemplars", "Exemplars"],
        ["descriptors", "Descriptors"], ["explanations", "Explanations"], ["neuron-concepts", "Concepts"], ["ranks", "Ranks"],
        ["effects", "Effects"], ["neuron-jobs", "Jobs"]].map(([id, t], i) => [i ? " · " : "", h("a", {href: `#${id}`}, t)])));
    const stats = arr(d.stats);
    add(ctx.main, 
      activationSection(stats, jobs),
      exemplarsSection(arr(d.exemplars), stats, jobs),
      descriptorsSection(arr(d.descriptors), jobs),
      explanationsSection(arr(d.explanations), jobs),
      neuronConceptsSection(arr(d.concepts), jobs),
      ranksSection(arr(d.ranks), jobs),
      effectsSection(arr(d.effects), jobs),
      neuronJobsSection(arr(d.jobs)));
    if (location.hash) { const target = document.getElementById(location.hash.slice(1)); if (target) target.scrollIntoView(); }
  }

  function sectionBox(id, title, ...body) {
    return h("section", {id, class: "neuron-section", "aria-labelledby": `${id}-h`}, h("h2", {id: `${id}-h`}, title), body);
  }

  // --- the activation histogram (inline SVG)

  function niceStep(range, n) {
    const raw = range / Math.max(1, n);
    const mag = 10 ** Math.floor(Math.log10(raw || 1));
    const r = raw / mag;
    return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
  }
  function ticks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    const step = niceStep(hi - lo, n);
    const out = [];
    for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) out.push(k === 0 ? 0 : Number((k * step).toPrecision(12)));
    return out;
  }
  const tickLabel = (v) => { const a = Math.abs(v); return a === 0 ? "0" : a >= 1000 || a < 0.01 ? v.toExponential(0) : String(Number(v.toPrecision(3))); };

  function histogramSvg(hist, {log = false, title = ""} = {}) {
    const edges = arr(hist && hist.edges).map(Number);
    const counts = arr(hist && hist.counts).map((c) => Number(c) || 0);
    if (!counts.length || edges.length !== counts.length + 1 || !edges.every(Number.isFinite)) return null;
    const W = 640, H = 240, m = {l: 58, r: 14, t: 12, b: 46};
    const x0 = edges[0], x1 = edges[edges.length - 1], span = x1 - x0 || 1;
    const tf = (c) => (log ? Math.log10(1 + c) : c);
    const cmax = Math.max(...counts);
    const top = Math.max(tf(cmax), log ? 1 : 1);
    const X = (v) => m.l + ((v - x0) / span) * (W - m.l - m.r);
    const Y = (c) => H - m.b - (tf(c) / top) * (H - m.t - m.b);
    const total = counts.reduce((a, b) => a + b, 0);
    const g = s("svg", {viewBox: `0 0 ${W} ${H}`, class: "histogram", role: "img",
      "aria-label": `${title ? `${title}: ` : ""}histogram of the unit's activation over ${total} sentences, from ${tickLabel(x0)} to ${tickLabel(x1)}`});
    const bars = s("g", {class: "bars"});
    counts.forEach((c, i) => {
      const xa = X(edges[i]), xb = X(edges[i + 1]);
      const y = Y(c);
      bars.appendChild(s("rect", {class: "bar", x: xa.toFixed(2), y: y.toFixed(2), width: Math.max(0.6, xb - xa - 0.6).toFixed(2),
        height: Math.max(0, H - m.b - y).toFixed(2), "data-count": c},
        s("title", null, `[${fmt(edges[i])}, ${fmt(edges[i + 1])}): ${c} sentence${c === 1 ? "" : "s"}`)));
    });
    const axes = s("g", {class: "axes"},
      s("line", {x1: m.l, y1: H - m.b, x2: W - m.r, y2: H - m.b}),
      s("line", {x1: m.l, y1: m.t, x2: m.l, y2: H - m.b}));
    for (const v of ticks(x0, x1, 6)) {
      const x = X(v);
      add(axes, s("line", {x1: x, y1: H - m.b, x2: x, y2: H - m.b + 5}),
        s("text", {x, y: H - m.b + 18, "text-anchor": "middle", class: "tick"}, tickLabel(v)));
    }
    const yt = log ? [0, ...[1, 10, 100, 1000, 10000, 100000, 1e6].filter((v) => v <= Math.max(1, cmax))] : ticks(0, Math.max(1, cmax), 4).filter(Number.isInteger);
    for (const v of yt) {
      const y = Y(v);
      add(axes, s("line", {x1: m.l - 5, y1: y, x2: m.l, y2: y}),
        s("text", {x: m.l - 8, y: y + 4, "text-anchor": "end", class: "tick"}, fmt(v)));
    }
    add(axes, 
      s("text", {x: (m.l + W - m.r) / 2, y: H - 8, "text-anchor": "middle", class: "axis-label"}, "activation"),
      s("text", {x: 14, y: (m.t + H - m.b) / 2, "text-anchor": "middle", class: "axis-label",
        transform: `rotate(-90 14 ${(m.t + H - m.b) / 2})`}, log ? "sentences (log scale)" : "sentences"));
    if (x0 < 0 && x1 > 0) axes.appendChild(s("line", {class: "zero", x1: X(0), y1: m.t, x2: X(0), y2: H - m.b}));
    add(g, bars, axes);
    return g;
  }

  function activationSection(stats, jobs) {
    const withHist = stats.filter((st) => st && st.histogram && arr(st.histogram.counts).length);
    const box = h("div", {id: "histogram"});
    const logBox = h("input", {type: "checkbox", id: "histogram-log"});
    const draw = () => {
      box.replaceChildren(...withHist.map((st) => h("figure", {class: "histogram-figure"},
        histogramSvg(st.histogram, {log: logBox.checked, title: withHist.length > 1 ? `job ${jobKeyOf(st.job)}` : ""}) || none("histogram unreadable"),
        withHist.length > 1 ? h("figcaption", null, "From ", jobCell(st.job, jobs)) : null)));
    };
    logBox.addEventListener("change", draw);
    draw();
    const statTable = stats.length ? table("stats-table", [
      {label: "Job", cell: (st) => jobCell(st.job, jobs)},
      {label: "Status", cell: (st) => statusBadge(st.status)},
      {label: "Max", num: true, cell: (st) => fmt(st.max)},
      {label: "Mean", num: true, cell: (st) => fmt(st.mean)},
      {label: "Firing density", num: true, cell: (st) => fmtShare(st.firing_density)},
      {label: "Exemplars", num: true, cell: (st) => fmt(st.n_exemplars)},
      {label: "Quantiles", cell: (st) => quantileList(st.quantiles)},
    ], stats, () => ({class: "stats-row"})) : null;
    return sectionBox("activation", "Activation",
      withHist.length ? [h("p", {class: "histogram-controls"}, logBox, " ", h("label", {for: "histogram-log"}, "log scale")), box]
        : [box, none(`no histogram: ${NONE_TEXT}`)],
      statTable || none(`no statistics: ${NONE_TEXT}`));
  }

  function quantileList(q) {
    if (!isObj(q) || !Object.keys(q).length) return h("span", {class: "muted"}, "—");
    const keys = Object.keys(q).sort((a, b) => Number(a) - Number(b));
    return h("span", {class: "quantiles"}, keys.map((k, i) => [i ? ", " : "", h("span", {class: "quantile"}, `q${k}: ${fmt(q[k])}`)]));
  }

  // --- exemplars, token by token

  function tokenColour(v, max) {
    const x = Number(v);
    if (v === null || v === undefined || !Number.isFinite(x) || x === 0) return "";
    const t = Math.min(1, Math.abs(x) / max);
    return x > 0 ? `rgba(222, 84, 18, ${(0.88 * t).toFixed(3)})` : `rgba(50, 110, 210, ${(0.3 * t).toFixed(3)})`;
  }

  function exemplarText(ex, unitMax) {
    const text = String(ex.text ?? "");
    const toks = arr(ex.tokens);
    let max = Number(unitMax);
    if (!(max > 0)) max = Math.max(0, ...toks.map((t) => Number(t && t.value) || 0));
    if (!(max > 0)) max = 1;
    const out = h("p", {class: "exemplar-text"});
    let cur = 0;
    toks.forEach((t, i) => {
      if (!t) return;
      const a = Math.min(Math.max(Number(t.start) || 0, cur), text.length);
      const b = Math.min(Math.max(Number(t.end) || 0, a), text.length);
      if (a > cur) out.appendChild(document.createTextNode(text.slice(cur, a)));
      const peak = i === ex.peak;
      const val = t.value === null || t.value === undefined ? "" : String(t.value);
      const span = h("span", {class: peak ? "tok peak" : "tok", "data-value": val,
        title: `${t.text !== undefined ? `${t.text}: ` : ""}${fmt(t.value)}${peak ? " (peak)" : ""}`}, text.slice(a, b));
      const bg = tokenColour(t.value, max);
      if (bg) span.style.backgroundColor = bg;
      out.appendChild(span);
      cur = b;
    });
    if (cur < text.length) out.appendChild(document.createTextNode(text.slice(cur)));
    return out;
  }

  const isTop = (ex) => ex.kind === "top" || ex.kind === 0 || ex.kind === "0";

  function exemplarItem(ex, unitMax) {
    return h("li", {class: "exemplar", dataset: {kind: isTop(ex) ? "top" : "quantile", row: ex.row, level: ex.level}},
      h("span", {class: "exemplar-activation", title: "pooled activation of the sentence"}, fmt(ex.activation)),
      exemplarText(ex, unitMax),
      ex.label !== null && ex.label !== undefined && ex.label !== "" ? badge(`label ${ex.label}`, "exemplar-label") : null);
  }

  function exemplarsSection(exemplars, stats, jobs) {
    if (!exemplars.length) return sectionBox("exemplars", "Exemplars", none());
    const maxOf = new Map(stats.map((st) => [String(jobKeyOf(st.job)), Number(st.max)]));
    const overall = Math.max(0, ...stats.map((st) => Number(st.max) || 0));
    const byJob = new Map();
    for (const ex of exemplars) {
      const k = String(jobKeyOf(ex.job));
      if (!byJob.has(k)) byJob.set(k, []);
      byJob.get(k).push(ex);
    }
    const legend = h("p", {class: "tok-legend"}, "Token colour: the unit's activation at the token, relative to its maximum: ",
      h("span", {class: "legend-scale", "aria-hidden": "true"}), " 0 → max; ", h("span", {class: "legend-peak"}, "outlined"),
      ": the peak token; faint blue: negative. The number beside a sentence is its pooled activation.");
    const blocks = [...byJob.entries()].map(([k, list]) => {
      const unitMax = Number.isFinite(maxOf.get(k)) && maxOf.get(k) > 0 ? maxOf.get(k) : overall;
      const top = list.filter(isTop).sort((a, b) => (a.rank ?? 0) - (b.rank ?? 0));
      const rest = list.filter((ex) => !isTop(ex));
      const levels = [...new Set(rest.map((ex) => ex.level))].sort((a, b) => Number(b) - Number(a));
      return h("div", {class: "exemplar-job", dataset: {job: k}},
        byJob.size > 1 ? h("h3", null, "From ", jobCell(list[0].job, jobs)) : null,
        h("h3", null, "Top exemplars"),
        top.length ? h("ol", {class: "exemplar-list top"}, top.map((ex) => exemplarItem(ex, unitMax))) : none(),
        h("h3", null, "Quantile samples"),
        rest.length ? levels.map((lv) => h("div", {class: "quantile-group"},
          h("h4", null, lv === null || lv === undefined ? "other samples" : `at quantile ${fmt(lv)}`),
          h("ul", {class: "exemplar-list quantile"}, rest.filter((ex) => ex.level === lv).map((ex) => exemplarItem(ex, unitMax))))) : none());
    });
    return sectionBox("exemplars", "Exemplars", legend, blocks);
  }

  // --- what the jobs found

  function descriptorsSection(rows, jobs) {
    return sectionBox("descriptors", "Descriptors", rows.length ? h("div", {class: "table-wrap"}, table("descriptors-table", [
      {label: "Descriptor", cell: (r) => [r.descriptor ?? "—", r.verified ? [" ", badge("verified", "verified")] : null]},
      {label: "f", num: true, title: "percent of the unit's valid exemplars that hold it", cell: (r) => fmtPercent(r.f)},
      {label: "Base rate", num: true, title: "percent of the dataset's sentences that hold it", cell: (r) => fmtPercent(r.base_rate)},
      {label: "Enrichment", num: true, cell: (r) => fmt(r.enrichment)},
      {label: "q", num: true, title: "Benjamini-Hochberg adjusted p", cell: (r) => fmtP(r.q ?? r.p)},
      {label: "Held-out AUROC", num: true, cell: (r) => fmt(r.auroc)},
      {label: "Verified", cell: (r) => (r.verified ? badge("verified", "verified") : r.verified === false ? "no" : "—")},
      {label: "Job", cell: (r) => jobCell(r.job, jobs)},
    ], rows, (r) => ({class: "descriptor-row"}))) : none());
  }

  const NOT_SCORES = new Set(["job", "text", "explanation", "verified", "n_pos", "n_neg", "chance", "scores"]);
  /** [{name, value, shuffled}]: each score beside its ``shuffled_<name>`` (the row's fields, or ``scores``). */
  function scorePairs(r) {
    const src = isObj(r.scores) ? r.scores : r;
    const val = (v) => (isObj(v) ? v.balanced_accuracy ?? v.value ?? v.score ?? null : v);
    return Object.keys(src).filter((k) => !k.startsWith("shuffled") && !NOT_SCORES.has(k))
      .map((k) => ({name: k.replace(/_/g, " "), value: val(src[k]), shuffled: val(src[`shuffled_${k}`])}))
      .filter((p) => p.value === null || typeof p.value === "number");
  }

  function explanationsSection(rows, jobs) {
    return sectionBox("explanations", "Explanations", rows.length ? rows.map((r) => {
      const pairs = scorePairs(r);
      const src = isObj(r.scores) ? r.scores : r;
      const text = r.text ?? r.explanation;
      const shuffledText = src.shuffled_explanation;
      const heldOut = src.n_pos !== undefined && src.n_pos !== null
        ? `scored on ${fmt(src.n_pos)} held-out sentences it fires on and ${fmt(src.n_neg)} it does not` : "";
      return h("div", {class: "explanation"},
        h("blockquote", null, text ?? h("span", {class: "muted"}, "no explanation")),
        src.verified ? h("p", null, badge("verified unit", "verified")) : null,
        heldOut || src.chance !== undefined ? h("p", {class: "from"}, [heldOut, src.chance !== undefined && src.chance !== null ? `${heldOut ? "; " : ""}chance ${fmt(src.chance)}` : ""].join("")) : null,
        pairs.length ? table(null, [
          {label: "Score", cell: (p) => p.name},
          {label: "Explanation", num: true, cell: (p) => fmt(p.value)},
          {label: "Shuffled explanation", num: true, cell: (p) => fmt(p.shuffled)},
        ], pairs) : h("p", {class: "muted"}, "no scores"),
        typeof shuffledText === "string" ? h("p", {class: "shuffled"}, "Shuffled baseline (another unit's explanation): ", h("q", null, shuffledText)) : null,
        h("p", {class: "from"}, "From ", jobCell(r.job, jobs)));
    }) : none());
  }

  function neuronConceptsSection(rows, jobs) {
    return sectionBox("neuron-concepts", "Expert concepts", rows.length ? table("neuron-concepts-table", [
      {label: "Concept", cell: (r) => link(conceptHref(r.concept), r.concept, {class: "concept-link"})},
      {label: "AP", num: true, cell: (r) => fmt(r.ap)},
      {label: "tau", num: true, cell: (r) => fmt(r.tau)},
      {label: "Expert", cell: (r) => (r.expert ? badge("expert", "expert") : "no")},
      {label: "Job", cell: (r) => jobCell(r.job, jobs)},
    ], rows, () => ({class: "concept-row"})) : none());
  }

  function ranksSection(rows, jobs) {
    return sectionBox("ranks", "Rank positions", rows.length ? table("ranks-table", [
      {label: "Method", cell: (r) => r.method ?? "—"},
      {label: "Attribute", cell: (r) => r.attribute ?? "—"},
      {label: "Position", num: true, cell: (r) => `${fmt(r.position)}${r.n_ranked ? ` of ${fmt(r.n_ranked)}` : ""}`},
      {label: "Score", num: true, cell: (r) => fmt(r.score)},
      {label: "Job", cell: (r) => jobCell(r.job, jobs)},
    ], rows, () => ({class: "rank-row"})) : none());
  }

  function effectsSection(rows, jobs) {
    return sectionBox("effects", "Effects", rows.length ? table("effects-table", [
      {label: "Kind", cell: (r) => r.kind ?? "—"},
      {label: "Set", cell: (r) => r.label ?? "—"},
      {label: "Effect", num: true, cell: (r) => fmt(r.value)},
      {label: "Interval", cell: (r) => (r.low === null || r.low === undefined ? "—" : `[${fmt(r.low)}, ${fmt(r.high)}]`)},
      {label: "Baseline", num: true, cell: (r) => fmt(r.baseline)},
      {label: "Job", cell: (r) => jobCell(r.job, jobs)},
    ], rows, () => ({class: "effect-row"})) : none());
  }

  function neuronJobsSection(rows) {
    return sectionBox("neuron-jobs", "Jobs", rows.length ? table("neuron-jobs-table", [
      {label: "Job", cell: (j) => jobCell(j)},
      {label: "Kind", cell: (j) => j.kind ?? "—"},
      {label: "Folder", cell: (j) => h("code", {class: "job-dir"}, j.result_dir ?? "—")},
      {label: "Created", cell: (j) => fmtTime(j.created_at)},
      {label: "Indexed", cell: (j) => fmtTime(j.indexed_at)},
    ], rows.map((j) => (isObj(j) ? j : {key: j})), () => ({class: "neuron-job-row"})) : none());
  }

  // ------------------------------------------------------------------------------- concepts

  async function pageConcepts(ctx) {
    setTitle("Concepts");
    const sec = h("section", {id: "concepts"});
    add(ctx.main, breadcrumbs(["/", "Home"], [null, "Concepts"]), h("h1", null, "Concepts"), sec);
    await fill(ctx, sec, api("/v1/atlas/concepts"), (d) => {
      const items = Array.isArray(d) ? d : arr(d && (d.items ?? d.concepts));
      if (!items.length) return none("No concept in the atlas yet: index an experts job.");
      const rows = items.map((c) => (isObj(c) ? c : {concept: c}));
      const nameOf = (c) => c.concept ?? c.name;
      const extra = Object.keys(rows[0]).filter((k) => k !== "concept" && k !== "name" && !isObj(rows[0][k]) && !Array.isArray(rows[0][k]));
      return localPager(rows, (page) => table("concepts-table", [
        {label: "Concept", cell: (c) => link(conceptHref(nameOf(c)), nameOf(c), {class: "concept-link"})},
        ...extra.map((k) => ({label: k.replace(/_/g, " "), num: typeof rows[0][k] === "number", cell: (c) => fmt(c[k])})),
      ], page, (c) => ({class: "concept-row", dataset: {concept: nameOf(c)}})), "concepts-pager");
    });
  }

  /** A models x layers table of counts; cells: [[rowKey, layer, n]]; rowHead(rowKey) -> the row's header. */
  function countsTable(id, cells, rowHead, cellLink) {
    const rowKeys = [...new Set(cells.map((c) => c[0]))];
    const layers = [...new Set(cells.map((c) => String(c[1])))].sort((a, b) => Number(a) - Number(b));
    const at = new Map(cells.map((c) => [`${c[0]}\u0000${c[1]}`, c[2]]));
    return h("div", {class: "table-wrap"}, h("table", {id, class: "data counts"},
      h("thead", null, h("tr", null, h("th", {scope: "col"}, "Model"), layers.map((l) => h("th", {scope: "col", class: "num"}, `L${l}`)))),
      h("tbody", null, rowKeys.map((k) => h("tr", null, h("th", {scope: "row"}, rowHead(k)),
        layers.map((l) => {
          const v = at.get(`${k}\u0000${l}`);
          return h("td", {class: "num"}, v === undefined ? "—" : cellLink ? cellLink(k, l, v) : fmt(v));
        }))))));
  }

  function conceptNeuronsTable(id, rows) {
    return localPager(rows, (page) => table(id, [
      {label: "Model", cell: (e) => link(modelHref(e.model), e.model ?? "—")},
      {label: "Revision", cell: (e) => e.revision || "default"},
      {label: "Layer", num: true, cell: (e) => fmt(e.layer)},
      {label: "Unit", cell: (e) => link(neuronHref(e.model, e.layer, e.unit, e.site), `Unit ${e.unit}`, {class: "neuron-link"})},
      {label: "AP", num: true, cell: (e) => fmt(e.ap)},
      {label: "tau", num: true, cell: (e) => fmt(e.tau)},
      {label: "Expert", cell: (e) => (e.expert === false ? "no" : badge("expert", "expert"))},
      {label: "Job", cell: (e) => (e.job !== undefined ? jobCell(e.job) : "—")},
    ], page, (e) => ({class: id === "concept-experts" ? "expert-row" : "top-row", dataset: {model: e.model, layer: e.layer, unit: e.unit}})),
    `${id}-pager`);
  }

  async function pageConcept(ctx, name) {
    setTitle(`Concept ${name}`);
    add(ctx.main, breadcrumbs(["/", "Home"], ["/concepts", "Concepts"], [null, name]), h("h1", {id: "concept-title"}, `Concept: ${name}`));
    const spin = loading();
    ctx.main.appendChild(spin);
    const d = await api(`/v1/atlas/concepts/${enc(name)}`);
    if (!ctx.alive()) return;
    spin.remove();
    const experts = arr(d && (d.experts ?? d.items));
    const top = arr(d && d.top);
    // experts per (model, layer), from the indexed units
    const perLayer = arr(d && d.experts_per_layer).filter(isObj).map((c) => [String(c.model), c.layer, c.n ?? c.count]);
    const countsSec = h("section", {id: "concept-counts-section", "aria-labelledby": "counts-h"},
      h("h2", {id: "counts-h"}, "Experts per model and layer"),
      perLayer.length ? countsTable("concept-counts", perLayer, (m) => link(modelHref(m), m),
        (m, l, v) => link(layerUrl(m, l, {concept: name}), fmt(v))) : none());
    // the sweeps' counts (models, revisions, random inits whose units are not indexed)
    const sweep = arr(d && d.counts).filter((c) => isObj(c) && isObj(c.counts));
    const sweepSec = h("section", {id: "concept-sweep-section", "aria-labelledby": "sweep-h"},
      h("h2", {id: "sweep-h"}, "Sweeps: experts per layer across models and revisions"));
    if (sweep.length) {
      const label = (c) => `${c.model ?? "?"}${c.revision ? `@${c.revision}` : ""}${c.random_init ? " (random init)" : ""}`;
      const rows = sweep.map((c, i) => ({i, c}));
      const cells = rows.flatMap(({i, c}) => Object.entries(c.counts).map(([l, n]) => [i, l, n]));
      add(sweepSec, countsTable("concept-sweep", cells, (i) => {
        const c = rows[i].c;
        return [h("span", {class: "sweep-model"}, label(c)), c.step !== null && c.step !== undefined ? h("span", {class: "muted"}, ` step ${fmt(c.step)}`) : null,
          c.job ? [" ", h("span", {class: "muted"}, "from "), jobCell(c.job)] : null];
      }));
    } else {
      sweepSec.appendChild(none());
    }
    const expSec = h("section", {id: "concept-experts-section", "aria-labelledby": "experts-h"},
      h("h2", {id: "experts-h"}, `Expert neurons (${fmt(experts.length)})`),
      experts.length ? conceptNeuronsTable("concept-experts", experts) : none());
    const topSec = top.length ? h("section", {id: "concept-top-section", "aria-labelledby": "top-h"},
      h("h2", {id: "top-h"}, "Top units below tau"), conceptNeuronsTable("concept-top", top)) : null;
    add(ctx.main, countsSec, expSec, topSec, sweepSec);
  }

  // ------------------------------------------------------------------------------- search

  async function pageSearch(ctx) {
    const q = (ctx.params.get("q") || "").trim();
    setTitle(q ? `Search: ${q}` : "Search");
    add(ctx.main, h("h1", null, q ? `Search: ${q}` : "Search"), searchForm("search-page-input", q));
    if (!q) return;
    const sec = h("section", {id: "search-results", "aria-label": "Results"});
    ctx.main.appendChild(sec);
    await fill(ctx, sec, api(`/v1/atlas/search?q=${enc(q)}&limit=50`), (d) => {
      const items = arr(d && d.items);
      if (!items.length) return none(`Nothing matches “${q}” ${NONE_TEXT.replace("none ", "")}.`);
      return [h("p", {class: "muted"}, `${items.length} matching text${items.length === 1 ? "" : "s"}`),
        items.map((it) => {
          const neurons = arr(it.neurons);
          return h("article", {class: "search-result", dataset: {kind: it.kind, match: it.match}},
            h("h2", {class: "result-text"}, it.kind === "concept" && it.text ? link(conceptHref(it.text), it.text, {class: "concept-link"}) : it.text ?? "—"),
            h("p", {class: "result-meta"}, badge(it.kind ?? "?", `result-kind kind-${slugClass(it.kind)}`), " ",
              badge(`match: ${it.match ?? "?"}`, `result-match match-${slugClass(it.match)}`), " ",
              h("span", {class: "result-score"}, `score ${fmt(it.score)}`), ` · ${neurons.length} neuron${neurons.length === 1 ? "" : "s"}`),
            neurons.length ? h("ul", {class: "result-neurons"}, neurons.slice(0, LOCAL_PAGE).map((n) => h("li", null,
              link(neuronHref(n.model, n.layer, n.unit, n.site), neuronLabel(n), {class: "search-neuron"}),
              n.value !== undefined && n.value !== null ? h("span", {class: "muted"}, ` ${fmt(n.value)}`) : null)),
            neurons.length > LOCAL_PAGE ? h("li", {class: "muted"}, `and ${neurons.length - LOCAL_PAGE} more`) : null) : none());
        })];
    });
  }

  // ------------------------------------------------------------------------------- jobs page

  async function pageJobs(ctx) {
    setTitle("Jobs");
    const listSec = h("section", {id: "service-jobs", "aria-labelledby": "service-jobs-h"}, h("h2", {id: "service-jobs-h"}, "Jobs of the service"));
    const submitSec = h("section", {id: "submit", "aria-labelledby": "submit-h"}, h("h2", {id: "submit-h"}, "Submit a job"));
    const indexedSec = h("section", {id: "indexed", "aria-labelledby": "indexed-h"}, h("h2", {id: "indexed-h"}, "Indexed in the atlas"));
    add(ctx.main, breadcrumbs(["/", "Home"], [null, "Jobs"]), h("h1", null, "Jobs"), listSec, submitSec, indexedSec);
    const jobsList = jobsController(ctx, listSec);
    submitSec.appendChild(submitForm(ctx, (rec) => jobsList.upsert(rec)));
    indexedList(ctx, indexedSec);
    await jobsList.refresh();
  }

  function indexedList(ctx, sec) {
    const box = h("div");
    sec.appendChild(box);
    let offset = 0;
    const load = async () => {
      box.replaceChildren();
      await fill(ctx, box, api(`/v1/atlas/jobs?limit=${JOBS_PAGE}&offset=${offset}`), (d) => {
        const items = arr(d && d.items), total = Number(d && d.total) || 0;
        return [indexedJobsTable(items), total > JOBS_PAGE ? h("nav", {id: "indexed-pager", class: "pager", "aria-label": "Pages"},
          h("button", {type: "button", class: "pager-prev", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - JOBS_PAGE); load(); }}, "← Previous"),
          h("span", {class: "pager-info"}, `${offset + 1}–${offset + items.length} of ${fmt(total)}`),
          h("button", {type: "button", class: "pager-next", disabled: offset + JOBS_PAGE >= total, onclick: () => { offset += JOBS_PAGE; load(); }}, "Next →")) : null];
      });
    };
    load();
  }

  function jobsController(ctx, sec) {
    const errBox = h("div", {id: "jobs-error"});
    const listBox = h("div", {id: "jobs-list"}, loading());
    const refreshBtn = h("button", {type: "button", id: "jobs-refresh", class: "link-button"}, "Refresh");
    const note = h("span", {class: "muted", id: "jobs-polling", role: "status"});
    add(sec, h("p", {class: "jobs-toolbar"}, refreshBtn, " ", note), errBox, listBox);
    let records = [];
    let loaded = false;
    let timer = null;
    const artefacts = new Map();  // job id -> {state: loading|ok|error, files, error}

    const active = () => records.some((r) => !FINAL.has(r.status));
    function schedule() {
      clearTimeout(timer);
      timer = null;
      if (ctx.alive() && active()) timer = setTimeout(refresh, POLL_MS);
      note.textContent = timer ? "updating every 2 s while a job is queued or running" : "";
    }
    async function refresh() {
      clearTimeout(timer);
      try {
        const list = await api("/v1/jobs?limit=50");
        if (!ctx.alive()) return;
        records = arr(list);
        loaded = true;
        errBox.replaceChildren();
        draw();
      } catch (e) {
        if (!ctx.alive()) return;
        errBox.replaceChildren(errorBox(e));
        if (!loaded) listBox.replaceChildren();
      }
      schedule();
    }
    function upsert(rec) {
      records = [rec, ...records.filter((r) => r.id !== rec.id)];
      loaded = true;
      draw();
      schedule();
    }
    refreshBtn.addEventListener("click", refresh);
    ctx.onLeave(() => clearTimeout(timer));

    function loadArtefacts(id) {
      if (artefacts.has(id)) return;
      artefacts.set(id, {state: "loading"});
      api(`/v1/jobs/${enc(id)}/artefacts`).then((files) => {
        artefacts.set(id, {state: "ok", files: arr(files)});
      }).catch((e) => {
        artefacts.set(id, {state: "error", error: e});
      }).then(() => { if (ctx.alive()) draw(); });
    }

    function artefactsCell(rec) {
      const a = artefacts.get(rec.id);
      if (!a) return h("button", {type: "button", class: "job-files-button link-button", onclick: () => { loadArtefacts(rec.id); draw(); }}, "List files");
      if (a.state === "loading") return h("span", {class: "muted"}, "listing files…");
      if (a.state === "error") return h("span", {class: "error-inline"}, detailText(a.error.detail));
      if (!a.files.length) return h("span", {class: "muted"}, "no files");
      const depth = (f) => f.split("/").length;
      const pages = a.files.filter((f) => f.toLowerCase().endsWith(".html")).sort((x, y) => depth(x) - depth(y) || x.localeCompare(y));
      const others = a.files.filter((f) => !f.toLowerCase().endsWith(".html"));
      const fileLink = (f) => h("a", {href: `/v1/jobs/${enc(rec.id)}/artefacts/${f.split("/").map(enc).join("/")}`, class: "artefact-link"}, f);
      return h("div", {class: "job-artefacts"},
        pages.map((f, i) => [i ? " · " : "", fileLink(f)]),
        others.length ? h("details", null, h("summary", null, `${pages.length ? "other " : ""}files (${others.length})`),
          h("ul", {class: "files"}, others.slice(0, 200).map((f) => h("li", null, fileLink(f))),
            others.length > 200 ? h("li", {class: "muted"}, `and ${others.length - 200} more`) : null)) : null);
    }

    function progressCell(rec) {
      const entries = Object.entries(isObj(rec.progress) ? rec.progress : {});
      if (!entries.length) return h("span", {class: "muted"}, rec.stage ? `waiting for stage ${rec.stage}` : "—");
      return entries.map(([stage, p]) => {
        const done = Number(p && p.done) || 0;
        const total = p && p.total !== null && p.total !== undefined ? Number(p.total) : null;
        const finished = FINAL.has(rec.status) || (rec.stage && rec.stage !== stage && total !== null && done >= total);
        const bar = h("progress", {"aria-label": `stage ${stage}`});
        if (total !== null && total > 0) { bar.max = total; bar.value = Math.min(done, total); } else if (finished) { bar.max = 1; bar.value = rec.status === "succeeded" ? 1 : 0; }
        return h("div", {class: `stage-progress${rec.stage === stage ? " current" : ""}`, dataset: {stage}},
          h("span", {class: "stage-name"}, stage), " ", bar, " ",
          h("span", {class: "stage-count"}, total !== null ? `${done}/${total}` : String(done)),
          p && p.message ? h("span", {class: "stage-message"}, ` ${p.message}`) : null);
      });
    }

    async function cancel(rec, btn, cell) {
      btn.disabled = true;
      try {
        const r = await api(`/v1/jobs/${enc(rec.id)}/cancel`, {method: "POST"});
        if (ctx.alive() && r) upsert(r);
        else refresh();
      } catch (e) {
        if (!ctx.alive()) return;
        btn.disabled = false;
        cell.appendChild(errorBox(e));
      }
    }

    function draw() {
      if (!records.length) { listBox.replaceChildren(none("No job yet: submit one below.")); return; }
      records.filter((r) => r.status === "succeeded").slice(0, AUTO_ARTEFACTS).forEach((r) => loadArtefacts(r.id));
      const rows = records.map((rec) => {
        const actions = h("td", {class: "job-actions"});
        if (!FINAL.has(rec.status)) {
          const btn = h("button", {type: "button", class: "job-cancel", disabled: rec.cancel_requested ? true : null},
            rec.cancel_requested ? "Cancelling…" : "Cancel");
          btn.addEventListener("click", () => cancel(rec, btn, actions));
          actions.appendChild(btn);
        } else if (rec.status === "succeeded") {
          actions.appendChild(artefactsCell(rec));
        }
        if (rec.error) actions.appendChild(h("p", {class: "job-error"}, rec.error));
        return h("tr", {class: "job-row", dataset: {jobId: rec.id, status: rec.status, kind: rec.kind}},
          h("td", null, h("code", {class: "job-id", title: rec.id}, String(rec.id).slice(0, 12))),
          h("td", null, rec.kind),
          h("td", null, h("span", {class: `job-status badge status-${slugClass(rec.status)}`}, rec.status)),
          h("td", null, rec.stage ?? "—"),
          h("td", {class: "job-progress"}, progressCell(rec)),
          h("td", null, h("span", {title: `updated ${fmtTime(rec.updated_at)}`}, fmtTime(rec.created_at))),
          actions);
      });
      listBox.replaceChildren(h("div", {class: "table-wrap"}, h("table", {id: "jobs-table", class: "data"},
        h("thead", null, h("tr", null, ["Job", "Kind", "Status", "Stage", "Progress", "Created", "Result"].map((t) => h("th", {scope: "col"}, t)))),
        h("tbody", null, rows))));
    }

    return {refresh, upsert};
  }

  // ------------------------------------------------------------------------------- the submit form

  class FieldError extends Error {
    constructor(field, msg, pending = false) { super(msg); this.field = field; this.pending = pending; }
  }

  /** ``BACKEND[:MODEL][@BASE_URL]`` as GeneratorSpec JSON (GeneratorSpec.from_string). */
  function parseGenerator(text) {
    const spec = text.trim();
    const m = /^([a-z]+)(?::([^@]+))?(?:@(\S+))?$/.exec(spec);
    if (!m) throw new FieldError("generator", `${JSON.stringify(spec)} is not BACKEND[:MODEL][@BASE_URL] (e.g. llamacpp:smollm2)`);
    const g = {backend: m[1]};
    if (m[2]) g.model = m[2]; else if (m[1] === "fake") g.model = "fake";
    if (m[3]) g.base_url = m[3];
    return g;
  }

  function parseConcepts(text) {
    const out = [];
    for (const part of text.split(/[,\n]/)) {
      const t = part.trim();
      if (!t) continue;
      const i = t.indexOf(":");
      const name = (i >= 0 ? t.slice(0, i) : t).split(/\s+/).filter(Boolean).join(" ");
      const cat = i >= 0 ? t.slice(i + 1).trim() : "";
      if (!name) throw new FieldError("concepts", `${JSON.stringify(t)} has no concept name`);
      out.push(cat ? {name, category: cat} : {name});
    }
    if (!out.length) throw new FieldError("concepts", "give at least one concept (comma-separated, NAME or NAME:CATEGORY)");
    return out;
  }

  function parseLines(text, needLabels) {
    const texts = [], labels = [];
    let withLabel = 0;
    text.split(/\r?\n/).forEach((line) => {
      if (!line.trim()) return;
      const tab = line.lastIndexOf("\t");
      const body = tab >= 0 ? line.slice(0, tab) : line;
      const t = body.split(/\s+/).filter(Boolean).join(" ");
      if (!t) return;
      texts.push(t);
      labels.push(tab >= 0 ? line.slice(tab + 1).trim() : null);
      if (tab >= 0) withLabel += 1;
    });
    if (texts.length < 2) throw new FieldError("dataset", "paste at least 2 sentences, one per line");
    if (withLabel && withLabel !== texts.length) throw new FieldError("dataset", `${withLabel} of ${texts.length} lines carry a label (TEXT<TAB>LABEL): label every line or none`);
    if (needLabels && !withLabel) throw new FieldError("dataset", "a rank job needs a label on every line: TEXT<TAB>LABEL");
    const ds = {name: "pasted.txt", texts};
    if (withLabel) ds.labels = labels;
    return ds;
  }

  function intValue(el, field, {min} = {}) {
    const v = el.value.trim();
    if (!v) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || (min !== undefined && n < min)) throw new FieldError(field, `${JSON.stringify(v)} is not a whole number${min !== undefined ? ` >= ${min}` : ""}`);
    return n;
  }

  function submitForm(ctx, onCreated) {
    const field = (id, label, control, hint) => h("div", {class: "field", dataset: {field: id}},
      h("label", {for: id}, label), control, hint ? h("span", {class: "hint", id: `${id}-hint`}, hint) : null,
      h("span", {class: "field-error", dataset: {for: id}, "aria-live": "polite"}));
    const kind = h("select", {id: "job-kind", name: "kind"},
      h("option", {value: "experts"}, "experts: expert neurons of concepts"),
      h("option", {value: "describe"}, "describe: descriptors of a dataset's neurons"),
      h("option", {value: "rank"}, "rank: units of a layer for a labelled attribute"));
    const model = h("input", {id: "job-model", name: "model", value: "minilm", required: true, autocomplete: "off"});
    const concepts = h("input", {id: "job-concepts", name: "concepts", value: "cat, dog", autocomplete: "off", "aria-describedby": "job-concepts-hint"});
    const nPos = h("input", {id: "job-n-pos", name: "n_pos", type: "number", min: "1", step: "1", value: "20"});
    const nNeg = h("input", {id: "job-n-neg", name: "n_neg", type: "number", min: "1", step: "1", value: "20"});
    const tau = h("input", {id: "job-tau", name: "tau", type: "number", min: "0.01", max: "1", step: "0.01", value: "0.9"});
    const generator = h("input", {id: "job-generator", name: "generator", value: "llamacpp:smollm2", autocomplete: "off", "aria-describedby": "job-generator-hint"});
    // the packaged datasets' names arrive from the server (GET /v1/datasets): "pasted" until then
    const dataset = h("select", {id: "job-dataset", name: "dataset", "aria-describedby": "job-dataset-hint"},
      h("option", {value: "pasted"}, "pasted lines"));
    const datasetText = h("textarea", {id: "job-dataset-text", name: "dataset_text", rows: "6", spellcheck: "false",
      placeholder: "One sentence per line; TEXT<TAB>LABEL lines carry a label (a rank job needs them)."});
    const ks = h("input", {id: "job-ks", name: "ks", value: "10, 50", autocomplete: "off"});
    const layer = h("input", {id: "job-layer", name: "layer", type: "number", min: "0", step: "1", placeholder: "last"});
    const json = h("textarea", {id: "job-json", name: "json", rows: "14", spellcheck: "false", "aria-describedby": "job-json-hint"});
    const button = h("button", {type: "submit", id: "submit-button"}, "Submit job");
    const errors = h("ul", {id: "submit-errors", class: "errors", role: "alert"});
    const result = h("p", {id: "submit-result", role: "status"});
    const jsonNote = h("span", {class: "hint", id: "job-json-hint"},
      "The body of POST /v1/jobs. The fields above rewrite it; once you edit it here, it is sent as it is.");
    let jsonEdited = false;
    let submitting = false;

    const pastedField = field("job-dataset-text", "Sentences", datasetText);
    const groups = [
      [["experts"], h("div", {class: "kind-fields"},
        field("job-concepts", "Concepts", concepts, "comma-separated; NAME or NAME:CATEGORY"),
        h("div", {class: "field-row"}, field("job-n-pos", "Positives (n_pos)", nPos), field("job-n-neg", "Negatives (n_neg)", nNeg),
          field("job-tau", "tau (AP threshold)", tau)))],
      [["experts", "describe"], field("job-generator", "Generator", generator, "BACKEND[:MODEL][@BASE_URL], e.g. llamacpp:smollm2, fake")],
      [["describe", "rank"], h("div", {class: "kind-fields"}, field("job-dataset", "Dataset", dataset, " "), pastedField)],
      [["rank"], h("div", {class: "field-row"}, field("job-ks", "Top-k sizes (ks)", ks, "comma-separated"),
        field("job-layer", "Layer", layer, "empty: the last layer"))],
    ];

    let datasetTouched = false;  // the user chose a dataset: the list arriving does not change it
    let datasetNote = "loading the server's packaged datasets…";
    api(DATASETS_URL).then((names) => {
      if (!ctx.alive()) return;
      const list = arr(names).filter((x) => typeof x === "string" && x);
      const pastedOption = dataset.querySelector('option[value="pasted"]');
      for (const name of list) dataset.insertBefore(h("option", {value: name}, `${name} (packaged)`), pastedOption);
      datasetNote = list.length ? "" : "this server has no packaged dataset: paste the lines";
      if (list.length && !datasetTouched && !jsonEdited) dataset.value = list[0];
      resync();
    }).catch((e) => {
      if (!ctx.alive()) return;
      datasetNote = `the server did not list its packaged datasets (${e.status || ""} ${detailText(e.detail)}): paste the lines`;
      resync();
    });

    const packaged = new Map();  // name -> {state, data, error}
    function packagedDataset(name, k) {
      const p = packaged.get(name);
      if (!p) {
        packaged.set(name, {state: "loading"});
        api(`${DATASETS_URL}/${enc(name)}`).then((data) => packaged.set(name, {state: "ok", data}))
          .catch((e) => packaged.set(name, {state: "error", error: e}))
          .then(() => { if (ctx.alive()) resync(); });
        throw new FieldError("dataset", `loading the packaged dataset ${name}…`, true);
      }
      if (p.state === "loading") throw new FieldError("dataset", `loading the packaged dataset ${name}…`, true);
      if (p.state === "error") {
        throw new FieldError("dataset", `the server did not give the packaged dataset ${name} (${p.error.status || ""} ${detailText(p.error.detail)}); paste the lines instead`);
      }
      // the server gives a describe job's DatasetSpec; a rank job's (AttributeDataSpec) needs labels and
      // takes no label_word_match
      const d = isObj(p.data) ? p.data : {};
      const texts = arr(d.texts).map(String);
      const labels = Array.isArray(d.labels) ? d.labels.map(String) : null;
      const names = isObj(d.label_names) && Object.keys(d.label_names).length ? d.label_names : null;
      const ds = {name: String(d.name || name), texts};
      if (k === "rank") {
        if (!labels) throw new FieldError("dataset", `the packaged dataset ${name} has no labels; a rank job needs a label per sentence`);
        ds.labels = labels;
        if (names) ds.label_names = names;
        return ds;
      }
      if (labels) {
        ds.labels = labels;
        if (names) ds.label_names = names;
      }
      if (typeof d.label_word_match === "boolean") ds.label_word_match = d.label_word_match;
      return ds;
    }

    /** What the chosen dataset holds (beside the dataset field). */
    function datasetSummary() {
      if (dataset.value === "pasted") return datasetNote;
      const p = packaged.get(dataset.value);
      if (!p || p.state !== "ok" || !isObj(p.data)) return "";
      const texts = arr(p.data.texts), labels = arr(p.data.labels).map(String);
      const names = isObj(p.data.label_names) ? p.data.label_names : {};
      const counts = new Map();
      for (const l of labels) counts.set(l, (counts.get(l) || 0) + 1);
      const classes = [...counts.entries()].sort().map(([l, n]) => `${l}${names[l] ? ` (${names[l]})` : ""}: ${fmt(n)}`);
      return `${fmt(texts.length)} sentences${classes.length ? `; labels ${classes.join(", ")}` : ", no labels"}`;
    }

    function buildBody() {
      const k = kind.value;
      const name = model.value.trim();
      if (!name) throw new FieldError("model", "give a model (e.g. minilm)");
      const body = {kind: k, model: k === "experts" ? {name} : {name, pooling: "mean"}};  // the CLI's defaults
      if (k === "experts") {
        body.concepts = parseConcepts(concepts.value);
        const np = intValue(nPos, "n_pos", {min: 1}), nn = intValue(nNeg, "n_neg", {min: 1});
        if (np !== undefined) body.n_pos = np;
        if (nn !== undefined) body.n_neg = nn;
        if (tau.value.trim()) {
          const t = Number(tau.value);
          if (!Number.isFinite(t)) throw new FieldError("tau", `${JSON.stringify(tau.value)} is not a number`);
          body.tau = t;
        }
      } else {
        body.dataset = dataset.value === "pasted" ? parseLines(datasetText.value, k === "rank") : packagedDataset(dataset.value, k);
      }
      if (k === "experts" || k === "describe") body.generator = parseGenerator(generator.value);
      if (k === "rank") {
        const list = ks.value.split(/[,\s]+/).filter(Boolean).map(Number);
        if (list.some((x) => !Number.isInteger(x) || x < 1)) throw new FieldError("ks", `${JSON.stringify(ks.value)}: give whole numbers >= 1, comma-separated`);
        if (list.length) body.ks = list;
        const l = intValue(layer, "layer", {min: 0});
        if (l !== undefined) body.layer = l;
      }
      return body;
    }

    const INPUT_OF = {kind: kind, model: model, concepts: concepts, n_pos: nPos, n_neg: nNeg, tau: tau, generator: generator,
      dataset: dataset, ks: ks, layer: layer};
    function inputFor(f) {
      const head = String(f || "").split(".")[0];
      if (head === "dataset" && dataset.value === "pasted") return datasetText;
      const el = INPUT_OF[head];
      return el && !el.closest("[hidden]") ? el : json;
    }
    function clearErrors() {
      errors.replaceChildren();
      for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
      for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
    }
    function showErrors(list) {  // [{field, msg}]
      clearErrors();
      for (const {field: f, msg} of list) {
        const el = inputFor(f);
        el.setAttribute("aria-invalid", "true");
        if (el === json) json.closest("details").open = true;
        const slot = form.querySelector(`.field-error[data-for="${el.id}"]`);
        if (slot) slot.textContent = slot.textContent ? `${slot.textContent}; ${f ? `${f}: ` : ""}${msg}` : `${f ? `${f}: ` : ""}${msg}`;
        errors.appendChild(h("li", {dataset: {field: f || "job"}}, h("strong", null, f || "job"), `: ${msg}`));
      }
    }
    function serverErrors(e) {
      const d = e.detail;
      if (Array.isArray(d)) return d.map((x) => (isObj(x) ? {field: fieldOf(x.loc), msg: String(x.msg ?? detailText(x))} : {field: "", msg: detailText(x)}));
      if (isObj(d) && d.loc) return [{field: fieldOf(d.loc), msg: String(d.msg ?? "")}];
      return [{field: "", msg: `${e.status ? `${e.status}: ` : ""}${detailText(d)}`}];
    }

    function showDatasetSummary() {
      const hint = form.querySelector("#job-dataset-hint");
      if (hint) hint.textContent = datasetSummary();
    }
    /** After a fetch: the form rewritten, unless the JSON was edited by hand (then only the hint). */
    function resync() {
      if (jsonEdited) showDatasetSummary();
      else sync();
    }

    function sync() {
      const k = kind.value;
      for (const [kinds, el] of groups) el.hidden = !kinds.includes(k);
      pastedField.hidden = dataset.value !== "pasted";
      showDatasetSummary();
      jsonEdited = false;
      clearErrors();
      try {
        json.value = JSON.stringify(buildBody(), null, 2);
        button.disabled = false;
      } catch (e) {
        if (!(e instanceof FieldError)) throw e;
        // while typing: a note beside the field (the alert list is for a submit); no stale body
        json.value = "";
        json.placeholder = `Complete the fields above (${e.field}: ${e.message})`;
        const slot = form.querySelector(`.field-error[data-for="${inputFor(e.field).id}"]`);
        if (slot) slot.textContent = e.message;
        button.disabled = e.pending;
      }
    }

    const form = h("form", {id: "submit-form", class: "submit-form", novalidate: true},
      field("job-kind", "Kind", kind),
      field("job-model", "Model", model, "packaged alias (minilm, smollm2) or a Hugging Face id the server allows"),
      groups.map(([, el]) => el),
      h("details", {class: "advanced", id: "advanced"}, h("summary", null, "Advanced: the job as JSON"),
        field("job-json", "JSON body", json), jsonNote),
      h("div", {class: "actions"}, button),
      errors, result);
    form.addEventListener("input", (ev) => {
      if (ev.target === json) {  // sent as it is: a dataset still loading for the fields does not hold it
        jsonEdited = true;
        if (!submitting) button.disabled = false;
        return;
      }
      if (ev.target === dataset) datasetTouched = true;
      sync();
    });
    form.addEventListener("change", (ev) => {
      if (ev.target === dataset) datasetTouched = true;
      if (ev.target !== json) sync();
    });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      result.textContent = "";
      delete result.dataset.jobId;
      let text;
      if (jsonEdited) {
        text = json.value;
        try { JSON.parse(text); } catch (e) { showErrors([{field: "json", msg: `not JSON: ${e.message}`}]); return; }
      } else {
        try { text = JSON.stringify(buildBody()); } catch (e) {
          if (!(e instanceof FieldError)) throw e;
          showErrors([{field: e.field, msg: e.message}]);
          return;
        }
      }
      clearErrors();
      button.disabled = true;
      submitting = true;
      result.textContent = "Submitting…";
      try {
        const rec = await api("/v1/jobs", {method: "POST", body: text});
        if (!ctx.alive()) return;
        result.textContent = `Submitted ${rec.kind} job ${rec.id} (${rec.status}).`;
        result.dataset.jobId = rec.id;
        onCreated(rec);
      } catch (e) {
        if (!ctx.alive()) return;
        result.textContent = "";
        showErrors(e instanceof ApiError ? serverErrors(e) : [{field: "", msg: e.message}]);
      } finally {
        submitting = false;
        button.disabled = false;
      }
    });
    sync();
    return form;
  }

  // ------------------------------------------------------------------------------- start

  function start() {
    $("#search-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const q = $("#search-input").value.trim();
      navigate(`/search?q=${enc(q)}`);
    });
    $("#api-key-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = $("#api-key-input").value.trim();
      if (!v) return;
      setKey(v);
      $("#api-key-input").value = "";
      $("#api-key-panel").hidden = true;
      const waiting = keyWaiters;
      keyWaiters = [];
      for (const resolve of waiting) resolve();
    });
    $("#api-key-clear").addEventListener("click", () => { setKey(""); render(); });
    $("#api-key-clear").hidden = !getKey();
    render();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
