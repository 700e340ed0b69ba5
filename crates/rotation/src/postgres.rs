//! The PostgreSQL rotators, after AWS's RDS rotation templates (without Lambda):
//!
//! - `coffer-postgresql-single-user`: the role changes its own password (`ALTER ROLE`), logged
//!   in with its current credentials.
//! - `coffer-postgresql-alternating-users`: a master (admin) role, whose credentials are the
//!   AWSCURRENT value of the secret named by `masterarn`, switches the secret between two roles,
//!   `X` and `X_clone`, and sets the password of the one not in use. The clone is created on
//!   the first rotation as `CREATE ROLE "X_clone" WITH LOGIN PASSWORD ...` followed by
//!   `GRANT "X" TO "X_clone"`: it inherits X's privileges (as AWS's template does) but not its
//!   role attributes (CREATEDB, ...), and objects it creates belong to it.
//!
//! The secret value is the JSON of AWS's templates: `engine` (`postgres` or
//! `aurora-postgresql`), `host`, `port` (default 5432), `username`, `password`, `dbname`
//! (default `postgres`), and `masterarn` for alternating users. Every other field is kept.
//!
//! Passwords never travel or get logged in clear: `ALTER ROLE ... PASSWORD` is sent a
//! SCRAM-SHA-256 verifier computed here (as `psql`'s `\password` does), so the plaintext is in
//! neither the server's statement log nor in `pg_stat_activity`. Error messages name the server,
//! the database, the user and the SQLSTATE, never a password.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use coffer_core::ops::get_random_password;
use coffer_core::secret::{AWSCURRENT, AWSPENDING};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};
use zeroize::{Zeroize, Zeroizing};

use crate::{Error, Event, Result, Rotator, SecretsApi};

pub const SINGLE_USER: &str = "coffer-postgresql-single-user";
pub const ALTERNATING_USERS: &str = "coffer-postgresql-alternating-users";

/// Characters left out of new passwords: they break connection strings and URLs (AWS's
/// templates exclude the same by default).
pub const EXCLUDED_CHARACTERS: &str = "/@\"'\\ ";
/// The suffix of the second user of the alternating-users strategy (AWS's convention).
pub const CLONE_SUFFIX: &str = "_clone";
/// PostgreSQL truncates longer identifiers (NAMEDATALEN - 1 bytes).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

const DEFAULT_PORT: u16 = 5432;
const DEFAULT_DBNAME: &str = "postgres";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
const SCRAM_ITERATIONS: u32 = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    SingleUser,
    AlternatingUsers,
}

pub struct PostgresRotator {
    pub strategy: Strategy,
}

pub fn builtins() -> Vec<(String, Arc<dyn Rotator>)> {
    vec![
        (
            SINGLE_USER.to_string(),
            Arc::new(PostgresRotator {
                strategy: Strategy::SingleUser,
            }) as Arc<dyn Rotator>,
        ),
        (
            ALTERNATING_USERS.to_string(),
            Arc::new(PostgresRotator {
                strategy: Strategy::AlternatingUsers,
            }),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Quoting

/// `name` as a PostgreSQL identifier: in double quotes, inner double quotes doubled. Case and
/// every other character are kept, so the identifier is exactly the login name. NUL, which
/// PostgreSQL cannot store, is refused.
pub fn quote_ident(name: &str) -> Result<String> {
    if name.contains('\0') {
        return Err(Error::Refused(
            "a role or database name contains a NUL character".into(),
        ));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// `value` as a PostgreSQL string literal, correct whatever `standard_conforming_strings` is:
/// single quotes doubled, and, when there is a backslash, the escape-string form `E'...'` with
/// backslashes doubled (what the server's own `quote_literal` produces). NUL is refused.
pub fn quote_literal(value: &str) -> Result<Zeroizing<String>> {
    if value.contains('\0') {
        return Err(Error::Refused(
            "a string to send to PostgreSQL contains a NUL character".into(),
        ));
    }
    let quoted = value.replace('\'', "''");
    Ok(Zeroizing::new(if value.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }))
}

// ---------------------------------------------------------------------------------------------
// SCRAM-SHA-256 verifiers (RFC 5802 / 7677, PostgreSQL's stored format)

type HmacSha256 = Hmac<Sha256>;

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA-256 with a 32-byte output (one block): SCRAM's `SaltedPassword`.
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let keyed = HmacSha256::new_from_slice(password).expect("HMAC takes keys of any length");
    let mut mac = keyed.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: Zeroizing<[u8; 32]> = Zeroizing::new(mac.finalize().into_bytes().into());
    let mut out = Zeroizing::new(*u);
    for _ in 1..iterations {
        let mut mac = keyed.clone();
        mac.update(&*u);
        *u = mac.finalize().into_bytes().into();
        for (o, b) in out.iter_mut().zip(u.iter()) {
            *o ^= b;
        }
    }
    out
}

/// PostgreSQL's stored form of a SCRAM-SHA-256 password:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
pub fn scram_verifier(password: &str, salt: &[u8], iterations: u32) -> Zeroizing<String> {
    let salted = salted_password(password.as_bytes(), salt, iterations);
    let mut client_key = hmac_sha256(&*salted, b"Client Key");
    let stored_key: [u8; 32] = Sha256::digest(client_key).into();
    client_key.zeroize();
    let server_key = hmac_sha256(&*salted, b"Server Key");
    Zeroizing::new(format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        BASE64.encode(salt),
        BASE64.encode(stored_key),
        BASE64.encode(server_key)
    ))
}

/// What `PASSWORD` is given in SQL: a SCRAM verifier with a random salt for printable ASCII
/// passwords (SASLprep leaves them unchanged, so the server agrees on the key), otherwise the
/// password itself for the server to hash.
fn password_for_sql(password: &str) -> Zeroizing<String> {
    if password.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        scram_verifier(password, &salt, SCRAM_ITERATIONS)
    } else {
        Zeroizing::new(password.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// The secret value

/// A parsed database secret. `fields` is the whole JSON object (every field is kept).
pub struct DbSecret {
    fields: Map<String, Value>,
    pub host: String,
    pub port: u16,
    pub username: String,
    password: Zeroizing<String>,
    pub dbname: String,
    pub masterarn: Option<String>,
}

impl std::fmt::Debug for DbSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.endpoint())
    }
}

fn string_field(fields: &Map<String, Value>, key: &str, what: &str) -> Result<String> {
    match fields.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(Error::Refused(format!("{what} has no \"{key}\" field")))
        }
        Some(_) => Err(Error::Refused(format!(
            "the \"{key}\" field of {what} is not a string"
        ))),
    }
}

impl DbSecret {
    /// Parses the JSON of AWS's RDS templates. `what` names the value in errors ("the
    /// AWSCURRENT value"); errors never quote the value.
    pub fn parse(text: &str, what: &str) -> Result<DbSecret> {
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(text) else {
            return Err(Error::Refused(format!(
                "{what} is not a JSON object with the fields engine, host, port, username, password, dbname"
            )));
        };
        match fields.get("engine") {
            Some(Value::String(e)) if e == "postgres" || e == "aurora-postgresql" => {}
            Some(Value::String(e)) => {
                return Err(Error::Refused(format!(
                    "the \"engine\" of {what} is \"{e}\"; this rotator rotates \"postgres\""
                )));
            }
            _ => {
                return Err(Error::Refused(format!(
                    "{what} must have \"engine\": \"postgres\" (as AWS's RDS templates require)"
                )));
            }
        }
        let host = string_field(&fields, "host", what)?;
        let username = string_field(&fields, "username", what)?;
        let password = match fields.get("password") {
            Some(Value::String(s)) => Zeroizing::new(s.clone()),
            _ => {
                return Err(Error::Refused(format!(
                    "{what} has no string \"password\" field"
                )));
            }
        };
        let port = match fields.get("port") {
            None | Some(Value::Null) => DEFAULT_PORT,
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    Error::Refused(format!("the \"port\" of {what} is not a TCP port"))
                })?,
            Some(Value::String(s)) => {
                s.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| {
                        Error::Refused(format!("the \"port\" of {what} is not a TCP port"))
                    })?
            }
            Some(_) => {
                return Err(Error::Refused(format!(
                    "the \"port\" of {what} is not a TCP port"
                )));
            }
        };
        let dbname = match fields.get("dbname") {
            None | Some(Value::Null) => DEFAULT_DBNAME.to_string(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => {
                return Err(Error::Refused(format!(
                    "the \"dbname\" of {what} is not a name"
                )));
            }
        };
        let masterarn = match fields.get("masterarn") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => {
                return Err(Error::Refused(format!(
                    "the \"masterarn\" of {what} is not an ARN"
                )));
            }
        };
        Ok(DbSecret {
            fields,
            host,
            port,
            username,
            password,
            dbname,
            masterarn,
        })
    }

    /// `user@host:port/dbname`, for messages.
    pub fn endpoint(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.username, self.host, self.port, self.dbname
        )
    }

    /// The JSON of this secret with `username` and `password` replaced, every other field kept.
    pub fn with_credentials(&self, username: &str, password: &str) -> Zeroizing<String> {
        let mut fields = self.fields.clone();
        fields.insert("username".into(), Value::String(username.into()));
        fields.insert("password".into(), Value::String(password.into()));
        Zeroizing::new(Value::Object(fields).to_string())
    }

    fn options(&self) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .host(&self.host)
            .port(self.port)
            .username(&self.username)
            .password(&self.password)
            .database(&self.dbname)
            // This build has no TLS client: `prefer` talks TLS to nothing and connects in clear.
            .ssl_mode(PgSslMode::Prefer)
            .application_name("coffer-rotation")
            .disable_statement_logging()
    }

    /// Removes this secret's password from a server message, should one ever echo it.
    fn redact(&self, message: String, extra: &[&str]) -> String {
        let mut message = message;
        for secret in std::iter::once(self.password.as_str()).chain(extra.iter().copied()) {
            if secret.len() >= 4 && message.contains(secret) {
                message = message.replace(secret, "[redacted]");
            }
        }
        message
    }
}

/// The other user of the alternating-users strategy: `X` <-> `X_clone`.
pub fn alternate_username(username: &str) -> Result<String> {
    if let Some(original) = username.strip_suffix(CLONE_SUFFIX)
        && !original.is_empty()
    {
        return Ok(original.to_string());
    }
    let clone = format!("{username}{CLONE_SUFFIX}");
    if clone.len() > MAX_IDENTIFIER_BYTES {
        return Err(Error::Refused(format!(
            "cannot clone user {username}: with \"{CLONE_SUFFIX}\" appended the name exceeds PostgreSQL's {MAX_IDENTIFIER_BYTES} bytes"
        )));
    }
    Ok(clone)
}

// ---------------------------------------------------------------------------------------------
// Talking to PostgreSQL

fn describe_error(e: &sqlx::Error) -> String {
    match e.as_database_error() {
        Some(db) => match db.code() {
            Some(code) => format!("SQLSTATE {code}: {}", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    }
}

/// Logs in as `s`; the error names the server, database and user.
async fn login(s: &DbSecret) -> Result<PgConnection> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&s.options())).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(Error::Database(format!(
            "could not log in to PostgreSQL at {}:{} (database {}) as {}: {}",
            s.host,
            s.port,
            s.dbname,
            s.username,
            s.redact(describe_error(&e), &[])
        ))),
        Err(_) => Err(Error::Database(format!(
            "PostgreSQL at {}:{} did not accept a connection within {CONNECT_TIMEOUT:?} (logging in as {})",
            s.host, s.port, s.username
        ))),
    }
}

/// Runs statements as the simple query protocol (utility statements take no parameters), in
/// one transaction, under a timeout. `secrets` are redacted from errors.
async fn execute(
    conn: &mut PgConnection,
    who: &DbSecret,
    statements: &[Zeroizing<String>],
    secrets: &[&str],
) -> Result<()> {
    let run = async {
        let mut tx = conn.begin().await?;
        for sql in statements {
            sqlx::raw_sql(AssertSqlSafe(sql.as_str()))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    };
    match tokio::time::timeout(STATEMENT_TIMEOUT, run).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::Database(format!(
            "PostgreSQL at {}:{} refused the change, logged in as {}: {}",
            who.host,
            who.port,
            who.username,
            who.redact(describe_error(&e), secrets)
        ))),
        Err(_) => Err(Error::Database(format!(
            "PostgreSQL at {}:{} did not finish the change within {STATEMENT_TIMEOUT:?} (logged in as {})",
            who.host, who.port, who.username
        ))),
    }
}

async fn close(conn: PgConnection) {
    let _ = tokio::time::timeout(CONNECT_TIMEOUT, conn.close()).await;
}

/// `ALTER ROLE "user" WITH PASSWORD '<verifier>'`.
fn alter_password(username: &str, password: &str) -> Result<Zeroizing<String>> {
    Ok(Zeroizing::new(format!(
        "ALTER ROLE {} WITH PASSWORD {}",
        quote_ident(username)?,
        *quote_literal(&password_for_sql(password))?
    )))
}

// ---------------------------------------------------------------------------------------------
// The four steps

/// Reads and parses the AWSPENDING value `token` (stored by createSecret).
async fn pending_secret(api: &SecretsApi<'_>, id: &str, token: &str) -> Result<DbSecret> {
    let text = api
        .value(id, Some(token), Some(AWSPENDING))
        .await?
        .ok_or_else(|| {
            format!("the AWSPENDING version {token} has no value (createSecret did not run)")
        })?;
    DbSecret::parse(&text, "the AWSPENDING value")
}

async fn current_secret(api: &SecretsApi<'_>, id: &str) -> Result<DbSecret> {
    DbSecret::parse(&api.current_value(id).await?, "the AWSCURRENT value")
}

impl PostgresRotator {
    fn name(&self) -> &'static str {
        match self.strategy {
            Strategy::SingleUser => SINGLE_USER,
            Strategy::AlternatingUsers => ALTERNATING_USERS,
        }
    }

    async fn create_secret(&self, api: &SecretsApi<'_>, id: &str, token: &str) -> Result<()> {
        if api
            .value(id, Some(token), Some(AWSPENDING))
            .await?
            .is_some()
        {
            return Ok(());
        }
        let current = current_secret(api, id).await?;
        let username = match self.strategy {
            Strategy::SingleUser => current.username.clone(),
            Strategy::AlternatingUsers => {
                if current.masterarn.is_none() {
                    return Err(Error::Refused(format!(
                        "{} needs \"masterarn\" in the AWSCURRENT value: the ARN of the secret holding an admin's credentials",
                        self.name()
                    )));
                }
                alternate_username(&current.username)?
            }
        };
        let tags = api.describe(id).await?.tags.unwrap_or_default();
        let tag = |key: &str| tags.iter().find(|t| t.key == key).map(|t| t.value.clone());
        let length = tag("coffer:password-length")
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    Error::Refused("tag coffer:password-length is not a number".into())
                })
            })
            .transpose()?;
        let mut exclude = EXCLUDED_CHARACTERS.to_string();
        exclude.push_str(&tag("coffer:exclude-characters").unwrap_or_default());
        let password = api
            .random_password(get_random_password::Input {
                password_length: length,
                exclude_characters: Some(exclude),
                exclude_numbers: None,
                exclude_punctuation: None,
                exclude_uppercase: None,
                exclude_lowercase: None,
                include_space: Some(false),
                require_each_included_type: None,
            })
            .await?;
        api.put_pending(id, token, current.with_credentials(&username, &password))
            .await
    }

    async fn set_secret(&self, api: &SecretsApi<'_>, id: &str, token: &str) -> Result<()> {
        let pending = pending_secret(api, id, token).await?;
        let current = current_secret(api, id).await?;
        // A retry after a run that changed the password but failed later: nothing left to set.
        if let Ok(conn) = login(&pending).await {
            close(conn).await;
            return Ok(());
        }
        match self.strategy {
            Strategy::SingleUser => self.set_single_user(api, id, &current, &pending).await,
            Strategy::AlternatingUsers => self.set_alternating(api, &current, &pending).await,
        }
    }

    async fn set_single_user(
        &self,
        api: &SecretsApi<'_>,
        id: &str,
        current: &DbSecret,
        pending: &DbSecret,
    ) -> Result<()> {
        if pending.username != current.username {
            return Err(Error::Refused(format!(
                "the AWSPENDING user ({}) is not the AWSCURRENT user ({}); {} changes one user's password",
                pending.username, current.username, SINGLE_USER
            )));
        }
        // Log in as the user; when the current password no longer works, the previous one may
        // (the password was changed back by hand), as AWS's template tries.
        let mut previous: Option<DbSecret> = None;
        let mut conn = match login(current).await {
            Ok(conn) => conn,
            Err(current_error) => {
                previous = match api.value(id, None, Some("AWSPREVIOUS")).await? {
                    Some(text) => DbSecret::parse(&text, "the AWSPREVIOUS value")
                        .ok()
                        .filter(|p| p.username == current.username),
                    None => None,
                };
                match &previous {
                    Some(p) => login(p).await.map_err(|_| current_error)?,
                    None => return Err(current_error),
                }
            }
        };
        let who = previous.as_ref().unwrap_or(current);
        let sql = alter_password(&pending.username, &pending.password)?;
        let result = execute(&mut conn, who, &[sql], &[&pending.password]).await;
        close(conn).await;
        result
    }

    async fn set_alternating(
        &self,
        api: &SecretsApi<'_>,
        current: &DbSecret,
        pending: &DbSecret,
    ) -> Result<()> {
        // As AWS's template: make sure the current credentials work before creating users.
        let conn = login(current).await.map_err(|e| {
            e.context("the AWSCURRENT credentials do not work, so no user is changed")
        })?;
        close(conn).await;
        let masterarn = current
            .masterarn
            .as_deref()
            .ok_or_else(|| Error::Refused("the AWSCURRENT value has no \"masterarn\"".into()))?;
        if let Some(region) = masterarn.split(':').nth(3)
            && masterarn.starts_with("arn:")
            && region != api.region.region
        {
            return Err(Error::Refused(format!(
                "masterarn {masterarn} is in Region {region}; the master secret must be in the secret's Region ({})",
                api.region.region
            )));
        }
        let master_text = api
            .value(masterarn, None, Some(AWSCURRENT))
            .await
            .map_err(|e| e.context(format!("cannot read the master secret {masterarn}")))?
            .ok_or_else(|| {
                format!("the master secret {masterarn} does not exist or has no AWSCURRENT value")
            })?;
        let master = DbSecret::parse(&master_text, "the master secret's value")?;
        // The master's password goes only to the server the master secret names, and only when
        // that is the server of this secret.
        if master.host != current.host || master.port != current.port {
            return Err(Error::Refused(format!(
                "the master secret {masterarn} is for {}:{}, not for this secret's server {}:{}",
                master.host, master.port, current.host, current.port
            )));
        }
        let mut conn = login(&master)
            .await
            .map_err(|e| e.context(format!("cannot log in as the master user of {masterarn}")))?;
        let exists = tokio::time::timeout(
            STATEMENT_TIMEOUT,
            sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)",
            )
            .bind(&pending.username)
            .fetch_one(&mut conn),
        )
        .await
        .map_err(|_| {
            Error::Database(format!(
                "PostgreSQL at {}:{} did not answer within {STATEMENT_TIMEOUT:?}",
                master.host, master.port
            ))
        })?
        .map_err(|e| {
            Error::Database(format!(
                "cannot look up role {} at {}:{} as {}: {}",
                pending.username,
                master.host,
                master.port,
                master.username,
                master.redact(describe_error(&e), &[&pending.password])
            ))
        })?;
        let statements = if exists {
            vec![alter_password(&pending.username, &pending.password)?]
        } else {
            vec![
                Zeroizing::new(format!(
                    "CREATE ROLE {} WITH LOGIN PASSWORD {}",
                    quote_ident(&pending.username)?,
                    *quote_literal(&password_for_sql(&pending.password))?
                )),
                Zeroizing::new(format!(
                    "GRANT {} TO {}",
                    quote_ident(&current.username)?,
                    quote_ident(&pending.username)?
                )),
            ]
        };
        let result = execute(&mut conn, &master, &statements, &[&pending.password]).await;
        close(conn).await;
        result
    }

    async fn test_secret(&self, api: &SecretsApi<'_>, id: &str, token: &str) -> Result<()> {
        let pending = pending_secret(api, id, token).await?;
        let mut conn = login(&pending)
            .await
            .map_err(|e| e.context("the new credentials do not work"))?;
        let user = tokio::time::timeout(
            STATEMENT_TIMEOUT,
            sqlx::query_scalar::<_, String>("SELECT current_user::text").fetch_one(&mut conn),
        )
        .await;
        close(conn).await;
        match user {
            Ok(Ok(user)) if user == pending.username => Ok(()),
            Ok(Ok(user)) => Err(Error::Database(format!(
                "logged in with the new credentials of {} at {}:{}, PostgreSQL says the user is {user}",
                pending.username, pending.host, pending.port
            ))),
            Ok(Err(e)) => Err(Error::Database(format!(
                "SELECT current_user failed at {}:{} as {}: {}",
                pending.host,
                pending.port,
                pending.username,
                pending.redact(describe_error(&e), &[])
            ))),
            Err(_) => Err(Error::Database(format!(
                "PostgreSQL at {}:{} did not answer SELECT current_user within {STATEMENT_TIMEOUT:?}",
                pending.host, pending.port
            ))),
        }
    }
}

#[async_trait]
impl Rotator for PostgresRotator {
    async fn invoke(&self, api: &SecretsApi<'_>, event: &Event) -> Result<()> {
        let id = event.secret_id.as_str();
        let token = event.client_request_token.as_str();
        if event.step == "finishSecret" {
            return api.finish(id, token).await;
        }
        // As in AWS's templates: a version already AWSCURRENT has nothing left to do.
        if !api.check_pending(id, token).await? {
            return Ok(());
        }
        match event.step.as_str() {
            "createSecret" => self.create_secret(api, id, token).await,
            "setSecret" => self.set_secret(api, id, token).await,
            "testSecret" => self.test_secret(api, id, token).await,
            other => Err(Error::Refused(format!("unknown step {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_double_quoted_with_inner_quotes_doubled() {
        assert_eq!(quote_ident("app").unwrap(), r#""app""#);
        assert_eq!(quote_ident("App User").unwrap(), r#""App User""#);
        assert_eq!(
            quote_ident(r#"x"; DROP ROLE postgres; --"#).unwrap(),
            r#""x""; DROP ROLE postgres; --""#
        );
        assert!(quote_ident("a\0b").is_err());
    }

    #[test]
    fn literals_double_quotes_and_use_the_escape_form_for_backslashes() {
        assert_eq!(quote_literal("abc").unwrap().as_str(), "'abc'");
        assert_eq!(quote_literal("o'brien").unwrap().as_str(), "'o''brien'");
        assert_eq!(quote_literal(r"a\'b").unwrap().as_str(), r"E'a\\''b'");
        assert!(quote_literal("a\0b").is_err());
    }

    #[test]
    fn scram_verifiers_match_postgresql_s_format() {
        // Computed independently with Python's hashlib.pbkdf2_hmac and hmac.
        let salt: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            scram_verifier("pencil", &salt, 4096).as_str(),
            "SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$zHCdol2044/ZyWzPLi7oxApCkamKw9Z+E4U/QApd/5Y=:dd5peBOitVnLNFu7VmwP+HiDaaw4OUCv396eVCWhYiE="
        );
    }

    #[test]
    fn printable_passwords_are_sent_as_verifiers_with_fresh_salts() {
        let a = password_for_sql("pencil");
        let b = password_for_sql("pencil");
        assert!(a.starts_with("SCRAM-SHA-256$4096:"));
        assert!(!a.contains("pencil"));
        assert_ne!(*a, *b);
        assert_eq!(password_for_sql("caf\u{e9}").as_str(), "caf\u{e9}");
    }

    #[test]
    fn alternating_users_switch_between_x_and_x_clone() {
        assert_eq!(alternate_username("app").unwrap(), "app_clone");
        assert_eq!(alternate_username("app_clone").unwrap(), "app");
        assert_eq!(alternate_username("_clone").unwrap(), "_clone_clone");
        assert!(alternate_username(&"a".repeat(58)).is_err());
        assert_eq!(
            alternate_username(&"a".repeat(57)).unwrap().len(),
            MAX_IDENTIFIER_BYTES
        );
    }

    #[test]
    fn secrets_parse_like_aws_rds_templates() {
        let s = DbSecret::parse(
            r#"{"engine":"postgres","host":"db","username":"app","password":"pw","extra":1}"#,
            "v",
        )
        .unwrap();
        assert_eq!((s.port, s.dbname.as_str()), (5432, "postgres"));
        assert_eq!(s.masterarn, None);
        let s = DbSecret::parse(
            r#"{"engine":"postgres","host":"db","port":"6432","username":"app","password":"pw","dbname":"orders","masterarn":"arn:m"}"#,
            "v",
        )
        .unwrap();
        assert_eq!((s.port, s.dbname.as_str()), (6432, "orders"));
        assert_eq!(s.masterarn.as_deref(), Some("arn:m"));
        let next: Value = serde_json::from_str(&s.with_credentials("app_clone", "new")).unwrap();
        assert_eq!(next["username"], "app_clone");
        assert_eq!(next["password"], "new");
        assert_eq!(next["port"], "6432");
        assert_eq!(next["masterarn"], "arn:m");
    }

    #[test]
    fn parse_errors_never_quote_the_value() {
        for bad in [
            r#"{"engine":"mysql","host":"h","username":"u","password":"hunter22"}"#,
            r#"{"engine":"postgres","host":"h","password":"hunter22"}"#,
            r#"{"engine":"postgres","host":"h","username":"u","password":"hunter22","port":"hunter22"}"#,
            r#"{"engine":"postgres","host":"h","username":"u","password":7}"#,
            "hunter22",
        ] {
            let e = DbSecret::parse(bad, "the value").unwrap_err().report();
            assert!(!e.contains("hunter22"), "{e}");
        }
    }

    #[test]
    fn both_function_names_are_built_in() {
        let names: Vec<String> = builtins().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, [SINGLE_USER, ALTERNATING_USERS]);
    }
}
