//! `proxy`: a TCP proxy for one link, placed between a node and the peer it replicates to (the
//! node's config points the peer's URL at the proxy). In `forward` mode it copies bytes both
//! ways; in `blackhole` mode it accepts connections, reads and discards whatever arrives, and
//! never answers or closes: to the sender, a Region that went silent. SIGUSR1 switches to
//! blackhole and SIGUSR2 back to forward; a switch drops the connections open at that moment,
//! as a broken path would, so every later request meets the new mode.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::{BoxError, ProxyArgs, ProxyMode};

pub fn main(args: ProxyArgs) -> Result<(), BoxError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(args))
}

#[derive(Default)]
struct Counts {
    forwarded: AtomicU64,
    blackholed: AtomicU64,
    refused_upstream: AtomicU64,
}

async fn serve(args: ProxyArgs) -> Result<(), BoxError> {
    let listener = TcpListener::bind(args.listen).await?;
    // The line scripts wait for (stdout is line-buffered only on a terminal).
    println!("listening on {}", listener.local_addr()?);
    use std::io::Write as _;
    std::io::stdout().flush()?;
    let (mode_tx, mode_rx) = watch::channel(args.mode);
    let counts = Arc::new(Counts::default());
    let mut to_blackhole = signal(SignalKind::user_defined1())?;
    let mut to_forward = signal(SignalKind::user_defined2())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let accepting = tokio::spawn(accept_loop(
        listener,
        args.upstream,
        mode_rx,
        Arc::clone(&counts),
    ));
    loop {
        tokio::select! {
            _ = to_blackhole.recv() => switch(&mode_tx, ProxyMode::Blackhole, &counts),
            _ = to_forward.recv() => switch(&mode_tx, ProxyMode::Forward, &counts),
            _ = terminate.recv() => {
                report(&counts, "stopping");
                return Ok(());
            }
        }
        if accepting.is_finished() {
            return Err("the proxy stopped accepting connections".into());
        }
    }
}

/// Hands every accepted connection the mode of the moment.
async fn accept_loop(
    listener: TcpListener,
    upstream: std::net::SocketAddr,
    mode_rx: watch::Receiver<ProxyMode>,
    counts: Arc<Counts>,
) -> std::io::Result<()> {
    loop {
        let (client, _) = listener.accept().await?;
        let mut changed = mode_rx.clone();
        let mode = *changed.borrow_and_update();
        tokio::spawn(handle(client, mode, upstream, changed, Arc::clone(&counts)));
    }
}

fn switch(mode_tx: &watch::Sender<ProxyMode>, mode: ProxyMode, counts: &Counts) {
    // Every connection task sees the change and drops its connection.
    mode_tx.send_replace(mode);
    report(counts, &format!("now {mode:?}"));
}

fn report(counts: &Counts, what: &str) {
    eprintln!(
        "proxy {what}: {} connections forwarded, {} black-holed, {} refused by the upstream",
        counts.forwarded.load(Ordering::Relaxed),
        counts.blackholed.load(Ordering::Relaxed),
        counts.refused_upstream.load(Ordering::Relaxed),
    );
}

async fn handle(
    mut client: TcpStream,
    mode: ProxyMode,
    upstream: std::net::SocketAddr,
    mut changed: watch::Receiver<ProxyMode>,
    counts: Arc<Counts>,
) {
    let _ = client.set_nodelay(true);
    match mode {
        ProxyMode::Forward => {
            let Ok(mut up) = TcpStream::connect(upstream).await else {
                // The client sees its connection closed, as it would without the proxy.
                counts.refused_upstream.fetch_add(1, Ordering::Relaxed);
                return;
            };
            counts.forwarded.fetch_add(1, Ordering::Relaxed);
            let _ = up.set_nodelay(true);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut up) => {}
                _ = changed.changed() => {}
            }
        }
        ProxyMode::Blackhole => {
            counts.blackholed.fetch_add(1, Ordering::Relaxed);
            let mut buf = vec![0u8; 64 * 1024];
            let swallow = async {
                // Read (so the sender's writes complete) until the sender gives up.
                while matches!(client.read(&mut buf).await, Ok(n) if n > 0) {}
            };
            tokio::select! {
                _ = swallow => {}
                _ = changed.changed() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn start(mode: ProxyMode, upstream: std::net::SocketAddr) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(mode);
        // The sender lives as long as the test's runtime.
        std::mem::forget(tx);
        tokio::spawn(accept_loop(listener, upstream, rx, Arc::default()));
        addr
    }

    /// An upstream that answers every read with "pong".
    async fn pong_server() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 16];
                    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {
                        let _ = s.write_all(b"pong").await;
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn forwards_and_black_holes() {
        let upstream = pong_server().await;
        let forward = start(ProxyMode::Forward, upstream).await;
        let mut c = TcpStream::connect(forward).await.unwrap();
        c.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");

        let hole = start(ProxyMode::Blackhole, upstream).await;
        let mut c = TcpStream::connect(hole).await.unwrap();
        c.write_all(b"ping").await.unwrap();
        // Accepted, written, and no answer (nor a close) comes.
        let read =
            tokio::time::timeout(std::time::Duration::from_millis(300), c.read(&mut buf)).await;
        assert!(read.is_err(), "the black hole answered: {read:?}");
    }
}
