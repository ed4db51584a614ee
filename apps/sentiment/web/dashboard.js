/* The sentiment dashboard: polls /v1/sentiment/trends, /alerts (with each alert's
   documents) and the latest negative documents every few seconds and draws each topic's
   label shares and volume as inline SVG built with DOM calls. Stored text (topics, alert
   messages, document texts) only ever enters the page through textContent. */
"use strict";

(function () {
  var API = "/v1/sentiment";
  var POLL_MS = 5000;
  var LABELS = ["negative", "neutral", "positive"];
  var RANGES = { "1h": "48h", "1d": "30d" };
  var ALERT_DOCS = 50;  // per alert: an alert's bucket rarely holds more; the list scrolls
  var ALERTS_WITH_DOCS = 10;  // the newest alerts get their documents listed
  var NEGATIVES = 10;
  var SVG = "http://www.w3.org/2000/svg";
  var W = 720, PAD_L = 48, PAD_R = 12, SHARE_H = 150, GAP = 34, VOL_H = 70, PAD_B = 22;
  var PAD_T = 10, H = PAD_T + SHARE_H + GAP + VOL_H + PAD_B + 8;

  var $ = function (id) { return document.getElementById(id); };
  var token = sessionStorage.getItem("sentiment-token") || "";
  var timer = null;
  var inFlight = false;
  var generation = 0;  // bumped by every settings change: older answers are dropped
  var topicsSeen = [];

  function ApiFailure(status, message) { this.status = status; this.message = message; }

  /* GET + JSON; a non-2xx answer rejects with the server's error message. */
  function request(method, path, params, body) {
    var query = new URLSearchParams();
    Object.keys(params).forEach(function (k) { if (params[k]) query.set(k, params[k]); });
    var headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    var init = { method: method, headers: headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(API + path + "?" + query.toString(), init)
      .then(function (res) {
        return res.json().catch(function () { return null; }).then(function (data) {
          if (res.ok) return data;
          var err = data && data.error ? data.error : {};
          throw new ApiFailure(res.status, err.message || "HTTP " + res.status);
        });
      }, function () {
        throw new ApiFailure(0, "The service cannot be reached; retrying.");
      });
  }

  function get(path, params) { return request("GET", path, params); }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function when(iso, bucket) {
    var d = new Date(iso);
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    var day = pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
    return bucket === "1d" ? day : day + " " + pad(d.getUTCHours()) + ":00";
  }

  function pct(x) { return Math.round(x * 100) + "%"; }

  /* One topic: stacked label shares on top, volume bars below, alert marks, axes. */
  function chart(name, buckets, bucket, alertStarts) {
    var figure = el("figure", "topic-chart");
    figure.setAttribute("data-topic", name);
    var total = buckets.reduce(function (s, b) { return s + b.count; }, 0);
    var caption = el("figcaption");
    caption.appendChild(el("span", "topic-name", name === "all" ? "all (every record)" : name));
    caption.appendChild(el("span", "topic-total", " · " + total + " documents"));
    figure.appendChild(caption);

    var plot = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", class: "plot" });
    plot.appendChild(svg("title", {}, name + ": share of negative, neutral and positive " +
      "documents and volume per bucket; the table below holds the same figures."));
    var root = plot.appendChild(svg("g", { transform: "translate(0 " + PAD_T + ")" }));
    var n = Math.max(buckets.length, 1);
    var step = (W - PAD_L - PAD_R) / n;
    var barW = Math.max(step - 2, 1);
    var maxCount = buckets.reduce(function (m, b) { return Math.max(m, b.count); }, 0) || 1;
    var volTop = SHARE_H + GAP;

    // axes and gridlines
    [0, 0.5, 1].forEach(function (t) {
      var y = SHARE_H * (1 - t);
      root.appendChild(svg("line", { x1: PAD_L, x2: W - PAD_R, y1: y, y2: y, class: "grid" }));
      root.appendChild(svg("text", { x: PAD_L - 6, y: y + 4, class: "tick", "text-anchor": "end" },
                           pct(t)));
    });
    [0, maxCount].forEach(function (v, i) {
      var y = volTop + VOL_H * (1 - i);
      root.appendChild(svg("line", { x1: PAD_L, x2: W - PAD_R, y1: y, y2: y, class: "grid" }));
      root.appendChild(svg("text", { x: PAD_L - 6, y: y + 4, class: "tick", "text-anchor": "end" },
                           String(v)));
    });
    root.appendChild(svg("text", { x: PAD_L, y: volTop - 8, class: "axis-title" }, "Volume"));
    root.appendChild(svg("line", { x1: PAD_L, x2: PAD_L, y1: 0, y2: volTop + VOL_H, class: "axis" }));

    var every = Math.ceil(n / 8);
    buckets.forEach(function (b, i) {
      var x = PAD_L + i * step + 1;
      var group = svg("g", { class: "bucket", "data-start": b.bucket_start, "data-count": b.count });
      group.appendChild(svg("title", {}, when(b.bucket_start, bucket) + " UTC: " + b.count +
        " documents, " + b.negative + " negative, " + b.neutral + " neutral, " + b.positive +
        " positive"));
      var y = 0;
      if (b.count) {
        LABELS.forEach(function (label) {
          var h = SHARE_H * b[label] / b.count;
          if (h > 0) group.appendChild(svg("rect", { x: x, y: y, width: barW, height: h,
                                                     class: "share " + label }));
          y += h;
        });
        var vh = VOL_H * b.count / maxCount;
        group.appendChild(svg("rect", { x: x, y: volTop + VOL_H - vh, width: barW, height: vh,
                                        class: "vol" }));
      }
      if (alertStarts[Date.parse(b.bucket_start)]) {
        var cx = x + barW / 2;
        group.appendChild(svg("path", { d: "M" + (cx - 6) + " " + (SHARE_H + 14) + " L" + cx +
          " " + (SHARE_H + 3) + " L" + (cx + 6) + " " + (SHARE_H + 14) + " Z", class: "alert-mark" }));
      }
      root.appendChild(group);
      if (i % every === 0) {
        root.appendChild(svg("text", { x: x, y: H - PAD_T - 8, class: "tick" }, when(b.bucket_start, bucket)));
      }
    });
    figure.appendChild(plot);
    figure.appendChild(table(name, buckets, bucket));
    return figure;
  }

  /* The chart's figures as a table (newest first): for screen readers and for reading off. */
  function table(name, buckets, bucket) {
    var details = el("details", "data");
    details.appendChild(el("summary", "", "Figures for " + name));
    var t = el("table", "volume");
    var head = el("tr");
    ["Bucket (UTC)", "Volume", "Negative", "Neutral", "Positive", "Negative share"]
      .forEach(function (h) { var th = el("th", "", h); th.scope = "col"; head.appendChild(th); });
    t.appendChild(el("thead")).appendChild(head);
    var body = t.appendChild(el("tbody"));
    buckets.slice().reverse().forEach(function (b) {
      var row = el("tr");
      row.setAttribute("data-start", b.bucket_start);
      [when(b.bucket_start, bucket), b.count, b.negative, b.neutral, b.positive,
       pct(b.share_negative)].forEach(function (v, i) {
        var cell = el(i ? "td" : "th", i === 1 ? "count" : "", String(v));
        if (!i) cell.scope = "row";
        row.appendChild(cell);
      });
      body.appendChild(row);
    });
    details.appendChild(t);
    return details;
  }

  function renderTopics(names) {
    var select = $("topic");
    names.forEach(function (name) {
      if (topicsSeen.indexOf(name) >= 0 || name === "all") return;
      topicsSeen.push(name);
      var option = el("option", "", name);
      option.value = name;
      select.appendChild(option);
    });
  }

  /* A list of stored documents: text, label, time and source, newest (or negatives) first. */
  function docList(docs, cls) {
    var list = el("ol", "docs " + cls);
    docs.forEach(function (d) {
      var item = el("li", "doc");
      item.setAttribute("data-source", d.source);
      if (d.id !== null) item.setAttribute("data-id", d.id);
      item.appendChild(el("p", "doc-text", d.text));
      var meta = el("p", "doc-meta");
      meta.appendChild(el("span", "label " + d.label, d.label));
      var at = d.published_at.slice(0, 16).replace("T", " ") + " UTC";
      meta.appendChild(el("span", "doc-when", " · " + at + " · " + d.source));
      item.appendChild(meta);
      list.appendChild(item);
    });
    return list;
  }

  function renderNegatives(docs) {
    $("negatives").replaceChildren(docList(docs, "negative-docs"));
    $("no-negatives").hidden = docs.length > 0;
  }

  function renderAlerts(alerts, alertDocs) {
    var list = $("alerts");
    list.replaceChildren();
    alerts.forEach(function (a) {
      var item = el("li", "alert");
      item.setAttribute("data-id", a.id);
      var head = el("p", "alert-head");
      head.appendChild(el("strong", "alert-topic", a.topic));
      var unit = a.bucket_seconds >= 86400 ? "1d" : "1h";
      var span = a.window_buckets > 1 ? when(a.window_start, unit) + " – " : "";
      head.appendChild(el("span", "alert-when", " " + span + when(a.bucket_start, unit) +
        " UTC · " + a.signals.join(", ")));
      item.appendChild(head);
      item.appendChild(el("p", "alert-message", a.message));
      item.appendChild(el("p", "alert-figures", a.count + " documents, " +
        pct(a.negative_share) + " negative (baseline " + pct(a.baseline_share) + ", " +
        a.baseline_count.toFixed(1) + " a bucket)"));
      var docs = alertDocs[a.id];
      if (docs) {
        var box = el("details", "alert-docs");
        box.open = true;
        box.appendChild(el("summary", "", docs.length ? "Documents behind this alert (" +
          docs.length + (docs.length >= ALERT_DOCS ? "+" : "") + ", negatives first)"
          : "No documents stored for this bucket"));
        box.appendChild(docList(docs, "alert-doc-list"));
        item.appendChild(box);
      }
      list.appendChild(item);
    });
    $("no-alerts").hidden = alerts.length > 0;
  }

  function render(trends, alerts, alertDocs, negatives) {
    var bucket = trends.bucket;
    var marks = {};
    alerts.forEach(function (a) { (marks[a.topic] = marks[a.topic] || {})[Date.parse(a.bucket_start)] = true; });
    var charts = $("charts");
    var names = Object.keys(trends.series);
    if (!$("topic").value) renderTopics(names);
    charts.setAttribute("aria-busy", "true");
    charts.replaceChildren.apply(charts, names.map(function (name) {
      return chart(name, trends.series[name], bucket, marks[name] || {});
    }));
    charts.setAttribute("aria-busy", "false");
    var empty = names.every(function (name) {
      return trends.series[name].every(function (b) { return !b.count; });
    });
    $("no-data").hidden = !empty;
    renderAlerts(alerts, alertDocs);
    renderNegatives(negatives);
  }

  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = !message;
  }

  function refresh(force) {
    if (inFlight && !force) return;
    inFlight = true;
    var mine = generation;
    var bucket = $("bucket").value;
    var topic = $("topic").value;
    var since = RANGES[bucket] || "48h";
    Promise.all([
      get("/trends", { bucket: bucket, since: since, topic: topic }),
      get("/alerts", { since: since, topic: topic, limit: "50" }),
      get("/documents", { label: "negative", since: since, topic: topic,
                          limit: String(NEGATIVES) }),
    ]).then(function (found) {
      var shown = found[1].alerts.slice(0, ALERTS_WITH_DOCS);
      return Promise.all(shown.map(function (a) {
        return get("/alerts/" + encodeURIComponent(a.id) + "/documents",
                   { limit: String(ALERT_DOCS) });
      })).then(function (docs) {
        var byAlert = {};
        shown.forEach(function (a, i) { byAlert[a.id] = docs[i].documents; });
        return found.concat([byAlert]);
      });
    }).then(function (found) {
      if (mine !== generation) return;
      render(found[0], found[1].alerts, found[3], found[2].documents);
      showError("");
      $("status").textContent = "Updated " + new Date().toISOString().slice(11, 19) + " UTC";
    }, function (err) {
      if (mine !== generation) return;
      var auth = err.status === 401 || err.status === 403;
      showError(auth ? err.message + " Enter a token with the sentiment:read scope."
                     : err.message);
      $("status").textContent = auth ? "Not connected" : "Retrying";
    }).then(function () { if (mine === generation) inFlight = false; });
  }

  function start() {
    clearInterval(timer);
    generation += 1;
    refresh(true);
    timer = setInterval(refresh, POLL_MS);
  }

  $("login").addEventListener("submit", function (event) {
    event.preventDefault();
    token = $("token").value.trim();
    if (token) sessionStorage.setItem("sentiment-token", token);
    else sessionStorage.removeItem("sentiment-token");
    start();
  });
  /* Score one text (nothing is stored): what the model and the watch list make of it. */
  $("try").addEventListener("submit", function (event) {
    event.preventDefault();
    var out = $("scored");
    out.replaceChildren(el("p", "", "Scoring…"));
    request("POST", "/score", {}, { texts: [$("try-text").value] }).then(function (data) {
      var r = data.results[0];
      var box = el("div", "scored");
      box.appendChild(el("p", "scored-text", r.text));
      var line = el("p");
      line.appendChild(el("span", "label " + r.label, r.label));
      line.appendChild(el("span", "", " · score " + r.score.toFixed(2) + " · negative " +
        pct(r.probabilities.negative) + ", neutral " + pct(r.probabilities.neutral) +
        ", positive " + pct(r.probabilities.positive)));
      box.appendChild(line);
      box.appendChild(el("p", "scored-topics", "Topics: " + (r.topics.map(function (t) {
        return t.topic; }).join(", ") || "none") + " · model " + data.model));
      out.replaceChildren(box);
    }, function (err) {
      out.replaceChildren(el("p", "error", err.message));
    });
  });
  $("controls").addEventListener("submit", function (event) { event.preventDefault(); });
  $("topic").addEventListener("change", start);
  $("bucket").addEventListener("change", start);
  $("token").value = token;
  start();
})();
