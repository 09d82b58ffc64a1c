use std::collections::HashMap;

use chrono::Utc;
use schemas::metadata;
use uuid::Uuid;

/// Who asked for a command and in which request: recorded as event metadata, never in payloads.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The id of the user or service account who asked (`identity`). Never a person's name.
    pub actor: String,
    pub correlation_id: String,
    pub causation_id: String,
}

impl RequestContext {
    /// A fresh context for `actor`: correlation and causation are a new request id.
    pub fn new(actor: impl Into<String>) -> Self {
        let id = Uuid::now_v7().to_string();
        Self {
            actor: actor.into(),
            correlation_id: id.clone(),
            causation_id: id,
        }
    }

    /// A context for work caused by an earlier event (keeps its correlation).
    pub fn caused_by(actor: impl Into<String>, correlation_id: &str, event_id: &str) -> Self {
        Self {
            actor: actor.into(),
            correlation_id: correlation_id.to_owned(),
            causation_id: event_id.to_owned(),
        }
    }

    pub(crate) fn metadata(&self, workspace_id: Uuid) -> HashMap<String, String> {
        HashMap::from([
            (metadata::ACTOR.to_owned(), self.actor.clone()),
            (
                metadata::CORRELATION_ID.to_owned(),
                self.correlation_id.clone(),
            ),
            (metadata::CAUSATION_ID.to_owned(), self.causation_id.clone()),
            (metadata::WORKSPACE_ID.to_owned(), workspace_id.to_string()),
            (metadata::OCCURRED_AT.to_owned(), Utc::now().to_rfc3339()),
        ])
    }
}
