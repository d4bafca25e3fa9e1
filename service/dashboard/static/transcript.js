// A timed transcript beside its audio: selecting a turn plays the recording from there, and the
// turn being heard is highlighted. Without JavaScript the turns are a plain list.
(function () {
  "use strict";
  var player = document.getElementById("player");
  var list = document.getElementById("turns");
  if (!player || !list) { return; }
  var turns = Array.prototype.slice.call(list.querySelectorAll("li[data-start]"));
  var current = null;
  function mark(turn) {
    if (turn === current) { return; }
    if (current) { current.classList.remove("current"); current.removeAttribute("aria-current"); }
    current = turn;
    if (turn) { turn.classList.add("current"); turn.setAttribute("aria-current", "true"); }
  }
  function play(turn) {
    player.currentTime = Number(turn.dataset.start) / 1000;
    mark(turn);
    var playing = player.play();
    if (playing && playing.catch) { playing.catch(function () {}); }
  }
  turns.forEach(function (turn) {
    turn.addEventListener("click", function () { play(turn); });
    turn.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); play(turn); }
    });
  });
  player.addEventListener("timeupdate", function () {
    var ms = player.currentTime * 1000;
    var heard = null;
    turns.forEach(function (turn) {
      if (ms >= Number(turn.dataset.start) && ms <= Number(turn.dataset.end)) { heard = turn; }
    });
    if (heard) { mark(heard); }
  });
})();
