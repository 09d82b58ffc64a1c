//! A workspace's rules for what its posts say and whom they reach, and the findings of a
//! dry-run: what Telegram will show, what breaks a rule, and what to do about it.
//!
//! [`evaluate`] is the one owner of these rules: the API's dry-run answers its findings, and
//! approval refuses a post with a finding of severity [`Severity::Block`]. It is pure: the
//! caller parses the text (with `markup`), gathers the targets' facts and audience verdicts
//! and the rate forecast ([`crate::forecast`]), and passes them in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audience::{OnViolation, Violation};
use crate::forecast::Forecast;
use crate::{DomainError, Id, MAX_TEXT_UTF16, ParseMode};

pub use markup::{Entity, ParseError, Parsed};

/// The text as Telegram will show it (the `markup` crate's parse), or why Telegram refuses it.
pub fn render(text: &str, parse_mode: Option<ParseMode>) -> Result<Parsed, ParseError> {
    markup::parse(text, parse_mode.map(Into::into))
}

/// At most this many domains in each list and forbidden words.
pub const MAX_ENTRIES: usize = 500;
/// Findings naming one chat, per rule; beyond them one finding counts the rest.
pub const MAX_CHAT_FINDINGS: usize = 20;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nothing to do.
    Info,
    /// A risk someone should look at; approval goes ahead.
    Warn,
    /// The post may not be approved until it is fixed.
    Block,
}

/// Links allowed and refused, by domain. A domain covers itself and its subdomains.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkDomains {
    /// When not empty, links to any other domain block.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Links to these domains block (even when also allowed).
    #[serde(default)]
    pub deny: Vec<String>,
}

/// A word or phrase the workspace does not want in its posts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForbiddenWord {
    pub word: String,
    #[serde(default = "block")]
    pub severity: Severity,
}

fn block() -> Severity {
    Severity::Block
}

/// A workspace's rule set. The default (no rules) leaves only Telegram's own limits and the
/// targeting rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    #[serde(default)]
    pub link_domains: LinkDomains,
    #[serde(default)]
    pub forbidden_words: Vec<ForbiddenWord>,
    /// A warning above this many UTF-16 units of visible text (Telegram's own limit, 4096,
    /// always blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
}

impl RuleSet {
    /// The rules as stored: domains lower-case without a leading `*.` or `.` or a trailing
    /// `.`, words trimmed, each once; refused when empty, malformed or too many.
    pub fn normalized(&self) -> Result<RuleSet, DomainError> {
        let invalid = |m: String| DomainError::InvalidRules(m);
        let domains = |list: &[String], name: &str| -> Result<Vec<String>, DomainError> {
            if list.len() > MAX_ENTRIES {
                return Err(invalid(format!(
                    "link_domains.{name} has more than {MAX_ENTRIES} domains"
                )));
            }
            let mut out: Vec<String> = Vec::with_capacity(list.len());
            for raw in list {
                let domain = raw
                    .trim()
                    .to_lowercase()
                    .trim_start_matches("*.")
                    .trim_matches('.')
                    .to_owned();
                let well_formed = !domain.is_empty()
                    && domain.len() <= 253
                    && domain
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
                    && !domain.contains("..");
                if !well_formed {
                    return Err(invalid(format!(
                        "link_domains.{name} entry {raw:?} is not a domain such as example.org"
                    )));
                }
                if !out.contains(&domain) {
                    out.push(domain);
                }
            }
            Ok(out)
        };
        if self.forbidden_words.len() > MAX_ENTRIES {
            return Err(invalid(format!(
                "forbidden_words has more than {MAX_ENTRIES} entries"
            )));
        }
        let mut words: Vec<ForbiddenWord> = Vec::with_capacity(self.forbidden_words.len());
        for entry in &self.forbidden_words {
            let word = entry.word.trim();
            if word.is_empty() || word.chars().count() > 100 {
                return Err(invalid(format!(
                    "forbidden word {:?} must be 1 to 100 characters",
                    entry.word
                )));
            }
            if !words
                .iter()
                .any(|w| w.word.to_lowercase() == word.to_lowercase())
            {
                words.push(ForbiddenWord {
                    word: word.to_owned(),
                    severity: entry.severity,
                });
            }
        }
        if self
            .max_length
            .is_some_and(|m| m == 0 || m > MAX_TEXT_UTF16)
        {
            return Err(invalid(format!(
                "max_length must be 1 to {MAX_TEXT_UTF16} (Telegram's limit)"
            )));
        }
        Ok(RuleSet {
            link_domains: LinkDomains {
                allow: domains(&self.link_domains.allow, "allow")?,
                deny: domains(&self.link_domains.deny, "deny")?,
            },
            forbidden_words: words,
            max_length: self.max_length,
        })
    }
}

/// One thing a dry-run found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A stable machine-readable code, e.g. `forbidden_word`.
    pub rule: &'static str,
    pub severity: Severity,
    /// What is wrong, in plain words.
    pub reason: String,
    /// What to do about it.
    pub fix: String,
    /// The chat it concerns, when it concerns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<Id>,
}

/// Whether the post exists yet: planning refuses targets that cannot be sent to, so for a
/// draft they block; for a planned post they were sendable at planning, and the gate skips
/// them if that changed (the recipient's choice wins), so they warn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Draft,
    Planned,
}

/// What is known about one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub chat_id: Id,
    /// The chat does not exist in the workspace.
    pub missing: bool,
    pub opted_out: bool,
    pub blocked: Option<String>,
    pub lawful_basis: bool,
    /// The chat's quiet hours or caps refuse a send at the publish time (and what they do).
    pub audience: Option<(Violation, OnViolation)>,
}

/// Everything [`evaluate`] looks at.
pub struct Assessment<'a> {
    /// The text as Telegram parses it, or why it cannot.
    pub text: &'a Result<markup::Parsed, markup::ParseError>,
    pub rules: &'a RuleSet,
    pub stage: Stage,
    pub targets: &'a [Target],
    pub forecast: Option<&'a Forecast>,
}

/// Every finding, most severe first (then in rule order).
pub fn evaluate(input: &Assessment<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    text_findings(input.text, input.rules, &mut findings);
    target_findings(input.targets, input.stage, &mut findings);
    if let Some(forecast) = input.forecast {
        forecast_findings(forecast, &mut findings);
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    findings
}

/// Whether any finding prevents approval.
pub fn blocks(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Block)
}

fn finding(rule: &'static str, severity: Severity, reason: String, fix: String) -> Finding {
    Finding {
        rule,
        severity,
        reason,
        fix,
        chat_id: None,
    }
}

fn text_findings(
    text: &Result<markup::Parsed, markup::ParseError>,
    rules: &RuleSet,
    out: &mut Vec<Finding>,
) {
    let parsed = match text {
        Ok(parsed) => parsed,
        Err(markup::ParseError::Entities(detail)) => {
            out.push(finding(
                "text_unparseable",
                Severity::Block,
                format!("Telegram cannot parse the text's markup: {detail}"),
                "escape the character Telegram names (in HTML write &lt; for <, &gt; for > and &amp; for &; in MarkdownV2 put \\ before it), close every tag you open, or send the text without parse_mode".into(),
            ));
            return;
        }
        Err(markup::ParseError::Empty) => {
            out.push(finding(
                "text_empty",
                Severity::Block,
                "nothing is left to show once the markup is parsed and the text trimmed".into(),
                "write some visible text".into(),
            ));
            return;
        }
    };
    let length = parsed.utf16_len();
    if length > MAX_TEXT_UTF16 {
        out.push(finding(
            "text_too_long",
            Severity::Block,
            format!(
                "the visible text is {length} units long; Telegram refuses more than {MAX_TEXT_UTF16} (UTF-16 units: an emoji often counts 2)"
            ),
            format!(
                "shorten it by {} units or split it into several posts",
                length - MAX_TEXT_UTF16
            ),
        ));
    } else if let Some(max) = rules.max_length
        && length > max
    {
        out.push(finding(
            "text_long",
            Severity::Warn,
            format!("the visible text is {length} units long, above the workspace's {max}"),
            format!("shorten it by {} units", length - max),
        ));
    }
    for (domain, source) in links(parsed) {
        let listed = |list: &[String]| list.iter().find(|d| covers(d, &domain)).cloned();
        if let Some(denied) = listed(&rules.link_domains.deny) {
            out.push(finding(
                "link_domain_denied",
                Severity::Block,
                format!("{source} points to {domain}, and the workspace's rules deny {denied}"),
                format!("remove the link to {domain} or point it to an allowed domain"),
            ));
        } else if !rules.link_domains.allow.is_empty()
            && listed(&rules.link_domains.allow).is_none()
        {
            out.push(finding(
                "link_domain_not_allowed",
                Severity::Block,
                format!(
                    "{source} points to {domain}, which is not among the workspace's allowed domains ({})",
                    rules.link_domains.allow.join(", ")
                ),
                format!(
                    "link to an allowed domain instead, or ask an admin to allow {domain}"
                ),
            ));
        }
    }
    for entry in &rules.forbidden_words {
        let count = occurrences(&parsed.text, &entry.word);
        if count > 0 {
            let times = if count == 1 {
                String::new()
            } else {
                format!(" ({count} times)")
            };
            out.push(finding(
                "forbidden_word",
                entry.severity,
                format!(
                    "the text says {:?}{times}, which the workspace's rules forbid",
                    entry.word
                ),
                format!("remove or replace {:?}", entry.word),
            ));
        }
    }
}

/// Whether `domain` (a rule's) covers `host`: itself or a subdomain.
fn covers(domain: &str, host: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// The domains the message links to, each once, with where the link is: text links' URLs and
/// http(s) URLs written in the visible text.
fn links(parsed: &markup::Parsed) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    let mut add = |host: Option<String>, source: String| {
        if let Some(host) = host
            && !found.iter().any(|(h, _)| *h == host)
        {
            found.push((host, source));
        }
    };
    for entity in &parsed.entities {
        if let markup::EntityKind::TextLink { url } = &entity.kind {
            add(url_host(url), format!("a text link ({url})"));
        }
    }
    let lower = parsed.text.to_lowercase();
    for scheme in ["http://", "https://"] {
        for (at, _) in lower.match_indices(scheme) {
            let url: String = lower[at..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            add(url_host(&url), "a URL in the text".into());
        }
    }
    found
}

/// The host of an http(s) URL (Telegram adds `http://` to a link without a scheme); `None`
/// for other schemes (`tg://`, `mailto:`) or no host.
fn url_host(url: &str) -> Option<String> {
    let url = url.trim().to_lowercase();
    let rest = match url.split_once("://") {
        Some(("http" | "https", rest)) => rest.to_owned(),
        Some(_) => return None,
        None if url.contains(':') && !url.contains('.') => return None,
        None if url.starts_with("mailto:") || url.starts_with("tg:") => return None,
        None => url,
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host
        .trim_end_matches(|c: char| !c.is_alphanumeric())
        .trim_matches('.');
    (!host.is_empty()).then(|| host.to_owned())
}

/// How often `word` occurs in `text`, case-insensitively, as a whole word (not inside a
/// longer one).
fn occurrences(text: &str, word: &str) -> usize {
    let text = text.to_lowercase();
    let word = word.to_lowercase();
    let part_of_word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(&word)
        .filter(|(at, _)| {
            let before = text[..*at].chars().next_back();
            let after = text[at + word.len()..].chars().next();
            !before.is_some_and(part_of_word) && !after.is_some_and(part_of_word)
        })
        .count()
}

fn target_findings(targets: &[Target], stage: Stage, out: &mut Vec<Finding>) {
    let refusal = match stage {
        Stage::Draft => Severity::Block,
        Stage::Planned => Severity::Warn,
    };
    let mut per_rule: Vec<(&'static str, usize)> = Vec::new();
    let mut push = |out: &mut Vec<Finding>, rule, severity, reason, fix, chat_id| {
        let seen = match per_rule.iter_mut().find(|(r, _)| *r == rule) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                per_rule.push((rule, 1));
                1
            }
        };
        if seen <= MAX_CHAT_FINDINGS {
            out.push(Finding {
                rule,
                severity,
                reason,
                fix,
                chat_id: Some(chat_id),
            });
        }
    };
    let skipped = match stage {
        Stage::Draft => "planning refuses it",
        Stage::Planned => "it will be skipped",
    };
    for target in targets {
        let chat = target.chat_id;
        if target.missing {
            push(
                out,
                "chat_not_found",
                Severity::Block,
                format!("chat {chat} is not connected in this workspace"),
                "connect the chat first, or remove it from chat_ids".into(),
                chat,
            );
        } else if let Some(why) = &target.blocked {
            push(
                out,
                "chat_blocked",
                refusal,
                format!("Telegram refuses chat {chat} for good ({why}); {skipped}"),
                "remove the chat from the post; for a group or channel, add the bot back with the right to post, then check the chat again".into(),
                chat,
            );
        } else if target.opted_out {
            push(
                out,
                "opted_out",
                refusal,
                format!("chat {chat} opted out of messages; {skipped}"),
                "remove the chat from the post: only the person can subscribe again (by /start)"
                    .into(),
                chat,
            );
        } else if !target.lawful_basis {
            push(
                out,
                "no_lawful_basis",
                refusal,
                format!("contact {chat} has no lawful basis recorded; {skipped}"),
                "record the contact's basis (PUT .../chats/{id}/lawful-basis) or remove it from the post".into(),
                chat,
            );
        } else if let Some((violation, on)) = &target.audience {
            let until = violation.until.to_rfc3339();
            let (reason, fix) = match on {
                OnViolation::Defer => (
                    format!(
                        "chat {chat}'s {} hold the send until {until}",
                        violation.reason
                    ),
                    format!("publish at {until} or later for the message to arrive on time"),
                ),
                OnViolation::Skip => (
                    format!(
                        "chat {chat}'s {} refuse the send, and its rules skip it: this person will not get the post",
                        violation.reason
                    ),
                    format!("publish at {until} or later, when the rules allow it"),
                ),
            };
            push(out, violation.rule, Severity::Warn, reason, fix, chat);
        }
    }
    for (rule, n) in per_rule {
        if n > MAX_CHAT_FINDINGS {
            let severity = out
                .iter()
                .find(|f| f.rule == rule)
                .map_or(Severity::Warn, |f| f.severity);
            out.push(finding(
                rule,
                severity,
                format!(
                    "{} more chats like those above ({n} in all)",
                    n - MAX_CHAT_FINDINGS
                ),
                "see the chats above; the same fix applies".into(),
            ));
        }
    }
}

fn forecast_findings(forecast: &Forecast, out: &mut Vec<Finding>) {
    let at = |t: DateTime<Utc>| t.to_rfc3339();
    for other in &forecast.collides_with {
        let delays_this = forecast.delayed_ms > 0;
        let delays_other = other.delayed_ms > 0;
        let severity = if delays_this || delays_other {
            Severity::Warn
        } else {
            Severity::Info
        };
        let mut reason = format!(
            "post {} goes out through the same bot from {} to {}",
            other.post_id,
            at(other.first_at),
            at(other.last_at)
        );
        if delays_other {
            reason.push_str(&format!(
                "; this post delays its last message by {}",
                seconds(other.delayed_ms)
            ));
        }
        out.push(finding(
            "rate_collision",
            severity,
            reason,
            format!(
                "to go out at full speed, publish after {} or before the other post",
                at(other.last_at)
            ),
        ));
    }
    if forecast.delayed_ms > 0 {
        out.push(finding(
            "rate_delay",
            Severity::Warn,
            format!(
                "posts already scheduled on the same bots make this post's last message go out {} later than it would alone ({})",
                seconds(forecast.delayed_ms),
                at(forecast.last_at)
            ),
            "publish at another time, or accept the delay".into(),
        ));
    }
}

fn seconds(ms: i64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn parsed(text: &str, html: bool) -> Result<markup::Parsed, markup::ParseError> {
        markup::parse(text, html.then_some(markup::ParseMode::Html))
    }

    fn run(text: &str, html: bool, rules: &RuleSet) -> Vec<Finding> {
        evaluate(&Assessment {
            text: &parsed(text, html),
            rules,
            stage: Stage::Draft,
            targets: &[],
            forecast: None,
        })
    }

    fn rules_of(allow: &[&str], deny: &[&str]) -> RuleSet {
        RuleSet {
            link_domains: LinkDomains {
                allow: allow.iter().map(|s| s.to_string()).collect(),
                deny: deny.iter().map(|s| s.to_string()).collect(),
            },
            ..RuleSet::default()
        }
        .normalized()
        .unwrap()
    }

    fn codes(findings: &[Finding]) -> Vec<(&'static str, Severity)> {
        findings.iter().map(|f| (f.rule, f.severity)).collect()
    }

    #[test]
    fn no_rules_no_findings() {
        assert!(
            run(
                "Hello <b>world</b> https://example.org",
                true,
                &RuleSet::default()
            )
            .is_empty()
        );
    }

    #[test]
    fn parse_errors_empty_and_too_long_block() {
        let f = run("1 < 2", true, &RuleSet::default());
        assert_eq!(codes(&f), [("text_unparseable", Severity::Block)]);
        assert!(
            f[0].reason.contains("Unsupported start tag"),
            "{}",
            f[0].reason
        );
        assert!(f[0].fix.contains("&lt;"));
        assert!(blocks(&f));
        assert_eq!(
            codes(&run(" ", false, &RuleSet::default())),
            [("text_empty", Severity::Block)]
        );
        let f = run(&"😀".repeat(2049), false, &RuleSet::default());
        assert_eq!(codes(&f), [("text_too_long", Severity::Block)]);
        assert!(f[0].fix.contains("by 2 units"));
    }

    #[test]
    fn a_workspace_length_warns() {
        let rules = RuleSet {
            max_length: Some(10),
            ..RuleSet::default()
        };
        assert_eq!(
            codes(&run("eleven char", false, &rules)),
            [("text_long", Severity::Warn)]
        );
        assert!(run("ten chars!", false, &rules).is_empty());
    }

    #[test]
    fn denied_domains_block_in_text_links_and_plain_urls_with_subdomains() {
        let rules = rules_of(&[], &["Evil.example"]);
        let f = run(
            r#"<a href="https://www.evil.example/x">click</a>"#,
            true,
            &rules,
        );
        assert_eq!(codes(&f), [("link_domain_denied", Severity::Block)]);
        assert!(f[0].reason.contains("www.evil.example"));
        let f = run("see HTTP://evil.example:8080/path.", false, &rules);
        assert_eq!(codes(&f), [("link_domain_denied", Severity::Block)]);
        // Neither a lookalike nor a parent domain matches.
        assert!(run("https://notevil.example https://example", false, &rules).is_empty());
        // The host is after the user info.
        assert_eq!(
            codes(&run("https://good.org@evil.example/", false, &rules)),
            [("link_domain_denied", Severity::Block)]
        );
    }

    #[test]
    fn an_allow_list_blocks_every_other_domain() {
        let rules = rules_of(&["example.org"], &[]);
        assert!(
            run(
                "https://docs.example.org/a and https://example.org",
                false,
                &rules
            )
            .is_empty()
        );
        let f = run(r#"<a href="http://other.net">x</a>"#, true, &rules);
        assert_eq!(codes(&f), [("link_domain_not_allowed", Severity::Block)]);
        assert!(f[0].fix.contains("other.net"));
        // Links that are not web links are no domain's.
        assert!(run(r#"<a href="tg://user?id=1">x</a>"#, true, &rules).is_empty());
    }

    #[test]
    fn forbidden_words_match_whole_words_case_insensitively() {
        let rules = RuleSet {
            forbidden_words: vec![
                ForbiddenWord {
                    word: "Free".into(),
                    severity: Severity::Block,
                },
                ForbiddenWord {
                    word: "act now".into(),
                    severity: Severity::Warn,
                },
            ],
            ..RuleSet::default()
        };
        let f = run(
            "<b>FREE</b> tickets, free! Act  now or ACT NOW.",
            true,
            &rules,
        );
        assert_eq!(
            codes(&f),
            [
                ("forbidden_word", Severity::Block),
                ("forbidden_word", Severity::Warn)
            ]
        );
        assert!(f[0].reason.contains("2 times"), "{}", f[0].reason);
        assert!(f[0].fix.contains("\"Free\""));
        assert!(run("freedom, carefree, free_ride", false, &rules).is_empty());
    }

    #[test]
    fn rule_sets_are_normalized_and_validated() {
        let rules = RuleSet {
            link_domains: LinkDomains {
                allow: vec![" *.Example.ORG. ".into(), "example.org".into()],
                deny: vec![],
            },
            forbidden_words: vec![
                ForbiddenWord {
                    word: " spam ".into(),
                    severity: Severity::Warn,
                },
                ForbiddenWord {
                    word: "SPAM".into(),
                    severity: Severity::Block,
                },
            ],
            max_length: None,
        }
        .normalized()
        .unwrap();
        assert_eq!(rules.link_domains.allow, ["example.org"]);
        assert_eq!(rules.forbidden_words.len(), 1);
        assert_eq!(rules.forbidden_words[0].word, "spam");
        for bad in ["", "exa mple.org", "https://example.org", "a..b"] {
            let rules = rules_of_unchecked(bad);
            assert!(
                matches!(rules.normalized(), Err(DomainError::InvalidRules(_))),
                "{bad:?}"
            );
        }
        let too_long = RuleSet {
            max_length: Some(5000),
            ..RuleSet::default()
        };
        assert!(too_long.normalized().is_err());
        let json: RuleSet = serde_json::from_str(r#"{"forbidden_words":[{"word":"x"}]}"#).unwrap();
        assert_eq!(json.forbidden_words[0].severity, Severity::Block);
    }

    fn rules_of_unchecked(deny: &str) -> RuleSet {
        RuleSet {
            link_domains: LinkDomains {
                allow: vec![],
                deny: vec![deny.into()],
            },
            ..RuleSet::default()
        }
    }

    fn target(n: u128) -> Target {
        Target {
            chat_id: Id::from_u128(n),
            missing: false,
            opted_out: false,
            blocked: None,
            lawful_basis: true,
            audience: None,
        }
    }

    fn on_targets(targets: &[Target], stage: Stage) -> Vec<Finding> {
        evaluate(&Assessment {
            text: &parsed("hi", false),
            rules: &RuleSet::default(),
            stage,
            targets,
            forecast: None,
        })
    }

    #[test]
    fn unreachable_targets_block_a_draft_and_warn_on_a_planned_post() {
        let targets = [
            Target {
                opted_out: true,
                ..target(1)
            },
            Target {
                blocked: Some("bot was blocked by the user".into()),
                ..target(2)
            },
            Target {
                lawful_basis: false,
                ..target(3)
            },
            Target {
                missing: true,
                ..target(4)
            },
            target(5),
        ];
        let f = on_targets(&targets, Stage::Draft);
        assert_eq!(
            codes(&f),
            [
                ("opted_out", Severity::Block),
                ("chat_blocked", Severity::Block),
                ("no_lawful_basis", Severity::Block),
                ("chat_not_found", Severity::Block)
            ]
        );
        assert_eq!(f[0].chat_id, Some(Id::from_u128(1)));
        let f = on_targets(&targets[..3], Stage::Planned);
        assert!(f.iter().all(|f| f.severity == Severity::Warn), "{f:?}");
        assert!(f[0].reason.contains("skipped"));
    }

    #[test]
    fn quiet_hours_and_caps_warn_with_the_moment_or_the_skip() {
        let until = Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap();
        let violation = Violation {
            rule: "quiet_hours",
            reason: "quiet hours 22:00-08:00 (UTC)".into(),
            until,
        };
        let targets = [
            Target {
                audience: Some((violation.clone(), OnViolation::Defer)),
                ..target(1)
            },
            Target {
                audience: Some((
                    Violation {
                        rule: "daily_cap",
                        ..violation
                    },
                    OnViolation::Skip,
                )),
                ..target(2)
            },
        ];
        let f = on_targets(&targets, Stage::Draft);
        assert_eq!(
            codes(&f),
            [
                ("quiet_hours", Severity::Warn),
                ("daily_cap", Severity::Warn)
            ]
        );
        assert!(
            f[0].reason.contains("2026-03-02T08:00:00+00:00"),
            "{}",
            f[0].reason
        );
        assert!(f[1].reason.contains("will not get the post"));
        assert!(!blocks(&f));
    }

    #[test]
    fn many_chats_are_named_up_to_a_limit_and_counted() {
        let targets: Vec<Target> = (0..25)
            .map(|n| Target {
                opted_out: true,
                ..target(n)
            })
            .collect();
        let f = on_targets(&targets, Stage::Planned);
        assert_eq!(f.len(), MAX_CHAT_FINDINGS + 1);
        assert_eq!(f[MAX_CHAT_FINDINGS].chat_id, None);
        assert!(f[MAX_CHAT_FINDINGS].reason.contains("5 more chats"));
    }

    #[test]
    fn collisions_warn_when_they_delay() {
        let t = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        let forecast = Forecast {
            first_at: t,
            last_at: t + chrono::TimeDelta::seconds(3),
            messages: 90,
            delayed_ms: 1000,
            collides_with: vec![crate::forecast::Collision {
                post_id: Id::from_u128(9),
                publish_at: t,
                first_at: t,
                last_at: t,
                messages: 1,
                delayed_ms: 0,
            }],
        };
        let f = evaluate(&Assessment {
            text: &parsed("hi", false),
            rules: &RuleSet::default(),
            stage: Stage::Draft,
            targets: &[],
            forecast: Some(&forecast),
        });
        assert_eq!(
            codes(&f),
            [
                ("rate_collision", Severity::Warn),
                ("rate_delay", Severity::Warn)
            ]
        );
        assert!(f[0].reason.contains(&Id::from_u128(9).to_string()));
        assert!(f[1].reason.contains("1.0 s"));
    }
}
