//! Grants: what each client may do on which primary node's objects.

use chrono::{DateTime, Utc};

use super::{Catalog, CatalogError, Result};

/// One grant row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub client: String,
    pub primary_node: String,
    /// None: every object of the node (and its volumes as restore targets).
    pub object_name: Option<String>,
    pub may_backup: bool,
    pub may_restore: bool,
    pub granted_by: String,
    pub granted_at: DateTime<Utc>,
}

impl Catalog {
    /// Add rights (`backup`, `restore`) to what `client` has on `primary`
    /// (`object`: one object, None: the whole node).
    pub async fn grant(
        &self,
        client: &str,
        primary: &str,
        object: Option<&str>,
        backup: bool,
        restore: bool,
        by: &str,
    ) -> Result<()> {
        if !backup && !restore {
            return Err(CatalogError::invalid("a grant names --backup, --restore or both"));
        }
        sqlx::query!(
            "INSERT INTO grants (client, primary_node, object_name, may_backup, may_restore, granted_by)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (client, primary_node, (COALESCE(object_name, ''))) DO UPDATE
               SET may_backup = grants.may_backup OR EXCLUDED.may_backup,
                   may_restore = grants.may_restore OR EXCLUDED.may_restore,
                   granted_by = EXCLUDED.granted_by,
                   granted_at = now()",
            client,
            primary,
            object,
            backup,
            restore,
            by
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Take rights away (`backup`, `restore`; neither: both); a grant left
    /// with no right is deleted. Returns whether a grant matched.
    pub async fn revoke(
        &self,
        client: &str,
        primary: &str,
        object: Option<&str>,
        backup: bool,
        restore: bool,
    ) -> Result<bool> {
        let (backup, restore) = if !backup && !restore {
            (true, true)
        } else {
            (backup, restore)
        };
        let mut tx = self.pool.begin().await?;
        // What would be left of the grant: nothing deletes it (a grant
        // always holds a right), something updates it.
        let deleted = sqlx::query!(
            "DELETE FROM grants
             WHERE client = $1 AND primary_node = $2 AND COALESCE(object_name, '') = COALESCE($3, '')
               AND NOT (may_backup AND NOT $4) AND NOT (may_restore AND NOT $5)",
            client,
            primary,
            object,
            backup,
            restore
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let updated = sqlx::query!(
            "UPDATE grants SET may_backup = may_backup AND NOT $4, may_restore = may_restore AND NOT $5
             WHERE client = $1 AND primary_node = $2 AND COALESCE(object_name, '') = COALESCE($3, '')",
            client,
            primary,
            object,
            backup,
            restore
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(deleted + updated > 0)
    }

    /// Grants of `client` (None: every client's), by client, node, object.
    pub async fn grants(&self, client: Option<&str>) -> Result<Vec<GrantRow>> {
        let rows = sqlx::query_as!(
            GrantRow,
            "SELECT client, primary_node, object_name, may_backup, may_restore, granted_by, granted_at
             FROM grants WHERE $1::text IS NULL OR client = $1
             ORDER BY client, primary_node, COALESCE(object_name, '')",
            client
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}
