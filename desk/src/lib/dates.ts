// Calendar arithmetic in the reader's zone, and quiet hours in a chat's own zone.

import type { AudienceRules } from './types';

export function startOfDay(d: Date): Date {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate());
}

export function addDays(d: Date, n: number): Date {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate() + n, d.getHours(), d.getMinutes(), d.getSeconds());
}

export function addMonths(d: Date, n: number): Date {
  return new Date(d.getFullYear(), d.getMonth() + n, 1);
}

/** Monday of d's week. */
export function startOfWeek(d: Date): Date {
  const s = startOfDay(d);
  const dow = (s.getDay() + 6) % 7;
  return addDays(s, -dow);
}

export function parseDate(s: string | null): Date {
  if (s && /^\d{4}-\d{2}-\d{2}$/.test(s)) {
    const [y, m, d] = s.split('-').map(Number);
    return new Date(y, m - 1, d);
  }
  return startOfDay(new Date());
}

export function sameDay(a: Date, b: Date): boolean {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

export function dayKey(d: Date): string {
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

const zoneFormats = new Map<string, Intl.DateTimeFormat>();
function clockIn(zone: string, d: Date): number {
  let f = zoneFormats.get(zone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    } catch {
      f = new Intl.DateTimeFormat('en-GB', { timeZone: 'UTC', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    }
    zoneFormats.set(zone, f);
  }
  const [h, m] = f.format(d).split(':').map(Number);
  return h * 60 + m;
}

function minutes(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return h * 60 + m;
}

/** Whether moment d falls in the rules' quiet hours, read in their time zone. */
export function inQuietHours(d: Date, rules: AudienceRules | null | undefined): boolean {
  if (!rules?.quiet_hours) return false;
  const now = clockIn(rules.time_zone || 'UTC', d);
  const start = minutes(rules.quiet_hours.start);
  const end = minutes(rules.quiet_hours.end);
  return start <= end ? now >= start && now < end : now >= start || now < end;
}

export function quietWords(rules: AudienceRules): string {
  return `${rules.quiet_hours!.start}–${rules.quiet_hours!.end} ${rules.time_zone || 'UTC'}`;
}
