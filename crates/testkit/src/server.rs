//! [`TestServer`]: runs a real `basalt-server` (or `redis-server`) on a free loopback port
//! for the duration of a test.
//!
//! Integration tests talk to a real process over TCP, exactly like users do. The server is
//! started with `--port P --bind 127.0.0.1`, its output goes to a log file (kept when the
//! test panics so the failure can be read), readiness is `PING` -> `+PONG`, and it is always
//! stopped: SIGTERM to its own pid, SIGKILL after a grace period, also from `Drop`.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use crate::client::RawClient;

/// How long a freshly spawned server has to answer `PING`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `stop` waits after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Start attempts (each on a new port) before giving up: another process can grab the free
/// port between our probe and the server's bind.
const START_ATTEMPTS: usize = 3;

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A server process owned by a test. Stopped on [`TestServer::stop`] or drop.
#[derive(Debug)]
pub struct TestServer {
    child: Option<Child>,
    pid: u32,
    port: u16,
    log: PathBuf,
    /// Scratch directory (the server's `dir`), removed with the log on a clean drop.
    scratch: Option<PathBuf>,
}

/// Asks the kernel for a free loopback port: bind port 0, read it, release it.
pub fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Unique path stem in the temp dir for this process's servers.
fn temp_stem(kind: &str, port: u16) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "basalt-testkit-{kind}-{}-{port}-{n}",
        std::process::id()
    ))
}

/// Finds `basalt-server` for callers that have no `CARGO_BIN_EXE_basalt-server`.
///
/// Order: `$BASALT_SERVER_BIN`; the first ancestor directory of the running executable that
/// contains `basalt-server` (test binaries live in `target/<profile>/deps`); then
/// `$CARGO_TARGET_DIR` or the workspace's `target/`, debug before release. The returned path
/// may not exist (then [`TestServer::start`] reports it).
pub fn server_binary() -> PathBuf {
    const NAME: &str = "basalt-server";
    if let Some(p) = std::env::var_os("BASALT_SERVER_BIN") {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(4) {
            let cand = dir.join(NAME);
            if cand.is_file() {
                return cand;
            }
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let debug = target.join("debug").join(NAME);
    let release = target.join("release").join(NAME);
    if !debug.is_file() && release.is_file() {
        release
    } else {
        debug
    }
}

/// True if `redis-server` can be found on `PATH`.
pub fn redis_server_available() -> bool {
    find_on_path("redis-server").is_some()
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl TestServer {
    /// Starts `binary` as `binary [conf] --port P --bind 127.0.0.1 [extra...]` on a free
    /// loopback port and waits until it answers `PING`.
    ///
    /// If the first extra argument does not start with `--` it is taken as a config file and
    /// placed first, as `redis-server` requires. Retries on a new port if the process exits
    /// during startup (port stolen); fails with the log's content otherwise.
    ///
    /// The server runs with `--dir` set to a fresh scratch directory (see
    /// [`TestServer::dir`]); a later `--dir` in `extra_args` overrides it.
    pub fn start(binary: &Path, extra_args: &[&str]) -> anyhow::Result<TestServer> {
        Self::start_kind("basalt", binary, &[], extra_args)
    }

    /// The scratch directory given as `--dir` (where `dump.rdb` goes).
    pub fn dir(&self) -> Option<&Path> {
        self.scratch.as_deref()
    }

    /// Starts `redis-server` from `PATH` the same way, with persistence off
    /// (`--save '' --appendonly no`) and its working dir in a scratch directory.
    /// Errors if `redis-server` is not installed.
    pub fn start_redis(extra_args: &[&str]) -> anyhow::Result<TestServer> {
        let bin = find_on_path("redis-server")
            .ok_or_else(|| anyhow!("redis-server is not on PATH (apt-get install redis-server)"))?;
        Self::start_kind(
            "redis",
            &bin,
            &["--save", "", "--appendonly", "no"],
            extra_args,
        )
    }

    fn start_kind(
        kind: &str,
        binary: &Path,
        fixed: &[&str],
        extra_args: &[&str],
    ) -> anyhow::Result<TestServer> {
        if !binary.is_file() {
            bail!(
                "server binary {} does not exist (build it first)",
                binary.display()
            );
        }
        let mut last_err = anyhow!("no start attempt made");
        for _ in 0..START_ATTEMPTS {
            let port = free_port().context("finding a free loopback port")?;
            match Self::spawn_once(kind, binary, port, fixed, extra_args) {
                Ok(s) => return Ok(s),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    fn spawn_once(
        kind: &str,
        binary: &Path,
        port: u16,
        fixed: &[&str],
        extra_args: &[&str],
    ) -> anyhow::Result<TestServer> {
        let stem = temp_stem(kind, port);
        let log = stem.with_extension("log");
        // Every server gets its own working directory, so snapshot files (dump.rdb) of
        // servers running side by side never meet.
        let scratch = Some(stem.with_extension("dir"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;

        let mut cmd = Command::new(binary);
        let (conf, rest) = match extra_args.split_first() {
            Some((first, rest)) if !first.starts_with("--") => (Some(*first), rest),
            _ => (None, extra_args),
        };
        if let Some(conf) = conf {
            cmd.arg(conf);
        }
        let port_s = port.to_string();
        cmd.args(["--port", &port_s, "--bind", "127.0.0.1"])
            .args(fixed);
        if let Some(dir) = &scratch {
            std::fs::create_dir_all(dir)?;
            cmd.arg("--dir").arg(dir);
        }
        cmd.args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        let mut server = TestServer {
            pid: child.id(),
            child: Some(child),
            port,
            log,
            scratch,
        };
        // With `--requirepass` among the arguments, readiness is checked after AUTH:
        // NOAUTH is answered before LOADING, so it does not say the data set is in.
        let password = rest
            .windows(2)
            .find(|w| w[0] == "--requirepass")
            .map(|w| w[1].as_bytes().to_vec());
        match server.wait_ready(password.as_deref()) {
            Ok(()) => Ok(server),
            Err(e) => {
                let _ = server.stop();
                let log = server.log();
                Err(e.context(format!(
                    "{} on port {port} did not become ready; log:\n{log}",
                    binary.display()
                )))
            }
        }
    }

    /// Polls until `PING` gets `+PONG` (or `-NOAUTH` when the password is unknown;
    /// `-LOADING` means wait more), the process exits, or [`READY_TIMEOUT`] passes. With
    /// `password`, a `-NOAUTH` is followed by `AUTH` and `PING` on the same connection.
    fn wait_ready(&mut self, password: Option<&[u8]>) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("server exited during startup with {status}");
            }
            if let Ok(mut c) = RawClient::connect(self.addr()) {
                c.set_timeout(Duration::from_secs(2))?;
                if let Ok(mut reply) = c.cmd(&[b"PING"]) {
                    if reply.starts_with(b"-NOAUTH")
                        && let Some(pw) = password
                        && c.cmd(&[b"AUTH", pw]).is_ok_and(|r| r == b"+OK\r\n")
                        && let Ok(again) = c.cmd(&[b"PING"])
                    {
                        reply = again;
                    }
                    // A server with requirepass answers NOAUTH: without the password,
                    // it is up all the same.
                    if reply == b"+PONG\r\n" || reply.starts_with(b"-NOAUTH") {
                        return Ok(());
                    }
                    // Still loading its data set (redis-server answers while it loads).
                    if reply.starts_with(b"-LOADING") {
                        if Instant::now() >= deadline {
                            bail!("still loading after {READY_TIMEOUT:?}");
                        }
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    // A server that answers something else will not improve by waiting.
                    bail!(
                        "PING answered {:?} instead of +PONG",
                        crate::resp::escape(&reply)
                    );
                }
            }
            if Instant::now() >= deadline {
                bail!("no +PONG within {READY_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Path of the file receiving the server's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The server's output so far (lossy UTF-8), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", self.log.display()))
    }

    /// A new [`RawClient`] connected to this server.
    pub fn client(&self) -> std::io::Result<RawClient> {
        RawClient::connect(self.addr())
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server at once with SIGKILL (a crash: nothing is flushed, no shutdown
    /// code runs) and reaps it. Its scratch directory is kept until the drop.
    pub fn crash(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL to this very child (never by name).
            let _ = child.kill();
            child.wait()?;
        }
        Ok(())
    }

    /// Stops the server: SIGTERM, up to [`STOP_TIMEOUT`] for a clean exit, then SIGKILL.
    /// Returns the exit status; `Ok(None)` if it was already stopped before.
    pub fn stop(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let pid = libc::pid_t::try_from(self.pid).context("pid out of range")?;
        // SAFETY: kill(2) with our own child's pid and a valid signal number has no memory
        // effects; the child has not been reaped yet (try_wait said so), so the pid is ours.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                return Ok(Some(status));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill()?;
        Ok(Some(child.wait()?))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.stop();
        if std::thread::panicking() {
            eprintln!("server log kept at {}", self.log.display());
            return;
        }
        let _ = std::fs::remove_file(&self.log);
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_is_an_error() {
        let err = TestServer::start(Path::new("/nonexistent/basalt-server"), &[]).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err:#}");
    }

    #[test]
    fn early_exit_is_reported_with_log() {
        // /bin/sh treats `--port` as an unknown option, prints a complaint and exits: a
        // stand-in for a server that dies during startup.
        let err = TestServer::start(Path::new("/bin/sh"), &[]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("did not become ready"), "{msg}");
        assert!(msg.contains("exited during startup"), "{msg}");
    }

    #[test]
    fn free_port_is_bindable() {
        let p = free_port().unwrap();
        assert_ne!(p, 0);
        TcpListener::bind(("127.0.0.1", p)).unwrap();
    }

    /// Needs `redis-server` on PATH; run with
    /// `cargo test -p basalt-testkit -- --ignored`.
    #[test]
    #[ignore = "needs redis-server on PATH"]
    fn redis_server_lifecycle() {
        let mut s = TestServer::start_redis(&[]).unwrap();
        let mut c = s.client().unwrap();
        assert_eq!(c.cmd(&[b"SET", b"k", b"v"]).unwrap(), b"+OK\r\n");
        assert_eq!(c.cmd(&[b"GET", b"k"]).unwrap(), b"$1\r\nv\r\n");
        assert!(s.is_running());
        let status = s.stop().unwrap().unwrap();
        assert!(status.success() || status.code().is_none(), "{status}");
        assert!(!s.is_running());
        assert!(s.stop().unwrap().is_none());
    }
}
