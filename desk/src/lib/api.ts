// The HTTP API, as the desk uses it: same origin, the session cookie, and the CSRF header on
// every request that changes something. Errors are always {"error":{"code","message"}}.

import type { ApiErrorBody } from './types';

export class ApiError extends Error {
  status: number;
  code: string;
  body: unknown;
  constructor(status: number, code: string, message: string, body: unknown) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

/** The value of the readable CSRF cookie set at sign-in. */
export function csrfToken(): string {
  const m = document.cookie.match(/(?:^|;\s*)herald_csrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : '';
}

type Listener = () => void;
const unauthorised: Listener[] = [];
/** Called when the session has ended (401 on any call but sign-in). */
export function onUnauthorised(f: Listener) {
  unauthorised.push(f);
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  /** A raw body (CSV upload) with its content type. */
  raw?: { type: string; data: string };
  query?: Record<string, string | number | boolean | undefined | null>;
  signal?: AbortSignal;
}

export function url(path: string, query?: RequestOptions['query']): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  }
  const s = params.toString();
  return s ? `${path}?${s}` : path;
}

export async function api<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const method = opts.method || 'GET';
  const headers: Record<string, string> = { Accept: 'application/json' };
  let body: string | undefined;
  if (opts.raw) {
    headers['Content-Type'] = opts.raw.type;
    body = opts.raw.data;
  } else if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrfToken();
  let res: Response;
  try {
    res = await fetch(url(path, opts.query), {
      method,
      headers,
      body,
      credentials: 'same-origin',
      signal: opts.signal,
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'Herald did not answer. Check that it is running, then try again.', null);
  }
  const text = await res.text();
  let data: unknown = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!res.ok) {
    const err = (data as ApiErrorBody | null)?.error;
    if (res.status === 401 && path !== '/v1/desk/session') unauthorised.forEach((f) => f());
    throw new ApiError(
      res.status,
      err?.code || `http_${res.status}`,
      err?.message || `Herald answered ${res.status} ${res.statusText}.`,
      data,
    );
  }
  return data as T;
}

/** A plain-words message for any error thrown by `api`. */
export function messageOf(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Pages through a list endpoint that answers `next_after` until it is null or `max` items. */
export async function pages<T>(
  path: string,
  key: string,
  query: RequestOptions['query'],
  opts: { max?: number; signal?: AbortSignal; onPage?: (items: T[]) => void } = {},
): Promise<T[]> {
  const all: T[] = [];
  let after: string | number | null | undefined;
  const max = opts.max ?? 100_000;
  for (;;) {
    const page = await api<Record<string, unknown>>(path, {
      query: { ...query, after: after ?? undefined },
      signal: opts.signal,
    });
    const items = (page[key] as T[]) || [];
    all.push(...items);
    opts.onPage?.(all);
    const next = page.next_after as string | number | null | undefined;
    if (next === null || next === undefined || items.length === 0 || all.length >= max) break;
    if (next === after) break;
    after = next;
  }
  return all;
}
