// A small client-side router over the History API: real paths (/w/{ws}/calendar), no hashes.
// Herald serves index.html for every non-API path without an extension.

import { useEffect, useState } from 'preact/hooks';
import { h, type ComponentChildren, type JSX } from 'preact';

type Listener = () => void;
const listeners = new Set<Listener>();

export interface Location {
  path: string;
  query: URLSearchParams;
}

function current(): Location {
  return { path: window.location.pathname, query: new URLSearchParams(window.location.search) };
}

export function navigate(to: string, opts: { replace?: boolean } = {}) {
  const before = window.location.pathname + window.location.search;
  if (to === before) return;
  if (opts.replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  listeners.forEach((f) => f());
}

/** Changes query parameters of the current path (replacing history: filters, not pages). */
export function setQuery(changes: Record<string, string | null | undefined>) {
  const q = new URLSearchParams(window.location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === '') q.delete(k);
    else q.set(k, v);
  }
  const s = q.toString();
  navigate(window.location.pathname + (s ? `?${s}` : ''), { replace: true });
}

window.addEventListener('popstate', () => listeners.forEach((f) => f()));

export function useLocation(): Location {
  const [loc, setLoc] = useState(current);
  useEffect(() => {
    const f = () => setLoc(current());
    listeners.add(f);
    return () => {
      listeners.delete(f);
    };
  }, []);
  return loc;
}

/** Matches `/w/:ws/posts/:id` against a path; params or null. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const p = pattern.split('/').filter(Boolean);
  const s = path.split('/').filter(Boolean);
  if (p.length !== s.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(':')) params[p[i].slice(1)] = decodeURIComponent(s[i]);
    else if (p[i] !== s[i]) return null;
  }
  return params;
}

type LinkProps = JSX.HTMLAttributes<HTMLAnchorElement> & { href: string; children?: ComponentChildren };

/** An anchor that navigates without reloading (modifier clicks open a tab as usual). */
export function Link(props: LinkProps) {
  const { href, onClick, ...rest } = props;
  return h('a', {
    ...rest,
    href,
    onClick: (e: JSX.TargetedMouseEvent<HTMLAnchorElement>) => {
      if (onClick) (onClick as (e: JSX.TargetedMouseEvent<HTMLAnchorElement>) => void)(e);
      if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      navigate(href);
    },
  });
}
