//! Versioned schema migrations, one numbered SQL file each, tracked by `PRAGMA user_version`.
//!
//! A migration, once released, never changes: a change of the on-disk format is a new file.
//! `tests/schema_stability.rs` compares the schema after all migrations with a committed
//! snapshot, so an edit that skips this rule fails the build.

use rusqlite::Connection;

/// The migrations in order; entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_delivery.sql"),
    include_str!("../migrations/0003_lookup_indexes.sql"),
    include_str!("../migrations/0004_contact_standing.sql"),
    include_str!("../migrations/0005_call_events.sql"),
];

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// What applying migrations found.
#[derive(Debug)]
pub(crate) enum MigrateOutcome {
    /// The database is now at [`SCHEMA_VERSION`].
    UpToDate,
    /// The database was written by a newer build.
    Newer(u32),
}

/// Brings the schema up to [`SCHEMA_VERSION`], each step in its own transaction together
/// with its `user_version` bump, so a crash never leaves a half-migrated file.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<MigrateOutcome> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Ok(MigrateOutcome::Newer(current));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(MigrateOutcome::UpToDate)
}

/// The schema as SQL text (`sqlite_master` ordered by type and name), for the stability test.
///
/// # Errors
/// Any SQLite error.
pub fn schema_snapshot(conn: &Connection) -> rusqlite::Result<String> {
    let mut stmt = conn.prepare(
        "SELECT type, name, tbl_name, sql FROM sqlite_master \
         WHERE sql IS NOT NULL ORDER BY type, name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(format!(
            "-- {} {} on {}\n{};\n",
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?
        ))
    })?;
    let mut out = format!("-- user_version {SCHEMA_VERSION}\n");
    for row in rows {
        out.push_str(&row?);
    }
    // FTS5 options (such as `secure-delete`) live in each index's `_config` table, not in
    // `sqlite_master`; they are part of the format too.
    let mut fts = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%USING fts5%' ORDER BY name",
    )?;
    let names = fts
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    for name in names {
        let mut stmt = conn.prepare(&format!("SELECT k, v FROM \"{name}_config\" ORDER BY k"))?;
        let rows = stmt.query_map([], |r| {
            Ok(format!(
                "-- fts5 config {name}: {} = {}\n",
                r.get::<_, String>(0)?,
                r.get::<_, rusqlite::types::Value>(1)
                    .map(|v| format!("{v:?}"))?
            ))
        })?;
        for row in rows {
            out.push_str(&row?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Snapshot of the schema after each version, committed next to the migrations.
    /// Editing a released migration changes an old snapshot (visible in review); changing
    /// the schema without a new migration fails here. Regenerate a *new* snapshot with
    /// `LATCH_WRITE_SCHEMA_SNAPSHOT=1 cargo test -p latch-store schema`.
    const SNAPSHOTS: &[&str] = &[
        include_str!("../migrations/snapshots/0001.sql"),
        include_str!("../migrations/snapshots/0002.sql"),
        include_str!("../migrations/snapshots/0003.sql"),
        include_str!("../migrations/snapshots/0004.sql"),
        include_str!("../migrations/snapshots/0005.sql"),
    ];

    fn schema_at(version: usize) -> String {
        let conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap();
        }
        schema_snapshot(&conn).unwrap().replacen(
            &format!("-- user_version {SCHEMA_VERSION}"),
            &format!("-- user_version {version}"),
            1,
        )
    }

    #[test]
    fn schema_matches_committed_snapshots() {
        assert_eq!(
            SNAPSHOTS.len(),
            MIGRATIONS.len(),
            "every migration needs a committed schema snapshot"
        );
        for (i, expected) in SNAPSHOTS.iter().enumerate() {
            let version = i + 1;
            let actual = schema_at(version);
            if std::env::var_os("LATCH_WRITE_SCHEMA_SNAPSHOT").is_some()
                && version == SNAPSHOTS.len()
            {
                let path = format!(
                    "{}/migrations/snapshots/{version:04}.sql",
                    env!("CARGO_MANIFEST_DIR")
                );
                std::fs::write(path, &actual).unwrap();
                continue;
            }
            assert_eq!(
                &actual, expected,
                "schema version {version} differs from its snapshot: add a migration instead \
                 of editing a released one"
            );
        }
    }

    /// The conversation list asks every conversation for its unread and its held messages;
    /// both lookups must use their partial index, not walk the whole history.
    #[test]
    fn a_sender_lookup_by_signing_key_uses_its_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT id FROM contacts WHERE substr(identity_key, 2, 32) = ?1",
                [vec![7u8; 32]],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("contacts_signing_key"), "{plan}");
    }

    #[test]
    fn unread_and_pending_lookups_use_their_partial_indexes() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        for (cond, index) in [
            ("direction = 0 AND status = 5", "messages_unread"),
            ("direction = 1 AND status = 0", "messages_pending"),
        ] {
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT id FROM messages \
                 WHERE conversation_id = ?1 AND {cond} ORDER BY sent_at, id LIMIT 10"
            );
            let mut stmt = conn.prepare(&sql).unwrap();
            let plan: Vec<String> = stmt
                .query_map([1], |r| r.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(
                plan.iter().any(|step| step.contains(index)),
                "{cond}: {plan:?}"
            );
        }
    }

    #[test]
    fn migrating_twice_is_a_no_op_and_newer_is_reported() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert!(matches!(
            migrate(&mut conn).unwrap(),
            MigrateOutcome::UpToDate
        ));
        let before = schema_snapshot(&conn).unwrap();
        assert!(matches!(
            migrate(&mut conn).unwrap(),
            MigrateOutcome::UpToDate
        ));
        assert_eq!(schema_snapshot(&conn).unwrap(), before);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(
            matches!(migrate(&mut conn).unwrap(), MigrateOutcome::Newer(v) if v == SCHEMA_VERSION + 1)
        );
    }
}
