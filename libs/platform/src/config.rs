//! Layered configuration: built-in defaults, then an optional TOML file (`HERALD_CONFIG` or
//! `--config`), then `HERALD_*` environment variables. Secrets are [`Secret`]s and never print.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::Secret;

/// Everything a Herald process needs to know about its surroundings.
#[derive(Debug, Clone)]
pub struct Config {
    /// PostgreSQL holding the event store and the projections (`HERALD_DATABASE_URL`).
    pub database_url: Secret<String>,
    /// How the HTTP API logs in (`HERALD_API_DATABASE_URL`): by default `database_url` with the
    /// user `herald_api`, which row-level security scopes to one workspace per request.
    pub api_database_url: Option<Secret<String>>,
    /// How the relay, projections and delivery log in (`HERALD_WORKER_DATABASE_URL`): by default
    /// `database_url` with the user `herald_worker`, which owns nothing.
    pub worker_database_url: Option<Secret<String>>,
    /// NATS server with JetStream (`HERALD_NATS_URL`).
    pub nats_url: String,
    /// Prefix of every NATS subject, stream and consumer name (`HERALD_NATS_PREFIX`); lets several
    /// Herald installations or test runs share one NATS server.
    pub nats_prefix: String,
    /// Where the HTTP API listens (`HERALD_HTTP_ADDR`).
    pub http_addr: SocketAddr,
    /// Base URL of the Telegram Bot API (`HERALD_TELEGRAM_API_URL`). `None` means sandbox mode:
    /// delivery goes to the built-in emulator and never reaches a real chat.
    pub telegram_api_url: Option<String>,
    /// Where the sandbox Telegram emulator listens in sandbox mode (`HERALD_SANDBOX_ADDR`).
    pub sandbox_addr: SocketAddr,
    /// Bearer token of the administrator (`HERALD_ADMIN_TOKEN`).
    pub admin_token: Option<Secret<String>>,
    /// Base64 32-byte key encrypting bot tokens at rest (`HERALD_SECRET_KEY`).
    pub secret_key: Option<Secret<String>>,
    /// Keys a rotation replaces, still able to decrypt until `herald keys rotate` is done
    /// (`HERALD_PREVIOUS_SECRET_KEYS`, comma-separated).
    pub previous_secret_keys: Vec<Secret<String>>,
    /// A delivery worker silent for this long is considered dead: its partitions move to other
    /// workers and its unfinished sends are flagged in doubt (`HERALD_DELIVERY_WORKER_TIMEOUT`,
    /// seconds).
    pub delivery_worker_timeout: std::time::Duration,
    /// Local state of a single-machine installation, e.g. the generated secret key (`HERALD_DATA_DIR`).
    pub data_dir: PathBuf,
    /// The desk's built web assets, served at the API's origin (`HERALD_DESK_DIR`; `scripts/herald`
    /// builds them into `desk/dist`).
    pub desk_dir: PathBuf,
    /// The public base URL Telegram pushes the bots' updates to (`HERALD_BOT_WEBHOOK_URL`);
    /// `None`: the listener polls (`getUpdates`).
    pub bot_webhook_url: Option<String>,
    /// Where the webhook receiver listens, behind the proxy serving that URL
    /// (`HERALD_BOT_WEBHOOK_ADDR`).
    pub bot_webhook_addr: SocketAddr,
}

/// The file layer: every field optional, unknown keys refused so typos are caught.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layer {
    database_url: Option<Secret<String>>,
    api_database_url: Option<Secret<String>>,
    worker_database_url: Option<Secret<String>>,
    nats_url: Option<String>,
    nats_prefix: Option<String>,
    http_addr: Option<SocketAddr>,
    telegram_api_url: Option<String>,
    sandbox_addr: Option<SocketAddr>,
    admin_token: Option<Secret<String>>,
    secret_key: Option<Secret<String>>,
    #[serde(default)]
    previous_secret_keys: Vec<Secret<String>>,
    data_dir: Option<PathBuf>,
    desk_dir: Option<PathBuf>,
    bot_webhook_url: Option<String>,
    bot_webhook_addr: Option<SocketAddr>,
    delivery_worker_timeout: Option<u64>,
}

impl Config {
    /// Loads the configuration of this process: `file` (or `HERALD_CONFIG`), then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("HERALD_CONFIG").map(PathBuf::from));
        let text = match &file {
            Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the configuration file {}", path.display())
            })?),
            None => None,
        };
        Self::from_sources(text.as_deref(), |key| std::env::var(key).ok())
    }

    /// Builds a configuration from a TOML text and an environment lookup (testable without IO).
    pub fn from_sources(
        file: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let layer: Layer = match file {
            Some(text) => toml::from_str(text).context("the configuration file is not valid")?,
            None => Layer::default(),
        };
        let var = |key: &str| env(key).filter(|v| !v.trim().is_empty());
        let addr = |key: &str,
                    file: Option<SocketAddr>,
                    default: &str|
         -> anyhow::Result<SocketAddr> {
            match var(key) {
                Some(v) => v
                    .parse()
                    .with_context(|| format!("{key}={v:?} is not an address like 127.0.0.1:8080")),
                None => Ok(file.unwrap_or_else(|| default.parse().expect("valid default address"))),
            }
        };
        let nats_prefix = var("HERALD_NATS_PREFIX")
            .or(layer.nats_prefix)
            .unwrap_or_else(|| "herald".into());
        if nats_prefix.is_empty()
            || !nats_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            anyhow::bail!(
                "HERALD_NATS_PREFIX must be letters, digits, '_' or '-' (it names subjects and streams)"
            );
        }
        let worker_timeout = match var("HERALD_DELIVERY_WORKER_TIMEOUT") {
            Some(v) => v.parse().ok().filter(|s| *s > 0).with_context(|| {
                format!("HERALD_DELIVERY_WORKER_TIMEOUT={v:?} is not a positive number of seconds")
            })?,
            None => layer.delivery_worker_timeout.unwrap_or(2),
        };
        Ok(Self {
            database_url: var("HERALD_DATABASE_URL")
                .map(Secret::new)
                .or(layer.database_url)
                .unwrap_or_else(|| Secret::new("postgres://postgres@127.0.0.1:5432/herald".into())),
            api_database_url: var("HERALD_API_DATABASE_URL")
                .map(Secret::new)
                .or(layer.api_database_url),
            worker_database_url: var("HERALD_WORKER_DATABASE_URL")
                .map(Secret::new)
                .or(layer.worker_database_url),
            nats_url: var("HERALD_NATS_URL")
                .or(layer.nats_url)
                .unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
            nats_prefix,
            http_addr: addr("HERALD_HTTP_ADDR", layer.http_addr, "127.0.0.1:8080")?,
            telegram_api_url: var("HERALD_TELEGRAM_API_URL").or(layer.telegram_api_url),
            sandbox_addr: addr("HERALD_SANDBOX_ADDR", layer.sandbox_addr, "127.0.0.1:8081")?,
            admin_token: var("HERALD_ADMIN_TOKEN")
                .map(Secret::new)
                .or(layer.admin_token),
            secret_key: var("HERALD_SECRET_KEY")
                .map(Secret::new)
                .or(layer.secret_key),
            previous_secret_keys: match var("HERALD_PREVIOUS_SECRET_KEYS") {
                Some(keys) => keys
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(|k| Secret::new(k.to_owned()))
                    .collect(),
                None => layer.previous_secret_keys,
            },
            data_dir: var("HERALD_DATA_DIR")
                .map(PathBuf::from)
                .or(layer.data_dir)
                .unwrap_or_else(|| ".herald".into()),
            desk_dir: var("HERALD_DESK_DIR")
                .map(PathBuf::from)
                .or(layer.desk_dir)
                .unwrap_or_else(|| "desk/dist".into()),
            bot_webhook_url: var("HERALD_BOT_WEBHOOK_URL").or(layer.bot_webhook_url),
            bot_webhook_addr: addr(
                "HERALD_BOT_WEBHOOK_ADDR",
                layer.bot_webhook_addr,
                "127.0.0.1:8082",
            )?,
            delivery_worker_timeout: std::time::Duration::from_secs(worker_timeout),
        })
    }

    /// True when no real Bot API is configured: Herald talks to its emulator only.
    pub fn sandbox_mode(&self) -> bool {
        self.telegram_api_url.is_none()
    }

    /// The Bot API base URL delivery talks to: the real one, or the sandbox emulator.
    pub fn bot_api_url(&self) -> String {
        self.telegram_api_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.sandbox_addr))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_are_local_and_sandboxed() {
        let config = Config::from_sources(None, env(&[])).unwrap();
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:8080");
        assert!(config.sandbox_mode());
        assert_eq!(config.bot_api_url(), "http://127.0.0.1:8081");
        assert_eq!(config.nats_prefix, "herald");
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        let file = "nats_url = \"nats://file:4222\"\nhttp_addr = \"127.0.0.1:9000\"\nadmin_token = \"from-file\"";
        let config =
            Config::from_sources(Some(file), env(&[("HERALD_HTTP_ADDR", "127.0.0.1:9100")]))
                .unwrap();
        assert_eq!(config.nats_url, "nats://file:4222");
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:9100");
        assert_eq!(config.admin_token.as_ref().unwrap().expose(), "from-file");
    }

    #[test]
    fn mistakes_are_reported_and_secrets_not_printed() {
        assert!(Config::from_sources(Some("nats_ur = \"x\""), env(&[])).is_err());
        let err = Config::from_sources(None, env(&[("HERALD_HTTP_ADDR", "nope")])).unwrap_err();
        assert!(err.to_string().contains("HERALD_HTTP_ADDR"));
        let config = Config::from_sources(
            None,
            env(&[
                ("HERALD_ADMIN_TOKEN", "hunter2"),
                ("HERALD_DATABASE_URL", "postgres://u:pw@h/db"),
            ]),
        )
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("pw@"));
    }
}
