use super::*;

fn p(s: &str) -> Result<Command, ParseError> {
    parse(s.as_bytes())
}

#[test]
fn commands_parse_to_typed_variants() {
    let v4 = |a, b, c, d, port| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port);
    let cases: Vec<(&str, Command)> = vec![
        ("USER alice", Command::User("alice".into())),
        ("user alice", Command::User("alice".into())),
        ("PASS s3cret word", Command::Pass("s3cret word".into())),
        ("PASS", Command::Pass(String::new())),
        ("PASS ", Command::Pass(String::new())),
        ("QUIT", Command::Quit),
        ("NOOP", Command::Noop),
        ("SYST", Command::Syst),
        ("FEAT", Command::Feat),
        ("HELP", Command::Help(None)),
        ("HELP retr", Command::Help(Some("RETR".into()))),
        (
            "OPTS UTF8 ON",
            Command::Opts("UTF8".into(), Some("ON".into())),
        ),
        ("opts utf8", Command::Opts("UTF8".into(), None)),
        ("PWD", Command::Pwd),
        ("XPWD", Command::Pwd),
        ("CWD /a b/c", Command::Cwd("/a b/c".into())),
        ("XCWD ..", Command::Cwd("..".into())),
        ("CDUP", Command::Cdup),
        ("XCUP", Command::Cdup),
        ("TYPE I", Command::Type(TransferType::Image)),
        ("TYPE A", Command::Type(TransferType::Ascii)),
        ("TYPE a n", Command::Type(TransferType::Ascii)),
        ("TYPE L 8", Command::Type(TransferType::Image)),
        ("MODE S", Command::Mode('S')),
        ("STRU f", Command::Stru('F')),
        ("PASV", Command::Pasv),
        ("EPSV", Command::Epsv(EpsvArg::Any)),
        ("EPSV ALL", Command::Epsv(EpsvArg::All)),
        ("EPSV 2", Command::Epsv(EpsvArg::Protocol(2))),
        ("PORT 127,0,0,1,4,1", Command::Port(v4(127, 0, 0, 1, 1025))),
        (
            "EPRT |1|127.0.0.1|6275|",
            Command::Eprt(v4(127, 0, 0, 1, 6275)),
        ),
        (
            "EPRT |2|::1|5282|",
            Command::Eprt(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 5282)),
        ),
        ("LIST", Command::List(None)),
        ("LIST -la", Command::List(None)),
        ("LIST -a -l", Command::List(None)),
        ("LIST -a /dir", Command::List(Some("/dir".into()))),
        ("LIST sub dir", Command::List(Some("sub dir".into()))),
        ("NLST -al x", Command::Nlst(Some("x".into()))),
        ("LIST -", Command::List(Some("-".into()))),
        ("RETR ünï cödé.txt", Command::Retr("ünï cödé.txt".into())),
        ("STOR a\"b", Command::Stor("a\"b".into())),
        ("REST 100", Command::Rest(100)),
        ("DELE x", Command::Dele("x".into())),
        ("XMKD d", Command::Mkd("d".into())),
        ("XRMD d", Command::Rmd("d".into())),
        ("SIZE f", Command::Size("f".into())),
        ("ABOR", Command::Abor),
        ("STAT", Command::Stat(None)),
        ("AUTH tls", Command::Auth("TLS".into())),
        ("NOOP anything", Command::Noop),
    ];
    for (line, want) in cases {
        assert_eq!(p(line), Ok(want), "parsing {line:?}");
    }
}

#[test]
fn bad_lines_map_to_parse_errors() {
    use ParseError::*;
    let cases: Vec<(&[u8], ParseError)> = vec![
        (b"", UnknownCommand(String::new())),
        (b"FOO", UnknownCommand("FOO".into())),
        (b"GET / HTTP/1.1", UnknownCommand("GET".into())),
        (b"RETRX a", UnknownCommand("RETRX".into())),
        (b"R3TR a", UnknownCommand("R3TR".into())),
        (b"\x00\x01", UnknownCommand(String::new())),
        (b"USER", MissingArgument("USER")),
        (b"USER ", MissingArgument("USER")),
        (b"CWD   ", MissingArgument("CWD")),
        (b"RETR", MissingArgument("RETR")),
        (b"STOR \xff\xfe", NotUtf8),
        (b"TYPE X", BadArgument("TYPE", "unknown type")),
        (b"TYPE E", UnsupportedParameter("TYPE")),
        (b"MODE B", UnsupportedParameter("MODE")),
        (b"MODE Q", BadArgument("MODE", "unknown parameter")),
        (b"STRU R", UnsupportedParameter("STRU")),
        (
            b"PORT 1,2,3",
            BadArgument("PORT", "expected h1,h2,h3,h4,p1,p2"),
        ),
        (
            b"PORT 1,2,3,4,5,6,7",
            BadArgument("PORT", "expected h1,h2,h3,h4,p1,p2"),
        ),
        (
            b"PORT 256,0,0,1,1,1",
            BadArgument("PORT", "expected h1,h2,h3,h4,p1,p2"),
        ),
        (b"EPRT |3|x|1|", UnsupportedNetworkProtocol),
        (b"EPRT |1|::1|1|", BadArgument("EPRT", "bad IPv4 address")),
        (b"EPRT |1|1.2.3.4|99999|", BadArgument("EPRT", "bad port")),
        (
            b"EPRT 1|1.2.3.4|5",
            BadArgument("EPRT", "expected |proto|address|port|"),
        ),
        (b"EPSV 3", UnsupportedNetworkProtocol),
        (b"EPSV 9", UnsupportedNetworkProtocol),
        (
            b"EPSV x",
            BadArgument("EPSV", "network protocol must be 1, 2 or ALL"),
        ),
        (
            b"REST -1",
            BadArgument("REST", "offset must be a non-negative number"),
        ),
        (
            b"REST abc",
            BadArgument("REST", "offset must be a non-negative number"),
        ),
        (b"QUIT now", BadArgument("QUIT", "takes no argument")),
        (b"PASV x", BadArgument("PASV", "takes no argument")),
    ];
    for (line, want) in cases {
        assert_eq!(
            parse(line),
            Err(want),
            "parsing {:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn password_is_masked_in_debug_and_display() {
    let cmd = p("PASS hunter2").expect("parses");
    assert!(!format!("{cmd:?}").contains("hunter2"));
    assert!(!format!("{cmd}").contains("hunter2"));
    assert_eq!(format!("{cmd}"), "PASS ****");
}

#[test]
fn unknown_verb_text_is_bounded_and_printable() {
    let mut line = b"X\x07Y".to_vec();
    line.extend(std::iter::repeat_n(b'Z', 10_000));
    match parse(&line) {
        Err(ParseError::UnknownCommand(shown)) => {
            assert!(shown.len() <= 16);
            assert!(!shown.chars().any(char::is_control));
        }
        other => panic!("unexpected {other:?}"),
    }
}
