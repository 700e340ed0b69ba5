//! `run`: closed-loop load over N keep-alive HTTP/1.1 connections.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use aws_credential_types::Credentials;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::report::{LevelResult, RunReport, markdown_table};
use crate::signer::{self, Signer, SigningConfig};
use crate::{BoxError, Format, Operation, RunArgs};

/// Latencies are recorded in microseconds, up to 60 s, 3 significant digits.
const HIST_MAX_US: u64 = 60_000_000;
const X_AMZ_TARGET: HeaderName = HeaderName::from_static("x-amz-target");
const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
/// Linux reports process CPU time in `/proc/*/stat` in USER_HZ ticks (100 on every
/// mainstream architecture).
const USER_HZ: f64 = 100.0;
/// Longest error body kept for the report.
const MAX_ERROR_BODY: usize = 2048;

struct Target {
    addr: SocketAddr,
    /// Origin-form request target, e.g. `/`.
    path: Uri,
    host: HeaderValue,
    signing: SigningConfig,
}

pub fn main(args: RunArgs) -> Result<(), BoxError> {
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        return Err("--concurrency must list positive connection counts".into());
    }
    if args.duration.is_zero() {
        return Err("--duration must be positive".into());
    }
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    let report = runtime.block_on(run_all(&args))?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Markdown => print!("{}", markdown_table(std::slice::from_ref(&report))),
    }
    Ok(())
}

async fn run_all(args: &RunArgs) -> Result<RunReport, BoxError> {
    let target = Arc::new(resolve_target(args).await?);
    let label = args
        .label
        .clone()
        .unwrap_or_else(|| target.host.to_str().unwrap_or("target").to_owned());
    let mut results = Vec::with_capacity(args.concurrency.len());
    for &c in &args.concurrency {
        eprintln!(
            "[{label}] concurrency {c}: warm-up {:?}, measuring {:?} ...",
            args.warmup, args.duration
        );
        let r = run_level(args, &target, c).await?;
        eprintln!(
            "[{label}] concurrency {c}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms, errors {}, \
             CPU % of a core: generator {}, server {}, other {}",
            r.rps,
            r.p50_ms,
            r.p99_ms,
            r.errors,
            pct(r.generator_cpu_pct),
            pct(r.server_cpu_pct),
            pct(r.other_cpu_pct()),
        );
        if let Some(e) = &r.first_error {
            eprintln!("[{label}] concurrency {c}: first error: {e}");
        }
        results.push(r);
    }
    Ok(RunReport {
        label,
        endpoint: args.endpoint.clone(),
        generator_threads: args.threads.max(1),
        warmup_s: args.warmup.as_secs_f64(),
        results,
    })
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.0}"))
}

async fn resolve_target(args: &RunArgs) -> Result<Target, BoxError> {
    let uri: Uri = args.endpoint.parse()?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!("only http:// endpoints are supported, got {other}://").into());
        }
        None => return Err("--endpoint needs a scheme, e.g. http://127.0.0.1:8080".into()),
    }
    let authority = uri.authority().ok_or("--endpoint needs a host")?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let addr = tokio::net::lookup_host((authority.host(), port))
        .await?
        .next()
        .ok_or_else(|| format!("cannot resolve {authority}"))?;
    let path = match uri.path() {
        "" => "/",
        p => p,
    };
    let body = body_for(args, 0)?;
    let signing = SigningConfig {
        credentials: Credentials::new(
            args.access_key.clone(),
            args.secret_key.clone(),
            None,
            None,
            "coffer-loadgen",
        ),
        region: args.region.clone(),
        url: format!("http://{authority}{path}"),
        host: authority.as_str().to_owned(),
        target: match args.operation {
            Operation::Get => signer::TARGET,
            Operation::Put => signer::PUT_TARGET,
        },
        body,
    };
    Ok(Target {
        addr,
        path: path.parse()?,
        host: HeaderValue::from_str(authority.as_str())?,
        signing,
    })
}

/// Replaced in each PutSecretValue body by a token of the same length.
const TOKEN_PLACEHOLDER: &str = "00000000-0000-4000-8000-000000000000";

/// A token no other request of this or another generator process uses: process-random prefix,
/// connection, counter.
fn token(prefix: u32, connection: usize, n: u64) -> String {
    format!(
        "{prefix:08x}-{:04x}-4000-8000-{:012x}",
        connection & 0xffff,
        n & 0xffff_ffff_ffff
    )
}

/// What a PutSecretValue connection writes: request n of connection c goes to secret
/// `(c + n * connections) mod secrets`, spreading the writes evenly over every secret (AWS lets a
/// secret have at most 100 unlabelled versions younger than 24 hours, so a long run needs many).
struct PutPlan {
    token_prefix: u32,
    connection: usize,
    connections: usize,
    secrets: usize,
    secret_id: String,
}

impl PutPlan {
    fn body(&self, n: u64) -> Bytes {
        let k = (self.connection as u64 + n * self.connections as u64) % self.secrets as u64;
        let value = serde_json::json!({
            "SecretId": format!("{}-{k}", self.secret_id),
            "ClientRequestToken": token(self.token_prefix, self.connection, n),
            "SecretString": "x".repeat(100),
        });
        Bytes::from(serde_json::to_vec(&value).expect("JSON serializes"))
    }
}

/// The request body of connection `i`.
fn body_for(args: &RunArgs, i: usize) -> Result<Bytes, BoxError> {
    let value = match args.operation {
        Operation::Get => serde_json::json!({ "SecretId": args.secret_id }),
        Operation::Put => serde_json::json!({
            "SecretId": format!("{}-{}", args.secret_id, i % args.secrets.max(1)),
            // Required outside the SDKs; the worker puts a fresh one into every request, so
            // every request is a new version, as a writer's would be.
            "ClientRequestToken": TOKEN_PLACEHOLDER,
            "SecretString": "x".repeat(100),
        }),
    };
    Ok(Bytes::from(serde_json::to_vec(&value)?))
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Errors surface through the sender; nothing to do here.
        let _ = conn.await;
    });
    Ok(sender)
}

/// Shared by the workers of one level.
struct Shared {
    first_error: Mutex<Option<String>>,
}

impl Shared {
    fn note_error(&self, msg: impl FnOnce() -> String) {
        let mut slot = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(msg());
        }
    }
}

struct WorkerStats {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    reconnects: u64,
    signs: u64,
}

async fn run_level(
    args: &RunArgs,
    target: &Arc<Target>,
    concurrency: usize,
) -> Result<LevelResult, BoxError> {
    // Open every connection before the clock starts.
    let mut senders = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let s = connect(target.addr)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", target.addr))?;
        senders.push(s);
    }
    let shared = Arc::new(Shared {
        first_error: Mutex::new(None),
    });
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let measure_until = measure_from + args.duration;
    let mut tasks = Vec::with_capacity(concurrency);
    let token_prefix = (SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0))
        ^ (std::process::id() << 12);
    for (i, sender) in senders.into_iter().enumerate() {
        let target = Arc::clone(target);
        let shared = Arc::clone(&shared);
        let mut signing = target.signing.clone();
        signing.body = body_for(args, i)?;
        let signer = Signer::new(signing)?;
        let timeout = args.timeout;
        tasks.push(tokio::spawn(worker(
            sender,
            target,
            shared,
            signer,
            PutPlan {
                token_prefix,
                connection: i,
                connections: concurrency,
                secrets: args.secrets.max(1),
                secret_id: args.secret_id.clone(),
            },
            measure_from,
            measure_until,
            timeout,
        )));
    }
    // CPU used by this process and by the server during the measured window.
    tokio::time::sleep_until(measure_from.into()).await;
    let server_pid = args.server_pid.map(|p| p.to_string());
    let gen0 = cpu_ticks("self");
    let srv0 = server_pid.as_deref().and_then(cpu_ticks);
    let sys0 = system_busy_ticks();
    tokio::time::sleep_until(measure_until.into()).await;
    let gen1 = cpu_ticks("self");
    let srv1 = server_pid.as_deref().and_then(cpu_ticks);
    let sys1 = system_busy_ticks();
    let cpu_pct = |a: Option<u64>, b: Option<u64>| {
        Some(b?.saturating_sub(a?) as f64 / USER_HZ / args.duration.as_secs_f64() * 100.0)
    };
    let generator_cpu_pct = cpu_pct(gen0, gen1);
    let server_cpu_pct = cpu_pct(srv0, srv1);
    let system_cpu_pct = cpu_pct(sys0, sys1);

    let mut hist = new_histogram()?;
    let (mut ok, mut errors, mut reconnects, mut signs) = (0u64, 0u64, 0u64, 0u64);
    for t in tasks {
        let s = t.await?;
        hist.add(&s.hist)?;
        ok += s.ok;
        errors += s.errors;
        reconnects += s.reconnects;
        signs += s.signs;
    }
    let secs = args.duration.as_secs_f64();
    let ms = |us: u64| us as f64 / 1000.0;
    let first_error = shared
        .first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    Ok(LevelResult {
        concurrency,
        duration_s: secs,
        requests: ok,
        errors,
        reconnects,
        signatures: signs,
        rps: ok as f64 / secs,
        p50_ms: ms(hist.value_at_quantile(0.50)),
        p90_ms: ms(hist.value_at_quantile(0.90)),
        p99_ms: ms(hist.value_at_quantile(0.99)),
        max_ms: ms(hist.max()),
        mean_ms: hist.mean() / 1000.0,
        generator_cpu_pct,
        server_cpu_pct,
        system_cpu_pct,
        first_error,
    })
}

/// utime + stime of `/proc/<pid>/stat` (all threads), in USER_HZ ticks; `None` off Linux.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_ticks(&stat)
}

/// Busy ticks of all CPUs charged to processes, plus steal (`/proc/stat` first line: user +
/// nice + system + steal). irq/softirq are left out: on loopback most of it is the benchmark's
/// own packet processing, which is not charged to either process.
fn system_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_system_busy(stat.lines().next()?)
}

fn parse_system_busy(cpu_line: &str) -> Option<u64> {
    let mut it = cpu_line.split_whitespace();
    if it.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = it.take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal
    let [user, nice, system, _idle, _iowait, _irq, _softirq, steal] = v.try_into().ok()?;
    Some(user + nice + system + steal)
}

fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is parenthesised and may contain spaces.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11); // field 3 (state) is index 0
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn new_histogram() -> Result<Histogram<u64>, BoxError> {
    Ok(Histogram::new_with_bounds(1, HIST_MAX_US, 3)?)
}

enum Outcome {
    Ok,
    Status(StatusCode, Bytes),
}

async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<Outcome, BoxError> {
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let mut body = resp.into_body();
    if status == StatusCode::OK {
        // Drain without concatenating.
        while let Some(frame) = body.frame().await {
            frame?;
        }
        Ok(Outcome::Ok)
    } else {
        Ok(Outcome::Status(status, body.collect().await?.to_bytes()))
    }
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    sender: SendRequest<Full<Bytes>>,
    target: Arc<Target>,
    shared: Arc<Shared>,
    mut signer: Signer,
    plan: PutPlan,
    measure_from: Instant,
    measure_until: Instant,
    timeout: std::time::Duration,
) -> WorkerStats {
    let mut stats = WorkerStats {
        hist: new_histogram().expect("static histogram bounds are valid"),
        ok: 0,
        errors: 0,
        reconnects: 0,
        signs: 0,
    };
    let content_type = HeaderValue::from_static(signer::CONTENT_TYPE);
    let x_amz_target = HeaderValue::from_static(signer.target());
    let user_agent =
        HeaderValue::from_static(concat!("coffer-loadgen/", env!("CARGO_PKG_VERSION")));
    let mut body = signer.body().clone();
    // PutSecretValue: a fresh ClientRequestToken, so a new body and signature, per request.
    let put = signer.target() == signer::PUT_TARGET;
    let mut sent_count: u64 = 0;
    let mut sender = Some(sender);

    loop {
        let now = Instant::now();
        if now >= measure_until {
            break;
        }
        let in_window = |t: Instant| t >= measure_from && t <= measure_until;

        // (Re)connect if the server closed the connection.
        let s = match sender.as_mut() {
            Some(s) if !s.is_closed() => s,
            _ => {
                stats.reconnects += 1;
                match connect(target.addr).await {
                    Ok(s) => sender.insert(s),
                    Err(e) => {
                        if in_window(Instant::now()) {
                            stats.errors += 1;
                        }
                        shared.note_error(|| format!("reconnect failed: {e}"));
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                }
            }
        };
        if s.ready().await.is_err() {
            sender = None;
            continue;
        }

        let signed = if put {
            sent_count += 1;
            body = plan.body(sent_count);
            signer.sign_body(body.clone(), SystemTime::now())
        } else {
            signer
                .headers(SystemTime::now())
                .map(|(d, a)| (d.clone(), a.clone()))
        };
        let (date, auth) = match signed {
            Ok((d, a)) => (d, a),
            Err(e) => {
                shared.note_error(|| format!("signing failed: {e}"));
                stats.errors += 1;
                break;
            }
        };
        let mut req = Request::new(Full::new(body.clone()));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = target.path.clone();
        let h = req.headers_mut();
        h.insert(HOST, target.host.clone());
        h.insert(CONTENT_TYPE, content_type.clone());
        h.insert(X_AMZ_TARGET, x_amz_target.clone());
        h.insert(X_AMZ_DATE, date);
        h.insert(AUTHORIZATION, auth);
        h.insert(USER_AGENT, user_agent.clone());

        let sent = Instant::now();
        let result = tokio::time::timeout(timeout, exchange(s, req)).await;
        let done = Instant::now();
        let counted = in_window(done);
        match result {
            Ok(Ok(Outcome::Ok)) => {
                if counted {
                    let us = done.duration_since(sent).as_micros();
                    stats
                        .hist
                        .saturating_record(u64::try_from(us).unwrap_or(u64::MAX).max(1));
                    stats.ok += 1;
                }
            }
            Ok(Ok(Outcome::Status(status, body))) => {
                if counted {
                    stats.errors += 1;
                }
                shared.note_error(|| {
                    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_BODY)])
                        .into_owned();
                    format!("HTTP {status}: {text}")
                });
            }
            Ok(Err(e)) => {
                if counted {
                    stats.errors += 1;
                }
                shared.note_error(|| format!("request failed: {e}"));
                sender = None;
            }
            Err(_) => {
                if counted {
                    stats.errors += 1;
                }
                shared.note_error(|| format!("request timed out after {timeout:?}"));
                sender = None;
            }
        }
    }
    stats.signs = signer.signs();
    stats
}

#[cfg(test)]
mod tests {
    #[test]
    fn stat_ticks() {
        let stat =
            "1234 (tokio (rt) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 1000 0 0";
        assert_eq!(super::parse_stat_ticks(stat), Some(325));
        assert!(super::cpu_ticks("self").is_some() || !cfg!(target_os = "linux"));
        assert_eq!(
            super::parse_system_busy("cpu  100 1 20 5000 7 0 3 2 0 0"),
            Some(123)
        );
        assert_eq!(super::parse_system_busy("cpu0 1 1 1 1 1 1 1 1"), None);
    }
}
