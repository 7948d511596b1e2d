//! Connecting to a sandbox, with retries of the connection only. A request is handed to the
//! connection once it exists, so a retry here can never send a request (or a part of its body)
//! twice; once a request is on the wire, a failure is the client's to handle.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::metrics::Metrics;

/// First pause between attempts; doubled after each, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The connector the HTTP clients use: TCP to an IP literal, retried on failure.
#[derive(Clone)]
pub struct Dialer {
    /// Limit of one connection attempt.
    pub connect_timeout: Duration,
    /// Attempts after the first one.
    pub retries: u32,
    /// Where retries are counted.
    pub metrics: Arc<Metrics>,
}

/// No connection could be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to {addr} ({attempts} attempts): {last}")]
pub struct DialError {
    addr: String,
    attempts: u32,
    last: std::io::Error,
}

impl Dialer {
    async fn dial(self, uri: Uri) -> Result<TokioIo<TcpStream>, DialError> {
        let addr = target(&uri).ok_or_else(|| DialError {
            addr: uri.to_string(),
            attempts: 0,
            last: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the router only connects to IP addresses with a port",
            ),
        })?;
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error =
                match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                    Ok(Ok(stream)) => {
                        // Small request/response exchanges (a gRPC message, a WebSocket frame)
                        // should not wait for Nagle's algorithm.
                        let _ = stream.set_nodelay(true);
                        return Ok(TokioIo::new(stream));
                    }
                    Ok(Err(error)) => error,
                    Err(_) => std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no connection within {:?}", self.connect_timeout),
                    ),
                };
            if attempt > self.retries {
                return Err(DialError {
                    addr: addr.to_string(),
                    attempts: attempt,
                    last: error,
                });
            }
            self.metrics.dial_retries.inc();
            tracing::debug!(%addr, attempt, %error, "connection failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// The socket address of `http://<ip>:<port>/…`.
fn target(uri: &Uri) -> Option<SocketAddr> {
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some(SocketAddr::new(
        host.parse::<IpAddr>().ok()?,
        uri.port_u16()?,
    ))
}

impl tower_service::Service<Uri> for Dialer {
    type Response = TokioIo<TcpStream>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().dial(uri))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ip_literals_with_ports_are_targets() {
        let t = |s: &str| target(&s.parse().unwrap());
        assert_eq!(
            t("http://10.0.0.5:8888/x"),
            Some("10.0.0.5:8888".parse().unwrap())
        );
        assert_eq!(
            t("http://[fd00::5]:9090/"),
            Some("[fd00::5]:9090".parse().unwrap())
        );
        assert_eq!(t("http://sandbox.ns.svc:8888/"), None);
        assert_eq!(t("http://10.0.0.5/"), None);
    }
}
