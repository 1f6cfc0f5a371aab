//! The accept loop: hyper's HTTP/1 server per connection (via hyper-util) with a header read timeout; the body
//! read timeout is a tower-http layer. No hand-written HTTP parsing.

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// Serves `router` on `listener` until the process ends. A client has `read_timeout` to send its headers and
/// again to send its body.
pub async fn serve(listener: TcpListener, router: Router, read_timeout: Duration) {
    let router = router.layer(RequestBodyTimeoutLayer::new(read_timeout));
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                eprintln!("picolm-server: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
            builder.http1().timer(TokioTimer::new()).header_read_timeout(read_timeout);
            // Errors of one connection (a client that went away, a timeout) concern that connection only.
            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
