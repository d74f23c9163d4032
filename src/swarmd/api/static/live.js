// Live updates of the dashboard from /api/v1/events (server-sent events; the session cookie authenticates).
(function () {
  var live = document.getElementById("live");
  var body = document.querySelector("#objectives tbody");
  var source = new EventSource("/api/v1/events");
  source.onopen = function () { live.textContent = "live"; };
  source.onerror = function () { live.textContent = "live: reconnecting"; };
  source.addEventListener("state", function (e) {
    var change = JSON.parse(e.data);
    document.querySelectorAll('[data-id="' + CSS.escape(change.id) + '"] .state').forEach(function (cell) {
      cell.textContent = change.state;
      cell.className = "state state-" + change.state;
    });
    if (body && !body.querySelector('tr[data-id="' + CSS.escape(change.id) + '"]')) {
      var row = document.createElement("tr");
      row.dataset.id = change.id;
      var link = document.createElement("a");
      link.href = "/objectives/" + encodeURIComponent(change.id);
      link.textContent = change.id;
      var cells = [link, change.state, change.action || "", "", "", ""];
      cells.forEach(function (value, i) {
        var cell = document.createElement("td");
        if (i === 0) { cell.appendChild(value); } else { cell.textContent = value; }
        if (i === 1) { cell.className = "state state-" + change.state; }
        row.appendChild(cell);
      });
      body.insertBefore(row, body.firstChild);
    }
  });
})();
