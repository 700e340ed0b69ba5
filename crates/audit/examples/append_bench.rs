//! Throughput of the appender alone: `cargo run --release -p coffer-audit --example
//! append_bench -- [tasks] [records per task] [fsync]`. Appends GetSecretValue-sized records
//! from concurrent tasks to a temporary file and prints records/s.

use std::sync::Arc;
use std::time::Instant;

use coffer_audit::{AuditLog, Options, Record, UserIdentity};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tasks: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let per_task: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let fsync = args.get(3).is_some_and(|a| a == "fsync");
    let dir = std::env::temp_dir().join(format!("coffer-audit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("audit.log");
    let log = Arc::new(AuditLog::open(&path, Options { fsync }).expect("open"));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let log = log.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..per_task {
                let mut r = Record::new(
                    "secretsmanager.amazonaws.com".into(),
                    "GetSecretValue".into(),
                    true,
                    "6543e747-e327-45f4-a6a7-c60ddfe8a05f".into(),
                );
                r.user_identity = UserIdentity::authenticated(
                    "arn:aws:iam::123456789012:user/admin",
                    "123456789012",
                    Some("admin"),
                    "AKIAE67MEMVWBNM24HOX",
                );
                r.aws_region = "us-east-1".into();
                r.source_ip_address = "127.0.0.1".into();
                r.user_agent = "coffer-loadgen/0.1".into();
                r.request_parameters = serde_json::json!({"SecretId": "bench-secret"});
                log.append(&r).await.expect("append");
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    let elapsed = started.elapsed();
    let n = tasks * per_task;
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "{n} records from {tasks} tasks in {:.2} s: {:.0} records/s, {:.2} µs each, {} bytes/record (fsync: {fsync})",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / n as f64,
        bytes / n as u64
    );
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}
