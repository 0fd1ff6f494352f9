// axp view: draws the charts, follows a run in progress, pages the trajectory.
// Everything shown comes from the server's autoescaped templates; nothing here builds
// markup out of data.
(function () {
  "use strict";

  function drawCharts(root) {
    if (typeof Plotly === "undefined") { return; }
    root.querySelectorAll(".chart[data-figure]").forEach(function (el) {
      if (el.dataset.drawn) { return; }
      var block = document.getElementById(el.dataset.figure);
      if (!block) { return; }
      var fig = JSON.parse(block.textContent);
      el.dataset.drawn = "1";
      Plotly.newPlot(el, fig.data, fig.layout, {displayModeBar: false, responsive: true});
    });
  }

  function follow(region) {
    var src = region.dataset.liveSrc;
    if (!src) { return; }
    function poll() {
      var sep = src.indexOf("?") < 0 ? "?" : "&";
      fetch(src + sep + "sig=" + encodeURIComponent(region.dataset.sig || ""), {cache: "no-store"})
        .then(function (resp) {
          var live = resp.headers.get("X-Live");
          if (resp.status === 200) {
            region.dataset.sig = resp.headers.get("X-Signature") || "";
            return resp.text().then(function (html) {
              region.innerHTML = html;
              drawCharts(region);
              return live;
            });
          }
          return live;
        })
        .then(function (live) { if (live !== "0") { setTimeout(poll, 1000); } })
        .catch(function () { setTimeout(poll, 3000); });
    }
    setTimeout(poll, 1000);
  }

  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("button.more[data-next]");
    if (!btn) { return; }
    btn.disabled = true;
    fetch(btn.dataset.next).then(function (resp) { return resp.text(); }).then(function (html) {
      btn.insertAdjacentHTML("afterend", html);
      btn.remove();
    });
  });

  function start() {
    drawCharts(document);
    document.querySelectorAll("[data-live-src]").forEach(follow);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
