// Live updates without reloading: every element with data-live="<url>" is refreshed from that
// HTML fragment every 2 s. A region the person is typing in or has focused is left alone.
// A region with data-plan (an incident's) is never swapped for one awaiting another plan: its
// approve form keeps the plan the person read (the server then refuses it as stale) and a
// banner says the plan changed, with a link to reload.
(function () {
  "use strict";
  var PERIOD = 2000;
  function busy(el) {
    if (el.contains(document.activeElement) && document.activeElement !== document.body) return true;
    var fields = el.querySelectorAll("input:not([type=hidden]), textarea");
    for (var i = 0; i < fields.length; i++) { if (fields[i].value) return true; }
    return false;
  }
  function planOf(html) {
    var box = document.createElement("template");
    box.innerHTML = html;
    var marker = box.content.querySelector(".live-plan");
    return marker ? marker.getAttribute("data-plan") || "" : "";
  }
  function planChanged(el) {
    el.setAttribute("data-stale", "1");
    if (document.getElementById("plan-changed")) return;
    var banner = document.createElement("p");
    banner.id = "plan-changed";
    banner.className = "flash bad";
    banner.setAttribute("role", "alert");
    banner.appendChild(document.createTextNode(
      "The plan changed since you opened this page \u2014 review the new plan. "));
    var link = document.createElement("a");
    link.href = window.location.href;
    link.textContent = "Reload to see the new plan";
    banner.appendChild(link);
    el.parentNode.insertBefore(banner, el);
  }
  function refresh(el) {
    if (document.hidden || busy(el) || el.hasAttribute("data-stale")) return;
    fetch(el.getAttribute("data-live"), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.status === 401) {
          window.location.assign("/console/signin?next=" + encodeURIComponent(window.location.pathname + window.location.search));
          return null;
        }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== el.getAttribute("data-last") && !busy(el)) {
          if (el.hasAttribute("data-plan")) {
            var read = el.getAttribute("data-plan"), now = planOf(html);
            if (now && read && now !== read) { planChanged(el); return; }
            if (now && !read) el.setAttribute("data-plan", now);
          }
          el.innerHTML = html;
          el.setAttribute("data-last", html);
          el.setAttribute("data-updated", String(Date.now()));
        }
      })
      .catch(function () { /* the next poll tries again */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var live = document.querySelectorAll("[data-live]");
    live.forEach(function (el) { setInterval(function () { refresh(el); }, PERIOD); });
  });
})();
