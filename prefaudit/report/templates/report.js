// The report's script. The flagged-pair table decodes its embedded rows after the page has
// rendered, then filters, searches, sorts and pages them; text cells clamped to a few lines
// open in place, fetching a long text's whole only when asked. Text from the data only ever
// goes into textContent (never markup), so nothing in it can run or change the page.
"use strict";
(function () {
  const PAGE = 50;
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };

  async function decode(text) {
    const binary = atob(text.trim());
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return JSON.parse(await new Response(stream).text());
  }

  // Clamped cells: "show more" opens the cell in place as a scroll box no taller than the
  // window. A cell that holds only a text's start gets the rest from the page's store, STEP
  // characters a click: laying out a 1 MB text in a table cell froze the page for seconds.
  const STEP = 20000;
  let longTexts = null;
  function reveal(box, whole, button) {
    const shown = Math.min(whole.length, (Number(box.dataset.shown) || 0) + STEP);
    box.textContent = shown < whole.length ? whole.slice(0, shown) + " …" : whole;
    box.dataset.shown = shown;
    const left = whole.length - shown;
    button.textContent = left
      ? `show ${Math.min(STEP, left).toLocaleString("en")} more characters (${left.toLocaleString("en")} not shown)`
      : "";
    return left;
  }
  async function toggleClamp(button) {
    const box = button.previousElementSibling;
    if (box.dataset.rest !== undefined) {
      longTexts = longTexts || decode(document.getElementById("long-texts").textContent);
      box.classList.add("open");
      if (reveal(box, (await longTexts)[Number(box.dataset.rest)], button)) return;
      delete box.dataset.rest;
      button.textContent = "show less";
      return;
    }
    const open = box.classList.toggle("open");
    button.textContent = open ? "show less" : "show more";
  }
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.more");
    if (button) toggleClamp(button);
  });
  function dropNeedlessButtons() {
    for (const button of document.querySelectorAll(".clamp:not([data-rest]) + button.more")) {
      const box = button.previousElementSibling;
      // A box not laid out (inside a closed <details> in some browsers) cannot be measured.
      if (box.clientHeight > 0 && box.scrollHeight <= box.clientHeight + 2) button.remove();
    }
  }
  requestAnimationFrame(dropNeedlessButtons);

  const root = document.getElementById("pairs");
  const blob = document.getElementById("pairs-data");
  if (!root || !blob) return;
  const status = root.querySelector(".table-status");
  const body = root.querySelector("tbody");
  const issue = root.querySelector("#pairs-issue");
  const search = root.querySelector("#pairs-search");
  const sort = root.querySelector("#pairs-sort");
  const prev = root.querySelector("#pairs-prev");
  const next = root.querySelector("#pairs-next");
  const state = { data: null, rows: [], page: 0, lower: null, open: new Set() };

  function text(code) {
    return code === null ? "" : state.data.strings[code];
  }

  function fillIssues(data) {
    const counts = new Map();
    for (const row of data.rows) {
      for (const found of row[6]) counts.set("v" + found[0], (counts.get("v" + found[0]) || 0) + 1);
      for (const tag of row[7]) counts.set("t" + tag, (counts.get("t" + tag) || 0) + 1);
    }
    data.validators.forEach((name, v) => {
      if (counts.has("v" + v)) issue.append(new Option(`${name} (${counts.get("v" + v)})`, "v" + v));
    });
    data.tags.forEach((name, t) => {
      if (counts.has("t" + t)) issue.append(new Option(`  ${name} (${counts.get("t" + t)})`, "t" + t));
    });
  }

  function matches(row, wanted, needle) {
    if (wanted) {
      const n = Number(wanted.slice(1));
      const hit = wanted[0] === "v" ? row[6].some((f) => f[0] === n) : row[7].includes(n);
      if (!hit) return false;
    }
    if (!needle) return true;
    if (row[0].toLowerCase().includes(needle)) return true;
    for (const code of [row[2], row[3], row[4]]) {
      if (code !== null && state.lower(code).includes(needle)) return true;
    }
    return row[6].some((f) => state.lower(f[2]).includes(needle));
  }

  function lowerCase() {
    const cache = new Map();
    return (code) => {
      let value = cache.get(code);
      if (value === undefined) {
        value = state.data.strings[code].toLowerCase();
        cache.set(code, value);
      }
      return value;
    };
  }

  const ORDERS = {
    "score-desc": (a, b) => b[5] - a[5] || (a[0] < b[0] ? -1 : 1),
    "score-asc": (a, b) => a[5] - b[5] || (a[0] < b[0] ? -1 : 1),
    id: (a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0),
    line: (a, b) => (a[1] ?? Infinity) - (b[1] ?? Infinity),
  };

  function apply() {
    const needle = search.value.trim().toLowerCase();
    if (needle && !state.lower) state.lower = lowerCase();
    state.rows = state.data.rows.filter((row) => matches(row, issue.value, needle));
    state.rows.sort(ORDERS[sort.value]);
    state.page = 0;
    state.open.clear();
    draw();
  }

  function detail(row) {
    const tr = el("tr", "detail");
    const td = el("td");
    td.colSpan = 6;
    const grid = el("div", "sides");
    [["prompt", row[2]], ["chosen", row[3]], ["rejected", row[4]]].forEach(([label, code]) => {
      const side = el("div", "side");
      side.append(el("h4", null, label));
      const whole = code === null ? "(text not saved with this audit)" : text(code);
      const pre = el("pre", "text");
      side.append(pre);
      const more = el("button", "all");
      more.type = "button";
      if (reveal(pre, whole, more)) {
        more.addEventListener("click", () => reveal(pre, whole, more) || more.remove());
        side.append(more);
      }
      grid.append(side);
    });
    td.append(grid);
    const reasons = el("ul", "reasons");
    for (const found of row[6]) {
      reasons.append(el("li", null, `${state.data.validators[found[0]]} (score ${found[1].toFixed(3)}): ${text(found[2])}`));
    }
    td.append(reasons);
    tr.append(td);
    return tr;
  }

  function line(row) {
    const tr = el("tr", "pair");
    tr.tabIndex = 0;
    tr.append(el("td", "id", row[0]));
    tr.append(el("td", "num", row[1] ?? ""));
    tr.append(el("td", "num", row[5].toFixed(3)));
    const issues = el("td");
    for (const found of row[6]) {
      const badge = el("span", "badge", state.data.validators[found[0]]);
      badge.title = text(found[2]);
      issues.append(badge);
    }
    tr.append(issues);
    const clamp = (cls, value) => {
      const td = el("td", cls);
      td.append(el("div", "lines", value));
      return td;
    };
    tr.append(clamp("reason", row[6].map((f) => text(f[2])).join("; ")));
    const prompt = text(row[2]);
    tr.append(clamp("preview", prompt.length > 300 ? prompt.slice(0, 300) + "…" : prompt));
    const toggle = () => {
      if (state.open.has(row[0])) state.open.delete(row[0]);
      else state.open.add(row[0]);
      draw();
    };
    tr.addEventListener("click", toggle);
    tr.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        toggle();
      }
    });
    return tr;
  }

  function draw() {
    const start = state.page * PAGE;
    const shown = state.rows.slice(start, start + PAGE);
    const lines = [];
    for (const row of shown) {
      lines.push(line(row));
      if (state.open.has(row[0])) lines.push(detail(row));
    }
    body.replaceChildren(...lines);
    const total = state.rows.length;
    status.textContent = total
      ? `pairs ${start + 1}–${start + shown.length} of ${total.toLocaleString("en")}` +
        (total < state.data.rows.length ? ` (of ${state.data.rows.length.toLocaleString("en")} flagged)` : "")
      : "no flagged pair matches";
    prev.disabled = state.page === 0;
    next.disabled = start + PAGE >= total;
    if (root.dataset.ready !== "true") performance.mark("prefaudit:table-ready");
    root.dataset.ready = "true";
  }

  // A link to "#pair=<id>" (the cleaning section has them) opens that pair in the table.
  function showPair() {
    const match = location.hash.match(/^#pair=(.*)$/);
    if (!match || !state.data) return;
    let id;
    try {
      id = decodeURIComponent(match[1]);
    } catch (error) {
      return; // a hand-edited address: nothing to open
    }
    issue.value = "";
    search.value = id;
    apply();
    const index = state.rows.findIndex((row) => row[0] === id);
    if (index >= 0) {
      state.page = Math.floor(index / PAGE);
      state.open.add(id);
      draw();
    }
    const row = [...body.querySelectorAll("tr.pair")].find((tr) => tr.firstChild.textContent === id);
    (row || root).scrollIntoView();
  }
  window.addEventListener("hashchange", showPair);

  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(apply, 150);
  });
  issue.addEventListener("change", apply);
  sort.addEventListener("change", apply);
  prev.addEventListener("click", () => { state.page -= 1; draw(); });
  next.addEventListener("click", () => { state.page += 1; draw(); });

  // Let the page paint first; the rows are decoded right after.
  requestAnimationFrame(() => setTimeout(async () => {
    try {
      state.data = await decode(blob.textContent);
      fillIssues(state.data);
      apply();
      showPair();
    } catch (error) {
      status.textContent = "the table's data could not be read: " + error;
      root.dataset.ready = "error";
      throw error;
    }
  }, 0));
})();
