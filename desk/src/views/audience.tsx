// The audience: contacts and chats with their lawful basis, imports (dry run first, a result
// per row with its line), segments, and opt-outs.

import { useMemo, useState } from 'preact/hooks';
import { api, messageOf } from '../lib/api';
import { useDirectory } from '../lib/directory';
import { plural, when } from '../lib/format';
import { useLive } from '../lib/live';
import { Link, setQuery, useLocation } from '../lib/router';
import { useSession } from '../lib/session';
import type { Chat, ImportResult, Segment } from '../lib/types';
import { Badge, Empty, ErrorNote, PageTitle, chatStatus, notify } from '../lib/ui';
import { AudienceRulesForm, rulesWords } from '../lib/forms';

const TABS = [
  ['contacts', 'Contacts and chats'],
  ['import', 'Import'],
  ['segments', 'Segments'],
  ['optouts', 'Opt-outs'],
] as const;

function basisWords(c: Chat): string {
  if (!c.contact) return 'not needed (group or channel)';
  if (!c.lawful_basis) return 'none recorded: cannot be sent to';
  const b = c.lawful_basis.basis === 'legitimate_interest' ? 'legitimate interest' : c.lawful_basis.basis;
  return `${b}, from ${c.lawful_basis.source}, ${when(c.lawful_basis.given_at)}`;
}

function Contacts() {
  const { ws, can } = useSession();
  const dir = useDirectory();
  const [find, setFind] = useState('');
  const [shown, setShown] = useState(200);
  const [error, setError] = useState<string | null>(null);
  const list = useMemo(
    () =>
      dir.chats.filter(
        (c) =>
          !find ||
          c.title.toLowerCase().includes(find.toLowerCase()) ||
          c.tags.some((t) => t.includes(find.toLowerCase())) ||
          String(c.telegram_chat_id).includes(find),
      ),
    [dir.chats, find],
  );
  async function optOut(c: Chat) {
    const reason = window.prompt(`Why is ${c.title} opting out? (kept in the audit)`, 'asked us to stop');
    if (reason === null) return;
    try {
      await api(`/v1/workspaces/${ws.id}/chats/${c.id}/opt-out`, { method: 'POST', body: { reason } });
      notify(`${c.title} opted out: nothing more is sent to them.`);
      dir.reload();
    } catch (e) {
      setError(messageOf(e));
    }
  }
  return (
    <>
      <div class="row">
        <label>
          Find by name, tag or Telegram id
          <input type="search" value={find} onInput={(e) => setFind(e.currentTarget.value)} />
        </label>
        <span class="muted small">{plural(list.length, 'chat')}</span>
      </div>
      <ErrorNote error={error} />
      <div class="table-wrap" style={{ marginTop: '0.5rem' }}>
        <table>
          <caption class="sr-only">Contacts and chats with their lawful basis</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Kind</th>
              <th scope="col">Lawful basis</th>
              <th scope="col">Tags</th>
              <th scope="col">Status</th>
              {can('opt_out') && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {list.slice(0, shown).map((c) => (
              <tr key={c.id}>
                <td>
                  <Link href={`/w/${ws.id}/chats/${c.id}`}>{c.erased ? 'Erased contact' : c.title || c.telegram_chat_id}</Link>{' '}
                  <span class="muted small mono">{c.telegram_chat_id}</span>
                </td>
                <td>{c.contact ? 'contact' : c.type || 'chat'}</td>
                <td>{basisWords(c)}</td>
                <td>{c.tags.join(', ')}</td>
                <td>{chatStatus(c)}</td>
                {can('opt_out') && (
                  <td>
                    {can('configure') && (
                      <Link class="button small" href={`/w/${ws.id}/chats/${c.id}`}>
                        Manage<span class="sr-only"> {c.erased ? 'erased contact' : c.title}</span>
                      </Link>
                    )}{' '}
                    {c.contact && !c.opted_out && !c.erased && (
                      <button type="button" class="small" onClick={() => optOut(c)}>
                        Opt out<span class="sr-only"> {c.title}</span>
                      </button>
                    )}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {list.length > shown && (
        <button type="button" onClick={() => setShown(shown + 500)} style={{ marginTop: '0.5rem' }}>
          Show more
        </button>
      )}
    </>
  );
}

function Import() {
  const { ws, can } = useSession();
  const dir = useDirectory();
  const [bot, setBot] = useState(dir.bots[0]?.id || '');
  const [format, setFormat] = useState<'csv' | 'json'>('csv');
  const [data, setData] = useState('telegram_chat_id,title,lawful_basis,source,tags\n');
  const [result, setResult] = useState<ImportResult | null>(null);
  const [checked, setChecked] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  if (!can('configure')) return <p class="note note-info">Imports are for admins; your role is {ws.role}.</p>;
  async function run(dry: boolean) {
    setBusy(true);
    setError(null);
    try {
      let raw: { type: string; data: string };
      const query: Record<string, string | boolean> = { dry_run: dry };
      if (format === 'csv') {
        if (!bot) throw new Error('Choose the bot these contacts talk to.');
        raw = { type: 'text/csv', data };
        query.bot_id = bot;
      } else {
        let body: unknown;
        try {
          body = JSON.parse(data);
        } catch (e) {
          throw new Error(`The JSON does not parse: ${(e as Error).message}`);
        }
        if (Array.isArray(body)) body = { bot_id: bot, chats: body };
        raw = { type: 'application/json', data: JSON.stringify(body) };
      }
      const r = await api<ImportResult>(`/v1/workspaces/${ws.id}/chats/import`, { method: 'POST', raw, query });
      setResult(r);
      if (dry) setChecked(data);
      else {
        setChecked(null);
        notify(`Imported: ${r.connected ?? 0} connected, ${r.failed} rejected.`);
        dir.reload();
      }
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setBusy(false);
    }
  }
  return (
    <div class="stack">
      <p class="muted">
        A contact needs a lawful basis (consent or legitimate_interest) and its source. Check the file first: nothing is written
        until you import.
      </p>
      <div class="row">
        <label>
          Bot
          <select value={bot} onChange={(e) => setBot(e.currentTarget.value)}>
            {dir.bots.map((b) => (
              <option key={b.id} value={b.id}>
                {b.name || b.username || b.id}
              </option>
            ))}
          </select>
        </label>
        <label>
          Format
          <select value={format} onChange={(e) => setFormat(e.currentTarget.value as 'csv' | 'json')}>
            <option value="csv">CSV</option>
            <option value="json">JSON</option>
          </select>
        </label>
        <label>
          Upload a file
          <input
            type="file"
            accept=".csv,.json,text/csv,application/json"
            onChange={async (e) => {
              const f = e.currentTarget.files?.[0];
              if (!f) return;
              setFormat(f.name.endsWith('.json') ? 'json' : 'csv');
              setData(await f.text());
              setResult(null);
            }}
          />
        </label>
      </div>
      <label>
        Rows
        <textarea rows={8} value={data} onInput={(e) => setData(e.currentTarget.value)} />
      </label>
      <ErrorNote error={error} />
      <div class="row">
        <button type="button" onClick={() => run(true)} disabled={busy}>
          Check (dry run)
        </button>
        <button type="button" class="primary" onClick={() => run(false)} disabled={busy || checked !== data}>
          Import
        </button>
        {checked !== data && <span class="muted small">Check the rows first; then import.</span>}
      </div>
      {result && (
        <section aria-labelledby="import-result">
          <h3 id="import-result">
            {result.dry_run ? 'Dry run: ' : 'Imported: '}
            {result.dry_run ? `${result.would_connect ?? 0} would connect` : `${result.connected ?? 0} connected`},{' '}
            {result.already_connected} already connected, {result.failed} rejected
          </h3>
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col" class="num">
                    Line
                  </th>
                  <th scope="col">Telegram id</th>
                  <th scope="col">Result</th>
                </tr>
              </thead>
              <tbody>
                {result.rows.map((r) => (
                  <tr key={r.row}>
                    <td class="num">{r.line ?? r.row}</td>
                    <td class="mono">{r.telegram_chat_id ?? '—'}</td>
                    <td>
                      {r.status === 'failed' ? (
                        <>
                          <Badge kind="bad">rejected</Badge> {r.error?.message}
                        </>
                      ) : (
                        <Badge kind="ok">{r.status.replace(/_/g, ' ')}</Badge>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      )}
    </div>
  );
}

function SegmentForm(props: { segment?: Segment; onDone: () => void }) {
  const { ws } = useSession();
  const dir = useDirectory();
  const s = props.segment;
  const [name, setName] = useState(s?.name || '');
  const [all, setAll] = useState((s?.tags_all || []).join(', '));
  const [any, setAny] = useState((s?.tags_any || []).join(', '));
  const [listed, setListed] = useState<Set<string>>(new Set(s?.chat_ids || []));
  const [find, setFind] = useState('');
  const [error, setError] = useState<string | null>(null);
  const split = (v: string) =>
    v
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean);
  const p = s ? `seg-${s.id}` : 'seg-new';
  const shown = dir.chats.filter(
    (c) => !c.erased && (!find || c.title.toLowerCase().includes(find.toLowerCase()) || String(c.telegram_chat_id).includes(find)),
  );
  return (
    <form
      class="card stack"
      aria-labelledby={`${p}-h`}
      onSubmit={async (e) => {
        e.preventDefault();
        setError(null);
        try {
          const body = { name, tags_all: split(all), tags_any: split(any), chat_ids: [...listed] };
          await api(`/v1/workspaces/${ws.id}/segments${s ? `/${s.id}` : ''}`, { method: s ? 'PUT' : 'POST', body });
          notify(s ? 'Segment saved.' : 'Segment created.');
          props.onDone();
        } catch (err) {
          setError(messageOf(err));
        }
      }}
    >
      <h3 id={`${p}-h`} style={{ margin: 0 }}>
        {s ? `Edit ${s.name}` : 'New segment'}
      </h3>
      <p class="muted small">A segment selects the chats it lists, plus those whose tags match (all of the first list, and one of the second).</p>
      <ErrorNote error={error} title="Not saved:" />
      <div class="row">
        <label>
          Name
          <input required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Has all these tags
          <input value={all} placeholder="berlin, vip" onInput={(e) => setAll(e.currentTarget.value)} />
        </label>
        <label>
          Has any of these tags
          <input value={any} onInput={(e) => setAny(e.currentTarget.value)} />
        </label>
      </div>
      <fieldset>
        <legend>Listed chats ({listed.size})</legend>
        <label>
          Find a chat to list
          <input type="search" value={find} onInput={(e) => setFind(e.currentTarget.value)} />
        </label>
        <div class="pick-list" role="group" aria-label="Chats the segment lists">
          {shown.slice(0, 200).map((c) => (
            <label key={c.id}>
              <input
                type="checkbox"
                checked={listed.has(c.id)}
                onChange={() => {
                  const next = new Set(listed);
                  if (next.has(c.id)) next.delete(c.id);
                  else next.add(c.id);
                  setListed(next);
                }}
              />
              {c.title || c.telegram_chat_id}
              <span class="muted small">{c.contact ? 'contact' : c.type || 'chat'}</span>
            </label>
          ))}
          {shown.length > 200 && <p class="muted small">{shown.length - 200} more: narrow the search.</p>}
        </div>
      </fieldset>
      <div class="row">
        <button type="submit" class="primary">
          {s ? 'Save segment' : 'Create segment'}
        </button>
        {s && (
          <button type="button" onClick={props.onDone}>
            Cancel
          </button>
        )}
      </div>
    </form>
  );
}

function Segments() {
  const { ws, can } = useSession();
  const dir = useDirectory();
  const [editing, setEditing] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const done = () => {
    setEditing(null);
    dir.reload();
  };
  return (
    <div class="stack">
      <ErrorNote error={error} />
      {dir.segments.length === 0 ? (
        <Empty>No segments yet.</Empty>
      ) : (
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Segments</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Selects</th>
                <th scope="col" class="num">
                  Members
                </th>
                <th scope="col" class="num">
                  Reachable
                </th>
                {can('configure') && <th scope="col">Actions</th>}
              </tr>
            </thead>
            <tbody>
              {dir.segments.map((s) => (
                <tr key={s.id}>
                  <td>{s.name}</td>
                  <td>
                    {[
                      s.tags_all.length ? `all of ${s.tags_all.join(', ')}` : '',
                      s.tags_any.length ? `any of ${s.tags_any.join(', ')}` : '',
                      s.chat_ids.length ? plural(s.chat_ids.length, 'listed chat') : '',
                      s.audience_rules ? rulesWords(s.audience_rules) : '',
                    ]
                      .filter(Boolean)
                      .join('; ')}
                  </td>
                  <td class="num">{s.members}</td>
                  <td class="num">{s.reachable}</td>
                  {can('configure') && (
                    <td>
                      <button type="button" class="small" onClick={() => setEditing(s.id)}>
                        Edit<span class="sr-only"> {s.name}</span>
                      </button>{' '}
                      <button
                        type="button"
                        class="small danger"
                        onClick={async () => {
                          if (!window.confirm(`Delete the segment ${s.name}? Posts already planned keep their chats.`)) return;
                          try {
                            await api(`/v1/workspaces/${ws.id}/segments/${s.id}`, { method: 'DELETE' });
                            done();
                          } catch (e) {
                            setError(messageOf(e));
                          }
                        }}
                      >
                        Delete<span class="sr-only"> {s.name}</span>
                      </button>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {can('configure') &&
        (editing ? (
          <>
            <SegmentForm key={editing} segment={dir.segments.find((s) => s.id === editing)} onDone={done} />
            <AudienceRulesForm
              id={`seg-rules-${editing}`}
              title="Quiet hours and caps of the segment"
              intro="For its members reached through it that have no rules of their own (a chat’s own rules win; the workspace’s apply otherwise)."
              rules={dir.segments.find((s) => s.id === editing)?.audience_rules}
              save={async (body) => {
                await api(`/v1/workspaces/${ws.id}/segments/${editing}/audience-rules`, { method: 'PUT', body });
                dir.reload();
              }}
            />
          </>
        ) : (
          <SegmentForm key="new" onDone={done} />
        ))}
    </div>
  );
}

function OptOuts() {
  const dir = useDirectory();
  const list = dir.chats.filter((c) => c.opted_out);
  if (!list.length) return <Empty>Nobody has opted out.</Empty>;
  return (
    <div class="table-wrap">
      <table>
        <caption class="sr-only">Contacts who opted out</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Telegram id</th>
            <th scope="col">What it means</th>
          </tr>
        </thead>
        <tbody>
          {list.map((c) => (
            <tr key={c.id}>
              <td>{c.title}</td>
              <td class="mono">{c.telegram_chat_id}</td>
              <td>Nothing is planned or sent to them. Only their own /start to the bot subscribes them again.</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export default function Audience() {
  const { ws } = useSession();
  const dir = useDirectory();
  const loc = useLocation();
  const tab = (loc.query.get('tab') as (typeof TABS)[number][0]) || 'contacts';
  useLive(ws.id, dir.reload, (c) => c.stream === 'chat' || c.stream === 'segment');
  return (
    <section>
      <PageTitle title="Audience" />
      <div class="tabs" role="tablist" aria-label="Audience">
        {TABS.map(([k, label]) => (
          <button
            key={k}
            type="button"
            role="tab"
            id={`tab-${k}`}
            aria-selected={tab === k}
            aria-controls="audience-panel"
            onClick={() => setQuery({ tab: k })}
          >
            {label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id="audience-panel" aria-labelledby={`tab-${tab}`}>
        {tab === 'contacts' && <Contacts />}
        {tab === 'import' && <Import />}
        {tab === 'segments' && <Segments />}
        {tab === 'optouts' && <OptOuts />}
      </div>
    </section>
  );
}
