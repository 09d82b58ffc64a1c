// The editor: plan a post or edit one. The preview, the counter and the findings come from the
// server's dry-run (POST .../posts/dry-run), which parses the text as Telegram does.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, messageOf } from '../lib/api';
import { useDirectory } from '../lib/directory';
import { fromLocalInput, plural, time, toLocalInput, when, zone } from '../lib/format';
import { useDebounced, useLoad } from '../lib/hooks';
import { Link, navigate } from '../lib/router';
import { useSession } from '../lib/session';
import { Findings, Preview } from '../lib/preview';
import type { DryRun, Post } from '../lib/types';
import { ErrorNote, Loading, PageTitle, notify } from '../lib/ui';

type Mode = 'HTML' | 'MarkdownV2' | '';

function defaultTime(): string {
  const d = new Date(Date.now() + 60 * 60_000);
  d.setMinutes(Math.ceil(d.getMinutes() / 15) * 15, 0, 0);
  return toLocalInput(d);
}

export default function Editor(props: { params: Record<string, string> }) {
  const { ws, can } = useSession();
  const dir = useDirectory();
  const editing = props.params.id;
  const base = `/v1/workspaces/${ws.id}`;
  const existing = useLoad<Post | null>((signal) => (editing ? api<Post>(`${base}/posts/${editing}`, { signal }) : Promise.resolve(null)), [editing]);

  const [text, setText] = useState('');
  const [mode, setMode] = useState<Mode>('HTML');
  const [at, setAt] = useState(defaultTime());
  const [chats, setChats] = useState<Set<string>>(new Set());
  const [segments, setSegments] = useState<Set<string>>(new Set());
  const [filter, setFilter] = useState('');
  const [dry, setDry] = useState<DryRun | null>(null);
  const [dryError, setDryError] = useState<string | null>(null);
  const [dryBusy, setDryBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);

  useEffect(() => {
    const p = existing.data;
    if (!p) return;
    setText(p.text);
    setMode((p.parse_mode as Mode) || '');
    setAt(toLocalInput(new Date(p.publish_at)));
    setChats(new Set(p.deliveries.map((d) => d.chat_id)));
  }, [existing.data]);

  const input = useMemo(
    () => ({
      text,
      parse_mode: mode || undefined,
      chat_ids: [...chats],
      segment_ids: segments.size ? [...segments] : undefined,
      publish_at: fromLocalInput(at) || undefined,
    }),
    [text, mode, chats, segments, at],
  );
  const debounced = useDebounced(input, 350);

  useEffect(() => {
    if (!debounced.text.trim() || !can('plan')) {
      setDry(null);
      return;
    }
    const ctl = new AbortController();
    setDryBusy(true);
    api<DryRun>(`${base}/posts/dry-run`, { method: 'POST', body: debounced, signal: ctl.signal }).then(
      (d) => {
        setDry(d);
        setDryError(null);
        setDryBusy(false);
      },
      (e) => {
        if ((e as Error).name === 'AbortError') return;
        setDryError(messageOf(e));
        setDryBusy(false);
      },
    );
    return () => ctl.abort();
  }, [debounced]);

  if (!can('plan')) {
    return (
      <section>
        <PageTitle title="New post" />
        <p class="note note-info">Your role ({ws.role}) does not plan posts. Authors and admins do.</p>
      </section>
    );
  }
  if (editing && existing.loading && !existing.data) return <Loading what="the post" />;

  const length = dry?.render?.length ?? null;
  const limit = dry?.render?.limit ?? 4096;
  const shown = dir.chats.filter(
    (c) => !filter || c.title.toLowerCase().includes(filter.toLowerCase()) || String(c.telegram_chat_id).includes(filter),
  );

  async function submit(e: Event) {
    e.preventDefault();
    setError(null);
    const publish_at = fromLocalInput(at);
    if (!publish_at) {
      setError('Choose when the post goes out.');
      return;
    }
    if (!editing && chats.size === 0 && segments.size === 0) {
      setError('Choose at least one chat or segment to send to.');
      return;
    }
    setSaving(true);
    try {
      if (editing) {
        await api(`${base}/posts/${editing}`, {
          method: 'PATCH',
          body: { text, parse_mode: mode || null, publish_at },
        });
        notify('Saved. The post waits for its approvals again.');
        navigate(`/w/${ws.id}/posts/${editing}`);
      } else {
        const body: Record<string, unknown> = { text, publish_at, chat_ids: [...chats] };
        if (mode) body.parse_mode = mode;
        if (segments.size) body.segment_ids = [...segments];
        if (!chats.size) delete body.chat_ids;
        const made = await api<{ id: string; targets?: number; excluded?: number }>(`${base}/posts`, {
          method: 'POST',
          body,
        });
        notify(
          made.excluded
            ? `Planned for ${plural(made.targets || 0, 'chat')}; ${plural(made.excluded, 'member')} of the segments cannot be sent to and were left out.`
            : 'Planned. It now waits for approval.',
        );
        navigate(`/w/${ws.id}/posts/${made.id}`);
      }
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setSaving(false);
    }
  }

  const toggle = (set: Set<string>, setter: (s: Set<string>) => void, id: string) => {
    const next = new Set(set);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setter(next);
  };

  return (
    <section>
      <PageTitle title={editing ? 'Edit post' : 'New post'}>
        {editing && <Link href={`/w/${ws.id}/posts/${editing}`}>Back to the post</Link>}
      </PageTitle>
      <ErrorNote error={existing.error} />
      <form class="grid-2" onSubmit={submit} aria-label={editing ? 'Edit the post' : 'Plan a post'}>
        <div class="stack">
          <div class="card stack">
            <div class="row">
              <label>
                Format
                <select value={mode} onChange={(e) => setMode(e.currentTarget.value as Mode)}>
                  <option value="HTML">HTML</option>
                  <option value="MarkdownV2">MarkdownV2</option>
                  <option value="">Plain text</option>
                </select>
              </label>
              <label>
                Goes out at ({zone})
                <input name="publish_at" type="datetime-local" step={1} required value={at} onInput={(e) => setAt(e.currentTarget.value)} />
              </label>
            </div>
            <label>
              Text
              <textarea
                name="text"
                rows={9}
                value={text}
                onInput={(e) => setText(e.currentTarget.value)}
                placeholder={mode === 'HTML' ? 'Hello from <b>Herald</b>' : mode === 'MarkdownV2' ? 'Hello from *Herald*' : 'Hello'}
                aria-describedby="counter"
              />
            </label>
            <p id="counter" class={`counter${length !== null && length > limit ? ' over' : ''}`} aria-live="polite">
              {length === null
                ? 'Length: counted as Telegram counts it once the text parses.'
                : `${length.toLocaleString()} / ${limit.toLocaleString()} characters (UTF-16 units after parsing)`}
            </p>
            {fromLocalInput(at) && <p class="muted small">That is {when(fromLocalInput(at))} in your zone, {fromLocalInput(at)} UTC.</p>}
          </div>

          {!editing && (
            <fieldset class="card">
              <legend>Send to</legend>
              <div class="row">
                <label>
                  Find a chat
                  <input type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
                </label>
                <span class="muted small">
                  {plural(chats.size, 'chat')} and {plural(segments.size, 'segment')} chosen
                </span>
              </div>
              <h3 id="chats-h">Chats</h3>
              <div class="pick-list" role="group" aria-labelledby="chats-h">
                {shown.length === 0 && <p class="muted">No chat is connected yet. An admin connects them in Audience.</p>}
                {shown.slice(0, 300).map((c) => (
                  <label key={c.id}>
                    <input
                      type="checkbox"
                      checked={chats.has(c.id)}
                      disabled={!c.targetable}
                      onChange={() => toggle(chats, setChats, c.id)}
                    />
                    {c.title}
                    <span class="muted small">
                      {c.contact ? 'contact' : c.type || 'chat'}
                      {c.opted_out ? ', opted out' : c.blocked ? ', blocked' : !c.targetable ? ', no lawful basis' : ''}
                    </span>
                  </label>
                ))}
                {shown.length > 300 && <p class="muted small">{shown.length - 300} more: narrow the search.</p>}
              </div>
              <h3 id="segs-h">Segments</h3>
              <div class="pick-list" role="group" aria-labelledby="segs-h">
                {dir.segments.length === 0 && <p class="muted">No segments yet.</p>}
                {dir.segments.map((s) => (
                  <label key={s.id}>
                    <input type="checkbox" checked={segments.has(s.id)} onChange={() => toggle(segments, setSegments, s.id)} />
                    {s.name}
                    <span class="muted small">
                      {s.reachable} of {s.members} reachable
                    </span>
                  </label>
                ))}
              </div>
              {segments.size > 0 && (
                <p class="muted small">Segments are resolved when you plan: members who cannot be sent to are left out and counted.</p>
              )}
            </fieldset>
          )}
          <ErrorNote error={error} />
          <div class="row">
            <button class="primary" type="submit" disabled={saving}>
              {saving ? 'Saving…' : editing ? 'Save changes' : 'Plan post'}
            </button>
            {dry?.blocked && <span class="note note-warn">A finding blocks approval: fix it before asking for approval.</span>}
          </div>
        </div>

        <div class="stack">
          <div class="card">
            <h2 style={{ marginTop: 0 }}>Preview</h2>
            <Preview dry={dry} text={text} busy={dryBusy} />
          </div>
          <div class="card" aria-live="polite">
            <h2 style={{ marginTop: 0 }}>Findings</h2>
            <ErrorNote error={dryError} />
            {dry ? (
              <Findings findings={dry.findings} chatName={(id) => dir.chat.get(id)?.title || id} />
            ) : (
              <p class="muted">The workspace's rules, the targets and the limits are checked as you type.</p>
            )}
            {dry?.audience && (
              <p class="note note-info" id="audience-count">
                Goes to {plural(dry.audience.targets, 'chat')} in all: {plural(dry.audience.from_segments, 'member')} from the segments
                {dry.audience.excluded > 0
                  ? `; ${plural(dry.audience.excluded, 'member')} of them cannot be sent to (opted out, blocked or without a lawful basis) and will be left out`
                  : ''}
                .
              </p>
            )}
            {dry?.forecast && (
              <p class="muted small">
                {plural(dry.forecast.messages, 'message')}: the first at {time(dry.forecast.first_at)}, the last at{' '}
                {time(dry.forecast.last_at)}
                {dry.forecast.delayed_secs > 0 ? `, ${dry.forecast.delayed_secs} s later because of other posts on the same bots` : ''}.
              </p>
            )}
          </div>
        </div>
      </form>
    </section>
  );
}
