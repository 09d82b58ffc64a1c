// Live updates: one EventSource per workspace (GET /v1/workspaces/{ws}/live, with the cookie),
// shared by every view; each subscriber gets the changes it cares about, debounced.

import { useEffect, useRef } from 'preact/hooks';
import type { Live } from './types';

type Sub = (changes: Live[]) => void;

interface Channel {
  source: EventSource;
  subs: Set<Sub>;
}

const channels = new Map<string, Channel>();
const statusListeners = new Set<(s: LiveStatus) => void>();
export type LiveStatus = 'connecting' | 'live' | 'offline';
let status: LiveStatus = 'connecting';

function setStatus(s: LiveStatus) {
  status = s;
  statusListeners.forEach((f) => f(s));
}

export function liveStatus() {
  return status;
}

export function onLiveStatus(f: (s: LiveStatus) => void) {
  statusListeners.add(f);
  return () => statusListeners.delete(f);
}

function open(ws: string): Channel {
  let ch = channels.get(ws);
  if (ch) return ch;
  const source = new EventSource(`/v1/workspaces/${encodeURIComponent(ws)}/live`, { withCredentials: true });
  const subs = new Set<Sub>();
  source.addEventListener('open', () => setStatus('live'));
  source.addEventListener('error', () => setStatus(source.readyState === EventSource.CLOSED ? 'offline' : 'connecting'));
  source.addEventListener('change', (e) => {
    let change: Live;
    try {
      change = JSON.parse((e as MessageEvent).data);
    } catch {
      return;
    }
    (window as unknown as { __heraldLive?: number }).__heraldLive =
      ((window as unknown as { __heraldLive?: number }).__heraldLive || 0) + 1;
    subs.forEach((f) => f([change]));
  });
  ch = { source, subs };
  channels.set(ws, ch);
  return ch;
}

/** Closes every stream (sign-out, workspace switch). */
export function closeLive() {
  channels.forEach((ch) => ch.source.close());
  channels.clear();
  setStatus('connecting');
}

/**
 * Calls `refresh` (debounced ~200 ms) when a change arrives in workspace `ws` that `relevant`
 * accepts (all changes without it).
 */
export function useLive(ws: string | undefined, refresh: () => void, relevant?: (c: Live) => boolean) {
  const ref = useRef({ refresh, relevant });
  ref.current = { refresh, relevant };
  useEffect(() => {
    if (!ws || typeof EventSource === 'undefined') return;
    const ch = open(ws);
    let timer: number | undefined;
    const sub: Sub = (changes) => {
      const rel = ref.current.relevant;
      if (rel && !changes.some(rel)) return;
      window.clearTimeout(timer);
      timer = window.setTimeout(() => ref.current.refresh(), 200);
    };
    ch.subs.add(sub);
    return () => {
      window.clearTimeout(timer);
      ch.subs.delete(sub);
    };
  }, [ws]);
}
