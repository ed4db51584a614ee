/* Embeds the support chat in any page:
   <script src="https://support.example/chat/embed.js" data-token="CHAT_TOKEN" async></script>
   adds an iframe of /chat from the same server right where the tag is (data-token: a
   chat-scoped token; data-width / data-height: the frame's size, default 380px x 560px). */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src) return;
  var base = new URL(script.src);
  var src = new URL("/chat", base.origin);
  var token = script.getAttribute("data-token");
  if (token) src.searchParams.set("token", token);
  var frame = document.createElement("iframe");
  frame.src = src.toString();
  frame.title = script.getAttribute("data-title") || "Support chat";
  frame.setAttribute("referrerpolicy", "no-referrer");
  frame.style.width = script.getAttribute("data-width") || "380px";
  frame.style.height = script.getAttribute("data-height") || "560px";
  frame.style.border = "1px solid #c8ccd4";
  frame.style.borderRadius = "8px";
  script.parentNode.insertBefore(frame, script.nextSibling);
})();
