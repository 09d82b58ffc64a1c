//! Assembles Herald's services from configuration. `main.rs` only parses the command line;
//! tests build the same services through [`Herald`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use platform::nats::Bus;
use platform::{Config, Secret, Shutdown, TokenCipher};
use projections::{Audit, Calendar, ChatList, PostList};
use sqlx::PgPool;
use store::EventStore;
use tokio::net::TcpListener;

pub mod keys;

/// Every projection `herald projections rebuild` can rebuild.
pub const PROJECTIONS: &[&str] = &[
    "calendar",
    "post_list",
    "chat_list",
    "audit",
    "delivery_schedule",
];

/// How long a service waits for PostgreSQL and NATS to come up at start.
const PATIENCE: Duration = Duration::from_secs(30);

/// PostgreSQL connections of the HTTP API. Requests beyond them wait for a connection (at most
/// [`API_ACQUIRE_TIMEOUT`], within the API's 30 s request timeout) instead of taking delivery's.
pub const API_CONNECTIONS: u32 = 8;
const API_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// PostgreSQL connections of the delivery service: heartbeats, leases, claims, sends and the
/// delivery schedule (as many as all services shared before). No other service draws on them,
/// so a busy API cannot make heartbeats late.
pub const DELIVERY_CONNECTIONS: u32 = 16;
const DELIVERY_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// PostgreSQL connections of the relay and the projections.
pub const WORKER_CONNECTIONS: u32 = 16;
const WORKER_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections and shared pieces every service is built from. Each kind of work has its own
/// PostgreSQL pool so that one cannot starve another: `pool` (the owner's: migrations, upkeep,
/// rebuilds and maintenance commands), `api_pool` (as `herald_api`, scoped to one workspace per
/// request by row-level security), `delivery_pool` and `worker_pool` (relay and projections;
/// both as `herald_worker`, which owns nothing). All but the owner's open connections only
/// when used, so a process that runs one service holds no idle connections for the others.
#[derive(Clone)]
pub struct Herald {
    pub config: Config,
    pub pool: PgPool,
    pub api_pool: PgPool,
    pub delivery_pool: PgPool,
    pub worker_pool: PgPool,
    pub bus: Bus,
    /// The event store over the general pool.
    pub store: EventStore,
    /// The event store the API's commands and reads go through (over `api_pool`).
    pub api_store: EventStore,
    /// The event store delivery records outcomes through (over `delivery_pool`).
    pub delivery_store: EventStore,
    pub cipher: TokenCipher,
}

impl Herald {
    /// Connects to PostgreSQL (applying migrations) and NATS (creating the stream).
    pub async fn connect(config: Config, cipher: TokenCipher) -> anyhow::Result<Self> {
        let pool = platform::postgres::connect(&config.database_url, PATIENCE).await?;
        store::migrate(&pool).await?;
        let bus = Bus::connect(&config.nats_url, &config.nats_prefix, PATIENCE).await?;
        check_stream_matches_database(&pool, &bus).await?;
        let api_login = platform::postgres::role_options(
            &config.database_url,
            store::scope::API_ROLE,
            config.api_database_url.as_ref(),
        )?;
        let worker_login = platform::postgres::role_options(
            &config.database_url,
            store::scope::WORKER_ROLE,
            config.worker_database_url.as_ref(),
        )?;
        let api_pool = store::scope::scoped_pool(api_login, API_CONNECTIONS, API_ACQUIRE_TIMEOUT);
        let delivery_pool = budget(
            worker_login.clone(),
            DELIVERY_CONNECTIONS,
            DELIVERY_ACQUIRE_TIMEOUT,
        );
        let worker_pool = budget(worker_login, WORKER_CONNECTIONS, WORKER_ACQUIRE_TIMEOUT);
        Ok(Self {
            store: EventStore::new(pool.clone()),
            api_store: EventStore::new(api_pool.clone()),
            delivery_store: EventStore::new(delivery_pool.clone()),
            config,
            pool,
            api_pool,
            delivery_pool,
            worker_pool,
            bus,
            cipher,
        })
    }

    /// Closes every pool (waiting for connections in use to come back).
    pub async fn close(&self) {
        tokio::join!(
            self.pool.close(),
            self.api_pool.close(),
            self.delivery_pool.close(),
            self.worker_pool.close()
        );
    }

    pub async fn api(
        &self,
        listener: TcpListener,
        admin_token: Secret<String>,
        shutdown: Shutdown,
    ) -> anyhow::Result<()> {
        identity::Directory::new(self.api_pool.clone())
            .ensure_bootstrap_admin()
            .await
            .context("creating the bootstrap administrator")?;
        let state = api::AppState {
            store: self.api_store.clone(),
            pool: self.api_pool.clone(),
            bus: Some(self.bus.clone()),
            cipher: self.cipher.clone(),
            admin_token: Arc::new(admin_token),
            telegram_api: Some(url::Url::parse(&self.config.bot_api_url()).with_context(
                || "HERALD_TELEGRAM_API_URL is not a URL such as https://api.telegram.org",
            )?),
            sandbox: self.config.sandbox_mode(),
            desk_dir: Some(self.config.desk_dir.clone()),
        };
        api::serve(listener, state, shutdown).await
    }

    /// Runs the outbox relay, and beside it the upkeep of the tables (`store::upkeep`): every
    /// deployment runs a relay, and one is enough.
    pub async fn relay(&self, shutdown: Shutdown) -> anyhow::Result<()> {
        let autovacuum = store::upkeep::autovacuum_on(&self.pool).await?;
        if !autovacuum {
            tracing::warn!(
                "PostgreSQL's autovacuum is off: Herald vacuums and analyses its own tables, but turn autovacuum on (runbooks/scale-delivery.md)"
            );
        }
        let upkeep = store::upkeep::keep_up(
            self.pool.clone(),
            !autovacuum,
            shutdown.clone().cancelled_owned(),
        );
        let retention = retention(self.pool.clone(), shutdown.clone());
        let (relayed, (), ()) = tokio::join!(
            relay::run(self.worker_pool.clone(), self.bus.clone(), shutdown),
            upkeep,
            retention
        );
        relayed
    }

    /// Runs every read-model projection (calendar, post list and audit).
    pub async fn projector(&self, shutdown: Shutdown) -> anyhow::Result<()> {
        let calendar = projections::runner::run(
            self.worker_pool.clone(),
            self.bus.clone(),
            Calendar,
            shutdown.clone(),
        );
        let posts = projections::runner::run(
            self.worker_pool.clone(),
            self.bus.clone(),
            PostList,
            shutdown.clone(),
        );
        let chats = projections::runner::run(
            self.worker_pool.clone(),
            self.bus.clone(),
            ChatList,
            shutdown.clone(),
        );
        let audit =
            projections::runner::run(self.worker_pool.clone(), self.bus.clone(), Audit, shutdown);
        let (calendar, posts, chats, audit) = tokio::join!(calendar, posts, chats, audit);
        calendar.and(posts).and(chats).and(audit)
    }

    pub async fn delivery(
        &self,
        settings: delivery::Settings,
        shutdown: Shutdown,
    ) -> anyhow::Result<()> {
        let delivery = delivery::Delivery {
            pool: self.delivery_pool.clone(),
            bus: self.bus.clone(),
            store: self.delivery_store.clone(),
            cipher: self.cipher.clone(),
            settings,
        };
        delivery.run(shutdown).await
    }

    /// Listens to every bot's updates (`/start`, `/stop`, membership changes); extra
    /// listeners wait as standbys.
    pub async fn listener(
        &self,
        settings: listener::Settings,
        shutdown: Shutdown,
    ) -> anyhow::Result<()> {
        let listener = listener::Listener {
            pool: self.worker_pool.clone(),
            store: EventStore::new(self.worker_pool.clone()),
            cipher: self.cipher.clone(),
            settings,
        };
        listener.run(shutdown).await
    }

    /// Listener settings for the configured Bot API (or the sandbox).
    pub fn listener_settings(&self) -> anyhow::Result<listener::Settings> {
        let url = url::Url::parse(&self.config.bot_api_url()).with_context(
            || "HERALD_TELEGRAM_API_URL is not a URL such as https://api.telegram.org",
        )?;
        let mut settings = listener::Settings::new(url);
        if let Some(public) = &self.config.bot_webhook_url {
            let public_url = url::Url::parse(public).with_context(|| {
                format!("HERALD_BOT_WEBHOOK_URL={public:?} is not a URL such as https://herald.example.com")
            })?;
            if public_url.scheme() != "https" && !self.config.sandbox_mode() {
                anyhow::bail!(
                    "HERALD_BOT_WEBHOOK_URL must be https: Telegram pushes updates only over TLS (the sandbox accepts http)"
                );
            }
            settings.webhook = Some(listener::webhook::Webhook {
                public_url,
                listen: self.config.bot_webhook_addr,
            });
        }
        Ok(settings)
    }

    /// Delivery settings for the configured Bot API (or the sandbox).
    pub fn delivery_settings(&self) -> anyhow::Result<delivery::Settings> {
        let url = url::Url::parse(&self.config.bot_api_url()).with_context(
            || "HERALD_TELEGRAM_API_URL is not a URL such as https://api.telegram.org",
        )?;
        let mut settings = delivery::Settings::new(url);
        settings.worker_timeout = self.config.delivery_worker_timeout;
        Ok(settings)
    }

    /// Drops and rebuilds the named projection from the event stream.
    pub async fn rebuild(
        &self,
        name: &str,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> anyhow::Result<u64> {
        match name {
            "calendar" => {
                projections::runner::rebuild(&self.pool, &self.bus, &Calendar, progress).await
            }
            "audit" => projections::runner::rebuild(&self.pool, &self.bus, &Audit, progress).await,
            "post_list" => {
                projections::runner::rebuild(&self.pool, &self.bus, &PostList, progress).await
            }
            "chat_list" => {
                projections::runner::rebuild(&self.pool, &self.bus, &ChatList, progress).await
            }
            "delivery_schedule" => {
                let schedule = delivery::schedule::DeliverySchedule;
                projections::runner::rebuild(&self.pool, &self.bus, &schedule, progress).await
            }
            other => bail!(
                "no projection named {other:?}; choose one of: {}",
                PROJECTIONS.join(", ")
            ),
        }
    }
}

/// Enforces retention (`store::retention`) every hour, one process at a time.
async fn retention(pool: PgPool, shutdown: Shutdown) {
    loop {
        match platform::postgres::try_lock(&pool, "herald-retention").await {
            Ok(Some(_lock)) => match store::retention::enforce(&pool, chrono::Utc::now()).await {
                Ok(removed) => tracing::info!(?removed, "retention enforced"),
                Err(error) => tracing::warn!(
                    error = format!("{error:#}"),
                    "retention failed; the next round retries"
                ),
            },
            Ok(None) => {}
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "retention: cannot take its lock"
            ),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETENTION_EVERY) => {}
        }
    }
}

/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// A pool of at most `connections` that connects on first use (`Herald::connect` has already
/// waited for PostgreSQL through the owner's pool).
fn budget(
    login: sqlx::postgres::PgConnectOptions,
    connections: u32,
    acquire_timeout: Duration,
) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with(login)
}

/// Refuses to start when the JetStream stream holds events but the event store is empty: the
/// stream then belongs to another database (e.g. the database was recreated), and projections
/// would replay foreign history.
async fn check_stream_matches_database(pool: &PgPool, bus: &Bus) -> anyhow::Result<()> {
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    let mut stream = bus.jetstream.get_stream(bus.names.events_stream()).await?;
    let published = stream.info().await?.state.messages;
    if stored == 0 && published > 0 {
        bail!(
            "the NATS stream {} holds {published} events but this database has none: it belongs to another \
             Herald database. Use another HERALD_NATS_PREFIX, or delete that stream if its history is not needed",
            bus.names.events_stream()
        );
    }
    Ok(())
}

/// The key that encrypts bot tokens: `HERALD_SECRET_KEY`, else `<data dir>/secret.key`. When
/// `create` is set and neither exists, a new key is generated into that file (mode 0600). The
/// keys a rotation replaces (`HERALD_PREVIOUS_SECRET_KEYS`, `<data dir>/secret.key.previous`,
/// one per line) still decrypt.
pub fn secret_key(config: &Config, create: bool) -> anyhow::Result<TokenCipher> {
    let cipher = current_secret_key(config, create)?;
    let mut previous = config.previous_secret_keys.clone();
    let path = config.data_dir.join("secret.key.previous");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        previous.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| Secret::new(l.to_owned())),
        );
    }
    cipher.with_previous_keys(&previous).with_context(|| {
        format!(
            "a previous secret key (HERALD_PREVIOUS_SECRET_KEYS or {}) is not valid",
            path.display()
        )
    })
}

fn current_secret_key(config: &Config, create: bool) -> anyhow::Result<TokenCipher> {
    if let Some(key) = &config.secret_key {
        return TokenCipher::from_base64_key(key).context("HERALD_SECRET_KEY is not valid");
    }
    let path = config.data_dir.join("secret.key");
    if path.exists() {
        let key = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return TokenCipher::from_base64_key(&Secret::new(key))
            .with_context(|| format!("{} is not a valid key", path.display()));
    }
    if !create {
        bail!(
            "no secret key: set HERALD_SECRET_KEY (generate one with `herald keygen`) or run `herald up` once to create {}",
            path.display()
        );
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let key = TokenCipher::generate_key();
    write_private(&path, key.expose())?;
    tracing::info!(path = %path.display(), "generated a new secret key for bot tokens; back it up, tokens cannot be read without it");
    TokenCipher::from_base64_key(&key).map_err(Into::into)
}

/// Writes `contents` to a new file only its owner may read (mode 0600).
pub(crate) fn write_private(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    private_file(path, contents, false)
}

/// Writes `contents` into a file only its owner may read: a new one, or at the end of an
/// existing one when `append` is set (synced before returning).
pub(crate) fn private_file(
    path: &std::path::Path,
    contents: &str,
    append: bool,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    if append {
        options.append(true).create(true);
    } else {
        options.write(true).create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Binds a TCP listener with an actionable error.
pub async fn bind(
    addr: std::net::SocketAddr,
    what: &str,
    variable: &str,
) -> anyhow::Result<TcpListener> {
    platform::net::listen(addr)
        .with_context(|| format!("cannot listen on {addr} for the {what}: is it already in use? choose another with {variable}"))
}
