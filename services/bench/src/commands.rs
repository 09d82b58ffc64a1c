//! `commands`: how long the post commands take through the public HTTP API on a post to very
//! many chats: planning, approving, rescheduling and cancelling one that is due later (post A,
//! three times), and rescheduling and cancelling one while it is being delivered (post B).
//! Every figure is the wall clock of one HTTP call on the client side, from sending the request
//! to reading the whole answer (the request body is serialized before the clock starts).

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};
use system_tests::{ADMIN_TOKEN, TestApp};

use crate::herald_run::{self, Options, Running};
use crate::workload::Workload;

/// How many times post A's sequence runs (the table gives each and their median).
pub const POST_A_RUNS: usize = 3;
/// How long to wait for post B's first delivery, and for the schedule to apply a cancel.
const PATIENCE: Duration = Duration::from_secs(300);

/// One HTTP call: its status (None: not made, an earlier step failed), time and error body.
#[derive(Debug, Clone, Default)]
pub struct Call {
    pub status: Option<u16>,
    pub elapsed: Duration,
    /// The answer's body when the status is not 2xx.
    pub error: Option<String>,
}

impl Call {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    fn secs(&self) -> f64 {
        if self.status.is_some() {
            self.elapsed.as_secs_f64()
        } else {
            f64::NAN
        }
    }
}

/// Post A: planned due in an hour, approved, rescheduled two hours ahead, cancelled.
#[derive(Debug, Clone, Default)]
pub struct Idle {
    pub plan: Call,
    pub approve: Call,
    pub reschedule: Call,
    pub cancel: Call,
    /// From the cancel's answer until the schedule projection held every delivery of the post
    /// as cancelled (None: not within the patience, or the cancel failed).
    pub schedule_caught_up: Option<Duration>,
}

/// Post B: planned due now, approved, then rescheduled an hour ahead and cancelled once it is
/// being delivered, with reads of the post and its deliveries in between.
#[derive(Debug, Clone, Default)]
pub struct During {
    pub plan: Call,
    pub approve: Call,
    /// From the approve's answer until `GET .../posts/{id}` first reported a delivered chat.
    pub first_delivery: Option<Duration>,
    pub get_post: Call,
    pub get_deliveries: Call,
    pub get_delivered: Call,
    pub reschedule: Call,
    pub cancel: Call,
    /// `counts.delivered` in the reschedule's and the cancel's answers.
    pub delivered_at_reschedule: Option<u64>,
    pub delivered_at_cancel: Option<u64>,
    /// Messages the sandbox had accepted when the reschedule answered, and 3 s after the
    /// cancel's answer (sends in flight when the reschedule came may still land).
    pub accepted_at_reschedule: u64,
    pub accepted_after_cancel: u64,
}

/// Post S: a broadcast to a segment of every contact (tagged at import), due in an hour: the
/// segment defined, the post planned with only `segment_ids` (resolved at planning, decision
/// 0011), approved, cancelled.
#[derive(Debug, Clone, Default)]
pub struct Broadcast {
    pub define: Call,
    pub plan: Call,
    pub approve: Call,
    pub cancel: Call,
    /// The targets the planning answer reports.
    pub targets: Option<u64>,
}

/// Everything one run of the workload measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub chats: usize,
    pub import: Duration,
    pub idle: Vec<Idle>,
    pub during: During,
    pub broadcast: Broadcast,
    pub notes: Vec<String>,
}

impl Report {
    /// Every command and read made, with a name for error messages.
    pub fn calls(&self) -> Vec<(String, &Call)> {
        let mut all = Vec::new();
        for (i, a) in self.idle.iter().enumerate() {
            for (name, call) in [
                ("plan", &a.plan),
                ("approve", &a.approve),
                ("reschedule", &a.reschedule),
                ("cancel", &a.cancel),
            ] {
                all.push((format!("post A run {}: {name}", i + 1), call));
            }
        }
        let b = &self.during;
        for (name, call) in [
            ("plan", &b.plan),
            ("approve", &b.approve),
            ("GET post", &b.get_post),
            ("GET deliveries?limit=1000", &b.get_deliveries),
            (
                "GET deliveries?status=delivered&limit=100",
                &b.get_delivered,
            ),
            ("reschedule", &b.reschedule),
            ("cancel", &b.cancel),
        ] {
            all.push((format!("post B: {name}"), call));
        }
        let s = &self.broadcast;
        for (name, call) in [
            ("define the segment", &s.define),
            ("plan", &s.plan),
            ("approve", &s.approve),
            ("cancel", &s.cancel),
        ] {
            all.push((format!("post S: {name}"), call));
        }
        all
    }

    pub fn all_ok(&self) -> bool {
        self.calls().iter().all(|(_, c)| c.ok())
    }

    /// The slowest of the commands (plan, approve, reschedule, cancel; not the reads).
    pub fn slowest_command(&self) -> f64 {
        self.idle
            .iter()
            .flat_map(|a| [&a.plan, &a.approve, &a.reschedule, &a.cancel])
            .chain([
                &self.during.plan,
                &self.during.approve,
                &self.during.reschedule,
                &self.during.cancel,
                &self.broadcast.plan,
                &self.broadcast.approve,
                &self.broadcast.cancel,
            ])
            .map(Call::secs)
            .fold(f64::NAN, f64::max)
    }
}

pub async fn run(workload: &Workload, options: &Options) -> anyhow::Result<Report> {
    let running = Running::start(options).await?;
    let result = drive(&running.app, workload, options).await;
    running.finish().await;
    result
}

async fn drive(app: &TestApp, workload: &Workload, options: &Options) -> anyhow::Result<Report> {
    let client = load::Client::new(&app.base, ADMIN_TOKEN)?.with_approver(&app.reviewer_token);
    let explain = |what: &'static str| move |e| load::explain(e, &app.base, what);
    let ws = client
        .create_workspace("bench commands")
        .await
        .map_err(explain("creating the workspace"))?;
    let bot = workload.bots.first().context("the workload has no bot")?;
    let token = {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(bot.telegram_bot_id);
        load::fake_bot_token(bot.telegram_bot_id, &mut rng)
    };
    let bot_id = client
        .register_bot(&ws, "bench bot", &token)
        .await
        .map_err(explain("registering a bot"))?;

    let started = Instant::now();
    let connected =
        herald_run::import_chats(app, &ws, std::slice::from_ref(&bot_id), workload, options)
            .await?;
    let import = started.elapsed();
    let chats: Vec<&str> = (0..bot.chats.len())
        .map(|c| connected[&(0, c)].as_str())
        .collect();
    eprintln!(
        "   {} chats imported in {:.1} s ({:.0} chats/s)",
        chats.len(),
        import.as_secs_f64(),
        chats.len() as f64 / import.as_secs_f64().max(1e-9)
    );
    let mut report = Report {
        chats: chats.len(),
        import,
        ..Report::default()
    };

    for run in 0..POST_A_RUNS {
        eprintln!("   post A, run {}/{POST_A_RUNS} ...", run + 1);
        let idle = post_a(app, &ws, &chats, run).await?;
        if idle.cancel.ok() && idle.schedule_caught_up.is_none() {
            report.notes.push(format!(
                "post A run {}: the schedule did not show the cancel for every chat within {} s",
                run + 1,
                PATIENCE.as_secs()
            ));
        }
        report.idle.push(idle);
    }
    eprintln!("   post S (a segment of every contact) ...");
    report.broadcast = post_s(app, &ws).await?;
    eprintln!("   post B ...");
    report.during = post_b(app, &ws, &chats, &mut report.notes).await?;
    Ok(report)
}

async fn post_s(app: &TestApp, ws: &str) -> anyhow::Result<Broadcast> {
    let mut s = Broadcast::default();
    let (answer, call) = post_json(
        app,
        &format!("/v1/workspaces/{ws}/segments"),
        &json!({ "name": "everyone", "tags_any": [herald_run::CONTACT_TAG] }),
    )
    .await?;
    s.define = call;
    let Some(segment) = answer.and_then(|a| a["id"].as_str().map(str::to_owned)) else {
        return Ok(s);
    };
    let body = json!({
        "segment_ids": [segment],
        "text": "bench commands S",
        "publish_at": rfc3339(Utc::now() + hours(1)),
    });
    let (answer, call) = post_json(app, &format!("/v1/workspaces/{ws}/posts"), &body).await?;
    s.plan = call;
    s.targets = answer.as_ref().and_then(|a| a["targets"].as_u64());
    let Some(id) = answer.and_then(|a| a["id"].as_str().map(str::to_owned)) else {
        return Ok(s);
    };
    let path = format!("/v1/workspaces/{ws}/posts/{id}");
    s.approve = approve(app, &path).await?.1;
    s.cancel = post_json(app, &format!("{path}/cancel"), &json!({}))
        .await?
        .1;
    Ok(s)
}

async fn post_a(app: &TestApp, ws: &str, chats: &[&str], run: usize) -> anyhow::Result<Idle> {
    let mut idle = Idle::default();
    let now = Utc::now();
    let (answer, call) = plan(
        app,
        ws,
        chats,
        &format!("bench commands A{run}"),
        now + hours(1),
    )
    .await?;
    idle.plan = call;
    let Some(id) = answer.and_then(|a| a["id"].as_str().map(str::to_owned)) else {
        return Ok(idle);
    };
    let path = format!("/v1/workspaces/{ws}/posts/{id}");
    idle.approve = approve(app, &path).await?.1;
    if !idle.approve.ok() {
        return Ok(idle);
    }
    let later = json!({ "publish_at": rfc3339(Utc::now() + hours(2)) });
    idle.reschedule = post_json(app, &format!("{path}/reschedule"), &later)
        .await?
        .1;
    idle.cancel = post_json(app, &format!("{path}/cancel"), &json!({}))
        .await?
        .1;
    if idle.cancel.ok() {
        let answered = Instant::now();
        idle.schedule_caught_up = wait_for(PATIENCE, || async {
            Ok(cancelled_rows(app, &id).await? >= chats.len() as i64)
        })
        .await?
        .then(|| answered.elapsed());
    }
    Ok(idle)
}

async fn post_b(
    app: &TestApp,
    ws: &str,
    chats: &[&str],
    notes: &mut Vec<String>,
) -> anyhow::Result<During> {
    let mut during = During::default();
    let (answer, call) = plan(app, ws, chats, "bench commands B", Utc::now()).await?;
    during.plan = call;
    let Some(id) = answer.and_then(|a| a["id"].as_str().map(str::to_owned)) else {
        return Ok(during);
    };
    let path = format!("/v1/workspaces/{ws}/posts/{id}");
    during.approve = approve(app, &path).await?.1;
    if !during.approve.ok() {
        return Ok(during);
    }
    let approved = Instant::now();
    // A refused poll is not a delivery; the last refusal is kept for the notes.
    let refused = std::cell::RefCell::new((0usize, String::new()));
    let delivering = wait_for(PATIENCE, || async {
        let (answer, call) = get(app, &path).await?;
        if !call.ok() {
            let mut refused = refused.borrow_mut();
            refused.0 += 1;
            refused.1 = format!("{:?} {}", call.status, call.error.unwrap_or_default());
        }
        Ok(delivered(answer.as_ref()).is_some_and(|n| n > 0))
    })
    .await?;
    let (polls_refused, last_refusal) = refused.into_inner();
    if polls_refused > 0 {
        notes.push(format!(
            "post B: {polls_refused} GET of the post while waiting for its first delivery were refused, the last: {last_refusal}"
        ));
    }
    if delivering {
        during.first_delivery = Some(approved.elapsed());
    } else {
        notes.push(format!(
            "post B: no delivery within {} s of its approval; rescheduled and cancelled anyway",
            PATIENCE.as_secs()
        ));
    }
    during.get_post = get(app, &path).await?.1;
    during.get_deliveries = get(app, &format!("{path}/deliveries?limit=1000")).await?.1;
    during.get_delivered = get(
        app,
        &format!("{path}/deliveries?status=delivered&limit=100"),
    )
    .await?
    .1;
    let later = json!({ "publish_at": rfc3339(Utc::now() + hours(1)) });
    let (answer, call) = post_json(app, &format!("{path}/reschedule"), &later).await?;
    during.accepted_at_reschedule = app.sandbox.stats().accepted;
    during.reschedule = call;
    during.delivered_at_reschedule = delivered(answer.as_ref());
    let (answer, call) = post_json(app, &format!("{path}/cancel"), &json!({})).await?;
    during.cancel = call;
    during.delivered_at_cancel = delivered(answer.as_ref());
    tokio::time::sleep(Duration::from_secs(3)).await;
    during.accepted_after_cancel = app.sandbox.stats().accepted;
    if during.delivered_at_reschedule == Some(chats.len() as u64) {
        notes.push(
            "post B was wholly delivered before the reschedule: pass more --command-chats".into(),
        );
    }
    Ok(during)
}

/// `POST .../posts` to every chat; the answer when it is 2xx.
async fn plan(
    app: &TestApp,
    ws: &str,
    chats: &[&str],
    text: &str,
    publish_at: DateTime<Utc>,
) -> anyhow::Result<(Option<Value>, Call)> {
    let body = json!({ "chat_ids": chats, "text": text, "publish_at": rfc3339(publish_at) });
    post_json(app, &format!("/v1/workspaces/{ws}/posts"), &body).await
}

async fn post_json(
    app: &TestApp,
    path: &str,
    body: &Value,
) -> anyhow::Result<(Option<Value>, Call)> {
    call(app, ADMIN_TOKEN, path, Some(body)).await
}

/// An approval: by the reviewer, since the admin planned it (four eyes).
async fn approve(app: &TestApp, path: &str) -> anyhow::Result<(Option<Value>, Call)> {
    call(
        app,
        &app.reviewer_token,
        &format!("{path}/approve"),
        Some(&json!({})),
    )
    .await
}

async fn get(app: &TestApp, path: &str) -> anyhow::Result<(Option<Value>, Call)> {
    call(app, ADMIN_TOKEN, path, None).await
}

/// POST of a JSON body (or GET without one), and the whole answer read, on the clock (the body
/// is serialized before it starts). A call that got no answer at all ends the workload; an
/// error status is recorded with its body.
async fn call(
    app: &TestApp,
    token: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<(Option<Value>, Call)> {
    let url = format!("{}{path}", app.base);
    let request = match body {
        Some(body) => app
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body)?),
        None => app.client.get(url),
    }
    .bearer_auth(token);
    let started = Instant::now();
    let response = request
        .send()
        .await
        .with_context(|| format!("no answer to {path}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("reading the answer to {path}"))?;
    let elapsed = started.elapsed();
    let ok = status.is_success();
    let call = Call {
        status: Some(status.as_u16()),
        elapsed,
        error: (!ok).then(|| text.chars().take(500).collect()),
    };
    let answer = if ok {
        Some(serde_json::from_str(&text).with_context(|| format!("{path} answered {text:?}"))?)
    } else {
        None
    };
    Ok((answer, call))
}

fn delivered(answer: Option<&Value>) -> Option<u64> {
    answer.and_then(|a| a["counts"]["delivered"].as_u64())
}

/// Deliveries of the post that the schedule projection holds as cancelled.
async fn cancelled_rows(app: &TestApp, post: &str) -> anyhow::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM delivery_schedule WHERE post_id = $1::uuid AND status = 'cancelled'",
    )
    .bind(post)
    .fetch_one(&app.herald.pool)
    .await
    .context("counting the post's cancelled deliveries in the schedule")
}

/// Polls `done` every 100 ms until it is true (true) or `patience` is over (false).
async fn wait_for<F, Fut>(patience: Duration, mut done: F) -> anyhow::Result<bool>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + patience;
    loop {
        if done().await? {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn hours(n: i64) -> TimeDelta {
    TimeDelta::hours(n)
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn ms(seconds: f64) -> String {
    crate::fmt(seconds * 1000.0, 0, " ms")
}

fn status(call: &Call) -> String {
    call.status.map_or("-".into(), |s| s.to_string())
}

fn median_of<'a>(calls: impl Iterator<Item = &'a Call>) -> f64 {
    crate::median(calls.map(Call::secs))
}

/// The tables of one run: post A's runs and their medians, post B's calls, errors and notes.
pub fn print(report: &Report) {
    println!(
        "  {} chats imported in {:.1} s: {:.0} chats/s (bulk import); this workload has no rate or ideal, and no Throttle baseline (it times Herald's API)",
        report.chats,
        report.import.as_secs_f64(),
        report.chats as f64 / report.import.as_secs_f64().max(1e-9)
    );
    let runs = report.idle.len();
    let mut header = format!("  {:<34}", format!("post A (to {} chats)", report.chats));
    for i in 0..runs {
        header.push_str(&format!("{:>10}", format!("run {}", i + 1)));
    }
    println!("{header}{:>10}  HTTP", "median");
    type Step = fn(&Idle) -> &Call;
    let steps: [(&str, Step); 4] = [
        ("plan, due in 1 h", |a| &a.plan),
        ("approve", |a| &a.approve),
        ("reschedule to 2 h ahead", |a| &a.reschedule),
        ("cancel", |a| &a.cancel),
    ];
    for (name, step) in steps {
        let mut line = format!("  {name:<34}");
        for a in &report.idle {
            line.push_str(&format!("{:>10}", ms(step(a).secs())));
        }
        let statuses: Vec<String> = report.idle.iter().map(|a| status(step(a))).collect();
        println!(
            "{line}{:>10}  {}",
            ms(median_of(report.idle.iter().map(step))),
            statuses.join(" ")
        );
    }
    let mut line = format!("  {:<34}", "schedule shows the cancel after");
    let caught_up: Vec<f64> = report
        .idle
        .iter()
        .map(|a| a.schedule_caught_up.map_or(f64::NAN, |d| d.as_secs_f64()))
        .collect();
    for c in &caught_up {
        line.push_str(&format!("{:>10}", crate::fmt(*c, 2, " s")));
    }
    println!(
        "{line}{:>10}",
        crate::fmt(crate::median(caught_up.iter().copied()), 2, " s")
    );

    let b = &report.during;
    println!(
        "  {:<44}{:>10}  HTTP",
        format!("post B (to {} chats, due now)", report.chats),
        "time"
    );
    let row = |name: &str, call: &Call, extra: String| {
        let line = format!(
            "  {name:<44}{:>10}  {:<5}{extra}",
            ms(call.secs()),
            status(call)
        );
        println!("{}", line.trim_end());
    };
    row("plan", &b.plan, String::new());
    row("approve", &b.approve, String::new());
    println!(
        "  {:<44}{:>10}",
        "first delivery seen, from the approve",
        crate::fmt(
            b.first_delivery.map_or(f64::NAN, |d| d.as_secs_f64()),
            2,
            " s"
        )
    );
    row("GET the post (during delivery)", &b.get_post, String::new());
    row(
        "GET deliveries?limit=1000",
        &b.get_deliveries,
        String::new(),
    );
    row(
        "GET deliveries?status=delivered&limit=100",
        &b.get_delivered,
        String::new(),
    );
    let delivered = |n: Option<u64>| {
        n.map_or(String::new(), |n| {
            format!("counts.delivered in the answer: {n}")
        })
    };
    row(
        "reschedule to 1 h ahead, during delivery",
        &b.reschedule,
        delivered(b.delivered_at_reschedule),
    );
    row("then cancel", &b.cancel, delivered(b.delivered_at_cancel));
    println!(
        "  sandbox accepted {} messages when the reschedule answered, {} 3 s after the cancel's answer (sends already under way may land)",
        b.accepted_at_reschedule, b.accepted_after_cancel
    );
    let s = &report.broadcast;
    println!(
        "  {:<44}{:>10}  HTTP",
        format!(
            "post S (a segment: {} targets)",
            s.targets.map_or("?".to_owned(), |t| t.to_string())
        ),
        "time"
    );
    row("define the segment", &s.define, String::new());
    row("plan with segment_ids only", &s.plan, String::new());
    row("approve", &s.approve, String::new());
    row("cancel", &s.cancel, String::new());
    for (name, call) in report.calls() {
        if let (Some(s), false) = (call.status, call.ok()) {
            println!(
                "  FAILED {name}: HTTP {s}: {}",
                call.error.as_deref().unwrap_or("")
            );
        } else if call.status.is_none() {
            println!("  NOT MADE {name} (an earlier step failed)");
        }
    }
    for note in &report.notes {
        println!("  note: {note}");
    }
    println!(
        "  target (each command well under 1 s, 2xx, also during delivery): slowest command {}, all 2xx: {}",
        ms(report.slowest_command()),
        if report.all_ok() { "yes" } else { "NO" }
    );
}

/// One line over every run: post A's medians over all its runs, post B's over the runs.
pub fn print_summary(reports: &[Report]) {
    if reports.is_empty() {
        return;
    }
    let idle = || reports.iter().flat_map(|r| &r.idle);
    let during = || reports.iter().map(|r| &r.during);
    println!(
        "commands ({} run(s), {} chats; medians; target: each command well under 1 s, 2xx, also during delivery)",
        reports.len(),
        reports[0].chats
    );
    println!(
        "  post A  plan {}  approve {}  reschedule {}  cancel {}",
        ms(median_of(idle().map(|a| &a.plan))),
        ms(median_of(idle().map(|a| &a.approve))),
        ms(median_of(idle().map(|a| &a.reschedule))),
        ms(median_of(idle().map(|a| &a.cancel))),
    );
    println!(
        "  post B  plan {}  approve {}  reschedule {}  cancel {} (during delivery)",
        ms(median_of(during().map(|b| &b.plan))),
        ms(median_of(during().map(|b| &b.approve))),
        ms(median_of(during().map(|b| &b.reschedule))),
        ms(median_of(during().map(|b| &b.cancel))),
    );
    let broadcasts = || reports.iter().map(|r| &r.broadcast);
    println!(
        "  post S  plan {}  approve {}  cancel {} (a segment of every contact)",
        ms(median_of(broadcasts().map(|s| &s.plan))),
        ms(median_of(broadcasts().map(|s| &s.approve))),
        ms(median_of(broadcasts().map(|s| &s.cancel))),
    );
    println!(
        "  slowest command {}, all 2xx: {}, import {:.0} chats/s",
        ms(reports
            .iter()
            .map(Report::slowest_command)
            .fold(f64::NAN, f64::max)),
        if reports.iter().all(Report::all_ok) {
            "yes"
        } else {
            "NO"
        },
        crate::median(
            reports
                .iter()
                .map(|r| r.chats as f64 / r.import.as_secs_f64().max(1e-9))
        )
    );
}
