//! The shape of a database: every table, column, index, trigger and view SQLite records. A
//! database medvault opens must have exactly the shape its own migrations give at that version,
//! because SQLite runs whatever a file brings with it: a trigger planted in a backup runs on the
//! next insert with the server's rights, a dropped table turns pages into errors.
//!
//! The reference is not a hand-kept list: it is a database migrated in memory, step by step, up
//! to the version the file claims. SQLite keeps each object's `CREATE` statement as it was run
//! (and as `ALTER TABLE` rewrote it), so the same migrations give the same text byte for byte.

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use diesel_migrations::MigrationHarness;

use super::{Conn, SQLITE_MIGRATIONS};

/// One object of the schema as `sqlite_master` records it.
#[derive(QueryableByName, Clone, Debug, PartialEq, Eq)]
pub struct SchemaObject {
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub table: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub sql: Option<String>,
}

impl SchemaObject {
    fn describe(&self) -> String {
        if self.kind == "table" || self.table == self.name {
            format!("{} `{}`", self.kind, self.name)
        } else {
            format!("{} `{}` on `{}`", self.kind, self.name, self.table)
        }
    }
}

/// Every object of `conn`'s schema, by kind and name. `sqlite_stat*` tables are left out: SQLite
/// writes them itself (`ANALYZE`, `PRAGMA optimize`), they hold numbers for the query planner
/// and run nothing.
pub fn objects(conn: &mut Conn) -> QueryResult<Vec<SchemaObject>> {
    diesel::sql_query(
        "SELECT type AS kind, name, tbl_name AS \"table\", sql FROM sqlite_master \
         WHERE name NOT LIKE 'sqlite\\_stat%' ESCAPE '\\' ORDER BY type, name",
    )
    .load(conn)
}

/// The versions of this build's migrations, oldest first.
pub fn known_versions() -> Vec<String> {
    let mut versions: Vec<String> =
        MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
            .ok()
            .into_iter()
            .flatten()
            .map(|m| m.name().version().to_string())
            .collect();
    versions.sort();
    versions
}

/// The schema medvault's own migrations produce up to and including `version`, built in a
/// scratch database in memory.
pub fn reference(version: &str) -> Result<Vec<SchemaObject>, String> {
    if !known_versions().iter().any(|v| v == version) {
        return Err(format!(
            "its schema version {version} is not one of medvault's migrations"
        ));
    }
    let mut scratch =
        Conn::establish(":memory:").map_err(|e| format!("cannot open a scratch database: {e}"))?;
    scratch
        .batch_execute("PRAGMA foreign_keys = ON;")
        .map_err(|e| format!("scratch database: {e}"))?;
    loop {
        let applied = scratch
            .run_next_migration(SQLITE_MIGRATIONS)
            .map_err(|e| format!("cannot build the reference schema: {e}"))?;
        if applied.to_string() == version {
            break;
        }
    }
    objects(&mut scratch).map_err(|e| format!("reading the reference schema: {e}"))
}

/// The first way `actual` differs from `expected`, in words an operator can act on.
pub fn first_difference(expected: &[SchemaObject], actual: &[SchemaObject]) -> Option<String> {
    let key = |o: &SchemaObject| (o.kind.clone(), o.name.clone());
    for object in actual {
        match expected.iter().find(|e| key(e) == key(object)) {
            None => {
                return Some(format!(
                    "it has a {} that medvault's schema does not",
                    object.describe()
                ))
            }
            Some(ours) if ours != object => {
                return Some(format!(
                    "its {} is not defined as medvault defines it",
                    object.describe()
                ))
            }
            Some(_) => {}
        }
    }
    // A missing table takes its indexes and triggers with it: name the table.
    let mut missing: Vec<&SchemaObject> = expected
        .iter()
        .filter(|ours| !actual.iter().any(|o| key(o) == key(ours)))
        .collect();
    missing.sort_by_key(|o| o.kind != "table");
    missing
        .first()
        .map(|missing| format!("its {} is missing", missing.describe()))
}

/// Refuses `conn` unless its schema is exactly medvault's at `version`.
pub fn require_exact(conn: &mut Conn, version: &str) -> Result<(), String> {
    let expected = reference(version)?;
    let actual = objects(conn).map_err(|e| format!("its schema cannot be read: {e}"))?;
    match first_difference(&expected, &actual) {
        None => Ok(()),
        Some(difference) => Err(difference),
    }
}

/// [`require_exact`] at the newest version this build knows: for the live database, after its
/// migrations ran.
pub fn require_current(conn: &mut Conn) -> Result<(), String> {
    let latest = known_versions()
        .pop()
        .ok_or_else(|| "this build has no migrations".to_string())?;
    require_exact(conn, &latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrated() -> Conn {
        let mut conn = Conn::establish(":memory:").unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        conn
    }

    #[test]
    fn a_freshly_migrated_database_has_medvaults_shape_at_every_version() {
        let mut conn = migrated();
        assert_eq!(require_current(&mut conn), Ok(()));
        let versions = known_versions();
        assert!(versions.len() >= 4);
        // Each older version's reference is a strict subset of the next one's.
        for pair in versions.windows(2) {
            let older = reference(&pair[0]).unwrap();
            let newer = reference(&pair[1]).unwrap();
            assert_ne!(older, newer, "{} and {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn each_kind_of_change_is_named() {
        let cases = [
            (
                "CREATE TRIGGER promote AFTER INSERT ON audit_events BEGIN \
                 UPDATE users SET level = 'admin'; END;",
                "has a trigger `promote` on `audit_events` that medvault's schema does not",
            ),
            (
                "CREATE VIEW everyone AS SELECT * FROM users;",
                "has a view `everyone`",
            ),
            ("CREATE TABLE extra (x);", "has a table `extra`"),
            (
                "CREATE INDEX users_level ON users (level);",
                "has a index `users_level` on `users`",
            ),
            (
                "DROP TRIGGER audit_events_no_delete;",
                "trigger `audit_events_no_delete` on `audit_events` is missing",
            ),
            (
                "DROP TABLE vaccinations;",
                "table `vaccinations` is missing",
            ),
            (
                "ALTER TABLE users ADD COLUMN note TEXT;",
                "table `users` is not defined as medvault defines it",
            ),
        ];
        for (sql, expected) in cases {
            let mut conn = migrated();
            conn.batch_execute(sql).unwrap();
            let refused = require_current(&mut conn).unwrap_err();
            assert!(refused.contains(expected), "{sql}: {refused}");
        }
    }

    #[test]
    fn statistics_tables_are_not_schema() {
        let mut conn = migrated();
        conn.batch_execute("ANALYZE;").unwrap();
        assert_eq!(require_current(&mut conn), Ok(()));
    }

    #[test]
    fn an_unknown_version_has_no_reference() {
        assert!(reference("19990101000000").is_err());
    }
}
