//! A Region's export and import over PostgreSQL, for `coffer backup` and `coffer restore`
//! (the statements are `crate::snapshot`'s, the same on both backends).

use super::region::{PostgresStore, READ_TX};
use crate::{Result, StoreError};

impl PostgresStore {
    /// Reads every record of the Region into `sink`, page by page from one snapshot
    /// (REPEATABLE READ, READ ONLY), for `coffer backup`.
    pub async fn export_to<S: crate::RegionSink>(
        &self,
        sink: &mut S,
    ) -> std::result::Result<(), S::Error> {
        let mut tx = self
            .pool
            .begin_with(READ_TX)
            .await
            .map_err(StoreError::from)?;
        crate::snapshot::pg::export(&mut tx, sink).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    /// Every record of the Region, in memory ([`PostgresStore::export_to`] streams).
    pub async fn export(&self) -> Result<crate::RegionSnapshot> {
        let mut snapshot = crate::RegionSnapshot::default();
        self.export_to(&mut snapshot).await?;
        Ok(snapshot.sorted())
    }

    /// Whether this Region store holds no secret and no KMS key, as an import needs.
    pub async fn region_is_empty(&self) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        Ok(crate::snapshot::pg::held(&mut conn).await? == 0)
    }

    /// Writes the records `next` yields (until `None`) into this (empty) Region store in one
    /// transaction, for `coffer restore`; returns the number of secrets. A store that already
    /// holds secrets or keys is refused and left as it was; on any error nothing is written.
    pub async fn import_from<E: From<StoreError>>(
        &self,
        mut next: impl FnMut() -> std::result::Result<Option<crate::RegionItem>, E>,
    ) -> std::result::Result<u64, E> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let secrets = crate::snapshot::pg::import(&mut tx, &mut next, &self.schema).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(secrets)
    }

    /// [`PostgresStore::import_from`] of a snapshot in memory.
    pub async fn import(&self, snapshot: &crate::RegionSnapshot) -> Result<()> {
        let mut items = snapshot.items();
        self.import_from(|| Ok::<_, StoreError>(items.next()))
            .await?;
        Ok(())
    }
}
