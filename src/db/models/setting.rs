use diesel::prelude::*;

use crate::db::LoadOne;
use diesel::upsert::excluded;

use crate::db::schema::settings;
use crate::db::Conn;

/// Settings an admin changes at run time, one text value per name.
pub struct Setting;

impl Setting {
    pub const BIND_SESSION_IP: &'static str = "session.bind_ip";
    pub const BIND_SESSION_USER_AGENT: &'static str = "session.bind_user_agent";
    pub const AUDIT_HEAD: &'static str = "audit.head";
    /// Comma-separated levels that must use two-factor sign-in.
    pub const REQUIRE_TWO_FACTOR: &'static str = "security.require_2fa";
    /// The anti-brute-force policy, as JSON.
    pub const BRUTE_FORCE_POLICY: &'static str = "security.brute_force";

    pub fn get(name: &str, conn: &mut Conn) -> QueryResult<Option<String>> {
        settings::table
            .find(name)
            .select(settings::value)
            .load_one(conn)
    }

    pub fn get_bool(name: &str, default: bool, conn: &mut Conn) -> QueryResult<bool> {
        Ok(Setting::get(name, conn)?
            .map(|v| v == "true")
            .unwrap_or(default))
    }

    pub fn set(name: &str, value: &str, conn: &mut Conn) -> QueryResult<()> {
        crate::db::per_backend!(conn, |inner| diesel::insert_into(settings::table)
            .values((settings::name.eq(name), settings::value.eq(value)))
            .on_conflict(settings::name)
            .do_update()
            .set(settings::value.eq(excluded(settings::value)))
            .execute(inner))
        .map(|_| ())
    }
}
