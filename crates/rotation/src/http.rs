//! Configured rotators of kind `http`: Coffer POSTs the event a Lambda receives
//! (`{"Step", "SecretId", "ClientRequestToken", "RotationToken"}`) to the function's URL, one
//! call per step; a 2xx answer is success. The function calls back through the ordinary API
//! with its own credentials, as a Lambda rotation function does.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::{Error, Event, Result, Rotator, SecretsApi};

/// How long one step may take (a Lambda's default timeout is 3 s; rotation templates raise it).
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct HttpRotator {
    pub name: String,
    pub url: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl HttpRotator {
    pub fn new(name: String, url: String) -> HttpRotator {
        HttpRotator {
            name,
            url,
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }
}

#[async_trait]
impl Rotator for HttpRotator {
    async fn invoke(&self, _api: &SecretsApi<'_>, event: &Event) -> Result<()> {
        let body = serde_json::to_vec(event).expect("event serializes");
        let failed = |context: String, source: Option<Box<dyn std::error::Error + Send + Sync>>| {
            Error::Function { context, source }
        };
        let request = http::Request::post(&self.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| {
                let context = format!("function {}: bad URL {}", self.name, self.url);
                failed(context, Some(e.into()))
            })?;
        let response = tokio::time::timeout(STEP_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| {
                let context = format!(
                    "function {} did not answer within {STEP_TIMEOUT:?}",
                    self.name
                );
                failed(context, None)
            })?
            .map_err(|e| {
                let context = format!(
                    "function {} at {} could not be reached",
                    self.name, self.url
                );
                failed(context, Some(e.into()))
            })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            Ok(())
        } else {
            let context = format!(
                "function {} answered HTTP {status}: {}",
                self.name,
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
            Err(failed(context, None))
        }
    }
}
