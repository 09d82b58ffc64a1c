// The approval queue: posts whose waiting stage admits me (GET .../posts?waiting_for=me),
// each with its preview, its stages and who else must approve; approve or reject in place.

import { api } from '../lib/api';
import { Decide, Stages } from '../lib/approval';
import { chatTitle, useDirectory } from '../lib/directory';
import { plainPreview, plural, relative, stateWord, when } from '../lib/format';
import { useLoad } from '../lib/hooks';
import { useLive } from '../lib/live';
import { PostPreview } from '../lib/preview';
import { Link } from '../lib/router';
import { useSession } from '../lib/session';
import type { Post, PostListItem } from '../lib/types';
import { Badge, Empty, ErrorNote, Loading, PageTitle } from '../lib/ui';

function Item(props: { post: Post; onDone: () => void }) {
  const { ws, name } = useSession();
  const dir = useDirectory();
  const p = props.post;
  const chats = p.deliveries.slice(0, 5).map((d) => chatTitle(dir, d.chat_id));
  return (
    <article class="card queue-item" aria-labelledby={`q-${p.id}`}>
      <div class="grid-2">
        <div>
          <h2 id={`q-${p.id}`} style={{ marginTop: 0 }}>
            <Link href={`/w/${ws.id}/posts/${p.id}`}>{when(p.publish_at)}</Link>{' '}
            <span class="muted small">({relative(p.publish_at)})</span>
          </h2>
          <p>
            By <strong>{name(p.author_id)}</strong> to {plural(p.targets, 'chat')}
            {chats.length ? `: ${chats.join(', ')}${p.targets > chats.length ? '…' : ''}` : ''}.{' '}
            <Badge kind="wait">{stateWord(p.state)}</Badge>
          </p>
          <Stages post={p} />
          <Decide post={p} onDone={props.onDone} />
        </div>
        <PostPreview post={p} />
      </div>
    </article>
  );
}

export default function Queue() {
  const { ws, can } = useSession();
  const base = `/v1/workspaces/${ws.id}`;
  const mine = useLoad(async (signal) => {
    const list = await api<{ posts: PostListItem[] }>(`${base}/posts`, { query: { waiting_for: 'me', limit: 50 }, signal });
    return Promise.all(list.posts.map((p) => api<Post>(`${base}/posts/${p.id}`, { signal })));
  }, [ws.id]);
  const all = useLoad(
    (signal) => api<{ posts: PostListItem[] }>(`${base}/posts`, { query: { state: 'planned', limit: 100 }, signal }),
    [ws.id],
  );
  const reload = () => {
    mine.reload();
    all.reload();
  };
  useLive(ws.id, reload, (c) => c.stream === 'post');
  const waiting = mine.data || [];
  const others = (all.data?.posts || []).filter((p) => !waiting.some((w) => w.id === p.id));
  return (
    <section>
      <PageTitle title="Approvals" />
      <h2>Waiting for you</h2>
      <ErrorNote error={mine.error} />
      {mine.loading && !mine.data ? (
        <Loading />
      ) : waiting.length === 0 ? (
        <Empty>
          {can('approve')
            ? 'Nothing waits for your approval. New posts appear here by themselves.'
            : `Your role (${ws.role}) does not approve posts; below is what waits for others.`}
        </Empty>
      ) : (
        waiting.map((p) => <Item key={p.id} post={p} onDone={reload} />)
      )}
      <h2>Waiting for others</h2>
      <ErrorNote error={all.error} />
      {others.length === 0 ? (
        <Empty>No other post waits for approval.</Empty>
      ) : (
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Posts waiting for other approvers</caption>
            <thead>
              <tr>
                <th scope="col">Goes out</th>
                <th scope="col">Text</th>
                <th scope="col">Waiting stage</th>
                <th scope="col" class="num">
                  Chats
                </th>
              </tr>
            </thead>
            <tbody>
              {others.map((p) => (
                <tr key={p.id}>
                  <td>{when(p.publish_at)}</td>
                  <td>
                    <Link href={`/w/${ws.id}/posts/${p.id}`}>{plainPreview(p.text_preview) || '(no text)'}</Link>
                  </td>
                  <td>{p.waiting_for || '—'}</td>
                  <td class="num">{p.targets}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
