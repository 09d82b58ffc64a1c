//! Quiet hours and frequency caps: when a recipient may be sent a post, in their own time zone.
//!
//! Quiet hours are a daily window of wall-clock time (`22:00`-`08:00` wraps midnight). An
//! instant is quiet when its local time, in the rules' IANA zone, falls in `[start, end)`; so a
//! daylight-saving change is handled by the zone's own rules: a window end that does not exist
//! on a spring-forward day ends at the first instant after the gap, and a fall-back hour that
//! repeats local times inside the window is quiet both times. Caps count posts sent to the
//! recipient since the start of their local day (midnight) and ISO week (Monday midnight).

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::DomainError;

/// What happens to a send that would break the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnViolation {
    /// Sent at the next moment the rules allow.
    #[default]
    Defer,
    /// Not sent; the delivery is recorded as skipped with the reason.
    Skip,
}

/// A daily window of local time during which nothing is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// The rules of one recipient (a chat's own, or its workspace's default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudienceRules {
    /// An IANA time zone name, e.g. `Europe/Berlin`.
    pub time_zone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_day: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_week: Option<u32>,
    #[serde(default)]
    pub on_violation: OnViolation,
}

/// Why a send may not go now, and the first moment it may.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    pub reason: String,
    pub until: DateTime<Utc>,
}

/// Posts already sent to the recipient in its current local day and week.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    pub today: u32,
    pub this_week: u32,
}

/// The rules in force for a chat: its own, else those of the segment the post reached it
/// through, else its workspace's default (`None`: no rules). Delivery's gate and the dry-run
/// both ask this.
pub fn in_force<'a>(
    own: Option<&'a AudienceRules>,
    segment: Option<&'a AudienceRules>,
    workspace: Option<&'a AudienceRules>,
) -> Option<&'a AudienceRules> {
    own.or(segment).or(workspace)
}

/// Of a post's segments (in the order it names them), the rules of the first that has rules and
/// selects the chat: a chat reached through a segment keeps that segment's quiet hours.
pub fn of_segments<'a>(
    segments: impl IntoIterator<Item = &'a crate::Segment>,
    chat_id: crate::Id,
    tags: &[String],
) -> Option<&'a AudienceRules> {
    segments
        .into_iter()
        .filter(|s| s.exists())
        .find(|s| s.audience_rules.is_some() && s.rule.selects(chat_id, tags))
        .and_then(|s| s.audience_rules.as_ref())
}

impl AudienceRules {
    /// What a send at `at` meets: `None` when the rules allow it, else the violation and what
    /// delivery does about it.
    pub fn verdict(&self, at: DateTime<Utc>, sent: Sent) -> Option<(Violation, OnViolation)> {
        self.check(at, sent).err().map(|v| (v, self.on_violation))
    }

    /// The rules' own consistency: a known zone, a window of some length, caps of at least 1.
    pub fn validate(&self) -> Result<Tz, DomainError> {
        let zone: Tz = self.time_zone.parse().map_err(|_| {
            DomainError::InvalidAudienceRules(format!(
                "{:?} is not an IANA time zone; use a name such as Europe/Berlin or America/New_York",
                self.time_zone
            ))
        })?;
        if let Some(quiet) = self.quiet_hours
            && quiet.start == quiet.end
        {
            return Err(DomainError::InvalidAudienceRules(
                "quiet hours start and end at the same time; give a window such as 22:00 to 08:00"
                    .into(),
            ));
        }
        if self.max_per_day == Some(0) || self.max_per_week == Some(0) {
            return Err(DomainError::InvalidAudienceRules(
                "a cap is at least 1 post; leave it out for no cap".into(),
            ));
        }
        Ok(zone)
    }

    fn zone(&self) -> Tz {
        // Validated when the rules were set; an unknown name falls back to UTC.
        self.time_zone.parse().unwrap_or(Tz::UTC)
    }

    /// Whether `at` falls in the quiet hours.
    pub fn is_quiet(&self, at: DateTime<Utc>) -> bool {
        let Some(quiet) = self.quiet_hours else {
            return false;
        };
        in_window(quiet, at.with_timezone(&self.zone()).time())
    }

    /// The first instant at or after `at` outside the quiet hours.
    pub fn quiet_until(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let Some(quiet) = self.quiet_hours else {
            return at;
        };
        if !self.is_quiet(at) {
            return at;
        }
        let zone = self.zone();
        let local = at.with_timezone(&zone);
        let end_date = if quiet.start > quiet.end && local.time() >= quiet.start {
            local.date_naive() + Duration::days(1)
        } else {
            local.date_naive()
        };
        let mut candidate = first_instant_at_or_after(&zone, end_date.and_time(quiet.end)).max(at);
        // The window's end repeated by a fall-back hour, or met again within it: step on.
        while self.is_quiet(candidate) {
            candidate += Duration::minutes(1);
        }
        candidate
    }

    /// The start of the local day after the one containing `at`.
    fn next_day(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let zone = self.zone();
        let date = at.with_timezone(&zone).date_naive() + Duration::days(1);
        first_instant_at_or_after(&zone, date.and_time(NaiveTime::MIN))
    }

    /// The start of the local ISO week after the one containing `at`.
    fn next_week(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let zone = self.zone();
        let date = at.with_timezone(&zone).date_naive();
        let monday = date - Duration::days(i64::from(date.weekday().num_days_from_monday()));
        first_instant_at_or_after(&zone, (monday + Duration::days(7)).and_time(NaiveTime::MIN))
    }

    /// The start of the local day and of the local ISO week containing `at`: what the caps count
    /// from.
    pub fn periods(&self, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let zone = self.zone();
        let date = at.with_timezone(&zone).date_naive();
        let monday: NaiveDate =
            date - Duration::days(i64::from(date.weekday().num_days_from_monday()));
        (
            first_instant_at_or_after(&zone, date.and_time(NaiveTime::MIN)),
            first_instant_at_or_after(&zone, monday.and_time(NaiveTime::MIN)),
        )
    }

    /// Whether a send at `at` keeps the rules, given what was sent in its day and week.
    pub fn check(&self, at: DateTime<Utc>, sent: Sent) -> Result<(), Violation> {
        if let Some(max) = self.max_per_week
            && sent.this_week >= max
        {
            return Err(Violation {
                rule: "weekly_cap",
                reason: format!("{max} post(s) a week already sent to this recipient"),
                until: self.quiet_until(self.next_week(at)),
            });
        }
        if let Some(max) = self.max_per_day
            && sent.today >= max
        {
            return Err(Violation {
                rule: "daily_cap",
                reason: format!("{max} post(s) a day already sent to this recipient"),
                until: self.quiet_until(self.next_day(at)),
            });
        }
        if self.is_quiet(at) {
            let quiet = self.quiet_hours.unwrap_or(QuietHours {
                start: NaiveTime::MIN,
                end: NaiveTime::MIN,
            });
            return Err(Violation {
                rule: "quiet_hours",
                reason: format!(
                    "quiet hours {}-{} ({})",
                    quiet.start.format("%H:%M"),
                    quiet.end.format("%H:%M"),
                    self.time_zone
                ),
                until: self.quiet_until(at),
            });
        }
        Ok(())
    }
}

fn in_window(quiet: QuietHours, time: NaiveTime) -> bool {
    if quiet.start < quiet.end {
        quiet.start <= time && time < quiet.end
    } else {
        time >= quiet.start || time < quiet.end
    }
}

/// The first instant whose local time in `zone` is `local` or, when a spring-forward gap
/// skips it, the first instant after the gap.
fn first_instant_at_or_after(zone: &Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = local;
    loop {
        match zone.from_local_datetime(&probe) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(earliest, _) => return earliest.with_timezone(&Utc),
            // In a gap: the gap ends on a whole minute in every zone there is.
            LocalResult::None => probe += Duration::minutes(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn rules(zone: &str, start: &str, end: &str) -> AudienceRules {
        AudienceRules {
            time_zone: zone.into(),
            quiet_hours: Some(QuietHours {
                start: start.parse().unwrap(),
                end: end.parse().unwrap(),
            }),
            max_per_day: None,
            max_per_week: None,
            on_violation: OnViolation::Defer,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_chats_own_rules_win_then_the_first_segment_that_selects_it_then_the_workspaces() {
        use crate::{Segment, SegmentRule};
        let chat = crate::Id::from_u128(5);
        let segment = |tags: &[&str], rules: Option<AudienceRules>| Segment {
            workspace_id: Some(crate::Id::from_u128(1)),
            rule: SegmentRule {
                tags_any: tags.iter().map(|t| (*t).to_owned()).collect(),
                ..SegmentRule::default()
            },
            audience_rules: rules,
            ..Segment::default()
        };
        let (own, night, late, ws) = (
            rules("UTC", "01:00", "02:00"),
            rules("UTC", "22:00", "06:00"),
            rules("UTC", "23:00", "07:00"),
            rules("UTC", "03:00", "04:00"),
        );
        let segments = [
            segment(&["vip"], Some(late.clone())),
            segment(&["owl"], None),
            segment(&["owl"], Some(night.clone())),
            segment(&["owl"], Some(late.clone())),
        ];
        let tags = vec!["owl".to_owned()];
        let through = of_segments(&segments, chat, &tags);
        assert_eq!(
            through,
            Some(&night),
            "the first segment with rules that selects it"
        );
        assert_eq!(in_force(Some(&own), through, Some(&ws)), Some(&own));
        assert_eq!(in_force(None, through, Some(&ws)), Some(&night));
        assert_eq!(
            in_force(None, of_segments(&segments, chat, &[]), Some(&ws)),
            Some(&ws)
        );
        let mut deleted = segment(&["owl"], Some(late));
        deleted.deleted = true;
        assert_eq!(
            of_segments([&deleted], chat, &tags),
            None,
            "a deleted segment has no say"
        );
    }

    #[test]
    fn a_window_over_midnight_ends_the_next_morning_local_time() {
        let berlin = rules("Europe/Berlin", "22:00", "08:00");
        // 23:30 in Berlin (CET, UTC+1) is quiet until 08:00 local, 07:00 UTC.
        assert!(berlin.is_quiet(at("2026-12-01T22:30:00Z")));
        assert_eq!(
            berlin.quiet_until(at("2026-12-01T22:30:00Z")),
            at("2026-12-02T07:00:00Z")
        );
        assert!(!berlin.is_quiet(at("2026-12-02T07:00:00Z")));
        assert!(!berlin.is_quiet(at("2026-12-02T20:59:59Z")));
        assert!(berlin.is_quiet(at("2026-12-02T21:00:00Z")));
    }

    #[test]
    fn daylight_saving_changes_follow_the_zone() {
        // Spring forward in New York: 2026-03-08 02:00 EST becomes 03:00 EDT. A window ending at
        // 02:30 ends when the gap does, 03:00 EDT = 07:00 UTC.
        let ny = rules("America/New_York", "23:00", "02:30");
        assert_eq!(
            ny.quiet_until(at("2026-03-08T05:00:00Z")),
            at("2026-03-08T07:00:00Z")
        );
        // Fall back in Berlin: 2026-10-25 03:00 CEST becomes 02:00 CET; 02:00-02:59 happens
        // twice and is quiet both times in a 01:00-03:00 window.
        let berlin = rules("Europe/Berlin", "01:00", "03:00");
        assert!(berlin.is_quiet(at("2026-10-25T00:30:00Z"))); // 02:30 CEST
        assert!(berlin.is_quiet(at("2026-10-25T01:30:00Z"))); // 02:30 CET
        assert_eq!(
            berlin.quiet_until(at("2026-10-24T23:30:00Z")),
            at("2026-10-25T02:00:00Z")
        );
    }

    #[test]
    fn caps_count_the_local_day_and_week_and_defer_past_quiet_hours() {
        let mut capped = rules("Europe/Berlin", "22:00", "08:00");
        capped.max_per_day = Some(2);
        capped.max_per_week = Some(5);
        let now = at("2026-12-02T12:00:00Z"); // a Wednesday, 13:00 in Berlin
        assert_eq!(
            capped.periods(now),
            (at("2026-12-01T23:00:00Z"), at("2026-11-29T23:00:00Z"))
        );
        assert_eq!(
            capped.check(
                now,
                Sent {
                    today: 1,
                    this_week: 4
                }
            ),
            Ok(())
        );
        let day = capped
            .check(
                now,
                Sent {
                    today: 2,
                    this_week: 2,
                },
            )
            .unwrap_err();
        // Tomorrow starts at midnight, inside quiet hours: the first allowed moment is 08:00.
        assert_eq!(
            (day.rule, day.until),
            ("daily_cap", at("2026-12-03T07:00:00Z"))
        );
        let week = capped
            .check(
                now,
                Sent {
                    today: 0,
                    this_week: 5,
                },
            )
            .unwrap_err();
        assert_eq!(
            (week.rule, week.until),
            ("weekly_cap", at("2026-12-07T07:00:00Z"))
        );
    }

    #[test]
    fn rules_are_checked_when_set() {
        let mut bad = rules("Mars/Olympus", "22:00", "08:00");
        assert!(bad.validate().is_err());
        bad = rules("UTC", "08:00", "08:00");
        assert!(bad.validate().is_err());
        bad = rules("UTC", "22:00", "08:00");
        bad.max_per_day = Some(0);
        assert!(bad.validate().is_err());
        assert!(rules("Asia/Kolkata", "21:30", "07:15").validate().is_ok());
    }

    const ZONES: &[&str] = &[
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "America/Santiago",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
        "Pacific/Chatham",
        "America/St_Johns",
        "Africa/Casablanca",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Over random zones, windows and instants (DST transitions of 2026 included): the
        /// moment given is never quiet, and no earlier moment after the instant was allowed.
        #[test]
        fn the_moment_a_deferred_send_gets_is_the_first_allowed_one(
            zone in proptest::sample::select(ZONES),
            start in 0u32..1440,
            length in 1u32..1439,
            offset in 0i64..(366 * 24 * 60),
        ) {
            let end = (start + length) % 1440;
            let time = |m: u32| NaiveTime::from_hms_opt(m / 60, m % 60, 0).unwrap();
            let quiet = rules(zone, &time(start).format("%H:%M").to_string(), &time(end).format("%H:%M").to_string());
            let instant = at("2026-01-01T00:00:00Z") + Duration::minutes(offset);
            let allowed = quiet.quiet_until(instant);
            prop_assert!(allowed >= instant);
            prop_assert!(!quiet.is_quiet(allowed), "{allowed} is quiet in {zone}");
            let mut probe = instant;
            while probe < allowed {
                prop_assert!(quiet.is_quiet(probe), "{probe} was allowed before {allowed}");
                probe += Duration::minutes(1);
            }
            match quiet.check(instant, Sent::default()) {
                Ok(()) => prop_assert_eq!(allowed, instant),
                Err(violation) => prop_assert_eq!(violation.until, allowed),
            }
        }

        /// A cap's deferral lands in the next local day or week, outside quiet hours.
        #[test]
        fn a_capped_send_waits_for_the_next_period(
            zone in proptest::sample::select(ZONES),
            offset in 0i64..(366 * 24 * 60),
        ) {
            let mut capped = rules(zone, "22:00", "07:00");
            capped.max_per_day = Some(1);
            let instant = at("2026-01-01T00:00:00Z") + Duration::minutes(offset);
            let violation = capped.check(instant, Sent { today: 1, this_week: 1 }).unwrap_err();
            let (today, _) = capped.periods(instant);
            let (next, _) = capped.periods(violation.until);
            prop_assert!(next > today, "{} is still the day of {instant}", violation.until);
            prop_assert!(!capped.is_quiet(violation.until));
        }
    }
}
