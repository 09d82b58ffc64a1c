// A browser-side reading of Telegram's HTML and MarkdownV2, for previews where the server's
// dry-run is not available to the reader's role (approvers, viewers). The dry-run, which uses
// Herald's own parser (libs/markup, after TDLib), stays the reference: the editor uses it.

import type { Entity } from './types';

export interface Parsed {
  text: string;
  entities: Entity[];
}

const HTML_TAGS: Record<string, string> = {
  b: 'bold',
  strong: 'bold',
  i: 'italic',
  em: 'italic',
  u: 'underline',
  ins: 'underline',
  s: 'strikethrough',
  strike: 'strikethrough',
  del: 'strikethrough',
  code: 'code',
  pre: 'pre',
  blockquote: 'blockquote',
  'tg-spoiler': 'spoiler',
  a: 'text_link',
};

function parseHtml(src: string): Parsed {
  const doc = new DOMParser().parseFromString(`<body>${src.replace(/\n/g, '<br>')}</body>`, 'text/html');
  let text = '';
  const entities: Entity[] = [];
  const walk = (node: Node) => {
    if (node.nodeType === Node.TEXT_NODE) {
      text += node.textContent || '';
      return;
    }
    if (node.nodeType !== Node.ELEMENT_NODE) return;
    const el = node as Element;
    const tag = el.tagName.toLowerCase();
    if (tag === 'br') {
      text += '\n';
      return;
    }
    const start = text.length;
    el.childNodes.forEach(walk);
    let type = HTML_TAGS[tag];
    if (tag === 'span' && el.classList.contains('tg-spoiler')) type = 'spoiler';
    if (!type || text.length === start) return;
    const e: Entity = { type, offset: start, length: text.length - start };
    if (type === 'text_link') e.url = el.getAttribute('href') || '';
    if (type === 'blockquote' && el.hasAttribute('expandable')) e.type = 'expandable_blockquote';
    if (type === 'code' && el.parentElement?.tagName.toLowerCase() === 'pre') return;
    entities.push(e);
  };
  doc.body.childNodes.forEach(walk);
  return trim({ text, entities });
}

function parseMarkdownV2(src: string): Parsed {
  let text = '';
  const entities: Entity[] = [];
  const open: { type: string; start: number; mark: string }[] = [];
  let i = 0;
  const toggle = (mark: string, type: string) => {
    const top = open.findIndex((o) => o.mark === mark);
    if (top >= 0) {
      const [o] = open.splice(top, 1);
      if (text.length > o.start) entities.push({ type: o.type, offset: o.start, length: text.length - o.start });
    } else open.push({ type, start: text.length, mark });
  };
  let lineStart = true;
  let quote: number | null = null;
  while (i < src.length) {
    const c = src[i];
    if (lineStart && c === '>') {
      if (quote === null) quote = text.length;
      i++;
      lineStart = false;
      continue;
    }
    if (lineStart && quote !== null) {
      entities.push({ type: 'blockquote', offset: quote, length: Math.max(0, text.length - 1 - quote) });
      quote = null;
    }
    lineStart = false;
    if (c === '\\' && i + 1 < src.length) {
      text += src[i + 1];
      i += 2;
      continue;
    }
    if (src.startsWith('```', i)) {
      const end = src.indexOf('```', i + 3);
      if (end > 0) {
        let body = src.slice(i + 3, end);
        let language: string | undefined;
        const nl = body.indexOf('\n');
        if (nl >= 0 && /^[\w+-]+$/.test(body.slice(0, nl))) {
          language = body.slice(0, nl);
          body = body.slice(nl + 1);
        }
        const start = text.length;
        text += body.replace(/\\([`\\])/g, '$1');
        entities.push({ type: 'pre', offset: start, length: text.length - start, language });
        i = end + 3;
        continue;
      }
    }
    if (c === '`') {
      const end = src.indexOf('`', i + 1);
      if (end > 0) {
        const start = text.length;
        text += src.slice(i + 1, end).replace(/\\([`\\])/g, '$1');
        entities.push({ type: 'code', offset: start, length: text.length - start });
        i = end + 1;
        continue;
      }
    }
    if (c === '[') {
      const m = /^\[((?:\\.|[^\]\\])*)\]\(((?:\\.|[^)\\])*)\)/.exec(src.slice(i));
      if (m) {
        const inner = parseMarkdownV2(m[1]);
        const start = text.length;
        text += inner.text;
        inner.entities.forEach((e) => entities.push({ ...e, offset: e.offset + start }));
        entities.push({ type: 'text_link', offset: start, length: inner.text.length, url: m[2].replace(/\\(.)/g, '$1') });
        i += m[0].length;
        continue;
      }
    }
    if (src.startsWith('||', i)) {
      toggle('||', 'spoiler');
      i += 2;
      continue;
    }
    if (src.startsWith('__', i)) {
      toggle('__', 'underline');
      i += 2;
      continue;
    }
    if (c === '*' || c === '_' || c === '~') {
      toggle(c, c === '*' ? 'bold' : c === '_' ? 'italic' : 'strikethrough');
      i++;
      continue;
    }
    text += c;
    if (c === '\n') lineStart = true;
    i++;
  }
  if (quote !== null) entities.push({ type: 'blockquote', offset: quote, length: text.length - quote });
  return trim({ text, entities });
}

function trim(p: Parsed): Parsed {
  const lead = p.text.length - p.text.trimStart().length;
  const text = p.text.trim();
  const entities = p.entities
    .map((e) => {
      const offset = Math.max(0, e.offset - lead);
      const end = Math.min(text.length, e.offset - lead + e.length);
      return { ...e, offset, length: end - offset };
    })
    .filter((e) => e.length > 0)
    .sort((a, b) => a.offset - b.offset || b.length - a.length);
  return { text, entities };
}

/** The visible text and entities of `src` in `mode` (HTML, MarkdownV2 or plain). */
export function parse(src: string, mode: string | null | undefined): Parsed {
  try {
    if (mode === 'HTML') return parseHtml(src);
    if (mode === 'MarkdownV2') return parseMarkdownV2(src);
  } catch {
    /* fall through to plain text */
  }
  return { text: src.trim(), entities: [] };
}
