//! Reading the configuration at start: `basalt-server [/path/to/conf] [--name value ...]`,
//! with redis-server's rules.
//!
//! * The optional first argument (anything not starting with `-`) is the config file.
//! * `--name value...` arguments become config lines appended after the file's content,
//!   so they override it; a lone `-` as the first or last argument also reads config
//!   text from standard input (between the file and the options).
//! * Lines are trimmed, `#` comments and blank lines skipped, and split with
//!   `sdssplitargs` rules (quotes, escapes). Directive names are case-insensitive.
//! * `include <path>` reads another file at that point (relative to the working
//!   directory; `*`, `?`, `[` expand like a shell glob, matching nothing is fine).
//!   Basalt limits nesting to [`MAX_INCLUDE_DEPTH`] levels.
//! * Errors print like Redis's `*** FATAL CONFIG FILE ERROR ***` block, with the line
//!   number counted in the file (or include) being read.
//!
//! No process state changes here: `dir` moves a working directory tracked in the
//! [`Config`], which relative includes and the log file check resolve against.

use super::table::{self, SetCtx};
use super::value::{repr, strerror};
use super::{Config, current_dir};
use basalt_engine::glob::glob_match;
use std::fmt;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Deepest `include` nesting accepted (Redis has no limit and crashes on include loops).
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// Redis 7.0 directives that are accepted and ignored, with their argument counts
/// (directive included).
const DEPRECATED: &[(&str, usize)] = &[
    ("list-max-ziplist-entries", 2),
    ("list-max-ziplist-value", 2),
    ("lua-replicate-commands", 2),
];

/// Why the configuration could not be loaded. `Display` gives the text redis-server prints
/// before exiting (without the final newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A line was rejected: Redis's FATAL CONFIG FILE ERROR block.
    Line {
        /// 1-based line number in the text being read (a file, or file + options).
        line: usize,
        /// The trimmed line.
        text: String,
        /// Why, in Redis's words ("wrong number of arguments").
        reason: String,
    },
    /// A check after reading failed; there is no line to show.
    Invalid { reason: String },
    /// A configuration file could not be read.
    Open { path: String, reason: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let title = concat!(
            "\n*** FATAL CONFIG FILE ERROR (Basalt ",
            env!("CARGO_PKG_VERSION"),
            ") ***\n"
        );
        match self {
            ConfigError::Line { line, text, reason } => write!(
                f,
                "{title}Reading the configuration file, at line {line}\n>>> '{text}'\n{reason}"
            ),
            ConfigError::Invalid { reason } => write!(f, "{title}{reason}"),
            ConfigError::Open { path, reason } => {
                write!(f, "Fatal error, can't open config file '{path}': {reason}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Loads the configuration from the command-line arguments (without the program name),
/// reading standard input when asked to with `-`.
///
/// `-v`/`--version` and `-h`/`--help` are the caller's to handle before this.
pub fn load(args: &[String]) -> Result<Config, ConfigError> {
    load_from(args, &mut std::io::stdin().lock())
}

/// [`load`] with the text for `-` taken from `stdin`.
pub fn load_from(args: &[String], stdin: &mut dyn Read) -> Result<Config, ConfigError> {
    let mut loader = Loader {
        config: Config::default(),
        ctx: SetCtx {
            loading: true,
            save_seen: false,
        },
        depth: 0,
    };
    if args.is_empty() {
        return Ok(loader.config);
    }
    let (file, first_option) = match args.first() {
        Some(a) if !a.starts_with('-') => (Some(absolute_path(a)), 1),
        _ => (None, 0),
    };
    let (options, from_stdin) = options_text(args, first_option);

    let mut text = Vec::new();
    if let Some(path) = &file {
        text = loader.read_config_file(path.as_os_str().as_bytes())?;
    }
    if from_stdin {
        stdin
            .read_to_end(&mut text)
            .map_err(|e| ConfigError::Invalid {
                reason: format!("Failed to read config from stdin: {}", strerror(&e)),
            })?;
    }
    text.push(b'\n');
    text.extend_from_slice(&options);
    loader.load_text(&text)?;
    loader.config.config_file = file;
    Ok(loader.config)
}

/// Turns the arguments after the config file into config lines, as redis-server does:
/// `--name` starts a line, the arguments after it are appended quoted. An option given
/// without value lets the next argument be its value even if it starts with `--`
/// (`--port --x` is `port "--x"`), and a bare `--save` means `save ""`.
fn options_text(args: &[String], first: usize) -> (Vec<u8>, bool) {
    let mut options = Vec::new();
    let mut from_stdin = false;
    let mut last_had_value = true;
    let last = args.len() - 1;
    for (j, arg) in args.iter().enumerate().skip(first) {
        let a = arg.as_bytes();
        if a == b"-" && (j == 0 || j == last) {
            from_stdin = true;
        } else if last_had_value && a.starts_with(b"--") {
            if !options.is_empty() {
                options.push(b'\n');
            }
            options.extend_from_slice(&a[2..]);
            options.push(b' ');
            // `--port 6380` may also come as one argument.
            let words = basalt_proto::split_args(a).map_or(0, |w| w.len());
            if words == 1 {
                last_had_value = false;
                let is_save = a.eq_ignore_ascii_case(b"--save");
                if is_save && j != last && args[j + 1].starts_with("--") {
                    options.extend_from_slice(b"\"\"");
                    last_had_value = true;
                } else if is_save && j == last {
                    options.extend_from_slice(b"\"\"");
                }
            } else {
                last_had_value = true;
            }
        } else {
            options.extend_from_slice(&repr(a));
            options.push(b' ');
            last_had_value = true;
        }
    }
    (options, from_stdin)
}

/// Redis's `getAbsolutePath`: a relative path is joined to the working directory, leading
/// `../` components climbing out of it.
fn absolute_path(file: &str) -> PathBuf {
    let rel = file.trim_matches([' ', '\r', '\n', '\t']);
    if rel.starts_with('/') {
        return PathBuf::from(rel);
    }
    let mut base = current_dir();
    let mut rel = rel;
    while let Some(rest) = rel.strip_prefix("../") {
        rel = rest;
        base.pop();
    }
    base.join(rel)
}

struct Loader {
    config: Config,
    ctx: SetCtx,
    depth: usize,
}

impl Loader {
    /// Reads a config file (or the files a glob pattern names, concatenated like Redis
    /// does, in sorted order). Relative paths are relative to the tracked working directory.
    fn read_config_file(&self, name: &[u8]) -> Result<Vec<u8>, ConfigError> {
        let open_error = |path: &[u8], e: std::io::Error| ConfigError::Open {
            path: String::from_utf8_lossy(path).into_owned(),
            reason: strerror(&e),
        };
        if !name.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
            return std::fs::read(self.resolve(name)).map_err(|e| open_error(name, e));
        }
        let mut text = Vec::new();
        for (shown, real) in expand_glob(&self.config.dir, name) {
            let bytes = std::fs::read(&real).map_err(|e| open_error(&shown, e))?;
            text.extend_from_slice(&bytes);
        }
        Ok(text)
    }

    fn resolve(&self, name: &[u8]) -> PathBuf {
        self.config
            .dir
            .join(PathBuf::from(std::ffi::OsString::from_vec(name.to_vec())))
    }

    /// Applies config text line by line (Redis's `loadServerConfigFromString`).
    fn load_text(&mut self, text: &[u8]) -> Result<(), ConfigError> {
        for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
            let line = trim(raw);
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let error = |reason: String| ConfigError::Line {
                line: i + 1,
                text: String::from_utf8_lossy(line).into_owned(),
                reason,
            };
            let Some(argv) = basalt_proto::split_args(line) else {
                return Err(error("Unbalanced quotes in configuration line".into()));
            };
            let Some((name, args)) = argv.split_first() else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            if let Some(d) = table::lookup(&name) {
                let split;
                let args = if !d.multi_arg() {
                    if args.len() != 1 {
                        return Err(error("wrong number of arguments".into()));
                    }
                    args
                } else if let [one] = args
                    && !one.is_empty()
                {
                    // `save "3600 1 300 100"`: one argument holding several. Unbalanced
                    // quotes inside give no arguments at all, as in Redis.
                    split = basalt_proto::split_args(one).unwrap_or_default();
                    &split[..]
                } else {
                    args
                };
                d.set(&mut self.config, args, &mut self.ctx)
                    .map_err(error)?;
                continue;
            }
            if DEPRECATED
                .iter()
                .any(|&(n, argc)| n.as_bytes() == name && argc == argv.len())
            {
                continue;
            }
            if name == b"include" && args.len() == 1 {
                if self.depth >= MAX_INCLUDE_DEPTH {
                    return Err(error(format!(
                        "Too many nested includes (Basalt allows {MAX_INCLUDE_DEPTH} levels)"
                    )));
                }
                let nested = self.read_config_file(&args[0])?;
                self.depth += 1;
                let result = self.load_text(&nested);
                self.depth -= 1;
                result?;
                continue;
            }
            return Err(error("Bad directive or wrong number of arguments".into()));
        }
        self.check_logfile()
    }

    /// Redis opens the log file once after reading the configuration so that a bad path
    /// stops the start instead of losing logs.
    fn check_logfile(&self) -> Result<(), ConfigError> {
        if self.config.logfile.is_empty() {
            return Ok(());
        }
        let path = self.config.dir.join(&self.config.logfile);
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map(drop)
            .map_err(|e| ConfigError::Invalid {
                reason: format!("Can't open the log file: {}", strerror(&e)),
            })
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    while s.first().is_some_and(ws) {
        s = &s[1..];
    }
    while s.last().is_some_and(ws) {
        s = &s[..s.len() - 1];
    }
    s
}

/// Expands a glob path (wildcards allowed in any component) relative to `cwd`. Returns
/// `(path as written, path to open)` pairs in sorted order. Like POSIX `glob`, wildcards
/// do not match names starting with `.` unless the pattern component does, and a pattern
/// matching nothing yields nothing. Components match with Redis's pattern rules.
fn expand_glob(cwd: &Path, pattern: &[u8]) -> Vec<(Vec<u8>, PathBuf)> {
    let absolute = pattern.first() == Some(&b'/');
    let components: Vec<&[u8]> = pattern
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    let start_shown = if absolute { b"/".to_vec() } else { Vec::new() };
    let start_real = if absolute {
        PathBuf::from("/")
    } else {
        cwd.to_path_buf()
    };
    let mut current = vec![(start_shown, start_real)];
    for (k, comp) in components.iter().enumerate() {
        let last = k + 1 == components.len();
        let mut next = Vec::new();
        for (shown, real) in &current {
            let join_shown = |name: &[u8]| {
                let mut s = shown.clone();
                if !s.is_empty() && s.last() != Some(&b'/') {
                    s.push(b'/');
                }
                s.extend_from_slice(name);
                s
            };
            if !comp.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
                let candidate = real.join(std::ffi::OsStr::from_bytes(comp));
                let exists = if last {
                    candidate.symlink_metadata().is_ok()
                } else {
                    candidate.is_dir()
                };
                if exists {
                    next.push((join_shown(comp), candidate));
                }
                continue;
            }
            let Ok(entries) = std::fs::read_dir(real) else {
                continue;
            };
            let mut names: Vec<Vec<u8>> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().as_bytes().to_vec())
                .filter(|n| n.first() != Some(&b'.') || comp.first() == Some(&b'.'))
                .filter(|n| glob_match(comp, n, false))
                .collect();
            names.sort();
            for name in names {
                let candidate = real.join(std::ffi::OsStr::from_bytes(&name));
                if last || candidate.is_dir() {
                    next.push((join_shown(&name), candidate));
                }
            }
        }
        current = next;
    }
    current
}
