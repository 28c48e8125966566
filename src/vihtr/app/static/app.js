// The vihtr page: gather line images (samples, upload, drop, paste), send them to /api/predict, show the text,
// then review: the lines to check first, each text editable, Enter accepts (and saves it on a server that keeps
// corrections), Tab goes to the next line to check; export the checked texts as CSV or JSON.
"use strict";

const state = { items: [], maxFiles: 16, busy: false, reviewBelow: null, savesCorrections: false };
const $ = (selector) => document.querySelector(selector);
const DOMAIN_LABELS = {
  general: "written (no language model)",
  prose: "prose",
  address: "addresses",
  auto: "addresses or prose, line by line",
};
const LINE_DOMAIN_LABELS = { general: "written", prose: "prose", address: "an address" };

function setStatus(message, isError = false) {
  const status = $("#status");
  status.textContent = message;
  status.classList.toggle("error", isError);
  status.setAttribute("role", isError ? "alert" : "status");
}

function updateButtons() {
  $("#predict").disabled = state.busy || state.items.length === 0;
  $("#clear").disabled = state.busy || state.items.length === 0;
  const read = state.items.some((item) => item.read !== undefined);
  $("#export-csv").disabled = !read;
  $("#export-json").disabled = !read;
  $("#get-images").disabled = state.busy;
  document.body.dataset.busy = state.busy ? "true" : "false";
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error) return `${body.error} (HTTP ${response.status})`;
  } catch (_) { /* not JSON */ }
  return `HTTP ${response.status} ${response.statusText}`;
}

function addItem(name, blob) {
  const card = $("#card-template").content.firstElementChild.cloneNode(true);
  const url = URL.createObjectURL(blob);
  const image = card.querySelector(".line-image");
  image.addEventListener("error", () => {
    // the browser cannot show it (corrupt, or a format it lacks): say so instead of a broken-image icon
    const note = document.createElement("p");
    note.className = "image-unviewable muted";
    note.textContent = "This file cannot be shown as an image.";
    image.replaceWith(note);
  }, { once: true });
  image.src = url;
  image.alt = `Line image ${name}`;
  card.querySelector(".image-name").textContent = name;
  const item = { name, blob, url, card };
  card.querySelector(".remove").setAttribute("aria-label", `Remove ${name}`);
  card.querySelector(".remove").addEventListener("click", () => removeItem(item));
  card.querySelector(".copy-text").addEventListener("click", () => copyText(item));
  const input = card.querySelector(".correction");
  input.setAttribute("aria-label", `Checked text of ${name}`);
  input.addEventListener("input", () => { item.text = input.value; setReviewStatus(item, "unreviewed"); });
  input.addEventListener("keydown", (event) => onReviewKey(event, item));
  card.querySelector(".accept").addEventListener("click", () => accept(item));
  state.items.push(item);
  $("#images").appendChild(card);
  updateButtons();
}

function removeItem(item) {
  URL.revokeObjectURL(item.url);
  item.card.remove();
  state.items = state.items.filter((other) => other !== item);
  updateButtons();
}

function clearItems() {
  [...state.items].forEach(removeItem);
  setStatus("");
}

function addFiles(files, origin) {
  const images = [...files].filter((file) => file.type.startsWith("image/"));
  const skipped = files.length - images.length;
  const room = state.maxFiles - state.items.length;
  images.slice(0, room).forEach((file, i) => addItem(file.name || `${origin}-${Date.now()}-${i + 1}.png`, file));
  const notes = [];
  if (skipped > 0) notes.push(`${skipped} file(s) skipped: not images`);
  if (images.length > room) notes.push(`at most ${state.maxFiles} images at once`);
  setStatus(notes.join("; "), notes.length > 0);
}

async function withBusy(task) {
  state.busy = true;
  updateButtons();
  try {
    await task();
  } catch (error) {
    setStatus(`Error: ${error.message}`, true);
  } finally {
    state.busy = false;
    updateButtons();
  }
}

async function getImages() {
  setStatus("Fetching sample images…");
  const response = await fetch("/api/samples?n=3");
  if (!response.ok) throw new Error(await errorMessage(response));
  const { samples } = await response.json();
  if (samples.length === 0) throw new Error("the server has no sample images");
  const blobs = await Promise.all(samples.map(async (sample) => {
    const imageResponse = await fetch(sample.url);
    if (!imageResponse.ok) throw new Error(await errorMessage(imageResponse));
    return imageResponse.blob();
  }));
  clearItems();
  samples.forEach((sample, i) => addItem(sample.name, blobs[i]));
  setStatus(`${samples.length} sample image(s). Press Predict to read them.`);
}

function showPrediction(item, prediction) {
  const result = item.card.querySelector(".result");
  const text = result.querySelector(".prediction-text");
  text.replaceChildren();
  item.card.classList.toggle("failed", Boolean(prediction.error));
  if (prediction.error) {
    text.textContent = prediction.error;
    result.querySelector(".prediction-meta").hidden = true;
    item.text = "";
    result.hidden = false;
    return;
  }
  result.querySelector(".prediction-meta").hidden = false;
  [...prediction.text].forEach((char, i) => {
    const confidence = prediction.char_confidences[i];
    if (confidence !== undefined && confidence < 0.5) {
      const span = document.createElement("span");
      span.className = "low";
      span.title = `confidence ${(confidence * 100).toFixed(0)}%`;
      span.textContent = char;
      text.appendChild(span);
    } else {
      text.appendChild(document.createTextNode(char));
    }
  });
  text.classList.toggle("empty", prediction.text.length === 0);
  result.querySelector(".prediction-confidence").textContent = `${Math.round(prediction.confidence * 100)}%`;
  // the release's documented threshold: lines under it are the ones worth checking by hand
  const check = state.reviewBelow !== null && prediction.confidence < state.reviewBelow;
  result.querySelector(".prediction-review").hidden = !check;
  item.card.classList.toggle("needs-review", check);
  result.querySelector(".prediction-domain").textContent = LINE_DOMAIN_LABELS[prediction.domain] || prediction.domain || "?";
  result.querySelector(".prediction-ms").textContent = prediction.ms.toFixed(0);
  item.text = prediction.text;
  item.read = prediction.text;
  item.confidence = prediction.confidence;
  item.domain = prediction.domain || "";
  item.review = check;
  result.querySelector(".correction").value = prediction.text;
  setReviewStatus(item, "unreviewed");
  result.hidden = false;
}

// the lines to check first (in their order), then the others
function putFlaggedFirst() {
  const ordered = [...state.items.filter((item) => item.review), ...state.items.filter((item) => !item.review)];
  ordered.forEach((item) => $("#images").appendChild(item.card));
  state.items = ordered;
}

function setReviewStatus(item, status, message = "") {
  item.status = status;
  const label = item.card.querySelector(".review-status");
  label.textContent = message || (status === "unreviewed" ? "" : status);
  label.classList.toggle("error", status === "error");
  item.card.classList.toggle("reviewed", status === "accepted" || status === "corrected");
}

function readable(item) {
  return item.read !== undefined && !item.card.classList.contains("failed");
}

// the next line after `item` (wrapping) that still needs checking: a flagged one first, else any unreviewed
function nextToReview(item) {
  const lines = state.items.filter(readable);
  const start = lines.indexOf(item);
  const after = [...lines.slice(start + 1), ...lines.slice(0, Math.max(start, 0))];
  const open = (other) => other.status !== "accepted" && other.status !== "corrected";
  return after.find((other) => other.review && open(other)) || after.find(open) || null;
}

function focusLine(item) {
  if (!item) return;
  const input = item.card.querySelector(".correction");
  input.focus();
  input.select();
}

function onReviewKey(event, item) {
  if (event.isComposing || event.keyCode === 229) return;  // a Vietnamese input method is still composing
  if (event.key === "Enter") {
    event.preventDefault();
    accept(item).then(() => focusLine(nextToReview(item)));
  } else if (event.key === "Tab" && !event.shiftKey) {
    const next = nextToReview(item);
    if (next && next !== item) {
      event.preventDefault();
      focusLine(next);
    }
  }
}

async function accept(item) {
  const text = item.card.querySelector(".correction").value.normalize("NFC").trim();
  item.text = text;
  const status = text === item.read ? "accepted" : "corrected";
  if (!state.savesCorrections) {
    setReviewStatus(item, status);
    return;
  }
  setReviewStatus(item, "saving", "saving…");
  const form = new FormData();
  form.append("image", item.blob, item.name);
  form.append("text", text);
  try {
    const response = await fetch("/api/corrections", { method: "POST", body: form });
    if (!response.ok) throw new Error(await errorMessage(response));
    const body = await response.json();
    setReviewStatus(item, status, `${status}, saved (${body.lines} line(s) in the set)`);
  } catch (error) {
    setReviewStatus(item, "error", `not saved: ${error.message}`);
  }
}

function exportRows() {
  return state.items.filter((item) => item.read !== undefined).map((item) => ({
    name: item.name,
    text: item.text,
    read: item.read,
    confidence: item.confidence,
    review: item.review,
    domain: item.domain,
    status: item.card.classList.contains("failed") ? "error" : item.status,
  }));
}

function csvCell(value) {
  const text = String(value ?? "");
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function exportResults(format) {
  const rows = exportRows();
  const fields = ["name", "text", "read", "confidence", "review", "domain", "status"];
  const body = format === "json"
    ? JSON.stringify(rows, null, 1)
    : [fields.join(","), ...rows.map((row) => fields.map((field) => csvCell(row[field])).join(","))].join("\r\n") + "\r\n";
  const type = format === "json" ? "application/json" : "text/csv";
  const link = $("#export-link");
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([body], { type: `${type};charset=utf-8` }));
  link.download = `vihtr-lines.${format}`;
  link.click();
  const reviewed = rows.filter((row) => row.status === "accepted" || row.status === "corrected").length;
  setStatus(`Exported ${rows.length} line(s) as ${format.toUpperCase()}, ${reviewed} of them checked.`);
}

async function predict() {
  const items = [...state.items];
  setStatus(`Reading ${items.length} line(s)…`);
  const form = new FormData();
  items.forEach((item) => form.append("images", item.blob, item.name));
  const domain = $("#domain").value;
  if (domain) form.append("domain", domain);
  const response = await fetch("/api/predict", { method: "POST", body: form });
  let body = null;
  try {
    body = await response.clone().json();
  } catch (_) { /* not JSON: a proxy's or the server's own error page */ }
  if (body && Array.isArray(body.predictions)) {
    body.predictions.forEach((prediction, i) => showPrediction(items[i], prediction));
    putFlaggedFirst();
    updateButtons();
  }
  if (!response.ok) throw new Error(await errorMessage(response));
  showModel(body.model);
  const failed = body.predictions.filter((prediction) => prediction.error).length;
  const note = failed ? ` ${failed} file(s) could not be read.` : "";
  if (body.domain && !domain) showDefaultDomain(body.domain);  // /health knows it only once models load
  const domainNote = body.domain ? `, as ${DOMAIN_LABELS[body.domain] || body.domain}` : "";
  const flagged = items.filter((item) => item.review).length;
  const check = flagged ? ` ${flagged} to check, first.` : "";
  setStatus(`Read ${items.length - failed} line(s) in ${body.total_ms.toFixed(0)} ms with ${body.model.join(" + ")}${domainNote}.${check}${note}`, failed > 0);
  focusLine(state.items.find((item) => item.review && readable(item)));
}

async function copyToClipboard(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    // no clipboard API (plain http on another host): copy through a hidden text area
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
}

async function copyText(item) {
  const text = item.text || "";
  await copyToClipboard(text);
  setStatus(`Copied: ${text}`);
}

function showModel(names, version) {
  const models = names.length ? names.join(" + ") : "models load at the first prediction";
  const info = $("#model-info");
  if (version) info.dataset.version = version;
  info.textContent = `Model: ${models} · version ${info.dataset.version || "?"}`;
}

function showDefaultDomain(domain) {
  $("#domain option[value='']").textContent = `the model's default (${DOMAIN_LABELS[domain] || domain})`;
}

async function loadHealth() {
  try {
    const response = await fetch("/health");
    const health = await response.json();
    state.maxFiles = health.limits.max_files;
    if (health.confidence) state.reviewBelow = health.confidence.review_below;
    state.savesCorrections = Boolean(health.corrections);
    showModel(health.model, health.version);
    if (health.domain) showDefaultDomain(health.domain);
  } catch (error) {
    $("#model-info").textContent = `Server not reachable: ${error.message}`;
  }
}

function setUpDropAndPaste() {
  const zone = $("#drop-zone");
  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("dragging")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    addFiles(event.dataTransfer.files, "dropped");
  });
  document.addEventListener("paste", (event) => {
    const files = [...event.clipboardData.items]
      .filter((entry) => entry.kind === "file")
      .map((entry) => entry.getAsFile());
    if (files.length) {
      event.preventDefault();
      addFiles(files, "pasted");
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("#get-images").addEventListener("click", () => withBusy(getImages));
  $("#predict").addEventListener("click", () => withBusy(predict));
  $("#clear").addEventListener("click", clearItems);
  $("#export-csv").addEventListener("click", () => exportResults("csv"));
  $("#export-json").addEventListener("click", () => exportResults("json"));
  $("#file-input").addEventListener("change", (event) => {
    addFiles(event.target.files, "uploaded");
    event.target.value = "";
  });
  setUpDropAndPaste();
  updateButtons();
  loadHealth();
});
