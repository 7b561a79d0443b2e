// The service's API as the front end uses it: one axios instance (camelCase in, snake_case
// out, through @jararaca/core's interceptors) carrying the access token, and the typed
// WebSocket context over the generated `WebSocketMessageMap`.
import { createWebSocketContext, setupAxiosCasesTransformerInterceptors } from "@jararaca/core";
import axios from "axios";

import type { TokenPair, WebSocketMessageMap } from "../../client/tasks.ts";

export const http = axios.create({ baseURL: "/" });
setupAxiosCasesTransformerInterceptors(http);

const CREDENTIALS = "tasks.credentials";

/** The token pair kept between reloads of this tab, or `null` when logged out. */
export function storedCredentials(): TokenPair | null {
  const raw = window.sessionStorage.getItem(CREDENTIALS);
  if (raw === null) {
    return null;
  }
  try {
    return JSON.parse(raw) as TokenPair;
  } catch {
    return null;
  }
}

/** Sends `credentials`' access token with every request from now on (or none). */
export function applyCredentials(credentials: TokenPair | null): void {
  if (credentials === null) {
    window.sessionStorage.removeItem(CREDENTIALS);
    delete http.defaults.headers.common.Authorization;
  } else {
    window.sessionStorage.setItem(CREDENTIALS, JSON.stringify(credentials));
    http.defaults.headers.common.Authorization = `Bearer ${credentials.accessToken}`;
  }
}

export const live = createWebSocketContext<WebSocketMessageMap>();

/** `ws(s)://<this host>/ws/tasks`: the service that served the page. */
export function webSocketUrl(): string {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${window.location.host}/ws/tasks`;
}
