//! SQLite file backend: the default for the binary.
//!
//! Same table as Spin's SQLite key-value store (`spin_key_value(store, key, value)`), in
//! WAL mode with a busy timeout, so several host processes can share one file. Every
//! read-modify-write (compare-and-swap, increment) runs inside a `BEGIN IMMEDIATE`
//! transaction, which takes the database's write lock before reading: no other
//! connection, in this process or another, can write between the read and the write.
//!
//! Reads go through a second, read-only connection and are served inline on the async
//! runtime ([`Access::Read`] is [`Dispatch::Inline`]): a WAL reader never waits for a writer,
//! and each read is its own transaction, so it sees every write committed before it. Writes
//! are tried inline too, with waiting off ([`Dispatch::InlineUnlessBusy`]): when the write
//! connection is in use in this process, or another connection holds the database's write
//! lock, the try changes nothing and answers [`KvError::WouldBlock`], and the host makes the
//! write again on tokio's blocking pool, where it waits up to [`BUSY_TIMEOUT`]. Handing a
//! call to that pool costs about 100 µs (mostly waking the runtime thread back up); an
//! uncontended SQLite read takes a few microseconds and a write a few tens. A write that
//! triggers SQLite's automatic checkpoint (every 1,000 WAL pages) does its fsyncs inline.
//!
//! Durability: `synchronous = NORMAL` under WAL. A committed write survives the host
//! process being killed or restarted; only an OS crash or power loss may roll back the
//! last few commits.

use super::{
    Access, Dispatch, KeyValue, KvBackend, KvError, SwapOutcome, add_counter, decode_counter, may_wait,
};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Duration;

/// How long a connection waits for another writer before reporting the store busy.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`KvBackend`] on a SQLite file: a connection for writes and a read-only one for reads.
/// Open one store per process (or several, for tests) on the same file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    reader: Mutex<Connection>,
}

fn db_err(e: rusqlite::Error) -> KvError {
    // With waiting off the busy timeout is zero, so "busy" means another connection holds
    // the write lock and this statement or transaction did not start.
    if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) && !may_wait() {
        return KvError::WouldBlock;
    }
    KvError::other(format!("sqlite: {e}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, KvError> {
        let conn = Connection::open(path.as_ref()).map_err(db_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
        // `journal_mode` returns the resulting mode as a row.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(KvError::other(format!(
                "sqlite: could not enable WAL mode (got {mode})"
            )));
        }
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS spin_key_value (
                 store TEXT NOT NULL,
                 key   TEXT NOT NULL,
                 value BLOB NOT NULL,
                 PRIMARY KEY (store, key)
             );",
        )
        .map_err(db_err)?;
        // Opened after the writer has made the file, its WAL and the table.
        let reader = Connection::open_with_flags(
            path.as_ref(),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db_err)?;
        reader.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
        Ok(Self {
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
        })
    }

    /// The write connection, with a busy timeout of [`BUSY_TIMEOUT`], or of zero when waiting
    /// is off (then a connection in use is [`KvError::WouldBlock`]).
    fn conn(&self) -> Result<MutexGuard<'_, Connection>, KvError> {
        let wait = may_wait();
        let locked = match wait {
            true => self.conn.lock(),
            false => match self.conn.try_lock() {
                Ok(conn) => Ok(conn),
                Err(TryLockError::WouldBlock) => return Err(KvError::WouldBlock),
                Err(TryLockError::Poisoned(p)) => Err(p),
            },
        };
        // rusqlite rolls back an open transaction when it is dropped during a panic,
        // so the connection behind a poisoned lock is still usable.
        let conn = locked.unwrap_or_else(|p| p.into_inner());
        conn.busy_timeout(if wait { BUSY_TIMEOUT } else { Duration::ZERO }).map_err(db_err)?;
        Ok(conn)
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn read(conn: &Connection, store: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
    conn.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")
        .map_err(db_err)?
        .query_row(params![store, key], |r| r.get(0))
        .optional()
        .map_err(db_err)
}

fn write(conn: &Connection, store: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
    conn.prepare_cached(
        "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
    )
    .map_err(db_err)?
    .execute(params![store, key, value])
    .map_err(db_err)?;
    Ok(())
}

fn remove(conn: &Connection, store: &str, key: &str) -> Result<(), KvError> {
    conn.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")
        .map_err(db_err)?
        .execute(params![store, key])
        .map_err(db_err)?;
    Ok(())
}

impl KvBackend for SqliteStore {
    fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        read(&self.reader(), store, key)
    }

    fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        write(&*self.conn()?, store, key, value)
    }

    fn delete(&self, store: &str, key: &str) -> Result<(), KvError> {
        remove(&*self.conn()?, store, key)
    }

    fn exists(&self, store: &str, key: &str) -> Result<bool, KvError> {
        self.reader()
            .prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")
            .map_err(db_err)?
            .exists(params![store, key])
            .map_err(db_err)
    }

    fn list_keys(&self, store: &str) -> Result<Vec<String>, KvError> {
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![store], |r| r.get::<_, String>(0))
            .map_err(db_err)?;
        rows.collect::<Result<_, _>>().map_err(db_err)
    }

    fn get_many(&self, store: &str, keys: &[String]) -> Result<Vec<KeyValue>, KvError> {
        let mut conn = self.reader();
        // One read transaction: a consistent snapshot of all the keys.
        let tx = conn.transaction().map_err(db_err)?;
        let out = keys
            .iter()
            .map(|k| Ok((k.clone(), read(&tx, store, k)?)))
            .collect::<Result<Vec<_>, KvError>>()?;
        tx.commit().map_err(db_err)?;
        Ok(out)
    }

    fn set_many(&self, store: &str, entries: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        for (k, v) in entries {
            write(&tx, store, k, v)?;
        }
        tx.commit().map_err(db_err)
    }

    fn delete_many(&self, store: &str, keys: &[String]) -> Result<(), KvError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        for k in keys {
            remove(&tx, store, k)?;
        }
        tx.commit().map_err(db_err)
    }

    fn swap(
        &self,
        store: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<SwapOutcome, KvError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        if read(&tx, store, key)?.as_deref() != expected {
            // Dropping the transaction rolls it back; nothing was written.
            return Ok(SwapOutcome::Conflict);
        }
        write(&tx, store, key, value)?;
        tx.commit().map_err(db_err)?;
        Ok(SwapOutcome::Swapped)
    }

    fn increment(&self, store: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let next = add_counter(decode_counter(read(&tx, store, key)?.as_deref())?, delta)?;
        write(&tx, store, key, &next.to_le_bytes())?;
        tx.commit().map_err(db_err)?;
        Ok(next)
    }

    fn dispatch(&self, access: Access) -> Dispatch {
        match access {
            Access::Read => Dispatch::Inline,
            Access::Write => Dispatch::InlineUnlessBusy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::testutil::TempDb;
    use std::sync::Arc;

    #[test]
    fn contract() {
        let db = TempDb::new("contract");
        crate::kv::contract::check_backend(&SqliteStore::open(db.path()).unwrap());
    }

    #[test]
    fn survives_reopen() {
        let db = TempDb::new("reopen");
        {
            let s = SqliteStore::open(db.path()).unwrap();
            s.set("default", "device:1", b"token").unwrap();
            assert_eq!(s.increment("default", "n", 41).unwrap(), 41);
            assert_eq!(
                s.swap("default", "c", None, b"v1").unwrap(),
                SwapOutcome::Swapped
            );
        } // connection closed here
        let s = SqliteStore::open(db.path()).unwrap();
        assert_eq!(
            s.get("default", "device:1").unwrap().as_deref(),
            Some(&b"token"[..])
        );
        assert_eq!(s.increment("default", "n", 1).unwrap(), 42);
        assert_eq!(s.get("default", "c").unwrap().as_deref(), Some(&b"v1"[..]));
        assert_eq!(s.list_keys("default").unwrap(), vec!["c", "device:1", "n"]);
    }

    #[test]
    fn reads_see_every_committed_write_at_once() {
        let db = TempDb::new("read-your-writes");
        let s = SqliteStore::open(db.path()).unwrap();
        assert_eq!(s.dispatch(Access::Read), Dispatch::Inline);
        assert_eq!(s.dispatch(Access::Write), Dispatch::InlineUnlessBusy);
        for i in 0..50u8 {
            s.set("default", "k", &[i]).unwrap();
            assert_eq!(s.get("default", "k").unwrap(), Some(vec![i]));
            assert_eq!(s.swap("default", "k", Some(&[i]), &[i, i]).unwrap(), SwapOutcome::Swapped);
            let many = s.get_many("default", &["k".to_owned(), "none".to_owned()]).unwrap();
            assert_eq!(many, vec![("k".to_owned(), Some(vec![i, i])), ("none".to_owned(), None)]);
        }
        assert!(s.reader().execute("DELETE FROM spin_key_value", []).is_err(), "the reader cannot write");
    }

    #[test]
    fn a_write_that_would_wait_does_nothing_and_says_so() {
        use crate::kv::without_waiting;
        let db = TempDb::new("would-block");
        let s = SqliteStore::open(db.path()).unwrap();
        s.set("default", "k", b"v0").unwrap();

        // Another connection (another process, say) holds the database's write lock.
        let other = Connection::open(db.path()).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let value = Some(&b"v0"[..]);
        assert_eq!(without_waiting(|| s.set("default", "k", b"v1")), Err(KvError::WouldBlock));
        assert_eq!(without_waiting(|| s.swap("default", "k", value, b"v1")), Err(KvError::WouldBlock));
        assert_eq!(without_waiting(|| s.increment("default", "n", 1)), Err(KvError::WouldBlock));
        assert!(may_wait(), "waiting is back on after the try");
        // Allowed to wait, the same write waits for the lock and lands once it is released.
        std::thread::scope(|scope| {
            scope.spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                other.execute_batch("ROLLBACK").unwrap();
            });
            assert_eq!(s.swap("default", "k", value, b"v1"), Ok(SwapOutcome::Swapped));
        });
        assert_eq!(s.get("default", "k").unwrap().as_deref(), Some(&b"v1"[..]));
        assert_eq!(s.get("default", "n").unwrap(), None, "the refused increment wrote nothing");

        // This process's write connection is in use (by a write on the blocking pool, say).
        let held = s.conn.lock().unwrap();
        assert_eq!(without_waiting(|| s.delete("default", "k")), Err(KvError::WouldBlock));
        drop(held);
        assert_eq!(without_waiting(|| s.delete("default", "k")), Ok(()));
        assert_eq!(s.get("default", "k").unwrap(), None);
    }

    #[test]
    fn two_connections_share_one_file() {
        let db = TempDb::new("shared");
        let a = SqliteStore::open(db.path()).unwrap();
        let b = SqliteStore::open(db.path()).unwrap();
        a.set("default", "k", b"from-a").unwrap();
        assert_eq!(
            b.get("default", "k").unwrap().as_deref(),
            Some(&b"from-a"[..])
        );
        // b's CAS based on what a wrote succeeds; a's stale CAS then fails
        assert_eq!(
            b.swap("default", "k", Some(b"from-a"), b"from-b").unwrap(),
            SwapOutcome::Swapped
        );
        assert_eq!(
            a.swap("default", "k", Some(b"from-a"), b"lost").unwrap(),
            SwapOutcome::Conflict
        );
        assert_eq!(
            a.get("default", "k").unwrap().as_deref(),
            Some(&b"from-b"[..])
        );
    }

    /// Many threads, each with its own connection (as separate processes would have),
    /// increment one counter and CAS-append to one value: no update may be lost.
    #[test]
    fn concurrent_connections_lose_no_updates() {
        let db = TempDb::new("concurrent");
        const THREADS: usize = 4;
        const ROUNDS: usize = 25;
        let stores: Vec<Arc<SqliteStore>> = (0..THREADS)
            .map(|_| Arc::new(SqliteStore::open(db.path()).unwrap()))
            .collect();
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(t, s)| {
                let s = Arc::clone(s);
                std::thread::spawn(move || {
                    for i in 0..ROUNDS {
                        s.increment("default", "counter", 1).unwrap();
                        loop {
                            let cur = s.get("default", "log").unwrap();
                            let mut next = cur.clone().unwrap_or_default();
                            next.extend_from_slice(format!("{t}.{i};").as_bytes());
                            match s.swap("default", "log", cur.as_deref(), &next).unwrap() {
                                SwapOutcome::Swapped => break,
                                SwapOutcome::Conflict => continue,
                            }
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let s = &stores[0];
        assert_eq!(
            s.increment("default", "counter", 0).unwrap(),
            (THREADS * ROUNDS) as i64
        );
        let log = String::from_utf8(s.get("default", "log").unwrap().unwrap()).unwrap();
        assert_eq!(
            log.split(';').filter(|e| !e.is_empty()).count(),
            THREADS * ROUNDS
        );
    }
}
