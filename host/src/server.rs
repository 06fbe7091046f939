//! The HTTP/1.1 front end: hyper on tokio, one log line per request, graceful shutdown.

use crate::{Host, Result};
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use wasmtime::format_err;

/// How long shutdown waits past the request timeout for open connections.
const SHUTDOWN_SLACK: std::time::Duration = std::time::Duration::from_secs(2);

pub(crate) async fn serve(
    host: Host,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // A timer enables hyper's header read timeout (30 s), so a client that never
    // finishes its request headers cannot hold a connection (or shutdown) forever.
    http.timer(TokioTimer::new());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, client) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Usually EMFILE or a connection reset before accept: keep serving.
                    eprintln!("push-devices-host: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            eprintln!("push-devices-host: cannot set TCP_NODELAY: {e}");
        }
        let host = host.clone();
        let service = hyper::service::service_fn(move |req| {
            let host = host.clone();
            async move { Ok::<_, Infallible>(respond(&host, req, client).await) }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                if !e.is_incomplete_message() {
                    eprintln!("push-devices-host: connection from {client}: {e}");
                }
            }
        });
    }
    drop(listener);
    // Open connections finish their current request, then close. A request cannot
    // outlive its deadline, so this wait is bounded; the cap is a second safety net.
    let cap = host.request_timeout() + SHUTDOWN_SLACK;
    if tokio::time::timeout(cap, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!("push-devices-host: connections still open after {cap:?}; closing them");
    }
    Ok(())
}

async fn respond(
    host: &Host,
    req: hyper::Request<Incoming>,
    client: SocketAddr,
) -> Response<Full<Bytes>> {
    let start = Instant::now();
    let method = req.method().clone();
    // Path only: the query, headers and bodies may carry secrets and never hit the log.
    let path = req.uri().path().to_owned();
    let (status, detail, resp) = match read_request(host, req).await {
        Err(status) if status == StatusCode::PAYLOAD_TOO_LARGE => (status, None, too_large()),
        Err(status) => (status, None, plain(status)),
        Ok(req) => match host.handle_from(req, Some(client)).await {
            Ok(resp) => (resp.status(), None, resp.map(Full::new)),
            Err(e) => {
                let status = StatusCode::INTERNAL_SERVER_ERROR;
                (status, Some(format!("{e:#}")), plain(status))
            }
        },
    };
    let us = start.elapsed().as_micros();
    match detail {
        None => eprintln!("{method} {path} {} {us}us", status.as_u16()),
        Some(err) => eprintln!("{method} {path} {} {us}us error: {err}", status.as_u16()),
    }
    resp
}

/// Reads the whole body (bounded); errors are the status to answer with.
async fn read_request(
    host: &Host,
    req: hyper::Request<Incoming>,
) -> Result<http::Request<Bytes>, StatusCode> {
    let (parts, body) = req.into_parts();
    match Limited::new(body, host.max_request_body()).collect().await {
        Ok(body) => Ok(http::Request::from_parts(parts, body.to_bytes())),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(StatusCode::PAYLOAD_TOO_LARGE),
        Err(_) => Err(StatusCode::BAD_REQUEST),
    }
}

/// The component's own 413 (`{"message": "Request entity too large", "code": 40005}`), built
/// by its own code: a body over the host's cap gets the answer the component gives one over
/// its 16 KiB limit.
fn too_large() -> Response<Full<Bytes>> {
    let answer = push_devices::error::ApiError::PayloadTooLarge.into_response();
    let mut resp = Response::new(Full::new(Bytes::from(answer.body)));
    *resp.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::PAYLOAD_TOO_LARGE);
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::try_from(value),
        ) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp
}

fn plain(status: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(
        status.canonical_reason().unwrap_or("error").to_owned() + "\n",
    )));
    *resp.status_mut() = status;
    resp
}

/// A server started by [`Host::spawn_server`]. Dropping it stops the server (without
/// waiting); [`ServerHandle::shutdown`] stops it and waits for in-flight requests.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<()>>>,
}

impl ServerHandle {
    /// The bound address (with the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, waits for in-flight requests, and returns the server's result.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| format_err!("server task failed: {e}"))?,
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub(crate) async fn spawn(host: Host, addr: &str) -> Result<ServerHandle> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format_err!("cannot listen on {addr}: {e}"))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serve(host, listener, async {
            let _ = stopped.await;
        })
        .await
    });
    Ok(ServerHandle {
        addr,
        stop: Some(stop),
        task: Some(task),
    })
}
