//! Replication between Regions of one process, through aws-sdk-rust: a replica's whole life as
//! a Rust user drives it, what tests/python has no case for (a key of another Region, removal
//! racing a forced deletion, a Region added again), and the metrics. AWS's codes and messages
//! around replicas live in tests/python/test_replication.py.

use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::{ReplicaRegionType, StatusType, Tag};

use crate::server::{Server, unique};

const REGIONS: &str = "us-west-2,us-east-1,eu-west-1";

fn server() -> Server {
    Server::start_with(&[
        "--regions",
        REGIONS,
        "--replication-failure-timeout-secs",
        "2",
    ])
}

fn replica(region: &str) -> ReplicaRegionType {
    ReplicaRegionType::builder().region(region).build()
}

/// Polls DescribeSecret in the primary's Region until `region`'s status is not InProgress.
async fn settled(primary: &Client, name: &str, region: &str) -> (StatusType, Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let d = primary
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .unwrap();
        if let Some(s) = d
            .replication_status()
            .iter()
            .find(|s| s.region() == Some(region))
        {
            let status = s.status().cloned().unwrap();
            if status != StatusType::InProgress {
                return (status, s.status_message().map(str::to_string));
            }
        }
        assert!(
            Instant::now() < deadline,
            "replication to {region} did not settle"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until `check` holds on the replica's DescribeSecret.
async fn eventually<F>(client: &Client, name: &str, what: &str, check: F)
where
    F: Fn(&aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput) -> bool,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(d) = client.describe_secret().secret_id(name).send().await
            && check(&d)
        {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn value(client: &Client, name: &str, stage: &str) -> Option<String> {
    client
        .get_secret_value()
        .secret_id(name)
        .version_stage(stage)
        .send()
        .await
        .ok()
        .and_then(|o| o.secret_string().map(str::to_string))
}

#[tokio::test]
async fn replica_has_same_name_arn_suffix_versions_and_values_and_follows_changes() {
    let server = server();
    let west = server.client("us-west-2");
    let east = server.client("us-east-1");
    let name = unique("production/DBWest");
    let created = west
        .create_secret()
        .name(&name)
        .secret_string("v1")
        .description("orders")
        .tags(Tag::builder().key("team").value("orders").build())
        .send()
        .await
        .unwrap();
    let v2 = west
        .put_secret_value()
        .secret_id(&name)
        .secret_string("v2")
        .version_stages("AWSCURRENT")
        .version_stages("blue")
        .send()
        .await
        .unwrap();
    let out = west
        .replicate_secret_to_regions()
        .secret_id(&name)
        .add_replica_regions(replica("us-east-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.arn(), created.arn());
    let status = &out.replication_status()[0];
    assert_eq!(status.region(), Some("us-east-1"));
    assert_eq!(status.kms_key_id(), Some("alias/aws/secretsmanager"));
    assert_eq!(
        settled(&west, &name, "us-east-1").await,
        (StatusType::InSync, Some("Replication succeeded".into()))
    );

    let primary = west
        .describe_secret()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    let copy = east
        .describe_secret()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(primary.primary_region(), Some("us-west-2"));
    assert_eq!(copy.primary_region(), Some("us-west-2"));
    assert!(copy.replication_status().is_empty());
    assert_eq!(
        copy.arn().unwrap(),
        created.arn().unwrap().replace(":us-west-2:", ":us-east-1:")
    );
    assert_eq!(
        copy.version_ids_to_stages(),
        primary.version_ids_to_stages()
    );
    assert_eq!(copy.description(), Some("orders"));
    assert_eq!(copy.tags(), primary.tags());
    assert_eq!(
        value(&east, &name, "AWSCURRENT").await.as_deref(),
        Some("v2")
    );
    assert_eq!(
        value(&east, &name, "AWSPREVIOUS").await.as_deref(),
        Some("v1")
    );
    assert_eq!(value(&east, &name, "blue").await.as_deref(), Some("v2"));
    let replica_v2 = east
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(replica_v2.version_id(), v2.version_id());

    // Later changes of every kind reach the replica.
    west.put_secret_value()
        .secret_id(&name)
        .secret_string("v3")
        .send()
        .await
        .unwrap();
    west.untag_resource()
        .secret_id(&name)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    west.update_secret()
        .secret_id(&name)
        .description("orders db")
        .send()
        .await
        .unwrap();
    west.put_resource_policy()
        .secret_id(&name)
        .resource_policy(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    west.update_secret_version_stage()
        .secret_id(&name)
        .version_stage("blue")
        .remove_from_version_id(v2.version_id().unwrap())
        .send()
        .await
        .unwrap();
    eventually(&east, &name, "replica follows", |d| {
        d.description() == Some("orders db") && d.tags().is_empty() && d.tags.is_some()
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let p = west
            .describe_secret()
            .secret_id(&name)
            .send()
            .await
            .unwrap();
        let r = east
            .describe_secret()
            .secret_id(&name)
            .send()
            .await
            .unwrap();
        if p.version_ids_to_stages() == r.version_ids_to_stages() {
            break;
        }
        assert!(Instant::now() < deadline, "labels converge");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        value(&east, &name, "AWSCURRENT").await.as_deref(),
        Some("v3")
    );
    let policy = east
        .get_resource_policy()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    assert!(policy.resource_policy().unwrap().contains("123456789012"));
}

#[tokio::test]
async fn a_key_of_another_region_fails_that_replica() {
    let server = server();
    let west = server.client("us-west-2");
    let name = unique("wrongkey");
    let out = west
        .create_secret()
        .name(&name)
        .secret_string("x")
        .send()
        .await
        .unwrap();
    let account = out.arn().unwrap().split(':').nth(4).unwrap().to_string();
    let west_key = format!("arn:aws:kms:us-west-2:{account}:alias/aws/secretsmanager");
    west.replicate_secret_to_regions()
        .secret_id(&name)
        .add_replica_regions(
            ReplicaRegionType::builder()
                .region("us-east-1")
                .kms_key_id(&west_key)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (status, message) = settled(&west, &name, "us-east-1").await;
    assert_eq!(status, StatusType::Failed);
    let message = message.unwrap();
    assert!(message.starts_with("Replication failed: "), "{message}");
    assert!(message.contains(&west_key), "{message}");
    // Retrying with the replica Region's own key succeeds.
    west.replicate_secret_to_regions()
        .secret_id(&name)
        .add_replica_regions(
            ReplicaRegionType::builder()
                .region("us-east-1")
                .kms_key_id("alias/aws/secretsmanager")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        settled(&west, &name, "us-east-1").await.0,
        StatusType::InSync
    );
}

#[tokio::test]
async fn removed_replicas_are_deleted_even_when_the_primary_is_force_deleted_right_after() {
    let server = server();
    let west = server.client("us-west-2");
    let east = server.client("us-east-1");
    let eu = server.client("eu-west-1");
    let name = unique("remove");
    west.create_secret()
        .name(&name)
        .secret_string("x")
        .add_replica_regions(replica("us-east-1"))
        .add_replica_regions(replica("eu-west-1"))
        .send()
        .await
        .unwrap();
    settled(&west, &name, "us-east-1").await;
    settled(&west, &name, "eu-west-1").await;
    let out = west
        .remove_regions_from_replication()
        .secret_id(&name)
        .remove_replica_regions("us-east-1")
        .send()
        .await
        .unwrap();
    assert_eq!(out.replication_status().len(), 1);
    let out = west
        .remove_regions_from_replication()
        .secret_id(&name)
        .remove_replica_regions("eu-west-1")
        .send()
        .await
        .unwrap();
    assert!(out.replication_status().is_empty());
    west.delete_secret()
        .secret_id(&name)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    for client in [&east, &eu] {
        let deadline = Instant::now() + Duration::from_secs(15);
        while client
            .describe_secret()
            .secret_id(&name)
            .send()
            .await
            .is_ok()
        {
            assert!(Instant::now() < deadline, "replica was stranded");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn metrics_expose_replication_lag_and_queue_depth() {
    let server = server();
    let west = server.client("us-west-2");
    let name = unique("metrics");
    west.create_secret()
        .name(&name)
        .secret_string("x")
        .add_replica_regions(replica("us-east-1"))
        .send()
        .await
        .unwrap();
    settled(&west, &name, "us-east-1").await;
    let text = metrics(&server);
    assert!(
        text.contains(
            r#"coffer_replication_lag_seconds_count{source="us-west-2",destination="us-east-1"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"coffer_replication_queue_depth{source="us-west-2",destination="us-east-1"} 0"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"coffer_replication_deliveries_total{source="us-west-2",destination="us-east-1",outcome="applied"} 1"#), "{text}");
}

/// The server's `/metrics` text.
fn metrics(server: &Server) -> String {
    let addr = server.endpoint.trim_start_matches("http://");
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// Syncs leave out the values a replica already acknowledged. A replica removed and added
/// again no longer has them: it asks for them (`resend`), and gets every version's value.
#[tokio::test]
async fn a_replica_removed_and_added_again_gets_every_value_back() {
    let server = server();
    let west = server.client("us-west-2");
    let east = server.client("us-east-1");
    let name = unique("readded");
    west.create_secret()
        .name(&name)
        .secret_string("value-1")
        .add_replica_regions(replica("us-east-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        settled(&west, &name, "us-east-1").await.0,
        StatusType::InSync
    );
    let mut ids = vec![
        west.describe_secret()
            .secret_id(&name)
            .send()
            .await
            .unwrap()
            .version_ids_to_stages()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .clone(),
    ];
    for n in 2..=3 {
        let put = west
            .put_secret_value()
            .secret_id(&name)
            .secret_string(format!("value-{n}"))
            .send()
            .await
            .unwrap();
        ids.push(put.version_id().unwrap().to_string());
        assert_eq!(
            settled(&west, &name, "us-east-1").await.0,
            StatusType::InSync
        );
    }
    west.remove_regions_from_replication()
        .secret_id(&name)
        .remove_replica_regions("us-east-1")
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while east.describe_secret().secret_id(&name).send().await.is_ok() {
        assert!(Instant::now() < deadline, "the replica was not removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    west.replicate_secret_to_regions()
        .secret_id(&name)
        .add_replica_regions(replica("us-east-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        settled(&west, &name, "us-east-1").await.0,
        StatusType::InSync
    );
    for (n, id) in ids.iter().enumerate() {
        let got = east
            .get_secret_value()
            .secret_id(&name)
            .version_id(id)
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.secret_string(),
            Some(format!("value-{}", n + 1).as_str())
        );
    }
    let text = metrics(&server);
    assert!(
        text.contains(r#"coffer_replication_deliveries_total{source="us-west-2",destination="us-east-1",outcome="resend"} 1"#),
        "{text}"
    );
}
