//! `coffer-loadgen`: benchmark tooling for Coffer.
//!
//! * `run`     — load generator: N keep-alive HTTP/1.1 connections sending SigV4-signed
//!   `GetSecretValue` or `PutSecretValue` requests, either back to back (closed loop) or at a
//!   fixed rate (`--rate`, open loop).
//! * `create`  — creates `<prefix>-0` ... `<prefix>-<N-1>` (optionally with replicas in other
//!   Regions), for `run --operation put`.
//! * `rotate`  — turns on rotation of `<prefix>-I` ... once each (RotateSecret with a rotation
//!   function and a schedule), to load the rotation scheduler.
//! * `proxy`   — a TCP proxy that forwards or black-holes (accepts, never answers) a link;
//!   SIGUSR1 / SIGUSR2 switch it.
//! * `trivial` — a hyper HTTP/1.1 server answering every request with a fixed
//!   GetSecretValue-sized JSON body: the ceiling of this machine + this generator.
//! * `wrk-script` — a Lua script that makes wrk replay one pre-signed GetSecretValue.
//! * `report`  — merges the JSON output of several `run`s into one markdown table with
//!   throughput ratios.
//!
//! The generator shares the machine with the server under test, so it is built to be
//! cheap: one runtime thread by default, signatures cached per second, no per-request
//! allocation beyond what hyper needs.

mod each;
mod proxy;
mod report;
mod run;
mod signer;
mod trivial;
mod wrk;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
#[command(
    name = "coffer-loadgen",
    version,
    about = "Load generator and baseline endpoint for benchmarking Coffer"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Drive SigV4-signed GetSecretValue or PutSecretValue load against an endpoint.
    Run(RunArgs),
    /// Create the secrets `run --operation put` writes to (with replicas, if asked).
    Create(CreateArgs),
    /// Turn on rotation of existing secrets, once each (RotateSecret, rotating immediately).
    Rotate(RotateArgs),
    /// Forward a TCP link, or black-hole it (accept, never answer); signals switch the mode.
    Proxy(ProxyArgs),
    /// Serve a fixed 200 JSON response to every request (the machine's ceiling).
    Trivial(TrivialArgs),
    /// Merge JSON outputs of `run` into one markdown table with ratios.
    Report(ReportArgs),
    /// Print a wrk Lua script that replays one pre-signed GetSecretValue (`wrk -s`).
    WrkScript(WrkScriptArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Markdown,
    Json,
}

/// What each request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Operation {
    /// GetSecretValue of `--secret-id` on every connection.
    Get,
    /// PutSecretValue of a 100-byte string with a fresh ClientRequestToken, spread evenly over
    /// `<secret-id>-0` ... `<secret-id>-<secrets - 1>` (create those secrets first).
    Put,
    /// GetSecretValue of a uniformly random one of `<secret-id>-0` ... `<secret-id>-<secrets - 1>`.
    GetRandom,
    /// GetSecretValue of `<secret-id>-0` ... `<secret-id>-<secrets - 1>` in turn, spread over the
    /// connections as `put` is: any `secrets` consecutive requests read every secret once (to
    /// read a whole Region once, e.g. so every LastAccessedDate is today).
    GetEach,
    /// ListSecrets with the request `--list-request` (default: a page of 100, no filter), at
    /// page `--list-page` (the generator first walks the pages before it to get the token).
    List,
    /// 90% GetSecretValue of a random secret, 5% PutSecretValue, 5% ListSecrets (as `list`).
    Mixed,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    /// SecretId to request (with `--operation put`: the prefix of the secrets written).
    #[arg(long)]
    pub secret_id: String,
    /// The request: GetSecretValue or PutSecretValue.
    #[arg(long, value_enum, default_value_t = Operation::Get)]
    pub operation: Operation,
    /// With `--operation put`: how many secrets (`<secret-id>-0` ...) the writes go to; each
    /// takes at most 100 new versions a day (AWS's limit), so give a long run enough of them.
    #[arg(long, default_value_t = 64)]
    pub secrets: usize,
    /// Comma-separated list of connection counts, run one after the other.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
    pub concurrency: Vec<usize>,
    /// Measured duration per concurrency level (e.g. 10s, 500ms, 1m).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Unmeasured warm-up before each level's measurement.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub warmup: Duration,
    /// Per-request timeout; a timed-out request counts as an error and its connection is replaced.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,
    /// Output format (on stdout; progress goes to stderr).
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    pub format: Format,
    /// Name of the target in the output (default: the endpoint's host:port).
    #[arg(long)]
    pub label: Option<String>,
    /// With `--operation list` or `mixed`: the ListSecrets request body (JSON), without
    /// NextToken.
    #[arg(long, default_value = r#"{"MaxResults":100}"#)]
    pub list_request: String,
    /// With `--operation list`: which page every request asks for (1 = the first).
    #[arg(long, default_value_t = 1)]
    pub list_page: usize,
    /// PID of the server under test, to report its CPU use during each window (Linux).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Generator runtime threads. 1 (default) keeps the generator to at most one core.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Open loop at this many requests per second (over all connections) instead of closed
    /// loop: request i is due at start + i / rate and goes out on the next free connection;
    /// its latency counts from when it was due, so a server (or generator) that falls behind
    /// shows in the percentiles. Requests due in the window but not sent by its end are
    /// reported as missed. `--concurrency` is then the number of connections (requests in
    /// flight at most); with `--operation put`, request i writes `<secret-id>-<i mod secrets>`.
    #[arg(long)]
    pub rate: Option<f64>,
    /// A new connection (and, over https, a new TLS handshake) for every request: measures
    /// the cost of connecting.
    #[arg(long)]
    pub reconnect: bool,
    /// Sign every request, as an SDK does, even when its body repeats (`get`, `list`): by
    /// default those reuse one signature per second, which leaves the generator more of a
    /// small machine's CPU than requests with a new body each (`get-random`, `put`) do.
    #[arg(long)]
    pub sign_each: bool,
}

/// Common connection and credential settings.
#[derive(Args, Debug)]
pub struct EndpointArgs {
    /// Endpoint URL, e.g. http://127.0.0.1:4566 or https://127.0.0.1:7780 (with --ca-file).
    #[arg(long)]
    pub endpoint: String,
    /// PEM CA certificate(s) an https:// endpoint's certificate must chain to.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Signing region.
    #[arg(long, default_value = "us-east-1", env = "AWS_REGION")]
    pub region: String,
    /// Access key id used for signing.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key: String,
    /// Secret access key used for signing (prefer the env var: argv is visible in `ps`).
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_key: String,
}

/// Which secrets a one-call-per-secret command (`create`, `rotate`) addresses, and how fast.
#[derive(Args, Debug)]
pub struct EachArgs {
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    /// Name prefix: the secrets are `<secret-id>-<start>` ... `<secret-id>-<start + secrets - 1>`.
    #[arg(long)]
    pub secret_id: String,
    /// How many secrets.
    #[arg(long, default_value_t = 64)]
    pub secrets: usize,
    /// The index of the first secret (e.g. to add to a fill that was stopped).
    #[arg(long, default_value_t = 0)]
    pub start: usize,
    /// Calls in flight at once (one connection each).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Per-request timeout.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub each: EachArgs,
    /// Give each secret a description and three tags (team, env, app), as a Region at scale
    /// would have, so every ListSecrets filter has something to match.
    #[arg(long)]
    pub describe: bool,
    /// Comma-separated Regions each secret is replicated to (CreateSecret's AddReplicaRegions).
    #[arg(long, value_delimiter = ',')]
    pub replica_regions: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RotateArgs {
    #[command(flatten)]
    pub each: EachArgs,
    /// The rotation function (RotationLambdaARN); the default is Coffer's built-in password
    /// rotator, which needs nothing outside the secret.
    #[arg(
        long,
        default_value = "arn:aws:lambda:us-east-1:123456789012:function:coffer-password"
    )]
    pub function: String,
    /// RotationRules.ScheduleExpression.
    #[arg(long, default_value = "rate(4 hours)")]
    pub schedule: String,
}

/// What the proxy does with a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProxyMode {
    /// Connect to `--upstream` and copy bytes both ways.
    Forward,
    /// Accept, read and discard whatever arrives, never answer, never close.
    Blackhole,
}

#[derive(Args, Debug)]
pub struct ProxyArgs {
    /// Address to listen on; port 0 picks a free port (printed as `listening on ADDR`).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Where forwarded connections go, e.g. 127.0.0.1:7782.
    #[arg(long)]
    pub upstream: SocketAddr,
    /// Mode at start. SIGUSR1 switches to blackhole, SIGUSR2 to forward; a switch drops the
    /// connections open at that moment (as a broken path would), new ones get the new mode.
    #[arg(long, value_enum, default_value_t = ProxyMode::Forward)]
    pub mode: ProxyMode,
}

#[derive(Args, Debug)]
pub struct TrivialArgs {
    /// Address to listen on; port 0 picks a free port (printed as `listening on http://...`).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Server runtime threads (default: number of CPUs, like a typical tokio server).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Args, Debug)]
pub struct WrkScriptArgs {
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    /// SecretId to request.
    #[arg(long)]
    pub secret_id: String,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// JSON files written by `run --format json`, in the order the targets should appear.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Throughput ratio to print, as LABEL/LABEL (repeatable), e.g. coffer/trivial.
    #[arg(long = "ratio")]
    pub ratios: Vec<String>,
}

/// Parses `10s`, `500ms`, `1.5s`, `2m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration `{s}` (use e.g. 10s, 500ms, 1m)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("invalid duration `{s}`"));
    }
    Ok(Duration::from_secs_f64(v * mult))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run(args) => run::main(args),
        Cmd::Create(args) => each::create(args),
        Cmd::Rotate(args) => each::rotate(args),
        Cmd::Proxy(args) => proxy::main(args),
        Cmd::Trivial(args) => trivial::main(args),
        Cmd::Report(args) => report::main(args),
        Cmd::WrkScript(args) => wrk::main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coffer-loadgen: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
