//! Row decoding helpers shared by the resource modules.

use crate::Result;
use sqlx::any::AnyRow;
use sqlx::Row;

pub(crate) fn text(row: &AnyRow, col: &str) -> Result<String> {
    Ok(row.try_get::<String, _>(col)?)
}

pub(crate) fn opt_text(row: &AnyRow, col: &str) -> Result<Option<String>> {
    Ok(row.try_get::<Option<String>, _>(col)?)
}

pub(crate) fn int(row: &AnyRow, col: &str) -> Result<i64> {
    Ok(row.try_get::<i64, _>(col)?)
}

pub(crate) fn opt_int(row: &AnyRow, col: &str) -> Result<Option<i64>> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

pub(crate) fn boolean(row: &AnyRow, col: &str) -> Result<bool> {
    // SQLite reports booleans as integers through the Any driver; accept both.
    match row.try_get::<bool, _>(col) {
        Ok(b) => Ok(b),
        Err(_) => Ok(row.try_get::<i64, _>(col)? != 0),
    }
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(row: &AnyRow, col: &str) -> Result<T> {
    Ok(serde_json::from_str(&text(row, col)?)?)
}

/// How a list is sorted and paged, in SQL: `sort` keys (attribute, ascending) then `id`,
/// keyset paging after the `marker` row, `LIMIT`, and `page_reverse` to page backwards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub limit: Option<u32>,
    pub marker: Option<String>,
    pub sort: Vec<(String, bool)>,
    pub page_reverse: bool,
}

/// `$1, $2, ...` for `n` values bound in order.
pub(crate) fn placeholders(n: usize) -> String {
    (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Constant strings as an SQL list (`'a', 'b'`), for `IN (...)`.
pub(crate) fn quoted_list(items: &[&str]) -> String {
    items.iter().map(|i| format!("'{}'", i.replace('\'', "''"))).collect::<Vec<_>>().join(", ")
}
