// Every page: times in the viewer's time zone and copy buttons (htmx posts the forms' own CSRF field).
// (No inline script: the Content-Security-Policy allows scripts from this origin only.)
"use strict";

function showLocalTimes(root) {
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  root.querySelectorAll("time[datetime]").forEach((node) => {
    const when = new Date(node.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) {
      node.textContent = format.format(when);
      node.title = node.getAttribute("datetime");
    }
  });
}

function enableCopyButtons(root) {
  root.querySelectorAll("button[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(button.dataset.copy);
        button.textContent = "Copied";
      } catch {
        button.textContent = "Select and copy";
      }
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  showLocalTimes(document);
  enableCopyButtons(document);
});
document.addEventListener("htmx:afterSwap", (event) => showLocalTimes(event.target));
