//! A small HTTP CONNECT proxy on loopback, as corporate networks put in front
//! of the API: it opens tunnels (and counts them), or refuses them the ways
//! real proxies do.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with each CONNECT.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Tunnel,
    /// Answers this status (403: a policy refuses the host; 407: log in first).
    Refuse(u16),
}

pub struct ConnectProxy {
    pub addr: SocketAddr,
    tunnels: Arc<AtomicUsize>,
    connects: Arc<AtomicUsize>,
}

impl ConnectProxy {
    pub async fn start(mode: Mode) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let (tunnels, connects) = (Arc::<AtomicUsize>::default(), Arc::<AtomicUsize>::default());
        let (opened, asked) = (Arc::clone(&tunnels), Arc::clone(&connects));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (opened, asked) = (Arc::clone(&opened), Arc::clone(&asked));
                tokio::spawn(async move {
                    let _ = serve(client, mode, &opened, &asked).await;
                });
            }
        });
        ConnectProxy { addr, tunnels, connects }
    }

    /// `http://127.0.0.1:PORT`, for `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Tunnels opened to the target.
    pub fn tunnels(&self) -> usize {
        self.tunnels.load(Ordering::SeqCst)
    }

    /// CONNECT requests received, opened or not.
    pub fn connects(&self) -> usize {
        self.connects.load(Ordering::SeqCst)
    }
}

async fn serve(mut client: TcpStream, mode: Mode, opened: &AtomicUsize, asked: &AtomicUsize) -> std::io::Result<()> {
    // The request head only: a client sends nothing more before the answer.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 || client.read_u8().await.map(|b| head.push(b)).is_err() {
            return Ok(());
        }
    }
    let head = String::from_utf8_lossy(&head);
    let Some(target) = head.strip_prefix("CONNECT ").and_then(|rest| rest.split(' ').next()) else {
        return client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n").await;
    };
    asked.fetch_add(1, Ordering::SeqCst);
    match mode {
        Mode::Refuse(407) => {
            client
                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm=\"corp\"\r\ncontent-length: 0\r\n\r\n")
                .await
        }
        Mode::Refuse(status) => {
            client.write_all(format!("HTTP/1.1 {status} Refused\r\ncontent-length: 0\r\n\r\n").as_bytes()).await
        }
        Mode::Tunnel => {
            let mut upstream = TcpStream::connect(target).await?;
            opened.fetch_add(1, Ordering::SeqCst);
            client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await?;
            tokio::io::copy_bidirectional(&mut client, &mut upstream).await.map(drop)
        }
    }
}
