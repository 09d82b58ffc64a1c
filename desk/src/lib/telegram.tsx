// A text with its Bot API entities, rendered the way Telegram shows it. Offsets and lengths are
// UTF-16 code units, which is what JavaScript strings index, so slicing is direct.

import type { ComponentChildren, JSX } from 'preact';
import type { Entity } from './types';

interface Span extends Entity {
  end: number;
}

function clip(e: Span, from: number, to: number): Span | null {
  const offset = Math.max(e.offset, from);
  const end = Math.min(e.end, to);
  return end > offset ? { ...e, offset, end, length: end - offset } : null;
}

function order(a: Span, b: Span) {
  return a.offset - b.offset || b.end - a.end;
}

function wrap(e: Span, children: ComponentChildren, key: number): JSX.Element {
  switch (e.type) {
    case 'bold':
      return <strong key={key}>{children}</strong>;
    case 'italic':
      return <em key={key}>{children}</em>;
    case 'underline':
      return <u key={key}>{children}</u>;
    case 'strikethrough':
      return <s key={key}>{children}</s>;
    case 'spoiler':
      return (
        <span key={key} class="tg-spoiler" title="Spoiler: hidden until tapped in Telegram">
          {children}
        </span>
      );
    case 'code':
      return <code key={key}>{children}</code>;
    case 'pre':
      return (
        <pre key={key} class="tg-pre" data-language={e.language || undefined}>
          <code>{children}</code>
        </pre>
      );
    case 'text_link':
      return (
        <a key={key} href={e.url} target="_blank" rel="noopener noreferrer">
          {children}
        </a>
      );
    case 'text_mention':
      return (
        <span key={key} class="tg-mention" title={`user ${e.user?.id ?? ''}`}>
          {children}
        </span>
      );
    case 'blockquote':
    case 'expandable_blockquote':
      return (
        <blockquote key={key} class="tg-quote">
          {children}
        </blockquote>
      );
    case 'custom_emoji':
      return <span key={key}>{children}</span>;
    default:
      return <span key={key}>{children}</span>;
  }
}

function build(text: string, from: number, to: number, ents: Span[], key: { n: number }): ComponentChildren[] {
  const out: ComponentChildren[] = [];
  let pos = from;
  let rest = [...ents].sort(order);
  while (rest.length) {
    const first = rest.shift()!;
    const e = clip(first, pos, to);
    if (!e) continue;
    if (e.offset > pos) out.push(text.slice(pos, e.offset));
    const inner: Span[] = [];
    const after: Span[] = [];
    for (const x of rest) {
      if (x.offset >= e.end) {
        after.push(x);
        continue;
      }
      const inside = clip(x, e.offset, e.end);
      if (inside) inner.push(inside);
      const outside = clip(x, e.end, x.end);
      if (outside) after.push(outside);
    }
    out.push(wrap(e, build(text, e.offset, e.end, inner, key), key.n++));
    pos = e.end;
    rest = after.sort(order);
  }
  if (pos < to) out.push(text.slice(pos, to));
  return out;
}

export function TelegramText(props: { text: string; entities?: Entity[] | null }) {
  const spans: Span[] = (props.entities || []).map((e) => ({ ...e, end: e.offset + e.length }));
  return <div class="tg-text">{build(props.text, 0, props.text.length, spans, { n: 0 })}</div>;
}
