//! NATS JetStream: connection, the event stream, and the naming scheme shared by every service.
//!
//! Subjects: `<prefix>.events.<aggregate_type>.<workspace_id>.<aggregate_id>`; one stream
//! `<PREFIX>_EVENTS` captures them all; durable consumers are named `<prefix>_<name>`.

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, stream};

/// Names of subjects, streams and consumers under one prefix.
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.prefix.to_uppercase())
    }
    /// Every event subject.
    pub fn all_events(&self) -> String {
        format!("{}.events.>", self.prefix)
    }
    pub fn event_subject(
        &self,
        aggregate_type: &str,
        workspace_id: &str,
        aggregate_id: &str,
    ) -> String {
        let workspace = if workspace_id.is_empty() {
            "_"
        } else {
            workspace_id
        };
        format!(
            "{}.events.{aggregate_type}.{workspace}.{aggregate_id}",
            self.prefix
        )
    }
    pub fn consumer(&self, name: &str) -> String {
        format!("{}_{name}", self.prefix)
    }
}

/// A connection to NATS with JetStream.
#[derive(Clone)]
pub struct Bus {
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub names: Names,
}

impl Bus {
    /// Connects (waiting up to `patience` for the server) and makes sure the event stream exists.
    pub async fn connect(url: &str, prefix: &str, patience: Duration) -> anyhow::Result<Self> {
        let deadline = tokio::time::Instant::now() + patience;
        let client = loop {
            match async_nats::ConnectOptions::new()
                .connection_timeout(Duration::from_secs(5))
                .connect(url)
                .await
            {
                Ok(client) => break client,
                Err(error) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(%error, "nats not reachable yet, retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(error) => {
                    return Err(error).context(
                        "cannot connect to NATS: check HERALD_NATS_URL and that nats-server runs with JetStream (-js)",
                    );
                }
            }
        };
        let jetstream = jetstream::new(client.clone());
        let bus = Self {
            client,
            jetstream,
            names: Names::new(prefix),
        };
        bus.ensure_stream().await?;
        Ok(bus)
    }

    /// The event stream's configuration: no limits, so it keeps every message (the relay checks
    /// that it holds exactly what PostgreSQL journalled, and rebuilds it otherwise).
    pub fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.names.events_stream(),
            subjects: vec![self.names.all_events()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            // Re-publishing after a relay crash is deduplicated by Nats-Msg-Id in this window;
            // projections also ignore per-aggregate sequences they have already applied.
            duplicate_window: Duration::from_secs(300),
            ..Default::default()
        }
    }

    /// Creates the event stream if it does not exist.
    pub async fn ensure_stream(&self) -> anyhow::Result<()> {
        self.jetstream
            .get_or_create_stream(self.stream_config())
            .await
            .context(
                "cannot create the JetStream event stream: is JetStream enabled (nats-server -js)?",
            )?;
        Ok(())
    }

    /// True when the server answers (for readiness checks).
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix() {
        let names = Names::new("t_1");
        assert_eq!(names.events_stream(), "T_1_EVENTS");
        assert_eq!(names.all_events(), "t_1.events.>");
        assert_eq!(
            names.event_subject("Post", "ws", "p"),
            "t_1.events.Post.ws.p"
        );
        assert_eq!(names.consumer("calendar"), "t_1_calendar");
    }
}
