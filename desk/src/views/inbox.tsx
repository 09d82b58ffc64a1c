// The sandbox inbox: what the Telegram emulator received from this workspace's bots, shown as
// Telegram shows chats: the chat list on the left, the messages as bubbles on the right.

import { useMemo, useState } from 'preact/hooks';
import { api } from '../lib/api';
import { useDirectory } from '../lib/directory';
import { time, when } from '../lib/format';
import { useLoad } from '../lib/hooks';
import { useLive } from '../lib/live';
import { useSession } from '../lib/session';
import { TelegramText } from '../lib/telegram';
import type { SandboxMessage } from '../lib/types';
import { Empty, ErrorNote, Loading, PageTitle } from '../lib/ui';

function at(m: SandboxMessage): string {
  if (m.received_at) return m.received_at;
  if (typeof m.date === 'number') return new Date(m.date * 1000).toISOString();
  return m.date || '';
}

function body(m: SandboxMessage) {
  if (m.parsed) return { text: m.parsed.text, entities: m.parsed.entities };
  return { text: m.text, entities: m.entities || [] };
}

export default function Inbox() {
  const { ws } = useSession();
  const dir = useDirectory();
  const load = useLoad(
    (signal) => api<{ messages: SandboxMessage[] }>(`/v1/workspaces/${ws.id}/sandbox/messages`, { signal }),
    [ws.id],
  );
  useLive(ws.id, load.reload, (c) => c.stream === 'delivery' || c.stream === 'post');
  const [open, setOpen] = useState<number | null>(null);
  const byTelegram = useMemo(() => new Map(dir.chats.map((c) => [c.telegram_chat_id, c])), [dir.chats]);
  const threads = useMemo(() => {
    const m = new Map<number, SandboxMessage[]>();
    for (const msg of load.data?.messages || []) {
      const list = m.get(msg.chat_id) || [];
      list.push(msg);
      m.set(msg.chat_id, list);
    }
    return [...m.entries()].sort((a, b) => at(b[1][b[1].length - 1]).localeCompare(at(a[1][a[1].length - 1])));
  }, [load.data]);
  const notSandbox = load.error && load.data === undefined;
  const current = open ?? threads[0]?.[0] ?? null;
  const thread = threads.find((t) => t[0] === current)?.[1] || [];
  const title = (id: number) => byTelegram.get(id)?.title || `chat ${id}`;

  return (
    <section>
      <PageTitle title="Sandbox inbox" />
      <p class="muted">
        In sandbox mode nothing reaches real Telegram: this is what the built-in emulator received from this workspace's bots,
        rendered as Telegram would.
      </p>
      {notSandbox ? (
        <ErrorNote error={load.error} />
      ) : load.loading && !load.data ? (
        <Loading />
      ) : threads.length === 0 ? (
        <Empty>Nothing received yet. Approved posts appear here as they are delivered.</Empty>
      ) : (
        <div class="inbox">
          <nav class="inbox-chats" aria-label="Chats">
            <ul>
              {threads.map(([id, msgs]) => {
                const last = msgs[msgs.length - 1];
                return (
                  <li key={id}>
                    <button type="button" aria-current={id === current ? 'true' : undefined} onClick={() => setOpen(id)}>
                      <strong>{title(id)}</strong>
                      <span class="last">
                        {time(at(last))} · {body(last).text}
                      </span>
                    </button>
                  </li>
                );
              })}
            </ul>
          </nav>
          <div class="inbox-thread" aria-live="polite" aria-label={`Messages in ${current !== null ? title(current) : ''}`}>
            <div class="thread-head">
              <strong>{current !== null ? title(current) : ''}</strong>{' '}
              <span class="muted small">
                {thread.length} message{thread.length === 1 ? '' : 's'}
              </span>
            </div>
            {thread.map((m) => {
              const b = body(m);
              return (
                <article class="tg-bubble" key={`${m.bot_id}-${m.message_id}`} data-message-id={m.message_id}>
                  <TelegramText text={b.text} entities={b.entities} />
                  <div class="meta" title={when(at(m))}>
                    {time(at(m))}
                    {m.paid_broadcast ? ' · paid broadcast' : ''}
                  </div>
                </article>
              );
            })}
          </div>
        </div>
      )}
      {load.error && load.data && <ErrorNote error={load.error} />}
    </section>
  );
}
