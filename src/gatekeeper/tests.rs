//! The Gatekeeper's limits and bans, through its messages.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn source_keys() {
    let cases = [
        ("192.0.2.7", 64, "192.0.2.7"),
        ("::ffff:192.0.2.7", 64, "192.0.2.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64, "2001:db8:1:2::"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 48, "2001:db8:1::"),
        (
            "2001:db8:1:2:aaaa:bbbb:cccc:dddd",
            128,
            "2001:db8:1:2:aaaa:bbbb:cccc:dddd",
        ),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 0, "::"),
        ("2001:db8::1", 200, "2001:db8::1"),
        ("::1", 64, "::"),
    ];
    for (addr, prefix, want) in cases {
        assert_eq!(source_key(ip(addr), prefix), ip(want), "{addr}/{prefix}");
    }
}

#[test]
fn a_ban_covers_the_whole_prefix() {
    let b = SourceBanned {
        source: source_key(ip("2001:db8:1:2::5"), 64),
        v6_prefix: 64,
    };
    assert!(b.covers(ip("2001:db8:1:2:ffff::1")));
    assert!(!b.covers(ip("2001:db8:1:3::1")));
    assert!(!b.covers(ip("192.0.2.1")));
}

fn keeper(max_sessions: usize, per_ip: usize, ban_failures: u32) -> Addr<Gatekeeper> {
    let limits = Limits {
        max_sessions,
        max_sessions_per_ip: per_ip,
        ..Limits::default()
    };
    let policy = LoginPolicy {
        ban_failures,
        ..LoginPolicy::default()
    };
    Gatekeeper::new(limits, policy).start()
}

#[actix::test]
async fn one_slash_64_shares_one_per_source_limit() {
    let g = keeper(100, 2, 10);
    let a = ip("2001:db8::1");
    let b = ip("2001:db8::ffff:2");
    assert_eq!(g.send(Admit { ip: a }).await, Ok(Ok(())));
    assert_eq!(g.send(Admit { ip: b }).await, Ok(Ok(())));
    let third = g
        .send(Admit {
            ip: ip("2001:db8::3"),
        })
        .await
        .expect("alive");
    assert!(third.is_err(), "a third address of the same /64 got in");
    assert_eq!(
        g.send(Admit {
            ip: ip("2001:db9::1")
        })
        .await,
        Ok(Ok(()))
    );
    g.send(Release { ip: a }).await.expect("alive");
    assert_eq!(
        g.send(Admit {
            ip: ip("2001:db8::4")
        })
        .await,
        Ok(Ok(()))
    );
}

#[actix::test]
async fn concurrent_guesses_never_exceed_the_ban_threshold() {
    let g = keeper(100, 100, 3);
    let src = ip("192.0.2.9");
    // Five connections ask at once: three checks run, two wait for their outcome.
    let asks: Vec<_> = (0..5).map(|_| g.send(BeginLogin { ip: src })).collect();
    let mut asks = asks.into_iter();
    for ask in asks.by_ref().take(3) {
        assert_eq!(ask.await, Ok(Ok(())));
    }
    for _ in 0..3 {
        g.send(LoginEnded {
            ip: src,
            failed: true,
        })
        .await
        .expect("alive");
    }
    // The three wrong ones earned the ban: the two waiting are refused, unchecked.
    for ask in asks {
        assert_eq!(ask.await, Ok(Err(BANNED)));
    }
    let after = g.send(BeginLogin { ip: src }).await.expect("alive");
    assert_eq!(after, Err(BANNED));
    assert_eq!(g.send(Admit { ip: src }).await, Ok(Err(BANNED)));
}

#[actix::test]
async fn many_right_passwords_at_once_only_wait_for_each_other() {
    let g = keeper(100, 100, 2);
    let src = ip("192.0.2.11");
    let asks: Vec<_> = (0..6).map(|_| g.send(BeginLogin { ip: src })).collect();
    for ask in asks {
        assert_eq!(ask.await, Ok(Ok(())));
        // Each check ends well, which lets the next waiting one go on.
        LoginAttempt::new(g.clone(), src).end(false);
    }
}

#[actix::test]
async fn hanging_up_during_a_check_counts_as_a_failure() {
    let g = keeper(100, 100, 1);
    let src = ip("192.0.2.12");
    assert_eq!(g.send(BeginLogin { ip: src }).await, Ok(Ok(())));
    drop(LoginAttempt::new(g.clone(), src));
    assert_eq!(g.send(Admit { ip: src }).await, Ok(Err(BANNED)));
}

#[actix::test]
async fn a_successful_login_frees_its_place() {
    let g = keeper(100, 100, 1);
    let src = ip("192.0.2.10");
    assert_eq!(g.send(BeginLogin { ip: src }).await, Ok(Ok(())));
    let waiting = g.send(BeginLogin { ip: src });
    g.send(LoginEnded {
        ip: src,
        failed: false,
    })
    .await
    .expect("alive");
    assert_eq!(waiting.await, Ok(Ok(())));
}
