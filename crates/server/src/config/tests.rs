//! End-to-end tests of the configuration: files on disk, command lines, CONFIG GET/SET and
//! REWRITE. Expected texts were recorded from redis-server 7.0.15 (with `Basalt` in the
//! fatal error title and Basalt's defaults where they differ).

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "basalt-config-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        // Canonical, so it compares equal to what `dir` resolves to.
        TempDir(std::fs::canonicalize(&p).unwrap())
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Loads `content` as a config file (first argument) followed by `extra` arguments.
fn load_file(content: &str, extra: &[&str]) -> Result<Config, ConfigError> {
    let dir = TempDir::new();
    let path = dir.write("basalt.conf", content);
    let mut a = vec![path.to_string_lossy().into_owned()];
    a.extend(extra.iter().map(|s| s.to_string()));
    load_from(&a, &mut std::io::empty())
}

fn line_error(line: usize, text: &str, reason: &str) -> String {
    format!(
        "\n*** FATAL CONFIG FILE ERROR (Basalt {}) ***\nReading the configuration file, at line \
         {line}\n>>> '{text}'\n{reason}",
        env!("CARGO_PKG_VERSION")
    )
}

fn err_text(r: Result<Config, ConfigError>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn get1(c: &Config, name: &str) -> String {
    let found = c.get(name.as_bytes());
    assert_eq!(found.len(), 1, "{name}: {found:?}");
    String::from_utf8(found[0].1.clone()).unwrap()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

#[test]
fn defaults() {
    let c = Config::default();
    assert_eq!(c.bind, vec!["127.0.0.1".to_string()]);
    assert_eq!(c.port, 6379);
    assert_eq!(c.timeout, 0);
    assert_eq!(c.tcp_keepalive, 300);
    assert_eq!(c.databases, 16);
    assert_eq!(c.maxclients, 10000);
    assert!(c.requirepass.is_empty());
    assert_eq!(c.loglevel, LogLevel::Notice);
    assert_eq!(c.logfile, "");
    assert_eq!(c.pidfile, "");
    assert_eq!(c.dir, std::env::current_dir().unwrap());
    assert_eq!(c.hz, 10);
    assert_eq!(c.proto_max_bulk_len, 512 * 1024 * 1024);
    assert_eq!(c.proto_max_multibulk_len, 2_147_483_647);
    assert_eq!(c.client_query_buffer_limit, 1024 * 1024 * 1024);
    assert!(!c.daemonize);
    assert!(c.disable_thp);
    assert_eq!(get1(&c, "save"), "3600 1 300 100 60 10000");
    assert!(!c.appendonly);
    assert_eq!(c.maxmemory, 0);
    assert_eq!(c.maxmemory_policy, MaxmemoryPolicy::NoEviction);
    assert_eq!(
        (c.maxmemory_samples, c.maxmemory_eviction_tenacity),
        (5, 10)
    );
    assert_eq!((c.lfu_log_factor, c.lfu_decay_time), (10, 1));
    assert_eq!(c.active_expire_effort, 1);
    assert!(!c.lazyfree_lazy_user_del && !c.lazyfree_lazy_eviction);
    assert_eq!(c.enable_protected_configs, ProtectedAction::No);
    assert_eq!(c.threads, 0);
    assert_eq!(c.shards, 64);
    assert_eq!(c.config_file(), None);
    assert_eq!(c.limits().max_bulk_len, 512 * 1024 * 1024);
    // No arguments at all: the defaults, no file.
    assert_eq!(load_from(&[], &mut std::io::empty()).unwrap(), c);
}

#[test]
fn file_lines_comments_quotes_and_case() {
    let dir = TempDir::new();
    let c = load_file(
        &format!(
            "# a comment\n\n   \t\n  PORT 7000  \r\n\
             dir {}\n\
             Requirepass \"p a\\x41ss\\n\"\n\
             logfile 'it\\'s.log'\n\
             #port 1\n\
             maxmemory-policy ALLKEYS-LRU\n\
             loglevel Warning\n\
             appendonly YES\n",
            dir.path().display()
        ),
        &[],
    )
    .unwrap();
    assert_eq!(c.port, 7000);
    assert_eq!(c.requirepass, b"p aAss\n");
    assert_eq!(c.logfile, "it's.log");
    assert!(dir.path().join("it's.log").exists());
    assert_eq!(c.maxmemory_policy, MaxmemoryPolicy::AllkeysLru);
    assert_eq!(get1(&c, "maxmemory-policy"), "allkeys-lru");
    assert_eq!(c.loglevel, LogLevel::Warning);
    assert!(c.appendonly);
    assert!(c.config_file().unwrap().ends_with("basalt.conf"));
}

#[test]
fn memory_units_and_bools_in_files() {
    let c = load_file(
        "maxmemory 1gb\nproto-max-bulk-len 2mb\nclient-query-buffer-limit 1500000\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.maxmemory, 1024 * 1024 * 1024);
    assert_eq!(c.proto_max_bulk_len, 2 * 1024 * 1024);
    assert_eq!(c.client_query_buffer_limit, 1_500_000);
    assert_eq!(load_file("maxmemory 3k\n", &[]).unwrap().maxmemory, 3000);
    assert_eq!(load_file("maxmemory 3KB\n", &[]).unwrap().maxmemory, 3072);
    assert_eq!(
        load_file("maxmemory 2g\n", &[]).unwrap().maxmemory,
        2_000_000_000
    );
    assert!(load_file("appendonly yes\n", &[]).unwrap().appendonly);
    assert!(!load_file("appendonly No\n", &[]).unwrap().appendonly);
}

#[test]
fn file_errors_name_the_line() {
    let cases: &[(&str, usize, &str, &str)] = &[
        (
            "# c\n\nport 1 2\n",
            3,
            "port 1 2",
            "wrong number of arguments",
        ),
        ("port\n", 1, "port", "wrong number of arguments"),
        (
            "foo bar\n",
            1,
            "foo bar",
            "Bad directive or wrong number of arguments",
        ),
        (
            "  port \"abc\n",
            1,
            "port \"abc",
            "Unbalanced quotes in configuration line",
        ),
        (
            "port \"6379\"x\n",
            1,
            "port \"6379\"x",
            "Unbalanced quotes in configuration line",
        ),
        (
            "port abc\n",
            1,
            "port abc",
            "argument couldn't be parsed into an integer",
        ),
        (
            "port 70000\n",
            1,
            "port 70000",
            "argument must be between 0 and 65535 inclusive",
        ),
        (
            "port 007\n",
            1,
            "port 007",
            "argument couldn't be parsed into an integer",
        ),
        (
            "daemonize maybe\n",
            1,
            "daemonize maybe",
            "argument must be 'yes' or 'no'",
        ),
        (
            "maxmemory-policy foo\n",
            1,
            "maxmemory-policy foo",
            "argument(s) must be one of the following: volatile-lru, volatile-lfu, \
             volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction",
        ),
        (
            "loglevel nothing\n",
            1,
            "loglevel nothing",
            "argument(s) must be one of the following: debug, verbose, notice, warning",
        ),
        (
            "enable-protected-configs maybe\n",
            1,
            "enable-protected-configs maybe",
            "argument(s) must be one of the following: no, yes, local",
        ),
        (
            "maxmemory 1.5mb\n",
            1,
            "maxmemory 1.5mb",
            "argument must be a memory value",
        ),
        ("save 1\n", 1, "save 1", "Invalid save parameters"),
        (
            "include\n",
            1,
            "include",
            "Bad directive or wrong number of arguments",
        ),
        (
            "dir /nonexistent-basalt\n",
            1,
            "dir /nonexistent-basalt",
            "No such file or directory",
        ),
        (
            "bind a b c d e f g h i j k l m n o p q\n",
            1,
            "bind a b c d e f g h i j k l m n o p q",
            "Too many bind addresses specified.",
        ),
        (
            "databases 0\n",
            1,
            "databases 0",
            "argument must be between 1 and 2147483647 inclusive",
        ),
        (
            "proto-max-bulk-len 1000\n",
            1,
            "proto-max-bulk-len 1000",
            "argument must be between 1048576 and 9223372036854775807 inclusive",
        ),
        (
            "maxclients -1\n",
            1,
            "maxclients -1",
            "argument must be between 1 and 4294967295 inclusive",
        ),
        (
            "hz -1\n",
            1,
            "hz -1",
            "argument must be between 0 and 2147483647 inclusive",
        ),
        (
            "list-max-ziplist-entries\n",
            1,
            "list-max-ziplist-entries",
            "Bad directive or wrong number of arguments",
        ),
        (
            "shards 48\n",
            1,
            "shards 48",
            "argument must be a power of two",
        ),
        (
            "daemonize yes\n",
            1,
            "daemonize yes",
            "Basalt does not daemonize: run it in the foreground under a service manager \
             (daemonize must be 'no')",
        ),
    ];
    for &(content, line, text, reason) in cases {
        assert_eq!(
            err_text(load_file(content, &[])),
            line_error(line, text, reason),
            "{content:?}"
        );
    }
}

#[test]
fn deprecated_directives_are_ignored() {
    let c = load_file(
        "list-max-ziplist-entries 5\nlua-replicate-commands yes\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        c,
        Config {
            config_file: c.config_file.clone(),
            ..Config::default()
        }
    );
}

#[test]
fn logfile_that_cannot_be_opened() {
    let e = err_text(load_file("logfile /nonexistent-basalt/x.log\n", &[]));
    assert_eq!(
        e,
        format!(
            "\n*** FATAL CONFIG FILE ERROR (Basalt {}) ***\nCan't open the log file: No such file \
             or directory",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn missing_config_file() {
    let e = err_text(load_from(
        &args(&["/nonexistent-basalt.conf"]),
        &mut std::io::empty(),
    ));
    assert_eq!(
        e,
        "Fatal error, can't open config file '/nonexistent-basalt.conf': No such file or directory"
    );
}

#[test]
fn save_lines_accumulate_in_files_and_reset_with_empty() {
    let c = load_file("save 900 1\nsave 300 10\n", &[]).unwrap();
    assert_eq!(get1(&c, "save"), "900 1 300 10");
    let c = load_file("save \"900 1 300 10\"\n", &[]).unwrap();
    assert_eq!(get1(&c, "save"), "900 1 300 10");
    let c = load_file("save 900 1\nsave \"\"\nsave 60 5\n", &[]).unwrap();
    assert_eq!(get1(&c, "save"), "60 5");
    let c = load_file("save \"\"\n", &[]).unwrap();
    assert!(c.save.is_empty());
    // Lenient numbers, as C's strtoll reads them; the count is a C int.
    let c = load_file("save +5 007 1 4294967297\n", &[]).unwrap();
    assert_eq!(
        c.save,
        vec![
            SaveRule {
                seconds: 5,
                changes: 7
            },
            SaveRule {
                seconds: 1,
                changes: 1
            }
        ]
    );
    // Without any save line the defaults stay.
    assert_eq!(
        get1(&load_file("port 1\n", &[]).unwrap(), "save"),
        "3600 1 300 100 60 10000"
    );
}

#[test]
fn bind_forms() {
    let c = load_file("bind 127.0.0.1 ::1\n", &[]).unwrap();
    assert_eq!(c.bind, vec!["127.0.0.1", "::1"]);
    let c = load_file("bind \"127.0.0.1 -::1\"\n", &[]).unwrap();
    assert_eq!(c.bind, vec!["127.0.0.1", "-::1"]);
    let c = load_file("bind \"\"\n", &[]).unwrap();
    assert!(c.bind.is_empty());
    assert_eq!(get1(&c, "bind"), "");
}

#[test]
fn includes_nest_and_resolve_against_dir() {
    let dir = TempDir::new();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    dir.write("conf.d/b.conf", "timeout 20\n");
    dir.write("conf.d/a.conf", "timeout 10\nhz 20\n");
    dir.write("conf.d/.hidden.conf", "hz 99\n");
    dir.write("inner.conf", "include conf.d/*.conf\nport 7001\n");
    let main = format!(
        "dir {}\ninclude inner.conf\nport 7002\ninclude empty.d/*.conf\n",
        dir.path().display()
    );
    let c = load_file(&main, &[]).unwrap();
    assert_eq!(c.port, 7002);
    // a.conf then b.conf, in sorted order; dotfiles are not matched by `*`.
    assert_eq!(c.timeout, 20);
    assert_eq!(c.hz, 20);
    assert_eq!(c.dir, dir.path());

    // Errors inside an include count lines in that file.
    dir.write("bad.conf", "\n\nport x\n");
    let e = err_text(load_file(
        &format!("dir {}\ninclude bad.conf\n", dir.path().display()),
        &[],
    ));
    assert_eq!(
        e,
        line_error(3, "port x", "argument couldn't be parsed into an integer")
    );

    // Files matched by a glob are concatenated as they are, like Redis does: without a
    // final newline, a file's last line runs into the next file's first line.
    std::fs::create_dir(dir.path().join("joined.d")).unwrap();
    dir.write("joined.d/a.conf", "timeout 7");
    dir.write("joined.d/b.conf", "hz 30\n");
    let e = err_text(load_file(
        &format!("dir {}\ninclude joined.d/*\n", dir.path().display()),
        &[],
    ));
    assert_eq!(
        e,
        line_error(1, "timeout 7hz 30", "wrong number of arguments")
    );

    let e = err_text(load_file(
        &format!("dir {}\ninclude missing.conf\n", dir.path().display()),
        &[],
    ));
    assert_eq!(
        e,
        "Fatal error, can't open config file 'missing.conf': No such file or directory"
    );
}

#[test]
fn include_loops_stop_at_the_depth_limit() {
    let dir = TempDir::new();
    dir.write("loop.conf", "port 1\ninclude loop.conf\n");
    let e = err_text(load_file(
        &format!("dir {}\ninclude loop.conf\n", dir.path().display()),
        &[],
    ));
    assert_eq!(
        e,
        line_error(
            2,
            "include loop.conf",
            "Too many nested includes (Basalt allows 16 levels)"
        )
    );
}

#[test]
fn command_line_options_override_the_file() {
    let c = load_file(
        "port 7000\nhz 20\n",
        &["--port", "7001", "--maxmemory", "1mb"],
    )
    .unwrap();
    assert_eq!(c.port, 7001);
    assert_eq!(c.hz, 20);
    assert_eq!(c.maxmemory, 1024 * 1024);

    let c = load_from(
        &args(&[
            "--port",
            "7002",
            "--bind",
            "127.0.0.1",
            "::1",
            "--save",
            "60",
            "5",
        ]),
        &mut std::io::empty(),
    )
    .unwrap();
    assert_eq!(c.port, 7002);
    assert_eq!(c.bind, vec!["127.0.0.1", "::1"]);
    assert_eq!(get1(&c, "save"), "60 5");
    assert_eq!(c.config_file(), None);

    // `--port 7003` as one argument, a multi-word value in one argument.
    let c = load_from(
        &args(&["--port 7003", "--save", "60 5 30 10"]),
        &mut std::io::empty(),
    )
    .unwrap();
    assert_eq!(c.port, 7003);
    assert_eq!(get1(&c, "save"), "60 5 30 10");

    // A bare --save (last, or followed by another option) means `save ""`.
    let c = load_from(&args(&["--save"]), &mut std::io::empty()).unwrap();
    assert!(c.save.is_empty());
    let c = load_from(&args(&["--save", "--hz", "30"]), &mut std::io::empty()).unwrap();
    assert!(c.save.is_empty());
    assert_eq!(c.hz, 30);
}

#[test]
fn command_line_errors_match_redis() {
    let load_args = |a: &[&str]| err_text(load_from(&args(a), &mut std::io::empty()));
    // No file: the options start at line 2 (after the empty file content).
    assert_eq!(
        load_args(&["--port", "0", "--port", "--bind", "x"]),
        line_error(3, "port \"--bind\" \"x\"", "wrong number of arguments")
    );
    assert_eq!(
        load_args(&["--port", "0", "/tmp/x.conf"]),
        line_error(2, "port \"0\" \"/tmp/x.conf\"", "wrong number of arguments")
    );
    assert_eq!(
        load_args(&["--hz", "a\u{1}\"\\\n"]),
        line_error(
            2,
            "hz \"a\\x01\\\"\\\\\\n\"",
            "argument couldn't be parsed into an integer"
        )
    );
    assert_eq!(
        load_args(&["--HZ", "abc"]),
        line_error(
            2,
            "HZ \"abc\"",
            "argument couldn't be parsed into an integer"
        )
    );
    assert_eq!(
        load_args(&["--port"]),
        line_error(2, "port", "wrong number of arguments")
    );
    // After a file, options follow the file's lines.
    assert_eq!(
        err_text(load_file("port 5\n", &["--foo", "bar"])),
        line_error(
            3,
            "foo \"bar\"",
            "Bad directive or wrong number of arguments"
        )
    );
}

#[test]
fn config_from_stdin() {
    let mut input: &[u8] = b"port 7100\nhz 33\n";
    let c = load_from(&args(&["-", "--hz", "44"]), &mut input).unwrap();
    assert_eq!(c.port, 7100);
    assert_eq!(c.hz, 44);
    let mut input: &[u8] = b"port 7101\n";
    let c = load_from(&args(&["--hz", "44", "-"]), &mut input).unwrap();
    assert_eq!(c.port, 7101);
}

#[test]
fn hz_is_clamped() {
    assert_eq!(load_file("hz 1000\n", &[]).unwrap().hz, 500);
    assert_eq!(load_file("hz 0\n", &[]).unwrap().hz, 1);
    let mut c = Config::default();
    c.set_many(&pairs(&[("hz", "1000")])).unwrap();
    assert_eq!(get1(&c, "hz"), "500");
    c.set_many(&pairs(&[("hz", "0")])).unwrap();
    assert_eq!(get1(&c, "hz"), "1");
}

#[test]
fn get_patterns() {
    let c = Config::default();
    assert_eq!(c.get(b"port"), vec![("port".to_string(), b"6379".to_vec())]);
    // Exact names answer under the spelling asked for; patterns under the real name.
    assert_eq!(c.get(b"PORT"), vec![("PORT".to_string(), b"6379".to_vec())]);
    assert_eq!(c.get(b"P?RT"), vec![("port".to_string(), b"6379".to_vec())]);
    assert_eq!(c.get(b"nonexistent"), vec![]);
    assert_eq!(
        c.get(b"maxmemory*"),
        vec![
            ("maxmemory".to_string(), b"0".to_vec()),
            ("maxmemory-policy".to_string(), b"noeviction".to_vec()),
            ("maxmemory-samples".to_string(), b"5".to_vec()),
            ("maxmemory-eviction-tenacity".to_string(), b"10".to_vec()),
        ]
    );
    let all = c.get(b"*");
    // As in Redis 7.0, `CONFIG GET *` lists aliases (hash-max-ziplist-entries, ...) too.
    // Hidden directives (key-load-delay) answer only by exact name.
    let aliases: usize = table::TABLE.iter().map(|d| d.aliases.len()).sum();
    let hidden = table::TABLE.iter().filter(|d| d.has(table::HIDDEN)).count();
    assert_eq!(all.len(), table::TABLE.len() - hidden + aliases);
    assert!(all.iter().all(|(n, _)| n != "key-load-delay"));
    assert_eq!(
        c.get(b"key-load-delay"),
        vec![("key-load-delay".to_string(), b"0".to_vec())]
    );
    let value = |name: &str| {
        all.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
            .unwrap()
    };
    assert_eq!(value("proto-max-bulk-len"), "536870912");
    assert_eq!(value("client-query-buffer-limit"), "1073741824");
    assert_eq!(value("appendonly"), "no");
    assert_eq!(value("daemonize"), "no");
    assert_eq!(value("disable-thp"), "yes");
    assert_eq!(value("requirepass"), "");
    assert_eq!(value("pidfile"), "");
    assert_eq!(value("bind"), "127.0.0.1");
    assert_eq!(value("save"), "3600 1 300 100 60 10000");
    assert_eq!(
        value("dir"),
        std::env::current_dir().unwrap().to_str().unwrap()
    );
    assert_eq!(value("threads"), "0");
    assert_eq!(value("shards"), "64");

    // Several patterns: one entry per directive, first spelling wins.
    let got = c.get_many(&[b"port", b"PORT", b"p*t"]);
    assert_eq!(got, vec![("port".to_string(), b"6379".to_vec())]);
    let got = c.get_many(&[b"PORT", b"p*t", b"hz"]);
    assert_eq!(
        got,
        vec![
            ("PORT".to_string(), b"6379".to_vec()),
            ("hz".to_string(), b"10".to_vec())
        ]
    );
}

#[test]
fn set_changes_values_and_reports_changes() {
    let mut c = Config::default();
    let changes = c
        .set_many(&pairs(&[
            ("maxmemory", "100mb"),
            ("MAXMEMORY-POLICY", "allkeys-lru"),
            ("loglevel", "notice"),
            ("timeout", "30"),
            ("requirepass", "s3cret"),
            ("appendonly", "yes"),
        ]))
        .unwrap();
    let names: Vec<&str> = changes.iter().map(|ch| ch.name).collect();
    // loglevel was already notice: not a change.
    assert_eq!(
        names,
        vec![
            "maxmemory",
            "maxmemory-policy",
            "timeout",
            "requirepass",
            "appendonly"
        ]
    );
    assert_eq!(c.maxmemory, 100 * 1024 * 1024);
    assert_eq!(get1(&c, "maxmemory"), "104857600");
    assert_eq!(c.maxmemory_policy, MaxmemoryPolicy::AllkeysLru);
    assert_eq!(c.timeout, 30);
    assert_eq!(c.requirepass, b"s3cret");
    assert!(c.appendonly);

    c.set_many(&pairs(&[("save", "3600 1"), ("bind", "127.0.0.1 ::1")]))
        .unwrap();
    assert_eq!(get1(&c, "save"), "3600 1");
    assert_eq!(c.bind, vec!["127.0.0.1", "::1"]);
    c.set_many(&pairs(&[("save", ""), ("bind", ""), ("requirepass", "")]))
        .unwrap();
    assert!(c.save.is_empty());
    assert!(c.bind.is_empty());
    assert!(c.requirepass.is_empty());
    // CONFIG SET splits on single spaces: "5 " is the rule (5, 0), as in Redis.
    c.set_many(&pairs(&[("save", "5 ")])).unwrap();
    assert_eq!(get1(&c, "save"), "5 0");
    assert_eq!(c.set_many(&pairs(&[("save", "5 0")])).unwrap(), vec![]);
}

#[test]
fn set_is_all_or_nothing() {
    let mut c = Config::default();
    let before = c.clone();
    let e = c
        .set_many(&pairs(&[
            ("hz", "15"),
            ("maxmemory", "1gb"),
            ("port", "abc"),
        ]))
        .unwrap_err();
    assert_eq!(
        e,
        "ERR CONFIG SET failed (possibly related to argument 'port') - argument couldn't be \
         parsed into an integer"
    );
    assert_eq!(c, before);
}

#[test]
fn set_error_strings_match_redis() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("foo", "1")],
            "ERR Unknown option or number of arguments for CONFIG SET - 'foo'",
        ),
        (
            &[("PORT", "abc")],
            "ERR CONFIG SET failed (possibly related to argument 'port') - argument couldn't be \
             parsed into an integer",
        ),
        (
            &[("databases", "1")],
            "ERR CONFIG SET failed (possibly related to argument 'databases') - can't set \
             immutable config",
        ),
        (
            &[("DATABASES", "1")],
            "ERR CONFIG SET failed (possibly related to argument 'DATABASES') - can't set \
             immutable config",
        ),
        (
            &[("maxmemory-policy", "foo")],
            "ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - \
             argument(s) must be one of the following: volatile-lru, volatile-lfu, \
             volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction",
        ),
        (
            &[("hz", "10"), ("HZ", "11")],
            "ERR CONFIG SET failed (possibly related to argument 'HZ') - duplicate parameter",
        ),
        (
            &[("hz", "10"), ("foo", "11")],
            "ERR Unknown option or number of arguments for CONFIG SET - 'foo'",
        ),
        (
            &[("foo", "10"), ("databases", "11")],
            "ERR Unknown option or number of arguments for CONFIG SET - 'foo'",
        ),
        (
            &[("databases", "10"), ("foo", "11")],
            "ERR CONFIG SET failed (possibly related to argument 'databases') - can't set \
             immutable config",
        ),
        (
            &[("hz", "abc"), ("databases", "11")],
            "ERR CONFIG SET failed (possibly related to argument 'databases') - can't set \
             immutable config",
        ),
        (
            &[("dir", "/tmp")],
            "ERR CONFIG SET failed (possibly related to argument 'dir') - can't set protected \
             config",
        ),
        (
            &[("daemonize", "no")],
            "ERR CONFIG SET failed (possibly related to argument 'daemonize') - can't set \
             immutable config",
        ),
        (
            &[("appendonly", "maybe")],
            "ERR CONFIG SET failed (possibly related to argument 'appendonly') - argument must \
             be 'yes' or 'no'",
        ),
        (
            &[("maxmemory-samples", "0")],
            "ERR CONFIG SET failed (possibly related to argument 'maxmemory-samples') - argument \
             must be between 1 and 2147483647 inclusive",
        ),
        (
            &[("active-expire-effort", "11")],
            "ERR CONFIG SET failed (possibly related to argument 'active-expire-effort') - \
             argument must be between 1 and 10 inclusive",
        ),
        (
            &[("active-expire-effort", "0")],
            "ERR CONFIG SET failed (possibly related to argument 'active-expire-effort') - \
             argument must be between 1 and 10 inclusive",
        ),
        (
            &[("save-yield-seconds", "86401")],
            "ERR CONFIG SET failed (possibly related to argument 'save-yield-seconds') - \
             argument must be between 0 and 86400 inclusive",
        ),
        (
            &[("save-yield-seconds", "-1")],
            "ERR CONFIG SET failed (possibly related to argument 'save-yield-seconds') - \
             argument must be between 0 and 86400 inclusive",
        ),
        (
            &[("maxmemory-eviction-tenacity", "101")],
            "ERR CONFIG SET failed (possibly related to argument 'maxmemory-eviction-tenacity') \
             - argument must be between 0 and 100 inclusive",
        ),
        (
            &[("lfu-log-factor", "-1")],
            "ERR CONFIG SET failed (possibly related to argument 'lfu-log-factor') - argument \
             must be between 0 and 2147483647 inclusive",
        ),
        (
            &[("lazyfree-lazy-user-del", "1")],
            "ERR CONFIG SET failed (possibly related to argument 'lazyfree-lazy-user-del') - \
             argument must be 'yes' or 'no'",
        ),
        (
            &[("maxmemory", "-1")],
            "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be \
             a memory value",
        ),
        (
            &[("timeout", "05")],
            "ERR CONFIG SET failed (possibly related to argument 'timeout') - argument couldn't \
             be parsed into an integer",
        ),
        (
            &[("timeout", "2147483648")],
            "ERR CONFIG SET failed (possibly related to argument 'timeout') - argument must be \
             between 0 and 2147483647 inclusive",
        ),
        (
            &[("save", "3600  1")],
            "ERR CONFIG SET failed (possibly related to argument 'save') - Invalid save \
             parameters",
        ),
        (
            &[("save", " 5 1")],
            "ERR CONFIG SET failed (possibly related to argument 'save') - Invalid save \
             parameters",
        ),
        (
            &[("enable-protected-configs", "yes")],
            "ERR CONFIG SET failed (possibly related to argument 'enable-protected-configs') - \
             can't set immutable config",
        ),
        (
            &[("shards", "32")],
            "ERR CONFIG SET failed (possibly related to argument 'shards') - can't set immutable \
             config",
        ),
        (
            &[("foo\r\nbar", "1")],
            "ERR Unknown option or number of arguments for CONFIG SET - 'foo  bar'",
        ),
    ];
    for &(args, expected) in cases {
        let mut c = Config::default();
        assert_eq!(c.set_many(&pairs(args)).unwrap_err(), expected, "{args:?}");
        assert_eq!(c, Config::default());
    }
}

#[test]
fn memory_values_through_set() {
    let mut c = Config::default();
    for (input, expected) in [
        ("", "0"),
        ("kb", "0"),
        ("1k", "1000"),
        ("1Kb", "1024"),
        ("1B", "1"),
        ("18446744073709551616", "18446744073709551615"),
        ("20000000000gb", "3028092406290448384"),
    ] {
        c.set_many(&pairs(&[("maxmemory", input)])).unwrap();
        assert_eq!(get1(&c, "maxmemory"), expected, "{input:?}");
    }
    assert_eq!(
        c.set_many(&pairs(&[("proto-max-bulk-len", "99999999999999999999")]))
            .unwrap_err(),
        "ERR CONFIG SET failed (possibly related to argument 'proto-max-bulk-len') - argument \
         must be between 1048576 and 9223372036854775807 inclusive"
    );
}

#[test]
fn protected_dir_needs_permission() {
    let target = TempDir::new();
    let value = target.path().to_str().unwrap().to_string();
    let mut c = load_from(
        &args(&["--enable-protected-configs", "local"]),
        &mut std::io::empty(),
    )
    .unwrap();
    let set = pairs(&[("dir", &value)]);
    assert!(
        c.set_many_from(&set, false)
            .unwrap_err()
            .contains("can't set protected config")
    );
    assert_eq!(
        c.set_many_from(&set, true).unwrap(),
        vec![ConfigChange { name: "dir" }]
    );
    assert_eq!(c.dir, target.path());
    assert_eq!(get1(&c, "dir"), value);

    let mut c = load_from(
        &args(&["--enable-protected-configs", "yes"]),
        &mut std::io::empty(),
    )
    .unwrap();
    assert_eq!(
        c.set_many(&pairs(&[("dir", "/nonexistent-basalt")]))
            .unwrap_err(),
        "ERR CONFIG SET failed (possibly related to argument 'dir') - No such file or directory"
    );
    let file = target.write("f", "");
    assert_eq!(
        c.set_many(&pairs(&[("dir", file.to_str().unwrap())]))
            .unwrap_err(),
        "ERR CONFIG SET failed (possibly related to argument 'dir') - Not a directory"
    );
    c.set_many(&pairs(&[("dir", &value)])).unwrap();
    // Relative to the current `dir`.
    std::fs::create_dir(target.path().join("sub")).unwrap();
    c.set_many(&pairs(&[("dir", "sub")])).unwrap();
    assert_eq!(c.dir, target.path().join("sub"));
    c.set_many(&pairs(&[("dir", "..")])).unwrap();
    assert_eq!(c.dir, target.path());
}

#[test]
fn sensitive_directives() {
    assert!(Config::is_sensitive(b"requirepass"));
    assert!(Config::is_sensitive(b"REQUIREPASS"));
    assert!(!Config::is_sensitive(b"port"));
}

#[test]
fn rewrite_without_a_file() {
    assert_eq!(
        Config::default().rewrite_config_file().unwrap_err(),
        "ERR The server is running without a config file"
    );
}

#[test]
fn rewrite_keeps_comments_and_order() {
    // The scenario recorded from redis-server 7.0.15: load, CONFIG SET, edit the file,
    // CONFIG REWRITE.
    let dir = TempDir::new();
    let inc = dir.write("inc.conf", "maxmemory-policy allkeys-lru\n");
    let loaded = format!(
        "# top comment\n   port 17602   \nbind 127.0.0.1 ::1\n\n# Generated by something else\n\
         save 900 1\nsave 300 10\ntimeout 5\ninclude {}\nhz 1000\nmaxmemory 1mb\nMaxMemory \
         2mb\nloglevel notice\n\n\nrequirepass secret\n# end\n",
        inc.display()
    );
    let path = dir.write("basalt.conf", &loaded);
    let mut c = load_from(
        &args(&[
            path.to_str().unwrap(),
            "--dir",
            dir.path().to_str().unwrap(),
        ]),
        &mut std::io::empty(),
    )
    .unwrap();
    assert_eq!(c.hz, 500);
    assert_eq!(c.maxmemory, 2 * 1024 * 1024);
    c.set_many(&pairs(&[
        ("timeout", "0"),
        ("maxclients", "500"),
        ("requirepass", ""),
    ]))
    .unwrap();
    // Lines that stopped parsing since the start are kept as comments.
    let edited = loaded.replace(
        "timeout 5\n",
        "timeout 5\nunknown-directive 1 2\n\"unbalanced\n",
    );
    std::fs::write(&path, &edited).unwrap();
    c.rewrite_config_file().unwrap();
    let expected = format!(
        "# top comment\nport 17602\nbind 127.0.0.1 ::1\n\n# Generated by something else\nsave \
         900 1\nsave 300 10\ntimeout 0\n# ??? unknown-directive 1 2\n# ??? \"unbalanced\n\
         include {}\nhz 500\nmaxmemory 2mb\n\nloglevel notice\n\n# end\n\n# Generated by CONFIG \
         REWRITE\nmaxclients 500\ndir \"{}\"\nmaxmemory-policy allkeys-lru\n",
        inc.display(),
        dir.path().display()
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // Rewriting again only adds the blank line Redis adds after a final newline, then
    // nothing; the result loads back to the same values.
    c.rewrite_config_file().unwrap();
    let expected = format!("{expected}\n");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    c.rewrite_config_file().unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    let again = load_from(&args(&[path.to_str().unwrap()]), &mut std::io::empty()).unwrap();
    assert_eq!(again, c);
}

#[test]
fn rewrite_drops_defaults_only_where_redis_does() {
    let dir = TempDir::new();
    let path = dir.write(
        "basalt.conf",
        "bind 127.0.0.1\nport 6379\npidfile /tmp/x.pid\nsave 1 1\n",
    );
    let c = load_from(&args(&[path.to_str().unwrap()]), &mut std::io::empty()).unwrap();
    c.rewrite(&path).unwrap();
    // bind at its default disappears, port stays even at its default, dir is always
    // written, save keeps its line.
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!(
            "\nport 6379\npidfile \"/tmp/x.pid\"\nsave 1 1\n\n# Generated by CONFIG REWRITE\ndir \
             \"{}\"\n",
            c.dir.display()
        )
    );

    // An empty file gets the non-default values only.
    let mut c = Config::default();
    c.set_many(&pairs(&[
        ("save", ""),
        ("maxmemory", "1536kb"),
        ("appendonly", "yes"),
    ]))
    .unwrap();
    let empty = dir.write("empty.conf", "");
    c.rewrite(&empty).unwrap();
    assert_eq!(
        std::fs::read_to_string(&empty).unwrap(),
        format!(
            "# Generated by CONFIG REWRITE\ndir \"{}\"\nsave \"\"\nappendonly yes\nmaxmemory \
             1536kb\n",
            c.dir.display()
        )
    );
    // A file that does not exist (any more) is created.
    let fresh = dir.path().join("fresh.conf");
    c.rewrite(&fresh).unwrap();
    assert_eq!(
        std::fs::read(&fresh).unwrap(),
        std::fs::read(&empty).unwrap()
    );
}

#[test]
fn rewrite_failure_is_reported_like_redis() {
    let c = load_file("port 1\n", &[]).unwrap();
    // load_file's directory is gone now: the temporary file cannot be created.
    assert_eq!(
        c.rewrite_config_file().unwrap_err(),
        "ERR Rewriting config file: No such file or directory"
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Directive names (all but those that touch the filesystem while loading), plus
    /// unknown and oddly cased ones.
    fn name() -> impl Strategy<Value = Vec<u8>> {
        let mut names: Vec<Vec<u8>> = table::TABLE
            .iter()
            .map(|d| d.name)
            .filter(|n| !matches!(*n, "dir" | "logfile"))
            .map(|n| n.as_bytes().to_vec())
            .collect();
        names.extend([
            b"PORT".to_vec(),
            b"nope".to_vec(),
            b"list-max-ziplist-value".to_vec(),
        ]);
        proptest::sample::select(names)
    }

    fn arg() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            proptest::sample::select(
                b"0123456789-+ kKbBmMgGyesnoYESallkeys-lru\"'\\x\t\0\xff".to_vec(),
            ),
            0..12,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn loading_arbitrary_lines_never_panics(
            lines in proptest::collection::vec(
                (name(), proptest::collection::vec(arg(), 0..4)), 0..8),
        ) {
            let mut text = Vec::new();
            for (name, line_args) in &lines {
                text.extend_from_slice(name);
                for a in line_args {
                    text.push(b' ');
                    text.extend_from_slice(a);
                }
                text.push(b'\n');
            }
            if let Ok(c) = load_from(&args(&["-"]), &mut &text[..]) {
                prop_assert!((1..=500).contains(&c.hz));
                prop_assert!(c.shards.is_power_of_two());
                prop_assert!(!c.daemonize);
                prop_assert!(c.proto_max_bulk_len >= 1024 * 1024);
            }
        }

        #[test]
        fn set_many_changes_everything_or_nothing(
            pairs in proptest::collection::vec((name(), arg()), 1..4),
        ) {
            let mut c = Config::default();
            let before = c.clone();
            match c.set_many(&pairs) {
                Err(e) => {
                    prop_assert!(e.starts_with("ERR "));
                    prop_assert_eq!(c, before);
                }
                Ok(changes) => {
                    for ch in &changes {
                        let d = table::lookup(ch.name.as_bytes()).unwrap();
                        prop_assert_ne!(d.get(&c), d.get(&before));
                    }
                    // Whatever was accepted can be rewritten and its text split back —
                    // except `bind`, written raw like Redis does: an address that needs
                    // quoting cannot be bound, so the server reverts it before any rewrite.
                    let text = rewrite::render(&c, b"");
                    for line in text.split(|&b| b == b'\n').filter(|l| !l.starts_with(b"bind ")) {
                        prop_assert!(basalt_proto::split_args(line).is_some());
                    }
                }
            }
        }
    }
}

#[test]
fn basalt_policies_are_accepted_but_not_listed() {
    let mut c = Config::default();
    c.set_many(&pairs(&[("maxmemory-policy", "ALLKEYS-S3FIFO")]))
        .unwrap();
    assert_eq!(c.maxmemory_policy, MaxmemoryPolicy::AllkeysS3Fifo);
    assert_eq!(get1(&c, "maxmemory-policy"), "allkeys-s3fifo");
    c.set_many(&pairs(&[("maxmemory-policy", "allkeys-fifo")]))
        .unwrap();
    assert_eq!(
        c.maxmemory_policy.engine(),
        basalt_engine::Policy::AllkeysFifo
    );
    // Boundaries of the new directives.
    c.set_many(&pairs(&[
        ("maxmemory-samples", "1"),
        ("maxmemory-eviction-tenacity", "100"),
        ("active-expire-effort", "10"),
        ("save-yield-seconds", "86400"),
        ("lfu-decay-time", "0"),
        ("lazyfree-lazy-expire", "yes"),
    ]))
    .unwrap();
    assert_eq!(get1(&c, "maxmemory-samples"), "1");
    assert_eq!(get1(&c, "lazyfree-lazy-expire"), "yes");
    assert_eq!(c.active_expire_effort, 10);
    assert_eq!(c.save_yield_seconds, 86400);
    c.set_many(&pairs(&[
        ("active-expire-effort", "1"),
        ("save-yield-seconds", "0"),
    ]))
    .unwrap();
    assert_eq!(get1(&c, "active-expire-effort"), "1");
    assert_eq!(get1(&c, "save-yield-seconds"), "0");
}

#[test]
fn client_output_buffer_limit_like_redis() {
    let mut c = Config::default();
    assert_eq!(
        get1(&c, "client-output-buffer-limit"),
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    );
    c.set_many(&pairs(&[(
        "client-output-buffer-limit",
        "pubsub 1mb 2mb 10",
    )]))
    .unwrap();
    assert_eq!(
        get1(&c, "client-output-buffer-limit"),
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 1048576 2097152 10"
    );
    c.set_many(&pairs(&[(
        "client-output-buffer-limit",
        "normal 1 2 3 replica 4 5 6 PUBSUB 1k 2kb +3",
    )]))
    .unwrap();
    assert_eq!(
        get1(&c, "client-output-buffer-limit"),
        "normal 1 2 3 slave 4 5 6 pubsub 1000 2048 3"
    );
    let before = c.clone();
    for (value, reason) in [
        (
            "pubsub 1mb",
            "Wrong number of arguments in buffer limit configuration.",
        ),
        (
            "normal 1 2 3 pubsub 4 5",
            "Wrong number of arguments in buffer limit configuration.",
        ),
        (
            "foo 1 2 3",
            "Invalid client class specified in buffer limit configuration.",
        ),
        (
            "master 1 2 3",
            "Invalid client class specified in buffer limit configuration.",
        ),
        (
            "normal 1 1 1 pubsub -1 0 0",
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
        ),
        (
            "pubsub 1x 0 0",
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
        ),
        (
            "pubsub 0 0 -1",
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
        ),
        (
            "pubsub 1 2 3x",
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
        ),
    ] {
        let e = c
            .set_many(&pairs(&[("client-output-buffer-limit", value)]))
            .unwrap_err();
        assert_eq!(
            e,
            format!(
                "ERR CONFIG SET failed (possibly related to argument \
                 'client-output-buffer-limit') - {reason}"
            ),
            "{value}"
        );
        // A bad group changes nothing, not even the good groups before it.
        assert_eq!(c, before, "{value}");
    }
    // Config files: one class per line, later lines win per class.
    let c = load_file(
        "client-output-buffer-limit normal 1mb 0 0\nclient-output-buffer-limit pubsub 1000 2kb 5\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        get1(&c, "client-output-buffer-limit"),
        "normal 1048576 0 0 slave 268435456 67108864 60 pubsub 1000 2048 5"
    );
}

#[test]
fn notify_keyspace_events_like_redis() {
    let mut c = Config::default();
    assert_eq!(get1(&c, "notify-keyspace-events"), "");
    c.set_many(&pairs(&[("notify-keyspace-events", "KEA")]))
        .unwrap();
    assert_eq!(get1(&c, "notify-keyspace-events"), "AKE");
    let e = c
        .set_many(&pairs(&[("notify-keyspace-events", "KEq")]))
        .unwrap_err();
    assert_eq!(
        e,
        "ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - \
         Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
    );
    assert_eq!(get1(&c, "notify-keyspace-events"), "AKE");
}

#[test]
fn rewrite_of_pubsub_directives_matches_redis() {
    // Recorded from redis-server 7.0.15: CONFIG SET client-output-buffer-limit
    // "normal 1mb 0 0 pubsub 1000 2048 5", notify-keyspace-events KEA, CONFIG REWRITE.
    let dir = TempDir::new();
    let path = dir.write(
        "basalt.conf",
        "save \"\"\nclient-output-buffer-limit normal 0 0 0\n",
    );
    let mut c = load_from(&args(&[path.to_str().unwrap()]), &mut std::io::empty()).unwrap();
    c.set_many(&pairs(&[
        (
            "client-output-buffer-limit",
            "normal 1mb 0 0 pubsub 1000 2048 5",
        ),
        ("notify-keyspace-events", "KEA"),
    ]))
    .unwrap();
    c.rewrite(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("save \"\"\nclient-output-buffer-limit normal 1mb 0 0\n"),
        "{text}"
    );
    assert!(
        text.contains("\nclient-output-buffer-limit pubsub 1000 2kb 5\n"),
        "{text}"
    );
    assert!(
        text.contains("\nnotify-keyspace-events \"AKE\"\n"),
        "{text}"
    );
    assert!(!text.contains("replica"), "{text}");
    // Read back: the same values.
    let again = load_from(&args(&[path.to_str().unwrap()]), &mut std::io::empty()).unwrap();
    assert_eq!(again.client_obuf_limits, c.client_obuf_limits);
    assert_eq!(again.notify_keyspace_events, c.notify_keyspace_events);
}
