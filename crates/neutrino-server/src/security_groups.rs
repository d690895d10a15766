//! `/v2.0/security-groups` and `/v2.0/security-group-rules`.

use crate::create::create_all;
use crate::error::{HttpError, HttpResult};
use crate::meta::collection;
use crate::request::{if_match_revision, parse_body, parse_query, project_of, Attrs};
use crate::response::{many, no_content, one, PageInfo};
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use neutrino_api::resources::{SecurityGroup, SecurityGroupRule};
use neutrino_api::ApiError;
use neutrino_domain::resources;
use neutrino_domain::security_groups::{validate_rule, RuleRequest};
use neutrino_store::{self as store, Tx};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/security-groups", collection("security_group", list_groups, create_groups))
        .route("/v2.0/security-groups/{id}", get(show_group).put(update_group).delete(delete_group))
        .route("/v2.0/security-group-rules", collection("security_group_rule", list_rules, create_rules))
        .route("/v2.0/security-group-rules/{id}", get(show_rule).delete(delete_rule))
}

/// The project a request acts in (for the `default` group made on first use).
fn request_project(app: &App, headers: &HeaderMap) -> String {
    headers
        .get("x-project-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .unwrap_or(&app.config.noauth_project)
        .to_string()
}

async fn create_groups(State(app): State<App>, headers: HeaderMap, body: Bytes) -> HttpResult<Response> {
    create_all(&app, &headers, &body, &resources::SECURITY_GROUP, create_group).await
}

async fn create_group(app: &App, tx: &mut Tx, headers: &HeaderMap, attrs: &Attrs) -> HttpResult<SecurityGroup> {
    let project_id = project_of(attrs, headers, &app.config.noauth_project)?;
    let name = attrs.string("name", 255)?.unwrap_or_default();
    if name.eq_ignore_ascii_case("default") {
        return Err(
            ApiError::conflict("SecurityGroupDefaultAlreadyExists", "Default security group already exists.").into()
        );
    }
    store::ensure_default_group(tx, &project_id).await?;
    let now = store::now_timestamp();
    let id = uuid::Uuid::new_v4().to_string();
    let tags = crate::tags::tags_on_create(attrs)?;
    let group = SecurityGroup {
        id: id.clone(),
        name,
        stateful: attrs.boolean("stateful")?.unwrap_or(true),
        tenant_id: project_id.clone(),
        project_id,
        description: attrs.string("description", 255)?.unwrap_or_default(),
        shared: false,
        security_group_rules: Vec::new(),
        tags: tags.clone(),
        created_at: now.clone(),
        updated_at: now,
        revision_number: 1,
    };
    let rules = store::template_rules(tx, &id, false).await?;
    store::insert_group(tx, &group, &rules).await?;
    store::insert_initial_tags(tx, "security_groups", &id, &tags).await?;
    Ok(store::get_group(tx.conn(), &id).await?)
}

/// Neutron creates a project's `default` group when its groups or rules are first listed:
/// the project filtered on, or else the caller's.
async fn ensure_listed_default(app: &App, headers: &HeaderMap, filters: &[store::Filter]) -> HttpResult<()> {
    let filtered = ["project_id", "tenant_id"]
        .iter()
        .find_map(|key| filters.iter().find(|f| f.attribute == *key).and_then(|f| f.values.first().cloned()))
        .filter(|p| !p.is_empty());
    let project = filtered.unwrap_or_else(|| request_project(app, headers));
    let mut tx = app.store.begin().await?;
    store::ensure_default_group(&mut tx, &project).await?;
    tx.commit().await?;
    Ok(())
}

/// `shared`, as Neutron shows it: whether the group is shared with the caller's project (its
/// owner's too: a group shared with everyone is shared for its owner).
async fn mark_shared(c: &mut store::Connection, groups: &mut [SecurityGroup]) -> HttpResult<()> {
    let Some(project) = crate::auth::current().project_id().map(String::from) else { return Ok(()) };
    let shared = store::groups_shared_with(c, &project).await?;
    for g in groups.iter_mut() {
        g.shared = shared.contains(&g.id);
    }
    Ok(())
}

async fn list_groups(State(app): State<App>, headers: HeaderMap, RawQuery(raw): RawQuery) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    ensure_listed_default(&app, &headers, &q.filters).await?;
    let mut c = app.store.reader().await?;
    let mut groups = store::list_groups(&mut c, &q.filters, &q.page, &q.visibility).await?;
    mark_shared(&mut c, &mut groups).await?;
    let info = PageInfo { headers: &headers, collection: "security-groups", raw_query: raw.as_deref(), page: &q.page };
    let links = info.links(groups.len(), groups.first().map(|g| g.id.as_str()), groups.last().map(|g| g.id.as_str()));
    Ok(many("security_groups", &groups, &q.fields, links))
}

async fn show_group(State(app): State<App>, Path(id): Path<String>, RawQuery(q): RawQuery) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let mut c = app.store.reader().await?;
    let mut groups = [store::get_group(&mut c, &id).await?];
    mark_shared(&mut c, &mut groups).await?;
    Ok(one(StatusCode::OK, "security_group", &groups[0], &q.fields))
}

async fn update_group(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::SECURITY_GROUP)?;
    let mut tx = app.store.begin().await?;
    let mut g = store::get_group(tx.conn(), &id).await?;
    let expected = g.revision_number;
    if if_match_revision(&headers)?.is_some_and(|r| r != expected) {
        return Err(store::StoreError::RevisionMismatch.into());
    }
    if let Some(name) = attrs.string("name", 255)? {
        // As Neutron's `name_not_default` validator: no group may be named `default` by hand.
        if name.eq_ignore_ascii_case("default") && g.name != "default" {
            return Err(ApiError::conflict(
                "SecurityGroupDefaultAlreadyExists",
                "Default security group already exists.",
            )
            .into());
        }
        if g.name == "default" && name != "default" {
            return Err(ApiError::conflict(
                "SecurityGroupCannotUpdateDefault",
                "Updating default security group not allowed.",
            )
            .into());
        }
        g.name = name;
    }
    if let Some(d) = attrs.string("description", 255)? {
        g.description = d;
    }
    if let Some(s) = attrs.boolean("stateful")? {
        if s != g.stateful && store::group_in_use(&mut tx, &g.id).await? {
            return Err(ApiError::conflict("SecurityGroupInUse", format!("Security Group {} in use.", g.id)).into());
        }
        g.stateful = s;
    }
    g.updated_at = store::now_timestamp();
    store::update_group(&mut tx, &g, expected).await?;
    tx.commit().await?;
    g.revision_number = expected + 1;
    Ok(one(StatusCode::OK, "security_group", &g, &[]))
}

async fn delete_group(State(app): State<App>, Path(id): Path<String>) -> HttpResult<Response> {
    let mut tx = app.store.begin().await?;
    store::delete_group(&mut tx, &id, crate::auth::current().is_admin).await?;
    tx.commit().await?;
    Ok(no_content())
}

async fn create_rules(State(app): State<App>, headers: HeaderMap, body: Bytes) -> HttpResult<Response> {
    create_all(&app, &headers, &body, &resources::SECURITY_GROUP_RULE, create_rule).await
}

/// A protocol given as a name or as a number.
pub(crate) fn protocol_of(attrs: &Attrs) -> Result<Option<String>, ApiError> {
    match attrs.raw("protocol") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(ApiError::invalid_attribute("protocol", format!("'{v}' is not a valid protocol"))),
    }
}

/// A rule's `port_range_min`/`max`, as Neutron converts it: a port number 0 to 65535 (or its
/// text), else `SecurityGroupInvalidPortValue`.
pub(crate) fn port_value(raw: Option<&serde_json::Value>) -> Result<Option<i64>, ApiError> {
    use serde_json::Value;
    let text = match raw {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    match text.trim().parse::<i64>() {
        Ok(p) if (0..=65535).contains(&p) => Ok(Some(p)),
        _ => Err(ApiError::bad_request_kind("SecurityGroupInvalidPortValue", format!("Invalid value for port {text}"))),
    }
}

/// A rule (or a default rule) as its body gives it, validated as Neutron does.
pub(crate) fn valid_rule(attrs: &Attrs) -> Result<neutrino_domain::security_groups::ValidRule, HttpError> {
    let port = |key: &str| port_value(attrs.raw(key));
    Ok(validate_rule(&RuleRequest {
        direction: attrs.string("direction", 16)?,
        ethertype: attrs.string("ethertype", 16)?,
        protocol: protocol_of(attrs)?,
        port_range_min: port("port_range_min")?,
        port_range_max: port("port_range_max")?,
        remote_ip_prefix: attrs.nullable_string("remote_ip_prefix")?.flatten(),
        remote_group_id: attrs.nullable_string("remote_group_id")?.flatten(),
        remote_address_group_id: attrs.nullable_string("remote_address_group_id")?.flatten(),
    })?)
}

async fn create_rule(app: &App, tx: &mut Tx, headers: &HeaderMap, attrs: &Attrs) -> HttpResult<SecurityGroupRule> {
    attrs.required("security_group_id")?;
    let group_id = attrs.string("security_group_id", 36)?.unwrap_or_default();
    let project_id = project_of(attrs, headers, &app.config.noauth_project)?;
    let rule = valid_rule(attrs)?;
    let description = attrs.string("description", 255)?.unwrap_or_default();
    let id = uuid::Uuid::new_v4().to_string();
    let admin = crate::auth::current().is_admin;
    Ok(store::insert_rule(tx, &id, &group_id, &project_id, &rule, &description, admin).await?)
}

async fn list_rules(State(app): State<App>, headers: HeaderMap, RawQuery(raw): RawQuery) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    ensure_listed_default(&app, &headers, &q.filters).await?;
    let mut c = app.store.reader().await?;
    let rules = store::list_rules(&mut c, &q.filters, &q.page, &q.visibility).await?;
    let info =
        PageInfo { headers: &headers, collection: "security-group-rules", raw_query: raw.as_deref(), page: &q.page };
    let links = info.links(rules.len(), rules.first().map(|r| r.id.as_str()), rules.last().map(|r| r.id.as_str()));
    Ok(many("security_group_rules", &rules, &q.fields, links))
}

async fn show_rule(State(app): State<App>, Path(id): Path<String>, RawQuery(q): RawQuery) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let mut c = app.store.reader().await?;
    let r = store::get_rule(&mut c, &id).await?;
    Ok(one(StatusCode::OK, "security_group_rule", &r, &q.fields))
}

async fn delete_rule(State(app): State<App>, Path(id): Path<String>) -> HttpResult<Response> {
    let mut tx = app.store.begin().await?;
    store::delete_rule(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(no_content())
}
