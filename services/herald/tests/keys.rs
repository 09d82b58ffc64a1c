//! `herald keys`: a new key file keeps the old key as previous; rotation moves every bot
//! token under the new key; status says when the old key may go.

use system_tests::{TestApp, spawn_app};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

#[tokio::test]
async fn a_key_file_is_rotated_from_the_command_line() {
    let app = spawn_app().await;
    app.workspace_with_bot().await;
    let dir = std::env::temp_dir().join(format!("herald-keys-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("secret.key"), &app.secret_key).unwrap();
    let run = |args: &[&str], with_env_key: bool| {
        let mut command = app.herald_process(HERALD, "keys");
        command.env("HERALD_DATA_DIR", &dir);
        if !with_env_key {
            command.env_remove("HERALD_SECRET_KEY");
        }
        command.args(args);
        TestApp::run_to_end(command)
    };

    // With the key in the environment there is no file to rotate: the answer says what to do.
    let (ok, _, err) = run(&["new"], true);
    assert!(!ok);
    assert!(err.contains("HERALD_PREVIOUS_SECRET_KEYS"), "{err}");

    let (ok, out, err) = run(&["new"], false);
    assert!(ok, "{err}");
    assert!(out.contains("Restart Herald"), "{out}");
    let current = std::fs::read_to_string(dir.join("secret.key")).unwrap();
    assert_ne!(current.trim(), app.secret_key.trim());
    let previous = std::fs::read_to_string(dir.join("secret.key.previous")).unwrap();
    assert_eq!(previous.trim(), app.secret_key.trim());
    #[cfg(unix)]
    for file in ["secret.key", "secret.key.previous"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }

    let (ok, out, err) = run(&["status"], false);
    assert!(ok, "{err}");
    assert!(
        out.contains("1 bot token(s) and 0 contact key(s) under key"),
        "{out}"
    );
    assert!(!out.contains("(current)"), "{out}");
    let (ok, out, err) = run(&["rotate"], false);
    assert!(ok, "{err}");
    assert!(
        out.contains("1 of 1 bot token(s) and 0 contact key(s) re-encrypted"),
        "{out}"
    );
    let (ok, out, err) = run(&["status"], false);
    assert!(ok, "{err}");
    assert!(
        out.contains("(current)") && out.contains("previous keys may be removed"),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    app.cleanup().await;
}
