//! The desk in a real browser: a complete Herald for this test (its own database and NATS
//! prefix, the sandbox, delivery) serves the built desk, and `desk/tests/browser.mjs` drives
//! Debian's chromium through it with playwright-core: an author plans a post and sees her own
//! approval refused, an approver approves it from the queue, it arrives in the sandbox inbox
//! live, an auditor finds each step in the audit explorer, and axe-core checks every view at
//! desktop and phone width. `scripts/test` builds the desk and installs chromium first.

use std::path::Path;
use std::time::Duration;

use system_tests::{ADMIN_TOKEN, repository_desk, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_tour_works_in_a_real_browser_and_every_view_passes_axe() {
    let desk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../desk");
    assert!(
        repository_desk().join("index.html").is_file() && desk.join("node_modules").is_dir(),
        "the desk is not built: run scripts/test (it builds desk/ and installs chromium), or npm ci && npm run build in desk/"
    );
    let app = spawn_app().await;
    let screenshots =
        std::env::temp_dir().join(format!("herald-desk-shots-{}", uuid::Uuid::new_v4()));
    let run = tokio::process::Command::new("npm")
        .args(["test", "--silent", "--prefix"])
        .arg(&desk)
        .env("HERALD_URL", &app.base)
        .env("HERALD_SANDBOX_URL", format!("http://{}", app.sandbox_addr))
        .env("HERALD_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("HERALD_SCREENSHOTS", &screenshots)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("the browser test finishes within 10 minutes")
        .expect("npm runs (Node.js 20 or newer)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the desk's browser test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // It took a screenshot of each view it visited.
    let shots = std::fs::read_dir(&screenshots)
        .map(|dir| dir.filter_map(Result::ok).count())
        .unwrap_or(0);
    assert!(
        shots >= 8,
        "{shots} screenshots in {}:\n{stdout}",
        screenshots.display()
    );
    let _ = std::fs::remove_dir_all(&screenshots);
    app.cleanup().await;
}
