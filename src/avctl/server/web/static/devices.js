// The device table's multi-select: ticked devices are remembered while the table pages, sorts and
// refreshes itself, and the "Run a job on N devices" link selects exactly them (name=a,name=b: the
// selection syntax ORs repeated keys).
(function () {
  "use strict";
  const picked = new Set();

  function update() {
    const boxes = document.querySelectorAll("#device-table input.pick");
    boxes.forEach((b) => { b.checked = picked.has(b.value); });
    const all = document.getElementById("pick-page");
    if (all) {
      const ticked = Array.from(boxes).filter((b) => b.checked).length;
      all.checked = boxes.length > 0 && ticked === boxes.length;
      all.indeterminate = ticked > 0 && ticked < boxes.length;
    }
    const link = document.getElementById("run-picked");
    if (!link) return;
    const names = Array.from(picked).sort();
    link.hidden = names.length === 0;
    document.getElementById("pick-clear").hidden = names.length === 0;
    document.getElementById("picked-none").hidden = names.length > 0;
    document.getElementById("picked-count").textContent = String(names.length);
    link.href = "/jobs/new?select=" + encodeURIComponent(names.map((n) => "name=" + n).join(","));
  }

  document.addEventListener("change", (e) => {
    const box = e.target;
    if (box.matches("#device-table input.pick")) {
      if (box.checked) picked.add(box.value); else picked.delete(box.value);
      update();
    } else if (box.id === "pick-page") {
      document.querySelectorAll("#device-table input.pick").forEach((b) => {
        if (box.checked) picked.add(b.value); else picked.delete(b.value);
      });
      update();
    }
  });

  document.addEventListener("click", (e) => {
    if (e.target.closest("#pick-clear")) {
      picked.clear();
      update();
    }
  });

  document.addEventListener("DOMContentLoaded", update);
  document.addEventListener("htmx:afterSettle", update);
})();
