//! The built-in PostgreSQL rotators against a real PostgreSQL.
//!
//! Needs `COFFER_TEST_POSTGRES_URL` (a superuser of a throwaway cluster), as printed by
//! `eval "$(scripts/postgres.sh start)"`. Without it these tests fail; they never skip.
//!
//! Each test creates its own roles and database with random names and drops them at the end.
//! Test roles are members of the group role `coffer_rotation_tests`; when the cluster lets
//! them log in with any password (trust authentication), the tests prepend one line to the
//! cluster's `pg_hba.conf` — `host all +coffer_rotation_tests 127.0.0.1/32 scram-sha-256`
//! (and `::1/128`) — and reload it, so that old passwords really stop working. Nothing else
//! about the cluster changes, and its superuser keeps logging in as before.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_core::ops::{
    create_secret, describe_secret, get_secret_value, put_secret_value, rotate_secret,
};
use coffer_core::rotation::{KIND_ROTATE, RotationRunner, RunOutcome};
use coffer_core::{Caller, ErrorCode, RegionService, SystemClock};
use coffer_rotation::postgres::{quote_ident, quote_literal};
use coffer_rotation::{Registry, Runner};
use coffer_store::{OutboxRow, SqliteStore, Store};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Column, ConnectOptions, Connection, PgConnection, Row};
use tokio::sync::{Mutex, OnceCell};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const GROUP: &str = "coffer_rotation_tests";

fn lambda(function: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}")
}

// ---------------------------------------------------------------------------------------------
// A Region in-process

struct Coffer {
    _dir: tempfile::TempDir,
    region: RegionService,
    caller: Caller,
    runner: Runner,
    /// Rotation rows claimed and not finished yet (a failed run is run again from here).
    claimed: Mutex<HashMap<String, OutboxRow>>,
}

impl Coffer {
    async fn new() -> Coffer {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("r.db")).await.unwrap());
        let (root_key, _) = coffer_kms::RootKey::load_or_create(&dir.path().join("r.key")).unwrap();
        let region = RegionService::new(
            REGION.to_string(),
            "aws",
            store,
            root_key,
            Arc::new(SystemClock),
        );
        let registry = Registry::new(HashMap::new());
        region.set_rotation_functions(Arc::new(registry.clone()));
        Coffer {
            _dir: dir,
            region,
            caller: Caller::administrator(ACCOUNT, &format!("arn:aws:iam::{ACCOUNT}:user/tester")),
            runner: Runner::new(registry, "rotation-test"),
            claimed: Mutex::new(HashMap::new()),
        }
    }

    async fn create(&self, name: &str, value: &Value) -> String {
        let input: create_secret::Input = serde_json::from_value(json!({
            "Name": name,
            "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
            "SecretString": value.to_string(),
        }))
        .unwrap();
        create_secret::run(&self.region, &self.caller, input)
            .await
            .unwrap()
            .arn
    }

    async fn put(&self, id: &str, value: &Value) {
        let input: put_secret_value::Input = serde_json::from_value(json!({
            "SecretId": id,
            "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
            "SecretString": value.to_string(),
        }))
        .unwrap();
        put_secret_value::run(&self.region, &self.caller, input)
            .await
            .unwrap();
    }

    async fn rotate(&self, id: &str, function: &str) -> coffer_core::Result<String> {
        let input: rotate_secret::Input = serde_json::from_value(json!({
            "SecretId": id,
            "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
            "RotationLambdaARN": lambda(function),
        }))
        .unwrap();
        rotate_secret::run(&self.region, &self.caller, input)
            .await
            .map(|o| o.version_id.unwrap())
    }

    async fn value(&self, id: &str, stage: &str) -> Value {
        let input: get_secret_value::Input =
            serde_json::from_value(json!({"SecretId": id, "VersionStage": stage})).unwrap();
        let out = get_secret_value::run(&self.region, &self.caller, input)
            .await
            .unwrap_or_else(|e| panic!("GetSecretValue {stage}: {}", e.message));
        serde_json::from_str(out.secret_string.as_deref().unwrap()).unwrap()
    }

    async fn stages(&self, id: &str) -> BTreeMap<String, Vec<String>> {
        let input: describe_secret::Input =
            serde_json::from_value(json!({"SecretId": id})).unwrap();
        describe_secret::run(&self.region, &self.caller, input)
            .await
            .unwrap()
            .version_ids_to_stages
            .unwrap_or_default()
    }

    async fn version_with(&self, id: &str, stage: &str) -> Option<String> {
        self.stages(id)
            .await
            .into_iter()
            .find(|(_, s)| s.iter().any(|s| s == stage))
            .map(|(v, _)| v)
    }

    /// Runs the queued rotation of `arn` once, as the replication worker would.
    async fn run_rotation(&self, arn: &str) -> RunOutcome {
        let mut claimed = self.claimed.lock().await;
        let now = self.region.now_ms();
        for row in self
            .region
            .store
            .claim_outbox(now, "rotation-test", 60_000, 100)
            .await
            .unwrap()
        {
            if row.entry.kind == KIND_ROTATE {
                claimed.insert(row.entry.secret_arn.clone(), row);
            }
        }
        let row = claimed
            .get(arn)
            .cloned()
            .expect("a queued rotation for the secret");
        let outcome = self.runner.run(&self.region, &row).await;
        if outcome == RunOutcome::Done {
            self.region
                .store
                .finish_outbox(arn, REGION, KIND_ROTATE, row.id)
                .await
                .unwrap();
            claimed.remove(arn);
        }
        outcome
    }

    async fn run_rotation_to_completion(&self, arn: &str) {
        let outcome = self.run_rotation(arn).await;
        assert_eq!(outcome, RunOutcome::Done, "rotation of {arn}");
    }
}

// ---------------------------------------------------------------------------------------------
// The PostgreSQL under test

struct Pg {
    admin: PgConnectOptions,
    host: String,
    port: u16,
    /// Random prefix of this test's roles and database.
    prefix: String,
}

static PASSWORDS_ENFORCED: OnceCell<()> = OnceCell::const_new();

fn postgres_url() -> String {
    std::env::var("COFFER_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "COFFER_TEST_POSTGRES_URL is not set. These tests need a real PostgreSQL: run \
             `eval \"$(scripts/postgres.sh start)\"` first (and `scripts/postgres.sh stop` after)."
        )
    })
}

async fn connect(options: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    PgConnection::connect_with(&options.clone().disable_statement_logging()).await
}

async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn lit(s: &str) -> String {
    quote_literal(s).unwrap().to_string()
}

fn ident(s: &str) -> String {
    quote_ident(s).unwrap()
}

impl Pg {
    async fn new() -> Pg {
        let url = postgres_url();
        let admin = PgConnectOptions::from_str(&url)
            .unwrap_or_else(|e| panic!("COFFER_TEST_POSTGRES_URL is not a PostgreSQL URL: {e}"));
        let pg = Pg {
            host: admin.get_host().to_string(),
            port: admin.get_port(),
            admin,
            prefix: format!("rot_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]),
        };
        PASSWORDS_ENFORCED
            .get_or_init(|| pg.enforce_passwords())
            .await;
        pg
    }

    async fn admin(&self) -> PgConnection {
        connect(&self.admin).await.unwrap_or_else(|e| {
            panic!(
                "cannot connect to COFFER_TEST_POSTGRES_URL ({}:{}): {e}; is `scripts/postgres.sh start` running?",
                self.host, self.port
            )
        })
    }

    async fn sql(&self, sql: &str) {
        let mut conn = self.admin().await;
        exec(&mut conn, sql).await;
        let _ = conn.close().await;
    }

    /// Makes members of `coffer_rotation_tests` log in with their passwords only.
    async fn enforce_passwords(&self) {
        let mut conn = self.admin().await;
        let _ = sqlx::raw_sql(AssertSqlSafe(format!("CREATE ROLE {GROUP} NOLOGIN")))
            .execute(&mut conn)
            .await; // already there
        let probe = format!("{}_probe", self.prefix);
        exec(
            &mut conn,
            &format!(
                "CREATE ROLE {} LOGIN PASSWORD 'right-password' IN ROLE {GROUP}",
                ident(&probe)
            ),
        )
        .await;
        if !self.can_login(&probe, "wrong-password", "postgres").await {
            exec(&mut conn, &format!("DROP ROLE {}", ident(&probe))).await;
            return;
        }
        let hba: String = sqlx::query_scalar("SELECT pg_read_file(current_setting('hba_file'))")
            .fetch_one(&mut conn)
            .await
            .expect("reading pg_hba.conf (the URL's user must be a superuser)");
        let lines = format!(
            "# Added by coffer-rotation's tests: their roles log in with passwords.\n\
             host all +{GROUP} 127.0.0.1/32 scram-sha-256\n\
             host all +{GROUP} ::1/128 scram-sha-256\n"
        );
        if !hba.contains(&lines) {
            let oid: sqlx::postgres::types::Oid =
                sqlx::query_scalar("SELECT lo_from_bytea(0, convert_to($1, 'UTF8'))")
                    .bind(format!("{lines}{hba}"))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            sqlx::query("SELECT lo_export($1, current_setting('hba_file'))")
                .bind(oid)
                .execute(&mut conn)
                .await
                .expect("writing pg_hba.conf");
            sqlx::query("SELECT lo_unlink($1)")
                .bind(oid)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        exec(&mut conn, "SELECT pg_reload_conf()").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.can_login(&probe, "wrong-password", "postgres").await {
            assert!(
                Instant::now() < deadline,
                "the PostgreSQL at {}:{} still lets roles log in with any password after adding \
                 a scram-sha-256 rule for +{GROUP} to pg_hba.conf",
                self.host,
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(self.can_login(&probe, "right-password", "postgres").await);
        exec(&mut conn, &format!("DROP ROLE {}", ident(&probe))).await;
        let _ = conn.close().await;
    }

    fn name(&self, suffix: &str) -> String {
        format!("{}_{suffix}", self.prefix)
    }

    /// A login role of this test with `password`.
    async fn create_user(&self, name: &str, password: &str) {
        self.sql(&format!(
            "CREATE ROLE {} WITH LOGIN PASSWORD {} IN ROLE {GROUP}",
            ident(name),
            lit(password)
        ))
        .await;
    }

    /// An admin (superuser) of this test, held to its password like the other roles.
    async fn create_admin(&self, name: &str, password: &str) {
        self.sql(&format!(
            "CREATE ROLE {} WITH LOGIN SUPERUSER PASSWORD {} IN ROLE {GROUP}",
            ident(name),
            lit(password)
        ))
        .await;
    }

    async fn create_database(&self, name: &str, owner: &str) {
        self.sql(&format!(
            "CREATE DATABASE {} OWNER {}",
            ident(name),
            ident(owner)
        ))
        .await;
    }

    fn options(&self, user: &str, password: &str, db: &str) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .host(&self.host)
            .port(self.port)
            .username(user)
            .password(password)
            .database(db)
    }

    async fn can_login(&self, user: &str, password: &str, db: &str) -> bool {
        match connect(&self.options(user, password, db)).await {
            Ok(conn) => {
                let _ = conn.close().await;
                true
            }
            Err(_) => false,
        }
    }

    async fn role_exists(&self, name: &str) -> bool {
        let mut conn = self.admin().await;
        let exists =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(name)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        let _ = conn.close().await;
        exists
    }

    /// Drops this test's databases and roles.
    async fn cleanup(&self) {
        let mut conn = self.admin().await;
        let dbs: Vec<String> = sqlx::query_scalar(
            "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1)",
        )
        .bind(&self.prefix)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for db in dbs {
            exec(
                &mut conn,
                &format!("DROP DATABASE {} WITH (FORCE)", ident(&db)),
            )
            .await;
        }
        let roles: Vec<String> = sqlx::query_scalar(
            "SELECT rolname::text FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY length(rolname) DESC",
        )
        .bind(&self.prefix)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for role in roles {
            exec(&mut conn, &format!("DROP ROLE {}", ident(&role))).await;
        }
        let _ = conn.close().await;
    }

    fn secret(&self, user: &str, password: &str, db: &str) -> Value {
        json!({
            "engine": "postgres",
            "host": self.host,
            "port": self.port,
            "username": user,
            "password": password,
            "dbname": db,
        })
    }
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in the value"))
        .to_string()
}

fn stages_of(map: &BTreeMap<String, Vec<String>>, version: &str) -> Vec<String> {
    map.get(version).cloned().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn single_user_rotation_changes_the_role_password_and_keeps_every_other_field() {
    let pg = Pg::new().await;
    let coffer = Coffer::new().await;
    let (user, db) = (pg.name("app"), pg.name("db"));
    pg.create_user(&user, "first-password").await;
    pg.create_database(&db, &user).await;
    let mut value = pg.secret(&user, "first-password", &db);
    value["team"] = json!("orders");
    let arn = coffer.create("prod/orders-db", &value).await;
    let v1 = coffer.version_with(&arn, "AWSCURRENT").await.unwrap();

    let v2 = coffer
        .rotate(&arn, "coffer-postgresql-single-user")
        .await
        .unwrap();
    coffer.run_rotation_to_completion(&arn).await;

    let current = coffer.value(&arn, "AWSCURRENT").await;
    let new_password = s(&current, "password");
    assert_ne!(new_password, "first-password");
    assert!(new_password.len() >= 32);
    assert!(
        !new_password.chars().any(|c| "/@\"'\\ ".contains(c)),
        "no connection-string-breaking characters"
    );
    let mut expected = value.clone();
    expected["password"] = json!(new_password);
    assert_eq!(current, expected, "every other field is kept");
    assert_eq!(coffer.value(&arn, "AWSPREVIOUS").await, value);
    let stages = coffer.stages(&arn).await;
    assert_eq!(stages_of(&stages, &v2), ["AWSCURRENT"]);
    assert_eq!(stages_of(&stages, &v1), ["AWSPREVIOUS"]);

    assert!(pg.can_login(&user, &new_password, &db).await);
    assert!(
        !pg.can_login(&user, "first-password", &db).await,
        "the old password stops working"
    );

    // And again: the rotation is repeatable.
    coffer
        .rotate(&arn, "coffer-postgresql-single-user")
        .await
        .unwrap();
    coffer.run_rotation_to_completion(&arn).await;
    let third = s(&coffer.value(&arn, "AWSCURRENT").await, "password");
    assert!(pg.can_login(&user, &third, &db).await);
    assert!(!pg.can_login(&user, &new_password, &db).await);
    pg.cleanup().await;
}

#[tokio::test]
async fn alternating_users_flip_to_the_clone_and_back_leaving_the_master_secret_alone() {
    let pg = Pg::new().await;
    let coffer = Coffer::new().await;
    let (user, clone, admin, db) = (
        pg.name("app"),
        pg.name("app_clone"),
        pg.name("admin"),
        pg.name("db"),
    );
    pg.create_user(&user, "app-password").await;
    pg.create_admin(&admin, "admin-password").await;
    pg.create_database(&db, &user).await;
    // A table of the original user, which the clone reads through its membership.
    let mut conn = connect(&pg.options(&user, "app-password", &db))
        .await
        .unwrap();
    exec(
        &mut conn,
        "CREATE TABLE orders (id int); INSERT INTO orders VALUES (42)",
    )
    .await;
    let _ = conn.close().await;

    let master_value = pg.secret(&admin, "admin-password", "postgres");
    let master_arn = coffer.create("prod/db-admin", &master_value).await;
    let master_stages = coffer.stages(&master_arn).await;
    let mut value = pg.secret(&user, "app-password", &db);
    value["masterarn"] = json!(master_arn);
    let arn = coffer.create("prod/app-db", &value).await;

    // First rotation: the clone is created and becomes current.
    coffer
        .rotate(&arn, "coffer-postgresql-alternating-users")
        .await
        .unwrap();
    coffer.run_rotation_to_completion(&arn).await;
    let first = coffer.value(&arn, "AWSCURRENT").await;
    assert_eq!(s(&first, "username"), clone);
    assert_eq!(s(&first, "masterarn"), master_arn);
    assert_eq!(s(&first, "dbname"), db);
    assert_eq!(coffer.value(&arn, "AWSPREVIOUS").await, value);
    let clone_password = s(&first, "password");
    assert!(pg.can_login(&clone, &clone_password, &db).await);
    assert!(
        pg.can_login(&user, "app-password", &db).await,
        "the previous user keeps working while applications move over"
    );
    let mut conn = connect(&pg.options(&clone, &clone_password, &db))
        .await
        .unwrap();
    let id: i32 = sqlx::query_scalar("SELECT id FROM orders")
        .fetch_one(&mut conn)
        .await
        .expect("the clone has the original user's privileges");
    assert_eq!(id, 42);
    let _ = conn.close().await;

    // Second rotation: back to the original user, with a new password.
    coffer
        .rotate(&arn, "coffer-postgresql-alternating-users")
        .await
        .unwrap();
    coffer.run_rotation_to_completion(&arn).await;
    let second = coffer.value(&arn, "AWSCURRENT").await;
    assert_eq!(s(&second, "username"), user);
    let user_password = s(&second, "password");
    assert_ne!(user_password, "app-password");
    assert!(pg.can_login(&user, &user_password, &db).await);
    assert!(!pg.can_login(&user, "app-password", &db).await);
    assert!(
        pg.can_login(&clone, &clone_password, &db).await,
        "the clone (now AWSPREVIOUS) keeps its password"
    );
    assert_eq!(coffer.value(&arn, "AWSPREVIOUS").await, first);

    // The master secret is untouched and its user still logs in.
    assert_eq!(coffer.value(&master_arn, "AWSCURRENT").await, master_value);
    assert_eq!(coffer.stages(&master_arn).await, master_stages);
    assert!(pg.can_login(&admin, "admin-password", "postgres").await);
    pg.cleanup().await;
}

#[tokio::test]
async fn a_failing_set_secret_leaves_awscurrent_readable_and_a_retry_after_the_fix_completes() {
    let pg = Pg::new().await;
    let coffer = Coffer::new().await;
    let user = pg.name("app");
    pg.create_user(&user, "first-password").await;
    let value = pg.secret(&user, "first-password", "postgres");
    let arn = coffer.create("prod/dropped", &value).await;
    let v1 = coffer.version_with(&arn, "AWSCURRENT").await.unwrap();

    // The role is gone: setSecret cannot log in.
    pg.sql(&format!("DROP ROLE {}", ident(&user))).await;
    let token = coffer
        .rotate(&arn, "coffer-postgresql-single-user")
        .await
        .unwrap();
    let RunOutcome::Retry { error } = coffer.run_rotation(&arn).await else {
        panic!("the rotation should fail");
    };
    eprintln!("rotation error: {error}");
    assert!(error.starts_with("setSecret failed"), "{error}");
    assert!(
        error.contains(&format!("{}:{}", pg.host, pg.port)),
        "{error}"
    );
    assert!(error.contains(&user), "{error}");
    assert!(error.contains("SQLSTATE 28"), "{error}");
    let pending = s(&coffer.value(&arn, "AWSPENDING").await, "password");
    assert!(
        !error.contains("first-password") && !error.contains(&pending),
        "{error}"
    );

    // AWSCURRENT is unchanged and readable; the rotation is still pending.
    assert_eq!(coffer.value(&arn, "AWSCURRENT").await, value);
    let stages = coffer.stages(&arn).await;
    assert_eq!(stages_of(&stages, &v1), ["AWSCURRENT"]);
    assert_eq!(stages_of(&stages, &token), ["AWSPENDING"]);
    let again = coffer
        .rotate(&arn, "coffer-postgresql-single-user")
        .await
        .unwrap_err();
    assert_eq!(
        again.message,
        "A previous rotation isn't complete. That rotation will be reattempted."
    );

    // Fixed: the role is back with its current password. The retry completes.
    pg.create_user(&user, "first-password").await;
    coffer.run_rotation_to_completion(&arn).await;
    let stages = coffer.stages(&arn).await;
    assert_eq!(stages_of(&stages, &token), ["AWSCURRENT"]);
    assert_eq!(stages_of(&stages, &v1), ["AWSPREVIOUS"]);
    let current = coffer.value(&arn, "AWSCURRENT").await;
    assert_eq!(
        s(&current, "password"),
        pending,
        "the retry keeps the pending value"
    );
    assert!(pg.can_login(&user, &pending, "postgres").await);
    assert!(!pg.can_login(&user, "first-password", "postgres").await);
    pg.cleanup().await;
}

#[tokio::test]
async fn a_wrong_master_secret_fails_set_secret_until_it_is_fixed() {
    let pg = Pg::new().await;
    let coffer = Coffer::new().await;
    let (user, clone, admin) = (pg.name("app"), pg.name("app_clone"), pg.name("admin"));
    pg.create_user(&user, "app-password").await;
    pg.create_admin(&admin, "admin-password").await;
    let master_arn = coffer
        .create(
            "prod/db-admin",
            &pg.secret(&admin, "not-the-admin-password", "postgres"),
        )
        .await;
    let mut value = pg.secret(&user, "app-password", "postgres");
    value["masterarn"] = json!(master_arn);
    let arn = coffer.create("prod/app-db", &value).await;

    let token = coffer
        .rotate(&arn, "coffer-postgresql-alternating-users")
        .await
        .unwrap();
    let RunOutcome::Retry { error } = coffer.run_rotation(&arn).await else {
        panic!("the rotation should fail");
    };
    eprintln!("rotation error: {error}");
    assert!(error.starts_with("setSecret failed"), "{error}");
    assert!(error.contains(&master_arn), "{error}");
    assert!(error.contains(&admin), "{error}");
    assert!(error.contains("SQLSTATE 28P01"), "{error}");
    assert!(!error.contains("not-the-admin-password"), "{error}");
    assert!(!error.contains("app-password"), "{error}");

    assert_eq!(coffer.value(&arn, "AWSCURRENT").await, value);
    assert!(pg.can_login(&user, "app-password", "postgres").await);
    assert!(!pg.role_exists(&clone).await);
    assert_eq!(
        stages_of(&coffer.stages(&arn).await, &token),
        ["AWSPENDING"]
    );

    // A second failing attempt changes nothing either.
    assert!(matches!(
        coffer.run_rotation(&arn).await,
        RunOutcome::Retry { .. }
    ));
    assert_eq!(coffer.value(&arn, "AWSCURRENT").await, value);

    coffer
        .put(
            &master_arn,
            &pg.secret(&admin, "admin-password", "postgres"),
        )
        .await;
    coffer.run_rotation_to_completion(&arn).await;
    let current = coffer.value(&arn, "AWSCURRENT").await;
    assert_eq!(s(&current, "username"), clone);
    assert!(
        pg.can_login(&clone, &s(&current, "password"), "postgres")
            .await
    );
    assert_eq!(
        stages_of(&coffer.stages(&arn).await, &token),
        ["AWSCURRENT"]
    );
    pg.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_server_fails_with_its_address_and_no_password() {
    let pg = Pg::new().await;
    let coffer = Coffer::new().await;
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let value = json!({
        "engine": "postgres",
        "host": "127.0.0.1",
        "port": closed_port,
        "username": "app",
        "password": "unreachable-password",
    });
    let arn = coffer.create("prod/nowhere", &value).await;
    coffer
        .rotate(&arn, "coffer-postgresql-single-user")
        .await
        .unwrap();
    let started = Instant::now();
    let RunOutcome::Retry { error } = coffer.run_rotation(&arn).await else {
        panic!("the rotation should fail");
    };
    assert!(started.elapsed() < Duration::from_secs(20));
    eprintln!("rotation error: {error}");
    assert!(error.starts_with("setSecret failed"), "{error}");
    assert!(
        error.contains(&format!("127.0.0.1:{closed_port}")),
        "{error}"
    );
    assert!(error.contains("as app"), "{error}");
    let pending = s(&coffer.value(&arn, "AWSPENDING").await, "password");
    assert!(
        !error.contains("unreachable-password") && !error.contains(&pending),
        "{error}"
    );
    assert_eq!(coffer.value(&arn, "AWSCURRENT").await, value);
    pg.cleanup().await;
}

#[tokio::test]
async fn role_names_and_passwords_with_quotes_and_backslashes_are_quoted_safely() {
    let pg = Pg::new().await;
    // The quoting functions round-trip through the server.
    let mut conn = pg.admin().await;
    for tricky in [
        "plain",
        "o'brien",
        r"back\slash",
        r#"both\' "and" ''"#,
        "x'; DROP ROLE postgres; --",
        "üñí",
    ] {
        let back: String =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT {}::text", lit(tricky))))
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(back, tricky);
        let row = sqlx::query(AssertSqlSafe(format!("SELECT 1 AS {}", ident(tricky))))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(row.columns()[0].name(), tricky);
    }
    let _ = conn.close().await;

    // A single-user rotation of a role whose name needs quoting.
    let coffer = Coffer::new().await;
    let user = pg.name(r#"o'q "x" \y"#);
    pg.create_user(&user, r"pa'ss\word").await;
    let arn = coffer
        .create("prod/quoted", &pg.secret(&user, r"pa'ss\word", "postgres"))
        .await;
    coffer
        .rotate(&arn, "coffer-postgresql-single-user")
        .await
        .unwrap();
    coffer.run_rotation_to_completion(&arn).await;
    let password = s(&coffer.value(&arn, "AWSCURRENT").await, "password");
    assert!(pg.can_login(&user, &password, "postgres").await);
    assert!(!pg.can_login(&user, r"pa'ss\word", "postgres").await);
    pg.cleanup().await;
}

#[tokio::test]
async fn rotate_secret_accepts_the_postgresql_function_names_in_any_account_and_region() {
    // RotateSecret checks only that the function exists; no database is needed here.
    let coffer = Coffer::new().await;
    let arn = coffer
        .create("prod/any", &json!({"engine": "postgres"}))
        .await;
    for function in [
        "arn:aws:lambda:us-east-1:123456789012:function:coffer-postgresql-single-user",
        "arn:aws:lambda:eu-west-3:999999999999:function:coffer-postgresql-alternating-users",
        "arn:aws:lambda:ap-south-1:111122223333:function:coffer-postgresql-single-user:PROD",
    ] {
        let input: rotate_secret::Input = serde_json::from_value(json!({
            "SecretId": arn,
            "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
            "RotationLambdaARN": function,
            "RotateImmediately": false,
        }))
        .unwrap();
        rotate_secret::run(&coffer.region, &coffer.caller, input)
            .await
            .unwrap_or_else(|e| panic!("{function}: {}", e.message));
        let input: describe_secret::Input =
            serde_json::from_value(json!({"SecretId": arn})).unwrap();
        let d = describe_secret::run(&coffer.region, &coffer.caller, input)
            .await
            .unwrap();
        assert_eq!(d.rotation_lambda_arn.as_deref(), Some(function));
        assert_eq!(d.rotation_enabled, Some(true));
    }
    let err = coffer
        .rotate(&arn, "coffer-postgresql-some-other-user")
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::AccessDenied);
}
