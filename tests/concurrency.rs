//! Many sessions at once (suppaftp clients on threads).

mod common;

use std::io::Write;
use std::sync::{Arc, Barrier};
use std::thread;

use common::*;
use suppaftp::Mode;

const CLIENTS: usize = 20;
const FILES_PER_CLIENT: usize = 3;

/// Size of file `f` of client `c`: between 256 KiB and 2 MiB, all different.
fn file_size(c: usize, f: usize) -> usize {
    let span = 2 * MIB - 256 * KIB;
    256 * KIB + (c * 7919 + f * 104_729 + c * f * 31) * 4099 % span
}

#[test]
fn twenty_clients_transfer_distinct_files_concurrently_and_all_arrive_intact() {
    let d = Daemon::start(&[("alice", "alice-pass")]);
    let addr = d.addr();
    // All clients are logged in before any transfer starts, so all 20 sessions are open at once.
    let logged_in = Arc::new(Barrier::new(CLIENTS));
    let mut handles = Vec::new();
    for c in 0..CLIENTS {
        let logged_in = Arc::clone(&logged_in);
        handles.push(thread::spawn(move || {
            let dir = format!("client {c:02}");
            // Always reach the barrier, even on failure, so no other client waits forever.
            let setup = std::panic::catch_unwind(|| {
                let mut ftp = ftp_connect(addr);
                ftp.login("alice", "alice-pass")
                    .unwrap_or_else(|e| panic!("client {c}: login failed: {e}"));
                ftp.transfer_type(suppaftp::types::FileType::Binary)
                    .unwrap_or_else(|e| panic!("client {c}: TYPE I failed: {e}"));
                if c % 2 == 1 {
                    ftp.set_mode(Mode::ExtendedPassive);
                }
                ftp.mkdir(&dir)
                    .unwrap_or_else(|e| panic!("client {c}: MKD failed: {e}"));
                ftp
            });
            logged_in.wait();
            let mut ftp = setup.unwrap_or_else(|p| std::panic::resume_unwind(p));

            let mut sent = Vec::new();
            for f in 0..FILES_PER_CLIENT {
                let data = random_bytes_seeded((c * 100 + f) as u64 + 1, file_size(c, f));
                let name = format!("{dir}/file-{f}.bin");
                ftp.put_file(&name, &mut &data[..])
                    .unwrap_or_else(|e| panic!("client {c}: STOR {name}: {e}"));
                sent.push((name, data.len(), sha256_hex(&data)));
            }
            for (name, len, sha) in &sent {
                let back = ftp
                    .retr_as_buffer(name)
                    .unwrap_or_else(|e| panic!("client {c}: RETR {name}: {e}"))
                    .into_inner();
                assert_eq!(back.len(), *len, "client {c}: length of {name}");
                assert_eq!(&sha256_hex(&back), sha, "client {c}: content of {name}");
            }
            ftp.noop()
                .unwrap_or_else(|e| panic!("client {c}: NOOP after transfers: {e}"));
            ftp.quit()
                .unwrap_or_else(|e| panic!("client {c}: QUIT: {e}"));
            sent
        }));
    }
    let mut all = Vec::new();
    let mut failures = Vec::new();
    for (c, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(sent) => all.extend(sent),
            Err(p) => failures.push(format!(
                "client {c}: {}",
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "clients failed:\n{}",
        failures.join("\n")
    );
    assert_eq!(all.len(), CLIENTS * FILES_PER_CLIENT);
    for (name, _, sha) in &all {
        assert_eq!(
            &file_sha256(&d.root("alice").join(name)),
            sha,
            "{name} on the server's disk"
        );
    }
}

/// A session with an upload in flight (data connection open, not finished) must not stop the
/// server from serving another session.
#[test]
fn other_sessions_are_served_while_an_upload_is_in_flight() {
    let d = Daemon::start(&[("alice", "alice-pass"), ("bob", "bob-pass")]);
    let first = random_bytes_seeded(1, MIB);
    let second = random_bytes_seeded(2, 3 * MIB + 3);

    let mut a = d.login("alice");
    let mut upload = a.put_with_stream("slow.bin").expect("STOR slow.bin opens");
    upload.write_all(&first).expect("first half of slow.bin");
    upload.flush().expect("flush");

    // Meanwhile bob logs in and transfers a complete file both ways.
    let mut b = d.login("bob");
    b.noop().expect("bob NOOP while alice uploads");
    put(&mut b, "quick.bin", &second);
    assert_eq!(sha256_hex(&get(&mut b, "quick.bin")), sha256_hex(&second));
    assert!(b
        .list(None)
        .expect("bob LIST")
        .iter()
        .any(|l| l.ends_with("quick.bin")));
    b.quit().expect("bob QUIT");

    upload.write_all(&second).expect("second half of slow.bin");
    upload.finish().expect("slow.bin upload completes with 226");
    let mut whole = first.clone();
    whole.extend_from_slice(&second);
    assert_eq!(
        file_sha256(&d.root("alice").join("slow.bin")),
        sha256_hex(&whole),
        "the interleaved upload is intact on disk"
    );
    assert_eq!(sha256_hex(&get(&mut a, "slow.bin")), sha256_hex(&whole));
    a.noop().expect("alice NOOP afterwards");
}

/// Many sessions of the same user write into the same directory at once without mixing bytes.
#[test]
fn concurrent_uploads_to_distinct_names_in_one_directory_do_not_mix() {
    let d = Daemon::start(&[("alice", "alice-pass")]);
    let addr = d.addr();
    let start = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|c| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                let setup = std::panic::catch_unwind(|| {
                    let mut ftp = ftp_connect(addr);
                    ftp.login("alice", "alice-pass")
                        .unwrap_or_else(|e| panic!("client {c}: login: {e}"));
                    ftp.transfer_type(suppaftp::types::FileType::Binary)
                        .unwrap_or_else(|e| panic!("client {c}: TYPE I: {e}"));
                    ftp
                });
                let data = random_bytes_seeded(900 + c as u64, 512 * KIB + c);
                start.wait();
                let mut ftp = setup.unwrap_or_else(|p| std::panic::resume_unwind(p));
                let name = format!("same-dir-{c}.bin");
                ftp.put_file(&name, &mut &data[..])
                    .unwrap_or_else(|e| panic!("client {c}: STOR: {e}"));
                (name, sha256_hex(&data))
            })
        })
        .collect();
    for h in handles {
        let (name, sha) = h.join().expect("client thread");
        assert_eq!(file_sha256(&d.root("alice").join(&name)), sha, "{name}");
    }
}
