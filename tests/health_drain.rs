//! Health and drain (issue 16 item 5): `/health` and `/ready` on the admin endpoint answer
//! probes without a token and reveal nothing; `/ready` fails when the storage is gone; on
//! SIGTERM the daemon turns not-ready first, stops accepting, and lets a running upload finish
//! (sha256 checked on disk) before it exits.

mod common;

use common::*;
use std::io::Write;
use std::process::Command;
use std::time::Duration;

fn status_of(admin: std::net::SocketAddr, path: &str) -> (String, String) {
    http_get(admin, "HTTP/1.0", path, "")
}

#[test]
fn health_and_ready_answer_without_a_token_and_say_nothing_else() {
    let token = TokenFile::new();
    let (d, admin) = admin_daemon(&token, &[]);
    let (status, body) = status_of(admin, "/health");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "ok\n")
    );
    let (status, body) = status_of(admin, "/ready");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "ready\n")
    );
    // Everything else still needs the token.
    let (status, _) = status_of(admin, "/sessions");
    assert!(status.contains(" 401 "), "{status}");
    // The storage gone (the root renamed away): not ready, still alive. Nothing is named.
    let root = d.root("alice");
    std::fs::rename(&root, root.with_extension("moved")).expect("move the root away");
    wait_until(Duration::from_secs(20), "/ready fails", || {
        status_of(admin, "/ready").0.contains(" 503 ")
    });
    let (_, body) = status_of(admin, "/ready");
    assert_eq!(body, "not ready\n");
    assert_eq!(status_of(admin, "/health").0, "HTTP/1.1 200 OK");
}

#[test]
fn sigterm_turns_not_ready_first_then_lets_the_upload_finish() {
    let token = TokenFile::new();
    let (mut d, admin) = admin_daemon(&token, &["--shutdown-grace", "120"]);
    let data = random_bytes(3 * MIB);
    let mut ftp = d.login("alice");
    let mut upload = ftp.put_with_stream("during.bin").expect("STOR opens");
    upload.write_all(&data[..MIB]).expect("first part");
    assert!(status_of(admin, "/ready").0.contains(" 200 "));
    let ok = Command::new("kill")
        .args(["-TERM", &d.pid().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -TERM");
    wait_until(Duration::from_secs(20), "/ready answers 503", || {
        status_of(admin, "/ready").0.contains(" 503 ")
    });
    // Alive, draining, and no longer accepting control connections.
    assert_eq!(status_of(admin, "/health").0, "HTTP/1.1 200 OK");
    wait_until(Duration::from_secs(20), "new connections refused", || {
        match std::net::TcpStream::connect_timeout(&d.addr(), Duration::from_secs(2)) {
            Err(_) => true,
            Ok(mut s) => {
                // Accepted by the kernel's backlog only: nothing greets it, or a 421.
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 64];
                use std::io::Read;
                match s.read(&mut buf) {
                    Ok(n) => n == 0 || buf.starts_with(b"421"),
                    Err(_) => true,
                }
            }
        }
    });
    assert!(
        d.wait_exit(Duration::ZERO).is_none(),
        "still running its upload"
    );
    upload.write_all(&data[MIB..]).expect("the rest");
    upload.finish().expect("226 for the upload");
    assert_file_holds(
        &d.root("alice").join("during.bin"),
        &data,
        "finished upload",
    );
    let status = d
        .wait_exit(Duration::from_secs(30))
        .expect("exits after its upload");
    assert!(status.success(), "{status:?}");
}
