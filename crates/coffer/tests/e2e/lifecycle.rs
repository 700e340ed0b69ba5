//! The binary's contract: initialisation, restart, damaged directories, Regions, shutdown.

use crate::server::{Server, coffer_bin, error_of, unique};

#[tokio::test]
async fn first_start_prints_the_aws_cli_exports_and_writes_profile_files() {
    let server = Server::start_with(&["--account-id", "123456789012"]);
    let export = &server.stdout_lines[0];
    let creds = server
        .data_dir
        .join("aws/credentials")
        .canonicalize()
        .unwrap();
    let config = server.data_dir.join("aws/config").canonicalize().unwrap();
    assert_eq!(
        export,
        &format!(
            "export AWS_SHARED_CREDENTIALS_FILE={} AWS_CONFIG_FILE={}",
            creds.display(),
            config.display()
        )
    );
    let config_text = std::fs::read_to_string(&config).unwrap();
    assert!(config_text.contains("region = us-east-1"));
    assert!(config_text.contains(&format!("endpoint_url = {}", server.endpoint)));
    use std::os::unix::fs::PermissionsExt;
    for key in [
        "us-east-1",
        "us-east-2",
        "us-west-2",
        "eu-west-1",
        "deployment",
    ] {
        let mode = std::fs::metadata(server.data_dir.join(format!("keys/{key}.key")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "root key {key} is private");
    }
    let sm = server.client("us-east-1");
    let out = sm
        .create_secret()
        .name("acct")
        .secret_string("x")
        .send()
        .await
        .unwrap();
    assert!(out.arn().unwrap().contains(":123456789012:secret:acct-"));
}

#[tokio::test]
async fn secrets_survive_a_restart_on_the_same_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut first = Server::start_in(&dir, &[]).unwrap();
    let name = unique("durable");
    first
        .client("us-west-2")
        .create_secret()
        .name(&name)
        .secret_string("kept")
        .send()
        .await
        .unwrap();
    assert_eq!(first.terminate(), Some(0), "SIGTERM is a clean exit");
    let second = Server::start_in(&dir, &[]).unwrap();
    assert_eq!(
        second.access_key, first.access_key,
        "the admin key is reused"
    );
    let got = second
        .client("us-west-2")
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("kept"));
}

#[tokio::test]
async fn a_killed_server_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let first = Server::start_in(&dir, &[]).unwrap();
    let sm = first.client("us-east-1");
    let mut names = Vec::new();
    for i in 0..20 {
        let name = unique(&format!("crash{i}"));
        sm.create_secret()
            .name(&name)
            .secret_string(format!("v{i}"))
            .send()
            .await
            .unwrap();
        names.push(name);
    }
    drop(first); // SIGKILL
    let second = Server::start_in(&dir, &[]).unwrap();
    let sm = second.client("us-east-1");
    for (i, name) in names.iter().enumerate() {
        let got = sm.get_secret_value().secret_id(name).send().await.unwrap();
        assert_eq!(got.secret_string(), Some(format!("v{i}").as_str()));
    }
}

/// What one writer of [`a_server_killed_under_48_concurrent_writers_keeps_every_acknowledged_write`]
/// got a 200 for: `(secret name, version id, value)`, in order.
type Acknowledged = Vec<(String, String, String)>;

/// One writer: creates a secret, writes versions to it (PutSecretValue and UpdateSecret),
/// moves to a new secret after 20 (AWS's limit on unlabelled versions is far away), until a
/// call fails (the server was killed). Returns what was acknowledged.
async fn write_until_refused(
    sm: aws_sdk_secretsmanager::Client,
    writer: usize,
    acknowledged: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Acknowledged {
    use std::sync::atomic::Ordering;
    let mut done = Acknowledged::new();
    for round in 0.. {
        let name = unique(&format!("load{writer}-{round}"));
        let value = format!("{name} v0");
        let Ok(created) = sm
            .create_secret()
            .name(&name)
            .secret_string(&value)
            .send()
            .await
        else {
            return done;
        };
        done.push((name.clone(), created.version_id().unwrap().into(), value));
        acknowledged.fetch_add(1, Ordering::Relaxed);
        for n in 1..20 {
            let value = format!("{name} v{n}");
            let version = if n % 3 == 0 {
                sm.update_secret()
                    .secret_id(&name)
                    .secret_string(&value)
                    .send()
                    .await
                    .ok()
                    .map(|out| out.version_id().unwrap().to_string())
            } else {
                sm.put_secret_value()
                    .secret_id(&name)
                    .secret_string(&value)
                    .send()
                    .await
                    .ok()
                    .map(|out| out.version_id().unwrap().to_string())
            };
            let Some(version) = version else { return done };
            done.push((name.clone(), version, value));
            acknowledged.fetch_add(1, Ordering::Relaxed);
        }
    }
    unreachable!()
}

/// Group commit answers a write only once the transaction holding it (and the writes of up to
/// hundreds of other callers) committed: SIGKILL in the middle of 48 concurrent writers loses
/// no write that got its 200, and the last acknowledged version of each secret is current
/// unless a later write (sent, maybe unanswered) replaced it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_under_48_concurrent_writers_keeps_every_acknowledged_write() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut first = Server::start_in(&dir, &[]).unwrap();
    let sm = first.client("us-east-1");
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..48)
        .map(|w| tokio::spawn(write_until_refused(sm.clone(), w, acknowledged.clone())))
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while acknowledged.load(Ordering::Relaxed) < 600 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} writes acknowledged in 120 s",
            acknowledged.load(Ordering::Relaxed)
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // SIGKILL while every writer has a request in flight.
    let mut child = first.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let mut all = Vec::new();
    for writer in writers {
        let done = writer.await.unwrap();
        assert!(!done.is_empty(), "every writer got some writes through");
        all.push(done);
    }
    drop(first);

    let second = Server::start_in(&dir, &[]).unwrap();
    let sm = second.client("us-east-1");
    let mut checked = 0;
    for done in &all {
        for (name, version, value) in done {
            let got = sm
                .get_secret_value()
                .secret_id(name)
                .version_id(version)
                .send()
                .await
                .unwrap_or_else(|e| panic!("acknowledged {name} {version} is lost: {e:?}"));
            assert_eq!(got.secret_string(), Some(value.as_str()));
            checked += 1;
        }
        // The writer's last acknowledged write: current, or replaced by its next one (which
        // reached the server before the kill but whose answer did not come back).
        let (name, version, _) = done.last().unwrap();
        let current = sm.get_secret_value().secret_id(name).send().await.unwrap();
        let current = current.version_id().unwrap();
        if current != version {
            let described = sm.describe_secret().secret_id(name).send().await.unwrap();
            let versions = described.version_ids_to_stages().unwrap();
            assert_eq!(
                versions[version.as_str()],
                ["AWSPREVIOUS"],
                "{name}: the last acknowledged version was replaced by exactly one later write"
            );
        }
    }
    assert!(checked >= 600, "{checked} acknowledged writes checked");
}

#[tokio::test]
async fn a_damaged_store_is_reported_and_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    drop(Server::start_in(&dir, &[]).unwrap());
    let store = dir.join("regions/us-east-2.db");
    let _ = std::fs::remove_file(dir.join("regions/us-east-2.db-wal"));
    let _ = std::fs::remove_file(dir.join("regions/us-east-2.db-shm"));
    std::fs::write(&store, b"this is not a database at all, it is garbage").unwrap();
    let err = Server::start_in(&dir, &[]).err().expect("start must fail");
    assert!(err.contains("us-east-2.db"), "error names the file: {err}");
    assert_eq!(
        std::fs::read(&store).unwrap(),
        b"this is not a database at all, it is garbage"
    );
}

#[tokio::test]
async fn a_group_readable_root_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    drop(Server::start_in(&dir, &[]).unwrap());
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("keys/us-east-1.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Server::start_in(&dir, &[]).err().expect("start must fail");
    assert!(err.contains("us-east-1.key"), "{err}");
}

#[tokio::test]
async fn regions_are_isolated_and_arns_carry_region_and_partition() {
    let server = Server::start_with(&["--regions", "us-east-1,eu-west-1,us-gov-west-1"]);
    let name = unique("iso");
    let east = server.client("us-east-1");
    east.create_secret()
        .name(&name)
        .secret_string("x")
        .send()
        .await
        .unwrap();
    let (code, _) = error_of(
        server
            .client("eu-west-1")
            .get_secret_value()
            .secret_id(&name)
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "ResourceNotFoundException");
    let gov = server
        .client("us-gov-west-1")
        .create_secret()
        .name(&name)
        .secret_string("y")
        .send()
        .await
        .unwrap();
    assert!(
        gov.arn()
            .unwrap()
            .starts_with("arn:aws-us-gov:secretsmanager:us-gov-west-1:")
    );
    let (code, _) = error_of(
        server
            .client("us-west-2")
            .list_secrets()
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidSignatureException");
}

#[test]
fn unknown_region_flag_is_a_clear_error() {
    let out = std::process::Command::new(coffer_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--regions",
            "moon-east-1",
            "--data-dir",
        ])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'moon-east-1' is not an AWS Region"));
}

#[test]
fn health_answers_once_ready() {
    let server = Server::start();
    let addr = server.endpoint.trim_start_matches("http://");
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""status":"ok""#));
}

#[tokio::test]
async fn a_store_from_a_newer_version_is_refused_and_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut first = Server::start_in(&dir, &[]).unwrap();
    assert_eq!(first.terminate(), Some(0));
    let store = dir.join("regions/eu-west-1.db");
    {
        use sqlx::{ConnectOptions, Connection};
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&store)
            .connect()
            .await
            .unwrap();
        sqlx::query("UPDATE coffer_meta SET meta_value = '99' WHERE meta_key = 'format_version'")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let before = std::fs::read(&store).unwrap();
    let err = Server::start_in(&dir, &[]).err().expect("start must fail");
    assert!(err.contains("eu-west-1.db"), "{err}");
    assert!(err.contains("newer Coffer"), "{err}");
    assert_eq!(
        std::fs::read(&store).unwrap(),
        before,
        "the store is left untouched"
    );
}

/// After a restart the cache is empty, so DescribeSecret and GetSecretValue by label read the
/// secret from the store, first with only its labelled versions (handed out, not cached), then,
/// read again, with every version (cached). Every read answers as before: VersionIdsToStages,
/// GetSecretValue by AWSCURRENT, AWSPREVIOUS, a custom label and by the VersionId of a version
/// without labels, by name and by ARN; and a write after those reads keeps every version.
#[tokio::test]
async fn reads_by_label_from_the_store_answer_as_before() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut first = Server::start_in(&dir, &[]).unwrap();
    let sm = first.client("us-east-1");
    let name = unique("labelled");
    let created = sm
        .create_secret()
        .name(&name)
        .secret_string("value-0")
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap().to_string();
    let mut ids = vec![created.version_id().unwrap().to_string()];
    for i in 1..=6 {
        let put = sm
            .put_secret_value()
            .secret_id(&name)
            .secret_string(format!("value-{i}"))
            .send()
            .await
            .unwrap();
        ids.push(put.version_id().unwrap().to_string());
    }
    // value-1's version keeps a custom label; value-0, 2, 3 and 4 have none left.
    sm.update_secret_version_stage()
        .secret_id(&name)
        .version_stage("blue")
        .move_to_version_id(&ids[1])
        .send()
        .await
        .unwrap();
    assert_eq!(first.terminate(), Some(0));

    let second = Server::start_in(&dir, &[]).unwrap();
    // No retries: a read that failed once must fail the test, not be retried into a hit.
    let sm = aws_sdk_secretsmanager::Client::from_conf(
        second
            .client("us-east-1")
            .config()
            .to_builder()
            .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled())
            .build(),
    );
    for round in 0..3 {
        for id in [name.as_str(), arn.as_str()] {
            let described = sm.describe_secret().secret_id(id).send().await.unwrap();
            let stages = described.version_ids_to_stages().unwrap();
            assert_eq!(stages.len(), 3, "{stages:?}");
            assert_eq!(stages[&ids[6]], ["AWSCURRENT"]);
            assert_eq!(stages[&ids[5]], ["AWSPREVIOUS"]);
            assert_eq!(stages[&ids[1]], ["blue"]);
            // GetSecretValue of `id` by `stage` or `version`.
            let get = |stage: Option<&str>, version: Option<&str>| {
                sm.get_secret_value()
                    .secret_id(id)
                    .set_version_stage(stage.map(str::to_string))
                    .set_version_id(version.map(str::to_string))
                    .send()
            };
            let current = get(None, None).await.unwrap();
            assert_eq!(current.secret_string(), Some("value-6"), "round {round}");
            assert_eq!(current.version_id(), Some(ids[6].as_str()));
            assert_eq!(current.version_stages(), ["AWSCURRENT"]);
            let previous = get(Some("AWSPREVIOUS"), None).await.unwrap();
            assert_eq!(previous.secret_string(), Some("value-5"));
            let blue = get(Some("blue"), None).await.unwrap();
            assert_eq!(blue.secret_string(), Some("value-1"));
            assert_eq!(blue.version_stages(), ["blue"]);
            for (i, version_id) in ids.iter().enumerate().take(5) {
                if i == 1 {
                    continue;
                }
                let old = get(None, Some(version_id)).await.unwrap();
                assert_eq!(old.secret_string(), Some(format!("value-{i}").as_str()));
                assert!(old.version_stages().is_empty());
            }
            let missing = get(Some("green"), None).await.unwrap_err();
            assert_eq!(error_of(missing).0, "ResourceNotFoundException");
        }
    }

    // A write based on what the reads cached keeps the versions without labels.
    sm.put_secret_value()
        .secret_id(&name)
        .secret_string("value-7")
        .send()
        .await
        .unwrap();
    let listed = sm
        .list_secret_version_ids()
        .secret_id(&name)
        .include_deprecated(true)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.versions().len(), 8);
    let oldest = sm
        .get_secret_value()
        .secret_id(&name)
        .version_id(&ids[0])
        .send()
        .await
        .unwrap();
    assert_eq!(oldest.secret_string(), Some("value-0"));
}
