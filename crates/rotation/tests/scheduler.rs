//! The rotation scheduler with controlled time: a `RegionService` over a real SQLite store whose
//! clock the test moves by hand, due runs claimed and run by the replication worker's
//! `drain_once` exactly as a node does, and a probe rotation function that records every step.
//!
//! The store stamps outbox rows with the *system* clock while the worker claims them with the
//! Region's clock, so the manual clock starts ahead of real time (at 01:30 UTC two days from now)
//! and only moves forward: a row enqueued "now" is always due.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use coffer_core::ops::{
    cancel_rotate_secret, create_secret, describe_secret, get_secret_value, rotate_secret,
};
use coffer_core::rotation::RotationRules;
use coffer_core::{Caller, Clock, ErrorCode, RegionService};
use coffer_kms::RootKey;
use coffer_replication::Topology;
use coffer_replication::metrics::Metrics;
use coffer_replication::transport::Transport;
use coffer_replication::worker::drain_once;
use coffer_rotation::password::PasswordRotator;
use coffer_rotation::{Event, Registry, Rotator, Runner, SecretsApi};
use coffer_store::{SqliteStore, Store};
use zeroize::Zeroizing;

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// The lease the worker takes on a row (`worker::LEASE_MS`).
const LEASE_MS: i64 = 30_000;

const CANNOT_INVOKE: &str = "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com.";
const NO_FUNCTION: &str = "No Lambda rotation function ARN is associated with this secret.";
const UNFINISHED: &str = "A previous rotation isn't complete. That rotation will be reattempted.";
const TOO_FREQUENT: &str = "The rotation schedule is too frequent: Secrets Manager rotates a secret at most every four hours.";
const BOTH_RULES: &str =
    "You can't specify both AutomaticallyAfterDays and ScheduleExpression in RotationRules.";

fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
}

// ---------------------------------------------------------------------------------------------
// Time.

struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn system_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

// ---------------------------------------------------------------------------------------------
// The probe: `coffer-password`'s steps, recorded, with failures and holds on demand.

#[derive(Default)]
struct Probe {
    calls: Mutex<Vec<(String, String, String)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Steps that fail while listed.
    failing: Mutex<Vec<String>>,
    /// A step that waits for `gate` to open; `held` counts the calls waiting there.
    hold: Mutex<Option<String>>,
    held: AtomicUsize,
    gate: Mutex<Option<tokio::sync::watch::Receiver<bool>>>,
}

impl Probe {
    /// Every step run for `arn` so far: (step, ClientRequestToken).
    fn steps(&self, arn: &str) -> Vec<(String, String)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(a, _, _)| a == arn)
            .map(|(_, s, t)| (s.clone(), t.clone()))
            .collect()
    }

    fn count(&self, arn: &str, step: &str) -> usize {
        self.steps(arn).iter().filter(|(s, _)| s == step).count()
    }

    fn fail(&self, step: &str) {
        self.failing.lock().unwrap().push(step.into());
    }

    fn heal(&self) {
        self.failing.lock().unwrap().clear();
    }

    /// Makes `step` wait until the returned sender sends `true`.
    fn hold_at(&self, step: &str) -> tokio::sync::watch::Sender<bool> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        *self.gate.lock().unwrap() = Some(rx);
        *self.hold.lock().unwrap() = Some(step.into());
        self.held.store(0, Ordering::SeqCst);
        tx
    }

    fn release(&self, tx: &tokio::sync::watch::Sender<bool>) {
        *self.hold.lock().unwrap() = None;
        let _ = tx.send(true);
    }
}

struct ProbeRotator(Arc<Probe>);

#[async_trait]
impl Rotator for ProbeRotator {
    async fn invoke(
        &self,
        api: &SecretsApi<'_>,
        event: &Event,
    ) -> Result<(), coffer_rotation::Error> {
        let probe = &self.0;
        probe.calls.lock().unwrap().push((
            event.secret_id.clone(),
            event.step.clone(),
            event.client_request_token.clone(),
        ));
        let now = probe.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        probe.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let result = async {
            let hold = probe.hold.lock().unwrap().clone();
            if hold.as_deref() == Some(event.step.as_str()) {
                let gate = probe.gate.lock().unwrap().clone();
                probe.held.fetch_add(1, Ordering::SeqCst);
                if let Some(mut gate) = gate {
                    let _ = gate.wait_for(|open| *open).await;
                }
            }
            if probe.failing.lock().unwrap().contains(&event.step) {
                return Err(format!("the probe fails {} on purpose", event.step).into());
            }
            PasswordRotator.invoke(api, event).await
        }
        .await;
        probe.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

// ---------------------------------------------------------------------------------------------
// One node of the Region: a RegionService over the store file, and the worker's view of it.

struct Node {
    region: Arc<RegionService>,
    topology: Arc<Topology>,
    transport: Arc<Transport>,
}

struct Harness {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    probe: Arc<Probe>,
    /// Midnight UTC of the test's first day; the clock starts at `day0 + 01:30`.
    day0: i64,
    /// A port nothing listens on, for an `http` rotator that cannot be reached.
    closed_port: u16,
    node: Node,
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let real = system_now_ms();
        let day0 = real - real.rem_euclid(DAY) + 2 * DAY;
        let clock = Arc::new(ManualClock(AtomicI64::new(day0 + HOUR + HOUR / 2)));
        let closed_port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let probe = Arc::new(Probe::default());
        let node = open_node(dir.path(), &clock, &probe, closed_port, "node-a", None).await;
        Harness {
            dir,
            clock,
            probe,
            day0,
            closed_port,
            node,
        }
    }

    /// Another node of the same Region: its own RegionService and node id over the same
    /// store (several nodes of a Region share one database; SQLite has one writer per file, so
    /// the nodes share the store's connections as they would share a PostgreSQL database).
    async fn other_node(&self, node_id: &str) -> Node {
        open_node(
            self.dir.path(),
            &self.clock,
            &self.probe,
            self.closed_port,
            node_id,
            Some(self.node.region.store.clone()),
        )
        .await
    }

    /// Stops this node (its store closed) and starts it again on the same files.
    async fn restart(&mut self, node_id: &str) {
        self.node.region.store.close().await;
        let fresh = open_node(
            self.dir.path(),
            &self.clock,
            &self.probe,
            self.closed_port,
            node_id,
            None,
        )
        .await;
        let old = std::mem::replace(&mut self.node, fresh);
        assert_eq!(
            Arc::strong_count(&old.region),
            1,
            "nothing may still use the stopped node"
        );
        drop(old);
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Moves the clock to `ms` (never backwards).
    fn set(&self, ms: i64) {
        assert!(ms >= self.now(), "time only moves forward");
        self.clock.0.store(ms, Ordering::SeqCst);
    }

    fn advance(&self, ms: i64) {
        self.set(self.now() + ms);
    }

    /// `day0` + `d` days + `h` hours.
    fn at(&self, d: i64, h: i64) -> i64 {
        self.day0 + d * DAY + h * HOUR
    }

    fn caller(&self) -> Caller {
        Caller::administrator(ACCOUNT, &format!("arn:aws:iam::{ACCOUNT}:user/admin"))
    }

    async fn create(&self, name: &str, value: &str) -> String {
        create_secret::run(
            &self.node.region,
            &self.caller(),
            create_secret::Input {
                name: Some(name.into()),
                client_request_token: Some(uuid::Uuid::new_v4().to_string()),
                description: None,
                kms_key_id: None,
                secret_string: Some(Zeroizing::new(value.into())),
                secret_binary: None,
                tags: None,
                add_replica_regions: None,
                force_overwrite_replica_secret: None,
                secret_type: None,
            },
        )
        .await
        .unwrap()
        .arn
    }

    async fn rotate(
        &self,
        name: &str,
        function: Option<&str>,
        rules: Option<RotationRules>,
        immediately: Option<bool>,
    ) -> coffer_core::Result<rotate_secret::Output> {
        rotate_secret::run(
            &self.node.region,
            &self.caller(),
            rotate_secret::Input {
                secret_id: Some(name.into()),
                client_request_token: Some(uuid::Uuid::new_v4().to_string()),
                rotation_lambda_arn: function.map(function_arn),
                rotation_rules: rules,
                rotate_immediately: immediately,
            },
        )
        .await
    }

    async fn cancel(&self, name: &str) -> cancel_rotate_secret::Output {
        cancel_rotate_secret::run(
            &self.node.region,
            &self.caller(),
            cancel_rotate_secret::Input {
                secret_id: Some(name.into()),
            },
        )
        .await
        .unwrap()
    }

    async fn describe(&self, name: &str) -> describe_secret::Output {
        describe_secret::run(
            &self.node.region,
            &self.caller(),
            describe_secret::Input {
                secret_id: Some(name.into()),
            },
        )
        .await
        .unwrap()
    }

    /// DescribeSecret as the client sees it (JSON, timestamps in epoch seconds).
    async fn describe_json(&self, name: &str) -> serde_json::Value {
        serde_json::to_value(self.describe(name).await).unwrap()
    }

    async fn get(
        &self,
        name: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> coffer_core::Result<get_secret_value::Output> {
        get_secret_value::run(
            &self.node.region,
            &self.caller(),
            get_secret_value::Input {
                secret_id: Some(name.into()),
                version_id: version_id.map(Into::into),
                version_stage: stage.map(Into::into),
            },
        )
        .await
    }

    /// AWSCURRENT: (version id, value).
    async fn current(&self, name: &str) -> (String, String) {
        let out = self.get(name, None, None).await.unwrap();
        (out.version_id, out.secret_string.unwrap().to_string())
    }

    async fn stages(&self, name: &str) -> HashMap<String, Vec<String>> {
        self.describe(name)
            .await
            .version_ids_to_stages
            .unwrap_or_default()
            .into_iter()
            .collect()
    }

    /// The rotation bookkeeping the store holds for the secret.
    async fn state(&self, arn: &str) -> coffer_core::rotation::RotationState {
        let secret = self
            .node
            .region
            .store
            .load_secret_by_arn(arn)
            .await
            .unwrap()
            .unwrap();
        coffer_core::rotation::state(&secret).expect("rotation state")
    }

    /// Runs what is due now on this node until nothing is left; returns the rows handled.
    async fn settle(&self) -> usize {
        settle(&self.node).await
    }
}

async fn open_node(
    dir: &Path,
    clock: &Arc<ManualClock>,
    probe: &Arc<Probe>,
    closed_port: u16,
    node_id: &str,
    shared: Option<Arc<dyn Store>>,
) -> Node {
    let store = match shared {
        Some(store) => store,
        None => Arc::new(
            SqliteStore::open(&dir.join(format!("{REGION}.db")))
                .await
                .unwrap(),
        ),
    };
    let (root_key, _) = RootKey::load_or_create(&dir.join(format!("{REGION}.key"))).unwrap();
    let region = Arc::new(RegionService::new(
        REGION.into(),
        "aws",
        store,
        root_key,
        clock.clone(),
    ));
    let mut configured: HashMap<String, Arc<dyn Rotator>> = HashMap::new();
    configured.insert("probe-fn".into(), Arc::new(ProbeRotator(probe.clone())));
    configured.insert(
        "unreachable-fn".into(),
        Arc::new(coffer_rotation::http::HttpRotator::new(
            "unreachable-fn".into(),
            format!("http://127.0.0.1:{closed_port}/"),
        )),
    );
    let registry = Registry::new(configured);
    region.set_rotation_functions(Arc::new(registry.clone()));
    let topology = Arc::new(Topology {
        local: HashMap::new(),
        keys: HashMap::new(),
        peers: HashMap::new(),
        self_url: "http://127.0.0.1:9/".into(),
        node_id: node_id.into(),
        give_up_after_ms: 30_000,
        max_message_bytes: coffer_replication::topology::DEFAULT_MAX_MESSAGE_BYTES,
        links: Default::default(),
        metrics: Metrics::new(),
        rotation: Some(Arc::new(Runner::new(registry, node_id))),
    });
    Node {
        region,
        topology,
        transport: Arc::new(Transport::new()),
    }
}

async fn drain(node: &Node) -> usize {
    drain_once(&node.topology, &node.region, &node.transport)
        .await
        .unwrap()
}

async fn settle(node: &Node) -> usize {
    let mut total = 0;
    for _ in 0..20 {
        let n = drain(node).await;
        if n == 0 {
            return total;
        }
        total += n;
    }
    panic!("the outbox never settled");
}

/// Polls (in real time) until `check` holds.
async fn until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}

/// `unwrap_err` for operation results whose output has no `Debug`.
trait Refused {
    fn refused(self) -> coffer_core::Error;
}

impl<T> Refused for coffer_core::Result<T> {
    fn refused(self) -> coffer_core::Error {
        match self {
            Ok(_) => panic!("the operation was accepted"),
            Err(e) => e,
        }
    }
}

fn days(n: i64) -> Option<RotationRules> {
    Some(RotationRules {
        automatically_after_days: Some(n),
        ..Default::default()
    })
}

fn schedule(expression: &str, duration: Option<&str>) -> Option<RotationRules> {
    Some(RotationRules {
        schedule_expression: Some(expression.into()),
        duration: duration.map(Into::into),
        ..Default::default()
    })
}

/// The four steps in order for one token.
fn four_steps(token: &str) -> Vec<(String, String)> {
    ["createSecret", "setSecret", "testSecret", "finishSecret"]
        .iter()
        .map(|s| (s.to_string(), token.to_string()))
        .collect()
}

fn secs(ms: i64) -> serde_json::Value {
    assert_eq!(ms % 1000, 0);
    serde_json::json!(ms / 1000)
}

// ---------------------------------------------------------------------------------------------
// Schedules.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatically_after_days_rotates_in_the_window_n_days_after_the_last_rotation() {
    let h = Harness::new().await;
    let arn = h
        .create("days", r#"{"username":"app","password":"p0"}"#)
        .await;
    let (v0, _) = h.current("days").await;
    let t0 = h.now();

    let out = h
        .rotate("days", Some("probe-fn"), days(2), None)
        .await
        .unwrap();
    let v1 = out
        .version_id
        .clone()
        .expect("an immediate rotation has a version");
    // Before the worker runs: a value-less AWSPENDING version, AWSCURRENT unchanged.
    let stages = h.stages("days").await;
    assert_eq!(stages[&v1], ["AWSPENDING"]);
    assert_eq!(stages[&v0], ["AWSCURRENT"]);
    assert_eq!(
        h.get("days", Some(&v1), None).await.refused().code,
        ErrorCode::ResourceNotFound
    );
    let d = h.describe_json("days").await;
    assert_eq!(d["RotationEnabled"], true);
    assert_eq!(d["RotationLambdaARN"], function_arn("probe-fn"));
    assert_eq!(
        d["RotationRules"],
        serde_json::json!({"AutomaticallyAfterDays": 2})
    );
    // The window two days out ends at midnight of the third day.
    assert_eq!(d["NextRotationDate"], secs(h.at(3, 0)));

    h.settle().await;
    assert_eq!(h.probe.steps(&arn), four_steps(&v1));
    let (current, value) = h.current("days").await;
    assert_eq!(current, v1);
    let value: serde_json::Value = serde_json::from_str(&value).unwrap();
    assert_eq!(value["username"], "app");
    assert_ne!(value["password"], "p0");
    let stages = h.stages("days").await;
    assert_eq!(stages[&v1], ["AWSCURRENT"]);
    assert_eq!(stages[&v0], ["AWSPREVIOUS"]);
    let d = h.describe_json("days").await;
    assert_eq!(d["LastRotatedDate"], serde_json::json!(t0 / 1000));
    assert_eq!(d["NextRotationDate"], secs(h.at(3, 0)));

    // Every hour up to the last moment before the window: nothing runs.
    while h.now() + HOUR < h.at(2, 0) {
        h.advance(HOUR);
        h.settle().await;
    }
    h.set(h.at(2, 0) - 1);
    h.settle().await;
    assert_eq!(
        h.probe.steps(&arn).len(),
        4,
        "no rotation before the window"
    );
    assert_eq!(h.current("days").await.0, v1);

    // The window opens: the rotation runs at its start.
    h.set(h.at(2, 0));
    h.settle().await;
    let steps = h.probe.steps(&arn);
    assert_eq!(steps.len(), 8);
    let v2 = steps[4].1.clone();
    assert_ne!(v2, v1);
    assert_eq!(steps[4..], four_steps(&v2)[..]);
    let stages = h.stages("days").await;
    assert_eq!(stages[&v2], ["AWSCURRENT"]);
    assert_eq!(stages[&v1], ["AWSPREVIOUS"]);
    assert!(!stages.contains_key(&v0), "v0 lost its last label");
    let d = h.describe_json("days").await;
    assert_eq!(d["LastRotatedDate"], secs(h.at(2, 0)));
    // Two days after this rotation: the window of day 4, ending at midnight of day 5.
    assert_eq!(d["NextRotationDate"], secs(h.at(5, 0)));

    // Later in the same window nothing runs again.
    h.set(h.at(2, 12));
    h.settle().await;
    assert_eq!(h.probe.steps(&arn).len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_in_hours_starts_on_the_hour_n_hours_after_the_last_rotation() {
    let h = Harness::new().await;
    let arn = h.create("hours", "v0").await;
    // 01:30 + 4 h = 05:30: the window is the hour that contains it, 05:00 to 06:00.
    let out = h
        .rotate(
            "hours",
            Some("probe-fn"),
            schedule("rate(4 hours)", None),
            Some(false),
        )
        .await
        .unwrap();
    assert_eq!(out.version_id, None);
    let d = h.describe_json("hours").await;
    assert_eq!(d["NextRotationDate"], secs(h.at(0, 6)));
    assert_eq!(
        d["RotationRules"],
        serde_json::json!({"ScheduleExpression": "rate(4 hours)"})
    );
    assert!(d.get("LastRotatedDate").is_none());

    h.settle().await;
    h.set(h.at(0, 5) - 1);
    h.settle().await;
    assert!(h.probe.steps(&arn).is_empty());

    h.set(h.at(0, 5));
    h.settle().await;
    assert_eq!(h.probe.count(&arn, "finishSecret"), 1);
    let d = h.describe_json("hours").await;
    assert_eq!(d["LastRotatedDate"], secs(h.at(0, 5)));
    assert_eq!(d["NextRotationDate"], secs(h.at(0, 10)));

    h.set(h.at(0, 9) - 1);
    h.settle().await;
    assert_eq!(h.probe.count(&arn, "finishSecret"), 1);
    h.set(h.at(0, 9));
    h.settle().await;
    assert_eq!(h.probe.count(&arn, "finishSecret"), 2);
    let d = h.describe_json("hours").await;
    assert_eq!(d["LastRotatedDate"], secs(h.at(0, 9)));
    assert_eq!(d["NextRotationDate"], secs(h.at(0, 14)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_in_days_with_a_duration_rotates_inside_the_window() {
    let h = Harness::new().await;
    let arn = h.create("rate-days", "v0").await;
    h.rotate(
        "rate-days",
        Some("probe-fn"),
        schedule("rate(2 days)", Some("3h")),
        Some(false),
    )
    .await
    .unwrap();
    // Window: midnight of day 2 to 03:00.
    let d = h.describe_json("rate-days").await;
    assert_eq!(d["NextRotationDate"], secs(h.at(2, 3)));
    assert_eq!(
        d["RotationRules"],
        serde_json::json!({"ScheduleExpression": "rate(2 days)", "Duration": "3h"})
    );

    h.settle().await;
    h.set(h.at(2, 0) - 1);
    h.settle().await;
    assert!(h.probe.steps(&arn).is_empty());

    // The worker next looks at 01:00, inside the window: the rotation runs then.
    h.set(h.at(2, 1));
    h.settle().await;
    assert_eq!(h.probe.count(&arn, "finishSecret"), 1);
    let d = h.describe_json("rate-days").await;
    let rotated = d["LastRotatedDate"].as_i64().unwrap() * 1000;
    assert!(
        (h.at(2, 0)..h.at(2, 3)).contains(&rotated),
        "rotated at {rotated}, outside its window"
    );
    assert_eq!(d["NextRotationDate"], secs(h.at(4, 3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_with_a_duration_rotates_at_the_cron_time() {
    let h = Harness::new().await;
    let arn = h.create("cron", "v0").await;
    h.rotate(
        "cron",
        Some("probe-fn"),
        schedule("cron(0 10 * * ? *)", Some("2h")),
        Some(false),
    )
    .await
    .unwrap();
    let d = h.describe_json("cron").await;
    assert_eq!(d["NextRotationDate"], secs(h.at(0, 12)));

    h.settle().await;
    h.set(h.at(0, 10) - 1);
    h.settle().await;
    assert!(h.probe.steps(&arn).is_empty());
    h.set(h.at(0, 10));
    h.settle().await;
    assert_eq!(h.probe.count(&arn, "finishSecret"), 1);
    let d = h.describe_json("cron").await;
    assert_eq!(d["LastRotatedDate"], secs(h.at(0, 10)));
    assert_eq!(d["NextRotationDate"], secs(h.at(1, 12)));

    // The next day's window, not before.
    h.set(h.at(1, 10) - 1);
    h.settle().await;
    assert_eq!(h.probe.count(&arn, "finishSecret"), 1);
    h.set(h.at(1, 10));
    h.settle().await;
    assert_eq!(h.probe.count(&arn, "finishSecret"), 2);

    // Without a Duration a daily cron's window ends at the end of its UTC day.
    h.create("cron-default", "v0").await;
    h.rotate(
        "cron-default",
        Some("probe-fn"),
        schedule("cron(0 16 * * ? *)", None),
        Some(false),
    )
    .await
    .unwrap();
    let d = h.describe_json("cron-default").await;
    assert_eq!(d["NextRotationDate"], secs(h.at(2, 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_immediately_false_changes_nothing_until_the_window() {
    let h = Harness::new().await;
    let arn = h.create("later", "v0").await;
    let (v0, _) = h.current("later").await;
    let out = h
        .rotate("later", Some("probe-fn"), days(1), Some(false))
        .await
        .unwrap();
    assert_eq!(out.version_id, None);
    assert_eq!(h.stages("later").await.len(), 1, "no AWSPENDING version");
    assert_eq!(h.state(&arn).await.pending, None);
    let d = h.describe_json("later").await;
    assert_eq!(d["RotationEnabled"], true);
    assert_eq!(d["NextRotationDate"], secs(h.at(2, 0)));

    for hour in 2..24 {
        h.set(h.at(0, hour));
        h.settle().await;
    }
    assert!(h.probe.steps(&arn).is_empty());
    assert_eq!(h.current("later").await.0, v0);

    h.set(h.at(1, 0));
    h.settle().await;
    assert_eq!(h.probe.count(&arn, "finishSecret"), 1);
    assert_ne!(h.current("later").await.0, v0);
    assert_eq!(
        h.describe_json("later").await["LastRotatedDate"],
        secs(h.at(1, 0))
    );
}

// ---------------------------------------------------------------------------------------------
// Restarts and leases.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_rotation_survives_a_restart_and_runs_once() {
    let mut h = Harness::new().await;
    let arn = h.create("restart", "v0").await;
    h.rotate("restart", Some("probe-fn"), days(1), Some(false))
        .await
        .unwrap();
    h.settle().await; // the row is now rescheduled for the window's start

    h.restart("node-a").await;
    h.set(h.at(1, 0));
    h.settle().await;
    assert_eq!(h.probe.count(&arn, "finishSecret"), 1);
    h.set(h.at(1, 6));
    h.settle().await;
    assert_eq!(h.probe.count(&arn, "finishSecret"), 1, "ran once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_interrupted_by_a_restart_finishes_once_with_its_token() {
    for same_node in [true, false] {
        let mut h = Harness::new().await;
        let arn = h.create("crash", "v0").await;
        let (v0, old) = h.current("crash").await;
        let gate = h.probe.hold_at("setSecret");
        let token = h
            .rotate("crash", Some("probe-fn"), days(30), None)
            .await
            .unwrap()
            .version_id
            .unwrap();
        // The node dies during setSecret (after createSecret stored the new value).
        let node = Node {
            region: h.node.region.clone(),
            topology: h.node.topology.clone(),
            transport: h.node.transport.clone(),
        };
        let running = tokio::spawn(async move { drain(&node).await });
        let probe = h.probe.clone();
        until("setSecret is reached", || {
            probe.held.load(Ordering::SeqCst) == 1
        })
        .await;
        running.abort();
        let _ = running.await;
        h.probe.release(&gate);
        assert_eq!(h.current("crash").await, (v0.clone(), old.clone()));

        if same_node {
            // The same node id takes its own lease back at once.
            h.restart("node-a").await;
        } else {
            // Another node waits for the leases to expire: the row's, then the run's (a
            // run may last four steps of up to a minute each).
            h.restart("node-b").await;
            assert_eq!(h.settle().await, 0, "the row is still leased");
            h.advance(LEASE_MS + 1);
        }
        h.settle().await;
        let crashed_at = h.now();
        while h.probe.count(&arn, "finishSecret") == 0 {
            assert!(
                h.now() - crashed_at < 10 * 60_000,
                "no node took over the rotation within 10 minutes"
            );
            h.advance(60_000);
            h.settle().await;
        }
        let steps = h.probe.steps(&arn);
        assert_eq!(steps[..2], four_steps(&token)[..2], "same_node={same_node}");
        assert_eq!(steps[2..], four_steps(&token)[..], "same_node={same_node}");
        let stages = h.stages("crash").await;
        assert_eq!(stages.len(), 2, "{stages:?}");
        assert_eq!(stages[&token], ["AWSCURRENT"]);
        assert_eq!(stages[&v0], ["AWSPREVIOUS"]);

        h.advance(HOUR);
        h.settle().await;
        assert_eq!(h.probe.count(&arn, "finishSecret"), 1, "ran once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_never_run_one_rotation_at_once() {
    let h = Harness::new().await;
    let b = h.other_node("node-b").await;

    // Both nodes drain at the same moment: one claims the run, the other finds nothing.
    let arn = h.create("twice", "v0").await;
    let token = h
        .rotate("twice", Some("probe-fn"), days(30), None)
        .await
        .unwrap()
        .version_id
        .unwrap();
    let (na, nb) = tokio::join!(drain(&h.node), drain(&b));
    assert!(na + nb >= 1, "one node claimed the run");
    settle(&h.node).await;
    settle(&b).await;
    assert_eq!(h.probe.steps(&arn), four_steps(&token));
    assert_eq!(h.probe.max_in_flight.load(Ordering::SeqCst), 1);

    // Node A is inside createSecret; node B drains again and again meanwhile.
    let arn = h.create("twice-held", "v0").await;
    let gate = h.probe.hold_at("createSecret");
    let token = h
        .rotate("twice-held", Some("probe-fn"), days(30), None)
        .await
        .unwrap()
        .version_id
        .unwrap();
    let a = Node {
        region: h.node.region.clone(),
        topology: h.node.topology.clone(),
        transport: h.node.transport.clone(),
    };
    let running = tokio::spawn(async move { drain(&a).await });
    let probe = h.probe.clone();
    until("node A is in createSecret", || {
        probe.held.load(Ordering::SeqCst) == 1
    })
    .await;
    for _ in 0..5 {
        assert_eq!(drain(&b).await, 0, "node B must not claim a leased run");
        h.advance(1000);
    }
    h.probe.release(&gate);
    assert_eq!(running.await.unwrap(), 1);
    settle(&h.node).await;
    settle(&b).await;
    assert_eq!(h.probe.steps(&arn), four_steps(&token));
    assert_eq!(h.probe.max_in_flight.load(Ordering::SeqCst), 1);
}

/// A step may take up to a minute (the `http` rotator's timeout), a run four of them; the
/// worker's lease is 30 s. Another node must still not start the same rotation while the
/// first one is running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_rotation_is_not_run_again_when_its_lease_runs_out() {
    let h = Harness::new().await;
    let b = h.other_node("node-b").await;
    let arn = h.create("slow", "v0").await;
    let gate = h.probe.hold_at("createSecret");
    h.rotate("slow", Some("probe-fn"), days(30), None)
        .await
        .unwrap();
    let a = Node {
        region: h.node.region.clone(),
        topology: h.node.topology.clone(),
        transport: h.node.transport.clone(),
    };
    let running = tokio::spawn(async move { drain(&a).await });
    let probe = h.probe.clone();
    until("node A is in createSecret", || {
        probe.held.load(Ordering::SeqCst) == 1
    })
    .await;
    // 31 s into node A's createSecret, node B looks at the outbox.
    h.advance(LEASE_MS + 1_000);
    let second = tokio::spawn(async move { drain(&b).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let both_inside = h.probe.held.load(Ordering::SeqCst);
    h.probe.release(&gate);
    running.await.unwrap();
    second.await.unwrap();
    assert_eq!(
        both_inside, 1,
        "node B started createSecret of a rotation node A was still running"
    );
    assert_eq!(h.probe.max_in_flight.load(Ordering::SeqCst), 1);
    assert_eq!(h.probe.count(&arn, "createSecret"), 1);
}

// ---------------------------------------------------------------------------------------------
// Failures.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_function_is_retried_with_backoff_and_awscurrent_untouched() {
    let h = Harness::new().await;
    let arn = h.create("unreachable", "the current value").await;
    let (v0, _) = h.current("unreachable").await;
    let token = h
        .rotate("unreachable", Some("unreachable-fn"), days(30), None)
        .await
        .unwrap()
        .version_id
        .unwrap();
    h.settle().await;
    let st = h.state(&arn).await;
    let pending = st.pending.expect("the rotation is still pending");
    assert_eq!(pending.token, token);
    assert_eq!(pending.attempts, 1);
    assert!(
        pending.last_error.as_deref().is_some_and(
            |e| e.contains("createSecret failed") && e.contains("could not be reached")
        ),
        "{pending:?}"
    );
    // AWSCURRENT untouched and readable; the AWSPENDING version still has no value.
    assert_eq!(
        h.current("unreachable").await,
        (v0.clone(), "the current value".to_string())
    );
    let stages = h.stages("unreachable").await;
    assert_eq!(stages[&token], ["AWSPENDING"]);
    assert_eq!(
        h.get("unreachable", Some(&token), Some("AWSPENDING"))
            .await
            .refused()
            .code,
        ErrorCode::ResourceNotFound
    );
    let err = h.rotate("unreachable", None, None, None).await.refused();
    assert_eq!(
        (err.code, err.message.as_str()),
        (ErrorCode::InvalidRequest, UNFINISHED)
    );

    // Retries after 2 s, 4 s, 8 s... (never earlier).
    for (attempt, backoff) in [(2, 2_000), (3, 4_000), (4, 8_000)] {
        h.advance(backoff - 1);
        h.settle().await;
        assert_eq!(h.state(&arn).await.pending.unwrap().attempts, attempt - 1);
        h.advance(1);
        h.settle().await;
        assert_eq!(h.state(&arn).await.pending.unwrap().attempts, attempt);
        assert_eq!(h.current("unreachable").await.0, v0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_set_secret_leaves_awscurrent_readable_and_a_retry_completes() {
    let h = Harness::new().await;
    let arn = h
        .create("flaky", r#"{"username":"app","password":"old"}"#)
        .await;
    let (v0, old) = h.current("flaky").await;
    h.probe.fail("setSecret");
    let token = h
        .rotate("flaky", Some("probe-fn"), days(30), None)
        .await
        .unwrap()
        .version_id
        .unwrap();
    h.settle().await;
    assert_eq!(h.probe.steps(&arn), four_steps(&token)[..2]);
    assert_eq!(h.current("flaky").await, (v0.clone(), old.clone()));
    // createSecret stored the new value in the AWSPENDING version.
    let pending = h
        .get("flaky", Some(&token), Some("AWSPENDING"))
        .await
        .unwrap()
        .secret_string
        .unwrap()
        .to_string();
    assert_ne!(pending, old);
    let err = h
        .rotate("flaky", Some("probe-fn"), None, None)
        .await
        .refused();
    assert_eq!(
        (err.code, err.message.as_str()),
        (ErrorCode::InvalidRequest, UNFINISHED)
    );
    assert!(
        h.describe_json("flaky")
            .await
            .get("LastRotatedDate")
            .is_none()
    );

    h.advance(2_000);
    h.settle().await;
    assert_eq!(h.probe.count(&arn, "setSecret"), 2);
    assert_eq!(h.current("flaky").await.0, v0);

    h.probe.heal();
    h.advance(4_000);
    h.settle().await;
    let steps = h.probe.steps(&arn);
    assert_eq!(
        steps[4..],
        four_steps(&token)[..],
        "the retry uses the same token"
    );
    let stages = h.stages("flaky").await;
    assert_eq!(stages[&token], ["AWSCURRENT"]);
    assert_eq!(stages[&v0], ["AWSPREVIOUS"]);
    assert_eq!(stages.len(), 2);
    let d = h.describe_json("flaky").await;
    assert_eq!(d["LastRotatedDate"], serde_json::json!(h.now() / 1000));
    assert_eq!(h.state(&arn).await.pending, None);
    // The value stored by the first createSecret is the one that became current.
    assert_eq!(h.current("flaky").await, (token.clone(), pending));
}

// ---------------------------------------------------------------------------------------------
// CancelRotateSecret.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_rotate_secret_stops_scheduled_runs_and_retries() {
    let h = Harness::new().await;
    let arn = h.create("cancel", "v0").await;
    h.rotate(
        "cancel",
        Some("probe-fn"),
        schedule("rate(1 day)", None),
        Some(false),
    )
    .await
    .unwrap();
    h.settle().await;
    let out = h.cancel("cancel").await;
    assert_eq!(out.version_id, None);
    let d = h.describe_json("cancel").await;
    assert_eq!(d["RotationEnabled"], false);
    assert_eq!(d["RotationLambdaARN"], function_arn("probe-fn"));
    assert_eq!(
        d["RotationRules"],
        serde_json::json!({"ScheduleExpression": "rate(1 day)"})
    );
    assert!(d.get("NextRotationDate").is_none(), "{d}");
    for day in 1..4 {
        h.set(h.at(day, 1));
        h.settle().await;
    }
    assert!(h.probe.steps(&arn).is_empty());

    // A failing rotation's retries stop too; its AWSPENDING version is returned and left.
    let arn = h.create("cancel-retry", "v0").await;
    h.probe.fail("createSecret");
    let token = h
        .rotate("cancel-retry", Some("probe-fn"), days(1), None)
        .await
        .unwrap()
        .version_id
        .unwrap();
    h.settle().await;
    assert_eq!(h.probe.count(&arn, "createSecret"), 1);
    let out = h.cancel("cancel-retry").await;
    assert_eq!(out.version_id.as_deref(), Some(token.as_str()));
    h.probe.heal();
    for _ in 0..5 {
        h.advance(10 * 60_000);
        h.settle().await;
    }
    h.set(h.at(7, 0));
    h.settle().await;
    assert_eq!(
        h.probe.count(&arn, "createSecret"),
        1,
        "no retry after cancel"
    );
    assert_eq!(h.stages("cancel-retry").await[&token], ["AWSPENDING"]);
}

// ---------------------------------------------------------------------------------------------
// Errors.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_and_functions_are_refused_and_nothing_is_saved() {
    let h = Harness::new().await;
    h.create("errors", "v0").await;
    let nothing_saved = |d: &serde_json::Value| {
        for key in [
            "RotationEnabled",
            "RotationLambdaARN",
            "RotationRules",
            "NextRotationDate",
        ] {
            assert!(d.get(key).is_none(), "{key} saved: {d}");
        }
    };

    for expression in [
        "rate(1 hour)",
        "rate(3 hours)",
        "cron(0 * * * ? *)",
        "cron(0 0/2 * * ? *)",
    ] {
        let err = h
            .rotate("errors", Some("probe-fn"), schedule(expression, None), None)
            .await
            .refused();
        assert_eq!(
            (err.code, err.message.as_str()),
            (ErrorCode::InvalidParameter, TOO_FREQUENT),
            "{expression}"
        );
    }
    let err = h
        .rotate(
            "errors",
            Some("probe-fn"),
            Some(RotationRules {
                automatically_after_days: Some(1),
                schedule_expression: Some("rate(1 day)".into()),
                duration: None,
            }),
            None,
        )
        .await
        .refused();
    assert_eq!(
        (err.code, err.message.as_str()),
        (ErrorCode::InvalidParameter, BOTH_RULES)
    );
    nothing_saved(&h.describe_json("errors").await);

    let err = h
        .rotate("errors", Some("no-such-fn"), days(1), None)
        .await
        .refused();
    assert_eq!(
        (err.code, err.message.as_str()),
        (ErrorCode::AccessDenied, CANNOT_INVOKE)
    );
    nothing_saved(&h.describe_json("errors").await);
    assert_eq!(h.stages("errors").await.len(), 1, "no AWSPENDING version");

    let err = h.rotate("errors", None, days(1), None).await.refused();
    assert_eq!(
        (err.code, err.message.as_str()),
        (ErrorCode::InvalidRequest, NO_FUNCTION)
    );
    nothing_saved(&h.describe_json("errors").await);

    // Nothing was queued either.
    h.set(h.at(3, 0));
    assert_eq!(h.settle().await, 0);
    assert!(h.probe.calls.lock().unwrap().is_empty());
}
