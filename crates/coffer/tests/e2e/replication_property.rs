//! Property test: random sequences of writes end with every replica equal to its primary.
//!
//! One server hosts three Regions. Each case creates a secret in us-west-2, replicates it to
//! us-east-1 and eu-west-1, then applies a seeded random sequence of writes (values, label
//! moves, tags, policies, refused deletions and restores, repeated ReplicateSecretToRegions)
//! without waiting for replication in between — except at random pauses. At the end every
//! replica must converge to exactly what the primary shows.
//!
//! A failing case prints its seed and the steps it ran. Rerun just that case with
//! `COFFER_PROPERTY_SEED=<seed> cargo test -p coffer --test e2e replication_property`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::{ReplicaRegionType, StatusType, Tag};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::server::{Server, error_of, property_seeds, unique};

const PRIMARY: &str = "us-west-2";
const REPLICAS: [&str; 2] = ["us-east-1", "eu-west-1"];
const CASES: u64 = 16;
const FIRST_SEED: u64 = 0xC0FFE0;
const CONVERGENCE: Duration = Duration::from_secs(20);
const REPLICA_ERROR: &str =
    "Operation not permitted on a replica secret. Call must be made in primary secret's region.";
/// Custom labels a case moves around (AWSPENDING behaves as an ordinary label here).
const LABELS: [&str; 4] = ["blue", "green", "canary", "AWSPENDING"];
const TAG_KEYS: [&str; 5] = ["team", "env", "owner", "cost-centre", "Tier"];
const DESCRIPTIONS: [&str; 5] = [
    "orders",
    "orders db",
    "payments: read-only",
    "ünïcode ✓",
    "",
];

fn server() -> Server {
    Server::start_with(&[
        "--regions",
        "us-west-2,us-east-1,eu-west-1",
        "--replication-failure-timeout-secs",
        "2",
    ])
}

fn replica(region: &str) -> ReplicaRegionType {
    ReplicaRegionType::builder().region(region).build()
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Text(String),
    Bytes(Vec<u8>),
}

impl Value {
    pub(crate) fn random(rng: &mut StdRng) -> Value {
        if rng.gen_bool(0.3) {
            let len = rng.gen_range(1..64);
            Value::Bytes((0..len).map(|_| rng.r#gen::<u8>()).collect())
        } else {
            const ALPHABET: &[char] = &[
                'a', 'b', 'c', 'x', 'y', 'z', '0', '7', '9', '{', '}', '"', ':', ' ', 'é', '€',
                '✓', '\n',
            ];
            let len = rng.gen_range(1..40);
            Value::Text((0..len).map(|_| *ALPHABET.choose(rng).unwrap()).collect())
        }
    }

    /// The value a GetSecretValue answer holds: exactly one of string and binary.
    pub(crate) fn of(o: &GetSecretValueOutput) -> Value {
        match (o.secret_string(), o.secret_binary()) {
            (Some(s), None) => Value::Text(s.to_string()),
            (None, Some(b)) => Value::Bytes(b.as_ref().to_vec()),
            _ => panic!(
                "version {:?} holds not exactly one of string and binary",
                o.version_id()
            ),
        }
    }

    pub(crate) fn short(&self) -> String {
        match self {
            Value::Text(s) => format!("string({} chars)", s.chars().count()),
            Value::Bytes(b) => format!("binary({} bytes)", b.len()),
        }
    }
}

/// What one Region shows of the secret: everything that must be equal between a primary and
/// its replicas. (ARN and ReplicationStatus legitimately differ and are checked separately.)
#[derive(Debug, PartialEq)]
struct Snapshot {
    name: Option<String>,
    description: Option<String>,
    tags: Option<Vec<(String, String)>>,
    version_ids_to_stages: BTreeMap<String, Vec<String>>,
    /// ListSecretVersionIds(IncludeDeprecated=false): VersionId → VersionStages.
    listed_versions: BTreeMap<String, Vec<String>>,
    /// GetSecretValue(VersionId) of every version the case created (including deprecated
    /// ones): the value and its stages, or the error code.
    values: BTreeMap<String, Result<(Value, Vec<String>), String>>,
    policy: Option<serde_json::Value>,
    deleted: bool,
    primary_region: Option<String>,
}

fn stages_of(d: &DescribeSecretOutput) -> BTreeMap<String, Vec<String>> {
    d.version_ids_to_stages()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

async fn snapshot(client: &Client, name: &str, ids: &[String]) -> Result<Snapshot, String> {
    let d = client
        .describe_secret()
        .secret_id(name)
        .send()
        .await
        .map_err(|e| format!("DescribeSecret: {:?}", error_of(e)))?;
    let listed = client
        .list_secret_version_ids()
        .secret_id(name)
        .include_deprecated(false)
        .max_results(100)
        .send()
        .await
        .map_err(|e| format!("ListSecretVersionIds: {:?}", error_of(e)))?;
    assert!(listed.next_token().is_none(), "one page of versions");
    let policy = client
        .get_resource_policy()
        .secret_id(name)
        .send()
        .await
        .map_err(|e| format!("GetResourcePolicy: {:?}", error_of(e)))?;
    let mut values = BTreeMap::new();
    for id in ids {
        let got = match client
            .get_secret_value()
            .secret_id(name)
            .version_id(id)
            .send()
            .await
        {
            Ok(o) => Ok((Value::of(&o), o.version_stages().to_vec())),
            Err(e) => Err(error_of(e).0),
        };
        values.insert(id.clone(), got);
    }
    Ok(Snapshot {
        name: d.name().map(str::to_string),
        description: d.description().map(str::to_string),
        tags: d.tags.as_ref().map(|tags| {
            tags.iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_string(),
                        t.value().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        }),
        version_ids_to_stages: stages_of(&d),
        listed_versions: listed
            .versions()
            .iter()
            .map(|v| {
                (
                    v.version_id().unwrap_or_default().to_string(),
                    v.version_stages().to_vec(),
                )
            })
            .collect(),
        values,
        policy: policy.resource_policy().map(|p| {
            serde_json::from_str(p).unwrap_or_else(|e| panic!("policy is not JSON ({e}): {p}"))
        }),
        deleted: d.deleted_date().is_some(),
        primary_region: d.primary_region().map(str::to_string),
    })
}

fn statuses(d: &DescribeSecretOutput) -> Vec<(String, Option<StatusType>)> {
    d.replication_status()
        .iter()
        .map(|s| {
            (
                s.region().unwrap_or_default().to_string(),
                s.status().cloned(),
            )
        })
        .collect()
}

/// One random case: a secret, its replicas, the versions it wrote, and a log of the steps.
struct Case<'a> {
    seed: u64,
    rng: StdRng,
    name: String,
    arn: String,
    primary: Client,
    /// Replica Regions in the order they were added, with a client for each.
    replicas: Vec<(&'static str, Client)>,
    /// Every VersionId the case created, oldest first, with the value written.
    versions: Vec<(String, Value)>,
    /// A refused DeleteSecret waits for its RestoreSecret.
    restore_due: bool,
    seen_replica: BTreeMap<&'static str, bool>,
    log: Vec<String>,
    server: &'a Server,
}

impl Drop for Case<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\nreplication property case failed: seed {} (rerun with COFFER_PROPERTY_SEED={}), secret {}\nsteps:\n  {}\n",
                self.seed,
                self.seed,
                self.name,
                self.log.join("\n  ")
            );
        }
    }
}

impl<'a> Case<'a> {
    async fn start(server: &'a Server, seed: u64) -> Case<'a> {
        let mut rng = StdRng::seed_from_u64(seed);
        let primary = server.client(PRIMARY);
        let name = unique(&format!("prop/{seed:x}"));
        let mut order = REPLICAS.to_vec();
        order.shuffle(&mut rng);
        let replicas = order.iter().map(|r| (*r, server.client(r))).collect();
        let mut case = Case {
            seed,
            rng,
            name,
            arn: String::new(),
            primary,
            replicas,
            versions: Vec::new(),
            restore_due: false,
            seen_replica: REPLICAS.iter().map(|r| (*r, false)).collect(),
            log: Vec::new(),
            server,
        };
        case.create().await;
        case
    }

    fn token(&mut self) -> String {
        let r = &mut self.rng;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            r.r#gen::<u32>(),
            r.r#gen::<u16>(),
            r.r#gen::<u16>(),
            r.r#gen::<u16>(),
            r.r#gen::<u64>() & 0xffff_ffff_ffff
        )
    }

    fn note(&mut self, line: String) {
        self.log.push(line);
    }

    /// Creates the primary and asks for both replicas, in one of three ways.
    async fn create(&mut self) {
        let token = self.token();
        let value = Value::random(&mut self.rng);
        let regions: Vec<&str> = self.replicas.iter().map(|(r, _)| *r).collect();
        let at_creation = self.rng.gen_bool(0.4);
        let mut req = self
            .primary
            .create_secret()
            .name(&self.name)
            .client_request_token(&token);
        req = match &value {
            Value::Text(s) => req.secret_string(s),
            Value::Bytes(b) => req.secret_binary(Blob::new(b.clone())),
        };
        if self.rng.gen_bool(0.5) {
            req = req.description(*DESCRIPTIONS.choose(&mut self.rng).unwrap());
        }
        if self.rng.gen_bool(0.5) {
            req = req.tags(Tag::builder().key("team").value("orders").build());
        }
        if at_creation {
            for r in &regions {
                req = req.add_replica_regions(replica(r));
            }
        }
        let out = req.send().await.expect("CreateSecret");
        self.arn = out.arn().unwrap().to_string();
        self.versions.push((token.clone(), value.clone()));
        if at_creation {
            self.note(format!(
                "CreateSecret {} AddReplicaRegions={regions:?} -> {token}",
                value.short()
            ));
        } else if self.rng.gen_bool(0.5) {
            self.note(format!("CreateSecret {} -> {token}", value.short()));
            let mut req = self
                .primary
                .replicate_secret_to_regions()
                .secret_id(&self.name);
            for r in &regions {
                req = req.add_replica_regions(replica(r));
            }
            req.send().await.expect("ReplicateSecretToRegions");
            self.note(format!("ReplicateSecretToRegions {regions:?}"));
        } else {
            self.note(format!("CreateSecret {} -> {token}", value.short()));
            for r in &regions {
                self.primary
                    .replicate_secret_to_regions()
                    .secret_id(&self.arn)
                    .add_replica_regions(replica(r))
                    .send()
                    .await
                    .expect("ReplicateSecretToRegions");
                self.note(format!("ReplicateSecretToRegions [{r}]"));
            }
        }
    }

    async fn primary_stages(&self) -> BTreeMap<String, Vec<String>> {
        let d = self
            .primary
            .describe_secret()
            .secret_id(&self.name)
            .send()
            .await
            .expect("DescribeSecret on the primary");
        stages_of(&d)
    }

    fn holder(stages: &BTreeMap<String, Vec<String>>, label: &str) -> Option<String> {
        stages
            .iter()
            .find(|(_, s)| s.iter().any(|l| l == label))
            .map(|(id, _)| id.clone())
    }

    fn random_version_except(&mut self, except: Option<&str>) -> Option<String> {
        let ids: Vec<String> = self
            .versions
            .iter()
            .map(|(id, _)| id.clone())
            .filter(|id| Some(id.as_str()) != except)
            .collect();
        ids.choose(&mut self.rng).cloned()
    }

    async fn put_value(&mut self) {
        let token = self.token();
        let value = Value::random(&mut self.rng);
        let stages: Option<Vec<String>> = if self.rng.gen_bool(0.5) {
            None
        } else {
            let n = self.rng.gen_range(1..=3);
            let mut s: Vec<String> = LABELS
                .choose_multiple(&mut self.rng, n)
                .map(|l| l.to_string())
                .collect();
            if self.rng.gen_bool(0.4) {
                let at = self.rng.gen_range(0..=s.len());
                s.insert(at, "AWSCURRENT".into());
            }
            Some(s)
        };
        let mut req = self
            .primary
            .put_secret_value()
            .secret_id(&self.name)
            .client_request_token(&token);
        req = match &value {
            Value::Text(s) => req.secret_string(s),
            Value::Bytes(b) => req.secret_binary(Blob::new(b.clone())),
        };
        if let Some(stages) = &stages {
            req = req.set_version_stages(Some(stages.clone()));
        }
        self.note(format!(
            "PutSecretValue {} VersionStages={stages:?} -> {token}",
            value.short()
        ));
        let out = req.send().await.expect("PutSecretValue");
        assert_eq!(out.version_id(), Some(token.as_str()));
        self.versions.push((token, value));
    }

    /// PutSecretValue with the token and value of an existing version: no new version.
    async fn replay_put(&mut self) {
        let (token, value) = self.versions.choose(&mut self.rng).unwrap().clone();
        self.note(format!("PutSecretValue replay of {token}"));
        let mut req = self
            .primary
            .put_secret_value()
            .secret_id(&self.name)
            .client_request_token(&token);
        req = match &value {
            Value::Text(s) => req.secret_string(s),
            Value::Bytes(b) => req.secret_binary(Blob::new(b.clone())),
        };
        let out = req.send().await.expect("idempotent PutSecretValue replay");
        assert_eq!(out.version_id(), Some(token.as_str()));
    }

    async fn update_secret(&mut self) {
        let what = self.rng.gen_range(0..3);
        let mut req = self.primary.update_secret().secret_id(&self.name);
        let mut line = "UpdateSecret".to_string();
        if what != 1 {
            let d = *DESCRIPTIONS.choose(&mut self.rng).unwrap();
            req = req.description(d);
            line += &format!(" Description={d:?}");
        }
        let mut new = None;
        if what != 0 {
            let token = self.token();
            let value = Value::random(&mut self.rng);
            req = req.client_request_token(&token);
            req = match &value {
                Value::Text(s) => req.secret_string(s),
                Value::Bytes(b) => req.secret_binary(Blob::new(b.clone())),
            };
            line += &format!(" {} -> {token}", value.short());
            new = Some((token, value));
        }
        self.note(line);
        let out = req.send().await.expect("UpdateSecret");
        if let Some((token, value)) = new {
            assert_eq!(out.version_id(), Some(token.as_str()));
            self.versions.push((token, value));
        }
    }

    /// Moves AWSCURRENT back (or forward) to another version.
    async fn move_current(&mut self) {
        let stages = self.primary_stages().await;
        let holder = Self::holder(&stages, "AWSCURRENT").expect("a current version");
        let Some(target) = self.random_version_except(Some(&holder)) else {
            return self.put_value().await;
        };
        self.note(format!(
            "UpdateSecretVersionStage AWSCURRENT {holder} -> {target}"
        ));
        self.primary
            .update_secret_version_stage()
            .secret_id(&self.name)
            .version_stage("AWSCURRENT")
            .remove_from_version_id(&holder)
            .move_to_version_id(&target)
            .send()
            .await
            .expect("moving AWSCURRENT");
    }

    /// Moves a custom label to another version, or removes it.
    async fn move_label(&mut self) {
        let stages = self.primary_stages().await;
        let label = *LABELS.choose(&mut self.rng).unwrap();
        let holder = Self::holder(&stages, label);
        let target = self.random_version_except(holder.as_deref());
        let mut req = self
            .primary
            .update_secret_version_stage()
            .secret_id(&self.name)
            .version_stage(label);
        match (&holder, &target) {
            (Some(h), Some(t)) if self.rng.gen_bool(0.7) => {
                self.note(format!("UpdateSecretVersionStage {label} {h} -> {t}"));
                req = req.remove_from_version_id(h).move_to_version_id(t);
            }
            (Some(h), _) => {
                self.note(format!("UpdateSecretVersionStage remove {label} from {h}"));
                req = req.remove_from_version_id(h);
            }
            (None, Some(t)) => {
                self.note(format!(
                    "UpdateSecretVersionStage {label} (unattached) -> {t}"
                ));
                req = req.move_to_version_id(t);
            }
            (None, None) => unreachable!("a case always has a version"),
        }
        req.send().await.expect("UpdateSecretVersionStage");
    }

    async fn tag(&mut self) {
        let n = self.rng.gen_range(1..=3);
        let keys: Vec<&str> = TAG_KEYS
            .choose_multiple(&mut self.rng, n)
            .copied()
            .collect();
        let mut req = self.primary.tag_resource().secret_id(&self.name);
        let mut pairs = Vec::new();
        for k in keys {
            let v = format!("v{}", self.rng.gen_range(0..5));
            req = req.tags(Tag::builder().key(k).value(&v).build());
            pairs.push(format!("{k}={v}"));
        }
        self.note(format!("TagResource {pairs:?}"));
        req.send().await.expect("TagResource");
    }

    async fn untag(&mut self) {
        let n = self.rng.gen_range(1..=2);
        let keys: Vec<String> = TAG_KEYS
            .choose_multiple(&mut self.rng, n)
            .map(|k| k.to_string())
            .collect();
        self.note(format!("UntagResource {keys:?}"));
        self.primary
            .untag_resource()
            .secret_id(&self.name)
            .set_tag_keys(Some(keys))
            .send()
            .await
            .expect("UntagResource");
    }

    async fn put_policy(&mut self) {
        let account: u64 = self.rng.gen_range(100_000_000_000..1_000_000_000_000);
        let action = *[
            "secretsmanager:GetSecretValue",
            "secretsmanager:DescribeSecret",
            "secretsmanager:*",
        ]
        .choose(&mut self.rng)
        .unwrap();
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"{action}","Resource":"*"}}]}}"#
        );
        self.note(format!("PutResourcePolicy {account} {action}"));
        self.primary
            .put_resource_policy()
            .secret_id(&self.name)
            .resource_policy(policy)
            .send()
            .await
            .expect("PutResourcePolicy");
    }

    async fn delete_policy(&mut self) {
        self.note("DeleteResourcePolicy".into());
        self.primary
            .delete_resource_policy()
            .secret_id(&self.name)
            .send()
            .await
            .expect("DeleteResourcePolicy");
    }

    /// A primary with replicas cannot be deleted; the refusal lists them in the order added.
    async fn delete_refused(&mut self) {
        let window = self.rng.gen_range(7..=30);
        self.note(format!(
            "DeleteSecret RecoveryWindowInDays={window} (refused)"
        ));
        let (code, message) = error_of(
            self.primary
                .delete_secret()
                .secret_id(&self.name)
                .recovery_window_in_days(window)
                .send()
                .await
                .expect_err("DeleteSecret of a primary with replicas was accepted"),
        );
        let regions: Vec<&str> = self.replicas.iter().map(|(r, _)| *r).collect();
        assert_eq!(code, "InvalidParameterException");
        assert_eq!(
            message,
            format!(
                "You can't delete secret {} that still has replica regions [{}].",
                self.arn,
                regions.join(", ")
            )
        );
        self.restore_due = true;
    }

    async fn restore(&mut self) {
        self.note("RestoreSecret".into());
        let out = self
            .primary
            .restore_secret()
            .secret_id(&self.name)
            .send()
            .await
            .expect("RestoreSecret");
        assert_eq!(out.arn(), Some(self.arn.as_str()));
        self.restore_due = false;
    }

    /// ReplicateSecretToRegions for a Region that already is a replica: no second entry.
    async fn replicate_again(&mut self) {
        let region = *REPLICAS.choose(&mut self.rng).unwrap();
        let force = self.rng.gen_bool(0.3);
        self.note(format!(
            "ReplicateSecretToRegions [{region}] again ForceOverwriteReplicaSecret={force}"
        ));
        let out = self
            .primary
            .replicate_secret_to_regions()
            .secret_id(&self.name)
            .add_replica_regions(replica(region))
            .force_overwrite_replica_secret(force)
            .send()
            .await
            .expect("ReplicateSecretToRegions again");
        let listed: Vec<&str> = out
            .replication_status()
            .iter()
            .filter_map(|s| s.region())
            .collect();
        let expected: Vec<&str> = self.replicas.iter().map(|(r, _)| *r).collect();
        assert_eq!(listed, expected, "each replica Region listed once");
    }

    /// A random write in a replica Region is refused with the replica error.
    async fn replica_write_refused(&mut self, region: &'static str) {
        let client = self.server.client(region);
        let name = self.name.clone();
        let other = REPLICAS.iter().find(|r| **r != region).unwrap();
        let version = self.versions[0].0.clone();
        let op = self.rng.gen_range(0..11);
        macro_rules! refused {
            ($what:literal, $call:expr) => {
                (
                    $what,
                    error_of(
                        $call
                            .send()
                            .await
                            .expect_err(concat!($what, " on a replica was accepted")),
                    ),
                )
            };
        }
        let (what, (code, message)) = match op {
            0 => refused!(
                "PutSecretValue",
                client
                    .put_secret_value()
                    .secret_id(&name)
                    .secret_string("not here")
            ),
            1 => refused!(
                "UpdateSecret",
                client
                    .update_secret()
                    .secret_id(&name)
                    .description("not here")
            ),
            2 => refused!(
                "UpdateSecretVersionStage",
                client
                    .update_secret_version_stage()
                    .secret_id(&name)
                    .version_stage("blue")
                    .move_to_version_id(&version)
            ),
            3 => refused!(
                "TagResource",
                client
                    .tag_resource()
                    .secret_id(&name)
                    .tags(Tag::builder().key("team").value("x").build())
            ),
            4 => refused!(
                "UntagResource",
                client.untag_resource().secret_id(&name).tag_keys("team")
            ),
            5 => refused!(
                "DeleteSecret",
                client
                    .delete_secret()
                    .secret_id(&name)
                    .recovery_window_in_days(7)
            ),
            6 => refused!("RestoreSecret", client.restore_secret().secret_id(&name)),
            7 => refused!(
                "PutResourcePolicy",
                client
                    .put_resource_policy()
                    .secret_id(&name)
                    .resource_policy(r#"{"Version":"2012-10-17","Statement":[]}"#)
            ),
            8 => refused!(
                "DeleteResourcePolicy",
                client.delete_resource_policy().secret_id(&name)
            ),
            9 => refused!(
                "ReplicateSecretToRegions",
                client
                    .replicate_secret_to_regions()
                    .secret_id(&name)
                    .add_replica_regions(replica(other))
            ),
            _ => refused!(
                "RemoveRegionsFromReplication",
                client
                    .remove_regions_from_replication()
                    .secret_id(&name)
                    .remove_replica_regions(*other)
            ),
        };
        self.note(format!("{what} in {region} (refused: {code})"));
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("InvalidParameterException", REPLICA_ERROR),
            "{what} on the replica in {region}"
        );
    }

    /// Reads a replica mid-sequence: whatever state it holds is one whole primary state, so it
    /// always has exactly one AWSCURRENT, no label twice, and a readable current value. Once a
    /// replica exists it never disappears; it also refuses a write now and then.
    async fn peek_replica(&mut self) {
        let (region, client) = {
            let (r, c) = self.replicas.choose(&mut self.rng).unwrap();
            (*r, c.clone())
        };
        let d = match client.describe_secret().secret_id(&self.name).send().await {
            Ok(d) => d,
            Err(e) => {
                let (code, _) = error_of(e);
                assert!(
                    code == "ResourceNotFoundException" && !self.seen_replica[region],
                    "replica in {region} unreadable after it existed: {code}"
                );
                self.note(format!("peek {region}: not there yet"));
                return;
            }
        };
        self.seen_replica.insert(region, true);
        assert_eq!(d.primary_region(), Some(PRIMARY));
        let stages = stages_of(&d);
        let mut labels: Vec<&String> = stages.values().flatten().collect();
        let all = labels.len();
        labels.sort();
        labels.dedup();
        assert_eq!(
            labels.len(),
            all,
            "a label on two versions in {region}: {stages:?}"
        );
        assert!(
            labels.iter().any(|l| *l == "AWSCURRENT"),
            "no AWSCURRENT in {region}: {stages:?}"
        );
        client
            .get_secret_value()
            .secret_id(&self.name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("replica in {region} has no current value: {e:?}"));
        self.note(format!("peek {region}: {} labelled versions", stages.len()));
        if self.rng.gen_bool(0.3) {
            self.replica_write_refused(region).await;
        }
    }

    /// Two to four writes sent at once: the primary serialises them in some order, and its
    /// replicas must end up with whichever order won.
    async fn burst(&mut self) {
        let n = self.rng.gen_range(2..=4);
        let mut tasks = tokio::task::JoinSet::new();
        let mut what = Vec::new();
        for _ in 0..n {
            let client = self.primary.clone();
            let name = self.name.clone();
            match self.rng.gen_range(0..5) {
                0 | 1 => {
                    let token = self.token();
                    let value = Value::random(&mut self.rng);
                    let req = client
                        .put_secret_value()
                        .secret_id(&name)
                        .client_request_token(&token);
                    let req = match &value {
                        Value::Text(s) => req.secret_string(s),
                        Value::Bytes(b) => req.secret_binary(Blob::new(b.clone())),
                    };
                    what.push(format!("PutSecretValue {} -> {token}", value.short()));
                    self.versions.push((token, value));
                    tasks.spawn(async move { req.send().await.map(drop).map_err(error_of) });
                }
                2 => {
                    let k = *TAG_KEYS.choose(&mut self.rng).unwrap();
                    let v = format!("v{}", self.rng.gen_range(0..5));
                    what.push(format!("TagResource {k}={v}"));
                    let req = client
                        .tag_resource()
                        .secret_id(&name)
                        .tags(Tag::builder().key(k).value(v).build());
                    tasks.spawn(async move { req.send().await.map(drop).map_err(error_of) });
                }
                3 => {
                    let k = *TAG_KEYS.choose(&mut self.rng).unwrap();
                    what.push(format!("UntagResource {k}"));
                    let req = client.untag_resource().secret_id(&name).tag_keys(k);
                    tasks.spawn(async move { req.send().await.map(drop).map_err(error_of) });
                }
                _ => {
                    let d = *DESCRIPTIONS.choose(&mut self.rng).unwrap();
                    what.push(format!("UpdateSecret Description={d:?}"));
                    let req = client.update_secret().secret_id(&name).description(d);
                    tasks.spawn(async move { req.send().await.map(drop).map_err(error_of) });
                }
            }
        }
        self.note(format!("concurrently: {}", what.join(" | ")));
        while let Some(result) = tasks.join_next().await {
            result
                .expect("request task")
                .unwrap_or_else(|e| panic!("a concurrent write failed: {e:?}"));
        }
    }

    async fn step(&mut self) {
        // Weights: writes of values dominate, as in real use.
        let roll = self.rng.gen_range(0..100);
        match roll {
            0..=14 => self.put_value().await,
            15..=19 => self.burst().await,
            20..=22 => self.replay_put().await,
            23..=34 => self.update_secret().await,
            35..=42 => self.move_current().await,
            43..=54 => self.move_label().await,
            55..=62 => self.tag().await,
            63..=68 => self.untag().await,
            69..=73 => self.put_policy().await,
            74..=76 => self.delete_policy().await,
            77..=80 if self.restore_due => self.restore().await,
            77..=80 => self.delete_refused().await,
            81..=83 => self.replicate_again().await,
            84..=92 => self.peek_replica().await,
            93..=96 => {
                let ms = self.rng.gen_range(0..150);
                self.note(format!("pause {ms} ms"));
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            _ => {
                self.note("wait for convergence".into());
                self.converge().await;
            }
        }
    }

    fn ids(&self) -> Vec<String> {
        self.versions.iter().map(|(id, _)| id.clone()).collect()
    }

    /// Polls until the primary lists both replicas InSync and each replica's snapshot equals the
    /// primary's; panics with the difference after the deadline. Returns the primary's snapshot.
    async fn converge(&mut self) -> Snapshot {
        let ids = self.ids();
        let deadline = Instant::now() + CONVERGENCE;
        loop {
            let primary = snapshot(&self.primary, &self.name, &ids)
                .await
                .expect("primary readable");
            let d = self
                .primary
                .describe_secret()
                .secret_id(&self.name)
                .send()
                .await
                .expect("DescribeSecret on the primary");
            let status = statuses(&d);
            let mut behind = Vec::new();
            for (region, client) in &self.replicas {
                match snapshot(client, &self.name, &ids).await {
                    Ok(s) if s == primary => {
                        self.seen_replica.insert(region, true);
                    }
                    other => behind.push((*region, other)),
                }
            }
            let in_sync = status.len() == self.replicas.len()
                && status
                    .iter()
                    .all(|(_, s)| s.as_ref() == Some(&StatusType::InSync));
            if behind.is_empty() && in_sync {
                return primary;
            }
            if Instant::now() >= deadline {
                let mut report = format!(
                    "replicas did not converge within {CONVERGENCE:?}\nprimary ReplicationStatus: {status:?}\nprimary: {primary:#?}\n"
                );
                for (region, s) in behind {
                    report += &format!("{region}: {s:#?}\n");
                }
                report += &format!("server log (last lines):\n{}", self.server.log_tail());
                panic!("{report}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The final checks, once converged.
    async fn assert_replicas_equal_primary(&mut self) {
        let primary = self.converge().await;
        let ids = self.ids();
        // The primary holds what the case wrote.
        for (id, value) in &self.versions {
            match &primary.values[id] {
                Ok((v, _)) => assert_eq!(v, value, "value of version {id} on the primary"),
                Err(code) => panic!("version {id} unreadable on the primary: {code}"),
            }
        }
        assert_eq!(primary.name.as_deref(), Some(self.name.as_str()));
        assert_eq!(primary.primary_region.as_deref(), Some(PRIMARY));
        assert!(
            !primary.deleted,
            "the primary is not scheduled for deletion"
        );
        let listed: Vec<&String> = primary.listed_versions.keys().collect();
        let described: Vec<&String> = primary.version_ids_to_stages.keys().collect();
        assert_eq!(
            listed, described,
            "ListSecretVersionIds matches DescribeSecret"
        );

        let d = self
            .primary
            .describe_secret()
            .secret_id(&self.name)
            .send()
            .await
            .unwrap();
        let expected: Vec<(String, Option<StatusType>)> = self
            .replicas
            .iter()
            .map(|(r, _)| (r.to_string(), Some(StatusType::InSync)))
            .collect();
        assert_eq!(
            statuses(&d),
            expected,
            "each replica listed once, InSync, in the order added"
        );

        for (region, client) in &self.replicas {
            let copy = snapshot(client, &self.name, &ids).await.unwrap();
            assert_eq!(copy.name, primary.name, "Name in {region}");
            assert_eq!(
                copy.description, primary.description,
                "Description in {region}"
            );
            assert_eq!(copy.tags, primary.tags, "Tags in {region}");
            assert_eq!(
                copy.version_ids_to_stages, primary.version_ids_to_stages,
                "VersionIdsToStages in {region}"
            );
            assert_eq!(
                copy.listed_versions, primary.listed_versions,
                "ListSecretVersionIds in {region}"
            );
            assert_eq!(copy.values, primary.values, "version values in {region}");
            assert_eq!(copy.policy, primary.policy, "resource policy in {region}");
            assert_eq!(copy.deleted, primary.deleted, "DeletedDate in {region}");
            assert_eq!(copy.primary_region.as_deref(), Some(PRIMARY));
            let r = client
                .describe_secret()
                .secret_id(&self.name)
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.arn(),
                Some(
                    self.arn
                        .replace(&format!(":{PRIMARY}:"), &format!(":{region}:"))
                        .as_str()
                ),
                "replica ARN in {region}"
            );
            assert!(r.replication_status().is_empty());
        }
        // At least one refused write per case, on a replica that certainly exists.
        let region = self.replicas.choose(&mut self.rng).unwrap().0;
        self.replica_write_refused(region).await;
    }

    async fn run(mut self) -> usize {
        let steps = self.rng.gen_range(10..=40);
        for _ in 0..steps {
            self.step().await;
        }
        if self.restore_due && self.rng.gen_bool(0.5) {
            self.restore().await;
        }
        self.assert_replicas_equal_primary().await;
        steps
    }
}

#[tokio::test]
async fn random_write_sequences_leave_every_replica_equal_to_its_primary() {
    let server = server();
    let seeds = property_seeds(FIRST_SEED, CASES, &[]);
    let started = Instant::now();
    let mut total = 0;
    for seed in &seeds {
        let case = Case::start(&server, *seed).await;
        total += case.run().await;
    }
    eprintln!(
        "replication property: {} cases, {total} steps, {:?}",
        seeds.len(),
        started.elapsed()
    );
}
