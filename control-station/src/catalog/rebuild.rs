//! What a catalog rebuilt from tape needs beyond the ordinary inserts: the
//! cluster's identity taken from the tapes, and the sequences moved past
//! every label, tape and media set the tapes brought.

use proto::domain::Uuid;

use super::{Catalog, CatalogError, Result};

impl Catalog {
    /// Take `id` as this cluster's UUID (the cluster that wrote the tapes
    /// a catalog is rebuilt from).
    pub async fn set_cluster_id(&self, id: Uuid) -> Result<()> {
        sqlx::query!("UPDATE cluster SET id = $1", id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// After tapes were recorded with labels and media sets of their own:
    /// the next label number follows the highest `PREFIX####` label, and
    /// the next tape id (which names a new media set) follows every media
    /// set id recorded, so neither is ever handed out again.
    pub async fn advance_sequences(&self, label_prefix: &str) -> Result<()> {
        let pattern = format!("^{}[0-9]+$", regex_escape(label_prefix));
        let start = i32::try_from(label_prefix.len() + 1)
            .map_err(|_| CatalogError::invalid(format!("tape label prefix of {} bytes", label_prefix.len())))?;
        sqlx::query!(
            r#"SELECT setval('tape_label_seq', GREATEST(
                   (SELECT COALESCE(max(substr(label, $2)::bigint), 0) FROM tapes WHERE label ~ $1),
                   (SELECT last_value FROM tape_label_seq)))"#,
            pattern,
            start
        )
        .fetch_one(&self.pool)
        .await?;
        sqlx::query!(
            r#"SELECT setval(pg_get_serial_sequence('tapes', 'id'), GREATEST(
                   (SELECT COALESCE(max(id), 1) FROM tapes),
                   (SELECT COALESCE(max(media_set), 1) FROM tapes)))"#
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(())
    }
}

/// `s` with the characters a POSIX regular expression treats specially
/// escaped.
fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\^$.|?*+()[]{}".contains(c);
            special.then_some('\\').into_iter().chain(std::iter::once(c))
        })
        .collect()
}
