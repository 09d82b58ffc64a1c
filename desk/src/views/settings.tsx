// Settings (admins): the workspace's bots, chats and people, so a new installation gets going
// without curl: register a bot, connect a chat or a contact on a lawful basis, add a person
// with a password and give them a role.

import { useState } from 'preact/hooks';
import { api, ApiError } from '../lib/api';
import { useDirectory } from '../lib/directory';
import { useLoad } from '../lib/hooks';
import { useSession } from '../lib/session';
import type { Role, User } from '../lib/types';
import { ErrorNote, Loading, PageTitle } from '../lib/ui';
import { AudienceRulesForm, SaveForm, splitList } from '../lib/forms';
import { setQuery, useLocation } from '../lib/router';
import type { AudienceRules } from '../lib/types';

const ROLES: Role[] = ['viewer', 'author', 'approver', 'auditor', 'admin'];

function Connections() {
  const { ws, me } = useSession();
  const dir = useDirectory();
  const base = `/v1/workspaces/${ws.id}`;
  const [bot, setBot] = useState({ name: '', token: '' });
  const [chat, setChat] = useState({ bot_id: '', telegram_chat_id: '', title: '', lawful_basis: '', source: '', type: 'channel', can_post: true, username: '' });
  const [person, setPerson] = useState({ login: '', name: '', password: '', role: 'author' as Role });
  const [grant, setGrant] = useState({ user: '', role: 'author' as Role });
  const users = useLoad(
    (signal) => (me.user.instance_admin ? api<{ users: User[] } | User[]>('/v1/users', { signal }) : Promise.resolve([] as User[])),
    [me.user.id],
  );
  const userList: User[] = Array.isArray(users.data) ? users.data : users.data?.users || [];
  const chatBot = chat.bot_id || dir.bots[0]?.id || '';
  return (
    <>
      <div class="ops-grid">
        <SaveForm
          title="Register a bot"
          label="Register"
          submit={async () => {
            await api(`${base}/bots`, { method: 'POST', body: bot });
            setBot({ name: '', token: '' });
            dir.reload();
            return 'Bot registered; its token is stored encrypted and never shown again.';
          }}
        >
          <label>
            Name
            <input required value={bot.name} onInput={(e) => setBot({ ...bot, name: e.currentTarget.value })} />
          </label>
          <label>
            Token from BotFather
            <input required type="password" autoComplete="off" value={bot.token} onInput={(e) => setBot({ ...bot, token: e.currentTarget.value })} />
          </label>
          <p class="muted small">Bots: {dir.bots.map((b) => b.name).join(', ') || 'none yet'}.</p>
        </SaveForm>

        <SaveForm
          title="Connect a chat or contact"
          label="Connect"
          submit={async () => {
            const id = Number(chat.telegram_chat_id);
            if (!Number.isSafeInteger(id) || id === 0) throw new Error('The Telegram chat id is a whole number: negative for a group or channel, positive for a person.');
            let told = '';
            if (id < 0) {
              // In sandbox mode the emulator must know the group or channel before Herald asks
              // Telegram about it; against a real Bot API there is nothing to tell (404 not_sandbox).
              try {
                await api(`${base}/sandbox/chats`, {
                  method: 'POST',
                  body: {
                    chat_id: id,
                    type: chat.type,
                    title: chat.title,
                    can_post_messages: chat.can_post,
                    ...(chat.username.trim() ? { username: chat.username.trim().replace(/^@/, '') } : {}),
                  },
                });
                told = ' (the sandbox knows it now)';
              } catch (e) {
                if (!(e instanceof ApiError && e.code === 'not_sandbox')) throw e;
              }
            }
            const body: Record<string, unknown> = { bot_id: chatBot, telegram_chat_id: id, title: chat.title };
            if (chat.lawful_basis) {
              body.lawful_basis = chat.lawful_basis;
              body.source = chat.source || 'desk';
            }
            await api(`${base}/chats`, { method: 'POST', body });
            setChat({ ...chat, telegram_chat_id: '', title: '', username: '' });
            dir.reload();
            return `${chat.title} connected${told}.`;
          }}
        >
          <label>
            Bot
            <select value={chatBot} onChange={(e) => setChat({ ...chat, bot_id: e.currentTarget.value })}>
              {dir.bots.map((b) => (
                <option key={b.id} value={b.id}>
                  {b.name}
                </option>
              ))}
            </select>
          </label>
          <label>
            Telegram chat id
            <input required inputMode="numeric" value={chat.telegram_chat_id} onInput={(e) => setChat({ ...chat, telegram_chat_id: e.currentTarget.value })} />
          </label>
          <label>
            Title
            <input required value={chat.title} onInput={(e) => setChat({ ...chat, title: e.currentTarget.value })} />
          </label>
          {Number(chat.telegram_chat_id) < 0 && (
            <>
              <label>
                Kind
                <select value={chat.type} onChange={(e) => setChat({ ...chat, type: e.currentTarget.value })}>
                  <option value="channel">Channel</option>
                  <option value="supergroup">Supergroup</option>
                  <option value="group">Group</option>
                </select>
              </label>
              <label>
                Public @username (sandbox; empty: a private one)
                <input value={chat.username} placeholder="acme_news" onInput={(e) => setChat({ ...chat, username: e.currentTarget.value })} />
              </label>
              <label class="check">
                <input type="checkbox" checked={chat.can_post} onChange={(e) => setChat({ ...chat, can_post: e.currentTarget.checked })} /> The bot may
                post there (sandbox)
              </label>
            </>
          )}
          <label>
            Lawful basis (contacts only)
            <select value={chat.lawful_basis} onChange={(e) => setChat({ ...chat, lawful_basis: e.currentTarget.value })}>
              <option value="">None (a group or channel)</option>
              <option value="consent">Consent</option>
              <option value="legitimate_interest">Legitimate interest</option>
            </select>
          </label>
          <label>
            Where it comes from
            <input value={chat.source} placeholder="newsletter form" onInput={(e) => setChat({ ...chat, source: e.currentTarget.value })} />
          </label>
          <p class="muted small">
            A positive id is a person (a contact: give a lawful basis); a group or channel is negative and Herald first asks
            Telegram whether the bot may post there. In the sandbox, the desk first tells the emulator about it.
          </p>
        </SaveForm>

        {me.user.instance_admin && (
          <SaveForm
            title="Add a person"
            label="Add"
            submit={async () => {
              const made = await api<{ user?: User; id?: string }>('/v1/users', {
                method: 'POST',
                body: { login: person.login, name: person.name, password: person.password },
              });
              const id = made.user?.id || made.id;
              await api(`${base}/members/${id}`, { method: 'PUT', body: { role: person.role } });
              setPerson({ login: '', name: '', password: '', role: person.role });
              users.reload();
              dir.reload();
              return `${person.name || person.login} can sign in now, as ${person.role}.`;
            }}
          >
            <label>
              Login
              <input required autoComplete="off" value={person.login} onInput={(e) => setPerson({ ...person, login: e.currentTarget.value })} />
            </label>
            <label>
              Name
              <input required value={person.name} onInput={(e) => setPerson({ ...person, name: e.currentTarget.value })} />
            </label>
            <label>
              Password (at least 12 characters)
              <input
                required
                type="password"
                autoComplete="new-password"
                minLength={12}
                value={person.password}
                onInput={(e) => setPerson({ ...person, password: e.currentTarget.value })}
              />
            </label>
            <label>
              Role here
              <select value={person.role} onChange={(e) => setPerson({ ...person, role: e.currentTarget.value as Role })}>
                {ROLES.map((r) => (
                  <option key={r}>{r}</option>
                ))}
              </select>
            </label>
          </SaveForm>
        )}

        <SaveForm
          title="Give a role"
          label="Give the role"
          submit={async () => {
            await api(`${base}/members/${grant.user}`, { method: 'PUT', body: { role: grant.role } });
            dir.reload();
            return 'Role given; it is recorded in the audit.';
          }}
        >
          <label>
            Person
            <select required value={grant.user} onChange={(e) => setGrant({ ...grant, user: e.currentTarget.value })}>
              <option value="">Choose…</option>
              {(userList.length ? userList.map((u) => [u.id, u.display_name || u.login]) : dir.members.map((m) => [m.user_id, m.display_name || m.login])).map(
                ([id, n]) => (
                  <option key={id} value={id}>
                    {n}
                  </option>
                ),
              )}
            </select>
          </label>
          <label>
            Role
            <select value={grant.role} onChange={(e) => setGrant({ ...grant, role: e.currentTarget.value as Role })}>
              {ROLES.map((r) => (
                <option key={r}>{r}</option>
              ))}
            </select>
          </label>
          <ul class="list-plain small">
            {dir.members.map((m) => (
              <li key={m.user_id}>
                {m.display_name || m.login}: {m.role}
              </li>
            ))}
          </ul>
        </SaveForm>
      </div>
    </>
  );
}

type Severity = 'block' | 'warn' | 'info';
interface RiskRules {
  link_domains?: { allow?: string[]; deny?: string[] };
  forbidden_words?: { word: string; severity: Severity }[];
  max_length?: number | null;
}
interface WorkspaceInfo {
  id: string;
  name: string;
  audience_rules: AudienceRules | null;
  retention?: { audit_days: number };
  privacy?: { seal_post_texts: boolean };
  rules?: RiskRules;
}

function RiskRulesForm(props: { rules: RiskRules; onSaved: () => void }) {
  const { ws } = useSession();
  const r = props.rules;
  const [allow, setAllow] = useState((r.link_domains?.allow || []).join('\n'));
  const [deny, setDeny] = useState((r.link_domains?.deny || []).join('\n'));
  const [words, setWords] = useState<{ word: string; severity: Severity }[]>(r.forbidden_words || []);
  const [max, setMax] = useState(r.max_length != null ? String(r.max_length) : '');
  const setWord = (i: number, patch: Partial<{ word: string; severity: Severity }>) =>
    setWords(words.map((w, j) => (j === i ? { ...w, ...patch } : w)));
  return (
    <SaveForm
      wide
      title="Risk rules for posts"
      label="Save the rules"
      submit={async () => {
        const body: RiskRules = {
          link_domains: { allow: splitList(allow, true), deny: splitList(deny, true) },
          forbidden_words: words.filter((w) => w.word.trim()).map((w) => ({ word: w.word.trim(), severity: w.severity })),
        };
        if (max.trim()) body.max_length = Number(max);
        await api(`/v1/workspaces/${ws.id}/rules`, { method: 'PUT', body });
        props.onSaved();
        return 'Rules saved: the editor and approvals check them from now on.';
      }}
    >
      <p class="muted small">
        The editor shows each finding as the author types; a finding that blocks stops the approval until the post is fixed.
      </p>
      <div class="row">
        <label>
          Links allowed only to (one domain a line; empty: any)
          <textarea rows={3} value={allow} placeholder="acme.example" onInput={(e) => setAllow(e.currentTarget.value)} />
        </label>
        <label>
          Links refused to (one domain a line)
          <textarea rows={3} value={deny} placeholder="evil.example" onInput={(e) => setDeny(e.currentTarget.value)} />
        </label>
      </div>
      <fieldset>
        <legend>Forbidden words</legend>
        {words.length === 0 ? (
          <p class="muted small">None yet.</p>
        ) : (
          <table class="words">
            <thead>
              <tr>
                <th scope="col">Word or phrase</th>
                <th scope="col">When found</th>
                <th scope="col">
                  <span class="sr-only">Remove</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {words.map((w, i) => (
                <tr key={i}>
                  <td>
                    <input aria-label={`Word or phrase ${i + 1}`} value={w.word} onInput={(e) => setWord(i, { word: e.currentTarget.value })} />
                  </td>
                  <td>
                    <select aria-label={`Severity ${i + 1}`} value={w.severity} onChange={(e) => setWord(i, { severity: e.currentTarget.value as Severity })}>
                      <option value="block">blocks approval</option>
                      <option value="warn">warns</option>
                      <option value="info">notes</option>
                    </select>
                  </td>
                  <td>
                    <button type="button" class="small" onClick={() => setWords(words.filter((_, j) => j !== i))}>
                      Remove<span class="sr-only"> {w.word || `word ${i + 1}`}</span>
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <button type="button" class="small" onClick={() => setWords([...words, { word: '', severity: 'warn' }])}>
          Add a word
        </button>
      </fieldset>
      <label>
        Warn above this length (Telegram’s units; empty: only Telegram’s 4,096)
        <input type="number" min={1} max={4096} inputMode="numeric" value={max} onInput={(e) => setMax(e.currentTarget.value)} />
      </label>
    </SaveForm>
  );
}

function RulesTab() {
  const { ws } = useSession();
  const base = `/v1/workspaces/${ws.id}`;
  const info = useLoad(
    async (signal) => {
      const [w, r] = await Promise.all([
        api<WorkspaceInfo>(base, { signal }),
        api<{ rules: RiskRules }>(`${base}/rules`, { signal }),
      ]);
      return { ...w, rules: r.rules || {} };
    },
    [ws.id],
  );
  const [days, setDays] = useState<string | null>(null);
  const [seal, setSeal] = useState<boolean | null>(null);
  if (info.error && !info.data) return <ErrorNote error={info.error} />;
  if (!info.data) return <Loading what="the rules" />;
  const d = info.data;
  const shownDays = days ?? String(d.retention?.audit_days ?? 365);
  return (
    <div class="ops-grid">
      <RiskRulesForm key={JSON.stringify(d.rules)} rules={d.rules || {}} onSaved={info.reload} />
      <AudienceRulesForm
        id="ws-rules"
        title="Quiet hours and caps for every chat"
        intro="For each chat without rules of its own (a chat’s page sets its own). Times are read in the zone you choose."
        rules={d.audience_rules}
        save={async (body) => {
          await api(`${base}/audience-rules`, { method: 'PUT', body });
          info.reload();
        }}
      />
      <SaveForm
        title="Post texts"
        label="Save"
        submit={async () => {
          const sealed = !!(seal ?? d.privacy?.seal_post_texts);
          await api(`${base}/privacy`, { method: 'PUT', body: { seal_post_texts: sealed } });
          setSeal(null);
          info.reload();
          return sealed
            ? 'Posts planned from now on keep their texts sealed: an admin can erase them from the history.'
            : 'Posts planned from now on keep their texts as they are.';
        }}
      >
        <label class="check">
          <input
            type="checkbox"
            checked={!!(seal ?? d.privacy?.seal_post_texts)}
            onChange={(e) => setSeal(e.currentTarget.checked)}
          />{' '}
          Seal the texts of new posts, so that a post’s text, edits and comments can be erased later
        </label>
        <p class="muted small">Posts planned before keep their texts as they are.</p>
      </SaveForm>
      <SaveForm
        title="Audit retention"
        label="Save retention"
        submit={async () => {
          const n = shownDays.trim() ? Number(shownDays) : null;
          const r = await api<{ audit_days: number }>(`${base}/retention`, { method: 'PUT', body: { audit_days: n } });
          setDays(null);
          info.reload();
          return `The audit keeps ${r.audit_days} days; older entries are removed within the hour.`;
        }}
      >
        <label>
          Keep the audit for this many days (at most 12 months; empty: 12 months)
          <input type="number" min={1} inputMode="numeric" value={shownDays} onInput={(e) => setDays(e.currentTarget.value)} />
        </label>
      </SaveForm>
    </div>
  );
}

const TABS = [
  ['connections', 'Bots, chats and people'],
  ['rules', 'Rules'],
] as const;

export default function Settings() {
  const { ws, can } = useSession();
  const loc = useLocation();
  const tab = loc.query.get('tab') === 'rules' ? 'rules' : 'connections';
  if (!can('configure')) {
    return (
      <section>
        <PageTitle title="Settings" />
        <p class="note note-info">Settings are for admins; your role is {ws.role}.</p>
      </section>
    );
  }
  return (
    <section>
      <PageTitle title="Settings" />
      <div class="tabs" role="tablist" aria-label="Settings">
        {TABS.map(([k, label]) => (
          <button
            key={k}
            type="button"
            role="tab"
            id={`tab-${k}`}
            aria-selected={tab === k}
            aria-controls="settings-panel"
            onClick={() => setQuery({ tab: k === 'connections' ? null : k })}
          >
            {label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id="settings-panel" aria-labelledby={`tab-${tab}`}>
        {tab === 'connections' ? <Connections /> : <RulesTab />}
      </div>
    </section>
  );
}
