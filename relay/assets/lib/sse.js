// Server-sent events from a fetch() body (EventSource can't send a bearer token or a POST): the
// bytes are decoded as UTF-8 as they come, split into lines, and each event (`event:` and `data:`
// lines up to a blank line) is handed on with its data parsed as JSON where it is JSON.

/**
 * @typedef {object} SseEvent
 * @property {string} event its type (`message` when it names none)
 * @property {unknown} data the data, parsed as JSON (the text when it is not JSON)
 */

/**
 * Reads `stream` to its end (or until `onEvent` returns false), handing each event to `onEvent`.
 * Resolves when the stream ends; rejects when reading fails (an aborted request, a dropped
 * connection).
 * @param {ReadableStream<Uint8Array>} stream
 * @param {(ev: SseEvent) => boolean | undefined | void} onEvent
 */
export async function readEvents(stream, onEvent) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let type = "";
  /** @type {string[]} */
  let data = [];
  let stopped = false;

  /** @param {string} line */
  const take = (line) => {
    if (line === "") {
      if (data.length) {
        const text = data.join("\n");
        let parsed;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = text;
        }
        if (onEvent({ event: type || "message", data: parsed }) === false) stopped = true;
      }
      type = "";
      data = [];
      return;
    }
    if (line.startsWith(":")) return; // a comment (keep-alive)
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") type = value;
    else if (name === "data") data.push(value);
    // `id:` and `retry:` mean nothing to a one-shot stream.
  };

  try {
    while (!stopped) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      // Lines end in \n, \r\n or \r; a \r at the very end may be half of a \r\n.
      let start = 0;
      for (let i = 0; i < buffer.length && !stopped; i++) {
        const c = buffer[i];
        if (c !== "\n" && c !== "\r") continue;
        if (c === "\r" && i === buffer.length - 1 && !done) break;
        take(buffer.slice(start, i));
        if (c === "\r" && buffer[i + 1] === "\n") i++;
        start = i + 1;
      }
      buffer = buffer.slice(start);
      if (done) {
        if (buffer) take(buffer);
        take(""); // an event the stream ended without a blank line after
        break;
      }
    }
  } finally {
    if (stopped) reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
