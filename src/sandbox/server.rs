//! The network side: accepts connections, waits out latency and slow
//! answers, and applies faults around the origin.
//!
//! Connections are served with hyper directly rather than through axum's
//! `serve`, because a connection reset has to be a service error: hyper
//! then drops the connection without writing a byte, which is what a client
//! sees when a real connection dies mid-request.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::faults::{FaultKind, Served};
use super::origin::{ApiRequest, Origin};
use super::response::{Announcement, PlainResponse};
use super::routes::{CertOp, Endpoint, Route};

/// Far more than `{"reactivate": true}`; anything longer is not a PATCH
/// body this API would accept.
const MAX_BODY: usize = 64 * 1024;

pub(crate) struct Shared {
    origin: Mutex<Origin>,
    /// The rate-limit headers answers carry, if any.
    announcement: Option<Announcement>,
    slow_delay: Duration,
}

impl Shared {
    pub(crate) fn new(origin: Origin, announcement: Option<Announcement>, slow_delay: Duration) -> Shared {
        Shared { origin: Mutex::new(origin), announcement, slow_delay }
    }

    /// The origin never panics while holding the lock, but if it did, the
    /// journal would still be worth reading.
    pub(crate) fn origin(&self) -> MutexGuard<'_, Origin> {
        self.origin.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Returned by the service to make hyper drop the connection unanswered.
#[derive(Debug, thiserror::Error)]
#[error("simulated connection reset")]
struct Reset;

/// Accepts connections until `stop` is cancelled; open connections are
/// aborted with it.
/// With `tls`, each connection is a TLS handshake first; one that fails
/// (an untrusting client) ends there, before any request is read.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tls: Option<TlsAcceptor>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        debug!(%error, "sandbox: could not set TCP_NODELAY");
                    }
                    match tls.clone() {
                        None => connections.spawn(connection(stream, shared.clone())),
                        Some(acceptor) => connections.spawn(tls_connection(acceptor, stream, shared.clone())),
                    };
                }
                Err(error) => {
                    // Typically out of file descriptors: let some close.
                    debug!(%error, "sandbox: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn tls_connection(acceptor: TlsAcceptor, stream: TcpStream, shared: Arc<Shared>) {
    match acceptor.accept(stream).await {
        Ok(stream) => connection(stream, shared).await,
        Err(error) => debug!(%error, "sandbox: TLS handshake failed"),
    }
}

async fn connection(stream: impl AsyncRead + AsyncWrite + Send + Unpin + 'static, shared: Arc<Shared>) {
    let service = service_fn(move |request| respond(shared.clone(), request));
    if let Err(error) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
        debug!(%error, "sandbox: connection closed");
    }
}

async fn respond(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<Body>, Reset> {
    let route = Route::parse(request.method(), request.uri().path());
    match route {
        Route::Stats => return Ok(stats(shared.origin().journal(Instant::now()))),
        Route::ResetJournal => return Ok(stats(shared.origin().take_journal(Instant::now()))),
        Route::Api(_) | Route::Unknown => {}
    }
    let arrival = shared.origin().arrive(request.method(), &route);
    if !arrival.latency.is_zero() {
        tokio::time::sleep(arrival.latency).await;
    }
    let served = match arrival.fault.and_then(|fault| fault.before()) {
        Some(edge) => edge,
        None => {
            let (parts, body) = request.into_parts();
            let body = match route {
                Route::Api(Endpoint::Cert(CertOp::Patch, _)) => {
                    axum::body::to_bytes(Body::new(body), MAX_BODY).await.unwrap_or_default()
                }
                _ => Default::default(),
            };
            let api_request =
                ApiRequest { route: &route, headers: &parts.headers, query: parts.uri.query(), body: &body };
            let reply = shared.origin().handle(&api_request, Instant::now());
            match arrival.fault {
                Some(fault) => fault.after(reply),
                None => Served::Response(reply),
            }
        }
    };
    // Journaled before any hold, so a client that gives up waiting still
    // finds its request in the journal.
    shared.origin().served(&served, arrival.fault);
    if arrival.fault.is_some_and(|fault| fault.kind == FaultKind::Slow) {
        tokio::time::sleep(shared.slow_delay).await;
    }
    match served {
        Served::Response(reply) => Ok(reply.into_response(Some(&arrival.ray), shared.announcement.as_ref())),
        Served::Reset => Err(Reset),
    }
}

fn stats(journal: super::Journal) -> Response<Body> {
    PlainResponse {
        status: StatusCode::OK,
        content_type: crate::api::JSON,
        body: serde_json::to_vec_pretty(&journal).expect("the journal has string keys and plain values"),
        ratelimit: None,
    }
    .into_response(None, None)
}
