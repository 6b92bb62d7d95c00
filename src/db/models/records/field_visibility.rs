//! The admin's masking choices, as stored.

use diesel::prelude::*;

use crate::db::schema::field_visibility;
use crate::db::Conn;

/// The admin's choices of how profile fields are shown, as (field, level, mode).
pub struct FieldVisibilityRows;

impl FieldVisibilityRows {
    pub fn all(conn: &mut Conn) -> QueryResult<Vec<(String, String, String)>> {
        field_visibility::table
            .select((
                field_visibility::field,
                field_visibility::level,
                field_visibility::mode,
            ))
            .load(conn)
    }

    pub fn replace_all(rows: &[(String, String, String)], conn: &mut Conn) -> QueryResult<()> {
        diesel::delete(field_visibility::table).execute(conn)?;
        for (field, level, mode) in rows {
            diesel::insert_into(field_visibility::table)
                .values((
                    field_visibility::field.eq(field),
                    field_visibility::level.eq(level),
                    field_visibility::mode.eq(mode),
                ))
                .execute(conn)?;
        }
        Ok(())
    }
}
