//! What one run of a workload measured, and the process/machine probes behind it.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sandbox::ReceivedMessage;

use crate::workload::Expected;

/// The figures of one sender (Herald or Throttle) on one workload.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    pub expected: usize,
    /// Distinct expected messages the emulator accepted.
    pub delivered: usize,
    pub missing: usize,
    /// Extra copies of expected messages.
    pub duplicates: usize,
    /// Accepted messages nobody expected.
    pub unexpected: usize,
    /// Start (the common due moment) to the last acceptance, plus the last message's 1 s slot.
    pub duration: Duration,
    pub rate_limited: u64,
    /// received_at - due, per delivered message, sorted.
    pub lags: Vec<Duration>,
    /// Peak resident memory of the whole bench process during the run (VmHWM).
    pub peak_rss_kib: Option<u64>,
    /// CPU time this process used from the due moment to the end of the run.
    pub cpu: Duration,
    /// Share of the machine's CPU time busy in that span (all processes, e.g. PostgreSQL).
    pub machine_busy: Option<f64>,
    /// Sender-side failures: Herald's DeliveryFailed/DeliveryUnknown events, Throttle's errors.
    pub failed: usize,
    /// Notes about the run (overrun submission, timeouts...).
    pub notes: Vec<String>,
    /// Everything before the due moment (set-up and submission), for Herald.
    pub submission: Option<Duration>,
    /// When each delivered message was accepted, from the due moment, sorted.
    pub accepted_at: Vec<Duration>,
    /// Herald only: PostgreSQL transactions committed or rolled back in its database from the
    /// due moment to the end of the run (all services: API, relay, projections, delivery).
    pub db_transactions: Option<u64>,
    /// Herald only: when each delivery was last claimed by the dispatcher (its claim
    /// transaction's start), from the due moment, sorted.
    pub claimed_at: Vec<Duration>,
}

impl RunResult {
    pub fn exactly_once(&self) -> bool {
        self.missing == 0 && self.duplicates == 0 && self.unexpected == 0
    }

    pub fn rate(&self) -> f64 {
        if self.duration.is_zero() {
            0.0
        } else {
            self.delivered as f64 / self.duration.as_secs_f64()
        }
    }

    pub fn lag(&self, p: f64) -> Option<Duration> {
        load::percentile(&self.lags, p)
    }
}

/// Compares what the emulator accepted with what the workload expected.
pub fn score(
    expected: &[Expected],
    received: &[ReceivedMessage],
    start: DateTime<Utc>,
) -> RunResult {
    let mut wanted: HashMap<(i64, &str), (Duration, usize)> = expected
        .iter()
        .map(|e| ((e.telegram_chat_id, e.text.as_str()), (e.due, 0)))
        .collect();
    let mut result = RunResult {
        expected: expected.len(),
        ..RunResult::default()
    };
    let mut last = start;
    for message in received {
        match wanted.get_mut(&(message.chat_id, message.text.as_str())) {
            Some((due, seen)) => {
                *seen += 1;
                if *seen == 1 {
                    result.delivered += 1;
                    let due_at = start + chrono::TimeDelta::from_std(*due).unwrap_or_default();
                    result
                        .lags
                        .push((message.received_at - due_at).to_std().unwrap_or_default());
                    last = last.max(message.received_at);
                    result
                        .accepted_at
                        .push((message.received_at - start).to_std().unwrap_or_default());
                } else {
                    result.duplicates += 1;
                }
            }
            None => result.unexpected += 1,
        }
    }
    result.missing = expected.len() - result.delivered;
    result.lags.sort();
    result.accepted_at.sort();
    result.duration = (last - start).to_std().unwrap_or_default() + Duration::from_secs(1);
    result
}

/// Resets the process's peak-RSS mark (Linux 4.0+), so VmHWM covers one run only.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// VmHWM of this process, in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A snapshot of CPU counters: this process's user+system time and the machine's busy/total
/// jiffies.
#[derive(Debug, Clone, Copy)]
pub struct Cpu {
    process: Duration,
    busy: u64,
    total: u64,
}

/// Linux reports process and machine CPU times in USER_HZ ticks, 100 per second.
const TICKS_PER_SECOND: u64 = 100;

impl Cpu {
    pub fn now() -> Self {
        let process = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| {
                // The fields after the command name, which is in parentheses.
                let rest = &stat[stat.rfind(')')? + 2..];
                let fields: Vec<&str> = rest.split_whitespace().collect();
                // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
                let utime: u64 = fields.get(11)?.parse().ok()?;
                let stime: u64 = fields.get(12)?.parse().ok()?;
                Some(Duration::from_millis(
                    (utime + stime) * 1000 / TICKS_PER_SECOND,
                ))
            })
            .unwrap_or_default();
        let (busy, total) = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| {
                let line = stat.lines().next()?;
                let values: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|v| v.parse().ok())
                    .collect();
                let total: u64 = values.iter().take(8).sum();
                let idle = values.get(3)? + values.get(4).unwrap_or(&0);
                Some((total - idle, total))
            })
            .unwrap_or_default();
        Self {
            process,
            busy,
            total,
        }
    }

    /// (process CPU time, machine busy share) since `earlier`.
    pub fn since(&self, earlier: &Cpu) -> (Duration, Option<f64>) {
        let total = self.total.saturating_sub(earlier.total);
        let busy = self.busy.saturating_sub(earlier.busy);
        (
            self.process.saturating_sub(earlier.process),
            (total > 0).then(|| busy as f64 / total as f64),
        )
    }
}

/// Messages accepted per `bin` from the due moment, as `start:count` for the non-empty bins.
pub fn timeline(accepted_at: &[Duration], bin: Duration) -> String {
    let mut bins: Vec<(u64, usize)> = Vec::new();
    for at in accepted_at {
        let index = (at.as_nanos() / bin.as_nanos().max(1)) as u64;
        match bins.last_mut() {
            Some((i, n)) if *i == index => *n += 1,
            _ => bins.push((index, 1)),
        }
    }
    let mut text = String::new();
    for (i, (index, n)) in bins.iter().enumerate() {
        if i > 0 {
            text.push_str(if i % 12 == 0 { "\n    " } else { " " });
        }
        let start = bin.as_secs_f64() * *index as f64;
        text.push_str(&format!("{start:.1}s:{n}"));
    }
    text
}

/// Messages accepted in each whole second from the due moment, from the second of the first
/// acceptance to that of the last (quiet seconds in between count as 0).
pub fn per_second(accepted_at: &[Duration]) -> Vec<usize> {
    let (Some(first), Some(last)) = (accepted_at.first(), accepted_at.last()) else {
        return Vec::new();
    };
    let (first, last) = (first.as_secs(), last.as_secs());
    let mut bins = vec![0; (last - first + 1) as usize];
    for at in accepted_at {
        bins[(at.as_secs() - first) as usize] += 1;
    }
    bins
}

/// Messages per second sustained: the median of [`per_second`], so neither the ramp-up nor
/// the tail of a run counts, and a burst of the best second does not either.
pub fn sustained_rate(accepted_at: &[Duration]) -> Option<f64> {
    let mut bins = per_second(accepted_at);
    if bins.is_empty() {
        return None;
    }
    bins.sort_unstable();
    let n = bins.len();
    Some(if n % 2 == 1 {
        bins[n / 2] as f64
    } else {
        (bins[n / 2 - 1] + bins[n / 2]) as f64 / 2.0
    })
}

/// Messages per second over the best whole minute of the run (the most accepted within any 60 s),
/// or nothing for a run shorter than a minute: "sustained for a minute", measured as stated.
pub fn best_minute_rate(accepted_at: &[Duration]) -> Option<f64> {
    const MINUTE: Duration = Duration::from_secs(60);
    let (first, last) = (accepted_at.first()?, accepted_at.last()?);
    if *last - *first < MINUTE {
        return None;
    }
    // Sorted ascending: the window [accepted_at[start], +60 s) slides over the acceptances.
    let mut best = 0;
    let mut start = 0;
    for (end, at) in accepted_at.iter().enumerate() {
        while *at - accepted_at[start] >= MINUTE {
            start += 1;
        }
        best = best.max(end + 1 - start);
    }
    Some(best as f64 / MINUTE.as_secs_f64())
}

/// The most messages accepted in one whole second from the due moment.
pub fn best_second(accepted_at: &[Duration]) -> Option<usize> {
    per_second(accepted_at).into_iter().max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_minute_counts_the_busiest_sixty_seconds() {
        // 10 per second for 70 s, then a burst of 100 in the 71st second.
        let mut at: Vec<Duration> = (0..700).map(|i| Duration::from_millis(i * 100)).collect();
        at.extend((0..100).map(|i| Duration::from_millis(70_000 + i * 10)));
        // The minute ending with the burst holds 59 s of 10/s plus the 100.
        let best = best_minute_rate(&at).expect("a run longer than a minute");
        assert!((best - (590.0 + 100.0) / 60.0).abs() < 0.02, "{best}");
        assert_eq!(
            best_minute_rate(&at[..500]),
            None,
            "50 s is less than a minute"
        );
    }
}
