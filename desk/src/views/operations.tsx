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
import type { Chat } from '../lib/types';
import { Badge, Empty, ErrorNote, Loading, PageTitle } from '../lib/ui';

interface OpsDelivery {
  post_id: string;
  chat_id: string;
  reason?: string | null;
  text_preview?: string;
  since?: string;
}

interface Ops {
  in_doubt?: OpsDelivery[];
  in_doubt_advice?: string;
  failed?: OpsDelivery[];
  failed_advice?: string;
  rate_limited_last_hour?: number;
  forbidden_last_hour?: number;
  paused_bots?: { bot_id: string; name?: string; reason?: string }[];
  paused_advice?: string;
  blocked_chats?: Chat[];
  blocked_advice?: string;
  expired_approvals?: { post_id: string; publish_at?: string; text_preview?: string }[];
  expired_advice?: string;
  waiting_approval?: number;
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

function DeliveryList(props: {
  list: OpsDelivery[] | undefined;
  post: (id: string) => preact.JSX.Element;
  dir: ReturnType<typeof useDirectory>;
  reason?: boolean;
}) {
  return (
    <ul class="list-plain">
      {(props.list || []).map((d) => (
        <li key={`${d.post_id}${d.chat_id}`} style={{ marginBottom: '0.3rem' }}>
          {props.post(d.post_id)} to <strong>{chatTitle(props.dir, d.chat_id)}</strong>
          {d.text_preview ? ` “${d.text_preview}”` : ''}
          {props.reason && d.reason ? `: ${d.reason}` : ''}
          {d.since ? <span class="muted small"> ({when(d.since)})</span> : null}
        </li>
      ))}
    </ul>
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
  const post = (id: string) => <Link href={`/w/${ws.id}/posts/${id}`}>post …{id.slice(-8)}</Link>;
  const botName = (id: string | undefined) => (id && (dir.bot.get(id)?.name || dir.bot.get(id)?.username)) || `bot …${id?.slice(-8)}`;
  return (
    <section>
      <PageTitle title="Operations" />
      <ErrorNote error={ops.error} title="The operations summary could not be read:" />
      {ops.loading && !ops.data ? (
        <Loading />
      ) : (
        <>
          <p class="muted">
            {o.waiting_approval ? `${o.waiting_approval} post(s) wait for approval. ` : 'No post waits for approval. '}
            Telegram asked Herald to slow down {o.rate_limited_last_hour || 0} time(s) and refused {o.forbidden_last_hour || 0}{' '}
            send(s) in the last hour.
          </p>
          <div class="ops-grid">
            <Panel
              title="In doubt"
              count={o.in_doubt?.length || 0}
              what={`Telegram's answer was lost: Herald does not know whether these arrived and never resends by itself. What to do: look in the chat, then on the post's page mark it delivered or send it again.`}
            >
              <DeliveryList list={o.in_doubt} post={post} dir={dir} />
            </Panel>
            <Panel
              title="Failed"
              count={o.failed?.length || 0}
              what="Sends of the last 7 days that failed after retries, with Telegram's reason. What to do: fix the chat (the bot removed, its rights) or the text, then plan again."
            >
              <DeliveryList list={o.failed} post={post} dir={dir} reason />
            </Panel>
            <Panel
              title="Slow down (429)"
              count={o.rate_limited_last_hour || 0}
              what="Times in the last hour Telegram asked Herald to wait. Herald waits as told and paces slower. What to do: many of them mean too much is planned at once; spread the posts."
            >
              {null}
            </Panel>
            <Panel
              title="Blocked chats"
              count={o.blocked_chats?.length || 0}
              what="The bot was blocked, removed or lost its rights there; posts to these chats are refused. What to do: add the bot back with the right to post, then reconnect the chat."
            >
              <ul class="list-plain">
                {(o.blocked_chats || []).map((c) => (
                  <li key={c.id}>
                    <strong>{c.title}</strong>: {c.blocked || 'blocked'}
                  </li>
                ))}
              </ul>
            </Panel>
            <Panel
              title="Paused bots"
              count={o.paused_bots?.length || 0}
              what="A paused bot sends nothing; its queue is kept. What to do: an admin checks its token (registers a new one) and the chats that refused it."
            >
              <ul class="list-plain">
                {(o.paused_bots || []).map((b) => (
                  <li key={b.bot_id}>
                    <strong>{b.name || botName(b.bot_id)}</strong>: {b.reason || 'paused'}
                  </li>
                ))}
              </ul>
            </Panel>
            <Panel
              title="Expired approvals"
              count={o.expired_approvals?.length || 0}
              what="Not approved before their time, so they never went out late. What to do: edit the time and ask for approval again."
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
        </>
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
