/* Shared by the chat page and the agent console: API calls, the event stream, and DOM
   building. Stored text is only ever put in the page with textContent (never as HTML):
   a customer may type anything, markup included. */
"use strict";

(function () {
  var API = "/v1/support";

  /* An API error: the HTTP status plus the server's OpenAI-shaped error. */
  function ApiFailure(status, message, code) {
    this.status = status;
    this.message = message;
    this.code = code || null;
  }
  ApiFailure.prototype.toString = function () {
    return this.message + (this.code ? " (" + this.code + ")" : "");
  };

  function authHeaders(token, extra) {
    var headers = extra || {};
    if (token) headers["Authorization"] = "Bearer " + token;
    return headers;
  }

  /* fetch + JSON; a non-2xx answer rejects with an ApiFailure that says why. */
  function api(token, method, path, body) {
    var init = { method: method, headers: authHeaders(token, { Accept: "application/json" }) };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(API + path, init).then(
      function (res) {
        return res.text().then(function (text) {
          var data = null;
          try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
          if (res.ok) return data;
          var err = data && data.error ? data.error : {};
          throw new ApiFailure(res.status, err.message || ("HTTP " + res.status), err.code);
        });
      },
      function () {
        throw new ApiFailure(0, "The service cannot be reached; check your connection.", "offline");
      }
    );
  }

  /* Server-sent events read with fetch() (so the Authorization header is sent), with
     reconnection: after a dropped connection it asks again with after=<last message id>,
     waiting 1, 2, 4 ... 15 s between tries. A connection silent for 45 s (the server pings
     every 15 s) counts as dropped. onStatus gets "live", "reconnecting" or "stopped". */
  function openStream(opts) {
    var stopped = false;
    var controller = null;
    var delay = 1000;
    var timer = null;

    function schedule() {
      if (stopped) return;
      opts.onStatus("reconnecting");
      timer = setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    }

    function connect() {
      if (stopped) return;
      controller = new AbortController();
      var watchdog = null;
      var kick = function () {
        clearTimeout(watchdog);
        watchdog = setTimeout(function () { controller.abort(); }, 45000);
      };
      kick();
      var url = opts.url();
      fetch(url, {
        headers: authHeaders(opts.token, { Accept: "text/event-stream" }),
        signal: controller.signal,
        cache: "no-store",
      }).then(function (res) {
        if (!res.ok || !res.body) {
          return res.text().then(function (text) {
            var err = {};
            try { err = JSON.parse(text).error || {}; } catch (e) { err = {}; }
            var failure = new ApiFailure(res.status, err.message || ("HTTP " + res.status), err.code);
            if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
              stopped = true;
              opts.onStatus("stopped");
              if (opts.onError) opts.onError(failure);
              return;
            }
            throw failure;
          });
        }
        delay = 1000;
        opts.onStatus("live");
        var reader = res.body.getReader();
        var decoder = new TextDecoder();
        var buffer = "";
        var pump = function () {
          return reader.read().then(function (chunk) {
            if (chunk.done) return;
            kick();
            buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, "\n");
            var end;
            while ((end = buffer.indexOf("\n\n")) >= 0) {
              var block = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              var data = block.split("\n").filter(function (line) {
                return line.indexOf("data:") === 0;
              }).map(function (line) {
                return line.slice(5).replace(/^ /, "");
              }).join("\n");
              if (!data) continue;  /* a ": ping" comment */
              try { opts.onEvent(JSON.parse(data)); } catch (e) { /* a bad event is skipped */ }
            }
            return pump();
          });
        };
        return pump();
      }).catch(function () { /* dropped: the finally below reconnects */ })
        .then(function () {
          clearTimeout(watchdog);
          if (!stopped) schedule();
        });
    }

    connect();
    return {
      stop: function () {
        stopped = true;
        clearTimeout(timer);
        if (controller) controller.abort();
      },
    };
  }

  /* A DOM element: el("p", {className: "x"}, "text", child...). Strings become text nodes. */
  function el(tag, props) {
    var node = document.createElement(tag);
    var key;
    for (key in props || {}) {
      if (key === "dataset") {
        Object.keys(props.dataset).forEach(function (k) { node.dataset[k] = props.dataset[k]; });
      } else if (key.indexOf("aria-") === 0 || key === "role" || key === "for") {
        node.setAttribute(key, props[key]);
      } else {
        node[key] = props[key];
      }
    }
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function clock(iso) {
    var when = iso ? new Date(iso) : null;
    if (!when || isNaN(when.getTime())) return "";
    return when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  var WHO = { customer: "Customer", bot: "Assistant", agent: "Agent", system: "" };

  /* One message as a list item; sources (title + excerpt) under a bot answer. */
  function messageNode(msg, labels) {
    var names = labels || WHO;
    var who = msg.role === "agent" && msg.author ? msg.author : names[msg.role] || msg.role;
    var item = el("li", { className: "msg msg-" + msg.role, dataset: { id: String(msg.id), role: msg.role } });
    if (msg.role !== "system") {
      item.appendChild(el("p", { className: "msg-meta" },
        el("span", { className: "msg-who" }, who), " ",
        el("time", { dateTime: msg.at || "" }, clock(msg.at))));
    }
    item.appendChild(el("p", { className: "msg-text" }, msg.text || ""));
    var sources = msg.sources || [];
    if (sources.length) {
      var list = el("ul", { className: "sources", "aria-label": "Sources" });
      sources.forEach(function (s) {
        var title = s.title || s.source || "source";
        list.appendChild(el("li", { className: "source" },
          el("span", { className: "source-title" }, (s.ref ? "[" + s.ref + "] " : "") + title),
          el("span", { className: "source-excerpt" }, s.excerpt || "")));
      });
      item.appendChild(el("details", { className: "msg-sources", open: true },
        el("summary", {}, "Sources (" + sources.length + ")"), list));
    }
    return item;
  }

  /* Append messages not shown yet (by id, increasing); returns the highest id shown. */
  function appendMessages(listNode, seen, messages, labels) {
    var last = 0;
    var added = false;
    (messages || []).forEach(function (msg) {
      if (typeof msg.id !== "number") return;
      if (!seen.has(msg.id)) {
        seen.add(msg.id);
        var after = null;  /* keep id order even if a late answer brings an older message */
        Array.prototype.some.call(listNode.children, function (child) {
          if (Number(child.dataset.id) > msg.id) { after = child; return true; }
          return false;
        });
        listNode.insertBefore(messageNode(msg, labels), after);
        added = true;
      }
      last = Math.max(last, msg.id);
    });
    if (added) listNode.scrollTop = listNode.scrollHeight;  /* the newest message in view */
    return last;
  }

  window.AigcSupport = {
    api: api,
    ApiFailure: ApiFailure,
    openStream: openStream,
    el: el,
    clock: clock,
    messageNode: messageNode,
    appendMessages: appendMessages,
  };
})();
