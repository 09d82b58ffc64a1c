// A chat's or contact's page (admins change it here): its lawful basis, tags, quiet hours and
// caps, hourly cap, who must approve posts to it, and erasing a contact. Everyone may read it.

import { useEffect, useState } from 'preact/hooks';
import { api, messageOf } from '../lib/api';
import { useDirectory } from '../lib/directory';
import { AudienceRulesForm, Confirm, SaveForm, rulesWords, splitList } from '../lib/forms';
import { fromLocalInput, toLocalInput, when } from '../lib/format';
import { useLoad } from '../lib/hooks';
import { useLive } from '../lib/live';
import { Link } from '../lib/router';
import { useSession } from '../lib/session';
import type { Chat, Role } from '../lib/types';
import { ErrorNote, Loading, PageTitle, chatStatus, notify } from '../lib/ui';

const ROLES: Role[] = ['viewer', 'author', 'approver', 'auditor', 'admin'];

interface ChatPage extends Chat {
  waiting?: { until: string; reason: string } | null;
}

interface PolicyStage {
  name: string;
  roles: string[];
  users: string[];
  rule: 'any' | 'all';
}

function Policy(props: { chatId: string }) {
  const { ws, can } = useSession();
  const dir = useDirectory();
  const base = `/v1/workspaces/${ws.id}/chats/${props.chatId}/approval-policy`;
  const loaded = useLoad((signal) => api<{ stages: PolicyStage[]; standard: boolean }>(base, { signal }), [base]);
  const [stages, setStages] = useState<PolicyStage[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (loaded.data) setStages(loaded.data.stages.map((s) => ({ ...s, roles: s.roles || [], users: s.users || [], rule: s.rule || 'any' })));
  }, [loaded.data]);
  if (!stages) return <Loading what="the approval policy" />;
  const edit = (i: number, patch: Partial<PolicyStage>) => setStages(stages.map((s, j) => (j === i ? { ...s, ...patch } : s)));
  const flip = (list: string[], v: string) => (list.includes(v) ? list.filter((x) => x !== v) : [...list, v]);
  async function save(body: { stages: PolicyStage[] | null }) {
    setError(null);
    try {
      await api(base, { method: 'PUT', body });
      notify(body.stages ? 'Approval policy saved: posts planned from now on follow it.' : 'Back to the standard review.');
      loaded.reload();
    } catch (e) {
      setError(messageOf(e));
    }
  }
  const admin = can('configure');
  return (
    <section class="card stack" aria-labelledby="policy-h">
      <h2 id="policy-h" style={{ marginTop: 0 }}>
        Who approves posts to it
      </h2>
      <p class="muted small">
        {loaded.data?.standard ? 'The standard review: one approval by an approver or an admin. ' : 'A policy of its own. '}
        Posts already planned keep the stages they had.
      </p>
      <ErrorNote error={error} title="Not saved:" />
      <ol class="stages">
        {stages.map((s, i) => (
          <li key={i} class="stage">
            {admin ? (
              <fieldset class="stack">
                <legend>Stage {i + 1}</legend>
                <label>
                  Name
                  <input value={s.name} required onInput={(e) => edit(i, { name: e.currentTarget.value })} />
                </label>
                <div role="group" aria-label={`Roles that may approve at stage ${i + 1}`} class="row">
                  {ROLES.map((r) => (
                    <label key={r} class="check">
                      <input type="checkbox" checked={s.roles.includes(r)} onChange={() => edit(i, { roles: flip(s.roles, r) })} /> any {r}
                    </label>
                  ))}
                </div>
                <div role="group" aria-label={`People who may approve at stage ${i + 1}`} class="row">
                  {dir.members.map((m) => (
                    <label key={m.user_id} class="check">
                      <input type="checkbox" checked={s.users.includes(m.user_id)} onChange={() => edit(i, { users: flip(s.users, m.user_id) })} />{' '}
                      {m.display_name || m.login}
                    </label>
                  ))}
                </div>
                <label>
                  Rule
                  <select value={s.rule} onChange={(e) => edit(i, { rule: e.currentTarget.value as 'any' | 'all' })}>
                    <option value="any">one approval by anyone it names</option>
                    <option value="all">an approval by every person it names</option>
                  </select>
                </label>
                {stages.length > 1 && (
                  <div>
                    <button type="button" class="small" onClick={() => setStages(stages.filter((_, j) => j !== i))}>
                      Remove stage {i + 1}
                    </button>
                  </div>
                )}
              </fieldset>
            ) : (
              <span>
                <strong>{s.name}</strong>: {[...s.roles.map((r) => `any ${r}`), ...s.users.map((u) => dir.members.find((m) => m.user_id === u)?.display_name || u)].join(', ')} ({s.rule})
              </span>
            )}
          </li>
        ))}
      </ol>
      {admin && (
        <div class="row">
          <button type="button" onClick={() => setStages([...stages, { name: `Stage ${stages.length + 1}`, roles: ['approver'], users: [], rule: 'any' }])}>
            Add a stage
          </button>
          <button type="button" class="primary" onClick={() => save({ stages })}>
            Save policy
          </button>
          {!loaded.data?.standard && (
            <button type="button" onClick={() => save({ stages: null })}>
              Back to the standard review
            </button>
          )}
        </div>
      )}
    </section>
  );
}

export default function ChatView(props: { params: Record<string, string> }) {
  const { ws, can } = useSession();
  const dir = useDirectory();
  const id = props.params.id;
  const base = `/v1/workspaces/${ws.id}/chats/${id}`;
  const chat = useLoad((signal) => api<ChatPage>(base, { signal }), [base]);
  const reload = () => {
    chat.reload();
    dir.reload();
  };
  useLive(ws.id, chat.reload, (c) => c.id === id || c.stream === 'delivery');
  const c = chat.data;
  const [basis, setBasis] = useState({ lawful_basis: 'consent', source: '', given_at: '' });
  const [tags, setTags] = useState('');
  const [cap, setCap] = useState('');
  const [erasing, setErasing] = useState(false);
  // Each form follows its own field as stored, so saving one form (and the reload after it)
  // never overwrites what is being typed in another.
  useEffect(() => {
    if (!c) return;
    setBasis({
      lawful_basis: c.lawful_basis?.basis || 'consent',
      source: c.lawful_basis?.source || '',
      given_at: c.lawful_basis ? toLocalInput(new Date(c.lawful_basis.given_at)) : '',
    });
  }, [c && JSON.stringify(c.lawful_basis)]);
  useEffect(() => {
    if (c) setTags(c.tags.join(', '));
  }, [c && c.tags.join(',')]);
  useEffect(() => {
    if (c) setCap(c.hourly_cap != null ? String(c.hourly_cap) : '');
  }, [c && c.hourly_cap]);
  if (chat.error && !c) return <ErrorNote error={chat.error} />;
  if (!c) return <Loading what="the chat" />;
  const admin = can('configure');
  const name = c.title || String(c.telegram_chat_id);
  return (
    <section>
      <PageTitle title={c.erased ? 'Erased contact' : name}>{chatStatus(c)}</PageTitle>
      <p>
        <Link href={`/w/${ws.id}/audience`}>All contacts and chats</Link> ·{' '}
        {c.contact ? 'A contact (a person)' : `A ${c.type || 'chat'}`}, Telegram id <span class="mono">{c.telegram_chat_id}</span>, through{' '}
        {dir.bot.get(c.bot_id || '')?.name || 'its bot'}.
      </p>
      {c.erased && (
        <p class="note note-info">
          This contact was erased: their name is gone for good, nothing is sent to them, and the history shows them as erased.
        </p>
      )}
      {c.waiting && (
        <p class="note note-warn" role="status">
          Deliveries to it are held until {when(c.waiting.until)}: {c.waiting.reason}.
        </p>
      )}
      <dl class="facts">
        <dt>Lawful basis</dt>
        <dd>
          {!c.contact
            ? 'not needed (a group or channel)'
            : c.lawful_basis
              ? `${c.lawful_basis.basis.replace(/_/g, ' ')}, from ${c.lawful_basis.source}, given ${when(c.lawful_basis.given_at)}`
              : 'none recorded: nothing can be sent to them'}
        </dd>
        <dt>Tags</dt>
        <dd>{c.tags.join(', ') || 'none'}</dd>
        <dt>Quiet hours and caps</dt>
        <dd>{c.audience_rules ? rulesWords(c.audience_rules) : 'the workspace’s (Settings → Rules)'}</dd>
      </dl>
      {!admin ? (
        <>
          <p class="note note-info">Admins change a chat’s basis, tags, rules and approvals; your role is {ws.role}.</p>
          <Policy chatId={id} />
        </>
      ) : c.erased ? null : (
        <div class="ops-grid">
          {c.contact && (
            <SaveForm
              id="basis"
              errorTitle="Not saved:"
              title="Lawful basis"
              label="Record the basis"
              submit={async () => {
                const body: Record<string, unknown> = { lawful_basis: basis.lawful_basis, source: basis.source.trim() || 'desk' };
                if (basis.given_at) body.given_at = fromLocalInput(basis.given_at);
                await api(`${base}/lawful-basis`, { method: 'PUT', body });
                reload();
                return 'Lawful basis recorded.';
              }}
            >
              <label>
                Basis
                <select value={basis.lawful_basis} onChange={(e) => setBasis({ ...basis, lawful_basis: e.currentTarget.value })}>
                  <option value="consent">Consent</option>
                  <option value="legitimate_interest">Legitimate interest</option>
                </select>
              </label>
              <label>
                Where it comes from
                <input value={basis.source} placeholder="newsletter form" onInput={(e) => setBasis({ ...basis, source: e.currentTarget.value })} />
              </label>
              <label>
                Given at (your zone; empty: now)
                <input type="datetime-local" value={basis.given_at} onInput={(e) => setBasis({ ...basis, given_at: e.currentTarget.value })} />
              </label>
            </SaveForm>
          )}
          <SaveForm
            id="tags"
            errorTitle="Not saved:"
            title="Tags"
            label="Save tags"
            submit={async () => {
              await api(`${base}/tags`, { method: 'PUT', body: { tags: splitList(tags, true) } });
              reload();
              return 'Tags saved; segments select by them.';
            }}
          >
            <label>
              Tags, separated by commas
              <input value={tags} placeholder="berlin, vip" onInput={(e) => setTags(e.currentTarget.value)} />
            </label>
          </SaveForm>
          <AudienceRulesForm
            id="chat-rules"
            title="Quiet hours and caps"
            intro="Its own rules replace the workspace’s for this chat."
            rules={c.audience_rules}
            save={async (body) => {
              await api(`${base}/audience-rules`, { method: 'PUT', body });
              reload();
            }}
          />
          <SaveForm
            id="cap"
            errorTitle="Not saved:"
            title="Hourly cap"
            label="Save the cap"
            submit={async () => {
              await api(`${base}/limits`, { method: 'PUT', body: { hourly_cap: cap.trim() ? Number(cap) : null } });
              reload();
              return 'Hourly cap saved.';
            }}
          >
            <label>
              At most this many messages an hour (empty: Telegram’s limit)
              <input type="number" min={1} inputMode="numeric" value={cap} onInput={(e) => setCap(e.currentTarget.value)} />
            </label>
          </SaveForm>
        </div>
      )}
      {admin && !c.erased && <Policy chatId={id} />}
      {admin && c.contact && !c.erased && (
        <section class="card stack danger-zone" aria-labelledby="erase-h">
          <h2 id="erase-h" style={{ marginTop: 0 }}>
            Erase this contact
          </h2>
          <p class="muted small">
            For a person who asks to be forgotten: their name is destroyed for good, they are opted out, and the history keeps only
            that they were erased.
          </p>
          <div>
            <button type="button" class="danger" onClick={() => setErasing(true)}>
              Erase {name}…
            </button>
          </div>
        </section>
      )}
      {erasing && (
        <Confirm
          title={`Erase ${name}?`}
          action="Erase for good"
          onClose={() => setErasing(false)}
          onConfirm={async () => {
            await api(`${base}/erase`, { method: 'POST' });
            notify(`${name} was erased.`);
            reload();
          }}
        >
          <p>
            <strong>This cannot be undone.</strong> Their name is destroyed, nothing more is sent to them, and only their own /start
            to the bot would bring them back, as a new contact.
          </p>
        </Confirm>
      )}
    </section>
  );
}
