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

use super::{Conn, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

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
    let mut scratch = diesel::SqliteConnection::establish(":memory:")
        .map(Conn::Sqlite)
        .map_err(|e| format!("cannot open a scratch database: {e}"))?;
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
/// migrations ran. On PostgreSQL, against the schema the migrations build in a scratch schema
/// of the same database.
pub fn require_current(conn: &mut Conn) -> Result<(), String> {
    if matches!(conn, Conn::Postgres(_)) {
        return require_current_postgres(conn);
    }
    let latest = known_versions()
        .pop()
        .ok_or_else(|| "this build has no migrations".to_string())?;
    require_exact(conn, &latest)
}

/// The scratch schema the reference is built in, inside a transaction that is always rolled
/// back: nobody else sees it and it leaves nothing behind.
const POSTGRES_REFERENCE: &str = "medvault_reference";

/// Every object PostgreSQL keeps for schema `$1` that could run or be read as medvault's:
/// tables and views, columns with their types and defaults, indexes, constraints, triggers
/// (TRUNCATE ones too), functions, rules and row security policies. Definitions are as the
/// server prints them, schema names removed by [`postgres_objects`].
const POSTGRES_CATALOGUE: &str = "\
SELECT 'table' AS kind, c.relname::text AS name, c.relname::text AS \"table\", \
       c.relkind::text || CASE WHEN c.relrowsecurity THEN ' row security' ELSE '' END AS sql \
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
  WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'm', 'f', 'p', 'S') \
UNION ALL \
SELECT 'column', c.relname || '.' || a.attname, c.relname::text, \
       format_type(a.atttypid, a.atttypmod) \
       || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END \
       || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '') \
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
  JOIN pg_namespace n ON n.oid = c.relnamespace \
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
  WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'm', 'f', 'p') \
    AND a.attnum > 0 AND NOT a.attisdropped \
UNION ALL \
SELECT 'index', ci.relname::text, ct.relname::text, pg_get_indexdef(i.indexrelid) \
  FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid \
  JOIN pg_class ct ON ct.oid = i.indrelid JOIN pg_namespace n ON n.oid = ct.relnamespace \
  WHERE n.nspname = $1 \
UNION ALL \
SELECT 'constraint', con.conname::text, c.relname::text, pg_get_constraintdef(con.oid) \
  FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 \
UNION ALL \
SELECT 'trigger', t.tgname::text, c.relname::text, pg_get_triggerdef(t.oid) \
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND NOT t.tgisinternal \
UNION ALL \
SELECT 'function', p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', \
       p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', \
       pg_get_functiondef(p.oid) \
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 \
UNION ALL \
SELECT 'rule', r.rulename::text, c.relname::text, pg_get_ruledef(r.oid) \
  FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class \
  JOIN pg_namespace n ON n.oid = c.relnamespace \
  WHERE n.nspname = $1 AND r.rulename <> '_RETURN' \
UNION ALL \
SELECT 'policy', pol.polname::text, c.relname::text, \
       pol.polcmd::text || ' ' || coalesce(pg_get_expr(pol.polqual, pol.polrelid), '') \
       || ' ' || coalesce(pg_get_expr(pol.polwithcheck, pol.polrelid), '') \
  FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid \
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 \
ORDER BY 1, 2";

/// The objects of PostgreSQL schema `schema`, with the schema's name taken out of their
/// definitions so that the live schema and the reference compare equal when they are.
fn postgres_objects(conn: &mut Conn, schema: &str) -> QueryResult<Vec<SchemaObject>> {
    let objects: Vec<SchemaObject> = diesel::sql_query(POSTGRES_CATALOGUE)
        .bind::<Text, _>(schema)
        .load(conn)?;
    let (quoted, bare) = (format!("\"{schema}\"."), format!("{schema}."));
    Ok(objects
        .into_iter()
        .map(|mut object| {
            object.sql = object
                .sql
                .map(|sql| sql.replace(&quoted, "").replace(&bare, ""));
            object
        })
        .collect())
}

#[derive(QueryableByName)]
struct CurrentSchema {
    #[diesel(sql_type = Text)]
    schema: String,
}

/// [`require_current`] on PostgreSQL: the reference is what the migrations build in a scratch
/// schema of this database, inside a transaction that is rolled back.
fn require_current_postgres(conn: &mut Conn) -> Result<(), String> {
    let mut compared: Result<Option<String>, String> = Err("the schema was not compared".into());
    let _rolled_back = conn.transaction::<(), diesel::result::Error, _>(|conn| {
        compared = (|| {
            let live = diesel::sql_query("SELECT current_schema()::text AS schema")
                .get_result::<CurrentSchema>(conn)
                .map_err(|e| format!("its schema cannot be read: {e}"))?
                .schema;
            conn.batch_execute(&format!(
                "CREATE SCHEMA {POSTGRES_REFERENCE}; \
                 SET LOCAL search_path TO {POSTGRES_REFERENCE}"
            ))
            .map_err(|e| format!("cannot build the reference schema: {e}"))?;
            conn.run_pending_migrations(POSTGRES_MIGRATIONS)
                .map_err(|e| format!("cannot build the reference schema: {e}"))?;
            let expected = postgres_objects(conn, POSTGRES_REFERENCE)
                .map_err(|e| format!("reading the reference schema: {e}"))?;
            let actual = postgres_objects(conn, &live)
                .map_err(|e| format!("its schema cannot be read: {e}"))?;
            Ok(first_difference(&expected, &actual))
        })();
        Err(diesel::result::Error::RollbackTransaction)
    });
    match compared? {
        None => Ok(()),
        Some(difference) => Err(difference),
    }
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
