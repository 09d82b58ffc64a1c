// Forms shared by the chat page and Settings: a card that saves one thing, a chat's or the
// workspace's audience rules (quiet hours in an IANA time zone, caps per day and week), and a
// confirmation dialog.

import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { messageOf } from './api';
import type { AudienceRules } from './types';
import { ErrorNote, notify } from './ui';
import { zone } from './format';

/** A card that saves one thing: its `submit` answers what to announce, or throws the refusal,
 * which is shown in the card in the server's words. */
export function SaveForm(props: {
  title: string;
  submit: () => Promise<string>;
  children: ComponentChildren;
  label: string;
  /** Names the card for its heading's id (default: from the title). */
  id?: string;
  disabled?: boolean;
  wide?: boolean;
  errorTitle?: string;
}) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const id = props.id ? `${props.id}-h` : `form-${props.title.replace(/\W+/g, '-').toLowerCase()}`;
  return (
    <form
      class={`card stack${props.wide ? ' wide' : ''}`}
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
      <ErrorNote error={error} title={props.errorTitle} />
      {props.children}
      <div>
        <button class="primary" type="submit" disabled={busy || props.disabled}>
          {props.label}
        </button>
      </div>
    </form>
  );
}

let zones: string[] | null = null;
/** Every IANA time zone the browser knows (UTC first). */
export function timeZones(): string[] {
  if (zones) return zones;
  let list: string[] = [];
  try {
    list = (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.('timeZone') || [];
  } catch {
    list = [];
  }
  if (!list.length) list = [zone];
  zones = ['UTC', ...list.filter((z) => z !== 'UTC')];
  return zones;
}

/** The rules as the API takes them, or null (no rules), from the form's fields. */
export interface RulesFields {
  time_zone: string;
  quiet: boolean;
  start: string;
  end: string;
  max_per_day: string;
  max_per_week: string;
  on_violation: 'defer' | 'skip';
}

function fieldsOf(r: AudienceRules | null | undefined): RulesFields {
  return {
    time_zone: r?.time_zone || zone,
    quiet: !!r?.quiet_hours,
    start: r?.quiet_hours?.start || '22:00',
    end: r?.quiet_hours?.end || '08:00',
    max_per_day: r?.max_per_day != null ? String(r.max_per_day) : '',
    max_per_week: r?.max_per_week != null ? String(r.max_per_week) : '',
    on_violation: r?.on_violation || 'defer',
  };
}

function bodyOf(f: RulesFields): Record<string, unknown> | null {
  const day = f.max_per_day.trim();
  const week = f.max_per_week.trim();
  if (!f.quiet && !day && !week) return null;
  const body: Record<string, unknown> = { time_zone: f.time_zone, on_violation: f.on_violation };
  if (f.quiet) body.quiet_hours = { start: f.start, end: f.end };
  if (day) body.max_per_day = Number(day);
  if (week) body.max_per_week = Number(week);
  return body;
}

/** Describes rules in a sentence: "Quiet 22:00–08:00 (Europe/Berlin); at most 2 a day; held until allowed". */
export function rulesWords(r: AudienceRules | null | undefined): string {
  if (!r) return 'none';
  const bits: string[] = [];
  if (r.quiet_hours) bits.push(`quiet ${r.quiet_hours.start}–${r.quiet_hours.end} (${r.time_zone || 'UTC'})`);
  if (r.max_per_day != null) bits.push(`at most ${r.max_per_day} a day`);
  if (r.max_per_week != null) bits.push(`at most ${r.max_per_week} a week`);
  bits.push(r.on_violation === 'skip' ? 'otherwise skipped' : 'otherwise held until allowed');
  return bits.join('; ');
}

export function AudienceRulesForm(props: {
  id: string;
  title: string;
  intro: ComponentChildren;
  rules: AudienceRules | null | undefined;
  save: (body: Record<string, unknown> | null) => Promise<void>;
}) {
  const [f, setF] = useState<RulesFields>(fieldsOf(props.rules));
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState<string | null>(null);
  useEffect(() => setF(fieldsOf(props.rules)), [JSON.stringify(props.rules)]);
  const set = (patch: Partial<RulesFields>) => setF({ ...f, ...patch });
  async function run(body: Record<string, unknown> | null) {
    setBusy(true);
    setError(null);
    setSaved(null);
    try {
      await props.save(body);
      setSaved(body ? 'Saved.' : 'Cleared: no quiet hours or caps.');
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setBusy(false);
    }
  }
  const p = props.id;
  return (
    <form
      class="card stack"
      aria-labelledby={`${p}-h`}
      onSubmit={(e) => {
        e.preventDefault();
        run(bodyOf(f));
      }}
    >
      <h2 id={`${p}-h`} style={{ marginTop: 0 }}>
        {props.title}
      </h2>
      <p class="muted small">{props.intro}</p>
      <ErrorNote error={error} title="Not saved:" />
      <label>
        Time zone (quiet hours and days are read in it)
        <select value={f.time_zone} onChange={(e) => set({ time_zone: e.currentTarget.value })}>
          {timeZones().map((z) => (
            <option key={z} value={z}>
              {z.replace(/_/g, ' ')}
            </option>
          ))}
        </select>
      </label>
      <label class="check">
        <input type="checkbox" checked={f.quiet} onChange={(e) => set({ quiet: e.currentTarget.checked })} /> Quiet hours
      </label>
      {f.quiet && (
        <div class="row">
          <label>
            From
            <input type="time" required value={f.start} onInput={(e) => set({ start: e.currentTarget.value })} />
          </label>
          <label>
            Until
            <input type="time" required value={f.end} onInput={(e) => set({ end: e.currentTarget.value })} />
          </label>
        </div>
      )}
      <div class="row">
        <label>
          At most a day
          <input type="number" min={1} inputMode="numeric" value={f.max_per_day} placeholder="no cap" onInput={(e) => set({ max_per_day: e.currentTarget.value })} />
        </label>
        <label>
          At most a week
          <input type="number" min={1} inputMode="numeric" value={f.max_per_week} placeholder="no cap" onInput={(e) => set({ max_per_week: e.currentTarget.value })} />
        </label>
      </div>
      <label>
        A post that falls outside them
        <select value={f.on_violation} onChange={(e) => set({ on_violation: e.currentTarget.value as 'defer' | 'skip' })}>
          <option value="defer">waits until it is allowed</option>
          <option value="skip">is skipped for this chat</option>
        </select>
      </label>
      {saved && (
        <p class="note note-ok" role="status">
          {saved}
        </p>
      )}
      <div class="row">
        <button class="primary" type="submit" disabled={busy}>
          Save rules
        </button>
        <button type="button" disabled={busy} onClick={() => run(null)}>
          Clear rules
        </button>
      </div>
    </form>
  );
}

/** A modal that asks before something that cannot be undone; Escape or Cancel closes it. */
export function Confirm(props: {
  title: string;
  children: ComponentChildren;
  action: string;
  onConfirm: () => Promise<void>;
  onClose: () => void;
}) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const cancel = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    cancel.current?.focus();
    return () => before?.focus?.();
  }, []);
  return (
    <div class="dialog-backdrop" onKeyDown={(e) => e.key === 'Escape' && props.onClose()}>
      <div class="dialog stack" role="alertdialog" aria-modal="true" aria-labelledby="confirm-title" aria-describedby="confirm-body">
        <h2 id="confirm-title" style={{ marginTop: 0 }}>
          {props.title}
        </h2>
        <div id="confirm-body">{props.children}</div>
        <ErrorNote error={error} />
        <div class="row">
          <button
            type="button"
            class="danger"
            disabled={busy}
            onClick={async () => {
              setBusy(true);
              setError(null);
              try {
                await props.onConfirm();
                props.onClose();
              } catch (e) {
                setError(messageOf(e));
                setBusy(false);
              }
            }}
          >
            {props.action}
          </button>
          <button type="button" ref={cancel} onClick={props.onClose}>
            Cancel
          </button>
        </div>
      </div>
    </div>
  );
}

/** "a, b ,c" → ["a","b","c"] (lower-case when asked). */
export function splitList(v: string, lower = false): string[] {
  return v
    .split(/[,\n]/)
    .map((t) => (lower ? t.trim().toLowerCase() : t.trim()))
    .filter(Boolean);
}
