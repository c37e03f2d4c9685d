//! Tests of the users file and of authentication (`users.rs`).
use super::*;
use crate::auth::password::{hash_password, hash_with};

fn db(text: &str) -> Result<UserDb, String> {
    UserDb::parse(text, &std::env::temp_dir())
}

fn local() -> Option<IpAddr> {
    "127.0.0.1".parse().ok()
}

#[test]
fn users_file_parses_and_authenticates() {
    let dir = std::env::temp_dir();
    let hash = hash_password("pw").expect("hash");
    let text = format!(
        "[[user]]\nname = \"alice\"\npassword_hash = \"{hash}\"\nroot = {dir:?}\n\n\
         [[user]]\nname = \"bob\"\npassword_hash = \"{hash}\"\nroot = {dir:?}\n\
         permissions = [\"read-only\"]\nallowed_networks = [\"10.0.0.0/8\"]\n\n\
         [[user]]\nname = \"carol\"\npassword_hash = \"{hash}\"\nroot = {dir:?}\nenabled = false\n"
    );
    let users = db(&text).expect("valid");
    assert_eq!(users.len(), 3);
    let alice = users
        .authenticate("alice", "pw", local())
        .expect("alice logs in");
    assert_eq!(alice.permissions, Permissions::ALL);
    assert!(users.authenticate("alice", "PW", local()).is_none());
    assert!(users.authenticate("nobody", "pw", local()).is_none());
    // bob only from 10/8, carol never.
    assert!(users.authenticate("bob", "pw", local()).is_none());
    let from_ten = "10.1.2.3".parse().ok();
    assert_eq!(
        users
            .authenticate("bob", "pw", from_ten)
            .map(|u| u.permissions),
        Some(Permissions::READ_ONLY)
    );
    assert!(users.authenticate("carol", "pw", local()).is_none());
    // No anonymous table: anonymous is just an unknown name.
    assert!(users.authenticate("anonymous", "x@y", local()).is_none());
    assert!(!users.is_anonymous_name("anonymous"));
    // Each refusal has its reason, for the log.
    let mut memory = Argon2Memory::default();
    let mut why = |name, pw| {
        users
            .authenticate_with(name, pw, local(), &mut memory)
            .err()
    };
    assert_eq!(why("alice", "PW"), Some(LoginRefused::WrongPassword));
    assert_eq!(why("nobody", "pw"), Some(LoginRefused::UnknownUser));
    assert_eq!(why("bob", "pw"), Some(LoginRefused::NetworkNotAllowed));
    assert_eq!(why("carol", "nope"), Some(LoginRefused::Disabled));
}

#[test]
fn roots_lists_every_served_root_once() {
    let tmp = tempfile::tempdir().expect("temp dir");
    for d in ["a", "b", "pub"] {
        std::fs::create_dir(tmp.path().join(d)).expect("root");
    }
    let hash = hash_password("p").expect("hash");
    let text: String = [("x", "a"), ("y", "b"), ("z", "a")]
        .iter()
        .map(|(name, root)| {
            format!(
                "[[user]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\nroot = \"{root}\"\n\n"
            )
        })
        .chain(["[anonymous]\nroot = \"pub\"\n".to_owned()])
        .collect();
    let users = UserDb::parse(&text, tmp.path()).expect("valid");
    let want: Vec<std::path::PathBuf> = ["a", "b", "pub"]
        .iter()
        .map(|d| tmp.path().join(d))
        .collect();
    assert_eq!(
        users.roots(),
        want.iter().map(|p| p.as_path()).collect::<Vec<_>>()
    );
}

#[test]
fn anonymous_is_read_only_unless_granted() {
    let dir = std::env::temp_dir();
    let users = db(&format!("[anonymous]\nroot = {dir:?}\n")).expect("valid");
    for name in ["anonymous", "FTP", "Anonymous"] {
        let u = users
            .authenticate(name, "guest@", local())
            .expect("anonymous login");
        assert_eq!(u.permissions, Permissions::READ_ONLY);
        assert!(u.anonymous);
    }
    let users = db(&format!(
        "[anonymous]\nroot = {dir:?}\npermissions = [\"read\", \"upload\"]\n"
    ))
    .expect("valid");
    let u = users.authenticate("ftp", "", local()).expect("login");
    assert!(u.permissions.upload && !u.permissions.delete);
}

#[test]
fn bad_users_files_say_what_is_wrong_with_the_line() {
    let dir = format!("{:?}", std::env::temp_dir());
    let hash = hash_password("x").expect("hash");
    let cases = [
        ("[[user]]\nname = \"a\"\n".to_owned(), "password_hash is missing"),
        (
            format!("[[user]]\nname=\"a\"\npassword_hash=\"{hash}\"\n"),
            "root (a folder) or storage",
        ),
        (
            format!("[[user]]\nname=\"a\"\npassword_hash=\"{hash}\"\nroot={dir}\nstorage=\"s3://bkt/p\"\n"),
            "not both",
        ),
        (
            format!("[[user]]\nname=\"a\"\npassword_hash=\"{hash}\"\nstorage=\"s3://bkt/../p\"\n"),
            "prefix may not",
        ),
        (
            format!("[[user]]\nname=\"a\"\npassword_hash=\"{hash}\"\nstorage=\"ftp://x\"\n"),
            "only s3://",
        ),
        (
            format!("[[user]]\nname=\"a\"\npassword_hash=\"{hash}\"\nroot={dir}\nregion=\"x\"\n"),
            "go with storage",
        ),
        (
            format!("\n\n[[user]]\nname=\"a\"\npassword=\"p\"\nroot={dir}\n"),
            "line 4: user \"a\": plain-text password refused",
        ),
        (
            format!("[[user]]\nname=\"a\"\nroot={dir}\n"),
            "line 2: user \"a\": password_hash is missing",
        ),
        (
            format!("[[user]]\nname=\"a\"\npassword_hash=\"{hash}\"\nroot={dir}\npermissions=[\"fly\"]\n"),
            "unknown permission",
        ),
        (
            format!("[[user]]\nname=\"a\"\npassword_hash=\"{hash}\"\nroot=\"/no/such/dir/x\"\n"),
            "not a directory",
        ),
        (
            format!("[[user]]\nname=\"a\"\npassword_hash=\"plain\"\nroot={dir}\n"),
            "PHC",
        ),
        (
            format!("[[user]]\nname=\"a\"\npassword_hash=\"{hash}\"\nroot={dir}\ncolour=1\n"),
            "unknown field",
        ),
        (
            format!("[[user]]\nname=\"a\"\npassword_hash=\"{hash}\"\nroot={dir}\nallowed_networks=[\"10.0.0.0/33\"]\n"),
            "bad prefix",
        ),
        (
            format!("[[user]]\nname=\"ftp\"\npassword_hash=\"{hash}\"\nroot={dir}\n"),
            "reserved",
        ),
        ("x = 1\nthis is = = not toml".to_owned(), "line 2"),
        (String::new(), "no [[user]]"),
    ];
    for (text, want) in cases {
        let err = db(&text).err().unwrap_or_default();
        assert!(err.contains(want), "{text:?} gave {err:?}, wanted {want:?}");
        assert!(!err.contains('\n'), "one line: {err:?}");
    }
}

#[test]
fn unknown_names_cost_as_much_as_the_dearest_user() {
    let dir = std::env::temp_dir();
    let cheap = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(64, 1, 1, None).expect("params"),
    );
    let cheap = hash_with(&cheap, "pw").expect("hash");
    let dear = hash_password("pw").expect("hash");
    // Whichever order the users come in, the decoy is as dear as the dearest.
    for (first, second) in [(&cheap, &dear), (&dear, &cheap)] {
        let text = format!(
            "[[user]]\nname = \"a\"\npassword_hash = \"{first}\"\nroot = {dir:?}\n\n\
             [[user]]\nname = \"b\"\npassword_hash = \"{second}\"\nroot = {dir:?}\n"
        );
        let users = db(&text).expect("users");
        let want = check_cost(&Credential::Argon2(dear.clone()));
        assert!(want > check_cost(&Credential::Argon2(cheap.clone())));
        assert_eq!(check_cost(&users.decoy), want);
    }
}
