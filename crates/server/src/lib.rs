//! The Basalt server: configuration, the accept loop, connections, the command table and
//! its families, and background jobs (active expiry).
//!
//! `main.rs` only parses the command line and builds the runtime; everything else lives
//! here so tests and embedders can start a server in-process.

pub mod alloc;
pub mod aof;
pub mod attention;
pub mod blocking;
pub mod check;
pub mod client;
pub mod cmd;
pub mod config;
pub mod conn;
pub mod coord;
pub mod cron;
pub mod error;
pub mod evict;
pub mod expire;
pub mod faktory;
pub mod families;
pub mod info;
pub mod jobs;
pub mod logging;
pub mod persist;
pub mod pubsub;
pub mod rand;
pub mod schedule;
pub mod scripting;
pub mod server;
pub mod thread_slot;
pub mod ticks;
pub mod transaction;

use server::Server;

/// Stack size of the runtime's worker threads (scripts recurse as deep as Redis allows).
pub const WORKER_STACK_BYTES: usize = 32 * 1024 * 1024;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Binds every configured address, loads the AOF (with `appendonly yes`) or the RDB
/// file (if any) while already accepting clients (who get `-LOADING` meanwhile), then
/// serves until shutdown. A file that cannot be loaded stops the start (the file is left
/// as it is, but for a torn last AOF command cut off with `aof-load-truncated yes`).
pub async fn run(srv: Arc<Server>) -> std::io::Result<()> {
    let (binds, port) = {
        let c = srv.config.read();
        (c.bind.clone(), c.port)
    };
    let mut listeners = Vec::new();
    for addr in &binds {
        // `-` prefixed addresses are optional in Redis (`bind * -::*`).
        let (optional, host) = match addr.strip_prefix('-') {
            Some(h) => (true, h),
            None => (false, addr.as_str()),
        };
        let host = match host {
            "*" => "0.0.0.0",
            "::*" => "::",
            h => h,
        };
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        match bind(&target) {
            Ok(l) => listeners.push(l),
            Err(e) if optional => {
                tracing::warn!(
                    "Warning: Could not create server TCP listening socket {target}: {e}"
                );
            }
            Err(e) => {
                tracing::warn!("Failed listening on port {port} (tcp), aborting: {e}");
                return Err(e);
            }
        }
    }
    // The Faktory protocol's own listener (`faktory-port`), bound with the others so a
    // port in use stops the start.
    let faktory_listener = faktory::bind(&srv)?;
    if let Some(l) = listeners.first()
        && let Ok(a) = l.local_addr()
    {
        srv.port
            .store(u64::from(a.port()), std::sync::atomic::Ordering::Relaxed);
    }
    tracing::info!(
        "Server initialized, Basalt {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        binds.join(" ")
    );
    // What the server holds before any client or key (`used_memory_startup`).
    alloc::mark_startup();

    // Clients are accepted while the dataset loads: commands without the `loading` flag
    // get -LOADING until it is done, as in Redis. The state lasts until the AOF is open
    // for appending too, so no write can slip in unlogged.
    // The RDB's size is known before any client can ask: INFO never shows `loading:1` with
    // `loading_total_bytes:0` (the AOF's total is set when its files are listed).
    let rdb_total = if srv.config.read().appendonly {
        0
    } else {
        std::fs::metadata(persist::rdb_path(&srv)).map_or(0, |m| m.len())
    };
    srv.persist.start_loading(rdb_total);
    let signals = tokio::spawn(wait_for_signals(srv.clone()));
    let mut tasks = Vec::new();
    for l in listeners {
        tasks.push(tokio::spawn(accept_loop(srv.clone(), l)));
    }
    if let Some(l) = faktory_listener {
        let state = std::sync::Arc::new(faktory::Faktory::default());
        tasks.push(tokio::spawn(faktory::accept_loop(srv.clone(), state, l)));
    }
    // With `appendonly yes` the AOF is the source of truth and the RDB is not read, as
    // in Redis. Loading runs off the async workers.
    let loader = srv.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        if loader.config.read().appendonly {
            aof::load_at_startup(&loader).and_then(|()| {
                if *loader.shutdown.borrow() {
                    return Ok(());
                }
                aof::open_at_startup(&loader)
            })
        } else {
            persist::load_at_startup(&loader)
        }
    })
    .await
    .unwrap_or_else(|e| Err(format!("the loading thread failed: {e}")));
    srv.persist.stop_loading();
    if let Err(e) = loaded {
        for t in tasks {
            t.abort();
        }
        signals.abort();
        if *srv.shutdown.borrow() {
            tracing::warn!("Basalt is now ready to exit, bye bye...");
            return Ok(());
        }
        tracing::warn!("{e}");
        return Err(std::io::Error::other(e));
    }
    tracing::info!("Ready to accept connections tcp");
    let cron = tokio::spawn(cron::run(srv.clone()));
    let expiry = tokio::spawn(expire::run(srv.clone()));
    let timers = tokio::spawn(blocking::run_timers(
        srv.wake_timers.clone(),
        srv.blocking.clone(),
    ));
    let mut shutdown = srv.shutdown.subscribe();
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    for t in tasks {
        t.abort();
    }
    cron.abort();
    expiry.abort();
    timers.abort();
    signals.abort();
    // Let connection tasks see the shutdown and close their sockets.
    for _ in 0..50 {
        if srv.clients.lock().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tracing::warn!("Basalt is now ready to exit, bye bye...");
    Ok(())
}

pub(crate) fn bind(target: &str) -> std::io::Result<TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = target
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad address"))?;
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(511)?;
    TcpListener::from_std(sock.into())
}

async fn accept_loop(srv: Arc<Server>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let keepalive = srv.config.read().tcp_keepalive;
                if keepalive > 0 {
                    let sock = socket2::SockRef::from(&stream);
                    let ka = socket2::TcpKeepalive::new()
                        .with_time(std::time::Duration::from_secs(keepalive));
                    let _ = sock.set_tcp_keepalive(&ka);
                }
                tokio::spawn(conn::serve(srv.clone(), stream));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("Accepting client connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn wait_for_signals(srv: Arc<Server>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::warn!("Received {name} scheduling shutdown...");
            // The final save may take a while: run it off the async workers.
            let s = srv.clone();
            let ok = tokio::task::spawn_blocking(move || {
                persist::prepare_shutdown(&s, persist::ShutdownSave::Default, false)
            })
            .await
            .unwrap_or(false);
            if ok {
                break;
            }
            tracing::warn!(
                "{name} received but errors trying to shut down the server, check the logs for more information"
            );
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        let _ = persist::prepare_shutdown(&srv, persist::ShutdownSave::Default, false);
    }
    srv.request_shutdown();
}
