// The platform team's dashboard: signs in against the access service, then reads
// the metrics API with the token and redraws itself every few seconds. A teacher
// sees their classes instead (#19): each class's report from the access service,
// which joins the learners' names to the metrics service's per-class figures.
// The token lives in sessionStorage (gone with the tab), never in the URL.
"use strict";

(() => {
  const body = document.body;
  const loginUrl = body.dataset.loginUrl;
  const logoutUrl = loginUrl.replace(/\/login$/, "/logout");
  // The access service: where the login URL is (this origin when it is a path).
  const accessBase = new URL(loginUrl, window.location.href).origin;
  const refreshSeconds = Math.max(5, Number(body.dataset.refreshSeconds) || 30);
  const TOKEN = "stories.metrics.token";
  const charts = {};
  let timer = null;

  // For tests and the curious: what each chart was last drawn with.
  window.dashboard = { charts, lastUpdated: null, figures: null, classes: null };

  const $ = (selector) => document.querySelector(selector);
  const status = (text) => { $("#status").textContent = text; };

  function showSignIn(message) {
    sessionStorage.removeItem(TOKEN);
    clearTimeout(timer);
    $("#figures").hidden = true;
    $("#classes").hidden = true;
    $("#sign-out").hidden = true;
    $("#sign-in").hidden = false;
    $("#sign-in-error").textContent = message || "";
    status("");
  }

  async function signIn(event) {
    event.preventDefault();
    const form = event.target;
    $("#sign-in-error").textContent = "";
    try {
      const response = await fetch(loginUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ email: form.email.value, password: form.password.value }),
      });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.detail || answer.title || "Sign-in failed");
      sessionStorage.setItem(TOKEN, answer.access_token);
      form.password.value = "";
      start();
    } catch (error) {
      $("#sign-in-error").textContent = error.message;
    }
  }

  async function api(path, accept = "application/json") {
    const response = await fetch(path, {
      headers: { Authorization: `Bearer ${sessionStorage.getItem(TOKEN)}`, Accept: accept },
    });
    if (response.status === 401) throw Object.assign(new Error("Signed out"), { signIn: true });
    if (response.ok && accept !== "application/json") return response.blob();
    const answer = await response.json();
    if (!response.ok) {
      const error = new Error(answer.detail || answer.title || `HTTP ${response.status}`);
      error.signIn = response.status === 403;
      throw error;
    }
    return answer;
  }

  const dig = (object, path) => path.split(".").reduce((o, key) => (o == null ? o : o[key]), object);

  function duration(seconds) {
    if (seconds == null) return "–";
    if (seconds < 90) return `${Math.round(seconds)} s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
    if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
    return `${(seconds / 86400).toFixed(1)} d`;
  }

  function draw(id, type, labels, datasets, options = {}) {
    const chart = charts[id];
    if (chart) {
      chart.data.labels = labels;
      chart.data.datasets = datasets;
      chart.update("none");
      return;
    }
    charts[id] = new window.Chart(document.getElementById(id), {
      type,
      data: { labels, datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { display: datasets.length > 1 } },
        scales: type === "doughnut" ? {} : { y: { beginAtZero: true, ticks: { precision: 0 } } },
        ...options,
      },
    });
  }

  const day = (iso) => iso.slice(5, 10);

  const COVERAGE_MARK = { published: "✓ published", in_review: "… in review", missing: "— missing" };

  function fill(selector, headings, rows) {
    const cell = (tag, value) => {
      const element = document.createElement(tag);
      const text = typeof value === "object" && value !== null ? value.text : value;
      element.textContent = typeof text === "number" ? text.toLocaleString() : (text ?? "");
      if (value && value.className) element.className = value.className;
      return element;
    };
    const head = document.createElement("tr");
    head.replaceChildren(...headings.map((h) => cell("th", h)));
    $(selector).replaceChildren(head, ...rows.map((row) => {
      const tr = document.createElement("tr");
      tr.replaceChildren(...row.map((value) => cell("td", value)));
      return tr;
    }));
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const to = new Date();
      const from = new Date(to.getTime() - 30 * 86400e3); // a month of curves
      const range = `interval=day&from=${from.toISOString()}&to=${to.toISOString()}`;
      const series = (metric) => api(`/v1/metrics/timeseries?metric=${metric}&${range}`);
      const [overview, workflow, opens, readers, registrations, logins, families, coverage] = await Promise.all([
        api("/v1/metrics/overview"),
        api("/v1/metrics/workflow"),
        series("opens"),
        series("readers"),
        series("registrations"),
        series("logins"),
        api("/v1/metrics/families"),
        api("/v1/metrics/coverage"),
      ]);
      // Every (family, language) cell the coverage matrix shows as missing.
      const missing_translations = coverage.families.reduce((n, f) => n + f.missing.length, 0);
      const figures = { ...overview, workflow, missing_translations };
      for (const cell of document.querySelectorAll("[data-figure]")) {
        const value = dig(figures, cell.dataset.figure);
        cell.textContent = cell.dataset.figure.endsWith("median") || cell.dataset.figure.endsWith("p90")
          ? duration(value)
          : (value ?? 0).toLocaleString();
      }
      const labels = opens.points.map((p) => day(p.at));
      const values = (s) => s.points.map((p) => p.value);
      draw("chart-reading", "line", labels, [
        { label: "PDF opens", data: values(opens), borderColor: "#2f6fde", backgroundColor: "#2f6fde" },
        { label: "Distinct readers", data: values(readers), borderColor: "#12a150", backgroundColor: "#12a150" },
      ]);
      draw("chart-people", "bar", labels, [
        { label: "Registrations", data: values(registrations), backgroundColor: "#7a5af8" },
        { label: "Logins", data: values(logins), backgroundColor: "#f79009" },
      ]);
      const funnel = workflow.funnel;
      draw("chart-funnel", "bar", Object.keys(funnel), [
        { label: "Submissions", data: Object.values(funnel), backgroundColor: "#2f6fde" },
      ], { indexAxis: "y", scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } });
      const statuses = overview.submissions_by_status;
      draw("chart-status", "bar", Object.keys(statuses), [
        { label: "Submissions", data: Object.values(statuses), backgroundColor: "#12a150" },
      ]);
      const roles = overview.users_by_role;
      draw("chart-roles", "doughnut", Object.keys(roles), [
        { label: "Users", data: Object.values(roles),
          backgroundColor: ["#2f6fde", "#12a150", "#f79009", "#7a5af8", "#ef4444", "#0ea5e9", "#64748b"] },
      ], { plugins: { legend: { display: true, position: "right" } } });
      const oldest = $("#oldest-review");
      oldest.replaceChildren(...workflow.oldest_waiting_review.map((item) => {
        const li = document.createElement("li");
        li.textContent = `${item.language || "?"} · waiting ${duration(item.waiting_seconds)}`;
        // What its analysis flagged (finding kinds, severe first): codes, as text.
        const flags = item.flags || [];
        if (flags.length) {
          const mark = document.createElement("span");
          mark.className = "flags";
          mark.textContent = ` · ⚑ ${flags.join(", ")}`;
          li.append(mark);
        }
        return li;
      }));
      // Built from text nodes only: titles are people's words, never markup.
      fill("#coverage", ["Story", ...coverage.languages],
        coverage.families.map((f) => [f.title || f.family_id.slice(0, 8),
          ...coverage.languages.map((language) => ({ text: COVERAGE_MARK[f.cells[language]], className: f.cells[language] }))]));
      fill("#families", ["Story", "Languages", "Opens", "Readers", "Completions"],
        families.families.slice(0, 10).map((f) => [f.title || f.family_id.slice(0, 8),
          f.published_languages.join(" "), f.opens, f.distinct_readers, f.completions]));
      fill("#languages", ["Language", "Books", "Opens", "Readers", "Completions"],
        families.languages.map((l) => [l.language, l.books, l.opens, l.distinct_readers, l.completions]));
      figures.families = families;
      figures.coverage = coverage;
      window.dashboard.figures = figures;
      window.dashboard.lastUpdated = new Date().toISOString();
      status(`Updated ${new Date().toLocaleTimeString()} · every ${refreshSeconds} s`);
    } catch (error) {
      if (error.signIn) {
        showSignIn(error.message);
        return;
      }
      status(`Not updated: ${error.message}`);
    }
    timer = setTimeout(refresh, refreshSeconds * 1000);
  }

  // What the token says of its holder's role: only to choose the view (each API
  // decides for itself what the caller may see).
  function role() {
    try {
      const payload = sessionStorage.getItem(TOKEN).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(payload)).role;
    } catch (_) {
      return null;
    }
  }

  const percent = (part, whole) => (whole ? `${Math.round((100 * part) / whole)} %` : "–");

  async function downloadCsv(schoolClass) {
    try {
      const csv = await api(`${accessBase}/v1/classes/${schoolClass.id}/progress?format=csv`, "text/csv");
      const link = document.createElement("a");
      link.href = URL.createObjectURL(csv);
      link.download = `${schoolClass.name}.csv`;
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 1000);
    } catch (error) {
      status(`Not downloaded: ${error.message}`);
    }
  }

  function drawClass(schoolClass, report) {
    const figure = document.createElement("figure");
    figure.className = "table wide";
    figure.dataset.classId = schoolClass.id;
    const head = document.createElement("div");
    head.className = "class-head";
    const title = document.createElement("h2");
    title.textContent = `${schoolClass.name} · ${report.learners} learners · code ${schoolClass.join_code}`;
    const csv = document.createElement("button");
    csv.type = "button";
    csv.textContent = "CSV";
    csv.title = "Every learner and book, for a spreadsheet";
    csv.addEventListener("click", () => downloadCsv(schoolClass));
    head.replaceChildren(title, csv);
    const table = document.createElement("table");
    const scroll = document.createElement("div");
    scroll.className = "scroll";
    scroll.append(table);
    figure.replaceChildren(head, scroll);
    $("#classes").append(figure);
    table.id = `class-${schoolClass.id}`;
    // Built from text nodes only: names and titles are people's words, never markup.
    fill(`#${CSS.escape(table.id)}`, ["Book", "Due", "Opened", "Finished", "Not started yet"],
      report.assignments.map((a) => [
        a.title || a.book_id.slice(0, 8),
        a.due_at ? a.due_at.slice(0, 10) : "",
        `${a.opened} / ${a.learners}`,
        `${a.completed} (${percent(a.completed, a.learners)})`,
        { text: a.not_started.map((n) => n.display_name).join(", ") || "everyone started", className: "names" },
      ]));
  }

  async function refreshClasses() {
    clearTimeout(timer);
    try {
      const page = await api(`${accessBase}/v1/classes?limit=50`);
      const open = page.items.filter((c) => !c.archived_at);
      const reports = await Promise.all(
        open.map((c) => api(`${accessBase}/v1/classes/${c.id}/progress`)));
      for (const figure of document.querySelectorAll("#classes figure")) figure.remove();
      open.forEach((c, i) => drawClass(c, reports[i]));
      $("#no-classes").hidden = open.length > 0;
      window.dashboard.classes = reports;
      window.dashboard.lastUpdated = new Date().toISOString();
      status(`Updated ${new Date().toLocaleTimeString()} · every ${refreshSeconds} s`);
    } catch (error) {
      if (error.signIn) {
        showSignIn(error.message);
        return;
      }
      status(`Not updated: ${error.message}`);
    }
    timer = setTimeout(refreshClasses, refreshSeconds * 1000);
  }

  function start() {
    const teacher = role() === "TEACHER";
    $("#sign-in").hidden = true;
    $("#figures").hidden = teacher;
    $("#classes").hidden = !teacher;
    $("#sign-out").hidden = false;
    if (teacher) refreshClasses();
    else refresh();
  }

  $("#sign-in").addEventListener("submit", signIn);
  // Signing out ends the session at access (the token and its refresh chain
  // everywhere), not only in this tab.
  async function signOut() {
    const token = sessionStorage.getItem(TOKEN);
    if (token) {
      try {
        await fetch(logoutUrl, {
          method: "POST",
          headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
          body: "{}",
        });
      } catch (_) {
        // Offline: the token still expires on its own within minutes.
      }
    }
    showSignIn();
  }

  $("#sign-out").addEventListener("click", signOut);
  if (sessionStorage.getItem(TOKEN)) start();
  else showSignIn();
})();
