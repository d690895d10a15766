//! Small named values the store keeps about itself (`settings`).

use crate::rows::text;
use crate::Result;
use sqlx::AnyConnection;

pub(crate) async fn get(c: &mut AnyConnection, name: &str) -> Result<Option<String>> {
    let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
        .bind(name.to_string())
        .fetch_optional(&mut *c)
        .await?;
    row.as_ref().map(|r| text(r, "value")).transpose()
}

pub(crate) async fn set(c: &mut AnyConnection, name: &str, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(name.to_string())
    .bind(value.to_string())
    .execute(&mut *c)
    .await?;
    Ok(())
}
