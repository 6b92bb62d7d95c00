//! The root key versions as a key manager wrapped them (see the `wrapped_root_keys` migration).

use diesel::prelude::*;

use crate::db::schema::wrapped_root_keys;
use crate::db::Conn;

/// One root key version, wrapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedRootKey {
    pub version: u32,
    /// `transit` or `pkcs11`.
    pub provider: String,
    /// The key manager's key that wrapped it (the transit key's name, the HSM key's label).
    pub wrapping_key: String,
    pub wrapped: Vec<u8>,
}

/// Every wrapped version, oldest first. A version out of range was not written by medvault.
pub fn all(conn: &mut Conn) -> QueryResult<Vec<WrappedRootKey>> {
    wrapped_root_keys::table
        .select((
            wrapped_root_keys::version,
            wrapped_root_keys::provider,
            wrapped_root_keys::wrapping_key,
            wrapped_root_keys::wrapped,
        ))
        .order(wrapped_root_keys::version.asc())
        .load::<(i64, String, String, Vec<u8>)>(conn)?
        .into_iter()
        .map(|(version, provider, wrapping_key, wrapped)| {
            let version = u32::try_from(version).map_err(|_| {
                diesel::result::Error::DeserializationError(
                    format!("wrapped root key version {version} is out of range").into(),
                )
            })?;
            Ok(WrappedRootKey {
                version,
                provider,
                wrapping_key,
                wrapped,
            })
        })
        .collect()
}

/// Stores a version, or replaces its wrapping (a rewrap under the key manager's new key).
pub fn put(key: &WrappedRootKey, now: i64, conn: &mut Conn) -> QueryResult<()> {
    let version = i64::from(key.version);
    let replaced = diesel::update(wrapped_root_keys::table.find(version))
        .set((
            wrapped_root_keys::provider.eq(&key.provider),
            wrapped_root_keys::wrapping_key.eq(&key.wrapping_key),
            wrapped_root_keys::wrapped.eq(&key.wrapped),
            wrapped_root_keys::wrapped_at.eq(now),
        ))
        .execute(conn)?;
    if replaced == 0 {
        diesel::insert_into(wrapped_root_keys::table)
            .values((
                wrapped_root_keys::version.eq(version),
                wrapped_root_keys::provider.eq(&key.provider),
                wrapped_root_keys::wrapping_key.eq(&key.wrapping_key),
                wrapped_root_keys::wrapped.eq(&key.wrapped),
                wrapped_root_keys::wrapped_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}
