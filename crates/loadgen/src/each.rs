//! Commands that call one operation once for each secret `<prefix>-<start>` ... (`call_each`).
//!
//! `create`: creates the secrets `run --operation put` writes to, `<prefix>-0` ...
//! `<prefix>-<N-1>`, each with a 100-byte value and, if asked, replicas in other Regions
//! (CreateSecret with `AddReplicaRegions`). Creation is not measured; it only has to be quick
//! (a few hundred per second rather than one AWS CLI process per secret).
//!
//! `rotate`: one RotateSecret per secret of the same names (a rotation function and a
//! schedule, rotating immediately), to give a Region many rotation schedules at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;

use crate::run::{Conn, Shared, connect, resolve_target, token, token_prefix};
use crate::signer::{self, Signer};
use crate::{BoxError, CreateArgs, EachArgs, RotateArgs};

pub fn create(args: CreateArgs) -> Result<(), BoxError> {
    let bodies = Bodies {
        name_prefix: args.each.secret_id.clone(),
        replica_regions: args.replica_regions.clone(),
        token_prefix: token_prefix(),
        describe: args.describe,
    };
    call_each(&args.each, signer::CREATE_TARGET, "created", move |i| {
        bodies.body(i)
    })
}

pub fn rotate(args: RotateArgs) -> Result<(), BoxError> {
    let bodies = RotateBodies {
        name_prefix: args.each.secret_id.clone(),
        function: args.function.clone(),
        schedule: args.schedule.clone(),
        token_prefix: token_prefix(),
    };
    call_each(&args.each, signer::ROTATE_TARGET, "rotated", move |i| {
        bodies.body(i)
    })
}

/// The RotateSecret requests of one `rotate` run.
struct RotateBodies {
    name_prefix: String,
    function: String,
    schedule: String,
    token_prefix: u32,
}

impl RotateBodies {
    /// The RotateSecret body of secret `i`.
    fn body(&self, i: usize) -> Bytes {
        let value = serde_json::json!({
            "SecretId": format!("{}-{i}", self.name_prefix),
            "ClientRequestToken": token(self.token_prefix, 0xd0, i as u64),
            "RotationLambdaARN": self.function,
            "RotationRules": { "ScheduleExpression": self.schedule },
        });
        Bytes::from(serde_json::to_vec(&value).expect("JSON serializes"))
    }
}

/// The CreateSecret requests of one `create` run.
struct Bodies {
    name_prefix: String,
    replica_regions: Vec<String>,
    token_prefix: u32,
    describe: bool,
}

/// The teams, environments and services the described secrets are spread over.
const TEAMS: &[&str] = &[
    "payments", "search", "identity", "billing", "storage", "mobile", "data", "edge", "ops",
    "growth",
];
const ENVS: &[&str] = &["prod", "staging", "dev"];

impl Bodies {
    /// The CreateSecret body of secret `i`.
    fn body(&self, i: usize) -> Bytes {
        let mut value = serde_json::json!({
            "Name": format!("{}-{i}", self.name_prefix),
            // Required outside the SDKs (they make one up); unique per secret and process.
            "ClientRequestToken": token(self.token_prefix, 0xc0, i as u64),
            "SecretString": "x".repeat(100),
        });
        if self.describe {
            let (team, env) = (TEAMS[i % TEAMS.len()], ENVS[i % ENVS.len()]);
            value["Description"] = format!(
                "Database credentials of service {} for the {team} team in {env}",
                i % 1000
            )
            .into();
            value["Tags"] = serde_json::json!([
                { "Key": "team", "Value": team },
                { "Key": "env", "Value": env },
                { "Key": "app", "Value": format!("app-{}", i % 1000) },
            ]);
        }
        if !self.replica_regions.is_empty() {
            value["AddReplicaRegions"] = self
                .replica_regions
                .iter()
                .map(|r| serde_json::json!({ "Region": r }))
                .collect();
        }
        Bytes::from(serde_json::to_vec(&value).expect("JSON serializes"))
    }
}

/// Sends `body(i)` as `operation` once for every secret index of `args`, `args.concurrency` at
/// a time; `done` names what happened in the progress lines ("created 100000 of ...").
fn call_each(
    args: &EachArgs,
    operation: &'static str,
    done: &'static str,
    body: impl Fn(usize) -> Bytes + Send + Sync + 'static,
) -> Result<(), BoxError> {
    if args.secrets == 0 || args.concurrency == 0 {
        return Err("--secrets and --concurrency must be positive".into());
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(call_all(args, operation, done, Arc::new(body)))
}

async fn call_all(
    args: &EachArgs,
    operation: &'static str,
    done_verb: &'static str,
    body: Arc<dyn Fn(usize) -> Bytes + Send + Sync>,
) -> Result<(), BoxError> {
    let target = Arc::new(resolve_target(&args.endpoint, operation, body(args.start)).await?);
    let shared = Arc::new(Shared::new());
    let next = Arc::new(AtomicUsize::new(args.start));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let progress = Arc::new(AtomicUsize::new(0));
    for _ in 0..args.concurrency.min(args.secrets) {
        let sender = connect(&target)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", target.addr))?;
        let mut conn = Conn::new(sender, Arc::clone(&target), Arc::clone(&shared));
        let mut signer = Signer::new(target.signing.clone())?;
        let (next, body, timeout) = (Arc::clone(&next), Arc::clone(&body), args.timeout);
        let progress = Arc::clone(&progress);
        let (start, total) = (args.start, args.start + args.secrets);
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0usize, 0usize);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                if conn.send(&mut signer, Some(body(i)), timeout).await.ok {
                    ok += 1;
                } else {
                    failed += 1;
                }
                let done = progress.fetch_add(1, Ordering::Relaxed) + 1;
                if done.is_multiple_of(100_000) {
                    eprintln!(
                        "{done_verb} {done} of {} ({:.0}/s so far)",
                        total - start,
                        done as f64 / started.elapsed().as_secs_f64().max(1e-9)
                    );
                }
            }
            (ok, failed)
        }));
    }
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        let (o, f) = t.await?;
        ok += o;
        failed += f;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{done_verb} {ok} secrets ({}-{} ... {}-{}) in {secs:.1} s ({:.0}/s), {failed} errors",
        args.secret_id,
        args.start,
        args.secret_id,
        args.start + args.secrets - 1,
        ok as f64 / secs.max(1e-9),
    );
    if failed > 0 {
        let first = shared.take_first_error().unwrap_or_default();
        let op = operation.trim_start_matches("secretsmanager.");
        return Err(format!("{failed} {op} calls failed; the first: {first}").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_name_the_secret_and_its_replicas() {
        let bodies = Bodies {
            name_prefix: "lag".into(),
            replica_regions: vec!["us-east-1".into(), "eu-west-1".into()],
            token_prefix: 7,
            describe: true,
        };
        let v: serde_json::Value = serde_json::from_slice(&bodies.body(2)).unwrap();
        assert_eq!(v["Name"], "lag-2");
        assert_eq!(
            v["AddReplicaRegions"],
            serde_json::json!([{ "Region": "us-east-1" }, { "Region": "eu-west-1" }])
        );
        assert_eq!(v["SecretString"].as_str().unwrap().len(), 100);
        assert_eq!(
            v["Description"],
            "Database credentials of service 2 for the identity team in dev"
        );
        assert_eq!(
            v["Tags"][0],
            serde_json::json!({"Key": "team", "Value": "identity"})
        );
        // AWS requires 32-64 characters; two secrets never share one.
        let token = v["ClientRequestToken"].as_str().unwrap();
        assert!((32..=64).contains(&token.len()));
        let other: serde_json::Value = serde_json::from_slice(&bodies.body(1)).unwrap();
        assert_ne!(other["ClientRequestToken"], v["ClientRequestToken"]);
    }

    #[test]
    fn rotate_bodies_name_the_function_and_schedule() {
        let bodies = RotateBodies {
            name_prefix: "scale".into(),
            function: "arn:aws:lambda:us-east-1:123456789012:function:coffer-password".into(),
            schedule: "rate(4 hours)".into(),
            token_prefix: 7,
        };
        let v: serde_json::Value = serde_json::from_slice(&bodies.body(3)).unwrap();
        assert_eq!(v["SecretId"], "scale-3");
        assert_eq!(
            v["RotationLambdaARN"],
            "arn:aws:lambda:us-east-1:123456789012:function:coffer-password"
        );
        assert_eq!(v["RotationRules"]["ScheduleExpression"], "rate(4 hours)");
        let token = v["ClientRequestToken"].as_str().unwrap();
        assert!((32..=64).contains(&token.len()));
        let other: serde_json::Value = serde_json::from_slice(&bodies.body(4)).unwrap();
        assert_ne!(other["ClientRequestToken"], v["ClientRequestToken"]);
    }
}
