// Previews as Telegram shows a message, and dry-run findings with their fixes.

import { time } from './format';
import { TelegramText } from './telegram';
import type { DryRun, Finding, Post } from './types';

export function Findings(props: { findings: Finding[]; chatName?: (id: string) => string }) {
  if (!props.findings.length) return <p class="note note-ok">No findings: the workspace's rules pass.</p>;
  const words = { block: 'Blocks approval', warn: 'Warning', info: 'Note' };
  return (
    <ul class="findings" aria-label="Findings">
      {props.findings.map((f, i) => (
        <li key={i} class={`finding finding-${f.severity}`}>
          <strong>{words[f.severity]}:</strong> {f.reason}
          {f.chat_id && props.chatName && <span class="muted"> ({props.chatName(f.chat_id)})</span>}
          <span class="fix">
            <strong>Fix:</strong> {f.fix}
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
        {r ? (
          <TelegramText text={r.text} entities={r.entities} />
        ) : props.post.texts_erased ? (
          <p class="muted">The text of this post was erased.</p>
        ) : (
          <p class="muted">Telegram would refuse this text as it stands: edit it. The raw text: {props.post.text}</p>
        )}
        <div class="meta">
          {time(props.post.publish_at)}
          {r ? ` · ${r.length.toLocaleString()} characters` : ''}
        </div>
      </div>
    </div>
  );
}
