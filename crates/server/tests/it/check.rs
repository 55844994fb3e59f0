//! `basalt-server --check-rdb` and `--check-aof [--fix [--yes]]`: the fixtures written
//! by redis-server 7.0.15 pass, and damaged copies in a temp dir are reported with the
//! offset, exit 1, and are never modified (but by a confirmed `--fix`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Runs the binary with `args` and `stdin`; (exit code, stdout).
fn run(args: &[&str], stdin: &str) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_basalt-server"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn every_rdb_fixture_checks_ok() {
    for e in std::fs::read_dir(fixtures().join("rdb")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "rdb") {
            continue;
        }
        let (code, out) = run(&["--check-rdb", s(&p)], "");
        assert_eq!(code, 0, "{}: {out}", p.display());
        assert!(out.contains("\\o/ RDB looks OK! \\o/"), "{out}");
        assert!(
            out.contains("[info] AUX FIELD redis-ver = '7.0.15'"),
            "{out}"
        );
    }
    let (_, out) = run(
        &[
            "--check-rdb",
            s(&fixtures().join("rdb/redis-7.0.15-nocompress-nochecksum.rdb")),
        ],
        "",
    );
    assert!(out.contains("saved with checksum disabled"), "{out}");
}

#[test]
fn damaged_rdb_files_are_reported_and_left_alone() {
    let dir = crate::rdb::scratch("check-rdb");
    let good = std::fs::read(fixtures().join("rdb/redis-7.0.15-types.rdb")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() / 2].to_vec(), "Short read"),
        ("empty", Vec::new(), "Wrong signature"),
        (
            "random",
            (0..500u32).map(|i| (i * 7919 % 251) as u8).collect(),
            "Wrong signature",
        ),
        (
            "badsum",
            {
                let mut b = good.clone();
                let n = b.len();
                b[n - 1] ^= 0xff;
                b
            },
            "Wrong RDB checksum",
        ),
    ];
    for (name, bytes, want) in cases {
        let p = dir.join(format!("{name}.rdb"));
        std::fs::write(&p, &bytes).unwrap();
        let (code, out) = run(&["--check-rdb", s(&p)], "");
        assert_eq!(code, 1, "{name}: {out}");
        assert!(out.contains("--- RDB ERROR DETECTED ---"), "{name}: {out}");
        assert!(out.contains(want), "{name}: {out}");
        assert_eq!(std::fs::read(&p).unwrap(), bytes, "{name} modified");
    }
    let (code, out) = run(&["--check-rdb", s(&dir.join("missing.rdb"))], "");
    assert_eq!(code, 1, "{out}");
    let (code, _) = run(&["--check-rdb"], "");
    assert_eq!(code, 1);
}

#[test]
fn aof_fixtures_check_ok_as_manifest_dir_and_single_file() {
    for d in ["redis-7.0.15-rdb-base", "redis-7.0.15-resp-base"] {
        let dir = fixtures().join("aof").join(d);
        let manifest = dir.join("appendonly.aof.manifest");
        for target in [dir.clone(), manifest] {
            let (code, out) = run(&["--check-aof", s(&target)], "");
            assert_eq!(code, 0, "{}: {out}", target.display());
            assert!(out.starts_with("Start checking Multi Part AOF\n"), "{out}");
            assert!(
                out.ends_with("All AOF files and manifest are valid\n"),
                "{out}"
            );
        }
    }
    // redis-check-aof's line numbers run on across the files of the manifest.
    let (_, out) = run(
        &[
            "--check-aof",
            s(&fixtures().join("aof/redis-7.0.15-resp-base")),
        ],
        "",
    );
    assert!(out.contains("AOF analyzed: filename=appendonly.aof.2.base.aof, size=448, ok_up_to=448, ok_up_to_line=94, diff=0\n"), "{out}");
    assert!(out.contains("AOF analyzed: filename=appendonly.aof.2.incr.aof, size=280, ok_up_to=280, ok_up_to_line=154, diff=0\n"), "{out}");
    let single = fixtures().join("aof/redis-7.0.15-rdb-base/appendonly.aof.2.base.rdb");
    let (code, out) = run(&["--check-aof", s(&single)], "");
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("Start checking Old-Style AOF\n"), "{out}");
    assert!(
        out.contains("RDB preamble is OK, proceeding with AOF tail..."),
        "{out}"
    );
}

#[test]
fn torn_aof_tail_is_fixed_only_when_confirmed() {
    let dir = crate::rdb::scratch("check-aof-fix");
    copy_dir(&fixtures().join("aof/redis-7.0.15-resp-base"), &dir);
    let incr = dir.join("appendonly.aof.2.incr.aof");
    let f = std::fs::OpenOptions::new().write(true).open(&incr).unwrap();
    f.set_len(270).unwrap();
    drop(f);
    let (code, out) = run(&["--check-aof", s(&dir)], "");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("size=270, ok_up_to=254,"), "{out}");
    assert!(out.contains("diff=16\n"), "{out}");
    assert!(
        out.contains("is not valid. Use the --fix option to try fixing it."),
        "{out}"
    );
    // Declined: nothing changes.
    let (code, out) = run(&["--check-aof", "--fix", s(&dir)], "n\n");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Continue? [y/N]: Aborting..."), "{out}");
    assert_eq!(std::fs::metadata(&incr).unwrap().len(), 270);
    // Confirmed on stdin.
    let (code, out) = run(&["--check-aof", "--fix", s(&dir)], "y\n");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Successfully truncated AOF appendonly.aof.2.incr.aof"),
        "{out}"
    );
    assert_eq!(std::fs::metadata(&incr).unwrap().len(), 254);
    let (code, _) = run(&["--check-aof", s(&dir)], "");
    assert_eq!(code, 0);
}

#[test]
fn fix_yes_is_non_interactive_and_damage_before_the_last_file_is_not_cut() {
    let dir = crate::rdb::scratch("check-aof-yes");
    copy_dir(&fixtures().join("aof/redis-7.0.15-rdb-base"), &dir);
    let incr = dir.join("appendonly.aof.2.incr.aof");
    let mut bytes = std::fs::read(&incr).unwrap();
    bytes[100] = b'x';
    std::fs::write(&incr, &bytes).unwrap();
    let (code, out) = run(&["--check-aof", "--fix", "--yes", s(&dir)], "");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("This will shrink the AOF appendonly.aof.2.incr.aof from 280 bytes"),
        "{out}"
    );
    assert!(std::fs::metadata(&incr).unwrap().len() < 280);
    // A damaged base is not the last file: reported, never cut.
    let base = dir.join("appendonly.aof.2.base.rdb");
    let mut b = std::fs::read(&base).unwrap();
    let n = b.len();
    b[n - 3] ^= 0xff;
    std::fs::write(&base, &b).unwrap();
    let (code, out) = run(&["--check-aof", "--fix", "--yes", s(&dir)], "");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("RDB preamble of AOF file is not sane, aborting."),
        "{out}"
    );
    assert!(out.contains("cannot be fixed by truncating it"), "{out}");
    assert_eq!(std::fs::read(&base).unwrap(), b);
    // A bad manifest.
    std::fs::write(dir.join("appendonly.aof.manifest"), b"garbage line\n").unwrap();
    let (code, out) = run(&["--check-aof", s(&dir)], "");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Invalid AOF manifest file format"), "{out}");
}

/// Single-file AOFs as Redis ≤ 6.2 wrote them (and the directory the upgrade makes of
/// one): an RDB preamble followed by commands, a torn plain file fixed by `--fix --yes`,
/// an empty file; the upgraded directory's base named `appendonly.aof` is recognised as
/// RDB by its content, and an empty incremental file is reported as Redis does.
#[test]
fn old_style_single_file_aofs() {
    let dir = crate::rdb::scratch("check-aof-single");
    let tail = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$4\r\nINCR\r\n$1\r\na\r\n";
    let mut pre = std::fs::read(fixtures().join("rdb/redis-7.0.15-types.rdb")).unwrap();
    let rdb_len = pre.len();
    pre.extend_from_slice(tail);
    let p = dir.join("appendonly.aof");
    std::fs::write(&p, &pre).unwrap();
    let (code, out) = run(&["--check-aof", s(&p)], "");
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("Start checking Old-Style AOF\n"), "{out}");
    assert!(
        out.contains("RDB preamble is OK, proceeding with AOF tail..."),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "size={}, ok_up_to={}, ok_up_to_line=13, diff=0\n",
            pre.len(),
            pre.len()
        )),
        "{out}"
    );
    assert!(out.ends_with(" is valid\n"), "{out}");

    // The same file as the base of an upgraded directory.
    let up = dir.join("appendonlydir");
    std::fs::create_dir_all(&up).unwrap();
    std::fs::copy(&p, up.join("appendonly.aof")).unwrap();
    std::fs::write(up.join("appendonly.aof.1.incr.aof"), b"").unwrap();
    std::fs::write(
        up.join("appendonly.aof.manifest"),
        "file appendonly.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n",
    )
    .unwrap();
    let (code, out) = run(&["--check-aof", s(&up)], "");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Start to check BASE AOF (RDB format).\n"),
        "{out}"
    );
    assert!(out.contains("BASE AOF appendonly.aof is valid\n"), "{out}");
    assert!(
        out.ends_with(
            "INCR AOF appendonly.aof.1.incr.aof is empty\nAll AOF files and manifest are valid\n"
        ),
        "{out}"
    );

    // A torn plain file: reported, then cut by --fix --yes at the last command.
    let torn = dir.join("torn.aof");
    let mut bytes = tail.to_vec();
    bytes.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1");
    std::fs::write(&torn, &bytes).unwrap();
    let (code, out) = run(&["--check-aof", s(&torn)], "");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "size={}, ok_up_to={}, ok_up_to_line=13, diff=22\n",
            bytes.len(),
            tail.len()
        )),
        "{out}"
    );
    assert_eq!(std::fs::read(&torn).unwrap(), bytes);
    let (code, out) = run(&["--check-aof", "--fix", "--yes", s(&torn)], "");
    assert_eq!(code, 0, "{out}");
    assert_eq!(std::fs::read(&torn).unwrap(), tail);
    // A torn tail after a preamble is cut the same way, the RDB part kept.
    let mut pre_torn = pre.clone();
    pre_torn.extend_from_slice(b"*2\r\n$4\r\nINCR");
    std::fs::write(&p, &pre_torn).unwrap();
    let (code, out) = run(&["--check-aof", "--fix", "--yes", s(&p)], "");
    assert_eq!(code, 0, "{out}");
    assert_eq!(std::fs::read(&p).unwrap(), pre);
    assert!(rdb_len < pre.len());

    // Empty.
    let empty = dir.join("empty.aof");
    std::fs::write(&empty, b"").unwrap();
    let (code, out) = run(&["--check-aof", s(&empty)], "");
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        format!("Start checking Old-Style AOF\nAOF {} is empty\n", s(&empty))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
