// A job's Server-Sent Events, read with fetch (EventSource can not send an Authorization
// header). The stream ends when the job does; when it ends early (the stream's lifetime, a
// dropped connection) it is opened again with Last-Event-ID, so nothing is missed or repeated.

import { apiUrl, authHeaders } from "./api.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/** Follow `jobId`'s events until the job ends or `signal` aborts; `onEvent(kind, data)` gets
 * each event, `onTrouble(text)` a line when the stream can not be read (null once it can). */
export async function followJob(service, jobId, { onEvent, onTrouble, signal }) {
  let lastId = null;
  let pause = 500;
  const url = apiUrl(service, `/jobs/${encodeURIComponent(jobId)}/events`);
  while (!signal.aborted) {
    let ended = false;
    try {
      const headers = authHeaders({ Accept: "text/event-stream" });
      if (lastId) headers["Last-Event-ID"] = lastId;
      const answer = await fetch(url, { headers, signal, cache: "no-store" });
      if (answer.status === 401 || answer.status === 403 || answer.status === 404) {
        onTrouble(`the event stream answered HTTP ${answer.status}`);
        return;
      }
      if (!answer.ok || !answer.body) throw new Error(`HTTP ${answer.status}`);
      onTrouble(null);
      pause = 500;
      for await (const event of readEvents(answer.body, signal)) {
        if (event.id) lastId = event.id;
        let data = null;
        try { data = JSON.parse(event.data); } catch { continue; }
        onEvent(event.event || "message", data);
        if (event.event === "state" && TERMINAL.has(data.state)) ended = true;
      }
    } catch (error) {
      if (signal.aborted) return;
      onTrouble(`live updates paused (${error.message || error}); retrying`);
      pause = Math.min(pause * 2, 8000);
    }
    if (ended) return;
    await sleep(pause, signal);
  }
}

/** The events of a text/event-stream body, as { id, event, data } (comments skipped). */
export async function* readEvents(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let current = { id: null, event: null, data: [] };
  try {
    while (!signal.aborted) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        if (newline === buffer.length - 1 && buffer.endsWith("\r")) break; // maybe half a CRLF
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (current.data.length) {
            yield { id: current.id, event: current.event, data: current.data.join("\n") };
          }
          current = { id: null, event: null, data: [] };
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "data") current.data.push(text);
          else if (field === "id") current.id = text;
          else if (field === "event") current.event = text;
        }
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** Wait `ms`, or less if `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
