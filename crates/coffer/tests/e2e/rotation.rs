//! Rotation through aws-sdk-rust with the built-in `coffer-password` rotator.

use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::{ReplicaRegionType, RotationRulesType};

use crate::server::{Server, error_of, unique};

fn password_fn(account: &str, region: &str) -> String {
    format!("arn:aws:lambda:{region}:{account}:function:coffer-password")
}

fn account_of(arn: &str) -> String {
    arn.split(':').nth(4).unwrap().to_string()
}

/// Waits until the secret has a LastRotatedDate and no AWSPENDING label left.
async fn rotated(
    client: &Client,
    name: &str,
) -> aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let d = client
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .unwrap();
        let pending = d
            .version_ids_to_stages()
            .is_some_and(|m| m.values().any(|s| s.iter().any(|l| l == "AWSPENDING")));
        if d.last_rotated_date().is_some() && !pending {
            return d;
        }
        assert!(Instant::now() < deadline, "rotation did not finish: {d:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn coffer_password_rotates_the_password_field_and_moves_the_labels() {
    let server = Server::start();
    let sm = server.client("us-east-1");
    let name = unique("db-creds");
    let created = sm
        .create_secret()
        .name(&name)
        .secret_string(r#"{"username":"app","password":"old-password","port":5432}"#)
        .send()
        .await
        .unwrap();
    let v1 = created.version_id().unwrap().to_string();
    let account = account_of(created.arn().unwrap());
    let out = sm
        .rotate_secret()
        .secret_id(&name)
        .rotation_lambda_arn(password_fn(&account, "us-east-1"))
        .rotation_rules(
            RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let v2 = out.version_id().unwrap().to_string();
    let d = rotated(&sm, &name).await;
    assert_eq!(d.rotation_enabled(), Some(true));
    assert_eq!(
        d.rotation_lambda_arn(),
        Some(password_fn(&account, "us-east-1").as_str())
    );
    assert_eq!(
        d.rotation_rules().unwrap().automatically_after_days(),
        Some(30)
    );
    assert!(d.next_rotation_date().is_some());
    let stages = d.version_ids_to_stages().unwrap();
    assert_eq!(stages.get(&v2).unwrap(), &["AWSCURRENT"]);
    assert_eq!(stages.get(&v1).unwrap(), &["AWSPREVIOUS"]);
    let current = sm.get_secret_value().secret_id(&name).send().await.unwrap();
    let value: serde_json::Value = serde_json::from_str(current.secret_string().unwrap()).unwrap();
    assert_eq!(value["username"], "app");
    assert_eq!(value["port"], 5432);
    let password = value["password"].as_str().unwrap();
    assert_ne!(password, "old-password");
    assert_eq!(password.len(), 32);
}

#[tokio::test]
async fn rotate_secret_refuses_unknown_functions_and_saves_nothing() {
    let server = Server::start();
    let sm = server.client("us-east-1");
    let name = unique("nofn");
    let created = sm
        .create_secret()
        .name(&name)
        .secret_string("x")
        .send()
        .await
        .unwrap();
    let account = account_of(created.arn().unwrap());
    let (code, message) = error_of(
        sm.rotate_secret()
            .secret_id(&name)
            .rotation_lambda_arn(format!(
                "arn:aws:lambda:us-east-1:{account}:function:does-not-exist"
            ))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "AccessDeniedException");
    assert_eq!(
        message,
        "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com."
    );
    let d = sm.describe_secret().secret_id(&name).send().await.unwrap();
    assert!(d.rotation_enabled().is_none() && d.rotation_lambda_arn().is_none());
    let (code, message) = error_of(
        sm.rotate_secret()
            .secret_id(&name)
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidRequestException");
    assert_eq!(
        message,
        "No Lambda rotation function ARN is associated with this secret."
    );
    let (code, _) = error_of(
        sm.rotate_secret()
            .secret_id(&name)
            .rotation_lambda_arn(password_fn(&account, "us-east-1"))
            .rotation_rules(
                RotationRulesType::builder()
                    .schedule_expression("rate(1 hour)")
                    .build(),
            )
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidParameterException");
}

#[tokio::test]
async fn cancel_keeps_rules_and_function_but_disables_rotation() {
    let server = Server::start();
    let sm = server.client("us-east-1");
    let name = unique("cancel");
    let created = sm
        .create_secret()
        .name(&name)
        .secret_string("x")
        .send()
        .await
        .unwrap();
    let account = account_of(created.arn().unwrap());
    sm.rotate_secret()
        .secret_id(&name)
        .rotation_lambda_arn(password_fn(&account, "us-east-1"))
        .rotation_rules(
            RotationRulesType::builder()
                .schedule_expression("cron(0 16 ? * 1#1 *)")
                .duration("2h")
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await
        .unwrap();
    let d = sm.describe_secret().secret_id(&name).send().await.unwrap();
    assert_eq!(d.rotation_enabled(), Some(true));
    assert!(d.next_rotation_date().is_some());
    assert!(
        d.last_rotated_date().is_none(),
        "RotateImmediately=false does not rotate now"
    );
    sm.cancel_rotate_secret()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    let d = sm.describe_secret().secret_id(&name).send().await.unwrap();
    assert_eq!(d.rotation_enabled(), Some(false));
    assert!(d.next_rotation_date().is_none());
    assert_eq!(
        d.rotation_rules().unwrap().schedule_expression(),
        Some("cron(0 16 ? * 1#1 *)")
    );
    assert!(d.rotation_lambda_arn().is_some());
}

#[tokio::test]
async fn rotation_runs_in_the_primary_and_reaches_replicas_and_promoted_secrets_rotate_alone() {
    let server = Server::start_with(&["--regions", "us-west-2,us-east-1"]);
    let west = server.client("us-west-2");
    let east = server.client("us-east-1");
    let name = unique("rotrep");
    let created = west
        .create_secret()
        .name(&name)
        .secret_string("first")
        .add_replica_regions(ReplicaRegionType::builder().region("us-east-1").build())
        .send()
        .await
        .unwrap();
    let account = account_of(created.arn().unwrap());
    let out = west
        .rotate_secret()
        .secret_id(&name)
        .rotation_lambda_arn(password_fn(&account, "us-west-2"))
        .send()
        .await
        .unwrap();
    rotated(&west, &name).await;
    let primary_value = west
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // The replica is created asynchronously: it may not exist yet when the rotation ends.
        let r = east.get_secret_value().secret_id(&name).send().await;
        if let Ok(r) = &r
            && r.version_id() == out.version_id()
        {
            assert_eq!(r.secret_string(), primary_value.secret_string());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rotated value did not reach the replica: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, message) = error_of(
        east.rotate_secret()
            .secret_id(&name)
            .rotation_lambda_arn(password_fn(&account, "us-east-1"))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "InvalidParameterException");
    assert_eq!(
        message,
        "Operation not permitted on a replica secret. Call must be made in primary secret's region."
    );
    // Promote, then rotate in the promoted secret's own Region.
    east.stop_replication_to_replica()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    east.rotate_secret()
        .secret_id(&name)
        .rotation_lambda_arn(password_fn(&account, "us-east-1"))
        .send()
        .await
        .unwrap();
    // LastRotatedDate came over from the primary, so `rotated` alone could return before the
    // promoted secret's own rotation: wait for its value to change.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        rotated(&east, &name).await;
        let promoted = east
            .get_secret_value()
            .secret_id(&name)
            .send()
            .await
            .unwrap();
        if promoted.secret_string() != primary_value.secret_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the promoted secret did not rotate on its own"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The primary learns of the promotion asynchronously and drops the Region.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = west
            .describe_secret()
            .secret_id(&name)
            .send()
            .await
            .unwrap();
        if status
            .replication_status()
            .iter()
            .all(|s| s.region() != Some("us-east-1"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the primary still lists the promoted Region: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
