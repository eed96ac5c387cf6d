// reelbeam report: optional niceties (the pages are complete without this script).
// - timeline: a cursor across every track and a readout of time, frame, shot and scene;
// - index: filter the rows of the current page.
(function () {
  "use strict";

  function clock(t) {
    var m = Math.floor(t / 60), s = t - 60 * m, h = Math.floor(m / 60);
    m = m % 60;
    var ss = (s < 10 ? "0" : "") + s.toFixed(1);
    return h ? h + ":" + (m < 10 ? "0" : "") + m + ":" + ss : m + ":" + ss;
  }

  // index of the last start <= t in a sorted array, or -1
  function locate(starts, t) {
    var lo = 0, hi = starts.length - 1, found = -1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (starts[mid] <= t) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found;
  }

  function setupTimeline() {
    var tracks = document.querySelector(".tracks");
    var source = document.getElementById("timeline-data");
    var readout = document.querySelector(".readout");
    if (!tracks || !source || !readout) return;
    var data;
    try { data = JSON.parse(source.textContent); } catch (e) { return; }
    if (!data.duration) return;
    var lanes = tracks.querySelectorAll(".lane");
    var cursors = [];
    for (var i = 0; i < lanes.length; i++) {
      var c = document.createElement("div");
      c.className = "cursor";
      lanes[i].appendChild(c);
      cursors.push(c);
    }
    function timeAt(ev) {
      var lane = ev.target.closest ? ev.target.closest(".lane") : null;
      if (!lane) return null;
      var r = lane.getBoundingClientRect();
      if (r.width <= 0) return null;
      var f = Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width));
      return { f: f, t: f * data.duration };
    }
    tracks.addEventListener("mousemove", function (ev) {
      var at = timeAt(ev);
      if (!at) return;
      for (var i = 0; i < cursors.length; i++) {
        cursors[i].style.left = (at.f * 100).toFixed(3) + "%";
        cursors[i].style.display = "block";
      }
      var parts = [clock(at.t)];
      if (data.fps) parts.push("frame " + Math.floor(at.t * data.fps));
      var shot = locate(data.shots || [], at.t);
      if (shot >= 0) parts.push("shot " + shot);
      var scene = locate(data.scenes || [], at.t);
      if (scene >= 0) parts.push("scene " + scene);
      readout.textContent = parts.join("  ·  ");
    });
    tracks.addEventListener("mouseleave", function () {
      for (var i = 0; i < cursors.length; i++) cursors[i].style.display = "none";
    });
    // A click on a plot goes to the shot at that time (bands link by themselves).
    tracks.addEventListener("click", function (ev) {
      if (ev.target.closest && ev.target.closest("a")) return;
      var at = timeAt(ev);
      if (!at) return;
      var shot = locate(data.shots || [], at.t);
      if (shot >= 0) location.hash = "shot-" + shot;
    });
  }

  function setupFilter() {
    var input = document.getElementById("filter");
    if (!input) return;
    var rows = document.querySelectorAll("table.videos tbody tr");
    input.addEventListener("input", function () {
      var q = input.value.toLowerCase();
      for (var i = 0; i < rows.length; i++) {
        rows[i].classList.toggle("hidden", q !== "" && rows[i].textContent.toLowerCase().indexOf(q) < 0);
      }
    });
  }

  setupTimeline();
  setupFilter();
})();
