//! The hot path's conditional UPDATEs as statements each connection prepares once.
//!
//! Diesel never caches an UPDATE it builds (a changeset may skip `None` fields, so its SQL
//! can vary), and parsing and planning one costs more than running it: the rotation claim
//! was prepared afresh on the single SQLite writer thread for every refresh. These have
//! fixed SQL and a static query id, so Diesel keeps them prepared like its SELECTs.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Text};
use diesel::{QueryResult, RunQueryDsl};

/// `access_tokens`: marks refresh token `jti` rotated into `successor_jti` unless it is
/// rotated or revoked already (`tokens::claim_refresh`).
pub struct ClaimRefresh<'a> {
    pub jti: &'a str,
    pub successor_jti: &'a str,
    pub now: i64,
}

impl QueryId for ClaimRefresh<'_> {
    type QueryId = ClaimRefresh<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB> QueryFragment<DB> for ClaimRefresh<'_>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<BigInt>,
    str: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE access_tokens SET refresh_rotated_at = ");
        out.push_bind_param::<BigInt, _>(&self.now)?;
        out.push_sql(", successor_jti = ");
        out.push_bind_param::<Text, _>(self.successor_jti)?;
        out.push_sql(" WHERE jti = ");
        out.push_bind_param::<Text, _>(self.jti)?;
        out.push_sql(" AND refresh_rotated_at IS NULL AND revoked_at IS NULL");
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for ClaimRefresh<'_> {}

/// `access_grants`: marks code `id` used unless it is used or revoked already
/// (`grants::consume`).
pub struct ConsumeCode {
    pub id: i64,
    pub now: i64,
}

impl QueryId for ConsumeCode {
    type QueryId = ConsumeCode;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB> QueryFragment<DB> for ConsumeCode
where
    DB: Backend + HasSqlType<BigInt>,
    i64: ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE access_grants SET used_at = ");
        out.push_bind_param::<BigInt, _>(&self.now)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<BigInt, _>(&self.id)?;
        out.push_sql(" AND used_at IS NULL AND revoked_at IS NULL");
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for ConsumeCode {}
