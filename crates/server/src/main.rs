//! `basalt-server [/path/to/basalt.conf] [--directive value ...]`, invoked like
//! redis-server. Defaults serve 127.0.0.1:6379 with no file.
//!
//! `basalt-server --check-rdb <file>` and `--check-aof [--fix [--yes]] <path>` check
//! persistence files instead of serving (see `basalt_server::check`).

use basalt_server::{config, logging, server::Server};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-v" || a == "--version") {
        println!(
            "Basalt server v={} (Redis protocol 7.0.15 compatible)",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    if let Some(code) = basalt_server::check::from_args(&args) {
        return ExitCode::from(code as u8);
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("Usage: basalt-server [/path/to/basalt.conf] [options]");
        println!("       basalt-server -v or --version");
        println!("       basalt-server -h or --help");
        println!("       basalt-server --check-rdb <file.rdb>");
        println!("       basalt-server --check-aof [--fix [--yes]] <file.manifest|dir|file.aof>");
        println!();
        println!("Examples:");
        println!("       basalt-server (serves 127.0.0.1:6379 with built-in defaults)");
        println!("       basalt-server /etc/basalt/basalt.conf");
        println!("       basalt-server --port 7777 --threads 1");
        println!("       basalt-server /etc/mybasalt.conf --loglevel verbose");
        return ExitCode::SUCCESS;
    }
    let loaded = match config::load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = loaded;
    let file = cfg.config_file().map(|p| p.to_path_buf());
    if let Err(e) = std::env::set_current_dir(&cfg.dir) {
        eprintln!("Can't chdir to '{}': {e}", cfg.dir.display());
        return ExitCode::FAILURE;
    }
    if let Err(e) = logging::init(cfg.loglevel.as_str(), &cfg.logfile) {
        eprintln!("Can't open the log file: {e}");
        return ExitCode::FAILURE;
    }
    basalt_server::alloc::configure();
    if cfg.disable_thp && !basalt_server::alloc::disable_thp() {
        tracing::warn!("WARNING: could not disable transparent huge pages for the process");
    }
    let threads = if cfg.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        cfg.threads
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("basalt-worker")
        // Lua scripts run on the workers, and Redis's nesting limits (cjson's 1000
        // levels, deep replies) recurse that deep: give them Redis-like stack room.
        .thread_stack_size(basalt_server::WORKER_STACK_BYTES)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let srv = Server::new(cfg, file);
    match runtime.block_on(basalt_server::run(srv)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
