// A post's approval stages, who has approved and who else must, and the approve/reject form.

import { useState } from 'preact/hooks';
import { api, messageOf } from './api';
import { useSession, type Session } from './session';
import type { Post, Stage } from './types';
import { ErrorNote, notify } from './ui';

function admits(stage: Stage, s: Session): string {
  const who: string[] = [];
  if (stage.roles?.length) who.push(stage.roles.map((r) => `any ${r}`).join(' or '));
  if (stage.users?.length) who.push(stage.users.map((u) => s.name(u)).join(stage.rule === 'all' ? ' and ' : ' or '));
  const list = who.join(' or ') || 'an approver or an admin';
  return stage.rule === 'all' ? `all of: ${list}` : `one of: ${list}`;
}

export function Stages(props: { post: Post }) {
  const s = useSession();
  const { stages, waiting_for } = props.post.approval || { stages: [], waiting_for: null };
  if (!stages.length) return null;
  return (
    <ol class="stages" aria-label="Approval stages">
      {stages.map((st, i) => {
        const current = waiting_for === i;
        const missing =
          st.rule === 'all' ? (st.users || []).filter((u) => !st.approved_by.includes(u)).map((u) => s.name(u)) : [];
        return (
          <li key={i} class={`stage${st.complete ? ' complete' : ''}${current ? ' current' : ''}`}>
            <strong>
              {i + 1}. {st.name}
            </strong>{' '}
            {st.complete ? '✓ done' : current ? '← waiting now' : 'later'}
            <br />
            <span class="small">
              {st.approved_by.length ? `Approved by ${st.approved_by.map((u) => s.name(u)).join(', ')}. ` : ''}
              {!st.complete && (missing.length ? `Still needed: ${missing.join(', ')}.` : `Needs ${admits(st, s)}.`)}
            </span>
          </li>
        );
      })}
    </ol>
  );
}

/** Approve (with an optional comment) or reject (with a reason); the server's refusal is shown as it says it. */
export function Decide(props: { post: Post; onDone: () => void }) {
  const { ws, can } = useSession();
  const [comment, setComment] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  if (!can('approve') || props.post.state !== 'planned') return null;
  const base = `/v1/workspaces/${ws.id}/posts/${props.post.id}`;
  async function act(kind: 'approve' | 'reject') {
    setBusy(true);
    setError(null);
    try {
      if (kind === 'approve') {
        await api(`${base}/approve`, { method: 'POST' });
        if (comment.trim()) await api(`${base}/comments`, { method: 'POST', body: { text: comment.trim() } });
        notify('Approved.');
      } else {
        await api(`${base}/reject`, { method: 'POST', body: { reason: comment.trim() } });
        notify('Rejected: the post went back to its author as a draft.');
      }
      setComment('');
      props.onDone();
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setBusy(false);
    }
  }
  const id = `comment-${props.post.id}`;
  return (
    <div class="decide stack">
      <ErrorNote error={error} title="Not done:" />
      <label for={id}>Comment (sent with an approval; the reason of a rejection)</label>
      <textarea id={id} rows={2} value={comment} onInput={(e) => setComment(e.currentTarget.value)} />
      <div class="row">
        <button type="button" class="primary" disabled={busy} onClick={() => act('approve')}>
          Approve
        </button>
        <button type="button" class="danger" disabled={busy} onClick={() => act('reject')}>
          Reject
        </button>
      </div>
    </div>
  );
}
