//! `run`: load over N keep-alive HTTP/1.1 connections, closed loop (each connection sends its
//! next request when the previous answer is in) or open loop at a fixed rate (`--rate`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

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
use crate::{BoxError, EndpointArgs, Format, Operation, RunArgs};

/// Latencies are recorded in microseconds, up to 60 s, 3 significant digits.
const HIST_MAX_US: u64 = 60_000_000;
const X_AMZ_TARGET: HeaderName = HeaderName::from_static("x-amz-target");
const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
/// Linux reports process CPU time in `/proc/*/stat` in USER_HZ ticks (100 on every
/// mainstream architecture).
const USER_HZ: f64 = 100.0;
/// Longest error body kept for the report.
const MAX_ERROR_BODY: usize = 2048;

pub(crate) struct Target {
    /// The ListSecrets body (`--list-request` with the NextToken of `--list-page`).
    list_body: Bytes,
    pub(crate) addr: SocketAddr,
    /// Set for https:// endpoints.
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    )>,
    /// A new connection for every request (`--reconnect`).
    pub(crate) reconnect: bool,
    /// A signature of its own for every request (`--sign-each`).
    pub(crate) sign_each: bool,
    /// Origin-form request target, e.g. `/`.
    pub(crate) path: Uri,
    pub(crate) host: HeaderValue,
    pub(crate) signing: SigningConfig,
}

pub fn main(args: RunArgs) -> Result<(), BoxError> {
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        return Err("--concurrency must list positive connection counts".into());
    }
    if args.duration.is_zero() {
        return Err("--duration must be positive".into());
    }
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err("--rate must be a positive number of requests per second".into());
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
    let operation = match args.operation {
        Operation::Get | Operation::GetRandom | Operation::GetEach | Operation::Mixed => {
            signer::TARGET
        }
        Operation::Put => signer::PUT_TARGET,
        Operation::List => signer::LIST_TARGET,
    };
    let mut target = resolve_target(&args.endpoint, operation, body_for(args, 0)?).await?;
    target.reconnect = args.reconnect;
    target.sign_each = args.sign_each;
    if matches!(args.operation, Operation::List | Operation::Mixed) {
        target.list_body = list_body_at_page(args, &target).await?;
    }
    let target = Arc::new(target);
    let label = args
        .label
        .clone()
        .unwrap_or_else(|| target.host.to_str().unwrap_or("target").to_owned());
    let mut results = Vec::with_capacity(args.concurrency.len());
    for &c in &args.concurrency {
        let pace = args
            .rate
            .map_or_else(String::new, |r| format!(" at {r} req/s"));
        eprintln!(
            "[{label}] concurrency {c}{pace}: warm-up {:?}, measuring {:?} ...",
            args.warmup, args.duration
        );
        let r = run_level(args, &target, c).await?;
        if let (Some(scheduled), Some(missed)) = (r.scheduled, r.missed) {
            eprintln!(
                "[{label}] concurrency {c}: {scheduled} requests due in the window, {missed} of them never sent"
            );
        }
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
        endpoint: args.endpoint.endpoint.clone(),
        generator_threads: args.threads.max(1),
        warmup_s: args.warmup.as_secs_f64(),
        results,
    })
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.0}"))
}

/// Resolves `--endpoint` and prepares signing for the `X-Amz-Target` `operation` (`body` is
/// the first request's; requests with other bodies are signed with [`Signer::sign_body`]).
pub(crate) async fn resolve_target(
    ep: &EndpointArgs,
    operation: &'static str,
    body: Bytes,
) -> Result<Target, BoxError> {
    let uri: Uri = ep.endpoint.parse()?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        Some(other) => {
            return Err(format!("only http:// and https:// endpoints, not {other}://").into());
        }
        None => return Err("--endpoint needs a scheme, e.g. http://127.0.0.1:8080".into()),
    };
    let authority = uri.authority().ok_or("--endpoint needs a host")?.clone();
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tls = if https {
        let ca = ep
            .ca_file
            .as_ref()
            .ok_or("an https:// endpoint needs --ca-file")?;
        Some(tls_connector(ca, authority.host())?)
    } else {
        None
    };
    let addr = tokio::net::lookup_host((authority.host(), port))
        .await?
        .next()
        .ok_or_else(|| format!("cannot resolve {authority}"))?;
    let path = match uri.path() {
        "" => "/",
        p => p,
    };
    let signing = SigningConfig {
        access_key: ep.access_key.clone(),
        secret_key: ep.secret_key.clone(),
        region: ep.region.clone(),
        url: format!(
            "{}://{authority}{path}",
            if https { "https" } else { "http" }
        ),
        host: authority.as_str().to_owned(),
        target: operation,
        body,
    };
    Ok(Target {
        list_body: Bytes::new(),
        addr,
        tls,
        reconnect: false,
        sign_each: false,
        path: path.parse()?,
        host: HeaderValue::from_str(authority.as_str())?,
        signing,
    })
}

/// Replaced in each PutSecretValue body by a token of the same length.
const TOKEN_PLACEHOLDER: &str = "00000000-0000-4000-8000-000000000000";

/// A token no other request of this or another generator process uses: process-random prefix,
/// connection, counter.
pub(crate) fn token(prefix: u32, connection: usize, n: u64) -> String {
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

    /// GetSecretValue of the secret request n of this connection writes with `put`.
    fn each_get_body(&self, n: u64) -> Bytes {
        let k = (self.connection as u64 + n * self.connections as u64) % self.secrets as u64;
        Bytes::from(format!(r#"{{"SecretId":"{}-{k}"}}"#, self.secret_id))
    }

    /// GetSecretValue of a uniformly random secret (request n of this connection).
    fn random_get_body(&self, n: u64) -> Bytes {
        let k = splitmix64((self.token_prefix as u64) << 32 ^ (self.connection as u64) << 40 ^ n)
            % self.secrets as u64;
        Bytes::from(format!(r#"{{"SecretId":"{}-{k}"}}"#, self.secret_id))
    }
}

/// A well-mixed 64-bit hash (SplitMix64's finalizer): random secret indexes without state.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Which of a worker's signers request n uses, and its body when that changes per request.
fn choose(operation: Operation, plan: &PutPlan, n: u64) -> (usize, Option<Bytes>) {
    match operation {
        Operation::Get | Operation::List => (0, None),
        Operation::Put => (0, Some(plan.body(n))),
        Operation::GetRandom => (0, Some(plan.random_get_body(n))),
        Operation::GetEach => (0, Some(plan.each_get_body(n))),
        // Signers: GetSecretValue, PutSecretValue, ListSecrets.
        Operation::Mixed => match splitmix64(n ^ 0x5ca1e) % 20 {
            0 => (1, Some(plan.body(n))),
            1 => (2, None),
            _ => (0, Some(plan.random_get_body(n))),
        },
    }
}

/// The ListSecrets body of page `--list-page`: walks the pages before it with one connection.
async fn list_body_at_page(args: &RunArgs, target: &Target) -> Result<Bytes, BoxError> {
    let mut request: serde_json::Value = serde_json::from_str(&args.list_request)
        .map_err(|e| format!("--list-request is not JSON: {e}"))?;
    let mut signing = target.signing.clone();
    signing.target = signer::LIST_TARGET;
    let mut list_signer = Signer::new(signing)?;
    let mut sender = connect(target).await?;
    let started = Instant::now();
    for page in 1..args.list_page.max(1) {
        let body = Bytes::from(serde_json::to_vec(&request)?);
        let (date, auth) = list_signer.sign_body(body.clone(), SystemTime::now())?;
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = target.path.clone();
        let h = req.headers_mut();
        h.insert(HOST, target.host.clone());
        h.insert(CONTENT_TYPE, HeaderValue::from_static(signer::CONTENT_TYPE));
        h.insert(X_AMZ_TARGET, HeaderValue::from_static(signer::LIST_TARGET));
        h.insert(X_AMZ_DATE, date);
        h.insert(AUTHORIZATION, auth);
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if status != StatusCode::OK {
            return Err(format!(
                "ListSecrets page {page}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            )
            .into());
        }
        let out: serde_json::Value = serde_json::from_slice(&bytes)?;
        match out.get("NextToken") {
            Some(token) => request["NextToken"] = token.clone(),
            None => {
                return Err(
                    format!("the listing has only {page} pages, not {}", args.list_page).into(),
                );
            }
        }
    }
    if args.list_page > 1 {
        eprintln!(
            "walked to page {} of the listing in {:.1} s",
            args.list_page,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(Bytes::from(serde_json::to_vec(&request)?))
}

/// The request body of connection `i`.
fn body_for(args: &RunArgs, i: usize) -> Result<Bytes, BoxError> {
    let value = match args.operation {
        Operation::Get
        | Operation::GetRandom
        | Operation::GetEach
        | Operation::Mixed
        | Operation::List => {
            serde_json::json!({ "SecretId": args.secret_id })
        }
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

/// TLS (rustls, ring) trusting only the CAs of `ca_file`, for `host`.
fn tls_connector(
    ca_file: &std::path::Path,
    host: &str,
) -> Result<
    (
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    ),
    BoxError,
> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca_file)? {
        roots.add(cert?)?;
    }
    #[allow(deprecated)] // ring: the one provider built in (see coffer_api::tls::provider)
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
}

pub(crate) async fn connect(target: &Target) -> Result<SendRequest<Full<Bytes>>, BoxError> {
    let stream = TcpStream::connect(target.addr).await?;
    stream.set_nodelay(true)?;
    let sender = match &target.tls {
        None => {
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                // Errors surface through the sender; nothing to do here.
                let _ = conn.await;
            });
            sender
        }
        Some((connector, name)) => {
            let tls = connector.connect(name.clone(), stream).await?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            sender
        }
    };
    Ok(sender)
}

/// Shared by the workers of one level.
pub(crate) struct Shared {
    first_error: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared {
            first_error: Mutex::new(None),
        }
    }

    fn note_error(&self, msg: impl FnOnce() -> String) {
        let mut slot = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(msg());
        }
    }

    pub(crate) fn take_first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

struct WorkerStats {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    reconnects: u64,
    signs: u64,
}

impl WorkerStats {
    fn new() -> WorkerStats {
        WorkerStats {
            hist: new_histogram().expect("static histogram bounds are valid"),
            ok: 0,
            errors: 0,
            reconnects: 0,
            signs: 0,
        }
    }

    fn record(&mut self, from: Instant, done: Instant) {
        let us = done.saturating_duration_since(from).as_micros();
        self.hist
            .saturating_record(u64::try_from(us).unwrap_or(u64::MAX).max(1));
        self.ok += 1;
    }
}

/// The open-loop schedule of one level: request `i` is due at `start + i / rate`.
struct Schedule {
    start: Instant,
    rate: f64,
    next: AtomicU64,
}

impl Schedule {
    fn due(&self, i: u64) -> Instant {
        self.start + Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// How many requests are due in `[from, until)`.
    fn due_between(&self, from: Instant, until: Instant) -> u64 {
        let index_at = |t: Instant| {
            (t.saturating_duration_since(self.start).as_secs_f64() * self.rate).ceil() as u64
        };
        index_at(until).saturating_sub(index_at(from))
    }
}

/// What a level's workers need to know about timing.
struct Window {
    measure_from: Instant,
    measure_until: Instant,
    /// `Some` in open-loop mode.
    schedule: Option<Arc<Schedule>>,
}

async fn run_level(
    args: &RunArgs,
    target: &Arc<Target>,
    concurrency: usize,
) -> Result<LevelResult, BoxError> {
    // Open every connection before the clock starts.
    let mut senders = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let s = connect(target)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", target.addr))?;
        senders.push(s);
    }
    let shared = Arc::new(Shared::new());
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let measure_until = measure_from + args.duration;
    let schedule = args.rate.map(|rate| {
        Arc::new(Schedule {
            start,
            rate,
            next: AtomicU64::new(0),
        })
    });
    let window = Arc::new(Window {
        measure_from,
        measure_until,
        schedule: schedule.clone(),
    });
    let mut tasks = Vec::with_capacity(concurrency);
    let token_prefix = token_prefix();
    for (i, sender) in senders.into_iter().enumerate() {
        let mut signing = target.signing.clone();
        signing.body = body_for(args, i)?;
        let mut signers = vec![Signer::new(signing.clone())?];
        if args.operation == Operation::List {
            signers[0] = Signer::new(SigningConfig {
                target: signer::LIST_TARGET,
                body: target.list_body.clone(),
                ..signing.clone()
            })?;
        }
        if args.operation == Operation::Mixed {
            signers.push(Signer::new(SigningConfig {
                target: signer::PUT_TARGET,
                ..signing.clone()
            })?);
            signers.push(Signer::new(SigningConfig {
                target: signer::LIST_TARGET,
                body: target.list_body.clone(),
                ..signing.clone()
            })?);
        }
        // Open loop: one plan for every connection (request i of the schedule writes secret
        // i mod secrets); closed loop: each connection its own share of the secrets.
        let (connection, connections) = if schedule.is_some() {
            (0, 1)
        } else {
            (i, concurrency)
        };
        let plan = PutPlan {
            token_prefix,
            connection,
            connections,
            secrets: args.secrets.max(1),
            secret_id: args.secret_id.clone(),
        };
        tasks.push(tokio::spawn(worker(
            Conn::new(sender, Arc::clone(target), Arc::clone(&shared)),
            signers,
            args.operation,
            plan,
            Arc::clone(&window),
            args.timeout,
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
    let scheduled = schedule
        .as_ref()
        .map(|s| s.due_between(measure_from, measure_until));
    let secs = args.duration.as_secs_f64();
    let ms = |us: u64| us as f64 / 1000.0;
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
        first_error: shared.take_first_error(),
        rate: args.rate,
        scheduled,
        missed: scheduled.map(|n| n.saturating_sub(ok + errors)),
    })
}

/// A prefix for ClientRequestTokens that another generator process is unlikely to use.
pub(crate) fn token_prefix() -> u32 {
    (SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0))
        ^ (std::process::id() << 12)
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

/// One keep-alive connection of a worker, reopened when the server closes it.
pub(crate) struct Conn {
    sender: Option<SendRequest<Full<Bytes>>>,
    target: Arc<Target>,
    shared: Arc<Shared>,
    reconnects: u64,
}

/// How one request ended.
pub(crate) struct Sent {
    pub(crate) ok: bool,
    /// Just before the request was written.
    pub(crate) at: Instant,
    /// When the whole answer was read (or the request failed).
    pub(crate) done: Instant,
}

impl Conn {
    pub(crate) fn new(
        sender: SendRequest<Full<Bytes>>,
        target: Arc<Target>,
        shared: Arc<Shared>,
    ) -> Conn {
        Conn {
            sender: Some(sender),
            target,
            shared,
            reconnects: 0,
        }
    }

    /// A ready sender, reconnecting if the server closed the connection; `None` (the error
    /// noted) when the server cannot be reached.
    async fn ready(&mut self) -> Option<&mut SendRequest<Full<Bytes>>> {
        for _ in 0..3 {
            if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
                self.reconnects += 1;
                match connect(&self.target).await {
                    Ok(s) => self.sender = Some(s),
                    Err(e) => {
                        self.shared.note_error(|| format!("reconnect failed: {e}"));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        return None;
                    }
                }
            }
            let ready = match self.sender.as_mut() {
                Some(s) => s.ready().await.is_ok(),
                None => false,
            };
            if ready {
                return self.sender.as_mut();
            }
            self.sender = None;
        }
        None
    }

    /// Signs and sends one request (`body`, or the signer's fixed body with its per-second
    /// signature) and reads the whole answer; a non-200 answer or a failure is noted.
    pub(crate) async fn send(
        &mut self,
        signer: &mut Signer,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Sent {
        let failed = |at: Instant| Sent {
            ok: false,
            at,
            done: Instant::now(),
        };
        let start = Instant::now();
        let shared = Arc::clone(&self.shared);
        let target = Arc::clone(&self.target);
        if target.reconnect {
            // Connecting is part of this request's time.
            self.sender = None;
        }
        let Some(s) = self.ready().await else {
            return failed(start);
        };
        let signed = match &body {
            Some(body) => signer.sign_body(body.clone(), SystemTime::now()),
            None if target.sign_each => signer.sign_body(signer.body().clone(), SystemTime::now()),
            None => signer
                .headers(SystemTime::now())
                .map(|(d, a)| (d.clone(), a.clone())),
        };
        let (date, auth) = match signed {
            Ok(v) => v,
            Err(e) => {
                shared.note_error(|| format!("signing failed: {e}"));
                return failed(start);
            }
        };
        let body = body.unwrap_or_else(|| signer.body().clone());
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = target.path.clone();
        let h = req.headers_mut();
        h.insert(HOST, target.host.clone());
        h.insert(CONTENT_TYPE, HeaderValue::from_static(signer::CONTENT_TYPE));
        h.insert(X_AMZ_TARGET, HeaderValue::from_static(signer.target()));
        h.insert(X_AMZ_DATE, date);
        h.insert(AUTHORIZATION, auth);
        h.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("coffer-loadgen/", env!("CARGO_PKG_VERSION"))),
        );
        let at = Instant::now();
        let result = tokio::time::timeout(timeout, exchange(s, req)).await;
        let done = Instant::now();
        let ok = match result {
            Ok(Ok(Outcome::Ok)) => true,
            Ok(Ok(Outcome::Status(status, body))) => {
                shared.note_error(|| {
                    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_BODY)])
                        .into_owned();
                    format!("HTTP {status}: {text}")
                });
                false
            }
            Ok(Err(e)) => {
                shared.note_error(|| format!("request failed: {e}"));
                self.sender = None;
                false
            }
            Err(_) => {
                shared.note_error(|| format!("request timed out after {timeout:?}"));
                self.sender = None;
                false
            }
        };
        Sent { ok, at, done }
    }
}

/// Closed loop: sends the next request as soon as the previous answer is in, and counts those
/// that complete inside the window. Open loop (`window.schedule`): takes the next due request
/// of the schedule, waits until it is due, and counts it if it was due inside the window, its
/// latency measured from when it was due.
async fn worker(
    mut conn: Conn,
    mut signers: Vec<Signer>,
    operation: Operation,
    plan: PutPlan,
    window: Arc<Window>,
    timeout: Duration,
) -> WorkerStats {
    let mut stats = WorkerStats::new();
    let in_window = |t: Instant| t >= window.measure_from && t < window.measure_until;
    let mut sent_count: u64 = 0;
    loop {
        // Open loop: the request's index in the schedule and when it is due.
        let due = match &window.schedule {
            Some(schedule) => {
                let i = schedule.next.fetch_add(1, Ordering::Relaxed);
                let due = schedule.due(i);
                if due >= window.measure_until {
                    break;
                }
                sent_count = i;
                tokio::time::sleep_until(due.into()).await;
                Some(due)
            }
            None => {
                sent_count += 1;
                None
            }
        };
        if Instant::now() >= window.measure_until {
            break;
        }
        // PutSecretValue: a fresh ClientRequestToken, so a new body and signature, per request.
        let (which, body) = choose(operation, &plan, sent_count);
        let sent = conn.send(&mut signers[which], body, timeout).await;
        let (counted, from) = match due {
            Some(due) => (in_window(due), due),
            None => (in_window(sent.done), sent.at),
        };
        if counted {
            if sent.ok {
                stats.record(from, sent.done);
            } else {
                stats.errors += 1;
            }
        }
    }
    stats.reconnects = conn.reconnects;
    stats.signs = signers.iter().map(Signer::signs).sum();
    stats
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    use crate::{EndpointArgs, Format, Operation, RunArgs};

    /// A server that answers 200 after `delay` and keeps every request body.
    async fn recording_server(delay: Duration) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let kept = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                stream.set_nodelay(true).unwrap();
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let kept = Arc::clone(&kept);
                        async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            kept.lock()
                                .unwrap()
                                .push(serde_json::from_slice(&body).unwrap());
                            tokio::time::sleep(delay).await;
                            Ok::<_, hyper::Error>(http::Response::new(Full::new(
                                Bytes::from_static(b"{}"),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (url, seen)
    }

    fn put_args(endpoint: String, rate: f64, connections: usize, secrets: usize) -> RunArgs {
        RunArgs {
            endpoint: EndpointArgs {
                endpoint,
                ca_file: None,
                region: "us-west-2".into(),
                access_key: "AKID".into(),
                secret_key: "SK".into(),
            },
            secret_id: "lag".into(),
            operation: Operation::Put,
            secrets,
            concurrency: vec![connections],
            duration: Duration::from_millis(500),
            warmup: Duration::ZERO,
            timeout: Duration::from_secs(5),
            format: Format::Json,
            label: None,
            server_pid: None,
            threads: 1,
            rate: Some(rate),
            reconnect: false,
            sign_each: false,
            list_request: "{}".into(),
            list_page: 1,
        }
    }

    #[test]
    fn random_gets_cover_every_secret_and_mixed_is_mostly_reads() {
        let plan = super::PutPlan {
            token_prefix: 1,
            connection: 3,
            connections: 4,
            secrets: 50,
            secret_id: "s".into(),
        };
        let mut seen = std::collections::BTreeSet::new();
        let mut by_signer = [0usize; 3];
        for n in 0..4000 {
            let (_, body) = super::choose(Operation::GetRandom, &plan, n);
            let v: serde_json::Value = serde_json::from_slice(&body.unwrap()).unwrap();
            seen.insert(v["SecretId"].as_str().unwrap().to_string());
            by_signer[super::choose(Operation::Mixed, &plan, n).0] += 1;
        }
        assert_eq!(seen.len(), 50, "every secret is read");
        assert!((3400..3800).contains(&by_signer[0]), "{by_signer:?}");
        assert!((120..280).contains(&by_signer[1]) && (120..280).contains(&by_signer[2]));
    }

    /// `get-each` over 4 connections: the first `secrets` requests (the first 13 of each
    /// connection, 52 >= 50) read every secret, none more than twice.
    #[test]
    fn each_gets_read_every_secret_once_per_pass() {
        let mut count = std::collections::BTreeMap::new();
        for connection in 0..4 {
            let plan = super::PutPlan {
                token_prefix: 1,
                connection,
                connections: 4,
                secrets: 50,
                secret_id: "s".into(),
            };
            for n in 0..13 {
                let (_, body) = super::choose(Operation::GetEach, &plan, n);
                let v: serde_json::Value = serde_json::from_slice(&body.unwrap()).unwrap();
                *count
                    .entry(v["SecretId"].as_str().unwrap().to_string())
                    .or_insert(0) += 1;
            }
        }
        assert_eq!(count.len(), 50, "every secret is read");
        assert!(count.values().all(|&n| n <= 2), "{count:?}");
    }

    #[tokio::test]
    async fn open_loop_sends_what_is_due_and_accounts_for_every_request() {
        let (url, seen) = recording_server(Duration::from_millis(1)).await;
        let report = super::run_all(&put_args(url, 100.0, 8, 10)).await.unwrap();
        let r = &report.results[0];
        // 100/s for 0.5 s: 50 due, each answered, failed or (on a starved machine) missed;
        // never more than the schedule.
        assert_eq!(r.scheduled, Some(50));
        assert_eq!(r.requests + r.errors + r.missed.unwrap(), 50);
        assert_eq!(r.errors, 0);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len() as u64, r.requests);
        let tokens: std::collections::HashSet<&str> = seen
            .iter()
            .map(|v| v["ClientRequestToken"].as_str().unwrap())
            .collect();
        assert_eq!(
            tokens.len(),
            seen.len(),
            "a ClientRequestToken was used twice"
        );
    }

    /// A repeated body reuses its signature (one per second) unless `--sign-each`, which
    /// signs every request as an SDK does.
    #[tokio::test]
    async fn sign_each_signs_every_request_of_a_repeated_body() {
        let (url, _) = recording_server(Duration::ZERO).await;
        for sign_each in [false, true] {
            let mut args = put_args(url.clone(), 1.0, 2, 1);
            args.operation = Operation::Get;
            args.rate = None;
            args.sign_each = sign_each;
            let report = super::run_all(&args).await.unwrap();
            let r = &report.results[0];
            assert!(r.requests > 20, "{}", r.requests);
            if sign_each {
                assert!(
                    r.signatures >= r.requests,
                    "{} < {}",
                    r.signatures,
                    r.requests
                );
            } else {
                assert!(r.signatures <= 4, "{} signatures", r.signatures);
            }
        }
    }

    #[test]
    fn open_loop_request_i_writes_secret_i_mod_secrets() {
        let plan = super::PutPlan {
            token_prefix: 1,
            connection: 0,
            connections: 1,
            secrets: 1000,
            secret_id: "lag".into(),
        };
        let secret = |i: u64| -> String {
            let v: serde_json::Value = serde_json::from_slice(&plan.body(i)).unwrap();
            v["SecretId"].as_str().unwrap().to_owned()
        };
        assert_eq!(secret(0), "lag-0");
        assert_eq!(secret(999), "lag-999");
        assert_eq!(secret(1000), "lag-0");
        assert_eq!(secret(61_234), "lag-234");
    }

    #[tokio::test]
    async fn open_loop_counts_the_wait_of_a_server_that_falls_behind() {
        // Two connections to a server that takes 50 ms: at most 40 requests/s get through, so
        // at 100/s the requests queue up, their latency (from when each was due) grows far
        // beyond 50 ms, and those due at the end of the window are never sent.
        let (url, _) = recording_server(Duration::from_millis(50)).await;
        let report = super::run_all(&put_args(url, 100.0, 2, 10)).await.unwrap();
        let r = &report.results[0];
        assert_eq!(r.scheduled, Some(50));
        assert!(
            r.requests <= 22,
            "{} requests through 2 connections of 50 ms",
            r.requests
        );
        assert_eq!(r.missed, Some(50 - r.requests - r.errors));
        assert!(r.p99_ms > 200.0, "p99 {} ms hides the queueing", r.p99_ms);
    }

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
