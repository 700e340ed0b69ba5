//! Who is calling: the principal SigV4 established, with what policy evaluation needs about it.

use std::sync::Arc;

/// Who is calling, as established by SigV4, with what the policy evaluation needs about them
/// and about this request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: String,
    pub principal_arn: String,
    /// `aws:username` for IAM users; `None` for the account root and service principals.
    pub user_name: Option<String>,
    /// The caller's identity-based policies, parsed once when the credential is loaded.
    pub policies: Arc<[coffer_iam::Policy]>,
    /// `aws:SourceIp` of this request (set by the HTTP layer; `None` for internal callers).
    pub source_ip: Option<std::net::IpAddr>,
    /// `aws:SecureTransport`: whether this request arrived over TLS.
    pub secure_transport: bool,
    /// `aws:PrincipalTag/<key>`: the IAM user's tags (none for roots and Coffer's workers).
    pub principal_tags: Arc<[(String, String)]>,
}

impl Caller {
    /// A principal that may do everything in its own account (the administrator created at
    /// initialisation, and Coffer's own workers acting for an account).
    pub fn administrator(account_id: &str, principal_arn: &str) -> Caller {
        Caller {
            account_id: account_id.to_string(),
            principal_arn: principal_arn.to_string(),
            user_name: principal_arn
                .split_once(":user/")
                .map(|(_, name)| name.rsplit('/').next().unwrap_or(name).to_string()),
            policies: Arc::from(vec![coffer_iam::Policy::administrator_access()]),
            source_ip: None,
            secure_transport: false,
            principal_tags: Arc::from(Vec::new()),
        }
    }

    /// The principal as policy evaluation sees it.
    /// Sets `aws:PrincipalTag/<key>` for each of the caller's tags.
    pub fn set_principal_tags(&self, context: &mut coffer_iam::Context) {
        for (key, value) in self.principal_tags.iter() {
            context.set(&format!("aws:PrincipalTag/{key}"), value.as_str());
        }
    }

    pub fn principal(&self) -> coffer_iam::Principal {
        coffer_iam::Principal {
            arn: self.principal_arn.clone(),
            account_id: self.account_id.clone(),
            user_name: self.user_name.clone(),
        }
    }
}
