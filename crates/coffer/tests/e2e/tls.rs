//! aws-sdk-rust over HTTPS (rustls, ring) against `coffer serve --tls auto`, trusting only the
//! CA the server made in its data directory.

use crate::server::{Server, unique};

#[tokio::test]
async fn the_rust_sdk_calls_over_https_trusting_the_generated_ca() {
    let server = Server::start_with(&["--tls", "auto"]);
    assert!(
        server.endpoint.starts_with("https://127.0.0.1:"),
        "{}",
        server.endpoint
    );
    let ca = std::fs::read(server.data_dir.join("tls/ca.pem")).expect("the generated CA");
    let sm = server.https_client("us-east-1", &ca);
    let name = unique("tls");
    sm.create_secret()
        .name(&name)
        .secret_string("over TLS from Rust")
        .send()
        .await
        .unwrap();
    let got = sm.get_secret_value().secret_id(&name).send().await.unwrap();
    assert_eq!(got.secret_string(), Some("over TLS from Rust"));

    // Trusting another CA, the same call fails: the certificate is checked.
    let other = Server::start_with(&["--tls", "auto"]);
    let stranger_ca = std::fs::read(other.data_dir.join("tls/ca.pem")).unwrap();
    let err = server
        .https_client("us-east-1", &stranger_ca)
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            aws_sdk_secretsmanager::error::SdkError::DispatchFailure(_)
        ),
        "{err:?}"
    );
}
