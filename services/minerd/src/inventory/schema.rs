//! The inventory schema and its migrations. `PRAGMA user_version` holds the number of
//! migrations applied; each runs in its own transaction with the version bump, so a kill
//! between two migrations leaves a file that the next start migrates on from where it was.
//! A migration, once released, is never edited: changes are new entries at the end.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: miners and their downsampled history.
    "CREATE TABLE miners (
        id INTEGER PRIMARY KEY,
        ip TEXT NOT NULL,
        port INTEGER NOT NULL,
        mac TEXT,
        serial TEXT,
        model TEXT,
        firmware TEXT NOT NULL,
        firmware_version TEXT,
        location TEXT NOT NULL,
        owner TEXT NOT NULL,
        power_target_w REAL,
        state TEXT NOT NULL CHECK (state IN ('active', 'quarantined', 'sleeping', 'missing')),
        missed_scans INTEGER NOT NULL DEFAULT 0,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        UNIQUE (ip, port)
    );
    CREATE INDEX miners_owner ON miners (owner);
    CREATE TABLE history_minute (
        miner_id INTEGER NOT NULL REFERENCES miners (id) ON DELETE CASCADE,
        bucket INTEGER NOT NULL,
        samples INTEGER NOT NULL,
        hashrate_sum REAL NOT NULL,
        hashrate_max REAL NOT NULL,
        power_sum REAL NOT NULL,
        power_samples INTEGER NOT NULL,
        chip_temp_max REAL,
        PRIMARY KEY (miner_id, bucket)
    ) WITHOUT ROWID;
    CREATE INDEX history_minute_bucket ON history_minute (bucket);
    CREATE TABLE history_hour (
        miner_id INTEGER NOT NULL REFERENCES miners (id) ON DELETE CASCADE,
        bucket INTEGER NOT NULL,
        samples INTEGER NOT NULL,
        hashrate_sum REAL NOT NULL,
        hashrate_max REAL NOT NULL,
        power_sum REAL NOT NULL,
        power_samples INTEGER NOT NULL,
        chip_temp_max REAL,
        PRIMARY KEY (miner_id, bucket)
    ) WITHOUT ROWID;
    CREATE INDEX history_hour_bucket ON history_hour (bucket);",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

#[derive(Debug)]
pub enum MigrateError {
    Sqlite(rusqlite::Error),
    Newer { found: i64, known: i64 },
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        MigrateError::Sqlite(e)
    }
}

/// Applies the migrations the file has not seen yet, in order.
pub fn migrate(db: &mut Connection) -> Result<(), MigrateError> {
    let found: i64 = db.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(MigrateError::Newer {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = db.transaction()?;
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
