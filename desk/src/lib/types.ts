// The API's shapes as the desk reads them (services/api/openapi.json and the routes).

export interface ApiErrorBody {
  error: { code: string; message: string; [k: string]: unknown };
}

export type Role = 'viewer' | 'author' | 'approver' | 'auditor' | 'admin';

export interface User {
  id: string;
  login: string;
  display_name?: string;
  name?: string;
  kind?: 'person' | 'service';
  instance_admin?: boolean;
}

export interface WorkspaceRef {
  id: string;
  name: string;
  role: Role;
}

export interface Me {
  user: User;
  scopes: string[];
  workspaces?: WorkspaceRef[];
}

export interface SignedIn {
  user: User;
  csrf: string;
}

export interface Member {
  user_id: string;
  login: string;
  display_name: string;
  role: Role;
}

export interface Bot {
  id: string;
  name: string;
  username?: string | null;
  telegram_bot_id?: number;
  paused?: string | boolean | null;
  paused_reason?: string | null;
  paid_broadcast?: boolean;
  allow_paid_broadcast?: boolean;
  hourly_cap?: number | null;
}

export interface AudienceRules {
  time_zone: string | null;
  quiet_hours: { start: string; end: string } | null;
  max_per_day: number | null;
  max_per_week: number | null;
  on_violation: 'defer' | 'skip';
}

export interface Chat {
  id: string;
  bot_id: string | null;
  telegram_chat_id: number;
  title: string;
  erased?: boolean;
  type?: string | null;
  username?: string | null;
  contact: boolean;
  lawful_basis: { basis: string; source: string; given_at: string } | null;
  targetable: boolean;
  opted_out: boolean;
  blocked: string | null;
  hourly_cap: number | null;
  tags: string[];
  audience_rules: AudienceRules | null;
}

export interface Segment {
  id: string;
  name: string;
  tags_all: string[];
  tags_any: string[];
  chat_ids: string[];
  audience_rules?: AudienceRules | null;
  members: number;
  reachable: number;
}

export interface PostListItem {
  id: string;
  state: string;
  publish_at: string;
  text_preview: string;
  author_id: string | null;
  last_editor_id: string | null;
  targets: number;
  bot_ids: string[];
  approved_by: string[];
  waiting_for: string | null;
}

export interface CalendarEntry {
  post_id: string;
  chat_id: string;
  publish_at: string;
  state: string;
  delivery: string;
  telegram_message_id: number | null;
  error: string | null;
  text_preview: string;
}

export interface Stage {
  name: string;
  roles: Role[];
  users: string[];
  rule: 'any' | 'all' | string;
  approved_by: string[];
  complete: boolean;
}

export interface Delivery {
  chat_id: string;
  status: 'pending' | 'delivered' | 'failed' | 'unknown';
  telegram_message_id: number | null;
  error: string | null;
  /** A public group's or channel's link to the message. */
  link?: string;
  auto_resends?: number;
  attempts?: { at: string; outcome: string }[];
  waiting?: { until: string; reason: string };
}

export interface Counts {
  pending: number;
  delivered: number;
  failed: number;
  unknown: number;
}

export interface Post {
  id: string;
  workspace_id: string;
  state: string;
  text: string;
  parse_mode: string | null;
  /** As Telegram will show it; null when the text does not parse. */
  render: { text: string; entities: Entity[]; length: number } | null;
  texts_erased?: boolean;
  publish_at: string;
  targets: number;
  segment_ids?: string[];
  excluded?: number;
  author_id: string | null;
  last_editor_id: string | null;
  approval: { stages: Stage[]; waiting_for: number | null };
  counts: Counts;
  deliveries: Delivery[];
  next_after: number | null;
}

export interface AuditEvent {
  position: number;
  event_id: string;
  aggregate_type: string;
  aggregate_id: string;
  sequence: number;
  event_type: string;
  actor: string;
  correlation_id?: string;
  occurred_at: string;
  details: Record<string, unknown>;
}

export interface Entity {
  type: string;
  offset: number;
  length: number;
  url?: string;
  language?: string;
  user?: { id: number };
  custom_emoji_id?: string;
}

export interface Finding {
  rule: string;
  severity: 'block' | 'warn' | 'info';
  reason: string;
  fix: string;
  chat_id?: string;
}

export interface DryRun {
  render: { text: string; entities: Entity[]; length: number; limit: number } | null;
  parse_error: { code: string; message: string } | null;
  blocked: boolean;
  findings: Finding[];
  audience?: { targets: number; from_segments: number; excluded: number };
  forecast: {
    first_at: string;
    last_at: string;
    duration_secs: number;
    messages: number;
    delayed_secs: number;
    collides_with: { post_id: string; publish_at: string; messages: number; delayed_secs: number }[];
  } | null;
}

export interface ImportRow {
  row: number;
  line?: number;
  telegram_chat_id: number | null;
  status: string;
  chat_id?: string;
  error?: { code: string; message: string };
}

export interface ImportResult {
  dry_run: boolean;
  already_connected: number;
  failed: number;
  would_connect?: number;
  connected?: number;
  rows: ImportRow[];
}

export interface SandboxMessage {
  bot_id: number;
  chat_id: number;
  message_id: number;
  text: string;
  parse_mode: string | null;
  received_at?: string;
  date?: string | number;
  entities?: Entity[];
  parsed?: { text: string; entities: Entity[] };
  paid_broadcast?: boolean;
}

export interface Live {
  type: string;
  stream: string;
  id: string;
  post_id: string | null;
  sequence: number;
}
