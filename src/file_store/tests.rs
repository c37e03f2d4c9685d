use super::changes::{link_then_unlink, rename_noreplace};
use super::messages::{
    FinishUpload, List, ListFormat, MakeDir, OpenRead, OpenWrite, RemoveDir, RemoveFile, Rename,
    Stat, Upload, WriteMode,
};
use super::sweep::{sweep_temp_files, SWEEP_MAX_DEPTH};
use super::vpath::VirtualPath;
use super::{target_stays_inside, FileStore, Jail};
use crate::error::StoreError;
use crate::listing::{MlsxFacts, PermFact};
use actix::prelude::*;
use cap_std::fs::Dir;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::Path;

const TEMP: &str = ".actorftpd-upload-0123456789abcdef.part";

/// The local file an upload writes to.
fn file_of(upload: &mut super::Upload) -> &mut fs::File {
    match &mut upload.sink {
        super::UploadSink::File(file) => file,
        super::UploadSink::Object(_) => panic!("a local upload writes to a file"),
    }
}

/// A local listing's bytes.
fn bytes(source: super::ReadSource) -> Vec<u8> {
    match source {
        super::ReadSource::Bytes(bytes) => bytes,
        other => panic!("a local listing is bytes: {other:?}"),
    }
}

fn vp(s: &str) -> VirtualPath {
    VirtualPath::root().join(s)
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Opens an upload through the pool, as STOR does.
async fn open_upload(
    store: &Addr<FileStore>,
    jail: &Jail,
    path: &str,
    allow_overwrite: bool,
) -> Result<Upload, StoreError> {
    store
        .send(OpenWrite {
            jail: jail.clone(),
            path: vp(path),
            mode: WriteMode::Replace { allow_overwrite },
        })
        .await
        .expect("store answers")
}

#[actix::test]
async fn an_upload_whose_folder_is_renamed_meanwhile_still_ends_cleanly() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = FileStore::start_pool(1);
    let jail = Jail::open(tmp.path()).expect("jail");
    for (keep, overwrite) in [(true, true), (true, false), (false, true)] {
        fs::create_dir(tmp.path().join("d")).expect("dir");
        let mut upload = open_upload(&store, &jail, "d/x", overwrite)
            .await
            .expect("open");
        file_of(&mut upload).write_all(b"uploaded").expect("write");
        // Another session renames the folder while the upload runs.
        fs::rename(tmp.path().join("d"), tmp.path().join("e")).expect("rename");
        let answer = store
            .send(FinishUpload {
                jail: jail.clone(),
                target: upload.target,
                keep,
            })
            .await
            .expect("store answers");
        assert_eq!(answer, Ok(()), "keep {keep}, overwrite {overwrite}");
        // The upload lands (or is removed) in the folder it began in, under its new name;
        // no hidden temporary file is left to keep the folder from being removed.
        let want: Vec<String> = if keep { vec!["x".into()] } else { vec![] };
        assert_eq!(names(&tmp.path().join("e")), want);
        fs::remove_dir_all(tmp.path().join("e")).expect("clean");
    }
}

#[actix::test]
async fn an_upload_dropped_unfinished_leaves_no_temporary_file() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = FileStore::start_pool(1);
    let jail = Jail::open(tmp.path()).expect("jail");
    fs::write(tmp.path().join("x"), b"original").expect("original");
    let mut upload = open_upload(&store, &jail, "x", true).await.expect("open");
    file_of(&mut upload)
        .write_all(b"half an upload")
        .expect("write");
    assert_eq!(
        names(tmp.path()).len(),
        2,
        "the temporary file exists meanwhile"
    );
    // The session that asked went away (its answer, or its transfer, was dropped).
    drop(upload);
    // The removal is a message to the pool: a request sent after it is answered after it.
    let probe = store.send(Stat {
        jail: jail.clone(),
        path: vp("x"),
    });
    assert!(probe.await.expect("store answers").is_ok());
    assert_eq!(names(tmp.path()), vec!["x".to_owned()]);
    assert_eq!(fs::read(tmp.path().join("x")).expect("read"), b"original");
}

#[actix::test]
async fn an_upload_without_overwrite_never_replaces_a_file_that_appeared_meanwhile() {
    let tmp = tempfile::tempdir().expect("temp dir");
    fs::create_dir(tmp.path().join("d")).expect("dir");
    let store = FileStore::start_pool(1);
    let jail = Jail::open(tmp.path()).expect("jail");
    for path in ["x", "d/x"] {
        // The name is free when the upload starts...
        let mut upload = open_upload(&store, &jail, path, false).await.expect("open");
        file_of(&mut upload)
            .write_all(b"first upload")
            .expect("write");
        drop(upload.sink);
        // ...and taken (by another session's upload, say) before it ends.
        fs::write(tmp.path().join(path), b"second upload").expect("other file");
        let answer = store
            .send(FinishUpload {
                jail: jail.clone(),
                target: upload.target,
                keep: true,
            })
            .await
            .expect("store answers");
        assert_eq!(answer, Err(StoreError::AlreadyExists), "{path}");
        assert_eq!(
            fs::read(tmp.path().join(path)).expect("read"),
            b"second upload",
            "{path}"
        );
    }
    assert_eq!(names(tmp.path()), ["d", "x"], "no temporary file is left");
    assert_eq!(names(&tmp.path().join("d")), ["x"]);

    // With the name still free the same upload lands, and with overwrite it replaces.
    let mut upload = open_upload(&store, &jail, "y", false).await.expect("open");
    file_of(&mut upload).write_all(b"new").expect("write");
    let done = store.send(FinishUpload {
        jail: jail.clone(),
        target: upload.target,
        keep: true,
    });
    assert_eq!(done.await.expect("answer"), Ok(()));
    assert_eq!(fs::read(tmp.path().join("y")).expect("read"), b"new");
    let mut upload = open_upload(&store, &jail, "y", true).await.expect("open");
    file_of(&mut upload).write_all(b"newer").expect("write");
    let done = store.send(FinishUpload {
        jail: jail.clone(),
        target: upload.target,
        keep: true,
    });
    assert_eq!(done.await.expect("answer"), Ok(()));
    assert_eq!(fs::read(tmp.path().join("y")).expect("read"), b"newer");
    assert_eq!(
        open_upload(&store, &jail, "y", false).await.err(),
        Some(StoreError::PermissionDenied),
        "the early answer at the open stays"
    );
    assert_eq!(names(tmp.path()), ["d", "x", "y"]);
}

#[test]
fn rename_without_overwrite_is_exclusive_and_stays_in_the_jail() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(root.join("d")).expect("dirs");
    fs::create_dir_all(&outside).expect("outside");
    symlink(&outside, root.join("out")).expect("link");
    fs::write(root.join("a"), b"a").expect("a");
    fs::write(root.join("b"), b"b").expect("b");
    let dir = Dir::open_ambient_dir(&root, cap_std::ambient_authority()).expect("dir");
    let p = Path::new;

    assert_eq!(
        rename_noreplace(&dir, p("a"), p("b")),
        Err(StoreError::AlreadyExists)
    );
    assert_eq!(
        link_then_unlink(&dir, OsStr::new("a"), &dir, OsStr::new("b")),
        Err(StoreError::AlreadyExists)
    );
    assert_eq!(fs::read(root.join("a")).expect("a"), b"a");
    assert_eq!(fs::read(root.join("b")).expect("b"), b"b");

    assert_eq!(rename_noreplace(&dir, p("a"), p("d/a")), Ok(()));
    let d = dir.open_dir("d").expect("d");
    assert_eq!(
        link_then_unlink(&d, OsStr::new("a"), &dir, OsStr::new("c")),
        Ok(())
    );
    assert_eq!(fs::read(root.join("c")).expect("c"), b"a");
    assert!(!root.join("d/a").exists());
    // A directory is not hard-linked: the fallback refuses it.
    assert_eq!(
        link_then_unlink(&dir, OsStr::new("d"), &dir, OsStr::new("e")),
        Err(StoreError::InvalidName)
    );

    // SECURITY: a symlink in an intermediate component does not lead the rename outside.
    assert!(rename_noreplace(&dir, p("c"), p("out/c")).is_err());
    assert!(rename_noreplace(&dir, p("out/x"), p("x")).is_err());
    assert_eq!(names(&outside), Vec::<String>::new());
    for bad in ["..", "d/..", "/etc/x", "."] {
        assert_eq!(
            rename_noreplace(&dir, p("c"), p(bad)),
            Err(StoreError::InvalidName),
            "{bad}"
        );
    }
    assert_eq!(names(&root), ["b", "c", "d", "out"]);
}

#[test]
fn link_targets_are_inside_only_as_plain_text_below_the_root() {
    let cases = [
        (".", "a", true),
        (".", "sub/file", true),
        (".", "./sub/../file", true),
        ("d", "../file", true),
        ("d/e", "../../file", true),
        (".", "../root/file", false),
        (".", "sub/../../x", false),
        ("d", "../../x", false),
        (".", "/etc/passwd", false),
        ("d", "/d/file", false),
    ];
    for (parent, target, want) in cases {
        assert_eq!(
            target_stays_inside(Path::new(parent), Path::new(target)),
            want,
            "{parent} + {target}"
        );
    }
}

#[actix::test]
async fn listings_hide_upload_files_and_where_outside_links_point() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("sub")).expect("dirs");
    fs::write(root.join("sub/file"), b"inside").expect("file");
    fs::write(root.join(TEMP), b"in flight").expect("temp");
    fs::write(tmp.path().join("secret"), b"outside").expect("secret");
    symlink("sub/file", root.join("in")).expect("link");
    symlink(tmp.path().join("secret"), root.join("abs")).expect("link");
    symlink("../secret", root.join("rel")).expect("link");
    symlink("../root/sub/file", root.join("climb")).expect("link");
    symlink("nowhere", root.join("dangling")).expect("link");
    let store = FileStore::start_pool(1);
    let jail = Jail::open(&root).expect("jail");
    let list = |format| {
        store.send(List {
            jail: jail.clone(),
            path: VirtualPath::root(),
            format,
            now: 0,
        })
    };
    let long = bytes(list(ListFormat::Long).await.expect("answer").expect("LIST"));
    let long = String::from_utf8(long).expect("utf8");
    let names = bytes(
        list(ListFormat::Names)
            .await
            .expect("answer")
            .expect("NLST"),
    );
    let machine = list(ListFormat::Machine(
        MlsxFacts::default(),
        PermFact::default(),
    ))
    .await
    .expect("answer")
    .expect("MLSD");
    let machine = String::from_utf8(bytes(machine)).expect("utf8");
    for text in [&long, &String::from_utf8(names).expect("utf8"), &machine] {
        assert!(!text.contains("actorftpd-upload"), "{text}");
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains("root/"), "{text}");
        assert!(!text.contains("nowhere"), "{text}");
    }
    assert!(long.contains(" in -> sub/file\r\n"), "{long}");
    for name in ["abs", "rel", "climb", "dangling"] {
        let line = long
            .lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("no line for {name}: {long}"));
        assert!(line.starts_with('l'), "{line}");
        assert!(!line.contains("->"), "{line}");
    }
    assert!(machine.contains("type=OS.unix=symlink;"), "{machine}");
    assert!(machine.contains("type=file;size=6;"), "{machine}");
    // The temp file cannot be named either.
    let stat = store.send(List {
        jail: jail.clone(),
        path: vp(TEMP),
        format: ListFormat::Long,
        now: 0,
    });
    assert!(
        matches!(stat.await.expect("answer"), Err(StoreError::NotFound)),
        "LIST of the temporary file"
    );
}

#[actix::test]
async fn no_request_can_name_an_upload_file() {
    let tmp = tempfile::tempdir().expect("temp dir");
    fs::write(tmp.path().join(TEMP), b"in flight").expect("temp");
    fs::write(tmp.path().join("real"), b"real").expect("real");
    let store = FileStore::start_pool(1);
    let jail = Jail::open(tmp.path()).expect("jail");
    let j = || jail.clone();
    let not_found = Err(StoreError::NotFound);
    let bad_name: Result<(), StoreError> = Err(StoreError::InvalidName);
    for path in [TEMP, &format!("{TEMP}/below")] {
        let s = store.send(Stat {
            jail: j(),
            path: vp(path),
        });
        assert_eq!(s.await.expect("answer").map(|_| ()), not_found);
        let r = store.send(OpenRead {
            jail: j(),
            path: vp(path),
            offset: 0,
        });
        assert_eq!(r.await.expect("answer").map(|_| ()), not_found);
        let d = store.send(RemoveFile {
            jail: j(),
            path: vp(path),
        });
        assert_eq!(d.await.expect("answer"), not_found);
        let d = store.send(RemoveDir {
            jail: j(),
            path: vp(path),
        });
        assert_eq!(d.await.expect("answer"), not_found);
        let m = store.send(MakeDir {
            jail: j(),
            path: vp(path),
        });
        assert_eq!(m.await.expect("answer"), bad_name);
        for mode in [
            WriteMode::Replace {
                allow_overwrite: true,
            },
            WriteMode::Append,
            WriteMode::At(0),
        ] {
            let w = store.send(OpenWrite {
                jail: j(),
                path: vp(path),
                mode,
            });
            assert_eq!(w.await.expect("answer").map(|_| ()), bad_name, "{mode:?}");
        }
        for (from, to, want) in [(path, "new", &not_found), ("real", path, &bad_name)] {
            let r = store.send(Rename {
                jail: j(),
                from: vp(from),
                to: vp(to),
                allow_overwrite: true,
            });
            assert_eq!(&r.await.expect("answer"), want, "{from} -> {to}");
        }
    }
    assert_eq!(names(tmp.path()), [TEMP, "real"]);
    assert_eq!(fs::read(tmp.path().join(TEMP)).expect("temp"), b"in flight");
}

#[test]
fn the_sweep_removes_only_abandoned_upload_files_and_never_follows_links() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    let other = ".actorftpd-upload-fedcba9876543210.part";
    fs::create_dir_all(root.join("a/b/c")).expect("dirs");
    fs::create_dir_all(&outside).expect("outside");
    for dir in [&root, &root.join("a"), &root.join("a/b/c"), &outside] {
        fs::write(dir.join(TEMP), b"left by a crash").expect("temp");
    }
    let keep = [
        "keep.txt",
        ".actorftpd-upload-0123456789abcdef.part.keep",
        ".actorftpd-upload-xyz.part",
        "actorftpd-upload-0123456789abcdef.part",
    ];
    for name in keep {
        fs::write(root.join(name), b"keep").expect("keep");
    }
    // A directory and a symlink under a temp name are not ours to remove, and the link is
    // not followed (its target outside has a temp file too).
    fs::create_dir(root.join("a").join(other)).expect("temp-named dir");
    symlink(&outside, root.join("a/b").join(other)).expect("temp-named link");
    symlink(&outside, root.join("link-out")).expect("link");
    // An upload in flight (another daemon on this root) holds its lock.
    let busy = root
        .join("a/b")
        .join(".actorftpd-upload-00000000000000aa.part");
    let held = fs::File::create(&busy).expect("busy");
    rustix::fs::flock(&held, rustix::fs::FlockOperation::NonBlockingLockExclusive).expect("lock");

    assert_eq!(sweep_temp_files(&root).expect("sweep"), 3);
    assert!(!root.join(TEMP).exists());
    assert!(!root.join("a").join(TEMP).exists());
    assert!(!root.join("a/b/c").join(TEMP).exists());
    assert!(outside.join(TEMP).exists(), "the sweep followed a symlink");
    for name in keep {
        assert!(root.join(name).exists(), "{name}");
    }
    assert!(root.join("a").join(other).is_dir());
    assert!(root.join("a/b").join(other).is_symlink());
    assert!(busy.exists(), "a locked upload file was removed");
    // Once its upload is gone, the next start removes it.
    drop(held);
    assert_eq!(sweep_temp_files(&root).expect("sweep"), 1);
    assert!(!busy.exists());
    assert_eq!(sweep_temp_files(&root).expect("sweep"), 0);
    assert!(sweep_temp_files(&tmp.path().join("missing")).is_err());
}

#[test]
fn the_sweep_stops_at_its_depth_bound() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut deep = tmp.path().to_path_buf();
    for _ in 0..=SWEEP_MAX_DEPTH {
        deep.push("d");
    }
    fs::create_dir_all(&deep).expect("deep dirs");
    fs::write(deep.join(TEMP), b"too deep").expect("deep temp");
    fs::write(tmp.path().join("d").join(TEMP), b"shallow").expect("shallow temp");
    fs::create_dir(tmp.path().join("e")).expect("sibling");
    fs::write(tmp.path().join("e").join(TEMP), b"sibling").expect("sibling temp");
    assert_eq!(sweep_temp_files(tmp.path()).expect("sweep"), 2);
    assert!(deep.join(TEMP).exists());
}
