// Read a whole page: upload it to /api/pages, draw each found line's box over it (red: a line to check),
// list the lines top to bottom with their confidence, and copy the page's text. Uses app.js's errorMessage
// and copyToClipboard (loaded first).
"use strict";

const pageState = { text: "", url: null };
const SVG_NS = "http://www.w3.org/2000/svg";

function setPageStatus(message, isError = false) {
  const status = document.querySelector("#page-status");
  status.textContent = message;
  status.classList.toggle("error", isError);
  status.setAttribute("role", isError ? "alert" : "status");
}

function drawPage(page) {
  const boxes = document.querySelector("#page-boxes");
  const list = document.querySelector("#page-lines");
  boxes.replaceChildren();
  list.replaceChildren();
  boxes.setAttribute("viewBox", `0 0 ${page.width} ${page.height}`);
  page.lines.forEach((line, i) => {
    const [x0, y0, x1, y1] = line.box;
    const rect = document.createElementNS(SVG_NS, "rect");
    Object.entries({ x: x0, y: y0, width: x1 - x0, height: y1 - y0 }).forEach(([k, v]) => rect.setAttribute(k, v));
    rect.setAttribute("class", line.review ? "line-box needs-review" : "line-box");
    const title = document.createElementNS(SVG_NS, "title");
    title.textContent = `${i + 1}: ${line.text}`;
    rect.appendChild(title);
    const label = document.createElementNS(SVG_NS, "text");
    label.setAttribute("x", x0);
    label.setAttribute("y", y0);
    label.setAttribute("class", "line-number");
    label.textContent = String(i + 1);
    boxes.append(rect, label);

    const item = document.createElement("li");
    item.className = line.review ? "page-line needs-review" : "page-line";
    const text = document.createElement("span");
    text.className = "page-line-text";
    text.lang = "vi";
    text.textContent = line.text;
    const meta = document.createElement("span");
    meta.className = "muted page-line-meta";
    meta.textContent = ` · ${Math.round(line.confidence * 100)}%` + (line.review ? " · check this line" : "");
    item.append(text, meta);
    list.appendChild(item);
  });
}

async function readPage(file) {
  const view = document.querySelector("#page-view");
  if (pageState.url) URL.revokeObjectURL(pageState.url);
  pageState.url = URL.createObjectURL(file);
  document.querySelector("#page-image").src = pageState.url;
  view.hidden = false;
  document.querySelector("#page-boxes").replaceChildren();
  document.querySelector("#page-lines").replaceChildren();
  document.querySelector("#copy-page").disabled = true;
  setPageStatus(`Reading ${file.name}…`);
  const form = new FormData();
  form.append("images", file, file.name);
  const domain = document.querySelector("#domain").value;
  if (domain) form.append("domain", domain);
  const response = await fetch("/api/pages", { method: "POST", body: form });
  if (!response.ok) throw new Error(await errorMessage(response));
  const page = (await response.json()).pages[0];
  if (page.error) throw new Error(page.error);
  drawPage(page);
  pageState.text = page.text;
  document.querySelector("#copy-page").disabled = page.lines.length === 0;
  const flagged = page.lines.filter((line) => line.review).length;
  const check = flagged ? `, ${flagged} to check (in red)` : "";
  setPageStatus(page.lines.length
    ? `Read ${page.lines.length} line(s) in ${page.ms.toFixed(0)} ms${check}.`
    : "No handwriting found on this page.");
}

async function copyPage() {
  await copyToClipboard(pageState.text);
  setPageStatus("Copied the page's text.");
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelector("#page-input").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    event.target.value = "";
    if (!file) return;
    try {
      await readPage(file);
    } catch (error) {
      setPageStatus(`Error: ${error.message}`, true);
    }
  });
  document.querySelector("#copy-page").addEventListener("click", copyPage);
});
