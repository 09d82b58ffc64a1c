// Previews as Telegram shows a message, and dry-run findings with their fixes.

import { time, when } from './format';
import { TelegramText } from './telegram';
import type { DryRun, Finding, Post } from './types';

const STAMP = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})/g;

/** A finding's words with the chat's name for its id and times in the reader's zone. */
function readable(text: string, chatId: string | undefined, chatName?: (id: string) => string): string {
  let out = text.replace(STAMP, (m) => when(m));
  if (chatId && chatName) {
    const name = chatName(chatId);
    out = out.split(`chat ${chatId}`).join(name).split(chatId).join(name);
  }
  return out;
}

export function Findings(props: { findings: Finding[]; chatName?: (id: string) => string }) {
  if (!props.findings.length) return <p class="note note-ok">No findings: the workspace's rules pass.</p>;
  const words = { block: 'Blocks approval', warn: 'Warning', info: 'Note' };
  return (
    <ul class="findings" aria-label="Findings">
      {props.findings.map((f, i) => (
        <li key={i} class={`finding finding-${f.severity}`}>
          <strong>{words[f.severity]}:</strong> {readable(f.reason, f.chat_id, props.chatName)}
          <span class="fix">
            <strong>Fix:</strong> {readable(f.fix, f.chat_id, props.chatName)}
          </span>
        </li>
      ))}
    </ul>
  );
}

export function Preview(props: { dry: DryRun | null; text: string; busy: boolean }) {
  const r = props.dry?.render;
  return (
    <div class="tg-phone" aria-label="Preview as Telegram shows it">
      <div class="tg-bubble">
        {r ? (
          <TelegramText text={r.text} entities={r.entities} />
        ) : props.dry?.parse_error ? (
          <p class="muted">Telegram would refuse this text: {props.dry.parse_error.message}</p>
        ) : (
          <p class="muted">{props.text ? (props.busy ? 'Rendering…' : '') : 'The preview shows here as you type.'}</p>
        )}
        <div class="meta">{time(new Date())}</div>
      </div>
    </div>
  );
}


/**
 * A stored post as Telegram will show it, from the server's render in GET .../posts/{id} (the
 * same parser as planning and the dry-run), so readers who may not dry-run see the same thing.
 */
export function PostPreview(props: { post: Post }) {
  const r = props.post.render;
  return (
    <div class="tg-phone" aria-label="Preview as Telegram shows it">
      <div class="tg-bubble">
        {props.post.texts_erased ? (
          <p class="muted">The text of this post was erased.</p>
        ) : r ? (
          <TelegramText text={r.text} entities={r.entities} />
        ) : (
          <p class="muted">Telegram would refuse this text as it stands: edit it. The raw text: {props.post.text}</p>
        )}
        <div class="meta">
          {time(props.post.publish_at)}
          {r && !props.post.texts_erased ? ` · ${r.length.toLocaleString()} characters` : ''}
        </div>
      </div>
    </div>
  );
}
