// Small shared pieces: errors and notices in plain words, loading states, page titles.

import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Chat } from './types';

export function ErrorNote(props: { error: string | null | undefined; title?: string }) {
  if (!props.error) return null;
  return (
    <div class="note note-error" role="alert">
      {props.title && <strong>{props.title} </strong>}
      {props.error}
    </div>
  );
}

export function Loading(props: { what?: string }) {
  return (
    <p class="muted" role="status">
      Loading{props.what ? ` ${props.what}` : ''}…
    </p>
  );
}

export function Empty(props: { children: ComponentChildren }) {
  return <p class="empty">{props.children}</p>;
}

/** Sets the document title and renders the page heading, focused after navigation. */
export function PageTitle(props: { title: string; children?: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${props.title} · Herald desk`;
  }, [props.title]);
  return (
    <div class="page-head">
      <h1 ref={ref} tabIndex={-1} id="page-title">
        {props.title}
      </h1>
      {props.children && <div class="page-actions">{props.children}</div>}
    </div>
  );
}

type Toast = { id: number; text: string; kind: 'ok' | 'error' };
let push: ((t: Omit<Toast, 'id'>) => void) | null = null;
let seq = 0;

/** Announces a short message (screen readers too): "Approved", or an error. */
export function notify(text: string, kind: 'ok' | 'error' = 'ok') {
  push?.({ text, kind });
}

export function Toasts() {
  const [items, setItems] = useState<Toast[]>([]);
  useEffect(() => {
    push = (t) => {
      const id = ++seq;
      setItems((xs) => [...xs.slice(-3), { ...t, id }]);
      window.setTimeout(() => setItems((xs) => xs.filter((x) => x.id !== id)), 6000);
    };
    return () => {
      push = null;
    };
  }, []);
  return (
    <div class="toasts" role="status" aria-live="polite">
      {items.map((t) => (
        <div key={t.id} class={`toast toast-${t.kind}`}>
          {t.text}
        </div>
      ))}
    </div>
  );
}

export function Badge(props: { kind?: string; children: ComponentChildren; title?: string }) {
  return (
    <span class={`badge badge-${props.kind || 'plain'}`} title={props.title}>
      {props.children}
    </span>
  );
}

const STATE_KIND: Record<string, string> = {
  planned: 'wait',
  draft: 'warn',
  approved: 'ok',
  delivered: 'done',
  partially_delivered: 'warn',
  failed: 'bad',
  rejected: 'bad',
  cancelled: 'plain',
  expired: 'bad',
  pending: 'wait',
  unknown: 'warn',
};

export function stateKind(s: string): string {
  return STATE_KIND[s] || 'plain';
}

/** Whether a chat can be sent to, as a badge. */
export function chatStatus(c: Chat) {
  if (c.erased) return <Badge kind="plain">erased</Badge>;
  if (c.opted_out) return <Badge kind="bad">opted out</Badge>;
  if (c.blocked) return <Badge kind="bad" title={c.blocked}>blocked</Badge>;
  if (!c.targetable) return <Badge kind="warn">no lawful basis</Badge>;
  return <Badge kind="ok">can be sent to</Badge>;
}
