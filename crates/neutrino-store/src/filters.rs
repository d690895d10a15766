//! List filters: Neutron query parameters turned into SQL conditions on indexed columns.
//! Attribute names are checked against each table's known columns, so no client text ever
//! becomes SQL; values are always bound.

use crate::StoreError;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;

#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Text(String),
    Int(i64),
    Bool(bool),
    Null,
}

/// `attribute=value` (repeated values mean OR), as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub attribute: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnType {
    Text,
    NullableText,
    Int,
    NullableInt,
    Bool,
}

/// One filterable attribute of a table: API name, SQL expression, type.
pub(crate) struct Column {
    pub attribute: &'static str,
    pub sql: &'static str,
    pub kind: ColumnType,
}

pub(crate) const fn col(attribute: &'static str, sql: &'static str, kind: ColumnType) -> Column {
    Column { attribute, sql, kind }
}

/// A WHERE clause under construction, with its bound values.
#[derive(Default)]
pub(crate) struct Where {
    pub clauses: Vec<String>,
    pub values: Vec<SqlValue>,
}

impl Where {
    /// Add `expr IN (...)`, treating `None`/empty text specially for nullable columns.
    fn add_in(&mut self, sql: &str, values: Vec<SqlValue>) {
        let mut parts = Vec::new();
        let mut in_list = Vec::new();
        for v in values {
            if v == SqlValue::Null {
                parts.push(format!("{sql} IS NULL"));
            } else {
                self.values.push(v);
                in_list.push(format!("${}", self.values.len()));
            }
        }
        if !in_list.is_empty() {
            parts.push(format!("{sql} IN ({})", in_list.join(", ")));
        }
        self.clauses.push(format!("({})", parts.join(" OR ")));
    }

    /// Add `sql IN (...)` over text values.
    pub fn add_in_texts(&mut self, sql: &str, values: Vec<String>) {
        if values.is_empty() {
            self.clauses.push("1 = 0".into());
            return;
        }
        self.add_in(sql, values.into_iter().map(SqlValue::Text).collect());
    }

    /// Add a condition without values.
    pub fn add_clause(&mut self, sql: &str) {
        self.clauses.push(format!("({sql})"));
    }

    /// Add a raw condition with one bound value (`{}` is replaced by its placeholder).
    pub fn add_raw(&mut self, template: &str, value: SqlValue) {
        self.values.push(value);
        self.clauses.push(template.replace("{}", &format!("${}", self.values.len())));
    }

    /// Add `template` with `{}` replaced by the list of `values` (for `IN ({})`).
    pub fn add_raw_list(&mut self, template: &str, values: Vec<SqlValue>) {
        let mut places = Vec::with_capacity(values.len());
        for v in values {
            self.values.push(v);
            places.push(format!("${}", self.values.len()));
        }
        self.clauses.push(template.replace("{}", &places.join(", ")));
    }

    /// Add `template` once per value, any of them true (`{}` is the value).
    pub fn add_raw_any(&mut self, template: &str, values: Vec<SqlValue>) {
        let mut alternatives = Vec::with_capacity(values.len());
        for v in values {
            self.values.push(v);
            alternatives.push(template.replace("{}", &format!("${}", self.values.len())));
        }
        self.clauses.push(format!("({})", alternatives.join(" OR ")));
    }

    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub fn bind<'q>(&self, mut q: Query<'q, Any, AnyArguments<'q>>) -> Query<'q, Any, AnyArguments<'q>> {
        for v in &self.values {
            q = match v {
                SqlValue::Text(t) => q.bind(t.clone()),
                SqlValue::Int(i) => q.bind(*i),
                SqlValue::Bool(b) => q.bind(*b),
                SqlValue::Null => q,
            };
        }
        q
    }
}

/// Build the WHERE clause for `filters` over `columns`. Special attributes a table handles
/// itself are passed through `special` (return `Ok(true)` when handled).
pub(crate) fn build_where(
    columns: &[Column],
    filters: &[Filter],
    mut special: impl FnMut(&Filter, &mut Where) -> Result<bool, StoreError>,
) -> Result<Where, StoreError> {
    let mut w = Where::default();
    let mut unknown = Vec::new();
    for f in filters {
        if special(f, &mut w)? {
            continue;
        }
        let Some(c) = columns.iter().find(|c| c.attribute == f.attribute) else {
            unknown.push(f.attribute.clone());
            continue;
        };
        let values = f.values.iter().map(|v| convert(c, v)).collect::<Result<Vec<_>, _>>()?;
        w.add_in(c.sql, values);
    }
    if !unknown.is_empty() {
        let list = unknown.iter().map(|u| format!("'{u}'")).collect::<Vec<_>>().join(", ");
        return Err(StoreError::BadFilter(format!("[{list}] is invalid attribute for filtering")));
    }
    Ok(w)
}

/// A filter value as a boolean, as Neutron's `convert_to_boolean` reads it (and refuses it:
/// InvalidInput).
pub(crate) fn boolean_value(_attribute: &str, v: &str) -> Result<bool, StoreError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "t" | "yes" | "y" | "on" => Ok(true),
        "false" | "0" | "f" | "no" | "n" | "off" => Ok(false),
        _ => Err(neutrino_domain::DomainError::invalid(format!("'{v}' cannot be converted to boolean")).into()),
    }
}

/// A filter value converted as its attribute's `convert_to` would (integers as
/// `convert_to_int`, refusing with InvalidInput).
fn convert(c: &Column, v: &str) -> Result<SqlValue, StoreError> {
    let bad = || StoreError::from(neutrino_domain::DomainError::invalid(format!("'{v}' is not an integer")));
    Ok(match c.kind {
        ColumnType::Text => SqlValue::Text(v.to_string()),
        ColumnType::NullableText if v.is_empty() || v == "None" => SqlValue::Null,
        ColumnType::NullableText => SqlValue::Text(v.to_string()),
        ColumnType::NullableInt if v.is_empty() || v == "None" => SqlValue::Null,
        ColumnType::Int | ColumnType::NullableInt => SqlValue::Int(v.trim().parse().map_err(|_| bad())?),
        ColumnType::Bool => SqlValue::Bool(boolean_value(c.attribute, v)?),
    })
}

/// `SELECT ... FROM <table>` + WHERE + ORDER BY + keyset marker + LIMIT, for a list.
///
/// Sorting is by the requested keys and then by `id`, so the order is total and a marker
/// (the last row of the previous page) identifies exactly where the next page starts:
/// rows strictly after the marker's key values in that order. Only NOT NULL columns sort,
/// which keeps the keyset comparison exact.
pub(crate) fn list_sql(
    select: &str,
    table: &str,
    columns: &[Column],
    mut w: Where,
    page: &crate::Page,
) -> Result<(String, Where), StoreError> {
    let mut keys: Vec<(&'static str, bool)> = Vec::new();
    // Keys that cannot sort, all named as Neutron's `get_sorts` names them.
    let sortable = |attr: &str| {
        columns
            .iter()
            .find(|c| c.attribute == attr)
            .filter(|c| !matches!(c.kind, ColumnType::NullableText | ColumnType::NullableInt))
    };
    let absent: Vec<String> =
        page.sort.iter().filter(|(a, _)| sortable(a).is_none()).map(|(a, _)| format!("'{a}'")).collect();
    if !absent.is_empty() {
        return Err(StoreError::BadFilter(format!("[{}] is invalid attribute for sort_keys", absent.join(", "))));
    }
    for (attr, asc) in &page.sort {
        let Some(c) = sortable(attr) else { continue };
        if !keys.iter().any(|(k, _)| *k == c.sql) {
            keys.push((c.sql, *asc));
        }
    }
    if !keys.iter().any(|(k, _)| *k == "id") {
        keys.push(("id", true));
    }
    // Paging backwards walks the reversed order; the caller reverses the rows back.
    let keys: Vec<(&str, bool)> = keys.into_iter().map(|(k, asc)| (k, asc != page.page_reverse)).collect();
    if let Some(marker) = &page.marker {
        let mut alternatives = Vec::new();
        for (i, (key, asc)) in keys.iter().enumerate() {
            let mut parts: Vec<String> = keys[..i]
                .iter()
                .map(|(k, _)| {
                    w.values.push(SqlValue::Text(marker.clone()));
                    format!("{k} = (SELECT {k} FROM {table} WHERE id = ${})", w.values.len())
                })
                .collect();
            w.values.push(SqlValue::Text(marker.clone()));
            let op = if *asc { ">" } else { "<" };
            parts.push(format!("{key} {op} (SELECT {key} FROM {table} WHERE id = ${})", w.values.len()));
            alternatives.push(format!("({})", parts.join(" AND ")));
        }
        w.clauses.push(format!("({})", alternatives.join(" OR ")));
    }
    let order: Vec<String> = keys.iter().map(|(k, asc)| format!("{k} {}", if *asc { "ASC" } else { "DESC" })).collect();
    let mut sql = format!("{select}{} ORDER BY {}", w.sql(), order.join(", "));
    if let Some(l) = page.limit {
        sql.push_str(&format!(" LIMIT {l}"));
    }
    Ok((sql, w))
}
