// Times in the reader's zone, and Herald's states and events in plain words.

export const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

const dtf = new Intl.DateTimeFormat(undefined, {
  dateStyle: 'medium',
  timeStyle: 'short',
});
const tf = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const df = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short' });

export function when(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dtf.format(d);
}

export function time(iso: string | Date): string {
  return tf.format(typeof iso === 'string' ? new Date(iso) : iso);
}

export function day(d: Date): string {
  return df.format(d);
}

/** "in 5 min", "3 h ago". */
export function relative(iso: string): string {
  const ms = new Date(iso).getTime() - Date.now();
  const abs = Math.abs(ms);
  const fmt = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  if (abs < 60_000) return fmt.format(Math.round(ms / 1000), 'second');
  if (abs < 3_600_000) return fmt.format(Math.round(ms / 60_000), 'minute');
  if (abs < 86_400_000) return fmt.format(Math.round(ms / 3_600_000), 'hour');
  return fmt.format(Math.round(ms / 86_400_000), 'day');
}

/** The value of an <input type="datetime-local"> for a time, in the reader's zone. */
export function toLocalInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** A datetime-local value (reader's zone) as UTC RFC 3339. */
export function fromLocalInput(v: string): string {
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function isoDate(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

export const STATE_WORDS: Record<string, string> = {
  draft: 'Draft (sent back)',
  planned: 'Waiting for approval',
  approved: 'Approved, will go out',
  rejected: 'Rejected',
  cancelled: 'Cancelled',
  expired: 'Expired (not approved in time)',
  delivered: 'Delivered',
  partially_delivered: 'Partly delivered',
  failed: 'Failed',
};

export function stateWord(s: string): string {
  return STATE_WORDS[s] || s.replace(/_/g, ' ');
}

export const DELIVERY_WORDS: Record<string, string> = {
  pending: 'Waiting to be sent',
  delivered: 'Delivered',
  failed: 'Failed',
  unknown: 'In doubt',
  skipped: 'Skipped',
  cancelled: 'Cancelled',
};

export function deliveryWord(s: string): string {
  return DELIVERY_WORDS[s] || s.replace(/_/g, ' ');
}

const EVENT_WORDS: Record<string, string> = {
  PostPlanned: 'planned the post',
  PostApproved: 'approved',
  PostStageApproved: 'approved a stage',
  PostApprovalGiven: 'gave an approval',
  PostDelivered: 'delivered',
  PostRejected: 'rejected',
  PostEdited: 'edited the post',
  PostCancelled: 'cancelled the post',
  PostRescheduled: 'rescheduled the post',
  PostExpired: 'the post expired',
  PostCommented: 'commented',
  DeliveryAttempted: 'tried to send',
  DeliverySucceeded: 'delivered',
  DeliveryDelivered: 'delivered',
  MessageDelivered: 'delivered',
  DeliveryFailed: 'delivery failed',
  DeliveryUnknown: 'delivery in doubt',
  DeliveryResolved: 'resolved a delivery in doubt',
  ChatConnected: 'connected a chat',
  ChatOptedOut: 'opt-out recorded',
  ChatBlocked: 'chat blocked the bot',
  BotRegistered: 'registered a bot',
  BotPaused: 'bot paused',
  MemberRoleGranted: 'granted a role',
  MemberRoleRevoked: 'revoked a role',
  WorkspaceCreated: 'created the workspace',
  WorkspaceRulesSet: 'set the workspace rules',
};

/** "PostApproved" → "approved" (unknown types split into words). */
export function eventWord(t: string): string {
  return EVENT_WORDS[t] || t.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

/** A list's text preview without HTML tags or Markdown escapes (the lists carry the raw text). */
export function plainPreview(s: string): string {
  return s
    .replace(/<[^>]*>?/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&')
    .replace(/\\([_*[\]()~`>#+\-=|{}.!\\])/g, '$1');
}
