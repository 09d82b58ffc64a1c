//! The `herald` command: parses arguments, sets up telemetry and configuration, runs services.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use anyhow::Context;
use clap::{Parser, Subcommand};
use herald::{Herald, bind, secret_key};
use platform::shutdown::cancel_on_signal;
use platform::{Config, Secret, Shutdown};

const AFTER_HELP: &str = "\
Configuration (environment, or the same keys in lowercase in a TOML file given by --config):
  HERALD_DATABASE_URL      PostgreSQL URL of the schema's owner (migrations, upkeep)
                           [default: postgres://postgres@127.0.0.1:5432/herald]
  HERALD_API_DATABASE_URL  how the API logs in      [default: that URL as user herald_api]
  HERALD_WORKER_DATABASE_URL  how relay, projections, delivery log in
                           [default: that URL as user herald_worker]
  HERALD_NATS_URL          NATS with JetStream       [default: nats://127.0.0.1:4222]
  HERALD_NATS_PREFIX       subject/stream prefix     [default: herald]
  HERALD_HTTP_ADDR         HTTP API address          [default: 127.0.0.1:8080]
  HERALD_TELEGRAM_API_URL  real Bot API base URL, e.g. https://api.telegram.org
                           (unset = sandbox mode: messages go to the built-in emulator only)
  HERALD_SANDBOX_ADDR      sandbox emulator address  [default: 127.0.0.1:8081]
  HERALD_ADMIN_TOKEN       bearer token of the API   (unset: `herald up` generates and prints one)
  HERALD_SECRET_KEY        base64 key encrypting bot tokens (unset: <data dir>/secret.key)
  HERALD_PREVIOUS_SECRET_KEYS  comma-separated keys a rotation replaces (also read from
                           <data dir>/secret.key.previous); see `herald keys --help`
  HERALD_DATA_DIR          local state               [default: .herald]
  HERALD_BOT_WEBHOOK_URL   public https base URL Telegram pushes bot updates to
                           (unset: the listener polls with getUpdates)
  HERALD_BOT_WEBHOOK_ADDR  where the webhook receiver listens, behind your TLS proxy
                           [default: 127.0.0.1:8082; it serves POST /telegram/<bot id>]
  HERALD_DESK_DIR          the desk's built web assets, served at the API's origin
                           [default: desk/dist; scripts/herald builds them]
  HERALD_DELIVERY_WORKER_TIMEOUT  seconds before a silent delivery worker's partitions
                           move and its unfinished sends are flagged in doubt [default: 2]
  HERALD_LOG               log filter                [default: info]

Examples:
  herald up                              everything in one process, sandboxed
  herald delivery                        one more delivery worker
  herald projections rebuild calendar    drop and rebuild the calendar from history
  herald users add ann --name Ann        invite a person (prints a one-time invitation)
  herald users token ci --name deploys --scopes read,write   an API token, printed once";

/// Herald: plan, approve, publish and audit Telegram posts at scale, safely.
#[derive(Parser)]
#[command(version, about, after_help = AFTER_HELP)]
struct Cli {
    /// TOML configuration file (overridden by HERALD_* variables)
    #[arg(long, global = true, env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service in one process: API, relay, projector, delivery, the bots' listener, and the sandbox
    /// Telegram emulator unless a real Bot API URL is configured
    Up,
    /// Run only the HTTP API
    Api,
    /// Run only the outbox relay (PostgreSQL -> NATS JetStream); extra ones wait as standbys
    Relay,
    /// Run only the projections (calendar, post list, audit)
    Projector,
    /// Run only the delivery service (sends due posts through the Bot API)
    Delivery,
    /// Run only the bots' listener: receives each bot's updates (long polling, or a webhook
    /// with HERALD_BOT_WEBHOOK_URL) and records
    /// /start as consent, /stop and blocking the bot as opt-outs, and the bot's removal from a
    /// group or channel as a flagged chat; extra listeners wait as standbys
    Bot,
    /// Run only the sandbox Telegram Bot API emulator
    Sandbox,
    /// Maintain projections
    Projections {
        #[command(subcommand)]
        action: ProjectionAction,
    },
    /// Manage people and service accounts (the same as the /v1/users API, from the database)
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
    /// Apply database migrations and exit
    Migrate,
    /// Print a new random secret key for HERALD_SECRET_KEY
    Keygen,
    /// Rotate the secret key that encrypts bot tokens
    ///
    /// Safe while Herald runs: 1. `herald keys new` (or set HERALD_SECRET_KEY to a new key and
    /// HERALD_PREVIOUS_SECRET_KEYS to the old one), then restart Herald, which then reads under
    /// both keys and writes under the new one; 2. `herald keys rotate` re-encrypts every bot
    /// token under the new key (resumable); 3. once `herald keys status` shows every token under
    /// the current key, remove the previous key and restart.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Generate load through the public HTTP API (sandbox mode) and report delivery and lag
    Load(load::Args),
}

#[derive(Subcommand)]
enum ProjectionAction {
    /// Drop a projection's rows and rebuild them from the event stream (calendar, post_list,
    /// audit, delivery_schedule); safe while Herald runs, delivery included
    Rebuild { name: String },
}

#[derive(Subcommand)]
enum KeysAction {
    /// How many bot tokens are encrypted under each key
    Status,
    /// Make a fresh key current in <data dir>/secret.key, keeping the old one in
    /// secret.key.previous (restart Herald afterwards)
    New,
    /// Re-encrypt under the current key every bot token still under another key
    Rotate,
}

#[derive(Subcommand)]
enum UsersAction {
    /// List every user
    List,
    /// Add a person (who gets an invitation to choose a password) or a service account
    Add {
        /// Login: lowercase letters, digits and .-_@
        login: String,
        /// Display name
        #[arg(long)]
        name: String,
        /// A service account (signs in with API tokens only)
        #[arg(long)]
        service: bool,
        /// An instance administrator (every workspace, users)
        #[arg(long)]
        admin: bool,
    },
    /// Disable a user: their tokens stop working at the next request
    Disable { login: String },
    /// Enable a disabled user
    Enable { login: String },
    /// Issue an API token for a user, printed once
    Token {
        login: String,
        /// What the token is for
        #[arg(long)]
        name: String,
        /// Comma-separated: read, write, approve, admin
        #[arg(long, value_delimiter = ',', default_value = "read")]
        scopes: Vec<String>,
        /// Days until it expires (default: until revoked)
        #[arg(long)]
        days: Option<u32>,
    },
}

/// `herald users ...`, straight on the identity tables.
async fn users(config: &Config, action: UsersAction) -> anyhow::Result<()> {
    let pool =
        platform::postgres::connect(&config.database_url, std::time::Duration::from_secs(30))
            .await?;
    store::migrate(&pool).await?;
    let directory = identity::Directory::new(pool);
    directory.ensure_bootstrap_admin().await?;
    let by_login = |login: &str| identity::user_id_for_login(login);
    match action {
        UsersAction::List => {
            for user in directory.users().await? {
                println!(
                    "{}  {:<24} {:<8} {}{}{}",
                    user.id,
                    user.login,
                    if user.kind == identity::UserKind::Service {
                        "service"
                    } else {
                        "person"
                    },
                    user.display_name,
                    if user.instance_admin {
                        "  [instance admin]"
                    } else {
                        ""
                    },
                    if user.disabled { "  [disabled]" } else { "" },
                );
            }
        }
        UsersAction::Add {
            login,
            name,
            service,
            admin,
        } => {
            let kind = if service {
                identity::UserKind::Service
            } else {
                identity::UserKind::Person
            };
            let new = identity::NewUser {
                login,
                display_name: name,
                kind,
                password: None,
                instance_admin: admin,
            };
            let (user, invitation) = directory.create_user(new, "herald users").await?;
            println!("added {} ({})", user.login, user.id);
            if let Some(invitation) = invitation {
                println!(
                    "invitation (shown once, valid 7 days): {}
  the person sets a password with POST /v1/invitations/accept {{\"token\", \"password\"}}",
                    invitation.token
                );
            } else {
                println!(
                    "give it API tokens with: herald users token {} --name <what for> --scopes read,write",
                    user.login
                );
            }
        }
        UsersAction::Disable { login } => {
            anyhow::ensure!(
                by_login(&login) != identity::bootstrap_admin_id(),
                "the bootstrap administrator holds HERALD_ADMIN_TOKEN; change that token instead"
            );
            let user = directory.set_disabled(by_login(&login), true).await?;
            println!(
                "disabled {}: their tokens stop working at the next request",
                user.login
            );
        }
        UsersAction::Enable { login } => {
            let user = directory.set_disabled(by_login(&login), false).await?;
            println!("enabled {}", user.login);
        }
        UsersAction::Token {
            login,
            name,
            scopes,
            days,
        } => {
            let scopes = scopes
                .iter()
                .map(|s| {
                    identity::Scope::parse(s.trim()).with_context(|| {
                        format!("unknown scope {s:?}: choose among read, write, approve, admin")
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let expires_at =
                days.map(|d| chrono::Utc::now() + chrono::TimeDelta::days(i64::from(d)));
            let issued = directory
                .issue_token(by_login(&login), &name, &scopes, expires_at)
                .await?;
            println!("{}", issued.token);
            eprintln!(
                "token {} for {login} (shown once; revoke with DELETE /v1/users/<id>/tokens/{})",
                issued.id, issued.id
            );
        }
    }
    Ok(())
}

type Service = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

#[tokio::main]
async fn main() {
    platform::telemetry::init();
    if let Err(error) = run(Cli::parse()).await {
        eprintln!("herald: {error:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // A client of the HTTP API only: no configuration, database or NATS needed.
    if let Command::Load(args) = cli.command {
        println!("{}", load::run(args).await?);
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref())?;
    let shutdown = Shutdown::new();
    cancel_on_signal(shutdown.clone());
    match cli.command {
        Command::Keygen => {
            println!("{}", platform::TokenCipher::generate_key().expose());
            Ok(())
        }
        Command::Sandbox => {
            let listener = bind(
                config.sandbox_addr,
                "sandbox Telegram",
                "HERALD_SANDBOX_ADDR",
            )
            .await?;
            println!(
                "sandbox Telegram Bot API on http://{} (received messages: GET /sandbox/messages)",
                config.sandbox_addr
            );
            sandbox::Sandbox::new(Default::default())
                .serve(listener, async move { shutdown.cancelled().await })
                .await?;
            Ok(())
        }
        Command::Users { action } => users(&config, action).await,
        Command::Keys { action } => keys(&config, action).await,
        Command::Migrate => {
            let pool = platform::postgres::connect(
                &config.database_url,
                std::time::Duration::from_secs(30),
            )
            .await?;
            store::migrate(&pool).await?;
            println!("database schema is up to date");
            Ok(())
        }
        Command::Projections {
            action: ProjectionAction::Rebuild { name },
        } => {
            let herald = Herald::connect(
                config.clone(),
                secret_key(&config, false).or_else(|_| ephemeral_cipher())?,
            )
            .await?;
            let started = std::time::Instant::now();
            let last = std::sync::atomic::AtomicU64::new(u64::MAX);
            let progress = |done: u64, total: u64| {
                if last.swap(done, std::sync::atomic::Ordering::Relaxed) != done {
                    eprint!("\rrebuilding {name}: {done}/{total} events");
                }
            };
            let total = herald.rebuild(&name, &progress).await?;
            eprintln!();
            println!(
                "rebuilt {name} from {total} events in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        command => serve(command, config, shutdown).await,
    }
}

/// `herald keys ...`.
async fn keys(config: &Config, action: KeysAction) -> anyhow::Result<()> {
    if let KeysAction::New = action {
        let id = herald::keys::new_key_file(config)?;
        println!(
            "key {id} is now current; the old key is kept in secret.key.previous. Restart Herald, then run `herald keys rotate`"
        );
        return Ok(());
    }
    let herald = Herald::connect(config.clone(), secret_key(config, false)?).await?;
    let current = herald.cipher.current_key_id().to_owned();
    match action {
        KeysAction::Status | KeysAction::New => {
            let counts = herald::keys::status(&herald).await?;
            println!("current key: {current}");
            for (key, (bots, subjects)) in &counts {
                let mark = if *key == current { " (current)" } else { "" };
                println!(
                    "{bots:>8} bot token(s) and {subjects} contact key(s) under key {key}{mark}"
                );
            }
            if counts.keys().all(|k| *k == current) {
                println!("every token is under the current key: previous keys may be removed");
            }
        }
        KeysAction::Rotate => {
            let progress = |done: u64, total: u64| eprint!("\rre-encrypting: {done}/{total} bots");
            let rotation = herald::keys::rotate(&herald, &progress).await?;
            eprintln!();
            println!(
                "{} of {} bot token(s) and {} contact key(s) re-encrypted under key {current}",
                rotation.reencrypted, rotation.bots, rotation.subject_keys
            );
            if !rotation.unreadable_subjects.is_empty() {
                anyhow::bail!(
                    "no configured key can read {} contact key(s): add the key they were encrypted under to HERALD_PREVIOUS_SECRET_KEYS (or secret.key.previous) and rotate again",
                    rotation.unreadable_subjects.len()
                );
            }
            if !rotation.unreadable.is_empty() {
                let ids: Vec<String> = rotation
                    .unreadable
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                anyhow::bail!(
                    "no configured key can read the token of bot(s) {}: add the key they were encrypted under to HERALD_PREVIOUS_SECRET_KEYS (or secret.key.previous) and rotate again",
                    ids.join(", ")
                );
            }
            println!(
                "every token is under the current key: remove the previous key (HERALD_PREVIOUS_SECRET_KEYS or secret.key.previous) and restart Herald"
            );
        }
    }
    herald.close().await;
    Ok(())
}

/// Rebuilding a projection never decrypts tokens; any key will do when none is configured.
fn ephemeral_cipher() -> anyhow::Result<platform::TokenCipher> {
    Ok(platform::TokenCipher::from_base64_key(
        &platform::TokenCipher::generate_key(),
    )?)
}

/// Runs long-lived services until a signal, or until one of them fails.
async fn serve(command: Command, config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let up = matches!(command, Command::Up);
    let cipher = secret_key(&config, up)?;
    let herald = Herald::connect(config.clone(), cipher).await?;
    let mut services: Vec<(&str, Service)> = Vec::new();

    if up && config.sandbox_mode() {
        let listener = bind(
            config.sandbox_addr,
            "sandbox Telegram",
            "HERALD_SANDBOX_ADDR",
        )
        .await?;
        let stop = shutdown.clone();
        services.push((
            "sandbox",
            Box::pin(async move {
                sandbox::Sandbox::new(Default::default())
                    .serve(listener, async move { stop.cancelled().await })
                    .await
                    .map_err(Into::into)
            }),
        ));
    }
    if up || matches!(command, Command::Api) {
        let token = admin_token(&config, up)?;
        let listener = bind(config.http_addr, "HTTP API", "HERALD_HTTP_ADDR").await?;
        let (h, s) = (herald.clone(), shutdown.clone());
        services.push((
            "api",
            Box::pin(async move { h.api(listener, token, s).await }),
        ));
    }
    if up || matches!(command, Command::Relay) {
        let (h, s) = (herald.clone(), shutdown.clone());
        services.push(("relay", Box::pin(async move { h.relay(s).await })));
    }
    if up || matches!(command, Command::Projector) {
        let (h, s) = (herald.clone(), shutdown.clone());
        services.push(("projector", Box::pin(async move { h.projector(s).await })));
    }
    if up || matches!(command, Command::Delivery) {
        let settings = herald.delivery_settings()?;
        let (h, s) = (herald.clone(), shutdown.clone());
        services.push((
            "delivery",
            Box::pin(async move { h.delivery(settings, s).await }),
        ));
    }

    if up || matches!(command, Command::Bot) {
        let settings = herald.listener_settings()?;
        let (h, s) = (herald.clone(), shutdown.clone());
        services.push((
            "bot listener",
            Box::pin(async move { h.listener(settings, s).await }),
        ));
    }

    if up {
        print_banner(&config);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (name, service) in services {
        tasks.spawn(async move { (name, service.await) });
    }
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        let (name, result) = joined.context("a service panicked")?;
        if let Err(error) = result {
            tracing::error!(
                service = name,
                error = format!("{error:#}"),
                "service failed; stopping the others"
            );
            failure.get_or_insert(error.context(format!("the {name} service failed")));
            shutdown.cancel();
        }
    }
    failure.map_or(Ok(()), Err)
}

/// The admin token: configured, or (for `herald up` only) generated and printed once.
fn admin_token(config: &Config, may_generate: bool) -> anyhow::Result<Secret<String>> {
    match (&config.admin_token, may_generate) {
        (Some(token), _) => Ok(token.clone()),
        (None, true) => {
            let token = platform::crypto::random_token();
            println!(
                "admin token (shown once; set HERALD_ADMIN_TOKEN to choose your own): {}",
                token.expose()
            );
            Ok(token)
        }
        (None, false) => {
            anyhow::bail!("HERALD_ADMIN_TOKEN is not set: the API refuses to run without a token")
        }
    }
}

fn print_banner(config: &Config) {
    println!(
        "Herald is up: API on http://{} (OpenAPI: /v1/openapi.json)",
        config.http_addr
    );
    if config.sandbox_mode() {
        println!(
            "sandbox mode: posts go to the built-in Telegram emulator on http://{} (see GET /sandbox/messages); nothing reaches real Telegram",
            config.sandbox_addr
        );
    } else {
        println!("live mode: posts go to the configured Telegram Bot API");
    }
    println!("press Ctrl-C to stop");
}
