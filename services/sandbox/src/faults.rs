//! Injected faults: the ways a real `sendMessage` can fail, on demand.
//!
//! Every delivery failure path of Herald has to be testable over real HTTP,
//! so each [`Fault`] reproduces the exact answer (status, description,
//! `parameters`) or the broken connection Telegram would produce.

use serde::{Deserialize, Serialize};

/// Applies `fault` to the next `times` `sendMessage` requests that match
/// `chat_id` and `bot_id` (None matches any), then is spent.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct FaultRule {
    #[serde(default)]
    pub chat_id: Option<i64>,
    #[serde(default)]
    pub bot_id: Option<i64>,
    pub fault: Fault,
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

impl FaultRule {
    /// A rule applying `fault` once to any chat of any bot.
    pub fn new(fault: Fault) -> Self {
        Self {
            chat_id: None,
            bot_id: None,
            fault,
            times: 1,
        }
    }

    pub fn for_chat(mut self, chat_id: i64) -> Self {
        self.chat_id = Some(chat_id);
        self
    }

    pub fn for_bot(mut self, bot_id: i64) -> Self {
        self.bot_id = Some(bot_id);
        self
    }

    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }

    fn matches(&self, bot_id: i64, chat_id: i64) -> bool {
        self.times > 0
            && self.chat_id.is_none_or(|id| id == chat_id)
            && self.bot_id.is_none_or(|id| id == bot_id)
    }
}

/// What happens to a matching request.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// 429 "Too Many Requests: retry after N" with `parameters.retry_after`.
    RetryAfter { retry_after: u32 },
    /// 500 "Internal Server Error"; the message is not recorded.
    ServerError,
    /// 403 with this description, e.g. "Forbidden: bot was blocked by the user".
    Forbidden { description: String },
    /// 400 "Bad Request: chat not found".
    ChatNotFound,
    /// 400 "Bad Request: group chat was upgraded to a supergroup chat" with
    /// `parameters.migrate_to_chat_id`.
    Migrate { to_chat_id: i64 },
    /// 401 "Unauthorized" (what Telegram answers for a revoked token).
    Unauthorized,
    /// Answers normally (limits included), but only after `ms` milliseconds.
    Latency { ms: u64 },
    /// Records the message as delivered (bypassing the rate limits, though
    /// it counts against them), then breaks the connection mid-answer: the
    /// client cannot know whether the message went out.
    AcceptThenDrop,
}

/// The active fault rules, in insertion order.
#[derive(Debug, Default)]
pub(crate) struct FaultBook {
    rules: Vec<FaultRule>,
}

impl FaultBook {
    pub(crate) fn push(&mut self, rule: FaultRule) {
        self.rules.push(rule);
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    pub(crate) fn active(&self) -> Vec<FaultRule> {
        self.rules.clone()
    }

    /// The fault for this request, if any rule matches; spends one use of
    /// the first matching rule.
    pub(crate) fn take(&mut self, bot_id: i64, chat_id: i64) -> Option<Fault> {
        let index = self
            .rules
            .iter()
            .position(|rule| rule.matches(bot_id, chat_id))?;
        let rule = &mut self.rules[index];
        rule.times -= 1;
        let fault = rule.fault.clone();
        if rule.times == 0 {
            self.rules.remove(index);
        }
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_applies_times_then_is_spent() {
        let mut book = FaultBook::default();
        book.push(FaultRule::new(Fault::ChatNotFound).times(2));
        assert_eq!(book.take(1, 1), Some(Fault::ChatNotFound));
        assert_eq!(book.take(1, 2), Some(Fault::ChatNotFound));
        assert_eq!(book.take(1, 3), None);
        assert!(book.active().is_empty());
    }

    #[test]
    fn rule_matches_only_its_chat_and_bot() {
        let mut book = FaultBook::default();
        book.push(FaultRule::new(Fault::Unauthorized).for_chat(5).for_bot(7));
        assert_eq!(book.take(7, 6), None);
        assert_eq!(book.take(8, 5), None);
        assert_eq!(book.take(7, 5), Some(Fault::Unauthorized));
    }

    #[test]
    fn first_matching_rule_wins() {
        let mut book = FaultBook::default();
        book.push(FaultRule::new(Fault::ServerError).for_chat(1));
        book.push(FaultRule::new(Fault::ChatNotFound));
        assert_eq!(book.take(9, 2), Some(Fault::ChatNotFound));
        assert_eq!(book.take(9, 1), Some(Fault::ServerError));
        assert_eq!(book.take(9, 1), None);
    }

    #[test]
    fn json_shape() {
        let rule: FaultRule = serde_json::from_str(
            r#"{"chat_id": -100, "fault": {"kind": "retry_after", "retry_after": 5}}"#,
        )
        .expect("valid rule");
        assert_eq!(
            rule,
            FaultRule::new(Fault::RetryAfter { retry_after: 5 }).for_chat(-100)
        );
        let drop: FaultRule =
            serde_json::from_str(r#"{"fault": {"kind": "accept_then_drop"}, "times": 3}"#)
                .expect("valid rule");
        assert_eq!(drop.fault, Fault::AcceptThenDrop);
        assert_eq!(drop.times, 3);
        assert!(serde_json::from_str::<FaultRule>(r#"{"fault": {"kind": "nope"}}"#).is_err());
    }
}
