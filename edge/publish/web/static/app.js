// The live page: the annotated MJPEG stream, overlay toggles, live stats, the event list.
// No build step and no CDN: this file and style.css ship in the package.
"use strict";

const $ = (id) => document.getElementById(id);

function overlays() {
  return [...document.querySelectorAll("input[name=overlay]:checked")].map((b) => b.value);
}

// Several cameras: a picker (shown once there is more than one); "" is the first camera.
function picked() { return $("pick").value || ""; }

function restartStream() {
  const q = new URLSearchParams();
  if (picked()) q.set("camera", picked());
  const o = overlays().join(",");
  if (o) q.set("overlays", o);
  const qs = q.toString() ? "?" + q.toString() : "";
  $("stream").src = "/stream.mjpg" + qs;
  $("snap").href = "/snapshot.jpg" + qs;
}
document.querySelectorAll("input[name=overlay]").forEach((b) => b.addEventListener("change", restartStream));
$("pick").addEventListener("change", restartStream);

function offerCameras(names) {
  const pick = $("pick");
  if (names.length < 2 || pick.options.length === names.length) return;
  const was = picked();
  pick.replaceChildren(...names.map((n) => new Option(n, n)));
  pick.value = names.includes(was) ? was : names[0];
  $("picker").hidden = false;
}

function describe(e) {
  const parts = [e.camera + ": " + e.type, "track " + e.track_id.split("-").pop()];
  if (e.identity && e.identity.status !== "pending") parts.push(e.identity.name || "unknown");
  if (e.emotion) parts.push(e.emotion.label + " " + Math.round(e.emotion.score * 100) + "%");
  if (e.authenticity) parts.push(e.authenticity.verdict + (e.authenticity.label ? " (" + e.authenticity.label + ")" : ""));
  for (const [name, h] of Object.entries(e.heads || {})) parts.push(name + ": " + h.label);
  return parts.join(" · ");
}

const events = new EventSource("/api/events");
events.onopen = () => { $("conn").textContent = "live"; $("conn").className = "pill ok"; };
events.onerror = () => { $("conn").textContent = "reconnecting…"; $("conn").className = "pill"; };
events.onmessage = (msg) => {
  const e = JSON.parse(msg.data);
  const li = document.createElement("li");
  li.className = "event " + e.type;
  const time = document.createElement("time");
  time.textContent = e.frame_time.slice(11, 19);
  li.append(time, " ", describe(e));
  $("events").prepend(li);
  while ($("events").children.length > 30) $("events").lastChild.remove();
};

function show(id, value) { $(id).textContent = value === null || value === undefined ? "–" : value; }

async function refresh() {
  try {
    const s = await (await fetch("/api/stats", { cache: "no-store" })).json();
    show("fps", s.live.fps);
    show("runs", s.live.model_runs_per_frame);
    const cams = Object.entries(s.cameras || {});
    offerCameras(cams.map(([name]) => name));
    show("camera", cams.length ? cams.map(([name, h]) => name + ": " + h.status +
      (h.status === "streaming" ? " (" + h.camera_fps + " fps)" : ", no frame for " + h.seconds_since_frame + " s")
    ).join("; ") : null);
    $("camera").className = cams.some(([, h]) => h.status !== "streaming") ? "bad" : "";
    const state = (s.states || {})[picked()] || s.state;
    if (state) s.state = state;
    if (s.state) { show("faces", s.state.faces + (s.state.people && s.state.people.length ? " (" + s.state.people.join(", ") + ")" : "")); $("device").textContent = s.state.device + " / " + s.state.camera; }
    if (s.service) {
      show("temp", s.service.cpu_temperature_c === null ? null : s.service.cpu_temperature_c + " °C");
      show("outbox", s.service.outbox_depth);
      show("mqtt", s.service.mqtt_connected ? "connected" : "not connected");
    }
  } catch (err) { /* the next refresh tries again */ }
}
refresh();
setInterval(refresh, 2000);
