use std::collections::HashSet;

use diesel::prelude::*;
use diesel::upsert::excluded;

use crate::access::{Level, Page};
use crate::db::schema::page_access;
use crate::db::Conn;

/// One cell of the access table: whether `level` may open `page`.
#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = page_access)]
pub struct PageGrant {
    pub level: String,
    pub page: String,
    pub allowed: bool,
}

impl PageGrant {
    /// Gives every (level, page) pair that has no row yet its default, so that a page added in a
    /// new version gets sane access while the admin's earlier choices stay as they were.
    pub fn insert_missing_defaults(conn: &mut Conn) -> QueryResult<()> {
        let rows: Vec<PageGrant> = Page::grantable()
            .flat_map(|page| {
                Level::SIGNED_IN.into_iter().map(move |level| PageGrant {
                    level: level.as_str().to_string(),
                    page: page.key().to_string(),
                    allowed: page.default_levels().contains(&level),
                })
            })
            .collect();
        for row in rows {
            crate::db::per_backend!(conn, |inner| diesel::insert_into(page_access::table)
                .values(&row)
                .on_conflict((page_access::level, page_access::page))
                .do_nothing()
                .execute(inner))?;
        }
        Ok(())
    }

    /// The granted pairs; rows naming a page or level this version does not know are ignored.
    pub fn load_granted(conn: &mut Conn) -> QueryResult<HashSet<(Level, Page)>> {
        let rows: Vec<PageGrant> = page_access::table
            .filter(page_access::allowed.eq(true))
            .select(PageGrant::as_select())
            .load(conn)?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((Level::parse(&r.level)?, Page::parse(&r.page)?)))
            .collect())
    }

    /// Writes the whole grid; the caller wraps this in the transaction that audits it.
    pub fn save_grid(granted: &HashSet<(Level, Page)>, conn: &mut Conn) -> QueryResult<()> {
        for page in Page::grantable() {
            for level in Level::SIGNED_IN {
                let allowed = page.is_pinned(level) || granted.contains(&(level, page));
                crate::db::per_backend!(conn, |inner| diesel::insert_into(page_access::table)
                    .values(&PageGrant {
                        level: level.as_str().to_string(),
                        page: page.key().to_string(),
                        allowed,
                    })
                    .on_conflict((page_access::level, page_access::page))
                    .do_update()
                    .set(page_access::allowed.eq(excluded(page_access::allowed)))
                    .execute(inner))?;
            }
        }
        Ok(())
    }
}
