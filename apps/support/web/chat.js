/* The customer chat: ask, see cited answers, ask for a person, and follow the handoff live.
   ?token= is a chat-scoped token (public, like a website widget key); ?session= resumes. */
"use strict";

(function () {
  var S = window.AigcSupport;
  var params = new URLSearchParams(window.location.search);
  var token = params.get("token") || "";
  var sessionId = params.get("session") || "";
  var seen = new Set();
  var lastId = 0;
  var stream = null;
  var state = "bot";
  var holder = null;  /* the agent who has the conversation, while "human" */
  var place = null;   /* the queue position, while "pending_human" */
  var busy = false;

  var $ = function (id) { return document.getElementById(id); };
  var messages = $("messages");
  var banner = $("banner");
  var errorBox = $("error");
  var input = $("message");
  var sendButton = $("send");
  var humanButton = $("human");
  var restartButton = $("restart");
  var connection = $("connection");

  function showError(failure) {
    errorBox.textContent = failure ? String(failure) : "";
    errorBox.hidden = !failure;
  }

  function remember(id) {
    var next = new URLSearchParams(window.location.search);
    if (id) next.set("session", id); else next.delete("session");
    var query = next.toString();
    window.history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
  }

  function render(list) {
    lastId = Math.max(lastId, S.appendMessages(messages, seen, list));
  }

  /* The banner and which controls work follow the conversation's state. Updates come from
     three places in no fixed order (the reply to a send, the event stream, the read after a
     send), so one that leaves the agent or the queue position out keeps what the page knows
     of the same state: only a new state forgets them. */
  function applyState(next, agent, position) {
    if (next && next !== state) {
      state = next;
      holder = null;
      place = null;
    }
    if (agent) holder = agent;
    if (position) place = position;
    paint();
  }

  function paint() {
    var text = "";
    if (state === "pending_human") {
      text = "Waiting for a person" +
        (place ? " \u2014 you are number " + place + " in the queue" : "");
    } else if (state === "human") {
      text = "You are chatting with " + (holder || "a person");
    } else if (state === "resolved") {
      text = "Resolved";
    }
    banner.textContent = text;
    banner.hidden = !text;
    banner.className = "banner banner-" + state;
    document.body.dataset.state = state;
    var closed = state === "resolved";
    input.disabled = closed || busy;
    sendButton.disabled = closed || busy;
    humanButton.hidden = closed || state === "pending_human" || state === "human";
    humanButton.disabled = busy;
    restartButton.hidden = !closed;
  }

  function setBusy(value) {
    busy = value;
    paint();  /* the controls only: what is known of the state stays */
  }

  function follow() {
    if (stream || !sessionId) return;
    stream = S.openStream({
      token: token,
      url: function () {
        return "/v1/support/sessions/" + encodeURIComponent(sessionId) + "/events?after=" + lastId;
      },
      onEvent: function (event) {
        if (event.type === "message" && event.message) render([event.message]);
        else if (event.type === "state") applyState(event.state, event.agent, event.queue_position);
      },
      onStatus: function (status) {
        connection.textContent = status === "live" ? "Live" :
          status === "reconnecting" ? "Reconnecting\u2026" : "Not connected";
        connection.dataset.status = status;
      },
      onError: showError,
    });
  }

  /* Bring the page up to date with the stored conversation (after a send or a resume). */
  function sync() {
    return S.api(token, "GET", "/sessions/" + encodeURIComponent(sessionId)).then(function (info) {
      render(info.messages);
      applyState(info.state, info.agent, info.queue_position);
    });
  }

  function ensureSession() {
    if (sessionId) return Promise.resolve(sessionId);
    return S.api(token, "POST", "/sessions", {}).then(function (created) {
      sessionId = created.session_id;
      remember(sessionId);
      follow();
      return sessionId;
    });
  }

  function send(text) {
    text = text.trim();
    if (!text || busy) return;
    showError(null);
    setBusy(true);
    ensureSession().then(function (id) {
      return S.api(token, "POST", "/sessions/" + encodeURIComponent(id) + "/messages", { message: text });
    }).then(function (reply) {
      if (input.value.trim() === text) input.value = "";
      applyState(reply.state, null, reply.queue_position);
      return sync();
    }).catch(function (failure) {
      showError(failure);  /* the text stays in the box: nothing typed is lost */
      if (failure.code === "conversation_resolved") applyState("resolved");
    }).then(function () {
      setBusy(false);
      if (!input.disabled) input.focus();
    });
  }

  function restart() {
    if (stream) stream.stop();
    stream = null;
    sessionId = "";
    lastId = 0;
    seen = new Set();
    messages.textContent = "";
    remember("");
    showError(null);
    applyState("bot");
    input.focus();
  }

  $("composer").addEventListener("submit", function (event) {
    event.preventDefault();
    send(input.value);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send(input.value);
    }
  });
  humanButton.addEventListener("click", function () { send("I want to talk to a human"); });
  restartButton.addEventListener("click", restart);

  applyState("bot");
  if (sessionId) {
    sync().then(follow, function (failure) {
      if (failure.status === 404) {
        showError(new S.ApiFailure(404, "That conversation was not found; your next message starts a new one."));
        sessionId = "";
        remember("");
      } else {
        showError(failure);
        follow();
      }
    });
  }
})();
