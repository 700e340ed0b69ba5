//! `coffer`: the binary. `coffer serve` opens (or initialises) a data directory, hosts every
//! configured Region behind one endpoint, and shuts down gracefully on SIGTERM/SIGINT.

mod account;
mod audit_cmd;
mod backup;
mod config;
mod data_dir;
mod policy_cmd;
mod region_cmd;
mod root_keys;
mod tls_auto;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand};
use coffer_core::error::Chain;

#[derive(Parser)]
#[command(
    name = "coffer",
    version,
    about = "A self-hosted AWS Secrets Manager, centred on replicating secrets across Regions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the AWS Secrets Manager API for every configured Region.
    Serve(config::ServeArgs),
    /// Create or upgrade every configured store's schema (the embedded migrations), then exit.
    Migrate(config::ServeArgs),
    /// Write a consistent, encrypted backup of one Region (readable with keys/<region>.key).
    Backup {
        #[command(flatten)]
        settings: config::ServeArgs,
        /// The Region to back up.
        #[arg(long)]
        region: String,
        /// The file to create (it must not exist).
        #[arg(long)]
        output: std::path::PathBuf,
    },
    /// Load a backup into the Region's configured store, which must be empty (stop the nodes
    /// serving it first).
    Restore {
        #[command(flatten)]
        settings: config::ServeArgs,
        /// The Region to restore.
        #[arg(long)]
        region: String,
        /// The backup file.
        #[arg(long)]
        input: std::path::PathBuf,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Manage the deployment's accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Re-wrap a Region's KMS keys under a new root key, while the server runs (docs/keys.md).
    RotateRootKey {
        #[command(flatten)]
        settings: config::ServeArgs,
        /// The Region whose root key is rotated.
        #[arg(long)]
        region: String,
        /// Re-wrap what is still under an old key with the current one; no new key.
        #[arg(long)]
        rewrap_only: bool,
    },
    /// Region failover and failback, on a running node (docs/failover.md).
    Region {
        #[command(subcommand)]
        command: RegionCommand,
    },
    /// List or remove secrets' resource policies with local access to the data directory (not
    /// through the API): the way back from a policy that denies everyone. Stop the node first.
    ResourcePolicy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Print the replication public key of a Region (for other nodes' `[[peers]]`).
    PublicKey {
        #[arg(long, default_value = config::DEFAULT_DATA_DIR)]
        data_dir: std::path::PathBuf,
        #[arg(long)]
        region: String,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account with an administrator (user `admin`) and print its access key as an
    /// AWS CLI profile. Works while the server runs (it accepts the key at once).
    Create {
        /// Data directory of the deployment (its IAM store and keys/deployment.key).
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
        /// The server's config file, when its IAM store is in PostgreSQL (`iam_store`).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// The new account's id (12 digits; random when omitted).
        #[arg(long)]
        account_id: Option<String>,
    },
}

#[derive(Subcommand)]
enum RegionCommand {
    /// Promote every replica in REGION whose primary is in FROM (as StopReplicationToReplica
    /// does for one), even while FROM is unreachable; prints the report, including the writes
    /// FROM is known to have had that never arrived. Running it again resumes or reports again.
    Failover {
        /// The Region whose replicas become primaries (served by the node at --endpoint).
        #[arg(long)]
        region: String,
        /// The primary Region that is lost.
        #[arg(long)]
        from: String,
        /// The URL of the node that hosts REGION, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        endpoint: String,
    },
    /// After a failover of REGION from TO, once TO is reachable: list what TO changed that
    /// REGION's promoted secrets do not have (--dry-run), or make TO's copies replicas of
    /// them (--mode overwrite), or give TO its primaries back with REGION's latest values
    /// (--mode swap-roles). Prints the report, diverged writes included.
    Failback {
        /// The Region that was failed over (served by the node at --endpoint).
        #[arg(long)]
        region: String,
        /// The old primary Region.
        #[arg(long)]
        to: String,
        #[arg(long)]
        endpoint: String,
        /// Only list the diverged writes; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// `overwrite` or `swap-roles` (required unless --dry-run).
        #[arg(long, value_parser = ["overwrite", "swap-roles"])]
        mode: Option<String>,
    },
    /// The replication point of every link into REGION: per primary Region, seconds since its
    /// newest state was applied and how many secrets lag behind what it announced.
    Point {
        #[arg(long)]
        region: String,
        #[arg(long)]
        endpoint: String,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print every secret that has a resource policy: `REGION ARN POLICY` per line.
    List {
        #[command(flatten)]
        settings: config::ServeArgs,
        /// Only this Region (default: every Region the node serves).
        #[arg(long)]
        region: Option<String>,
    },
    /// Remove a secret's resource policy (recorded in the audit log as DeleteResourcePolicy by
    /// the operator); replicas follow.
    Remove {
        #[command(flatten)]
        settings: config::ServeArgs,
        /// The Region of the secret (its primary's).
        #[arg(long)]
        region: String,
        /// The secret's name or ARN.
        #[arg(long)]
        secret_id: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check an audit log's hash chain: exit 0 when intact, 1 naming the first altered,
    /// removed or reordered record.
    Verify { file: std::path::PathBuf },
}

/// mimalloc instead of glibc's malloc: the request path allocates many small, short-lived
/// buffers (headers, JSON, the audit record); see docs/benchmarks.md for the measurement.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COFFER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and CI output stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Command::Audit {
        command: AuditCommand::Verify { file },
    } = &cli.command
    {
        return audit_cmd::verify(file);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("coffer: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Migrate(args) => runtime.block_on(migrate(args)),
        Command::Backup {
            settings,
            region,
            output,
        } => runtime.block_on(async {
            let settings = config::Settings::resolve(settings)?;
            let n = backup::backup(&settings, &region, &output).await?;
            let noun = if n == 1 { "secret" } else { "secrets" };
            println!("backed up {n} {noun} of {region} to {}", output.display());
            Ok(())
        }),
        Command::Restore {
            settings,
            region,
            input,
        } => runtime.block_on(async {
            let settings = config::Settings::resolve(settings)?;
            let n = backup::restore(&settings, &region, &input).await?;
            println!("restored {n} secrets of {region} from {}", input.display());
            Ok(())
        }),
        Command::Audit { .. } => Ok(()),
        Command::RotateRootKey {
            settings,
            region,
            rewrap_only,
        } => runtime.block_on(async {
            let settings = config::Settings::resolve(settings)?;
            println!(
                "{}",
                root_keys::rotate(&settings, &region, rewrap_only).await?
            );
            Ok(())
        }),
        Command::Account {
            command:
                AccountCommand::Create {
                    data_dir,
                    config,
                    account_id,
                },
        } => runtime.block_on(account::create(data_dir, config, account_id)),
        Command::Region { command } => runtime.block_on(async {
            let (endpoint, region, operation, body) = match command {
                RegionCommand::Failover {
                    region,
                    from,
                    endpoint,
                } => (
                    endpoint,
                    region,
                    "FailoverRegion",
                    serde_json::json!({ "FromRegion": from }),
                ),
                RegionCommand::Failback {
                    region,
                    to,
                    endpoint,
                    dry_run,
                    mode,
                } => {
                    if mode.is_none() && !dry_run {
                        anyhow::bail!("failback needs --mode overwrite or --mode swap-roles (or --dry-run to see the diverged writes first)");
                    }
                    let mode = mode.map(|m| if m == "overwrite" { "Overwrite" } else { "SwapRoles" });
                    (
                        endpoint,
                        region,
                        "FailbackRegion",
                        serde_json::json!({ "ToRegion": to, "Mode": mode, "DryRun": dry_run }),
                    )
                }
                RegionCommand::Point { region, endpoint } => (
                    endpoint,
                    region,
                    "GetReplicationPoint",
                    serde_json::json!({}),
                ),
            };
            let answer = region_cmd::call(&endpoint, &region, operation, &body).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&answer).expect("JSON prints")
            );
            Ok(())
        }),
        Command::ResourcePolicy { command } => runtime.block_on(async {
            let output = match command {
                PolicyCommand::List { settings, region } => {
                    policy_cmd::list(&config::Settings::resolve(settings)?, region).await?
                }
                PolicyCommand::Remove {
                    settings,
                    region,
                    secret_id,
                } => {
                    policy_cmd::remove(&config::Settings::resolve(settings)?, &region, &secret_id)
                        .await?
                }
            };
            println!("{output}");
            Ok(())
        }),
        Command::PublicKey { data_dir, region } => {
            if coffer_core::model::partition_of(&region).is_none() {
                Err(anyhow!("'{region}' is not an AWS Region"))
            } else {
                data_dir::public_key(&data_dir, &region).map(|k| println!("{k}"))
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coffer: {}", shown(&e));
            ExitCode::from(2)
        }
    }
}

/// What a failed command prints: the message and its causes, each once, on one line.
fn shown(e: &anyhow::Error) -> String {
    Chain(e.as_ref()).to_string()
}

async fn serve(args: config::ServeArgs) -> anyhow::Result<()> {
    let settings = config::Settings::resolve(args)?;
    let shutdown = shutdown_signal()?;
    let mut limits = settings.limits.clone();
    let fd_limit = coffer_api::edge::raise_fd_limit();
    limits.max_connections =
        coffer_api::edge::effective_max_connections(limits.max_connections, fd_limit);
    tracing::info!(
        open_files = fd_limit.unwrap_or_default(),
        max_connections = limits.max_connections,
        header_read_timeout_secs = limits.header_read_timeout.as_secs(),
        body_read_timeout_secs = limits.body_read_timeout.as_secs(),
        idle_timeout_secs = limits.idle_timeout.as_secs(),
        request_timeout_secs = limits.request_timeout.as_secs(),
        max_header_bytes = limits.max_header_bytes,
        max_body_bytes = limits.max_body_bytes,
        "Connection limits"
    );
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let mut settings = settings;
    let (handshake, scheme) = match settings.tls.clone() {
        config::Tls::Off => {
            peer_tls(settings.peer_ca_file.as_deref(), None)?;
            (coffer_api::edge::plaintext(), "http")
        }
        config::Tls::Files { cert, key } => (
            tls_handshake(cert, key, settings.peer_ca_file.as_deref())?,
            "https",
        ),
        config::Tls::Auto { names } => {
            data_dir::create_private_dir(&settings.data_dir)?;
            let names = tls_auto::names(addr.ip(), &names);
            let made = tls_auto::ensure(&settings.data_dir.join("tls"), &names)?;
            settings.profile_ca_bundle = Some(made.ca_file.clone());
            if settings.peer_ca_file.is_none() {
                settings.peer_ca_file = Some(made.ca_file.clone());
            }
            let peer_ca = settings.peer_ca_file.clone();
            (
                tls_handshake(made.cert_file, made.key_file, peer_ca.as_deref())?,
                "https",
            )
        }
    };
    let endpoint = format!("{scheme}://{addr}");
    let node = data_dir::open(&settings, &endpoint).await?;
    let audit = audit_cmd::open(&settings)?;
    println!(
        "export AWS_SHARED_CREDENTIALS_FILE={} AWS_CONFIG_FILE={}",
        node.credentials_file.display(),
        node.config_file.display()
    );
    if let Some(ca) = &settings.profile_ca_bundle {
        // The profile above names the CA (ca_bundle) for the AWS CLI and boto3; these are for
        // every other client and for running without the profile.
        let ca = ca.display();
        println!("export AWS_CA_BUNDLE={ca}  # AWS CLI, boto3 and the SDKs that read it");
        println!("export NODE_EXTRA_CA_CERTS={ca}  # AWS SDK for JavaScript (Node.js)");
        println!(
            "export SSL_CERT_FILE={ca}  # OpenSSL-based clients (curl, Go, Ruby, Rust native-tls)"
        );
    }
    println!("listening on {endpoint}");
    tracing::info!(
        endpoint,
        account = %node.account_id,
        regions = %settings.regions.join(","),
        data_dir = %settings.data_dir.display(),
        "Coffer is ready"
    );

    let mut deployment = node.deployment;
    deployment.audit = Some(audit);
    deployment.limits = limits;
    deployment.console = coffer_api::ConsoleSettings {
        enabled: settings.console,
        public: settings.console_public,
        idle_timeout: Duration::from_secs(settings.console_idle_timeout_secs),
        sessions_file: Some(settings.data_dir.join("console-sessions.json")),
        max_sessions_per_principal: settings.console_max_sessions_per_principal,
        sign_in_per_address_per_minute: settings.console_sign_in_per_address_per_minute,
        sign_in_failures_per_key_per_minute: settings.console_sign_in_failures_per_key_per_minute,
        default_region: settings.regions.first().cloned(),
    };
    let deployment = Arc::new(deployment);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let purge = {
        let deployment = deployment.clone();
        let stop = stop_rx.clone();
        deployment
            .workers
            .clone()
            .spawn("purge", stop_rx.clone(), move || {
                purge_loop(deployment.clone(), stop.clone())
            })
    };
    // A Region failover this node was killed in the middle of finishes now (docs/failover.md).
    for region in deployment.regions.values().cloned() {
        tokio::spawn(async move {
            if let Err(e) = coffer_core::failover::resume(&region).await {
                tracing::error!(region = %region.region, error = %Chain(&e), "An unfinished Region failover could not be resumed; run `coffer region failover` again");
            }
        });
    }
    let replication = {
        let topology = deployment.topology.clone();
        let stop = stop_rx.clone();
        deployment.workers.spawn("replication", stop_rx, move || {
            coffer_replication::worker::run(topology.clone(), stop.clone())
        })
    };
    coffer_api::serve_with(listener, deployment.clone(), handshake, shutdown)
        .await
        .context("server failed")?;
    let _ = stop_tx.send(true);
    let _ = purge.await;
    let _ = replication.await;
    for region in deployment.regions.values() {
        region.store.close().await;
    }
    node.iam.close().await;
    tracing::info!("Coffer stopped; stores closed");
    Ok(())
}

/// The TLS handshake for a certificate and key from files, reloaded when they change or on
/// SIGHUP; replication to `https://` peers trusts `peer_ca_file` and this certificate.
fn tls_handshake(
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    peer_ca_file: Option<&std::path::Path>,
) -> anyhow::Result<coffer_api::edge::Handshake> {
    let certificate = coffer_api::tls::Certificate::open(cert, key)?;
    certificate.watch();
    let own = certificate.clone();
    peer_tls(
        peer_ca_file,
        Some(std::sync::Arc::new(move || Some(own.current_der()))),
    )?;
    let config = coffer_api::tls::server_config(certificate)?;
    Ok(coffer_api::tls::handshake(config))
}

/// Replication to `https://` peers: it trusts `peer_ca_file` and this node's own certificate.
fn peer_tls(
    peer_ca_file: Option<&std::path::Path>,
    own: Option<coffer_replication::tls::OwnCertificate>,
) -> anyhow::Result<()> {
    let ca = match peer_ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read peer_ca_file {}", path.display()))?,
        ),
        None => None,
    };
    coffer_replication::tls::configure(ca.as_deref(), own)?;
    Ok(())
}

/// `coffer migrate`: opens every configured store with migrations on, then closes them.
async fn migrate(args: config::ServeArgs) -> anyhow::Result<()> {
    let settings = config::Settings::resolve(args)?;
    data_dir::create_private_dir(&settings.data_dir)?;
    data_dir::create_private_dir(&settings.data_dir.join("regions"))?;
    let dir = settings.data_dir.clone();
    let (iam, _) = data_dir::open_iam_store(&settings, &dir, true).await?;
    iam.close().await;
    for region in &settings.regions {
        data_dir::open_region_store(&settings, &dir, region, true)
            .await?
            .close()
            .await;
        println!("{region}: store is at the current format");
    }
    println!("iam: store is at the current format");
    Ok(())
}

/// How long a node holds the purge lease of a Region: longer than one pass plus the pause, so
/// the holder renews it; a dead holder's lease runs out after this and another node takes over.
const PURGE_LEASE_MS: i64 = 150_000;

/// Removes secrets whose recovery window has passed (and KMS keys whose waiting period has), and
/// rotates KMS keys whose automatic rotation is due, once a minute and at start. With several
/// nodes on one database, only the node holding the Region's `purge` lease runs it (each
/// deletion is also conditional on the row it read, so even two runs could not purge twice).
async fn purge_loop(
    deployment: Arc<coffer_api::Deployment>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let node = deployment.topology.node_id.clone();
    loop {
        for region in deployment.regions.values() {
            match region
                .store
                .try_lease("purge", &node, region.now_ms(), PURGE_LEASE_MS)
                .await
            {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(region = %region.region, error = %Chain(&e), "Cannot take the purge lease; will retry");
                    continue;
                }
            }
            if let Err(e) = coffer_core::purge::purge_due(region).await {
                tracing::warn!(region = %region.region, error = %Chain(&e), "Purge of deleted secrets failed; will retry");
            }
            if let Err(e) =
                coffer_core::key_rotation::rotate_due_keys(region, &*deployment.topology).await
            {
                tracing::warn!(region = %region.region, error = %Chain(&e), "Automatic rotation of KMS keys failed; will retry");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Installs the SIGTERM/SIGINT handlers now (before anything announces readiness, so a signal
/// sent right after `listening on` is never fatal) and resolves when one arrives.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("Shutting down: finishing in-flight requests");
    })
}
