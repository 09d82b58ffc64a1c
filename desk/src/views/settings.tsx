// Settings (admins): the workspace's bots, chats and people, so a new installation gets going
// without curl: register a bot, connect a chat or a contact on a lawful basis, add a person
// with a password and give them a role.

import { useState } from 'preact/hooks';
import { api, messageOf } from '../lib/api';
import { useDirectory } from '../lib/directory';
import { useLoad } from '../lib/hooks';
import { useSession } from '../lib/session';
import type { Role, User } from '../lib/types';
import { ErrorNote, PageTitle, notify } from '../lib/ui';

const ROLES: Role[] = ['viewer', 'author', 'approver', 'auditor', 'admin'];

function Form(props: { title: string; submit: () => Promise<string>; children: preact.ComponentChildren; label: string }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const id = `form-${props.title.replace(/\W+/g, '-').toLowerCase()}`;
  return (
    <form
      class="card stack"
      aria-labelledby={id}
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError(null);
        try {
          notify(await props.submit());
        } catch (err) {
          setError(messageOf(err));
        } finally {
          setBusy(false);
        }
      }}
    >
      <h2 id={id} style={{ marginTop: 0 }}>
        {props.title}
      </h2>
      <ErrorNote error={error} />
      {props.children}
      <div>
        <button class="primary" type="submit" disabled={busy}>
          {props.label}
        </button>
      </div>
    </form>
  );
}

export default function Settings() {
  const { ws, can, me } = useSession();
  const dir = useDirectory();
  const base = `/v1/workspaces/${ws.id}`;
  const [bot, setBot] = useState({ name: '', token: '' });
  const [chat, setChat] = useState({ bot_id: '', telegram_chat_id: '', title: '', lawful_basis: '', source: '' });
  const [person, setPerson] = useState({ login: '', name: '', password: '', role: 'author' as Role });
  const [grant, setGrant] = useState({ user: '', role: 'author' as Role });
  const users = useLoad(
    (signal) => (me.user.instance_admin ? api<{ users: User[] } | User[]>('/v1/users', { signal }) : Promise.resolve([] as User[])),
    [me.user.id],
  );
  const userList: User[] = Array.isArray(users.data) ? users.data : users.data?.users || [];
  if (!can('configure')) {
    return (
      <section>
        <PageTitle title="Settings" />
        <p class="note note-info">Settings are for admins; your role is {ws.role}.</p>
      </section>
    );
  }
  const chatBot = chat.bot_id || dir.bots[0]?.id || '';
  return (
    <section>
      <PageTitle title="Settings" />
      <div class="ops-grid">
        <Form
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
        </Form>

        <Form
          title="Connect a chat or contact"
          label="Connect"
          submit={async () => {
            const id = Number(chat.telegram_chat_id);
            const body: Record<string, unknown> = { bot_id: chatBot, telegram_chat_id: id, title: chat.title };
            if (chat.lawful_basis) {
              body.lawful_basis = chat.lawful_basis;
              body.source = chat.source || 'desk';
            }
            await api(`${base}/chats`, { method: 'POST', body });
            setChat({ ...chat, telegram_chat_id: '', title: '' });
            dir.reload();
            return `${chat.title} connected.`;
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
            Telegram whether the bot may post there.
          </p>
        </Form>

        {me.user.instance_admin && (
          <Form
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
          </Form>
        )}

        <Form
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
        </Form>
      </div>
    </section>
  );
}
