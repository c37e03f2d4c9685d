use super::*;

fn file(text: &str) -> Result<RunSettings, String> {
    resolve(Options::parse(
        text,
        Path::new("/etc/actorftpd/actorftpd.toml"),
    )?)
}

#[test]
fn unknown_keys_and_bad_values_name_the_line() {
    let cases = [
        ("listen = \"127.0.0.1:0\"\nmax_sesions = 5\n", "line 2"),
        ("idle_timeout = -1\n", "line 1"),
        ("\n\nipv6_prefix = 300\n", "line 3"),
        ("passive_ports = \"99-1\"\n", "line 1: passive_ports"),
        ("\numask = \"999\"\n", "line 2: umask"),
        ("log_format = \"xml\"\n", "line 1: log_format"),
        (
            "tls_cert = \"c.pem\"\n",
            "line 1: tls_cert: needs --tls-key",
        ),
        ("require_tls_data = true\n", "needs TLS"),
        ("[user]\nname = \"x\"\n", "line 1"),
    ];
    for (text, want) in cases {
        let err = file(text).expect_err(text);
        assert!(err.contains(want), "{text:?}: {err}");
        assert!(!err.contains('\n'), "one line: {err:?}");
    }
}

#[test]
fn command_line_overrides_file() {
    let f = Options::parse(
        "max_sessions = 10\nidle_timeout = 7\nusers = \"users.toml\"\n",
        Path::new("/etc/a/actorftpd.toml"),
    )
    .expect("parses");
    let cli = Options {
        max_sessions: Some(Setting::cli("max_sessions", 20)),
        ..Options::default()
    };
    let s = resolve(cli.over(f)).expect("valid");
    assert_eq!(s.config.limits.max_sessions, 20);
    assert_eq!(s.config.timeouts.idle, Duration::from_secs(7));
    assert_eq!(s.users, Some(PathBuf::from("/etc/a/users.toml")));
}

#[test]
fn contradictions_stop_the_start() {
    let cases = [
        ("passive_ports = \"30000-30000\"\n", "one port"),
        (
            "implicit_tls_listen = \"127.0.0.1:990\"\n",
            "implicit_tls_listen: needs TLS",
        ),
        (
            "admin_listen = \"127.0.0.1:2122\"\nadmin_token_file = \"t\"\n\
             metrics_listen = \"127.0.0.1:2122\"\n",
            "already the address of",
        ),
        ("admin_token_file = \"t\"\n", "only for --admin-listen"),
    ];
    for (text, want) in cases {
        let err = file(text).expect_err(text);
        assert!(err.contains(want), "{text:?}: {err}");
    }
    let s = file("passive_ports = \"30000-30009\"\n").expect("valid");
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(file("require_tls_control = false\n").is_ok());
}

#[test]
fn host_names_and_umask() {
    let s = file("listen = \"localhost:0\"\numask = \"027\"\n").expect("valid");
    assert!(s.config.listen.ip().is_loopback());
    assert_eq!(s.umask, 0o027);
    assert_eq!(file("").expect("empty").umask, DEFAULT_UMASK);
    assert!(file("listen = \"nowhere\"\n").is_err());
}

/// The README's example: every key, at its default (keys without one commented out).
pub(crate) fn readme_example() -> &'static str {
    let readme = include_str!("../../README.md");
    let section = &readme[readme.find("## Running as a service").expect("section")..];
    let start = section.find("```toml\n").expect("toml block") + "```toml\n".len();
    let end = start + section[start..].find("```").expect("block end");
    &section[start..end]
}

#[test]
fn readme_example_is_every_option_at_its_default() {
    let example = readme_example();
    for key in Options::KEYS {
        let listed = example.lines().any(|l| {
            let l = l.trim_start_matches("# ");
            l.starts_with(&format!("{key} ="))
        });
        assert!(listed, "README example lacks {key}");
    }
    let given =
        resolve(Options::parse(example, Path::new("/x.toml")).expect("parses")).expect("valid");
    let defaults = resolve(Options::default()).expect("defaults");
    assert_eq!(format!("{given:?}"), format!("{defaults:?}"));
}

#[test]
fn proxy_protocol_needs_its_trusted_proxies() {
    let s = file("proxy_protocol = true\ntrusted_proxies = \"10.0.0.0/8, 127.0.0.1\"\n")
        .expect("valid");
    let p = s.config.proxy_protocol.expect("on");
    assert!(
        p.trusts("10.1.2.3".parse().expect("ip")) && p.trusts("127.0.0.1".parse().expect("ip"))
    );
    assert!(!p.trusts("127.0.0.2".parse().expect("ip")));
    for (text, want) in [
        (
            "proxy_protocol = true\n",
            "line 1: proxy_protocol: needs --trusted-proxies",
        ),
        (
            "trusted_proxies = \"10.0.0.1\"\n",
            "is only for --proxy-protocol",
        ),
        (
            "proxy_protocol = false\ntrusted_proxies = \"10.0.0.1\"\n",
            "is only for",
        ),
        (
            "proxy_protocol = true\n\ntrusted_proxies = \"10.0.0.0/40\"\n",
            "line 3: trusted_proxies",
        ),
    ] {
        let err = file(text).expect_err(text);
        assert!(err.contains(want), "{text:?}: {err}");
    }
    assert!(file("proxy_protocol = false\n")
        .expect("off")
        .config
        .proxy_protocol
        .is_none());
}
