// Live updates of the overview: its figures are fetched again every 5 s and swapped in.
// Without JavaScript the page is the same, as of when it was loaded.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.fetch) { return; }
  function refresh() {
    fetch(live.dataset.src, { credentials: "same-origin" })
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) { if (html !== null) { live.innerHTML = html; } })
      .catch(function () {});
  }
  setInterval(refresh, 5000);
})();
