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
        // Options stay in the argument: `ListArgs::parse` reads them (`-a` shows dotfiles).
        ("LIST -la", Command::List(Some("-la".into()))),
        ("LIST -a /dir", Command::List(Some("-a /dir".into()))),
        ("LIST sub dir", Command::List(Some("sub dir".into()))),
        ("NLST *.txt", Command::Nlst(Some("*.txt".into()))),
        ("LIST -", Command::List(Some("-".into()))),
        // Names that are not UTF-8 are carried losslessly where they name an existing file.
        ("MFMT 20200102030405 a b", Command::Mfmt(ts(), "a b".into())),
        ("HASH f.bin", Command::Hash("f.bin".into())),
        ("RANG 1 0", Command::Rang(None)),
        (
            "XSHA256 f 1 9",
            Command::XHash(
                HashAlgo::Sha256,
                "f".into(),
                ByteRange {
                    start: 1,
                    end: Some(9),
                },
            ),
        ),
        (
            "xcrc f",
            Command::XHash(HashAlgo::Crc32, "f".into(), ByteRange::default()),
        ),
        (
            "XSHA f",
            Command::XHash(HashAlgo::Sha1, "f".into(), ByteRange::default()),
        ),
        ("SITE CHMOD 644 f", Command::Site("CHMOD 644 f".into())),
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
        (b"MKD ok/\xe9", NotUtf8),
        (b"RNTO \xc0\xaf", NotUtf8),
        (b"USER \x80", NotUtf8),
        (b"XSHA512 f", UnknownCommand("XSHA512".into())),
        (b"XSHA2567 f", UnknownCommand("XSHA2567".into())),
        (
            b"MFMT 2020 f",
            BadArgument("MFMT", "expected YYYYMMDDHHMMSS[.sss] and a path"),
        ),
        (b"MFF create=20200102030405; f", UnsupportedParameter("MFF")),
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

fn ts() -> Timestamp {
    parse_time_val("20200102030405").expect("valid time")
}

#[test]
fn raw_names_round_trip_and_new_names_must_be_utf8() {
    // A name from a listing, not UTF-8, comes back byte for byte.
    let Ok(Command::Retr(name)) = parse(b"RETR dir/caf\xe9.txt") else {
        panic!("RETR with a Latin-1 name must parse");
    };
    assert_eq!(
        &*crate::protocol::rawname::encode(&name),
        b"dir/caf\xe9.txt"
    );
    // A folder on the way may be any bytes; the created name may not.
    assert!(matches!(
        parse(b"STOR caf\xe9/new.txt"),
        Ok(Command::Stor(_))
    ));
    assert_eq!(parse(b"STOR dir/caf\xe9.txt"), Err(ParseError::NotUtf8));
    // A genuine U+F7E9 in valid UTF-8 is not mistaken for the raw byte 0xE9.
    let Ok(Command::Retr(genuine)) = p("RETR caf\u{F7E9}") else {
        panic!("RETR with a private-use character must parse");
    };
    assert_ne!(genuine, name.replace("dir/", "").replace(".txt", ""));
    assert_eq!(
        &*crate::protocol::rawname::encode(&genuine),
        "caf\u{F7E9}".as_bytes()
    );
}
