// The vihtr page: gather line images (samples, upload, drop, paste), send them to /api/predict, show the text.
"use strict";

const state = { items: [], maxFiles: 16, busy: false, reviewBelow: null };
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
  result.hidden = false;
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
  }
  if (!response.ok) throw new Error(await errorMessage(response));
  showModel(body.model);
  const failed = body.predictions.filter((prediction) => prediction.error).length;
  const note = failed ? ` ${failed} file(s) could not be read.` : "";
  if (body.domain && !domain) showDefaultDomain(body.domain);  // /health knows it only once models load
  const domainNote = body.domain ? `, as ${DOMAIN_LABELS[body.domain] || body.domain}` : "";
  setStatus(`Read ${items.length - failed} line(s) in ${body.total_ms.toFixed(0)} ms with ${body.model.join(" + ")}${domainNote}.${note}`, failed > 0);
}

async function copyText(item) {
  const text = item.text || "";
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
  $("#file-input").addEventListener("change", (event) => {
    addFiles(event.target.files, "uploaded");
    event.target.value = "";
  });
  setUpDropAndPaste();
  updateButtons();
  loadHealth();
});
