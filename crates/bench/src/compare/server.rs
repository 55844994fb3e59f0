//! Servers under comparison: starting basalt-server or redis-server pinned to a core on a
//! free loopback port, talking to them (a small blocking RESP client built on
//! `basalt_proto`), and reading their CPU time and memory from `/proc`.

use anyhow::{Context, bail};
use basalt_proto::{Frame, decode_frame, encode_command};
use bytes::BytesMut;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which server and how to start it.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// `basalt` or `redis`.
    pub name: &'static str,
    /// The server binary.
    pub bin: PathBuf,
    /// Flags only this server gets (basalt: `--threads 1`).
    pub own_args: Vec<String>,
}

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    /// Loopback port it listens on.
    pub port: u16,
    /// Its process id (taskset execs the server, so this is the server itself).
    pub pid: u32,
    log: PathBuf,
    /// The command line, with the port written as `$PORT`, for the docs.
    pub cmdline: String,
}

/// A free loopback port (the listener is closed again, so a tiny race remains; a server
/// that fails to bind is reported as failing to start). With `BASALT_BENCH_PORTS=A-B` in
/// the environment the port is taken from that range (for machines where each user of
/// the machine keeps to its own ports), otherwise the kernel picks one.
pub fn free_port() -> std::io::Result<u16> {
    if let Ok(range) = std::env::var("BASALT_BENCH_PORTS") {
        let (a, b) = range
            .split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)))
            .ok_or_else(|| {
                std::io::Error::other(format!("BASALT_BENCH_PORTS={range}: want A-B"))
            })?;
        for p in a..=b {
            if TcpListener::bind(("127.0.0.1", p)).is_ok() {
                return Ok(p);
            }
        }
        return Err(std::io::Error::other(format!("no free port in {range}")));
    }
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The flags both servers get: loopback only, no persistence, its own directory.
pub fn common_args(dir: &Path) -> Vec<String> {
    vec![
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
        "--dir".into(),
        dir.display().to_string(),
    ]
}

/// Quotes an argument for display in a shell command line.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl Server {
    /// Starts `spec` pinned to `cpu` with the common flags plus `extra`, in a fresh
    /// directory under `work`, and waits until it answers PING (10 s at most).
    pub fn start(
        spec: &ServerSpec,
        cpu: usize,
        work: &Path,
        extra: &[String],
    ) -> anyhow::Result<Server> {
        let port = free_port()?;
        let dir = work.join(format!("{}-{port}", spec.name));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = dir.join("server.log");
        let mut args: Vec<String> = vec!["--port".into(), port.to_string()];
        args.extend(common_args(&dir));
        args.extend(spec.own_args.iter().cloned());
        args.extend(extra.iter().cloned());
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                if *a == port.to_string() {
                    "$PORT".to_string()
                } else {
                    shell_quote(a)
                }
            })
            .map(|a| {
                if a == shell_quote(&dir.display().to_string()) {
                    "$DIR".to_string()
                } else {
                    a
                }
            })
            .collect();
        let cmdline = format!(
            "taskset -c {cpu} {} {}",
            spec.bin.display(),
            shown.join(" ")
        );
        let logf = std::fs::File::create(&log)?;
        let mut cmd = Command::new("taskset");
        cmd.arg("-c")
            .arg(cpu.to_string())
            .arg(&spec.bin)
            .args(&args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(logf.try_clone()?)
            .stderr(logf);
        // SAFETY: the closure only calls prctl, which is async-signal-safe, between fork
        // and exec. It makes the kernel kill the server if this process dies, so an
        // interrupted comparison never leaves servers behind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} (is taskset installed?)", spec.bin.display()))?;
        let mut srv = Server {
            pid: child.id(),
            child,
            port,
            log,
            cmdline,
        };
        srv.wait_ready(Duration::from_secs(10))?;
        Ok(srv)
    }

    fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited at start ({status}): {}",
                    self.cmdline,
                    self.log_tail()
                );
            }
            if let Ok(mut c) = self.client()
                && let Ok(Frame::Simple(s)) = c.call(&["PING"])
                && &s[..] == b"PONG"
            {
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!(
                    "{} did not answer PING within {limit:?}: {}",
                    self.cmdline,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// A new control connection.
    pub fn client(&self) -> anyhow::Result<Control> {
        Control::connect(self.port)
    }

    /// User plus system CPU time consumed so far, in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(self.pid)
    }

    /// Resident set size now, in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        status_kb(self.pid, "VmRSS:").map(|k| k * 1024)
    }

    /// Peak resident set size since start, in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        status_kb(self.pid, "VmHWM:").map(|k| k * 1024)
    }

    /// Proportional set size of the server and all its child processes (a forked
    /// snapshot child shares pages with its parent; PSS counts each page once in total).
    pub fn pss_with_children(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        let mut todo = vec![self.pid];
        while let Some(pid) = todo.pop() {
            // A child may exit between listing and reading: skip it then.
            if let Ok(k) = smaps_pss_kb(pid) {
                total += k * 1024;
            }
            todo.extend(children(pid));
        }
        Ok(total)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first so the server can exit cleanly; SIGKILL after 5 s.
        // SAFETY: kill(2) on the pid of our own unreaped child: the pid cannot have been
        // reused because we have not waited for it yet.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `utime + stime` of a process from `/proc/PID/stat`, in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces: parse after its closing paren.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the paren come field 3 (state) onward; utime and stime are fields 14 and 15.
    let utime: u64 = f.get(11).context("no utime")?.parse()?;
    let stime: u64 = f.get(12).context("no stime")?.parse()?;
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Ok((utime + stime) as f64 / hz)
}

fn status_kb(pid: u32, field: &str) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = s
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field}"))?;
    Ok(line.split_whitespace().nth(1).context("empty")?.parse()?)
}

fn smaps_pss_kb(pid: u32) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    let line = s
        .lines()
        .find(|l| l.starts_with("Pss:"))
        .context("no Pss")?;
    Ok(line.split_whitespace().nth(1).context("empty")?.parse()?)
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

/// A blocking RESP2 control connection (setup and probes, never the measured load).
pub struct Control {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Control {
    /// Connects to a loopback port.
    pub fn connect(port: u16) -> anyhow::Result<Control> {
        let stream =
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        stream.set_nodelay(true)?;
        Ok(Control {
            stream,
            buf: Vec::new(),
        })
    }

    /// Sends one command and returns its reply (error replies are `Frame::Error`).
    pub fn call(&mut self, args: &[&str]) -> anyhow::Result<Frame> {
        let mut out = BytesMut::new();
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        encode_command(&a, &mut out);
        self.stream.write_all(&out)?;
        loop {
            if let Some((frame, used)) =
                decode_frame(&self.buf, 16).map_err(|e| anyhow::anyhow!("{e:?}"))?
            {
                self.buf.drain(..used);
                return Ok(frame);
            }
            let mut chunk = [0u8; 16384];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                bail!("server closed the control connection");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// `INFO section` as a field map.
    pub fn info(&mut self, section: &str) -> anyhow::Result<HashMap<String, String>> {
        match self.call(&["INFO", section])? {
            Frame::Bulk(b) | Frame::Verbatim { text: b, .. } => Ok(String::from_utf8_lossy(&b)
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                .collect()),
            other => bail!("INFO {section}: unexpected reply {other:?}"),
        }
    }

    /// `DBSIZE`.
    pub fn dbsize(&mut self) -> anyhow::Result<u64> {
        match self.call(&["DBSIZE"])? {
            Frame::Integer(n) if n >= 0 => Ok(n as u64),
            other => bail!("DBSIZE: unexpected reply {other:?}"),
        }
    }

    /// `CONFIG GET name` as a string, if the server knows the parameter.
    pub fn config_get(&mut self, name: &str) -> anyhow::Result<Option<String>> {
        match self.call(&["CONFIG", "GET", name])? {
            Frame::Array(items) if items.len() >= 2 => match &items[1] {
                Frame::Bulk(b) => Ok(Some(String::from_utf8_lossy(b).into_owned())),
                _ => Ok(None),
            },
            Frame::Map(pairs) if !pairs.is_empty() => match &pairs[0].1 {
                Frame::Bulk(b) => Ok(Some(String::from_utf8_lossy(b).into_owned())),
                _ => Ok(None),
            },
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_is_readable() {
        // Burn a little CPU so the reading is not trivially zero on a slow tick.
        let mut x = 0u64;
        for i in 0..30_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert_ne!(x, 1);
        let t = cpu_seconds(std::process::id()).unwrap();
        assert!(t > 0.0, "{t}");
        assert!(status_kb(std::process::id(), "VmRSS:").unwrap() > 0);
        assert!(smaps_pss_kb(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn quoting_for_display() {
        assert_eq!(shell_quote("--save"), "--save");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
