//! The IAM subset (Query protocol, signing name `iam`) and STS (signing name `sts`), served on
//! the same `POST /` as Secrets Manager: this file is the protocol's side (authentication,
//! `Action` and `Version`, the answer's XML, errors); the operations are
//! `coffer_core::iam::<operation>` and `coffer_core::sts::<operation>`, found through their
//! tables (`coffer_core::iam::Operation`, `coffer_core::sts::Operation`).

use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use coffer_core::Caller;
use coffer_core::iam::{Iam, Operation as IamOp};
use coffer_core::query::{Node, Params};
use coffer_core::sts::Operation as Sts;
use coffer_sigv4::{Authorization, SigV4Error};

use crate::audit::Facts;
use crate::query::{IAM_NAMESPACE, QueryError, STS_NAMESPACE, Xml, parse_form, success};
use crate::{Deployment, Served};

const IAM_VERSION: &str = "2010-05-08";
const STS_VERSION: &str = "2011-06-15";

type Result<T> = std::result::Result<T, QueryError>;

/// Whether a request is one of the Query protocol (a form-encoded body, as the IAM and STS
/// clients send); everything else on `POST /` is AWS JSON 1.1.
pub(crate) fn is_query(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// Serves one Query-protocol request.
pub(crate) async fn handle(
    deployment: &Deployment,
    request_id: &str,
    parts: &Parts,
    body: &[u8],
    facts: &mut Facts,
) -> Response {
    let sts = coffer_sigv4::parse(&parts.headers).is_ok_and(|a| a.service == "sts");
    let namespace = if sts { STS_NAMESPACE } else { IAM_NAMESPACE };
    let started = std::time::Instant::now();
    let service = if sts { "sts" } else { "iam" };
    let result = serve(deployment, parts, body, facts).await;
    let micros = started.elapsed().as_micros() as u64;
    let served = |action| Served {
        request_id,
        service,
        region: None,
        operation: action,
        micros,
    };
    match result {
        Ok((action, result)) => {
            served(&action).log(StatusCode::OK, "", None);
            success(namespace, &action, result, request_id)
        }
        Err((action, e)) => {
            served(&action).log(e.status, e.code, e.cause.as_deref().map(|c| c as _));
            e.into_response(namespace, request_id)
        }
    }
}

/// The Query protocol's spelling of a signature failure.
fn auth_error(e: &SigV4Error) -> QueryError {
    match e {
        SigV4Error::MissingAuthenticationToken => QueryError::new(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        ),
        SigV4Error::IncompleteSignature { .. } => {
            QueryError::new(StatusCode::BAD_REQUEST, "IncompleteSignature", e.message())
        }
        _ => QueryError::new(StatusCode::FORBIDDEN, "SignatureDoesNotMatch", e.message()),
    }
}

async fn serve(
    deployment: &Deployment,
    parts: &Parts,
    body: &[u8],
    facts: &mut Facts,
) -> std::result::Result<(String, Option<Xml>), (String, QueryError)> {
    let params = parse_form(body);
    let action = params
        .as_ref()
        .and_then(|p| p.get("Action"))
        .unwrap_or_default()
        .to_string();
    let fail = |e: QueryError| (action.clone(), e);
    let auth = facts
        .take_auth(&parts.headers)
        .map_err(|e| fail(auth_error(&e)))?;
    if auth.service != "iam" && auth.service != "sts" {
        return Err(fail(auth_error(&SigV4Error::wrong_service("iam"))));
    }
    let caller = authenticate(deployment, &auth, parts, body)
        .await
        .map_err(&fail)?;
    facts.authenticated(&caller);
    let Some(params) = params else {
        return Err(fail(QueryError::new(
            StatusCode::BAD_REQUEST,
            "MalformedQueryString",
            "The request body is not valid form encoding.",
        )));
    };
    let Some(principals) = deployment.principals() else {
        return Err(fail(QueryError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "This node serves no IAM store.",
        )));
    };
    let iam = Iam {
        principals,
        caller: &caller,
        credentials: deployment,
    };
    let result = if auth.service == "sts" {
        check_version(&params, &action, STS_VERSION).map_err(&fail)?;
        match action.parse::<Sts>() {
            Ok(op) => coffer_core::sts::dispatch(&iam, op, &params).await,
            Err(_) => return Err(fail(invalid_action(&action, STS_VERSION))),
        }
    } else {
        check_version(&params, &action, IAM_VERSION).map_err(&fail)?;
        match action.parse::<IamOp>() {
            Ok(op) => coffer_core::iam::dispatch(&iam, op, &params).await,
            Err(_) => return Err(fail(invalid_action(&action, IAM_VERSION))),
        }
    };
    let result = result.map_err(|e| fail(e.into()))?;
    Ok((action, result.map(|nodes| xml_of(&nodes))))
}

/// An answer's elements as XML.
fn xml_of(nodes: &[Node]) -> Xml {
    let mut xml = Xml::new();
    write_nodes(&mut xml, nodes);
    xml
}

fn write_nodes(xml: &mut Xml, nodes: &[Node]) {
    for node in nodes {
        match node {
            Node::Text(name, text) => {
                xml.text(name, text);
            }
            Node::Document(name, document) => {
                xml.text(name, &crate::query::url_encode(document));
            }
            Node::Element(name, children) => {
                xml.element(name, |xml| write_nodes(xml, children));
            }
        }
    }
}

/// The caller of a request, or the error AWS gives: an unknown, inactive or deleted key is
/// InvalidClientTokenId (HTTP 403) on IAM and STS.
async fn authenticate(
    deployment: &Deployment,
    auth: &Authorization,
    parts: &Parts,
    body: &[u8],
) -> Result<Caller> {
    let Some(credential) = deployment.resolve_credential(&auth.access_key_id).await else {
        return Err(QueryError::invalid_client_token());
    };
    deployment
        .verifier
        .verify(
            auth,
            &parts.method,
            &parts.uri,
            &parts.headers,
            body,
            &credential.secret_access_key,
            chrono::Utc::now(),
        )
        .map_err(|e| auth_error(&e))?;
    // aws:SourceIp and aws:SecureTransport as for the JSON services.
    let mut caller = credential.caller.clone();
    crate::request_facts(&mut caller, parts);
    Ok(caller)
}

fn check_version(params: &Params, action: &str, version: &str) -> Result<()> {
    match params.get("Version") {
        None => Ok(()),
        Some(v) if v == version => Ok(()),
        Some(v) => Err(invalid_action(action, v)),
    }
}

fn invalid_action(action: &str, version: &str) -> QueryError {
    QueryError::new(
        StatusCode::BAD_REQUEST,
        "InvalidAction",
        format!("Could not find operation {action} for version {version}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_requests_are_recognised_by_their_content_type() {
        let mut headers = HeaderMap::new();
        assert!(!is_query(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .unwrap(),
        );
        assert!(is_query(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-amz-json-1.1".parse().unwrap(),
        );
        assert!(!is_query(&headers));
    }

    #[test]
    fn signature_failures_use_the_query_protocols_codes() {
        assert_eq!(
            auth_error(&SigV4Error::MissingAuthenticationToken).code,
            "MissingAuthenticationToken"
        );
        let wrong = auth_error(&SigV4Error::wrong_service("iam"));
        assert_eq!(
            (wrong.code, wrong.status),
            ("SignatureDoesNotMatch", StatusCode::FORBIDDEN)
        );
    }
}
