//! `coffer serve --tls auto`: HTTPS for development in one command, as LocalStack gives it. A
//! local CA (kept in `<data_dir>/tls/`, made once) signs a server certificate for localhost,
//! 127.0.0.1, ::1, the listening address and any names given (made anew at every start, so a
//! new name takes effect at once). Clients trust `ca.pem`; the generated AWS CLI profile names
//! it as `ca_bundle`.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The files `--tls auto` serves from.
pub struct Generated {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The CA's parameters: always the same, so a server certificate made at a later start chains to
/// the CA certificate clients already trust (only its key and these fields are needed to sign).
fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Coffer local development CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Coffer");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let year = chrono::Datelike::year(&chrono::Utc::now());
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
    Ok(params)
}

/// A day `days` from today, as (year, month, day).
fn day(days: i64) -> (i32, u8, u8) {
    use chrono::Datelike;
    let t = chrono::Utc::now() + chrono::Duration::days(days);
    (t.year(), t.month() as u8, t.day() as u8)
}

/// The names a development server answers to: the loopback names, the listening address when
/// it is a specific one, and `extra`.
pub fn names(listen_ip: std::net::IpAddr, extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if !listen_ip.is_unspecified() {
        names.push(listen_ip.to_string());
    }
    for n in extra {
        let n = n.trim();
        if !n.is_empty() {
            names.push(n.to_string());
        }
    }
    names.dedup();
    let mut unique = Vec::new();
    for n in names {
        if !unique.contains(&n) {
            unique.push(n);
        }
    }
    unique
}

/// Makes the CA once and a server certificate for `names` now, in `dir`.
pub fn ensure(dir: &Path, names: &[String]) -> anyhow::Result<Generated> {
    crate::data_dir::create_private_dir(dir)?;
    let ca_file = dir.join("ca.pem");
    let ca_key_file = dir.join("ca.key");
    let ca_key = if ca_file.exists() && ca_key_file.exists() {
        let pem = std::fs::read_to_string(&ca_key_file)
            .with_context(|| format!("cannot read {}", ca_key_file.display()))?;
        KeyPair::from_pem(&pem)
            .map_err(|_| anyhow!("{} is not a PEM private key", ca_key_file.display()))?
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params()?
            .self_signed(&key)
            .context("cannot make the local CA")?;
        crate::data_dir::write_file(&ca_key_file, &key.serialize_pem(), 0o600)?;
        crate::data_dir::write_file(&ca_file, &cert.pem(), 0o644)?;
        tracing::info!(ca = %ca_file.display(), "Made a local CA for --tls auto");
        key
    };
    let issuer = Issuer::new(ca_params()?, ca_key);
    let mut params = CertificateParams::new(names.to_vec()).context("--tls-names")?;
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    // A year from yesterday (a made-anew certificate; within the 398 days browsers accept).
    let (y, m, d) = day(-1);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = day(365);
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let key = KeyPair::generate()?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("cannot make the server certificate")?;
    let cert_file = dir.join("server.pem");
    let key_file = dir.join("server.key");
    crate::data_dir::write_file(&key_file, &key.serialize_pem(), 0o600)?;
    crate::data_dir::write_file(&cert_file, &cert.pem(), 0o644)?;
    Ok(Generated {
        ca_file,
        cert_file,
        key_file,
    })
}
