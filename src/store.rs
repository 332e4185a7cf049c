//! Durable settings in an embedded redb file: one JSON value per key.
//!
//! Each node owns its own file in `--data-dir`: the manager keeps thresholds and the ignore list,
//! the controller keeps the aggregation time (and, with the cluster, its known hosts).

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");

/// Errors of the durable store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("store {path}: {source}")]
    Db { path: PathBuf, source: redb::Error },
    #[error("stored value for {key} is corrupt: {source}")]
    Corrupt { key: String, source: serde_json::Error },
}

/// A small key-value store of JSON settings.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating when missing) `file` inside `dir`.
    pub fn open(dir: &Path, file: &str) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir { path: dir.to_owned(), source })?;
        let path = dir.join(file);
        let db = Database::create(&path).map_err(|e| StoreError::Db { path: path.clone(), source: e.into() })?;
        Ok(Self { db, path })
    }

    /// Reads one value; `None` when never written.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let raw = self.read(key).map_err(|source| StoreError::Db { path: self.path.clone(), source })?;
        raw.map(|s| serde_json::from_str(&s).map_err(|source| StoreError::Corrupt { key: key.to_owned(), source }))
            .transpose()
    }

    /// Writes one value durably.
    pub fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let json =
            serde_json::to_string(value).map_err(|source| StoreError::Corrupt { key: key.to_owned(), source })?;
        self.write(key, &json).map_err(|source| StoreError::Db { path: self.path.clone(), source })
    }

    fn read(&self, key: &str) -> Result<Option<String>, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(SETTINGS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(table.get(key)?.map(|v| v.value().to_owned()))
    }

    fn write(&self, key: &str, json: &str) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        txn.open_table(SETTINGS)?.insert(key, json)?;
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), "t.redb").unwrap();
            assert_eq!(s.get::<u8>("threshold").unwrap(), None);
            s.put("threshold", &42u8).unwrap();
        }
        let s = Store::open(dir.path(), "t.redb").unwrap();
        assert_eq!(s.get::<u8>("threshold").unwrap(), Some(42));
    }

    #[test]
    fn corrupt_value_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), "t.redb").unwrap();
        s.put("k", &"text").unwrap();
        let err = s.get::<u8>("k").unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
    }
}
