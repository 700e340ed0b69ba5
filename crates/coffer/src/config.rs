//! `coffer serve` settings: command-line flags over an optional TOML file over defaults.

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7780";
pub const DEFAULT_DATA_DIR: &str = "./coffer-data";
pub const DEFAULT_REGIONS: &[&str] = &["us-east-1", "us-east-2", "us-west-2", "eu-west-1"];

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen one is printed).
    #[arg(long)]
    pub listen: Option<String>,
    /// Directory holding the stores, root keys and generated AWS config files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Comma-separated AWS Regions this node hosts.
    #[arg(long, value_delimiter = ',')]
    pub regions: Option<Vec<String>>,
    /// Account id for a new data directory (random 12 digits when omitted).
    #[arg(long)]
    pub account_id: Option<String>,
    /// TOML file with the same settings and more (`[[peers]]`, the stores, the audit log, the
    /// console, `[[rotators]]`); every key: docs/configuration.md. An unknown key is refused.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Seconds a replica may stay unreachable before it shows `Failed` (delivery goes on).
    #[arg(long)]
    pub replication_failure_timeout_secs: Option<u64>,
    /// `auto`: serve HTTPS with a local CA and a certificate made in the data directory;
    /// `on`: HTTPS with --tls-cert and --tls-key (implied by them); `off`: plain HTTP (the
    /// default).
    #[arg(long)]
    pub tls: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (reloaded when the file changes or on SIGHUP).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// With --tls auto: more names (DNS names or addresses) for the certificate.
    #[arg(long, value_delimiter = ',')]
    pub tls_names: Option<Vec<String>>,
}

/// A rotation function: `name` is the function name in `RotationLambdaARN`
/// (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`); kind `http` POSTs each step to `url`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RotatorConfig {
    pub name: String,
    pub kind: String,
    pub url: String,
}

/// A Region served by another node: where to reach it and the public key its messages are
/// sealed with (`coffer public-key` prints it on that node).
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub region: String,
    pub url: String,
    pub public_key: String,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    regions: Option<Vec<String>>,
    account_id: Option<String>,
    replication_failure_timeout_secs: Option<u64>,
    /// The largest replication message a node reads, in bytes (default 64 MiB); a larger one
    /// is refused before its body is read.
    replication_max_message_bytes: Option<u64>,
    admin_access_key_id: Option<String>,
    admin_secret_access_key: Option<String>,
    #[serde(default)]
    peers: Vec<PeerConfig>,
    #[serde(default)]
    rotators: Vec<RotatorConfig>,
    console: Option<bool>,
    console_public: Option<bool>,
    console_idle_timeout_secs: Option<u64>,
    console_max_sessions_per_principal: Option<u64>,
    console_sign_in_per_address_per_minute: Option<u32>,
    console_sign_in_failures_per_key_per_minute: Option<u32>,
    /// Where every Region of this node and the IAM store live unless overridden:
    /// `"sqlite"` (the default: files in the data directory) or a `postgres://` URL.
    store: Option<String>,
    /// The IAM store (accounts, users, access keys); default: `store`.
    iam_store: Option<String>,
    /// Per-Region overrides of `store`: `"us-east-1" = "postgres://..."`.
    #[serde(default)]
    region_stores: std::collections::BTreeMap<String, String>,
    /// Run the embedded migrations when a PostgreSQL store is opened (default: yes). With
    /// `false`, `coffer migrate --config FILE` does it and `serve` refuses an older schema.
    migrate_on_start: Option<bool>,
    /// The audit log file (default `<data_dir>/audit.log`); see docs/audit.md.
    audit_log: Option<PathBuf>,
    /// `fdatasync` the audit log before answering (default: no, written to the file only).
    audit_fsync: Option<bool>,
    /// `"auto"`, `"on"` or `"off"` (see `--tls`).
    tls: Option<String>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    tls_names: Option<Vec<String>>,
    /// CIDRs of proxies whose X-Forwarded-For / X-Forwarded-Proto are believed.
    trusted_proxies: Option<Vec<String>>,
    /// PEM CA certificates trusted for `https://` peers (default: the CA of `--tls auto`, if
    /// any; a peer's certificate must chain to one of them).
    peer_ca_file: Option<PathBuf>,
    /// The connection edge's limits (docs/deploy.md, "Limits").
    header_read_timeout_secs: Option<u64>,
    body_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    max_connections: Option<u64>,
    max_header_bytes: Option<u64>,
    max_body_bytes: Option<u64>,
    /// The most bytes each SQLite Region's secret cache holds (default 64 MiB).
    cache_max_bytes: Option<u64>,
}

/// Where a store lives. `Debug` never shows the URL (it may carry a password).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// The embedded default: a file in the data directory.
    Sqlite,
    /// A PostgreSQL database; the store gets its own schema in it.
    Postgres(String),
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Sqlite => f.write_str("Sqlite"),
            StoreUrl::Postgres(_) => f.write_str("Postgres(<url>)"),
        }
    }
}

impl StoreUrl {
    fn parse(what: &str, value: &str) -> anyhow::Result<StoreUrl> {
        let value = value.trim();
        if value == "sqlite" {
            Ok(StoreUrl::Sqlite)
        } else if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            Ok(StoreUrl::Postgres(value.to_string()))
        } else {
            // Never echo the value: it may be a URL with a password.
            Err(anyhow!(
                "{what} must be \"sqlite\" or a postgres://user@host:port/database URL"
            ))
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub data_dir: PathBuf,
    pub regions: Vec<String>,
    pub account_id: Option<String>,
    pub replication_failure_timeout_secs: u64,
    pub replication_max_message_bytes: usize,
    pub peers: Vec<PeerConfig>,
    pub rotators: Vec<RotatorConfig>,
    /// The admin's access key for a *new* data directory (so several nodes of one deployment
    /// can share it); random when unset.
    pub admin_key: Option<(String, zeroize::Zeroizing<String>)>,
    /// Serve the web console at /console (default: yes).
    pub console: bool,
    /// Also serve the console when the listening address is not a loopback address.
    pub console_public: bool,
    /// A console session ends after this many seconds without a request.
    pub console_idle_timeout_secs: u64,
    pub console_max_sessions_per_principal: usize,
    pub console_sign_in_per_address_per_minute: u32,
    pub console_sign_in_failures_per_key_per_minute: u32,
    /// The store of each Region this node hosts (every Region of `regions` has an entry).
    pub region_stores: std::collections::BTreeMap<String, StoreUrl>,
    pub iam_store: StoreUrl,
    pub migrate_on_start: bool,
    /// `audit_log` from the config file; [`Settings::audit_log_path`] applies the default.
    pub audit_log: Option<PathBuf>,
    pub audit_fsync: bool,
    /// The connection edge's limits, as configured (the connection cap is bounded by the
    /// open-file limit at start).
    pub limits: coffer_api::edge::Limits,
    pub tls: Tls,
    pub peer_ca_file: Option<PathBuf>,
    /// The CA file the generated AWS CLI profile names as `ca_bundle` (set by `serve`).
    pub profile_ca_bundle: Option<PathBuf>,
    /// The bound of each SQLite Region's secret cache, in (estimated) bytes.
    pub cache_max_bytes: u64,
}

/// How `coffer serve` speaks on its listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    Off,
    /// A certificate and key from files (`--tls-cert`, `--tls-key`).
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// A local CA and certificate made in the data directory, for these extra names.
    Auto {
        names: Vec<String>,
    },
}

impl Tls {
    fn resolve(args: &ServeArgs, file: &FileConfig) -> anyhow::Result<Tls> {
        let mode = args.tls.clone().or(file.tls.clone());
        let cert = args.tls_cert.clone().or(file.tls_cert_file.clone());
        let key = args.tls_key.clone().or(file.tls_key_file.clone());
        let names = args
            .tls_names
            .clone()
            .or(file.tls_names.clone())
            .unwrap_or_default();
        match (mode.as_deref(), cert, key) {
            (Some("auto"), None, None) => Ok(Tls::Auto { names }),
            (Some("auto"), _, _) => Err(anyhow!(
                "--tls auto makes its own certificate: leave out --tls-cert and --tls-key"
            )),
            (None | Some("off"), None, None) => Ok(Tls::Off),
            (Some("off"), _, _) => Err(anyhow!(
                "--tls off and --tls-cert/--tls-key contradict each other"
            )),
            (None | Some("on"), Some(cert), Some(key)) => Ok(Tls::Files { cert, key }),
            (None | Some("on"), _, _) => Err(anyhow!(
                "--tls-cert and --tls-key go together (tls_cert_file and tls_key_file in the config file)"
            )),
            (Some(other), _, _) => Err(anyhow!("--tls must be auto, on or off, not '{other}'")),
        }
    }
}

impl Settings {
    pub fn store_of(&self, region: &str) -> &StoreUrl {
        self.region_stores.get(region).unwrap_or(&StoreUrl::Sqlite)
    }

    /// Where every API call is recorded: `audit_log`, else `<data_dir>/audit.log`.
    pub fn audit_log_path(&self) -> PathBuf {
        self.audit_log
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.log"))
    }
}

pub const DEFAULT_REPLICATION_FAILURE_TIMEOUT_SECS: u64 = 30;

impl Settings {
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Settings> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("config file {} is invalid", path.display()))?
            }
            None => FileConfig::default(),
        };
        let mut limits = limits(&file)?;
        limits.trusted_proxies = file
            .trusted_proxies
            .iter()
            .flatten()
            .map(|c| {
                let c = c.trim();
                c.parse::<ipnet::IpNet>()
                    .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| anyhow!("trusted_proxies: '{c}' is not a CIDR such as 10.0.0.0/8"))
            })
            .collect::<Result<_, _>>()?;
        let tls = Tls::resolve(&args, &file)?;
        let peer_ca_file = file.peer_ca_file.clone();
        let regions: Vec<String> = args
            .regions
            .or(file.regions)
            .unwrap_or_else(|| DEFAULT_REGIONS.iter().map(|r| r.to_string()).collect())
            .into_iter()
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .collect();
        if regions.is_empty() {
            return Err(anyhow!(
                "at least one Region must be configured (--regions)"
            ));
        }
        for r in &regions {
            if coffer_core::model::partition_of(r).is_none() {
                bail!("'{r}' is not an AWS Region; use names such as us-east-1 or eu-west-1");
            }
        }
        let account_id = args.account_id.or(file.account_id);
        if let Some(id) = &account_id
            && (id.len() != 12 || !id.chars().all(|c| c.is_ascii_digit()))
        {
            bail!("--account-id must be 12 digits, not '{id}'");
        }
        let mut dedup = Vec::new();
        for r in regions {
            if !dedup.contains(&r) {
                dedup.push(r);
            }
        }
        for p in &file.peers {
            if coffer_core::model::partition_of(&p.region).is_none() {
                bail!("peer Region '{}' is not an AWS Region", p.region);
            }
            if dedup.contains(&p.region) {
                bail!(
                    "Region {} is both served by this node and listed as a peer",
                    p.region
                );
            }
        }
        let default_store = match &file.store {
            Some(v) => StoreUrl::parse("store", v)?,
            None => StoreUrl::Sqlite,
        };
        let iam_store = match &file.iam_store {
            Some(v) => StoreUrl::parse("iam_store", v)?,
            None => default_store.clone(),
        };
        let mut region_stores = std::collections::BTreeMap::new();
        for (region, value) in &file.region_stores {
            if !dedup.contains(region) {
                bail!(
                    "[region_stores] names {region}, which this node does not serve (regions = [...])"
                );
            }
            region_stores.insert(
                region.clone(),
                StoreUrl::parse(&format!("region_stores.{region}"), value)?,
            );
        }
        for region in &dedup {
            region_stores
                .entry(region.clone())
                .or_insert_with(|| default_store.clone());
        }
        let console_idle_timeout_secs = file.console_idle_timeout_secs.unwrap_or(15 * 60);
        if console_idle_timeout_secs == 0 {
            return Err(anyhow!("console_idle_timeout_secs must be at least 1"));
        }
        Ok(Settings {
            limits,
            tls,
            peer_ca_file,
            profile_ca_bundle: None,
            region_stores,
            iam_store,
            migrate_on_start: file.migrate_on_start.unwrap_or(true),
            audit_log: file.audit_log,
            audit_fsync: file.audit_fsync.unwrap_or(false),
            console: file.console.unwrap_or(true),
            console_public: file.console_public.unwrap_or(false),
            console_idle_timeout_secs,
            console_max_sessions_per_principal: match file.console_max_sessions_per_principal {
                None => 10,
                Some(n) if (1..=10_000).contains(&n) => n as usize,
                Some(_) => {
                    return Err(anyhow!(
                        "console_max_sessions_per_principal must be between 1 and 10000"
                    ));
                }
            },
            console_sign_in_per_address_per_minute: per_minute(
                "console_sign_in_per_address_per_minute",
                file.console_sign_in_per_address_per_minute,
                30,
            )?,
            console_sign_in_failures_per_key_per_minute: per_minute(
                "console_sign_in_failures_per_key_per_minute",
                file.console_sign_in_failures_per_key_per_minute,
                10,
            )?,
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            regions: dedup,
            account_id,
            replication_failure_timeout_secs: args
                .replication_failure_timeout_secs
                .or(file.replication_failure_timeout_secs)
                .unwrap_or(DEFAULT_REPLICATION_FAILURE_TIMEOUT_SECS),
            cache_max_bytes: match file.cache_max_bytes {
                None => coffer_store::DEFAULT_CACHE_MAX_BYTES,
                Some(n) if (1 << 20..=1 << 40).contains(&n) => n,
                Some(_) => {
                    return Err(anyhow!(
                        "cache_max_bytes must be between 1048576 (1 MiB) and 1099511627776 (1 TiB)"
                    ));
                }
            },
            replication_max_message_bytes: match file.replication_max_message_bytes {
                None => coffer_replication::topology::DEFAULT_MAX_MESSAGE_BYTES,
                Some(n) if (1024..=1 << 30).contains(&n) => n as usize,
                Some(_) => {
                    return Err(anyhow!(
                        "replication_max_message_bytes must be between 1024 and 1073741824"
                    ));
                }
            },
            peers: file.peers,
            rotators: check_rotators(file.rotators)?,
            admin_key: admin_key(
                std::env::var("COFFER_ADMIN_ACCESS_KEY_ID")
                    .ok()
                    .or(file.admin_access_key_id),
                std::env::var("COFFER_ADMIN_SECRET_ACCESS_KEY")
                    .ok()
                    .or(file.admin_secret_access_key),
            )?,
        })
    }
}

/// A per-minute rate of the console's sign-in throttle: 1 to 1,000,000.
fn per_minute(key: &str, value: Option<u32>, default: u32) -> anyhow::Result<u32> {
    match value {
        None => Ok(default),
        Some(n) if (1..=1_000_000).contains(&n) => Ok(n),
        Some(_) => Err(anyhow!("{key} must be between 1 and 1000000")),
    }
}

/// The edge's limits from the config file, each within a sane range.
fn limits(file: &FileConfig) -> anyhow::Result<coffer_api::edge::Limits> {
    use std::time::Duration;
    let d = coffer_api::edge::Limits::default();
    let within = |key: &str, value: Option<u64>, default: u64, min: u64, max: u64| match value {
        None => Ok(default),
        Some(v) if (min..=max).contains(&v) => Ok(v),
        Some(_) => Err(anyhow!("{key} must be between {min} and {max}")),
    };
    let secs = |key: &str, value: Option<u64>, default: Duration| {
        within(key, value, default.as_secs(), 1, 86_400).map(Duration::from_secs)
    };
    Ok(coffer_api::edge::Limits {
        header_read_timeout: secs(
            "header_read_timeout_secs",
            file.header_read_timeout_secs,
            d.header_read_timeout,
        )?,
        body_read_timeout: secs(
            "body_read_timeout_secs",
            file.body_read_timeout_secs,
            d.body_read_timeout,
        )?,
        idle_timeout: secs("idle_timeout_secs", file.idle_timeout_secs, d.idle_timeout)?,
        request_timeout: secs(
            "request_timeout_secs",
            file.request_timeout_secs,
            d.request_timeout,
        )?,
        max_connections: within(
            "max_connections",
            file.max_connections,
            d.max_connections as u64,
            16,
            1_000_000,
        )? as usize,
        max_header_bytes: within(
            "max_header_bytes",
            file.max_header_bytes,
            d.max_header_bytes as u64,
            8192,
            1 << 20,
        )? as usize,
        max_body_bytes: within(
            "max_body_bytes",
            file.max_body_bytes,
            d.max_body_bytes as u64,
            // A 65,536-byte binary secret is 87,384 bytes of base64.
            131_072,
            64 << 20,
        )? as usize,
        trusted_proxies: Vec::new(),
    })
}

fn admin_key(
    id: Option<String>,
    secret: Option<String>,
) -> anyhow::Result<Option<(String, zeroize::Zeroizing<String>)>> {
    match (id, secret) {
        (None, None) => Ok(None),
        (Some(id), Some(secret)) => {
            if id.len() < 16 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(anyhow!(
                    "admin_access_key_id must be at least 16 letters and digits"
                ));
            }
            if secret.len() < 20 {
                return Err(anyhow!(
                    "admin_secret_access_key must be at least 20 characters"
                ));
            }
            Ok(Some((id, zeroize::Zeroizing::new(secret))))
        }
        _ => Err(anyhow!(
            "admin_access_key_id and admin_secret_access_key go together (config file or COFFER_ADMIN_ACCESS_KEY_ID / COFFER_ADMIN_SECRET_ACCESS_KEY)"
        )),
    }
}

fn check_rotators(rotators: Vec<RotatorConfig>) -> anyhow::Result<Vec<RotatorConfig>> {
    for r in &rotators {
        if r.kind != "http" {
            bail!(
                "rotator {}: kind '{}' is not supported (use kind = \"http\")",
                r.name,
                r.kind
            );
        }
        if !r.url.starts_with("http://") {
            bail!("rotator {}: url must start with http://", r.name);
        }
        if r.name.is_empty() || r.name.contains(':') {
            bail!("rotator '{}': name must be a Lambda function name", r.name);
        }
    }
    Ok(rotators)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings of `toml`, or the message `coffer` prints.
    fn resolve(toml: &str) -> Result<Settings, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, toml).unwrap();
        Settings::resolve(ServeArgs {
            listen: None,
            data_dir: None,
            regions: None,
            account_id: None,
            config: Some(path),
            replication_failure_timeout_secs: None,
            tls: None,
            tls_cert: None,
            tls_key: None,
            tls_names: None,
        })
        .map_err(|e| crate::shown(&e))
    }

    #[test]
    fn sqlite_is_the_default_store() {
        let s = resolve("regions = [\"us-east-1\"]").unwrap();
        assert_eq!(s.store_of("us-east-1"), &StoreUrl::Sqlite);
        assert_eq!(s.iam_store, StoreUrl::Sqlite);
        assert!(s.migrate_on_start);
    }

    #[test]
    fn store_applies_to_every_region_and_iam_unless_overridden() {
        let s = resolve(
            "regions = [\"us-east-1\", \"eu-west-1\"]\n\
             store = \"postgres://coffer:hunter2@db/coffer\"\n\
             migrate_on_start = false\n\
             [region_stores]\n\"eu-west-1\" = \"sqlite\"\n",
        )
        .unwrap();
        let pg = StoreUrl::Postgres("postgres://coffer:hunter2@db/coffer".into());
        assert_eq!(s.store_of("us-east-1"), &pg);
        assert_eq!(s.store_of("eu-west-1"), &StoreUrl::Sqlite);
        assert_eq!(s.iam_store, pg);
        assert!(!s.migrate_on_start);
        // The password never shows in Debug output.
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn bad_store_settings_are_refused_without_echoing_them() {
        let e = resolve("store = \"mysql://u:hunter2@h/d\"").unwrap_err();
        assert!(e.contains("postgres://") && !e.contains("hunter2"), "{e}");
        let e = resolve("regions = [\"us-east-1\"]\n[region_stores]\n\"eu-west-1\" = \"sqlite\"\n")
            .unwrap_err();
        assert!(
            e.contains("eu-west-1") && e.contains("does not serve"),
            "{e}"
        );
    }

    /// The field names serde knows for `T` (what `deny_unknown_fields` accepts), read from the
    /// `fields` list serde hands to `deserialize_struct`.
    fn field_names<'de, T: Deserialize<'de>>() -> Vec<&'static str> {
        struct Fields(Vec<&'static str>);
        #[derive(Debug)]
        struct Stop;
        impl std::fmt::Display for Stop {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("stop")
            }
        }
        impl std::error::Error for Stop {}
        impl serde::de::Error for Stop {
            fn custom<M: std::fmt::Display>(_: M) -> Self {
                Stop
            }
        }
        impl<'de> serde::Deserializer<'de> for &mut Fields {
            type Error = Stop;
            fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
                Err(Stop)
            }
            fn deserialize_struct<V: serde::de::Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Stop> {
                self.0.extend_from_slice(fields);
                Err(Stop)
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
                enum identifier ignored_any
            }
        }
        let mut fields = Fields(Vec::new());
        let _ = T::deserialize(&mut fields);
        assert!(!fields.0.is_empty(), "no fields found");
        fields.0
    }

    const DOC: &str = include_str!("../../../docs/configuration.md");

    /// The backticked names in the first column of the tables of the doc's section `heading`.
    fn documented(heading: &str) -> std::collections::BTreeSet<String> {
        let start = DOC
            .find(&format!("\n## {heading}\n"))
            .unwrap_or_else(|| panic!("docs/configuration.md has no section '{heading}'"));
        let section = &DOC[start + 1..];
        let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
        section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .map(|l| l.split('`').next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn docs_name_every_key_and_flag() {
        use std::collections::BTreeSet;
        // Config file keys: the struct's fields, and those of [[peers]] and [[rotators]].
        let mut keys: BTreeSet<String> = field_names::<FileConfig>()
            .into_iter()
            .map(String::from)
            .collect();
        for (table, fields) in [
            ("peers", field_names::<PeerConfig>()),
            ("rotators", field_names::<RotatorConfig>()),
        ] {
            assert!(keys.contains(table), "{table} is not a field of FileConfig");
            keys.extend(fields.iter().map(|f| format!("{table}.{f}")));
        }
        assert_eq!(
            documented("The config file"),
            keys,
            "docs/configuration.md's config file table (left) and FileConfig (right) differ"
        );

        // Flags: what clap accepts for `coffer serve`.
        let cmd = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
        let flags: BTreeSet<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long())
            .map(|l| format!("--{l}"))
            .collect();
        assert_eq!(
            documented("Command-line flags"),
            flags,
            "docs/configuration.md's flag table (left) and ServeArgs (right) differ"
        );

        // The complete example names every key (so it shows each one) and is accepted by
        // `coffer serve` as written: `deny_unknown_fields` refuses a key the struct lacks.
        let start = DOC
            .find("<!-- config-example -->\n```toml\n")
            .expect("the example");
        let example = &DOC[start..];
        let example = &example[example.find("```toml\n").unwrap() + 8..];
        let example = &example[..example.find("```").unwrap()];
        let table: toml::Table = toml::from_str(example).unwrap();
        let mut named: BTreeSet<String> = table.keys().cloned().collect();
        for list in ["peers", "rotators"] {
            for entry in table[list].as_array().unwrap() {
                named.extend(
                    entry
                        .as_table()
                        .unwrap()
                        .keys()
                        .map(|k| format!("{list}.{k}")),
                );
            }
        }
        assert_eq!(
            named, keys,
            "the example (left) does not show every key (right)"
        );
        let s = resolve(example).unwrap();
        assert_eq!(s.listen, "127.0.0.1:7781");
        assert_eq!(s.store_of("eu-west-1"), &StoreUrl::Sqlite);
        assert_eq!(s.peers.len(), 1);
        assert_eq!(s.rotators.len(), 1);
    }

    #[test]
    fn unknown_keys_fail_loudly() {
        // A misspelt key (here `listen` as `lisen`) stops the start and says which key.
        let e = resolve("lisen = \"0.0.0.0:7780\"\n").unwrap_err();
        assert!(e.contains("unknown field `lisen`"), "{e}");
        let e = resolve("[[peers]]\nregion = \"us-east-1\"\nurl = \"http://h\"\npublic_key = \"k\"\npublickey = \"k\"\n")
            .unwrap_err();
        assert!(e.contains("unknown field `publickey`"), "{e}");
        let e = resolve(
            "[[rotators]]\nname = \"f\"\nkind = \"http\"\nurl = \"http://h\"\nkinds = \"x\"\n",
        )
        .unwrap_err();
        assert!(e.contains("unknown field `kinds`"), "{e}");
    }
}
