//! Lua scripting against a live server: busy scripts (BUSY replies, SCRIPT KILL,
//! FUNCTION KILL, UNKILLABLE, SHUTDOWN NOSAVE), the per-VM memory limit at its boundary,
//! and INFO's scripting fields. Reply texts are compared with what redis-server 7.0.15
//! answers; nothing here depends on timings beyond "eventually".

use basalt_testkit::{RawClient, TestServer};
use std::time::{Duration, Instant};

const LOOP: &[u8] = b"local i = 0 while true do i = i + 1 end";
const BUSY_EVAL: &str =
    "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n";
const BUSY_FUNCTION: &str =
    "-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n";

fn text(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b).into_owned()
}

fn client(s: &TestServer) -> RawClient {
    let mut c = RawClient::connect_port(s.port()).expect("connect");
    c.set_timeout(Duration::from_secs(30)).expect("timeout");
    c
}

/// Sends PING until the server answers `-BUSY` (the script passed the threshold).
fn wait_busy(c: &mut RawClient, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = text(c.cmd(&[b"PING"]).expect("ping"));
        if r == expected {
            return;
        }
        assert_eq!(r, "+PONG\r\n", "unexpected reply while waiting for BUSY");
        assert!(Instant::now() < deadline, "the script never became busy");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn busy_script_is_killed(extra: &[&str]) {
    let server = crate::start(extra);
    let mut runner = client(&server);
    let mut other = client(&server);
    assert_eq!(
        text(other.cmd(&[b"SCRIPT", b"KILL"]).expect("kill")),
        "-NOTBUSY No scripts in execution right now.\r\n"
    );
    runner
        .send(&[b"EVAL", LOOP, b"0"])
        .expect("send the looping script");
    wait_busy(&mut other, BUSY_EVAL);
    // Other commands are refused, MULTI fails at EXEC, FUNCTION KILL/STATS name EVAL.
    assert_eq!(text(other.cmd(&[b"GET", b"k"]).expect("get")), BUSY_EVAL);
    assert_eq!(
        text(other.cmd(&[b"FUNCTION", b"KILL"]).expect("fkill")),
        BUSY_EVAL
    );
    assert_eq!(
        text(other.cmd(&[b"FUNCTION", b"STATS"]).expect("fstats")),
        BUSY_EVAL
    );
    assert_eq!(
        text(other.cmd(&[b"SHUTDOWN"]).expect("shutdown")),
        BUSY_EVAL
    );
    assert_eq!(text(other.cmd(&[b"MULTI"]).expect("multi")), "+OK\r\n");
    assert_eq!(
        text(other.cmd(&[b"SET", b"k", b"v"]).expect("set")),
        BUSY_EVAL
    );
    assert_eq!(
        text(other.cmd(&[b"EXEC"]).expect("exec")),
        format!(
            "-EXECABORT Transaction discarded because of: {}",
            &BUSY_EVAL[1..]
        )
    );
    assert_eq!(
        text(other.cmd(&[b"SCRIPT", b"KILL"]).expect("kill")),
        "+OK\r\n"
    );
    let reply = text(runner.read_reply_raw().expect("script reply"));
    assert_eq!(
        reply,
        "-ERR Script killed by user with SCRIPT KILL... script: 3fcf51a9b854b8f66cb8685600b0d7df968f4398, on @user_script:1.\r\n"
    );
    // Both connections keep working.
    assert_eq!(text(other.cmd(&[b"PING"]).expect("ping")), "+PONG\r\n");
    assert_eq!(
        text(runner.cmd(&[b"SET", b"k", b"v"]).expect("set")),
        "+OK\r\n"
    );
    assert_eq!(
        text(other.cmd(&[b"GET", b"k"]).expect("get")),
        "$1\r\nv\r\n"
    );
}

#[test]
fn busy_script_gets_busy_replies_and_script_kill_ends_it() {
    busy_script_is_killed(&["--busy-reply-threshold", "100"]);
}

#[test]
fn busy_script_is_killable_with_a_single_worker_thread() {
    busy_script_is_killed(&["--busy-reply-threshold", "100", "--threads", "1"]);
}

#[test]
fn script_that_wrote_is_unkillable_and_shutdown_nosave_stops_the_server() {
    let mut server = crate::start(&["--lua-time-limit", "100"]);
    let mut runner = client(&server);
    let mut other = client(&server);
    runner
        .send(&[
            b"EVAL",
            b"redis.call('set', 'w', '1') local i = 0 while true do i = i + 1 end",
            b"0",
        ])
        .expect("send");
    wait_busy(&mut other, BUSY_EVAL);
    assert_eq!(
        text(other.cmd(&[b"SCRIPT", b"KILL"]).expect("kill")),
        "-UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.\r\n"
    );
    other.send(&[b"SHUTDOWN", b"NOSAVE"]).expect("shutdown");
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.is_running() {
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = server.stop();
}

#[test]
fn busy_function_is_killed_with_function_kill() {
    let server = crate::start(&["--busy-reply-threshold", "100"]);
    let mut runner = client(&server);
    let mut other = client(&server);
    let lib = b"#!lua name=spin\nredis.register_function('spin', function() local i = 0 while true do i = i + 1 end end)";
    assert_eq!(
        text(runner.cmd(&[b"FUNCTION", b"LOAD", lib]).expect("load")),
        "$4\r\nspin\r\n"
    );
    runner.send(&[b"FCALL", b"spin", b"0"]).expect("send");
    wait_busy(&mut other, BUSY_FUNCTION);
    assert_eq!(
        text(other.cmd(&[b"SCRIPT", b"KILL"]).expect("skill")),
        BUSY_FUNCTION
    );
    let stats = text(other.cmd(&[b"FUNCTION", b"STATS"]).expect("stats"));
    assert!(
        stats.starts_with("*4\r\n$14\r\nrunning_script\r\n*6\r\n$4\r\nname\r\n$4\r\nspin\r\n$7\r\ncommand\r\n*3\r\n$5\r\nFCALL\r\n$4\r\nspin\r\n$1\r\n0\r\n$11\r\nduration_ms\r\n:"),
        "{stats}"
    );
    assert_eq!(
        text(other.cmd(&[b"FUNCTION", b"KILL"]).expect("fkill")),
        "+OK\r\n"
    );
    let reply = text(runner.read_reply_raw().expect("reply"));
    assert_eq!(
        reply,
        "-ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:2.\r\n"
    );
    assert_eq!(
        text(other.cmd(&[b"FCALL", b"spin", b"x"]).expect("fcall")),
        "-ERR Bad number of keys provided\r\n"
    );
}

#[test]
fn scripts_that_are_not_busy_make_others_wait_not_fail() {
    let server = crate::start(&["--busy-reply-threshold", "60000"]);
    let mut runner = client(&server);
    let mut other = client(&server);
    // A script that runs a while but stays under the threshold: the other client's
    // command waits for it and sees its write.
    runner
        .send(&[
            b"EVAL",
            b"local i = 0 while i < 3000000 do i = i + 1 end return redis.call('set', 'k', 'done')",
            b"0",
        ])
        .expect("send");
    std::thread::sleep(Duration::from_millis(20));
    let got = text(other.cmd(&[b"GET", b"k"]).expect("get"));
    assert!(got == "$4\r\ndone\r\n" || got == "$-1\r\n", "{got}");
    assert_eq!(text(runner.read_reply_raw().expect("reply")), "+OK\r\n");
    assert_eq!(
        text(other.cmd(&[b"GET", b"k"]).expect("get")),
        "$4\r\ndone\r\n"
    );
}

#[test]
fn lua_memory_limit_is_enforced_at_its_boundary() {
    let server = crate::start(&[]);
    let mut c = client(&server);
    assert_eq!(
        text(
            c.cmd(&[b"CONFIG", b"GET", b"lua-memory-limit"])
                .expect("get")
        ),
        "*2\r\n$16\r\nlua-memory-limit\r\n$10\r\n1073741824\r\n"
    );
    assert_eq!(
        text(
            c.cmd(&[b"CONFIG", b"SET", b"lua-memory-limit", b"8mb"])
                .expect("set")
        ),
        "+OK\r\n"
    );
    // 2 MB fits under 8 MB.
    assert_eq!(
        text(
            c.cmd(&[b"EVAL", b"return #string.rep('x', 2 * 1024 * 1024)", b"0"])
                .expect("eval")
        ),
        ":2097152\r\n"
    );
    // 16 MB does not: the script fails, the VM recovers.
    let r = text(
        c.cmd(&[b"EVAL", b"return #string.rep('x', 16 * 1024 * 1024)", b"0"])
            .expect("eval"),
    );
    assert!(
        r.starts_with("-ERR Error running script ") && r.contains("not enough memory"),
        "{r}"
    );
    assert_eq!(
        text(
            c.cmd(&[b"EVAL", b"return #string.rep('x', 1024)", b"0"])
                .expect("eval")
        ),
        ":1024\r\n"
    );
    // The functions VM has the same limit.
    let lib = b"#!lua name=m\nredis.register_function('big', function(keys, args) return #string.rep('x', tonumber(args[1])) end)";
    assert_eq!(
        text(c.cmd(&[b"FUNCTION", b"LOAD", lib]).expect("load")),
        "$1\r\nm\r\n"
    );
    assert_eq!(
        text(c.cmd(&[b"FCALL", b"big", b"0", b"1048576"]).expect("fcall")),
        ":1048576\r\n"
    );
    let r = text(
        c.cmd(&[b"FCALL", b"big", b"0", b"16777216"])
            .expect("fcall"),
    );
    assert!(r.contains("not enough memory"), "{r}");
    // 0 lifts the limit.
    assert_eq!(
        text(
            c.cmd(&[b"CONFIG", b"SET", b"lua-memory-limit", b"0"])
                .expect("set")
        ),
        "+OK\r\n"
    );
    assert_eq!(
        text(
            c.cmd(&[b"EVAL", b"return #string.rep('x', 16 * 1024 * 1024)", b"0"])
                .expect("eval")
        ),
        ":16777216\r\n"
    );
}

/// The values Basalt builds for a script — `KEYS`/`ARGV` and `redis.call` replies, pushed
/// on the raw Lua stack — count against `lua-memory-limit` like the script's own.
#[test]
fn lua_memory_limit_covers_arguments_and_command_replies() {
    let server = crate::start(&[]);
    let mut c = client(&server);
    c.cmd(&[b"CONFIG", b"SET", b"lua-memory-limit", b"8mb"])
        .expect("set");
    let big = vec![b'x'; 16 * 1024 * 1024];
    let small = vec![b'x'; 1024 * 1024];
    let not_enough = |r: String| {
        assert!(
            r.starts_with("-ERR Error running script ") && r.ends_with(", not enough memory\r\n"),
            "{r}"
        );
    };
    // ARGV and KEYS.
    assert_eq!(
        text(
            c.cmd(&[b"EVAL", b"return #ARGV[1]", b"0", &small])
                .expect("eval")
        ),
        ":1048576\r\n"
    );
    not_enough(text(
        c.cmd(&[b"EVAL", b"return #ARGV[1]", b"0", &big])
            .expect("eval"),
    ));
    not_enough(text(
        c.cmd(&[b"EVAL", b"return #KEYS[1]", b"1", &big])
            .expect("eval"),
    ));
    let lib =
        b"#!lua name=m\nredis.register_function('len', function(keys, args) return #args[1] end)";
    c.cmd(&[b"FUNCTION", b"LOAD", lib]).expect("load");
    not_enough(text(c.cmd(&[b"FCALL", b"len", b"0", &big]).expect("fcall")));
    assert_eq!(
        text(c.cmd(&[b"FCALL", b"len", b"0", &small]).expect("fcall")),
        ":1048576\r\n"
    );
    // A command reply, through redis.call and redis.pcall (a memory error is not a
    // command error: pcall does not catch it).
    c.cmd(&[b"SET", b"big", &big]).expect("set");
    c.cmd(&[b"SET", b"small", &small]).expect("set");
    for script in [
        &b"return #redis.call('GET', KEYS[1])"[..],
        b"return #redis.pcall('GET', KEYS[1])",
        b"return #redis.call('MGET', KEYS[1], KEYS[1])[1]",
    ] {
        not_enough(text(c.cmd(&[b"EVAL", script, b"1", b"big"]).expect("eval")));
        assert_eq!(
            text(c.cmd(&[b"EVAL", script, b"1", b"small"]).expect("eval")),
            ":1048576\r\n"
        );
    }
}

#[test]
fn busy_reply_threshold_alias_and_info_fields() {
    let server = crate::start(&["--lua-time-limit", "1234"]);
    let mut c = client(&server);
    assert_eq!(
        text(
            c.cmd(&[b"CONFIG", b"GET", b"busy-reply-threshold"])
                .expect("get")
        ),
        "*2\r\n$20\r\nbusy-reply-threshold\r\n$4\r\n1234\r\n"
    );
    c.cmd(&[b"SCRIPT", b"LOAD", b"return 1"]).expect("load");
    c.cmd(&[b"FUNCTION", b"LOAD", b"#!lua name=l\nredis.register_function('a', function() return 1 end)\nredis.register_function('b', function() return 2 end)"]).expect("fload");
    let info = text(c.cmd(&[b"INFO", b"memory"]).expect("info"));
    for field in [
        "number_of_cached_scripts:1\r\n",
        "number_of_functions:2\r\n",
        "number_of_libraries:1\r\n",
        "used_memory_lua:",
        "used_memory_vm_functions:",
        "used_memory_scripts_eval:",
    ] {
        assert!(info.contains(field), "INFO lacks {field}:\n{info}");
    }
    c.cmd(&[b"SCRIPT", b"FLUSH"]).expect("flush");
    let info = text(c.cmd(&[b"INFO", b"memory"]).expect("info"));
    assert!(info.contains("number_of_cached_scripts:0\r\n"), "{info}");
}

#[test]
fn function_libraries_survive_a_restart_through_the_rdb_file() {
    let dir = std::env::temp_dir().join(format!(
        "basalt-it-scripting-rdb-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let d = dir.to_string_lossy().into_owned();
    let lib = b"#!lua name=persisted\nredis.register_function{function_name='hello', callback=function(keys, args) return 'hello ' .. args[1] end, flags={'no-writes'}, description='greets'}";
    {
        let mut server = crate::start(&["--dir", d.as_str(), "--save", ""]);
        let mut c = client(&server);
        assert_eq!(
            text(c.cmd(&[b"FUNCTION", b"LOAD", lib]).expect("load")),
            "$9\r\npersisted\r\n"
        );
        assert_eq!(text(c.cmd(&[b"SAVE"]).expect("save")), "+OK\r\n");
        server.stop().expect("stop");
    }
    let server = crate::start(&["--dir", d.as_str(), "--save", ""]);
    let mut c = client(&server);
    assert_eq!(
        text(
            c.cmd(&[b"FCALL_RO", b"hello", b"0", b"you"])
                .expect("fcall")
        ),
        "$9\r\nhello you\r\n"
    );
    let list = text(c.cmd(&[b"FUNCTION", b"LIST"]).expect("list"));
    assert!(
        list.contains("$6\r\ngreets\r\n") && list.contains("+no-writes\r\n"),
        "{list}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn script_writes_reach_the_aof_as_effects_and_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!(
        "basalt-it-scripting-aof-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let d = dir.to_string_lossy().into_owned();
    let args = ["--dir", d.as_str(), "--save", "", "--appendonly", "yes"];
    {
        let mut server = crate::start(&args);
        let mut c = client(&server);
        let r = c
            .cmd(&[
                b"EVAL",
                b"redis.call('set', KEYS[1], 'v') redis.call('incrby', KEYS[2], 5) redis.call('select', 3) redis.call('set', 'in3', 'x') redis.set_repl(redis.REPL_NONE) redis.call('set', 'unlogged', 'y') return 1",
                b"2",
                b"k",
                b"n",
            ])
            .expect("eval");
        assert_eq!(text(r), ":1\r\n");
        server.stop().expect("stop");
    }
    let aof: String = std::fs::read_dir(dir.join("appendonlydir"))
        .expect("aof dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".incr.aof"))
        .map(|e| String::from_utf8_lossy(&std::fs::read(e.path()).expect("read")).into_owned())
        .collect();
    assert!(
        !aof.contains("EVAL"),
        "the script itself is not logged: {aof}"
    );
    assert!(aof.contains("incrby") || aof.contains("INCRBY"), "{aof}");
    assert!(
        !aof.contains("unlogged"),
        "REPL_NONE keeps writes out: {aof}"
    );
    let server = crate::start(&args);
    let mut c = client(&server);
    assert_eq!(text(c.cmd(&[b"GET", b"k"]).expect("get")), "$1\r\nv\r\n");
    assert_eq!(text(c.cmd(&[b"GET", b"n"]).expect("get")), "$1\r\n5\r\n");
    assert_eq!(text(c.cmd(&[b"GET", b"in3"]).expect("get")), "$-1\r\n");
    c.cmd(&[b"SELECT", b"3"]).expect("select");
    assert_eq!(text(c.cmd(&[b"GET", b"in3"]).expect("get")), "$1\r\nx\r\n");
    assert_eq!(text(c.cmd(&[b"GET", b"unlogged"]).expect("get")), "$-1\r\n");
    let _ = std::fs::remove_dir_all(&dir);
}

const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// Scripts over `maxmemory`, as Redis 7.0.15 answers (`scriptVerifyOOM`,
/// `evalGetCommandFlags`): a script without flags starts, but its first write that may
/// grow memory is refused unless it already wrote; a script with flags is refused at the
/// start (as a `denyoom` command) unless `allow-oom` or `no-writes`; functions likewise.
#[test]
fn scripts_over_maxmemory_follow_redis() {
    let server = crate::start(&[]);
    let mut c = client(&server);
    let lib = b"#!lua name=l\nredis.register_function('w', function() return redis.call('set','a','1') end)\nredis.register_function{function_name='r', callback=function() return 1 end, flags={'no-writes'}}\nredis.register_function{function_name='o', callback=function() return redis.call('set','a','1') end, flags={'allow-oom'}}";
    assert_eq!(
        text(c.cmd(&[b"FUNCTION", b"LOAD", lib]).expect("load")),
        "$1\r\nl\r\n"
    );
    c.cmd(&[b"CONFIG", b"SET", b"maxmemory", b"1"])
        .expect("set");
    let eval = |c: &mut RawClient, script: &str| -> String {
        text(c.cmd(&[b"EVAL", script.as_bytes(), b"0"]).expect("eval"))
    };
    let located = |sha: &str| format!("-{OOM} script: {sha}, on @user_script:1.\r\n");
    assert_eq!(
        eval(&mut c, "return redis.call('set','a','1')"),
        located("67ed14c1cb086d8c2fcf91ebe13410ba087fd0f8")
    );
    // Reads first change nothing; a write that cannot grow memory first lets the
    // following writes run.
    assert_eq!(
        eval(
            &mut c,
            "redis.call('get','x') return redis.call('set','a','1')"
        ),
        located("e24bd058f9fdc0fac4f1facc4c94ea6ab224154b")
    );
    assert_eq!(
        eval(
            &mut c,
            "redis.call('del','x') return redis.call('set','a','1')"
        ),
        "+OK\r\n"
    );
    // A refused write does not count as the first write.
    assert_eq!(
        eval(
            &mut c,
            "redis.pcall('set','a','1') return redis.call('set','a','2')"
        ),
        located("eaca4578b30305bd6efffbf769039d7d62a64f01")
    );
    assert_eq!(
        eval(
            &mut c,
            "local r = redis.pcall('set','a','1') return type(r) .. tostring(r.err) .. tostring(r.ignore_error_stats_update)"
        ),
        format!("${}\r\ntable{OOM}true\r\n", OOM.len() + 9)
    );
    assert_eq!(eval(&mut c, "return redis.call('del','a')"), ":1\r\n");
    // Scripts with flags.
    assert_eq!(
        eval(&mut c, "#!lua\nreturn redis.call('set','a','1')"),
        format!("-{OOM}\r\n")
    );
    assert_eq!(eval(&mut c, "#!lua flags=no-writes\nreturn 1"), ":1\r\n");
    assert_eq!(
        eval(
            &mut c,
            "#!lua flags=allow-oom\nreturn redis.call('set','a','1')"
        ),
        "+OK\r\n"
    );
    assert_eq!(
        text(
            c.cmd(&[b"EVAL_RO", b"#!lua\nreturn redis.call('get','a')", b"0"])
                .expect("eval_ro")
        ),
        format!("-{OOM}\r\n")
    );
    for (f, reply) in [
        (&b"w"[..], format!("-{OOM}\r\n")),
        (b"r", ":1\r\n".to_string()),
        (b"o", "+OK\r\n".to_string()),
    ] {
        assert_eq!(
            text(c.cmd(&[b"FCALL", f, b"0"]).expect("fcall")),
            reply,
            "{}",
            String::from_utf8_lossy(f)
        );
    }
    // Under the limit again, nothing is refused.
    c.cmd(&[b"CONFIG", b"SET", b"maxmemory", b"0"])
        .expect("set");
    assert_eq!(eval(&mut c, "return redis.call('set','a','1')"), "+OK\r\n");
    // Inside EXEC each script decides at its own start; a script with flags refused
    // there gets the allow-oom message.
    c.cmd(&[b"MULTI"]).expect("multi");
    c.cmd(&[b"CONFIG", b"SET", b"maxmemory", b"1"])
        .expect("queue");
    c.cmd(&[b"EVAL", b"return redis.call('set','a','b')", b"0"])
        .expect("queue");
    c.cmd(&[b"EVAL", b"#!lua\nreturn redis.call('set','a','c')", b"0"])
        .expect("queue");
    assert_eq!(
        text(c.cmd(&[b"EXEC"]).expect("exec")),
        format!(
            "*3\r\n+OK\r\n{}-OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'\r\n",
            located("ff967d0ae0e68b4f9e360fa91c54598bc25ad9b6")
        )
    );
    // A script with flags queued before the server went over maxmemory: EXEC is
    // refused as for any queued denyoom command.
    c.cmd(&[b"CONFIG", b"SET", b"maxmemory", b"0"])
        .expect("set");
    c.cmd(&[b"MULTI"]).expect("multi");
    c.cmd(&[b"EVAL", b"#!lua\nreturn 2", b"0"]).expect("queue");
    let mut other = client(&server);
    other
        .cmd(&[b"CONFIG", b"SET", b"maxmemory", b"1"])
        .expect("set");
    assert_eq!(
        text(c.cmd(&[b"EXEC"]).expect("exec")),
        format!("-EXECABORT Transaction discarded because of: {OOM}\r\n")
    );
    other
        .cmd(&[b"CONFIG", b"SET", b"maxmemory", b"0"])
        .expect("set");
}

/// CLIENT PAUSE WRITE and scripts, as Redis 7.0.15: EVAL/EVALSHA/FCALL of a script
/// without flags may write and wait; a script with flags waits unless `no-writes`;
/// EVAL_RO/EVALSHA_RO/FCALL_RO of read-only scripts run (a `_RO` call of a script
/// declared writing waits, then fails).
#[test]
fn client_pause_write_holds_scripts_that_may_write() {
    let server = crate::start(&[]);
    let mut admin = client(&server);
    let sha = text(admin.cmd(&[b"SCRIPT", b"LOAD", b"return 1"]).expect("load"));
    let sha = sha.trim_end().rsplit('\n').next().unwrap_or("").to_string();
    let lib = b"#!lua name=l\nredis.register_function('w', function() return redis.call('set','a','1') end)\nredis.register_function{function_name='r', callback=function() return 1 end, flags={'no-writes'}}";
    admin.cmd(&[b"FUNCTION", b"LOAD", lib]).expect("fload");
    let runs: Vec<(Vec<&[u8]>, &str)> = vec![
        (vec![b"EVAL_RO", b"return 1", b"0"], ":1\r\n"),
        (
            vec![b"EVAL", b"#!lua flags=no-writes\nreturn 1", b"0"],
            ":1\r\n",
        ),
        (vec![b"EVALSHA_RO", sha.as_bytes(), b"0"], ":1\r\n"),
        (vec![b"FCALL", b"r", b"0"], ":1\r\n"),
        (vec![b"FCALL_RO", b"r", b"0"], ":1\r\n"),
    ];
    let held: Vec<(Vec<&[u8]>, &str)> = vec![
        (vec![b"EVAL", b"return 1", b"0"], ":1\r\n"),
        (vec![b"EVAL", b"#!lua\nreturn 1", b"0"], ":1\r\n"),
        (vec![b"EVALSHA", sha.as_bytes(), b"0"], ":1\r\n"),
        (vec![b"FCALL", b"w", b"0"], "+OK\r\n"),
        (
            vec![b"FCALL_RO", b"w", b"0"],
            "-ERR Can not execute a script with write flag using *_ro command.\r\n",
        ),
        (
            vec![b"EVAL_RO", b"#!lua\nreturn 1", b"0"],
            "-ERR Can not execute a script with write flag using *_ro command.\r\n",
        ),
    ];
    admin
        .cmd(&[b"CLIENT", b"PAUSE", b"60000", b"WRITE"])
        .expect("pause");
    let mut c = client(&server);
    for (args, reply) in &runs {
        assert_eq!(text(c.cmd(args).expect("run")), *reply, "{args:?}");
    }
    let mut waiting = Vec::new();
    for (args, reply) in &held {
        let mut w = client(&server);
        w.send(args).expect("send");
        w.set_timeout(Duration::from_millis(300)).expect("timeout");
        assert!(
            w.read_reply_raw().is_err(),
            "{args:?} must wait while paused"
        );
        waiting.push((w, *reply));
    }
    admin.cmd(&[b"CLIENT", b"UNPAUSE"]).expect("unpause");
    for (mut w, reply) in waiting {
        w.set_timeout(Duration::from_secs(10)).expect("timeout");
        assert_eq!(text(w.read_reply_raw().expect("after unpause")), reply);
    }
}

/// A command error inside a script is counted once in INFO errorstats, as Redis 7.0.15
/// counts it (`ignore_error_stats_update`): when the command fails, not again when the
/// script ends with it; the EVAL still counts as a failed call.
#[test]
fn script_errors_are_counted_once_like_redis() {
    let server = crate::start(&[]);
    let mut c = client(&server);
    c.cmd(&[b"SET", b"a", b"x"]).expect("set");
    c.cmd(&[b"CONFIG", b"RESETSTAT"]).expect("resetstat");
    for script in [
        &b"return redis.call('incr','a')"[..],
        b"return redis.pcall('incr','a')",
        b"local t = redis.pcall('incr','a') return 1",
        b"return redis.call('nosuch','a')",
        b"return redis.pcall('nosuch','a')",
        b"return redis.call('get')",
        b"return redis.error_reply('MY err')",
        b"error('x')",
        b"return {err='Z z', ignore_error_stats_update=true}",
        b"error({err='Q z', ignore_error_stats_update=true})",
        b"return redis.call()",
    ] {
        c.cmd(&[b"EVAL", script, b"0"]).expect("eval");
    }
    let errors = text(c.cmd(&[b"INFO", b"errorstats"]).expect("info"));
    assert!(errors.contains("errorstat_ERR:count=8\r\n"), "{errors}");
    assert!(errors.contains("errorstat_MY:count=1\r\n"), "{errors}");
    let stats = text(c.cmd(&[b"INFO", b"stats"]).expect("info"));
    assert!(stats.contains("total_error_replies:9\r\n"), "{stats}");
    let cmds = text(c.cmd(&[b"INFO", b"commandstats"]).expect("info"));
    for (cmd, tail) in [
        ("eval", "rejected_calls=0,failed_calls=10"),
        ("incr", "rejected_calls=0,failed_calls=3"),
        ("get", "rejected_calls=1,failed_calls=0"),
    ] {
        let line = cmds
            .lines()
            .find(|l| l.starts_with(&format!("cmdstat_{cmd}:")))
            .unwrap_or_else(|| panic!("no {cmd} in {cmds}"));
        assert!(line.ends_with(tail), "{line}");
    }
}
