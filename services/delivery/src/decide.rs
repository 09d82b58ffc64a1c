//! What to do with a claimed delivery: a pure function of the delivery, the state read fresh at
//! the moment of sending, and Telegram's answer. No IO, so every rule is unit-tested.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use domain::audience::{AudienceRules, OnViolation, Sent};
use domain::{DeliveryOutcome, FailureClass, PostState};

use crate::telegram::SendResult;

/// A post is sent early by at most this much (the claim runs on a tick).
const EARLY: TimeDelta = TimeDelta::milliseconds(500);

/// Whether the bot can be used.
#[derive(Debug, Clone, PartialEq)]
pub enum BotState {
    Ready,
    /// Paused by the circuit breaker (401): its queue waits for a new token.
    Paused,
    /// Not usable at all (unknown, token unreadable).
    Unusable(String),
}

/// What is true right now, read after every wait and immediately before the request.
#[derive(Debug, Clone)]
pub struct Fresh {
    pub post_state: PostState,
    pub publish_at: Option<DateTime<Utc>>,
    pub opted_out: bool,
    pub blocked: Option<String>,
    pub bot: BotState,
    /// This worker still leases the chat's partition.
    pub lease_held: bool,
    /// Sent to the chat in the last hour (by any worker), its cap, and the oldest such send.
    pub chat_sent_last_hour: u32,
    pub chat_hourly_cap: u32,
    pub chat_oldest_in_hour: Option<DateTime<Utc>>,
    /// The recipient's quiet hours and caps (the chat's own, else its workspace's), with what
    /// it was sent in its current local day and week.
    pub audience: Option<(AudienceRules, Sent)>,
    /// What stops the post's text from being read, when it is sealed (decision 0013).
    pub text: TextState,
}

/// Whether the post's text can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextState {
    #[default]
    Readable,
    /// Its key was destroyed (`POST .../posts/{id}/erase`): there is nothing left to send.
    Erased,
    /// No configured secret key opens its key (a key removed too early after a rotation): the
    /// text is there, this process cannot read it yet.
    Unreadable,
}

/// The delivery's own history that matters to the rules.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// This attempt's number (1 for the first).
    pub attempts: i32,
    pub max_attempts: i32,
    /// Already resent once after a migration.
    pub migrated: bool,
}

/// The next step for a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Everything still holds: send now.
    Send,
    /// An outcome to record as an event; the delivery is done.
    Record(DeliveryOutcome),
    /// 403: the chat is unreachable; record that and fail the delivery.
    BlockChat { reason: String },
    /// 401: pause the bot; the delivery waits, untried, for a new token.
    PauseBot { reason: String },
    /// Telegram refused for now (429, 5xx): try again after `after`.
    RetryLater { after: Duration, rate_limited: bool },
    /// Not yet: the post was moved later, or the chat's hourly cap is reached until `until`.
    Wait {
        until: Option<DateTime<Utc>>,
        reason: &'static str,
    },
    /// Not sent, nothing to record: bot paused, no budget, partition lost. Untried.
    Hold,
    /// The group became a supergroup: send once more, to its new id.
    Migrated { to: i64 },
    /// The post is no longer approved: nothing to send, ever.
    Cancelled,
}

/// Before sending: still wanted, allowed and possible?
pub fn before_send(fresh: &Fresh, now: DateTime<Utc>) -> Next {
    if !fresh.lease_held {
        return Next::Hold;
    }
    if fresh.post_state != PostState::Approved {
        return Next::Cancelled;
    }
    if let Some(at) = fresh.publish_at.filter(|at| *at > now + EARLY) {
        return Next::Wait {
            until: Some(at),
            reason: "rescheduled",
        };
    }
    if fresh.opted_out {
        return Next::Record(DeliveryOutcome::Failed {
            class: FailureClass::OptedOut,
            detail: "the chat opted out before the post went out; nothing was sent".into(),
        });
    }
    if let Some(reason) = &fresh.blocked {
        return Next::Record(DeliveryOutcome::Failed {
            class: FailureClass::Permanent,
            detail: format!("the chat is unreachable ({reason}); nothing was sent"),
        });
    }
    match fresh.text {
        TextState::Readable => {}
        TextState::Erased => {
            return Next::Record(DeliveryOutcome::Failed {
                class: FailureClass::Permanent,
                detail: "the post's text was erased; nothing was sent".into(),
            });
        }
        // Untried until the operator adds the previous secret key.
        TextState::Unreadable => return Next::Hold,
    }
    match &fresh.bot {
        BotState::Ready => {}
        BotState::Paused => return Next::Hold,
        BotState::Unusable(reason) => {
            return Next::Record(DeliveryOutcome::Failed {
                class: FailureClass::Permanent,
                detail: format!("the bot cannot be used: {reason}"),
            });
        }
    }
    if let Some((rules, sent)) = &fresh.audience
        && let Err(violation) = rules.check(now, *sent)
    {
        return match rules.on_violation {
            OnViolation::Defer => Next::Wait {
                until: Some(violation.until),
                reason: violation.rule,
            },
            OnViolation::Skip => Next::Record(DeliveryOutcome::Failed {
                class: FailureClass::Skipped,
                detail: format!(
                    "skipped by the audience rules ({}); nothing was sent",
                    violation.reason
                ),
            }),
        };
    }
    if fresh.chat_sent_last_hour >= fresh.chat_hourly_cap {
        return Next::Wait {
            until: Some(
                fresh
                    .chat_oldest_in_hour
                    .map_or(now + TimeDelta::minutes(1), |t| t + TimeDelta::hours(1)),
            ),
            reason: "the chat's hourly cap is reached",
        };
    }
    Next::Send
}

/// After Telegram answered (or did not).
pub fn after_answer(answer: SendResult, facts: Facts) -> Next {
    match answer {
        SendResult::Sent { message_id } => Next::Record(DeliveryOutcome::Delivered {
            telegram_message_id: message_id,
        }),
        SendResult::RetryAfter(after) => Next::RetryLater {
            after,
            rate_limited: true,
        },
        SendResult::Permanent(detail) => Next::Record(DeliveryOutcome::Failed {
            class: FailureClass::Permanent,
            detail,
        }),
        SendResult::Blocked(reason) => Next::BlockChat { reason },
        SendResult::Unauthorized => Next::PauseBot {
            reason:
                "Telegram refused the bot token (401 Unauthorized): register a new token to resume"
                    .into(),
        },
        SendResult::Migrated(to) if !facts.migrated => Next::Migrated { to },
        SendResult::Migrated(to) => Next::Record(DeliveryOutcome::Failed {
            class: FailureClass::Permanent,
            detail: format!("the chat migrated again (to {to}) after a migration; not sent"),
        }),
        SendResult::Transient(detail) if facts.attempts >= facts.max_attempts => {
            Next::Record(DeliveryOutcome::Failed {
                class: FailureClass::Transient,
                detail: format!("gave up after {} attempts: {detail}", facts.attempts),
            })
        }
        SendResult::Transient(_) => Next::RetryLater {
            after: crate::backoff(facts.attempts),
            rate_limited: false,
        },
        SendResult::InDoubt(detail) => Next::Record(DeliveryOutcome::Unknown { detail }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    fn fresh() -> Fresh {
        Fresh {
            post_state: PostState::Approved,
            publish_at: Some(now()),
            opted_out: false,
            blocked: None,
            bot: BotState::Ready,
            lease_held: true,
            chat_sent_last_hour: 0,
            chat_hourly_cap: 60,
            chat_oldest_in_hour: None,
            audience: None,
            text: TextState::Readable,
        }
    }

    #[test]
    fn quiet_hours_and_caps_defer_or_skip_as_the_rules_say() {
        use domain::audience::QuietHours;
        // 12:00 UTC is 14:00 in Berlin (summer time): quiet from 13:00 to 15:00.
        let mut rules = AudienceRules {
            time_zone: "Europe/Berlin".into(),
            quiet_hours: Some(QuietHours {
                start: "13:00".parse().unwrap(),
                end: "15:00".parse().unwrap(),
            }),
            max_per_day: None,
            max_per_week: None,
            on_violation: OnViolation::Defer,
        };
        let with = |rules: &AudienceRules, sent: Sent| Fresh {
            audience: Some((rules.clone(), sent)),
            ..fresh()
        };
        assert_eq!(
            before_send(&with(&rules, Sent::default()), now()),
            Next::Wait {
                until: Some("2026-06-01T13:00:00Z".parse().unwrap()),
                reason: "quiet_hours"
            }
        );
        rules.on_violation = OnViolation::Skip;
        assert!(matches!(
            before_send(&with(&rules, Sent::default()), now()),
            Next::Record(DeliveryOutcome::Failed {
                class: FailureClass::Skipped,
                ..
            })
        ));
        rules.quiet_hours = None;
        rules.max_per_day = Some(3);
        rules.on_violation = OnViolation::Defer;
        assert_eq!(
            before_send(
                &with(
                    &rules,
                    Sent {
                        today: 2,
                        this_week: 2
                    }
                ),
                now()
            ),
            Next::Send
        );
        assert_eq!(
            before_send(
                &with(
                    &rules,
                    Sent {
                        today: 3,
                        this_week: 3
                    }
                ),
                now()
            ),
            Next::Wait {
                until: Some("2026-06-01T22:00:00Z".parse().unwrap()),
                reason: "daily_cap"
            }
        );
        // An opt-out still wins over a deferral.
        let opted_out = Fresh {
            opted_out: true,
            ..with(
                &rules,
                Sent {
                    today: 3,
                    this_week: 3,
                },
            )
        };
        assert!(matches!(
            before_send(&opted_out, now()),
            Next::Record(DeliveryOutcome::Failed {
                class: FailureClass::OptedOut,
                ..
            })
        ));
    }

    fn facts(attempts: i32) -> Facts {
        Facts {
            attempts,
            max_attempts: 5,
            migrated: false,
        }
    }

    #[test]
    fn sends_when_everything_still_holds() {
        assert_eq!(before_send(&fresh(), now()), Next::Send);
    }

    #[test]
    fn every_later_decision_wins_over_the_claim() {
        let cancelled = Fresh {
            post_state: PostState::Cancelled,
            ..fresh()
        };
        assert_eq!(before_send(&cancelled, now()), Next::Cancelled);
        let opted_out = Fresh {
            opted_out: true,
            ..fresh()
        };
        assert!(matches!(
            before_send(&opted_out, now()),
            Next::Record(DeliveryOutcome::Failed {
                class: FailureClass::OptedOut,
                ..
            })
        ));
        let blocked = Fresh {
            blocked: Some("bot was blocked by the user".into()),
            ..fresh()
        };
        assert!(matches!(
            before_send(&blocked, now()),
            Next::Record(DeliveryOutcome::Failed {
                class: FailureClass::Permanent,
                ..
            })
        ));
        let paused = Fresh {
            bot: BotState::Paused,
            ..fresh()
        };
        assert_eq!(before_send(&paused, now()), Next::Hold);
        let erased = Fresh {
            text: TextState::Erased,
            ..fresh()
        };
        assert!(matches!(
            before_send(&erased, now()),
            Next::Record(DeliveryOutcome::Failed {
                class: FailureClass::Permanent,
                ..
            })
        ));
        let unreadable = Fresh {
            text: TextState::Unreadable,
            ..fresh()
        };
        assert_eq!(before_send(&unreadable, now()), Next::Hold);
        let later = now() + TimeDelta::minutes(5);
        let rescheduled = Fresh {
            publish_at: Some(later),
            ..fresh()
        };
        assert_eq!(
            before_send(&rescheduled, now()),
            Next::Wait {
                until: Some(later),
                reason: "rescheduled"
            }
        );
    }

    #[test]
    fn a_worker_that_lost_the_partition_does_not_send() {
        let fenced = Fresh {
            lease_held: false,
            ..fresh()
        };
        assert_eq!(before_send(&fenced, now()), Next::Hold);
    }

    #[test]
    fn the_chat_cap_counts_every_worker_and_waits_for_the_oldest_send_to_age_out() {
        let oldest = now() - TimeDelta::minutes(40);
        let capped = Fresh {
            chat_sent_last_hour: 60,
            chat_oldest_in_hour: Some(oldest),
            audience: None,
            ..fresh()
        };
        assert_eq!(
            before_send(&capped, now()),
            Next::Wait {
                until: Some(oldest + TimeDelta::hours(1)),
                reason: "the chat's hourly cap is reached"
            }
        );
    }

    #[test]
    fn answers_map_to_steps() {
        assert_eq!(
            after_answer(SendResult::Sent { message_id: 9 }, facts(1)),
            Next::Record(DeliveryOutcome::Delivered {
                telegram_message_id: 9
            })
        );
        assert_eq!(
            after_answer(SendResult::RetryAfter(Duration::from_secs(3)), facts(1)),
            Next::RetryLater {
                after: Duration::from_secs(3),
                rate_limited: true
            }
        );
        assert!(matches!(
            after_answer(SendResult::Transient("502".into()), facts(2)),
            Next::RetryLater {
                rate_limited: false,
                ..
            }
        ));
        assert!(matches!(
            after_answer(SendResult::Transient("502".into()), facts(5)),
            Next::Record(DeliveryOutcome::Failed {
                class: FailureClass::Transient,
                ..
            })
        ));
        assert_eq!(
            after_answer(SendResult::Migrated(-100), facts(1)),
            Next::Migrated { to: -100 }
        );
        let migrated = Facts {
            migrated: true,
            ..facts(1)
        };
        assert!(matches!(
            after_answer(SendResult::Migrated(-101), migrated),
            Next::Record(DeliveryOutcome::Failed { .. })
        ));
        assert!(matches!(
            after_answer(SendResult::InDoubt("timeout".into()), facts(1)),
            Next::Record(DeliveryOutcome::Unknown { .. })
        ));
        assert!(matches!(
            after_answer(SendResult::Unauthorized, facts(1)),
            Next::PauseBot { .. }
        ));
        assert!(matches!(
            after_answer(SendResult::Blocked("kicked".into()), facts(1)),
            Next::BlockChat { .. }
        ));
    }
}
