//! Queries on `device_grants` (RFC 8628): insertion, lookup by hash, the user's decision
//! and the single-use claim, each one conditional statement.

use diesel::prelude::*;

use super::DbConnection;
pub use super::models::DeviceStatus;
use super::models::{DeviceGrantRow, NewDeviceGrant};
use super::schema::device_grants;

/// Stores a new device authorization.
pub fn insert(conn: &mut DbConnection, grant: &NewDeviceGrant<'_>) -> QueryResult<()> {
    diesel::insert_into(device_grants::table)
        .values(grant)
        .execute(conn)?;
    Ok(())
}

/// The authorization whose device code hashes to `hash`.
pub fn find_by_device_code_hash(
    conn: &mut DbConnection,
    hash: &[u8],
) -> QueryResult<Option<DeviceGrantRow>> {
    device_grants::table
        .filter(device_grants::device_code_hash.eq(hash))
        .select(DeviceGrantRow::as_select())
        .get_result(conn)
        .optional()
}

/// The authorization whose user code hashes to `hash`.
pub fn find_by_user_code_hash(
    conn: &mut DbConnection,
    hash: &[u8],
) -> QueryResult<Option<DeviceGrantRow>> {
    device_grants::table
        .filter(device_grants::user_code_hash.eq(hash))
        .select(DeviceGrantRow::as_select())
        .get_result(conn)
        .optional()
}

/// Records the user's decision, only while the authorization is pending and unexpired.
/// Returns whether this decision was the one recorded.
pub fn decide(
    conn: &mut DbConnection,
    id: i64,
    user_id: i64,
    status: DeviceStatus,
    now: i64,
) -> QueryResult<bool> {
    let updated = diesel::update(
        device_grants::table
            .filter(device_grants::id.eq(id))
            .filter(device_grants::status.eq(DeviceStatus::Pending.as_str()))
            .filter(device_grants::expires_at.gt(now)),
    )
    .set((
        device_grants::status.eq(status.as_str()),
        device_grants::user_id.eq(user_id),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Records a poll: when, and the interval from now on (RFC 8628 §3.5 `slow_down`).
pub fn polled(conn: &mut DbConnection, id: i64, interval: i64, now: i64) -> QueryResult<()> {
    diesel::update(device_grants::table.find(id))
        .set((
            device_grants::last_polled_at.eq(now),
            device_grants::polling_interval.eq(interval),
        ))
        .execute(conn)?;
    Ok(())
}

/// Spends an approved authorization, only if nobody did first (SEC-DV-03: concurrent polls
/// get one token response between them). Returns whether this caller won.
pub fn claim(conn: &mut DbConnection, id: i64, now: i64) -> QueryResult<bool> {
    let updated = diesel::update(
        device_grants::table
            .filter(device_grants::id.eq(id))
            .filter(device_grants::status.eq(DeviceStatus::Approved.as_str())),
    )
    .set((
        device_grants::status.eq(DeviceStatus::Used.as_str()),
        device_grants::last_polled_at.eq(now),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

#[cfg(test)]
mod tests {
    use super::DeviceStatus;

    #[test]
    fn a_stored_status_is_one_of_four_and_anything_else_names_the_column() {
        for status in [
            DeviceStatus::Pending,
            DeviceStatus::Approved,
            DeviceStatus::Denied,
            DeviceStatus::Used,
        ] {
            assert_eq!(
                DeviceStatus::try_from(status.as_str().to_owned()),
                Ok(status)
            );
        }
        let err = DeviceStatus::try_from("Pending".to_owned()).unwrap_err();
        assert!(err.contains("device_grants.status"), "{err}");
    }
}
