//! `trivial`: a hyper HTTP/1.1 server that reads each request and answers 200 with a
//! fixed JSON body shaped and sized like a GetSecretValue response (~100-byte secret).
//! No parsing, no auth, no storage: it measures what this machine + this generator can
//! do at all, so real servers can be expressed as a fraction of it.

use std::convert::Infallible;
use std::io::Write as _;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::{BoxError, TrivialArgs};

/// A GetSecretValue response for a 100-character secret (what `bench/run.sh` stores).
pub const BODY: &str = concat!(
    r#"{"ARN":"arn:aws:secretsmanager:us-east-1:123456789012:secret:bench-secret-Ab12Cd","#,
    r#""CreatedDate":1700000000.123,"Name":"bench-secret","#,
    r#""SecretString":"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyzAB","#,
    r#""VersionId":"6f1c2a4e-8b3d-4c5e-9f7a-0b1c2d3e4f5a","VersionStages":["AWSCURRENT"]}"#
);

pub fn main(args: TrivialArgs) -> Result<(), BoxError> {
    let threads = args
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(serve(args))
}

async fn serve(args: TrivialArgs) -> Result<(), BoxError> {
    let listener = TcpListener::bind(args.listen).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{}", listener.local_addr()?)?;
        out.flush()?;
    }
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // e.g. EMFILE: back off briefly instead of spinning.
                        eprintln!("accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(handle))
                        .await;
                });
            }
            () = &mut shutdown => return Ok(()),
        }
    }
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the whole request body, as any real server must.
    let mut body = req.into_body();
    while let Some(Ok(_)) = body.frame().await {}
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    h.insert(
        HeaderName::from_static("x-amzn-requestid"),
        HeaderValue::from_static("00000000-0000-0000-0000-000000000000"),
    );
    Ok(resp)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_is_json_of_expected_size() {
        let v: serde_json::Value = serde_json::from_str(super::BODY).unwrap();
        assert_eq!(v["SecretString"].as_str().unwrap().len(), 100);
        assert!((250..400).contains(&super::BODY.len()));
    }
}
