//! Tests of the command line (cli.rs): flags, subcommands and their errors.

use super::*;
use std::time::Duration;

fn inv(args: &[&str]) -> Result<RunSettings, String> {
    let mut all = vec!["actorftpd"];
    all.extend_from_slice(args);
    match from_opt(Opt::from_iter_safe(all).map_err(|e| e.message)?)? {
        Invocation::Run(r) => Ok(*r),
        _ => Err("not a run".into()),
    }
}

#[test]
fn hash_password_subcommand() {
    let opt = Opt::from_iter_safe(["actorftpd", "hash-password"]).expect("parses");
    assert!(matches!(from_opt(opt), Ok(Invocation::HashPassword)));
}

#[test]
fn who_and_observability_options() {
    let opt = Opt::from_iter_safe(["actorftpd", "who", "--once", "--json"]).expect("parses");
    match from_opt(opt) {
        Ok(Invocation::Who {
            admin,
            once,
            json,
            token_file,
        }) => {
            assert_eq!(admin.to_string(), DEFAULT_ADMIN);
            assert!(once && json && token_file.is_none());
        }
        other => panic!("{other:?}"),
    }
    let i = inv(&[
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        "/run/t",
        "--xferlog",
        "/tmp/x.log",
    ])
    .expect("valid");
    assert!(i.config.metrics_enabled);
    assert!(i.config.xferlog.is_some());
    assert_eq!(i.admin_token_file, Some(PathBuf::from("/run/t")));
    let err = inv(&["--admin-listen", "0.0.0.0:2122"]).expect_err("refused");
    assert!(err.contains("--admin-allow-remote"), "{err}");
    assert!(inv(&["--metrics-listen", "0.0.0.0:0", "--metrics-allow-remote"]).is_ok());
}

#[test]
fn admin_endpoint_needs_a_token_file() {
    let err = inv(&["--admin-listen", "127.0.0.1:0"]).expect_err("refused");
    assert!(err.contains("--admin-token-file"), "{err}");
    assert!(
        inv(&["--admin-token-file", "/run/t"]).is_err(),
        "a token file without an admin endpoint is a mistake"
    );
    let opt =
        Opt::from_iter_safe(["actorftpd", "who", "--admin-token-file", "/run/t"]).expect("parses");
    match from_opt(opt) {
        Ok(Invocation::Who { token_file, .. }) => {
            assert_eq!(token_file, Some(PathBuf::from("/run/t")))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn limits_and_policies() {
    let i = inv(&[
        "--max-sessions",
        "10",
        "--max-sessions-per-ip",
        "2",
        "--login-failure-delay-ms",
        "0",
        "--allow-fxp",
        "--passive-address",
        "203.0.113.7",
    ])
    .expect("valid");
    assert_eq!(i.config.limits.max_sessions, 10);
    assert_eq!(i.config.limits.max_sessions_per_ip, 2);
    assert_eq!(i.config.login.failure_delay, Duration::ZERO);
    assert!(i.config.allow_fxp);
    assert_eq!(i.config.passive_address, "203.0.113.7".parse().ok());
    assert!(inv(&["--passive-address", "::1"]).is_err());
}

#[test]
fn defaults_are_safe() {
    let i = inv(&[]).expect("no options is valid");
    assert_eq!(i.config.listen.to_string(), "127.0.0.1:2121");
    assert!(i.config.listen.ip().is_loopback());
    assert!(i.root.is_none() && i.users.is_none());
    assert_eq!(i.log.level, "info");
}

#[test]
fn options_are_parsed() {
    let i = inv(&[
        "--listen",
        "[::1]:0",
        "--passive-ports",
        "30100-30199",
        "--workers",
        "3",
        "-q",
    ])
    .expect("valid");
    assert_eq!(i.config.listen.to_string(), "[::1]:0");
    assert_eq!(i.config.passive_ports, Some(30100..=30199));
    assert_eq!(i.config.workers, 3);
    assert_eq!(i.log.level, "warn");
    assert!(inv(&["--passive-ports", "99-1"]).is_err());
    assert!(inv(&["--listen", "nowhere"]).is_err());
}

#[test]
fn help_shows_the_defaults_and_usage_lists_no_defaulted_option() {
    let help = long_help();
    let readme = include_str!("../README.md");
    let section = &readme[readme.find("## Running as a service").expect("section")..];
    // Every option with a default in the README example shows it in --help.
    let mut checked = 0;
    for line in section
        .lines()
        .skip_while(|l| !l.starts_with("```toml"))
        .skip(1)
    {
        if line.starts_with("```") {
            break;
        }
        let Some((key, rest)) = line.split_once(" = ") else {
            continue;
        };
        if key.starts_with('#') || rest.starts_with("false") {
            continue;
        }
        let value = rest
            .split('#')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        let flag = format!("--{}", key.replace('_', "-"));
        let at = help
            .find(&format!("{flag} <"))
            .unwrap_or_else(|| panic!("{flag} in help"));
        let text: String = help[at..]
            .split("\n\n")
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            text.contains(&format!("[default: {value}]")),
            "{flag}: {text}"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} defaults checked");
    let err = Opt::from_iter_safe(["actorftpd", "--bogus"]).expect_err("unknown");
    assert!(!err.message.contains("--idle-timeout"), "{}", err.message);
}
