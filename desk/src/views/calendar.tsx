// The content calendar: month, week, day and list over GET .../posts (one row per post, by
// range, 500 a page until done, shown as the pages arrive), and GET .../calendar (one entry per
// post and chat, a day at a time) only for what needs the chats: conflicts, caps, quiet hours and
// the segment filter. Posts move by drag and drop, or from the keyboard (focus a post, press M).

import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, messageOf, pages } from '../lib/api';
import { chatTitle, useDirectory, type Directory } from '../lib/directory';
import {
  addDays,
  addMonths,
  dayKey,
  inQuietHours,
  parseDate,
  quietWords,
  sameDay,
  startOfDay,
  startOfWeek,
} from '../lib/dates';
import { day, fromLocalInput, plainPreview, isoDate, stateWord, time, toLocalInput, when, zone } from '../lib/format';
import { useLive } from '../lib/live';
import { Link, navigate, setQuery, useLocation } from '../lib/router';
import { useSession } from '../lib/session';
import type { AudienceRules, CalendarEntry, PostListItem } from '../lib/types';
import { Badge, ErrorNote, PageTitle, notify, stateKind } from '../lib/ui';

type Mode = 'month' | 'week' | 'day' | 'list';
const MODES: Mode[] = ['month', 'week', 'day', 'list'];
const MOVABLE = new Set(['planned', 'approved', 'draft']);
const LIST_STATES = ['draft', 'planned', 'approved', 'cancelled', 'expired'];

function range(mode: Mode, date: Date): [Date, Date] {
  switch (mode) {
    case 'month': {
      const first = new Date(date.getFullYear(), date.getMonth(), 1);
      const start = startOfWeek(first);
      return [start, addDays(start, 42)];
    }
    case 'list':
      return [new Date(date.getFullYear(), date.getMonth(), 1), addMonths(date, 1)];
    case 'week': {
      const s = startOfWeek(date);
      return [s, addDays(s, 7)];
    }
    case 'day':
      return [startOfDay(date), addDays(startOfDay(date), 1)];
  }
}

function utc(d: Date) {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

interface Data {
  posts: PostListItem[];
  entries: CalendarEntry[];
  rules: AudienceRules | null;
  truncated: boolean;
}

/** Conflicts, caps and quiet hours per post, from the calendar's entries. */
function warnings(data: Data | undefined, dir: Directory): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (!data) return out;
  const add = (post: string, w: string) => {
    const list = out.get(post) || [];
    if (!list.includes(w)) list.push(w);
    out.set(post, list);
  };
  const byChat = new Map<string, CalendarEntry[]>();
  for (const e of data.entries) {
    if (e.state === 'cancelled' || e.state === 'rejected' || e.state === 'expired') continue;
    const list = byChat.get(e.chat_id) || [];
    list.push(e);
    byChat.set(e.chat_id, list);
  }
  for (const [chatId, list] of byChat) {
    const chat = dir.chat.get(chatId);
    const name = chatTitle(dir, chatId);
    const cap = chat?.hourly_cap ?? 60;
    const rules = chat?.audience_rules || data.rules;
    const hours = new Map<number, number>();
    for (let i = 0; i < list.length; i++) {
      const t = new Date(list[i].publish_at).getTime();
      const h = Math.floor(t / 3_600_000);
      hours.set(h, (hours.get(h) || 0) + 1);
      const next = list[i + 1];
      if (next && next.post_id !== list[i].post_id && new Date(next.publish_at).getTime() - t < 60_000) {
        const w = `Conflict: another post goes to ${name} less than a minute apart; one waits for the other.`;
        add(list[i].post_id, w);
        add(next.post_id, w);
      }
      if (rules && inQuietHours(new Date(t), rules) && list[i].delivery === 'pending') {
        add(
          list[i].post_id,
          rules.on_violation === 'skip'
            ? `Quiet hours in ${name} (${quietWords(rules)}): it will be skipped there.`
            : `Quiet hours in ${name} (${quietWords(rules)}): it waits until they end.`,
        );
      }
    }
    for (const e of list) {
      const h = Math.floor(new Date(e.publish_at).getTime() / 3_600_000);
      const n = hours.get(h) || 0;
      if (n > cap) add(e.post_id, `Limit: ${n} posts to ${name} in one hour, above its cap of ${cap}; the rest wait.`);
      else if (n >= Math.ceil(cap * 0.8)) add(e.post_id, `Near the limit: ${n} of ${cap} posts to ${name} in one hour.`);
    }
  }
  return out;
}

function Chip(props: {
  post: PostListItem;
  warn?: string[];
  movable: boolean;
  ws: string;
  onMove: (p: PostListItem) => void;
  long?: boolean;
}) {
  const p = props.post;
  return (
    <Link
      href={`/w/${props.ws}/posts/${p.id}`}
      class={`chip s-${p.state}${props.warn?.length ? ' warned' : ''}`}
      draggable={props.movable}
      title={props.warn?.length ? props.warn.join('\n') : plainPreview(p.text_preview)}
      aria-keyshortcuts={props.movable ? 'M' : undefined}
      onDragStart={(e) => {
        e.dataTransfer?.setData('text/x-herald-post', p.id);
        e.dataTransfer!.effectAllowed = 'move';
      }}
      onKeyDown={(e) => {
        if (props.movable && (e.key === 'm' || e.key === 'M')) {
          e.preventDefault();
          props.onMove(p);
        }
      }}
    >
      {props.warn?.length ? <span aria-hidden="true">⚠</span> : null}
      <span class="t">{time(p.publish_at)}</span>
      <span class="x">{plainPreview(p.text_preview) || '(no text)'}</span>
      <span class="sr-only">
        , {stateWord(p.state)}
        {props.warn?.length ? `. Warning: ${props.warn.join(' ')}` : ''}
      </span>
      {props.long && <Badge kind={stateKind(p.state)}>{stateWord(p.state)}</Badge>}
    </Link>
  );
}

function MoveDialog(props: { post: PostListItem; onClose: () => void; onMove: (at: string) => Promise<void> }) {
  const [value, setValue] = useState(toLocalInput(new Date(props.post.publish_at)));
  const [error, setError] = useState<string | null>(null);
  const ref = useRef<HTMLInputElement>(null);
  useEffect(() => ref.current?.focus(), []);
  return (
    <div class="dialog-backdrop" onKeyDown={(e) => e.key === 'Escape' && props.onClose()}>
      <form
        class="dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby="move-title"
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await props.onMove(fromLocalInput(value));
            props.onClose();
          } catch (err) {
            setError(messageOf(err));
          }
        }}
      >
        <h2 id="move-title">Move the post</h2>
        <p class="muted">{props.post.text_preview}</p>
        <ErrorNote error={error} />
        <label>
          New time ({zone})
          <input ref={ref} type="datetime-local" required value={value} onInput={(e) => setValue(e.currentTarget.value)} />
        </label>
        <div class="row" style={{ marginTop: '0.8rem' }}>
          <button class="primary" type="submit">
            Move
          </button>
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
        </div>
      </form>
    </div>
  );
}

function VirtualList(props: {
  posts: PostListItem[];
  warn: Map<string, string[]>;
  ws: string;
  movable: (p: PostListItem) => boolean;
  onMove: (p: PostListItem) => void;
  name: (id: string | null) => string;
}) {
  const ROW = 44;
  const HEAD = 34;
  const ref = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(600);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    setHeight(el.clientHeight);
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const first = Math.max(0, Math.floor(top / ROW) - 10);
  const last = Math.min(props.posts.length, Math.ceil((top + height) / ROW) + 10);
  const rows = props.posts.slice(first, last);
  return (
    <div
      class="vlist"
      ref={ref}
      role="table"
      aria-label={`Posts, ${props.posts.length} in all`}
      aria-rowcount={props.posts.length + 1}
      tabIndex={0}
      onScroll={(e) => setTop(e.currentTarget.scrollTop)}
    >
      <div class="vlist-row vlist-head" role="row" aria-rowindex={1}>
        <span role="columnheader">When</span>
        <span role="columnheader" class="hide-narrow">
          State
        </span>
        <span role="columnheader">Text</span>
        <span role="columnheader" class="hide-narrow">
          Chats
        </span>
        <span role="columnheader">Author</span>
      </div>
      <div style={{ height: `${props.posts.length * ROW}px`, position: 'relative' }}>
        {rows.map((p, i) => {
          const w = props.warn.get(p.id);
          return (
            <div
              key={p.id}
              class="vlist-row"
              role="row"
              aria-rowindex={first + i + 2}
              style={{ top: `${(first + i) * ROW}px` }}
            >
              <span role="cell">{when(p.publish_at)}</span>
              <span role="cell" class="hide-narrow">
                <Badge kind={stateKind(p.state)}>{stateWord(p.state)}</Badge>
              </span>
              <span role="cell" class="x">
                {w?.length ? <span title={w.join('\n')}>⚠ </span> : null}
                <Link href={`/w/${props.ws}/posts/${p.id}`}>{plainPreview(p.text_preview) || '(no text)'}</Link>
                {w?.length ? <span class="sr-only">Warning: {w.join(' ')}</span> : null}
              </span>
              <span role="cell" class="hide-narrow num">
                {p.targets}
              </span>
              <span role="cell" class="x">
                {props.movable(p) ? (
                  <button type="button" class="small" onClick={() => props.onMove(p)}>
                    Move…<span class="sr-only"> “{p.text_preview}”</span>
                  </button>
                ) : (
                  props.name(p.author_id)
                )}
              </span>
            </div>
          );
        })}
      </div>
      <div style={{ height: `${HEAD}px` }} />
    </div>
  );
}

/** The range's warnings in words, each with its post: visible without hovering. */
function WarningList(props: { posts: PostListItem[]; warn: Map<string, string[]>; ws: string }) {
  const [all, setAll] = useState(false);
  const warned = props.posts.filter((p) => props.warn.get(p.id)?.length);
  if (!warned.length) return null;
  const shown = all ? warned : warned.slice(0, 8);
  return (
    <section class="card" aria-labelledby="cal-warn-h" style={{ marginTop: '0.8rem' }}>
      <h2 id="cal-warn-h" style={{ marginTop: 0 }}>
        Warnings in this range ({warned.length.toLocaleString()})
      </h2>
      <ul class="warn-list">
        {shown.map((p) => (
          <li key={p.id}>
            <Link href={`/w/${props.ws}/posts/${p.id}`}>
              {when(p.publish_at)}: {plainPreview(p.text_preview).slice(0, 60) || '(no text)'}
            </Link>
            <ul class="small">
              {props.warn.get(p.id)!.map((w) => (
                <li key={w}>{w}</li>
              ))}
            </ul>
          </li>
        ))}
      </ul>
      {warned.length > shown.length && (
        <button type="button" class="more" onClick={() => setAll(true)}>
          Show all {warned.length.toLocaleString()}
        </button>
      )}
    </section>
  );
}

/** The most calendar entries (one per post and chat) one GET .../calendar answers. */
const CALENDAR_MAX = 10_000;
/** The most entries the warnings read for one range: beyond it they cover the first ones. */
const ENTRY_BUDGET = 200_000;

interface Loading {
  data: Data | undefined;
  error: string | null;
  /** Still paging through the range's posts (the data shows the pages so far). */
  loading: boolean;
  /** Posts fetched so far, while loading. */
  progress: number;
  /** Still reading the per-chat entries that the warnings and the segment filter need. */
  checking: boolean;
  reload: () => void;
}

/**
 * The range's posts from GET .../posts, 500 a page until done, shown page by page when the range
 * or a filter changed (a live reload keeps the last data until the new one is whole); then the
 * per-chat entries from GET .../calendar a day at a time (a day halved until each part fits
 * under its 10,000), for the conflicts, caps, quiet hours and segments.
 */
function useCalendarData(
  base: string,
  from: Date,
  to: Date,
  filters: { bot: string; chat: string; segment: string; state: string; author: string },
): Loading {
  const [data, setData] = useState<Data | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [checking, setChecking] = useState(false);
  const [progress, setProgress] = useState(0);
  const [tick, setTick] = useState(0);
  const shown = useRef('');
  const rules = useRef<AudienceRules | null>(null);
  const key = JSON.stringify([base, from.getTime(), to.getTime(), filters.bot, filters.chat, filters.state, filters.author]);
  useEffect(() => {
    const ctl = new AbortController();
    const signal = ctl.signal;
    const fresh = shown.current !== key;
    setLoading(true);
    setProgress(0);
    if (fresh) {
      shown.current = key;
      setData({ posts: [], entries: [], rules: rules.current, truncated: false });
    }
    const query = {
      from: utc(from),
      to: utc(to),
      limit: 500,
      bot: filters.bot,
      chat: filters.chat,
      state: filters.state,
      author: filters.author,
    };
    (async () => {
      const wsInfo = api<{ audience_rules: AudienceRules | null }>(base, { signal }).catch(() => ({ audience_rules: null }));
      const posts = await pages<PostListItem>(`${base}/posts`, 'posts', query, {
        signal,
        max: 100_000,
        onPage: (sofar) => {
          if (signal.aborted) return;
          setProgress(sofar.length);
          if (fresh) setData((d) => ({ ...(d as Data), posts: sofar.slice() }));
        },
      });
      rules.current = (await wsInfo).audience_rules;
      if (signal.aborted) return;
      setData((d) => ({ posts, entries: fresh ? [] : d?.entries || [], rules: rules.current, truncated: d?.truncated || false }));
      setLoading(false);
      setError(null);
      if (!posts.length) {
        setData((d) => ({ ...(d as Data), entries: [], truncated: false }));
        setChecking(false);
        return;
      }
      setChecking(true);
      const { entries, truncated } = await entriesIn(base, from.getTime(), to.getTime(), signal);
      if (signal.aborted) return;
      setData((d) => ({ ...(d as Data), entries, truncated }));
      setChecking(false);
    })().catch((e) => {
      if (signal.aborted || (e as Error).name === 'AbortError') return;
      setError(messageOf(e));
      setLoading(false);
      setChecking(false);
    });
    return () => ctl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, progress, checking, reload };
}

/** Every calendar entry in [from, to): a day per request, four at a time, in order. */
async function entriesIn(base: string, from: number, to: number, signal: AbortSignal) {
  const chunks: [number, number][] = [];
  for (let t = from; t < to; ) {
    const d = new Date(t);
    const next = Math.min(new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1).getTime(), to);
    chunks.push([t, next]);
    t = next;
  }
  let truncated = false;
  let read = 0;
  const one = async (a: number, b: number): Promise<CalendarEntry[]> => {
    if (read >= ENTRY_BUDGET) {
      truncated = true;
      return [];
    }
    const r = await api<{ entries: CalendarEntry[] }>(`${base}/calendar`, {
      query: { from: utc(new Date(a)), to: utc(new Date(b)) },
      signal,
    });
    if (r.entries.length < CALENDAR_MAX || b - a <= 60_000) {
      if (r.entries.length >= CALENDAR_MAX) truncated = true;
      read += r.entries.length;
      return r.entries;
    }
    const mid = a + Math.floor((b - a) / 2000) * 1000;
    const left = await one(a, mid);
    return left.concat(await one(mid, b));
  };
  const out: CalendarEntry[][] = new Array(chunks.length);
  let i = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (i < chunks.length) {
        const k = i++;
        out[k] = await one(chunks[k][0], chunks[k][1]);
      }
    }),
  );
  return { entries: out.flat(), truncated };
}

export default function Calendar() {
  const { ws, can, name } = useSession();
  const dir = useDirectory();
  const loc = useLocation();
  const q = loc.query;
  const mode = (MODES.includes(q.get('view') as Mode) ? q.get('view') : 'month') as Mode;
  const date = parseDate(q.get('date'));
  const [from, to] = range(mode, date);
  const filters = {
    bot: q.get('bot') || '',
    chat: q.get('chat') || '',
    segment: q.get('segment') || '',
    state: q.get('state') || '',
    author: q.get('author') || '',
  };
  const [moving, setMoving] = useState<PostListItem | null>(null);
  const [dropKey, setDropKey] = useState<string | null>(null);
  const base = `/v1/workspaces/${ws.id}`;

  const load = useCalendarData(base, from, to, filters);
  useLive(ws.id, load.reload, (c) => c.stream === 'post' || c.stream === 'delivery');

  const segmentChats = useMemo(() => {
    if (!filters.segment) return null;
    const s = dir.segments.find((x) => x.id === filters.segment);
    if (!s) return null;
    const ids = new Set(s.chat_ids);
    for (const c of dir.chats) {
      const tags = new Set(c.tags || []);
      const all = s.tags_all.length > 0 && s.tags_all.every((t) => tags.has(t));
      const any = s.tags_any.length > 0 && s.tags_any.some((t) => tags.has(t));
      const sel =
        (s.tags_all.length > 0 || s.tags_any.length > 0) &&
        (s.tags_all.length === 0 || all) &&
        (s.tags_any.length === 0 || any);
      if (sel) ids.add(c.id);
    }
    return ids;
  }, [filters.segment, dir]);

  const allPosts = load.data?.posts;
  const entries = load.data?.entries;
  const rules = load.data?.rules;
  const posts = useMemo(() => {
    const all = allPosts || [];
    if (!segmentChats) return all;
    const hit = new Set((entries || []).filter((e) => segmentChats.has(e.chat_id)).map((e) => e.post_id));
    return all.filter((p) => hit.has(p.id));
  }, [allPosts, entries, segmentChats]);

  const warn = useMemo(() => warnings(load.data, dir), [entries, rules, dir]);
  const byDay = useMemo(() => {
    const m = new Map<string, PostListItem[]>();
    for (const p of posts) {
      const k = dayKey(new Date(p.publish_at));
      const list = m.get(k);
      if (list) list.push(p);
      else m.set(k, [p]);
    }
    return m;
  }, [posts]);
  const byHour = useMemo(() => {
    const m = new Map<string, PostListItem[]>();
    if (mode !== 'week' && mode !== 'day') return m;
    for (const p of posts) {
      const d = new Date(p.publish_at);
      const k = `${dayKey(d)}-${d.getHours()}`;
      const list = m.get(k);
      if (list) list.push(p);
      else m.set(k, [p]);
    }
    return m;
  }, [posts, mode]);

  const movable = (p: PostListItem) => can('plan') && MOVABLE.has(p.state) && new Date(p.publish_at).getTime() > Date.now();

  async function reschedule(id: string, at: Date | string) {
    const publish_at = typeof at === 'string' ? at : utc(at);
    await api(`${base}/posts/${id}/reschedule`, { method: 'POST', body: { publish_at } });
    notify(`Moved to ${when(publish_at)}.`);
    load.reload();
  }

  function dropOn(e: DragEvent, target: (old: Date) => Date) {
    e.preventDefault();
    setDropKey(null);
    const id = e.dataTransfer?.getData('text/x-herald-post');
    const post = posts.find((p) => p.id === id);
    if (!post || !movable(post)) return;
    const at = target(new Date(post.publish_at));
    if (at.getTime() <= Date.now()) {
      notify('A post cannot be moved into the past.', 'error');
      return;
    }
    reschedule(post.id, at).catch((err) => notify(messageOf(err), 'error'));
  }

  const step = (n: number) => {
    const d = mode === 'month' || mode === 'list' ? addMonths(date, n) : addDays(date, mode === 'week' ? 7 * n : n);
    setQuery({ date: isoDate(d) });
  };
  const title =
    mode === 'month' || mode === 'list'
      ? date.toLocaleDateString(undefined, { month: 'long', year: 'numeric' })
      : mode === 'week'
        ? `Week of ${day(from)}`
        : date.toLocaleDateString(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
  const today = new Date();

  const chips = (list: PostListItem[], max: number, onMore: () => void) => (
    <>
      {list.slice(0, max).map((p) => (
        <Chip key={p.id} post={p} warn={warn.get(p.id)} movable={movable(p)} ws={ws.id} onMove={setMoving} />
      ))}
      {list.length > max && (
        <button type="button" class="more" onClick={onMore}>
          +{list.length - max} more
        </button>
      )}
    </>
  );

  const sel = (key: keyof typeof filters, label: string, options: [string, string][]) => (
    <label>
      {label}
      <select value={filters[key]} onChange={(e) => setQuery({ [key]: e.currentTarget.value })}>
        <option value="">All</option>
        {options.map(([v, l]) => (
          <option key={v} value={v}>
            {l}
          </option>
        ))}
      </select>
    </label>
  );

  return (
    <section aria-labelledby="page-title">
      <PageTitle title={`Calendar: ${title}`}>
        {can('plan') && (
          <Link class="button primary" href={`/w/${ws.id}/posts/new`}>
            New post
          </Link>
        )}
      </PageTitle>
      <div class="cal-toolbar">
        <div class="seg" role="group" aria-label="View">
          {MODES.map((m) => (
            <button key={m} type="button" aria-pressed={mode === m} onClick={() => setQuery({ view: m })}>
              {m[0].toUpperCase() + m.slice(1)}
            </button>
          ))}
        </div>
        <div class="seg" role="group" aria-label="Move in time">
          <button type="button" onClick={() => step(-1)}>
            ‹ Previous
          </button>
          <button type="button" onClick={() => setQuery({ date: null })}>
            Today
          </button>
          <button type="button" onClick={() => step(1)}>
            Next ›
          </button>
        </div>
        <span class="muted small" role="status">
          {load.loading
            ? `Loading ${load.progress.toLocaleString()} posts…`
            : `${posts.length.toLocaleString()} posts${load.checking ? ' · checking conflicts and limits…' : ''}`}{' '}
          · times in {zone}
        </span>
      </div>
      <div class="filters">
        {sel('bot', 'Bot', dir.bots.map((b) => [b.id, b.name || b.username || b.id]))}
        {sel(
          'chat',
          'Chat',
          dir.chats.slice(0, 1000).map((c) => [c.id, `${c.title}${c.contact ? ' (contact)' : ''}`]),
        )}
        {sel('segment', 'Segment', dir.segments.map((s) => [s.id, s.name]))}
        {sel('state', 'State', LIST_STATES.map((s) => [s, stateWord(s)]))}
        {sel('author', 'Author', dir.members.map((m) => [m.user_id, m.display_name || m.login]))}
      </div>
      <ErrorNote error={load.error} />
      {load.data?.truncated && (
        <p class="note note-warn">
          More deliveries in this range than the warnings can check at once: conflict, limit and quiet-hour warnings (and the
          segment filter) cover the first {load.data.entries.length.toLocaleString()}. Narrow the range to check them all.
        </p>
      )}
      {can('plan') && (
        <p class="muted small">Drag a post to another day or hour to move it; or focus it and press M to pick a new time.</p>
      )}

      {mode === 'month' && (
        <div class="month" role="grid" aria-label={title}>
          <div role="row" style={{ display: 'contents' }}>
            {['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].map((d) => (
              <div key={d} class="dow" role="columnheader">
                {d}
              </div>
            ))}
          </div>
          {Array.from({ length: 6 }, (_, w) => (
            <div key={w} role="row" style={{ display: 'contents' }}>
              {Array.from({ length: 7 }, (_, i) => {
                const d = addDays(from, w * 7 + i);
                const k = dayKey(d);
                const list = byDay.get(k) || [];
                const other = d.getMonth() !== date.getMonth();
                return (
                  <div
                    key={k}
                    role="gridcell"
                    data-date={isoDate(d)}
                    class={`cell${other ? ' other' : ''}${sameDay(d, today) ? ' today' : ''}${dropKey === k ? ' drop' : ''}`}
                    onDragOver={(e) => {
                      e.preventDefault();
                      setDropKey(k);
                    }}
                    onDragLeave={() => setDropKey((x) => (x === k ? null : x))}
                    onDrop={(e) =>
                      dropOn(e, (old) => new Date(d.getFullYear(), d.getMonth(), d.getDate(), old.getHours(), old.getMinutes()))
                    }
                  >
                    <div class="cell-head">
                      <button
                        type="button"
                        class="more"
                        style={{ color: 'var(--ink)', textDecoration: 'none', fontWeight: 600 }}
                        onClick={() => setQuery({ view: 'day', date: isoDate(d) })}
                      >
                        {d.getDate()}
                        <span class="sr-only"> {day(d)}: open the day</span>
                      </button>
                      {list.length > 0 && <span class="muted">{list.length}</span>}
                    </div>
                    {chips(list, 3, () => setQuery({ view: 'day', date: isoDate(d) }))}
                  </div>
                );
              })}
            </div>
          ))}
        </div>
      )}

      {(mode === 'week' || mode === 'day') && (
        <div class={`week${mode === 'day' ? ' one-day' : ''}`} role="grid" aria-label={title}>
          <div role="row" style={{ display: 'contents' }}>
            <div class="col-head" role="columnheader">
              <span class="sr-only">Hour</span>
            </div>
            {Array.from({ length: mode === 'day' ? 1 : 7 }, (_, i) => (
              <div key={i} class="col-head" role="columnheader">
                {day(addDays(from, i))}
              </div>
            ))}
          </div>
          {Array.from({ length: 24 }, (_, h) => (
            <div key={h} role="row" style={{ display: 'contents' }}>
              <div class="hour-label" role="rowheader">
                {String(h).padStart(2, '0')}:00
              </div>
              {Array.from({ length: mode === 'day' ? 1 : 7 }, (_, i) => {
                const d = addDays(from, i);
                const slotStart = new Date(d.getFullYear(), d.getMonth(), d.getDate(), h);
                const k = `${dayKey(d)}-${h}`;
                const list = byHour.get(k) || [];
                const quiet = inQuietHours(slotStart, load.data?.rules);
                return (
                  <div
                    key={k}
                    role="gridcell"
                    class={`slot${quiet ? ' quiet' : ''}${dropKey === k ? ' drop' : ''}`}
                    onDragOver={(e) => {
                      e.preventDefault();
                      setDropKey(k);
                    }}
                    onDragLeave={() => setDropKey((x) => (x === k ? null : x))}
                    onDrop={(e) => dropOn(e, (old) => new Date(d.getFullYear(), d.getMonth(), d.getDate(), h, old.getMinutes()))}
                  >
                    {quiet && <span class="sr-only">Quiet hours. </span>}
                    {chips(list, mode === 'day' ? 8 : 2, () => setQuery({ view: 'day', date: isoDate(d) }))}
                  </div>
                );
              })}
            </div>
          ))}
        </div>
      )}
      {(mode === 'week' || mode === 'day') && load.data?.rules?.quiet_hours && (
        <p class="legend">
          <span>
            <span class="sw slot quiet" aria-hidden="true" />
            Workspace quiet hours ({quietWords(load.data.rules)})
          </span>
        </p>
      )}

      {mode === 'list' && (
        <VirtualList posts={posts} warn={warn} ws={ws.id} movable={movable} onMove={setMoving} name={name} />
      )}

      <p class="legend" aria-label="Legend">
        <span>⚠ a conflict, a limit or quiet hours: listed below</span>
      </p>
      <WarningList posts={posts} warn={warn} ws={ws.id} />

      {moving && (
        <MoveDialog
          post={moving}
          onClose={() => setMoving(null)}
          onMove={(at) => reschedule(moving.id, at)}
        />
      )}
      {!can('plan') && mode === 'month' && posts.length === 0 && !load.loading && (
        <p class="empty">Nothing is planned in this range.</p>
      )}
      {can('plan') && mode === 'month' && posts.length === 0 && !load.loading && (
        <p class="empty">
          Nothing is planned in this range. <button type="button" class="more" onClick={() => navigate(`/w/${ws.id}/posts/new`)}>Plan a post</button>
        </p>
      )}
    </section>
  );
}
