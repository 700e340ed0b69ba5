//! Starts the real `coffer` binary on 127.0.0.1:0 with a temporary data directory and builds
//! aws-sdk-secretsmanager clients for it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Region};

pub struct Server {
    pub child: Option<Child>,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub stdout_lines: Vec<String>,
    /// The last [`LOG_LINES`] lines the server wrote to stderr (its log).
    log: Arc<Mutex<VecDeque<String>>>,
}

/// Lines of the server's log kept for a failing test to print.
const LOG_LINES: usize = 200;

pub fn coffer_bin() -> &'static str {
    env!("CARGO_BIN_EXE_coffer")
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let mut s = Server::start_in(&dir, args).expect("server starts");
        s._tmp = Some(tmp);
        s
    }

    /// Starts on an explicit data directory; `Err` carries stderr when the process exits.
    pub fn start_in(dir: &Path, args: &[&str]) -> Result<Server, String> {
        let mut child = Command::new(coffer_bin())
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn coffer");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = Vec::new();
        let mut endpoint = None;
        let mut stdout = BufReader::new(stdout);
        for line in stdout.by_ref().lines() {
            let Ok(line) = line else { break };
            if let Some(e) = line.strip_prefix("listening on ") {
                endpoint = Some(e.trim().to_string());
                lines.push(line);
                break;
            }
            lines.push(line);
        }
        let Some(endpoint) = endpoint else {
            let out = child.wait_with_output().expect("wait");
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        };
        // Both pipes are read to the end for as long as the server runs: a pipe nobody reads
        // fills up (64 KiB), and then every server thread that logs blocks on its write.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES)));
        let stderr = child.stderr.take().expect("stderr");
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                if kept.len() == LOG_LINES {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        let creds = std::fs::read_to_string(dir.join("aws/credentials")).expect("credentials file");
        let field = |name: &str| {
            creds
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} = ")))
                .expect("credentials field")
                .to_string()
        };
        Ok(Server {
            access_key: field("aws_access_key_id"),
            secret_key: field("aws_secret_access_key"),
            child: Some(child),
            data_dir: dir.to_path_buf(),
            _tmp: None,
            endpoint,
            stdout_lines: lines,
            log,
        })
    }

    /// The last lines of the server's log, for a failing test's message.
    pub fn log_tail(&self) -> String {
        let kept = self.log.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().map(|l| format!("{l}\n")).collect()
    }

    pub fn client(&self, region: &str) -> Client {
        self.client_with(region, &self.access_key, &self.secret_key)
    }

    /// A client over HTTPS that trusts the CA in `ca_pem` (and nothing else).
    pub fn https_client(&self, region: &str, ca_pem: &[u8]) -> Client {
        use aws_smithy_http_client::tls;
        let trust = tls::TrustStore::empty().with_pem_certificate(ca_pem.to_vec());
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .tls_context(
                tls::TlsContext::builder()
                    .with_trust_store(trust)
                    .build()
                    .expect("a TLS context"),
            )
            .build_https();
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::from_keys(
                &self.access_key,
                &self.secret_key,
                None,
            ))
            .http_client(http)
            .build();
        Client::from_conf(config)
    }

    pub fn client_with(&self, region: &str, access_key: &str, secret_key: &str) -> Client {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::from_keys(access_key, secret_key, None))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        Client::from_conf(config)
    }

    /// Sends SIGTERM and waits; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "coffer did not stop within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The AWS error code and message of a failed SDK call.
pub fn error_of<E, R>(err: aws_sdk_secretsmanager::error::SdkError<E, R>) -> (String, String)
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    let meta = err.as_service_error().map(|e| {
        (
            e.code().unwrap_or_default().to_string(),
            e.message().unwrap_or_default().to_string(),
        )
    });
    meta.unwrap_or_else(|| panic!("expected a service error, got {err:?}"))
}

/// The seeds a property test runs: by default `cases` seeds from `first`, then the
/// `regressions` not among them. `COFFER_PROPERTY_SEED=<seed>` reruns one case instead, and
/// `COFFER_PROPERTY_CASES=<n>` runs n cases from there (for exploring beyond the fixed set).
pub fn property_seeds(first: u64, cases: u64, regressions: &[u64]) -> Vec<u64> {
    let env = |name: &str| {
        std::env::var(name).ok().map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{name} is a number"))
        })
    };
    let chosen = env("COFFER_PROPERTY_SEED");
    let count = env("COFFER_PROPERTY_CASES").unwrap_or(if chosen.is_some() { 1 } else { cases });
    let start = chosen.unwrap_or(first);
    let mut seeds: Vec<u64> = (start..start + count).collect();
    if chosen.is_none() {
        for seed in regressions {
            if !seeds.contains(seed) {
                seeds.push(*seed);
            }
        }
    }
    seeds
}
