// Operations: what needs a person now (deliveries in doubt, failures, 429s, blocked chats,
// paused bots, expired approvals) and the safety stats per bot and chat, in plain words with
// what to do.

import { api } from '../lib/api';
import { chatTitle, useDirectory } from '../lib/directory';
import { when } from '../lib/format';
import { useLoad } from '../lib/hooks';
import { useLive } from '../lib/live';
import { Link } from '../lib/router';
import { useSession } from '../lib/session';
import { Badge, Empty, ErrorNote, Loading, PageTitle } from '../lib/ui';

interface Ops {
  in_doubt?: { post_id: string; chat_id: string; since?: string }[];
  failed?: { post_id: string; chat_id: string; reason?: string; error?: string; at?: string }[];
  blocked_chats?: { chat_id: string; title?: string; reason?: string }[];
  paused_bots?: { bot_id?: string; id?: string; name?: string; reason?: string }[];
  rate_limited_total?: number;
  rate_limited?: { bot_id?: string; chat_id?: string; count?: number }[];
  expired_approvals?: { post_id: string; publish_at?: string; at?: string; text_preview?: string }[];
}

interface BotStats {
  bot_id: string;
  sent_last_hour: number;
  hourly_cap: number;
  can_send_now: boolean;
  next_free_slot: string | null;
  rate_limited_last_hour: number;
  forbidden_last_hour: number;
  circuit_breaker: 'open' | 'closed';
  paused_reason: string | null;
  warning: string | null;
}

interface ChatStats extends Omit<BotStats, 'bot_id' | 'paused_reason'> {
  chat_id: string;
  state?: string;
  blocked_reason?: string | null;
  telegram_limit?: string;
}

function Panel(props: { title: string; count: number; what: string; children: preact.ComponentChildren }) {
  return (
    <section class="card" aria-labelledby={`ops-${props.title}`}>
      <h2 id={`ops-${props.title}`} style={{ marginTop: 0 }}>
        {props.title} <Badge kind={props.count ? 'bad' : 'ok'}>{props.count}</Badge>
      </h2>
      <p class="muted small">{props.what}</p>
      {props.children}
    </section>
  );
}

function StatLine(props: { s: BotStats | ChatStats; label: string }) {
  const s = props.s;
  const pct = s.hourly_cap ? Math.round((100 * s.sent_last_hour) / s.hourly_cap) : 0;
  return (
    <li class="stack" style={{ padding: '0.4rem 0', borderBottom: '1px solid var(--surface-2)' }}>
      <div class="stat-row">
        <strong>{props.label}</strong>
        {s.circuit_breaker === 'open' ? (
          <Badge kind="bad">stopped</Badge>
        ) : s.can_send_now ? (
          <Badge kind="ok">can send now</Badge>
        ) : (
          <Badge kind="warn">waiting</Badge>
        )}
      </div>
      <span class="small">
        Sent {s.sent_last_hour.toLocaleString()} of {s.hourly_cap.toLocaleString()} in the last hour ({pct}%).
        {!s.can_send_now && s.next_free_slot ? ` Next free slot ${when(s.next_free_slot)}.` : ''}
        {s.rate_limited_last_hour ? ` Telegram asked to slow down ${s.rate_limited_last_hour} time(s) (429).` : ''}
        {s.forbidden_last_hour ? ` Refused ${s.forbidden_last_hour} time(s) (403).` : ''}
        {s.warning ? ` ${s.warning}` : ''}
        {'paused_reason' in s && s.paused_reason ? ` Stopped: ${s.paused_reason}. Register a new token to resume.` : ''}
        {'blocked_reason' in s && s.blocked_reason ? ` Blocked: ${s.blocked_reason}.` : ''}
      </span>
    </li>
  );
}

export default function Operations() {
  const { ws } = useSession();
  const dir = useDirectory();
  const base = `/v1/workspaces/${ws.id}`;
  const ops = useLoad((signal) => api<Ops>(`${base}/operations`, { signal }), [ws.id]);
  const groups = dir.chats.filter((c) => !c.contact).slice(0, 30);
  const stats = useLoad(
    async (signal) => {
      const bots = await Promise.all(
        dir.bots.map((b) => api<BotStats>(`${base}/bots/${b.id}/safety-stats`, { signal }).catch(() => null)),
      );
      const chats = await Promise.all(
        groups.map((c) => api<ChatStats>(`${base}/chats/${c.id}/safety-stats`, { signal }).catch(() => null)),
      );
      return { bots: bots.filter(Boolean) as BotStats[], chats: chats.filter(Boolean) as ChatStats[] };
    },
    [ws.id, dir.bots.length, groups.length],
  );
  const reload = () => {
    ops.reload();
    stats.reload();
  };
  useLive(ws.id, reload, (c) => c.stream !== 'segment');
  const o = ops.data || {};
  const post = (id: string) => <Link href={`/w/${ws.id}/posts/${id}`}>post {id.slice(0, 8)}</Link>;
  const botName = (id: string | undefined) => (id && (dir.bot.get(id)?.name || dir.bot.get(id)?.username)) || `bot ${id?.slice(0, 8)}`;
  return (
    <section>
      <PageTitle title="Operations" />
      <ErrorNote error={ops.error} title="The operations summary could not be read:" />
      {ops.loading && !ops.data ? (
        <Loading />
      ) : (
        <div class="ops-grid">
          <Panel
            title="In doubt"
            count={o.in_doubt?.length || 0}
            what="Telegram's answer was lost: Herald does not know if these arrived and never resends by itself. Look in the chat, then mark it delivered or send it again on the post's page."
          >
            <ul class="list-plain">
              {(o.in_doubt || []).map((d) => (
                <li key={`${d.post_id}${d.chat_id}`}>
                  {post(d.post_id)} to {chatTitle(dir, d.chat_id)}
                  {d.since ? `, since ${when(d.since)}` : ''}
                </li>
              ))}
            </ul>
          </Panel>
          <Panel title="Failed" count={o.failed?.length || 0} what="Sends that failed after retries, with Telegram's reason. Fix the cause (rights, a blocked bot), then plan again.">
            <ul class="list-plain">
              {(o.failed || []).map((d) => (
                <li key={`${d.post_id}${d.chat_id}`}>
                  {post(d.post_id)} to {chatTitle(dir, d.chat_id)}: {d.reason || d.error || 'no reason given'}
                  {d.at ? ` (${when(d.at)})` : ''}
                </li>
              ))}
            </ul>
          </Panel>
          <Panel
            title="Slow down (429)"
            count={o.rate_limited_total || 0}
            what="Times Telegram asked Herald to wait. Herald waits as told and paces slower; many of them mean too much is planned at once: spread the posts."
          >
            {o.rate_limited?.length ? (
              <ul class="list-plain">
                {o.rate_limited.map((r, i) => (
                  <li key={i}>
                    {r.chat_id ? chatTitle(dir, r.chat_id) : botName(r.bot_id)}: {r.count}
                  </li>
                ))}
              </ul>
            ) : null}
          </Panel>
          <Panel
            title="Blocked chats"
            count={o.blocked_chats?.length || 0}
            what="The bot was blocked, removed or lost its rights here; posts to these chats are refused. Add the bot back with the right to post, and the next check clears it."
          >
            <ul class="list-plain">
              {(o.blocked_chats || []).map((c) => (
                <li key={c.chat_id}>
                  {c.title || chatTitle(dir, c.chat_id)}: {c.reason || 'blocked'}
                </li>
              ))}
            </ul>
          </Panel>
          <Panel
            title="Paused bots"
            count={o.paused_bots?.length || 0}
            what="Telegram refused the bot's token or flooded it: its queue is kept. Register a new token (an admin) to resume."
          >
            <ul class="list-plain">
              {(o.paused_bots || []).map((b, i) => (
                <li key={i}>
                  {b.name || botName(b.bot_id || b.id)}: {b.reason || 'paused'}
                </li>
              ))}
            </ul>
          </Panel>
          <Panel
            title="Expired approvals"
            count={o.expired_approvals?.length || 0}
            what="Not approved within five minutes of their time, so they never went out late. Edit one with a new time to ask for approval again."
          >
            <ul class="list-plain">
              {(o.expired_approvals || []).map((p) => (
                <li key={p.post_id}>
                  {post(p.post_id)} {p.text_preview ? `“${p.text_preview}”` : ''} {p.publish_at ? `for ${when(p.publish_at)}` : ''}
                </li>
              ))}
            </ul>
          </Panel>
        </div>
      )}
      <h2>Safety per bot and chat</h2>
      <ErrorNote error={stats.error} />
      <div class="ops-grid">
        <section class="card" aria-labelledby="bots-h">
          <h3 id="bots-h" style={{ marginTop: 0 }}>
            Bots
          </h3>
          {stats.data?.bots.length ? (
            <ul class="list-plain">
              {stats.data.bots.map((s) => (
                <StatLine key={s.bot_id} s={s} label={botName(s.bot_id)} />
              ))}
            </ul>
          ) : (
            <Empty>No bot yet.</Empty>
          )}
        </section>
        <section class="card" aria-labelledby="chats-h">
          <h3 id="chats-h" style={{ marginTop: 0 }}>
            Groups and channels
          </h3>
          {stats.data?.chats.length ? (
            <ul class="list-plain">
              {stats.data.chats.map((s) => (
                <StatLine key={s.chat_id} s={s} label={chatTitle(dir, s.chat_id)} />
              ))}
            </ul>
          ) : (
            <Empty>No group or channel yet.</Empty>
          )}
        </section>
      </div>
    </section>
  );
}
