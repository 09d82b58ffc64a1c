// A post's page: its preview, approvals, delivery status per chat in plain words (paged), counts,
// the actions the reader's role allows, and its history from the audit.

import { useState } from 'preact/hooks';
import { api, messageOf } from '../lib/api';
import { Decide, Stages } from '../lib/approval';
import { chatTitle, useDirectory } from '../lib/directory';
import { deliveryWord, eventWord, fromLocalInput, stateWord, toLocalInput, when, zone } from '../lib/format';
import { useLoad } from '../lib/hooks';
import { useLive } from '../lib/live';
import { PostPreview } from '../lib/preview';
import { Confirm } from '../lib/forms';
import { Link } from '../lib/router';
import { useSession } from '../lib/session';
import type { AuditEvent, Chat, Delivery, Post } from '../lib/types';
import { Badge, ErrorNote, Loading, PageTitle, notify, stateKind } from '../lib/ui';

const PAGE = 50;

function telegramLink(chat: Chat | undefined, messageId: number | null): { href: string; label: string } | null {
  if (!chat || !messageId) return null;
  if (chat.username) return { href: `https://t.me/${chat.username}/${messageId}`, label: `t.me/${chat.username}/${messageId}` };
  const id = String(chat.telegram_chat_id);
  if (id.startsWith('-100')) return { href: `https://t.me/c/${id.slice(4)}/${messageId}`, label: 'open in Telegram (members)' };
  return null;
}

function DeliveryRow(props: { d: Delivery; post: Post; onDone: () => void }) {
  const { ws, can } = useSession();
  const dir = useDirectory();
  const [error, setError] = useState<string | null>(null);
  const d = props.d;
  const chat = dir.chat.get(d.chat_id);
  const link = d.link
    ? { href: d.link, label: d.link.replace(/^https:\/\//, '') }
    : telegramLink(chat, d.telegram_message_id);
  async function resolve(resolution: 'mark_delivered' | 'resend') {
    try {
      await api(`/v1/workspaces/${ws.id}/posts/${props.post.id}/deliveries/${d.chat_id}/resolve`, {
        method: 'POST',
        body: { resolution },
      });
      notify(resolution === 'resend' ? 'It will be sent again.' : 'Marked as delivered.');
      props.onDone();
    } catch (e) {
      setError(messageOf(e));
    }
  }
  let what;
  switch (d.status) {
    case 'delivered':
      what = (
        <>
          Delivered{link ? ': ' : d.telegram_message_id ? ` as message ${d.telegram_message_id}` : ''}
          {link && (
            <a href={link.href} target="_blank" rel="noopener noreferrer">
              {link.label}
            </a>
          )}
          {!link && chat?.contact ? ' (a private chat: Telegram has no link to it).' : link ? null : '.'}
        </>
      );
      break;
    case 'failed':
      what = <>Failed: {d.error || 'no reason given'}.</>;
      break;
    case 'unknown':
      what = (
        <div class="stack">
          <span>
            In doubt: Telegram's answer was lost, so Herald does not know whether the message arrived. Look in the chat, then
            say what you found.
            {d.attempts?.length ? ` ${d.attempts.length} attempt(s): ${d.attempts.map((a) => `${when(a.at)} ${a.outcome}`).join('; ')}.` : ''}
          </span>
          {can('resolve') ? (
            <span class="row">
              <button type="button" class="small" onClick={() => resolve('mark_delivered')}>
                It arrived: mark delivered
              </button>
              <button type="button" class="small" onClick={() => resolve('resend')}>
                It did not: send again
              </button>
            </span>
          ) : (
            <span class="muted small">An approver or admin resolves it.</span>
          )}
          <ErrorNote error={error} />
        </div>
      );
      break;
    default:
      what = d.waiting ? (
        <>
          Waiting until {when(d.waiting.until)}: {d.waiting.reason}.
        </>
      ) : (
        <>{props.post.state === 'planned' ? 'Waits for the approval.' : 'Waiting to be sent.'}</>
      );
  }
  return (
    <tr>
      <td>{chatTitle(dir, d.chat_id)}</td>
      <td>
        <Badge kind={stateKind(d.status === 'unknown' ? 'unknown' : d.status)}>{deliveryWord(d.status)}</Badge>
      </td>
      <td>{what}</td>
    </tr>
  );
}

function Deliveries(props: { post: Post; tick: number; onDone: () => void }) {
  const { ws } = useSession();
  const [status, setStatus] = useState('');
  const [cursor, setCursor] = useState<(number | null)[]>([null]);
  const after = cursor[cursor.length - 1];
  const page = useLoad(
    (signal) =>
      api<{ deliveries: Delivery[]; next_after: number | null }>(`/v1/workspaces/${ws.id}/posts/${props.post.id}/deliveries`, {
        query: { limit: PAGE, status, after: after ?? undefined },
        signal,
      }),
    [props.post.id, status, after, props.tick],
  );
  return (
    <section aria-labelledby="deliveries-h">
      <h2 id="deliveries-h">Deliveries</h2>
      <div class="row">
        <label>
          Show
          <select
            value={status}
            onChange={(e) => {
              setStatus(e.currentTarget.value);
              setCursor([null]);
            }}
          >
            <option value="">All</option>
            <option value="pending">Waiting</option>
            <option value="delivered">Delivered</option>
            <option value="failed">Failed</option>
            <option value="unknown">In doubt</option>
          </select>
        </label>
      </div>
      <ErrorNote error={page.error} />
      <div class="table-wrap" style={{ marginTop: '0.5rem' }}>
        <table>
          <caption class="sr-only">Delivery status per chat</caption>
          <thead>
            <tr>
              <th scope="col">Chat</th>
              <th scope="col">Status</th>
              <th scope="col">What happened</th>
            </tr>
          </thead>
          <tbody>
            {(page.data?.deliveries || []).map((d) => (
              <DeliveryRow key={d.chat_id} d={d} post={props.post} onDone={props.onDone} />
            ))}
            {page.data && page.data.deliveries.length === 0 && (
              <tr>
                <td colSpan={3} class="muted">
                  No delivery in this status.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <div class="row" style={{ marginTop: '0.5rem' }}>
        <button type="button" disabled={cursor.length <= 1} onClick={() => setCursor(cursor.slice(0, -1))}>
          Previous page
        </button>
        <button
          type="button"
          disabled={page.data?.next_after == null}
          onClick={() => setCursor([...cursor, page.data!.next_after])}
        >
          Next page
        </button>
      </div>
    </section>
  );
}

function detailWords(e: AuditEvent, name: (id: string) => string): string {
  const d = e.details || {};
  const bits: string[] = [];
  const get = (k: string) => (typeof d[k] === 'string' || typeof d[k] === 'number' ? String(d[k]) : '');
  if (get('stage') !== '') bits.push(`stage ${Number(get('stage')) + 1 || get('stage')}`);
  if (get('reason')) bits.push(`reason: ${get('reason')}`);
  if (get('text') && e.event_type.includes('Comment')) bits.push(`“${get('text')}”`);
  if (get('publish_at')) bits.push(`for ${when(get('publish_at'))}`);
  if (get('error')) bits.push(get('error'));
  if (get('by') && get('by') !== e.actor) bits.push(`by ${name(get('by'))}`);
  return bits.join(', ');
}

export function History(props: { postId: string; tick: number }) {
  const { ws, name } = useSession();
  const h = useLoad(
    (signal) => api<{ events: AuditEvent[] }>(`/v1/workspaces/${ws.id}/posts/${props.postId}/history`, { query: { limit: 500 }, signal }),
    [props.postId, props.tick],
  );
  return (
    <section aria-labelledby="history-h">
      <h2 id="history-h">History</h2>
      <ErrorNote error={h.error} />
      {h.loading && !h.data ? (
        <Loading />
      ) : (
        <ol class="timeline">
          {(h.data?.events || []).map((e) => (
            <li key={e.position}>
              <strong>{e.actor ? name(e.actor) : 'Herald'}</strong> {eventWord(e.event_type)}
              {detailWords(e, name) ? <> ({detailWords(e, name)})</> : null}
              <br />
              <span class="muted small">
                {when(e.occurred_at)} · <code>{e.event_type}</code>
              </span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

function Actions(props: { post: Post; onDone: () => void }) {
  const { ws, can } = useSession();
  const p = props.post;
  const [at, setAt] = useState(toLocalInput(new Date(p.publish_at)));
  const [comment, setComment] = useState('');
  const [error, setError] = useState<string | null>(null);
  const base = `/v1/workspaces/${ws.id}/posts/${p.id}`;
  const open = ['planned', 'approved', 'draft'].includes(p.state);
  async function run(f: () => Promise<unknown>, ok: string) {
    setError(null);
    try {
      await f();
      notify(ok);
      props.onDone();
    } catch (e) {
      setError(messageOf(e));
    }
  }
  const [erasing, setErasing] = useState(false);
  const erasable =
    can('configure') && !p.texts_erased && !open && (p.counts.pending === 0 || ['cancelled', 'expired'].includes(p.state));
  if (!can('plan') && !can('comment')) return null;
  return (
    <div class="card stack">
      <h2 style={{ marginTop: 0 }}>Actions</h2>
      <ErrorNote error={error} />
      {can('plan') && open && (
        <>
          <div class="row">
            <Link class="button" href={`/w/${ws.id}/posts/${p.id}/edit`}>
              Edit
            </Link>
            <button
              type="button"
              class="danger"
              onClick={() => run(() => api(`${base}/cancel`, { method: 'POST' }), 'Cancelled: nothing more goes out.')}
            >
              Cancel post
            </button>
          </div>
          <form
            class="row"
            onSubmit={(e) => {
              e.preventDefault();
              run(() => api(`${base}/reschedule`, { method: 'POST', body: { publish_at: fromLocalInput(at) } }), 'Rescheduled.');
            }}
          >
            <label>
              New time ({zone})
              <input type="datetime-local" value={at} onInput={(e) => setAt(e.currentTarget.value)} />
            </label>
            <button type="submit">Reschedule</button>
          </form>
        </>
      )}
      {erasable && (
        <div>
          <button type="button" class="danger" onClick={() => setErasing(true)}>
            Erase this post’s texts…
          </button>
        </div>
      )}
      {erasing && (
        <Confirm
          title="Erase this post’s texts?"
          action="Erase the texts for good"
          onClose={() => setErasing(false)}
          onConfirm={async () => {
            await api(`${base}/erase`, { method: 'POST' });
            notify('The post’s texts were erased from its whole history.');
            props.onDone();
          }}
        >
          <p>
            <strong>This cannot be undone.</strong> Its text, every edit and every comment are destroyed in the history and every
            view; who did what, and when, stays. Messages already in Telegram stay there.
          </p>
        </Confirm>
      )}
      {can('comment') && (
        <form
          class="stack"
          onSubmit={(e) => {
            e.preventDefault();
            if (!comment.trim()) return;
            run(() => api(`${base}/comments`, { method: 'POST', body: { text: comment.trim() } }), 'Comment added.').then(() =>
              setComment(''),
            );
          }}
        >
          <label>
            Comment
            <textarea rows={2} value={comment} onInput={(e) => setComment(e.currentTarget.value)} />
          </label>
          <div>
            <button type="submit">Add comment</button>
          </div>
        </form>
      )}
    </div>
  );
}

export default function PostPage(props: { params: Record<string, string> }) {
  const { ws, name } = useSession();
  const id = props.params.id;
  const [tick, setTick] = useState(0);
  const post = useLoad((signal) => api<Post>(`/v1/workspaces/${ws.id}/posts/${id}`, { signal }), [id, tick]);
  const refresh = () => setTick((t) => t + 1);
  useLive(ws.id, refresh, (c) => c.post_id === id || c.id === id);
  if (post.error && !post.data) return <ErrorNote error={post.error} />;
  if (!post.data) return <Loading what="the post" />;
  const p = post.data;
  const c = p.counts || { pending: 0, delivered: 0, failed: 0, unknown: 0 };
  return (
    <section>
      <PageTitle title={`Post for ${when(p.publish_at)}`}>
        <Badge kind={stateKind(p.state)}>{stateWord(p.state)}</Badge>
      </PageTitle>
      <p>
        Planned by <strong>{name(p.author_id)}</strong>
        {p.last_editor_id && p.last_editor_id !== p.author_id ? <>, last edited by {name(p.last_editor_id)}</> : null} · to{' '}
        {p.targets.toLocaleString()} chat{p.targets === 1 ? '' : 's'}
        {p.excluded ? ` (${p.excluded} segment members left out: they cannot be sent to)` : ''}
      </p>
      <div class="grid-2">
        <div class="stack">
          <PostPreview post={p} />
          <ul class="counts" aria-label="Deliveries by status">
            <li>
              <strong>{c.delivered.toLocaleString()}</strong>delivered
            </li>
            <li>
              <strong>{c.pending.toLocaleString()}</strong>waiting
            </li>
            <li>
              <strong>{c.failed.toLocaleString()}</strong>failed
            </li>
            <li>
              <strong>{c.unknown.toLocaleString()}</strong>in doubt
            </li>
          </ul>
          <Deliveries post={p} tick={tick} onDone={refresh} />
        </div>
        <div class="stack">
          {p.approval?.stages?.length > 0 && (
            <div class="card">
              <h2 style={{ marginTop: 0 }}>Approval</h2>
              <Stages post={p} />
              <Decide post={p} onDone={refresh} />
            </div>
          )}
          <Actions post={p} onDone={refresh} />
          <div class="card">
            <History postId={p.id} tick={tick} />
          </div>
        </div>
      </div>
    </section>
  );
}
