// The audit explorer: the workspace's events filtered by actor, post, chat and time, exported
// as CSV or JSON. Filters go to the server as query parameters and are applied here as well,
// so the rows shown are exactly the rows exported.

import { useMemo, useState } from 'preact/hooks';
import { pages } from '../lib/api';
import { chatTitle, useDirectory } from '../lib/directory';
import { eventWord, fromLocalInput, when, zone } from '../lib/format';
import { useLoad } from '../lib/hooks';
import { useLive } from '../lib/live';
import { Link, setQuery, useLocation } from '../lib/router';
import { useSession } from '../lib/session';
import type { AuditEvent } from '../lib/types';
import { ErrorNote, PageTitle } from '../lib/ui';

function mentions(e: AuditEvent, key: string, id: string): boolean {
  if (e.aggregate_id === id) return true;
  const d = e.details || {};
  const v = d[key];
  if (v === id) return true;
  if (Array.isArray(v) && v.includes(id)) return true;
  const many = d[`${key}s`];
  return Array.isArray(many) && many.includes(id);
}

function postOf(e: AuditEvent): string | null {
  if (e.aggregate_type === 'post' || e.aggregate_type === 'Post') return e.aggregate_id;
  const p = e.details?.post_id;
  return typeof p === 'string' ? p : null;
}

function download(name: string, type: string, data: string) {
  const url = URL.createObjectURL(new Blob([data], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function csvCell(v: unknown): string {
  const s = typeof v === 'string' ? v : v === undefined || v === null ? '' : JSON.stringify(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export default function Audit() {
  const { ws, can, name } = useSession();
  const dir = useDirectory();
  const q = useLocation().query;
  const f = {
    actor: q.get('actor') || '',
    post: q.get('post') || '',
    chat: q.get('chat') || '',
    from: q.get('from') || '',
    to: q.get('to') || '',
  };
  const [shown, setShown] = useState(300);
  const [count, setCount] = useState(0);
  const load = useLoad(
    (signal) =>
      can('audit')
        ? pages<AuditEvent>(
            `/v1/workspaces/${ws.id}/audit`,
            'events',
            {
              limit: 1000,
              actor: f.actor,
              post_id: f.post,
              chat_id: f.chat,
              from: f.from ? fromLocalInput(f.from) : '',
              to: f.to ? fromLocalInput(f.to) : '',
            },
            { signal, max: 50_000, onPage: (a) => setCount(a.length) },
          )
        : Promise.resolve([]),
    [ws.id, f.actor, f.post, f.chat, f.from, f.to],
  );
  useLive(ws.id, load.reload);
  const rows = useMemo(() => {
    const from = f.from ? new Date(f.from).getTime() : -Infinity;
    const to = f.to ? new Date(f.to).getTime() : Infinity;
    return (load.data || []).filter((e) => {
      if (f.actor && e.actor !== f.actor) return false;
      if (f.post && !mentions(e, 'post_id', f.post)) return false;
      if (f.chat && !mentions(e, 'chat_id', f.chat)) return false;
      const t = new Date(e.occurred_at).getTime();
      return t >= from && t < to;
    });
  }, [load.data, f.actor, f.post, f.chat, f.from, f.to]);

  if (!can('audit')) {
    return (
      <section>
        <PageTitle title="Audit" />
        <p class="note note-info">The audit is for auditors and admins; your role is {ws.role}.</p>
      </section>
    );
  }
  const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-');
  const actors = new Map<string, string>();
  dir.members.forEach((m) => actors.set(m.user_id, m.display_name || m.login));
  (load.data || []).forEach((e) => e.actor && !actors.has(e.actor) && actors.set(e.actor, name(e.actor)));
  const input = (key: keyof typeof f, label: string, type = 'text') => (
    <label>
      {label}
      <input type={type} value={f[key]} onChange={(e) => setQuery({ [key]: e.currentTarget.value })} />
    </label>
  );
  return (
    <section>
      <PageTitle title="Audit">
        <button
          type="button"
          onClick={() => {
            const head = ['position', 'occurred_at', 'actor', 'actor_name', 'event_type', 'aggregate_type', 'aggregate_id', 'details'];
            const lines = rows.map((e) =>
              [e.position, e.occurred_at, e.actor, name(e.actor), e.event_type, e.aggregate_type, e.aggregate_id, e.details]
                .map(csvCell)
                .join(','),
            );
            download(`herald-audit-${stamp}.csv`, 'text/csv', [head.join(','), ...lines].join('\n') + '\n');
          }}
        >
          Export CSV
        </button>
        <button type="button" onClick={() => download(`herald-audit-${stamp}.json`, 'application/json', JSON.stringify(rows, null, 2))}>
          Export JSON
        </button>
      </PageTitle>
      <form class="filters" aria-label="Filter the audit" onSubmit={(e) => e.preventDefault()}>
        <label>
          Actor
          <select value={f.actor} onChange={(e) => setQuery({ actor: e.currentTarget.value })}>
            <option value="">Anyone</option>
            {[...actors].map(([id, n]) => (
              <option key={id} value={id}>
                {n}
              </option>
            ))}
          </select>
        </label>
        {input('post', 'Post id')}
        <label>
          Chat
          <select value={f.chat} onChange={(e) => setQuery({ chat: e.currentTarget.value })}>
            <option value="">Any</option>
            {dir.chats.slice(0, 1000).map((c) => (
              <option key={c.id} value={c.id}>
                {c.title}
              </option>
            ))}
          </select>
        </label>
        {input('from', `From (${zone})`, 'datetime-local')}
        {input('to', `To (${zone})`, 'datetime-local')}
        <button type="button" onClick={() => setQuery({ actor: null, post: null, chat: null, from: null, to: null })}>
          Clear filters
        </button>
      </form>
      <p class="muted small" role="status">
        {load.loading ? `Reading the journal… ${count.toLocaleString()} events` : `${rows.length.toLocaleString()} events match`}
      </p>
      <ErrorNote error={load.error} />
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Audit events</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">What</th>
              <th scope="col">On</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {rows
              .slice(-shown)
              .reverse()
              .map((e) => {
                const post = postOf(e);
                const chat = typeof e.details?.chat_id === 'string' ? (e.details.chat_id as string) : null;
                return (
                  <tr key={e.position} data-event={e.event_type}>
                    <td class="when">{when(e.occurred_at)}</td>
                    <td>{e.actor ? name(e.actor) : 'Herald'}</td>
                    <td>
                      {eventWord(e.event_type)} <code class="small">{e.event_type}</code>
                    </td>
                    <td>
                      {post ? <Link href={`/w/${ws.id}/posts/${post}`}>post …{post.slice(-8)}</Link> : e.aggregate_type}
                      {chat ? ` · ${chatTitle(dir, chat)}` : ''}
                    </td>
                    <td class="mono small">{JSON.stringify(e.details).slice(0, 160)}</td>
                  </tr>
                );
              })}
          </tbody>
        </table>
      </div>
      {rows.length > shown && (
        <button type="button" style={{ marginTop: '0.5rem' }} onClick={() => setShown(shown + 1000)}>
          Show older events
        </button>
      )}
    </section>
  );
}
