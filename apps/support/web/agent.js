/* The agent console: the queue (longest waiting first), my conversations, one conversation
   live (take, reply, release, resolve), and the knowledge-base suggestions to review.
   The token stays in sessionStorage (this tab only). You act as the token's agent (GET
   /me); only a token that may act for others (admin, or no tokens) names an agent. */
"use strict";

(function () {
  var S = window.AigcSupport;
  var el = S.el;
  var REFRESH_MS = 4000;
  var POLL_MS = 2000;
  var FRIENDLY = {
    conversation_taken: "Another agent took this conversation.",
    not_holder: "You do not hold this conversation: take it first.",
    conversation_resolved: "This conversation is resolved.",
    insufficient_scope: "This token lacks the support:agent scope.",
  };

  var $ = function (id) { return document.getElementById(id); };
  var tokenInput = $("token");
  var nameInput = $("agent-name");
  var errorBox = $("error");
  var connection = $("connection");
  var convMessages = $("conv-messages");
  var replyBox = $("reply");

  var token = sessionStorage.getItem("aigc.agent.token") || "";
  var actFor = sessionStorage.getItem("aigc.agent.name") || "";
  var me = "";     /* the agent this console acts as */
  var own = null;  /* the token's own agent (null on a server without tokens) */
  var timer = null;
  var drawn = {};  /* what each list shows now, so an unchanged list keeps keyboard focus */
  var conv = { id: "", state: "", agent: null, seen: new Set(), lastId: 0, live: null };

  function showError(failure) {
    if (!failure) { errorBox.hidden = true; errorBox.textContent = ""; return; }
    var text = String(failure);
    if (failure.status === 401) text = "The token was refused: check it. " + text;
    else if (failure.code && FRIENDLY[failure.code]) text = FRIENDLY[failure.code] + " " + text;
    errorBox.textContent = text;
    errorBox.hidden = false;
  }

  function waited(seconds) {
    var s = Math.max(0, Math.round(seconds || 0));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function lastLines(messages) {
    var list = el("ul", { className: "last-messages", "aria-label": "Last messages" });
    (messages || []).forEach(function (m) {
      list.appendChild(el("li", { className: "line line-" + m.role },
        el("span", { className: "line-who" }, (m.role === "agent" && m.author ? m.author : m.role) + ": "),
        m.text || ""));
    });
    return list;
  }

  function conversationCard(c, withTake) {
    var since = c.state === "human" ? "With " + (c.agent || "an agent") + " for " : "Waiting ";
    var info = since + waited(c.waiting_seconds) + " \u00b7 intent: " + (c.intent || "unknown") +
      (c.reason ? " \u00b7 " + c.reason : "");
    var card = el("li", { className: "card", dataset: { session: c.session_id, state: c.state } },
      el("p", { className: "card-title" }, "Conversation " + c.session_id),
      el("p", { className: "card-info" }, info),
      lastLines(c.last_messages));
    var actions = el("div", { className: "card-actions" });
    actions.appendChild(el("button", {
      type: "button", className: "secondary", onclick: function () { open(c.session_id); },
      "aria-label": "Open conversation " + c.session_id,
    }, "Open"));
    if (withTake) {
      actions.appendChild(el("button", {
        type: "button", onclick: function () { take(c.session_id); },
        "aria-label": "Take conversation " + c.session_id,
      }, "Take"));
    }
    card.appendChild(actions);
    return card;
  }

  function suggestionCard(s) {
    var intentId = "intent-" + s.id;
    var intent = el("input", { id: intentId, type: "text", maxLength: 64, spellcheck: false });
    return el("li", { className: "card", dataset: { suggestion: String(s.id) } },
      el("p", { className: "card-title" }, "Q: " + (s.question || "")),
      el("p", { className: "card-answer" }, "A: " + (s.answer || "")),
      el("p", { className: "card-info" }, "by " + (s.agent || "?") + " \u00b7 conversation " + s.session_id),
      el("label", { "for": intentId }, "Intent (optional)"), intent,
      el("div", { className: "card-actions" },
        el("button", { type: "button", onclick: function () {
          var body = intent.value.trim() ? { intent: intent.value.trim() } : {};
          act("POST", "/suggestions/" + s.id + "/approve", body);
        } }, "Approve"),
        el("button", { type: "button", className: "secondary", onclick: function () {
          act("POST", "/suggestions/" + s.id + "/reject", {});
        } }, "Reject")));
  }

  /* Replace a list's items only when its data changed. */
  function draw(listId, emptyId, items, make) {
    var key = JSON.stringify(items);
    if (drawn[listId] === key) return;
    drawn[listId] = key;
    var list = $(listId);
    list.textContent = "";
    items.forEach(function (item) { list.appendChild(make(item)); });
    $(emptyId).hidden = items.length > 0;
  }

  /* The body naming the agent: empty when it is the token's own (the server uses that). */
  function agentBody(extra) {
    var body = extra || {};
    if (me !== own) body.agent = me;
    return body;
  }

  function refresh() {
    if (!me) return Promise.resolve();
    return Promise.all([
      S.api(token, "GET", "/queue?state=pending_human"),
      S.api(token, "GET", "/queue?state=human"),
      S.api(token, "GET", "/suggestions?status=pending"),
    ]).then(function (res) {
      var queue = res[0].conversations || [];
      var mine = (res[1].conversations || []).filter(function (c) { return c.agent === me; });
      $("queue-count").textContent = "(" + queue.length + ")";
      draw("queue", "queue-empty", queue, function (c) { return conversationCard(c, true); });
      draw("mine", "mine-empty", mine, function (c) { return conversationCard(c, false); });
      draw("suggestions", "sugg-empty", res[2].suggestions || [], suggestionCard);
      connection.textContent = "Connected as " + me + " \u00b7 updated " + S.clock(new Date().toISOString());
      connection.dataset.status = "live";
    }).catch(function (failure) {
      connection.textContent = "Not connected";
      connection.dataset.status = "stopped";
      showError(failure);
    });
  }

  function applyConv(state, agent) {
    conv.state = state || conv.state;
    conv.agent = agent === undefined ? conv.agent : agent;
    var holder = conv.state === "human" && conv.agent === me;
    var label = { bot: "with the assistant", pending_human: "waiting for a person",
      human: "with " + (conv.agent || "an agent"), resolved: "resolved" }[conv.state] || conv.state;
    $("conv-info").textContent = "Conversation " + conv.id + " \u2014 " + label;
    $("conv-info").dataset.state = conv.state;
    $("take").disabled = !conv.id || conv.state === "resolved" || holder;
    $("release").disabled = !holder;
    $("resolve").disabled = !conv.id || conv.state === "resolved" ||
      (conv.state === "human" && !holder);
    replyBox.disabled = !holder;
    $("send-reply").disabled = !holder;
  }

  function render(messages) {
    conv.lastId = Math.max(conv.lastId, S.appendMessages(convMessages, conv.seen, messages));
  }

  function load() {
    var id = conv.id;
    return S.api(token, "GET", "/conversations/" + encodeURIComponent(id)).then(function (info) {
      if (id !== conv.id) return;
      render(info.messages);
      applyConv(info.state, info.agent);
    });
  }

  /* Live messages: the conversation's event stream; where the server has none for agents,
     the conversation is read again every 2 s. */
  function follow() {
    var id = conv.id;
    conv.live = S.openStream({
      token: token,
      url: function () {
        return "/v1/support/conversations/" + encodeURIComponent(id) + "/events?after=" + conv.lastId;
      },
      onEvent: function (event) {
        if (id !== conv.id) return;
        if (event.type === "message" && event.message) render([event.message]);
        else if (event.type === "state") applyConv(event.state, event.agent);
      },
      onStatus: function () {},
      onError: function () {
        if (id !== conv.id) return;
        var poll = setInterval(function () { load().catch(showError); }, POLL_MS);
        conv.live = { stop: function () { clearInterval(poll); } };
      },
    });
  }

  function open(id) {
    if (conv.live) conv.live.stop();
    conv = { id: id, state: "", agent: null, seen: new Set(), lastId: 0, live: null };
    convMessages.textContent = "";
    showError(null);
    applyConv("", null);
    load().then(follow, showError);
  }

  /* One action, then the conversation and the lists are read again. */
  function act(method, path, body) {
    showError(null);
    return S.api(token, method, path, body).then(function (result) {
      var chain = conv.id ? load() : Promise.resolve();
      return chain.then(refresh).then(function () { return result; });
    }).catch(function (failure) {
      showError(failure);
      if (conv.id) load().catch(function () {});
      refresh();
      throw failure;
    });
  }

  function convAction(name) {
    return function () {
      if (!conv.id) return;
      act("POST", "/conversations/" + encodeURIComponent(conv.id) + "/" + name, agentBody())
        .catch(function () {});
    };
  }

  function take(id) {
    if (conv.id !== id) open(id);
    return convAction("take")();
  }

  $("take").addEventListener("click", convAction("take"));
  $("release").addEventListener("click", convAction("release"));
  $("resolve").addEventListener("click", convAction("resolve"));
  $("refresh").addEventListener("click", function () { drawn = {}; refresh(); });

  $("reply-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = replyBox.value.trim();
    if (!text || !conv.id) return;
    $("send-reply").disabled = true;
    act("POST", "/conversations/" + encodeURIComponent(conv.id) + "/reply", agentBody({ text: text }))
      .then(function (message) {
        if (message && typeof message.id === "number") render([message]);
        if (replyBox.value.trim() === text) replyBox.value = "";  /* kept on failure */
      }, function () {})
      .then(function () { applyConv(conv.state); replyBox.focus(); });
  });

  /* Ask the server who the token acts as, then work the queue as that agent. */
  function connect() {
    showError(null);
    clearInterval(timer);
    me = "";
    return S.api(token, "GET", "/me").then(function (who) {
      own = who.agent;
      $("act-for").hidden = $("act-for-help").hidden = !who.acts_for_others;
      me = (who.acts_for_others && actFor) || own || "";
      if (!me) {
        showError("This server has no tokens: name the agent you act for, then connect.");
        nameInput.focus();
        return;
      }
      drawn = {};
      refresh();
      timer = setInterval(refresh, REFRESH_MS);
      if (conv.id) applyConv(conv.state);
    }).catch(function (failure) {
      connection.textContent = "Not connected";
      connection.dataset.status = "stopped";
      showError(failure);
    });
  }

  $("login").addEventListener("submit", function (event) {
    event.preventDefault();
    token = tokenInput.value.trim();
    actFor = $("act-for").hidden ? "" : nameInput.value.trim();
    if (!token) return;
    sessionStorage.setItem("aigc.agent.token", token);
    sessionStorage.setItem("aigc.agent.name", actFor);
    connect();
  });

  tokenInput.value = token;
  nameInput.value = actFor;
  applyConv("", null);
  if (token) connect();
})();
