//! Sends a sealed message to a Region and opens its sealed answer.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::envelope;
use crate::topology::Topology;

pub const PATH: &str = "/internal/replication";
pub const SOURCE_HEADER: &str = "x-coffer-source-region";
pub const DEST_HEADER: &str = "x-coffer-dest-region";
pub const KIND_HEADER: &str = "x-coffer-kind";

const TIMEOUT: Duration = Duration::from_secs(5);

pub fn request_aad(kind: &str) -> Vec<u8> {
    format!("coffer-replication-request:{kind}").into_bytes()
}

pub fn answer_aad(kind: &str) -> Vec<u8> {
    format!("coffer-replication-answer:{kind}").into_bytes()
}

#[derive(Debug, Clone)]
pub enum SendError {
    /// No node of this deployment serves the Region.
    NotEnabled(String),
    /// The Region could not be reached or answered nonsense; worth retrying.
    Network(String),
}

pub struct Transport {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// The versions each destination acknowledged, so syncs leave their values out.
    pub held: crate::held::Held,
}

impl Default for Transport {
    fn default() -> Self {
        Transport::new()
    }
}

impl Transport {
    pub fn new() -> Transport {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(TIMEOUT));
        connector.set_nodelay(true);
        // `https://` peers: their certificate must chain to the configured CAs, or be this
        // node's own (its local Regions are reached through its own URL).
        connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::tls::client_config())
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Transport {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
            held: crate::held::Held::default(),
        }
    }

    /// Seals `plaintext` from `source` to `dest`, posts it, and returns the opened answer.
    pub async fn send(
        &self,
        topology: &Topology,
        source: &str,
        dest: &str,
        kind: &str,
        plaintext: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, SendError> {
        let not_enabled = || {
            SendError::NotEnabled(format!(
                "Replication failed: Region {dest} is not enabled in this deployment. Add it to the Regions of a node (--regions) or to the peers of this node's config file, then call ReplicateSecretToRegions again."
            ))
        };
        let route = topology.route(dest).ok_or_else(not_enabled)?;
        let keys = topology
            .keys
            .get(source)
            .ok_or_else(|| SendError::Network(format!("Region {source} is not served here")))?;
        let sealed = envelope::seal(
            keys,
            source,
            &route.public_key,
            dest,
            &request_aad(kind),
            plaintext,
        );
        let proof = crate::proof::make(
            keys,
            &route.public_key,
            source,
            dest,
            kind,
            sealed.len() as u64,
            crate::proof::now_secs(),
        );
        let request = http::Request::post(format!("{}{PATH}", route.url.trim_end_matches('/')))
            .header(crate::proof::PROOF_HEADER, proof)
            .header(SOURCE_HEADER, source)
            .header(DEST_HEADER, dest)
            .header(KIND_HEADER, kind)
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .body(Full::new(Bytes::from(sealed)))
            .map_err(|e| SendError::Network(e.to_string()))?;
        let network = |what: String| {
            SendError::Network(format!(
                "Replication failed: network error reaching Region {dest} at {}: {what}",
                route.url
            ))
        };
        let response = tokio::time::timeout(TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| network("no answer within 5 s".into()))?
            .map_err(|e| network(connection_error(&e)))?;
        let status = response.status();
        let body = tokio::time::timeout(TIMEOUT, response.into_body().collect())
            .await
            .map_err(|_| network("the answer did not arrive within 5 s".into()))?
            .map_err(|e| network(e.to_string()))?
            .to_bytes();
        if status == http::StatusCode::MISDIRECTED_REQUEST {
            return Err(not_enabled());
        }
        if !status.is_success() {
            return Err(network(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )));
        }
        envelope::open(
            keys,
            source,
            &route.public_key,
            dest,
            &answer_aad(kind),
            &body,
        )
        .map_err(|_| network("the answer is not sealed by that Region's key".into()))
    }
}

fn connection_error(e: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}
