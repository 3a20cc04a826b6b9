// Playing a finished transcode's HLS ladder in the page. The service's playlist route
// (GET /jobs/{id}/hls/<path>) wants the caller's token, which a <video> element can not
// send; so the page fetches the master playlist and each rendition's playlist itself (a
// rendition's segments come back as short-lived presigned URLs, which need no token),
// points the master at the renditions it fetched, and gives the video that master. The
// browser's own HLS support plays it (no player library), but only segments of the page's
// own origin: so each segment is loaded through the console's /media (docs/console.md).

import { apiUrl, authHeaders, mediaUrl } from "./api.js";
import { el } from "./dom.js";

const PLAYLIST = "application/vnd.apple.mpegurl";

/** Whether `outputs` names an HLS master playlist to play. */
export function hasLadder(outputs) {
  return Boolean(outputs) && typeof outputs.master === "string" && outputs.master.endsWith(".m3u8");
}

/** A <video> playing `service`'s job `jobId`, or a line saying why it can not. */
export async function hlsPlayer(service, jobId) {
  const video = el("video", { id: "player", controls: "", playsinline: "", preload: "metadata", width: "640" });
  if (!video.canPlayType(PLAYLIST)) {
    return el("p", { class: "muted", id: "player-problem" }, "This browser does not play HLS by itself.");
  }
  const base = apiUrl(service, `/jobs/${encodeURIComponent(jobId)}/hls/`);
  const fetchText = async (path) => {
    const answer = await fetch(base + path, { headers: authHeaders(), cache: "no-store" });
    if (!answer.ok) throw new Error(`${path}: HTTP ${answer.status}`);
    return answer.text();
  };
  try {
    const master = await fetchText("master.m3u8");
    const lines = await Promise.all(master.split(/\r?\n/).map(async (line) => {
      if (!line || line.startsWith("#")) return line;
      if (!/^[A-Za-z0-9_./-]+\.m3u8$/.test(line) || line.split("/").includes("..")) {
        throw new Error("the master playlist names an unexpected rendition");
      }
      const rendition = await fetchText(line);
      return blobUrl(rendition.split(/\r?\n/).map((entry) =>
        (entry && !entry.startsWith("#") ? mediaUrl(entry) : entry)).join("\n"));
    }));
    video.src = blobUrl(lines.join("\n"));
  } catch (error) {
    return el("p", { class: "error", id: "player-problem" }, `The ladder can not be played: ${error.message}`);
  }
  return video;
}

function blobUrl(text) {
  return URL.createObjectURL(new Blob([text], { type: PLAYLIST }));
}
