// The live events socket: ticket -> WebSocket -> reconnect with jittered backoff. A socket that
// stops hearing the relay's pings is taken for dead.

import { API, ApiError, api, asApiError } from "../api.js";

/** @typedef {import("./types.js").EventMessage} EventMessage */
/** @typedef {import("./types.js").LiveState} LiveState */

/**
 * Live events. `onMessage(msg)` gets each parsed JSON message; `onState(state)`
 * gets "connecting" | "live" | "reconnecting" | "stopped".
 * Every (re)connect fetches a fresh ticket. Subscriptions made with send() (log follows)
 * do not survive a reconnect: re-send them when the state becomes "live" again.
 */
export class EventStream {
  /** @param {{ onMessage: (msg: EventMessage) => void, onState: (state: LiveState) => void }} handlers */
  constructor({ onMessage, onState }) {
    this.onMessage = onMessage;
    this.onState = onState;
    /** @type {WebSocket | null} */
    this.ws = null;
    this.timer = 0;
    this.stableTimer = 0;
    this.watchdog = 0;
    this.lastHeard = 0;
    this.attempt = 0;
    this.running = false;
    /** @type {LiveState} */
    this.state = "stopped";
    this.nextRetryAt = 0;
    this._online = () => this.retryNow();
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    window.addEventListener("online", this._online);
    this._setState("connecting");
    this._connect();
  }

  stop() {
    this.running = false;
    window.removeEventListener("online", this._online);
    clearTimeout(this.timer);
    clearTimeout(this.stableTimer);
    clearInterval(this.watchdog);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = null;
      ws.onmessage = null;
      ws.onclose = null;
      ws.onerror = null;
      try {
        ws.close(1000, "bye");
      } catch {
        /* ignore */
      }
    }
    this._setState("stopped");
  }

  /** Send a JSON message now. False when the socket is not open (the caller re-sends on "live"). @param {object} msg */
  send(msg) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    try {
      ws.send(JSON.stringify(msg));
      return true;
    } catch {
      return false;
    }
  }

  /** Skip the remaining backoff (e.g. when the browser comes back online). */
  retryNow() {
    if (!this.running || this.ws) return;
    clearTimeout(this.timer);
    this._connect();
  }

  /** @param {LiveState} state */
  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    try {
      this.onState(state);
    } catch (e) {
      console.error(e);
    }
  }

  async _connect() {
    if (!this.running) return;
    let ticket;
    try {
      const data = await api.eventsTicket();
      ticket = data?.ticket;
      if (!ticket) throw new ApiError(500, "bad_response", "No ticket in response");
    } catch (err) {
      if (!this.running) return;
      if (asApiError(err).status === 401) {
        this.stop();
        return;
      } // session is gone; the app shows login
      this._scheduleReconnect();
      return;
    }
    if (!this.running) return;

    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${proto}//${location.host}${API}/events?ticket=${encodeURIComponent(ticket)}`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this._scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.lastHeard = Date.now();
      // The relay pings every 25 s: a socket that heard nothing for 70 s is dead (a relay or a
      // network that went away without closing it), so drop it and reconnect.
      clearInterval(this.watchdog);
      this.watchdog = setInterval(() => {
        if (this.ws === ws && Date.now() - this.lastHeard > 70_000) {
          clearInterval(this.watchdog);
          try {
            ws.close(4000, "no ping");
          } catch {
            /* ignore */
          }
          if (this.ws === ws) this._dropped(ws);
        }
      }, 5_000);
      this._setState("live");
      // Only forget the backoff once the connection has proven stable.
      clearTimeout(this.stableTimer);
      this.stableTimer = setTimeout(() => {
        this.attempt = 0;
      }, 10_000);
    };
    ws.onmessage = (ev) => {
      this.lastHeard = Date.now();
      if (typeof ev.data !== "string") return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg && typeof msg === "object") {
        try {
          this.onMessage(msg);
        } catch (e) {
          console.error(e);
        }
      }
    };
    ws.onerror = () => {
      /* a close event follows */
    };
    ws.onclose = () => this._dropped(ws);
  }

  /** The socket closed (or was found dead): reconnect. @param {WebSocket} ws */
  _dropped(ws) {
    clearTimeout(this.stableTimer);
    if (this.ws !== ws) return;
    clearInterval(this.watchdog);
    this.ws = null;
    if (this.running) this._scheduleReconnect();
  }

  _scheduleReconnect() {
    this._setState("reconnecting");
    // 0.5 s doubling up to 15 s, with ±30 % jitter.
    const base = Math.min(15_000, 500 * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 10);
    const delay = Math.round(base * (0.7 + Math.random() * 0.6));
    this.nextRetryAt = Date.now() + delay;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this._connect(), delay);
  }
}
