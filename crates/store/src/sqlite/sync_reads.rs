//! Synchronous SQLite reads: point reads of one secret on the calling thread, listing pages on
//! a blocking thread.
//!
//! sqlx runs each SQLite connection on a worker thread of its own and talks to it over
//! channels: every statement, and every row it returns, is a hand-off to that thread and back.
//! A read of one secret from the OS's page cache takes SQLite a few microseconds, less than the
//! hand-offs; measured with random GetSecretValue over a million secrets (docs/benchmarks.md),
//! reading here instead raised the throughput by a quarter (Region in memory) to a third (on
//! disk). So the two statements of the GetSecretValue / DescribeSecret miss path (a secret by
//! ARN, a secret by name) run here, on read-only connections of the same SQLite library
//! (rusqlite over the `libsqlite3-sys` sqlx links), with the same SQL and the same row mapping
//! (`rows::add_joined_row`). One statement, so one snapshot, as before.
//!
//! A listing page ([`SyncReaders::page`]: its candidate counts, the page and the page's
//! versions, in one read transaction) runs here too, and its caller runs it on a blocking
//! thread: a page takes milliseconds, too long to hold a runtime thread, and through sqlx it
//! was hundreds of hand-offs (about half its time at a million secrets). Everything else still
//! goes through sqlx.
//!
//! A point read blocks its thread for as long as SQLite needs: microseconds from memory, a disk
//! read when the page is not cached (sqlx's readers waited for the same disk, on their own
//! threads). Connections wait in a free list; a read that finds none free opens one (tens of
//! microseconds), and at most [`KEEP`] are kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Statement, ToSql};

use crate::listing::{Bind, Dialect, Driver, ListPage, ListQuery, PageSql};
use crate::rows::{
    RecordRow, add_joined_row, secret_from_row, secret_with_labelled_copy, version_from_row,
};
use crate::{Result, Secret, StoreError};

/// Idle connections kept for reuse. Reads run on the runtime's threads, so rarely more than
/// one per core is busy at once.
const KEEP: usize = 8;

/// Statements each connection keeps prepared: the two loads and the shapes of listing pages
/// in use (a page's SQL depends on its filters and sort).
const PREPARED: usize = 32;

/// A statement's SQL and the names of its result columns, in order.
type StatementColumns = (&'static str, Arc<[String]>);

pub(crate) struct SyncReaders {
    path: PathBuf,
    /// The idle connections; `None` once the store closed (a read then fails).
    idle: Mutex<Option<Vec<Connection>>>,
    /// Each statement's column names, learnt at its first read (the same on every connection).
    columns: Mutex<Vec<StatementColumns>>,
}

/// A row of a synchronous read, mapped by the same code as sqlx's rows. Columns are found by
/// position in the statement's `columns`: rusqlite's lookup by name asks SQLite for every
/// column's name on every `get` (about 2–3% of a random read's CPU, measured).
pub(super) struct SyncRow<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    columns: &'r [String],
}

impl SyncRow<'_, '_> {
    /// The `index`th column as an integer (for statements whose columns have no useful name).
    fn int_at(&self, index: usize) -> Result<i64> {
        Ok(self.row.get(index)?)
    }

    fn get<T: rusqlite::types::FromSql>(&self, column: &str) -> Result<T> {
        let index = self
            .columns
            .iter()
            .position(|c| c == column)
            .ok_or_else(|| rusqlite::Error::InvalidColumnName(column.to_string()))?;
        Ok(self.row.get(index)?)
    }
}

impl RecordRow for SyncRow<'_, '_> {
    fn text(&self, column: &str) -> Result<String> {
        self.get(column)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        self.get(column)
    }
    fn int(&self, column: &str) -> Result<i64> {
        self.get(column)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        self.get(column)
    }
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>> {
        self.get(column)
    }
}

impl SyncReaders {
    /// Opens the first connection, so a file that cannot be read this way fails the open.
    pub(crate) fn open(path: &Path) -> Result<SyncReaders> {
        let readers = SyncReaders {
            path: path.to_path_buf(),
            idle: Mutex::new(Some(Vec::new())),
            columns: Mutex::new(Vec::new()),
        };
        let first = readers.connect()?;
        readers.put_back(first);
        Ok(readers)
    }

    fn connect(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.set_prepared_statement_cache_capacity(PREPARED);
        Ok(conn)
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Option<Vec<Connection>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `conn` for the next read (drops it when enough are kept or the store closed).
    fn put_back(&self, conn: Connection) {
        if let Some(idle) = self.idle().as_mut()
            && idle.len() < KEEP
        {
            idle.push(conn);
        }
    }

    /// Closes the idle connections; reads from now on fail.
    pub(crate) fn close(&self) {
        self.idle().take();
    }

    /// The secret in the rows of `sql` (a `*_LOAD_BY_*` statement) with text parameters
    /// `params`.
    pub(crate) fn load(&self, sql: &'static str, params: &[&str]) -> Result<Option<Secret>> {
        self.with_connection(|conn| {
            self.load_on(conn, sql, params, |secret, row| add_joined_row(secret, row))
        })
    }

    /// The secret in the row of `sql` (a `SQLITE_LOAD_LABELLED_COPY_*` statement) with text
    /// parameters `params`, its versions from the row's copy of its labelled versions.
    pub(crate) fn load_labelled_copy(
        &self,
        sql: &'static str,
        params: &[&str],
    ) -> Result<Option<Secret>> {
        self.with_connection(|conn| {
            self.load_on(conn, sql, params, |secret, row| {
                *secret = Some(secret_with_labelled_copy(row)?);
                Ok(())
            })
        })
    }

    /// One page of a listing ([`crate::listing::page_sql`]), its count statements, page and
    /// versions in one read transaction. It takes milliseconds: callers run it on a blocking
    /// thread, one hand-off per page instead of sqlx's per statement and row.
    pub(crate) fn page(&self, q: &ListQuery<'_>) -> Result<ListPage> {
        self.with_connection(|conn| page_on(conn, q))
    }

    /// Runs `f` on an idle connection (or a new one) and keeps the connection afterwards.
    fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let taken = match self.idle().as_mut() {
            Some(idle) => idle.pop(),
            None => return Err(StoreError::Backend("the store is closed".into())),
        };
        let conn = match taken {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let done = f(&conn);
        self.put_back(conn);
        done
    }

    /// The secret `add` makes of the rows of `sql` with text parameters `params`, its
    /// versions in the stores' order.
    fn load_on(
        &self,
        conn: &Connection,
        sql: &'static str,
        params: &[&str],
        mut add: impl FnMut(&mut Option<Secret>, &SyncRow<'_, '_>) -> Result<()>,
    ) -> Result<Option<Secret>> {
        let mut statement = conn.prepare_cached(sql)?;
        let columns = self.columns_of(sql, &statement);
        bind(&mut statement, params.iter().map(|p| p as &dyn ToSql))?;
        let mut secret = None;
        for_each_row(&mut statement, &columns, |row| add(&mut secret, row))?;
        if let Some(secret) = &mut secret {
            crate::rows::sort_versions(&mut secret.versions);
        }
        Ok(secret)
    }

    fn columns_of(&self, sql: &'static str, statement: &Statement) -> Arc<[String]> {
        let mut known = self.columns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, columns)) = known.iter().find(|(s, _)| *s == sql) {
            return columns.clone();
        }
        let columns: Arc<[String]> = column_names(statement).into();
        known.push((sql, columns.clone()));
        columns
    }
}

fn column_names(statement: &Statement) -> Vec<String> {
    statement
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// Binds `values` to `$1`, `$2`, ... of `statement` (by their numbers, wherever they appear in
/// its text; a value whose number the text does not use is left out, as sqlx does). Each of
/// the statement's parameters is named once, in one pass: SQLite's lookup by name scans every
/// name, which for a statement of hundreds of parameters (a writer's multi-row statement)
/// would be quadratic.
pub(super) fn bind<'v>(
    statement: &mut Statement,
    values: impl IntoIterator<Item = &'v dyn ToSql>,
) -> Result<()> {
    let values: Vec<&dyn ToSql> = values.into_iter().collect();
    for index in 1..=statement.parameter_count() {
        let number = statement
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=values.len()).contains(n))
            .ok_or_else(|| {
                StoreError::Backend(format!(
                    "parameter {index} of a statement is not one of $1..${}",
                    values.len()
                ))
            })?;
        statement.raw_bind_parameter(index, values[number - 1])?;
    }
    Ok(())
}

/// Runs the bound `statement`, handing each row to `each` (columns found by position in
/// `columns`, the statement's column names).
fn for_each_row(
    statement: &mut Statement,
    columns: &[String],
    mut each: impl FnMut(&SyncRow<'_, '_>) -> Result<()>,
) -> Result<()> {
    let mut rows = statement.raw_query();
    while let Some(row) = rows.next()? {
        each(&SyncRow { row, columns })?;
    }
    Ok(())
}

/// The rows of `sql` with `binds`, each mapped by `map` (a listing's statements: their text
/// varies with the filters, so their column names are read each time).
fn rows_of<T>(
    conn: &Connection,
    sql: &str,
    binds: &[Bind],
    map: impl FnMut(&SyncRow<'_, '_>) -> Result<T>,
) -> Result<Vec<T>> {
    let values = binds.iter().map(|b| match b {
        Bind::Text(t) => t as &dyn ToSql,
        Bind::Int(n) => n as &dyn ToSql,
    });
    rows_with(conn, sql, values, map)
}

/// The rows of `sql` (prepared from the connection's cache) with `values` bound to `$1`,
/// `$2`, ..., each mapped by `map`; also the writer's statements that return rows.
pub(super) fn rows_with<'v, T>(
    conn: &Connection,
    sql: &str,
    values: impl IntoIterator<Item = &'v dyn ToSql>,
    mut map: impl FnMut(&SyncRow<'_, '_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    let columns = column_names(&statement);
    bind(&mut statement, values)?;
    let mut out = Vec::new();
    for_each_row(&mut statement, &columns, |row| {
        out.push(map(row)?);
        Ok(())
    })?;
    Ok(out)
}

fn page_on(conn: &Connection, q: &ListQuery<'_>) -> Result<ListPage> {
    let dialect = Dialect::Sqlite;
    // One snapshot for the counts, the page and its versions.
    let tx = conn.unchecked_transaction()?;
    let mut driver = Driver::default();
    for (sources, counts) in Driver::candidates(q, dialect) {
        let mut candidates = 0;
        for PageSql { sql, binds } in counts {
            candidates += rows_of(conn, &sql, &binds, |row| row.int_at(0))?
                .first()
                .copied()
                .unwrap_or(0);
            if Driver::enough(candidates) {
                break;
            }
        }
        driver.offer(candidates, sources);
    }
    let page = crate::listing::page_sql(q, dialect, driver.sources());
    let records = rows_of(conn, &page.sql, &page.binds, |row| secret_from_row(row))?;
    let shown = records.len().min(q.limit);
    let versions = if shown == 0 {
        Vec::new()
    } else {
        let arns: Vec<Bind> = records[..shown]
            .iter()
            .map(|r| Bind::Text(r.arn.clone()))
            .collect();
        let sql = crate::listing::versions_sql(shown, dialect);
        rows_of(conn, &sql, &arns, |row| version_from_row(row))?
    };
    tx.commit()?;
    Ok(crate::listing::assemble(q, records, versions))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A closed store's point reads fail instead of reopening the file behind its back, and a
    /// connection handed back after the close is dropped, not kept.
    #[test]
    fn reads_fail_once_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let readers = SyncReaders::open(&path).unwrap();
        let conn = readers.idle().as_mut().unwrap().pop().unwrap();
        readers.close();
        readers.put_back(conn);
        assert!(readers.idle().is_none());
        let err = readers.load("SELECT 1", &[]).unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");
    }

    /// A row whose copy of its labelled versions is gone (the file changed outside Coffer)
    /// fails the read with an error that says how to recover, instead of reading as a secret
    /// without versions.
    #[tokio::test]
    async fn a_missing_copy_of_the_labelled_versions_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let store = crate::SqliteStore::open(&path).await.unwrap();
        crate::Store::close(&store).await;
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO secrets (arn, account_id, name, created_ms, last_changed_ms, \
             row_version) VALUES ('arn:s', '123456789012', 's', 1, 1, 1); \
             UPDATE secrets SET labelled = NULL;",
        )
        .unwrap();
        drop(conn);
        let store = crate::SqliteStore::open(&path).await.unwrap();
        let err = crate::Store::load_by_arn(&store, "arn:s", crate::Versions::Labelled)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("arn:s") && err.contains("coffer backup"),
            "{err}"
        );
        crate::Store::close(&store).await;
    }

    /// The loads by label read the secret's row alone (its copy of the labelled versions),
    /// found by its key; and the triggers that keep the copy seek the partial index of the
    /// labelled versions by the secret's ARN (a scan would read every labelled version of the
    /// Region on every write).
    #[tokio::test]
    async fn loads_by_label_read_only_the_secrets_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let store = crate::SqliteStore::open(&path).await.unwrap();
        crate::Store::close(&store).await;
        let conn = Connection::open(&path).unwrap();
        let (account, name, arn) = ("123456789012", "n", "arn");
        let plan = |sql: &str, params: &[&dyn ToSql]| -> Vec<String> {
            let mut plan = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            plan.query_map(params, |row| row.get::<_, String>(3))
                .unwrap()
                .map(|step| step.unwrap())
                .collect()
        };
        assert_eq!(
            plan(
                crate::rows::SQLITE_LOAD_LABELLED_COPY_BY_NAME,
                &[&account as &dyn ToSql, &name]
            ),
            ["SEARCH s USING INDEX sqlite_autoindex_secrets_2 (account_id=? AND name=?)"]
        );
        assert_eq!(
            plan(crate::rows::SQLITE_LOAD_LABELLED_COPY_BY_ARN, &[&arn]),
            ["SEARCH s USING INDEX sqlite_autoindex_secrets_1 (arn=?)"]
        );
        let copy = plan(
            "SELECT labelled FROM secret_labelled_versions WHERE secret_arn = $1",
            &[&arn],
        );
        assert!(
            copy.iter().any(|s| s
                == "SEARCH secret_versions USING INDEX secret_versions_labelled (secret_arn=?)"),
            "{copy:?}"
        );
        assert!(
            copy.iter().all(|s| !s.starts_with("SCAN secret_versions")),
            "{copy:?}"
        );
    }
}
