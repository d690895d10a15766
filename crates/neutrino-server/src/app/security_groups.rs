//! Security group and rule operations.

use super::{project_for, OpContext};
use crate::error::{HttpError, HttpResult};
use crate::App;
use neutrino_api::resources::{SecurityGroup, SecurityGroupRule};
use neutrino_api::ApiError;
use neutrino_domain::security_groups::ValidRule;
use neutrino_store::{self as store, Filter, Page, Tx};
use serde_json::{Map, Value};

/// One group to create, as parsed from its body.
pub struct CreateGroup {
    /// The body's attributes as given: the policy judges them.
    pub given: Map<String, Value>,
    /// `project_id`/`tenant_id` when the body names one.
    pub project_id: Option<String>,
    pub name: String,
    pub description: String,
    pub stateful: bool,
    pub tags: Vec<String>,
}

impl super::CreateItem for CreateGroup {
    fn given(&self) -> &Map<String, Value> {
        &self.given
    }
}

/// Changes to a group, as parsed from its body.
pub struct UpdateGroup {
    pub given: Map<String, Value>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub stateful: Option<bool>,
    /// `If-Match: revision_number=N`.
    pub if_revision: Option<u64>,
}

/// One rule to create, as parsed (and validated) from its body.
pub struct CreateRule {
    pub given: Map<String, Value>,
    pub security_group_id: String,
    pub project_id: Option<String>,
    pub rule: ValidRule,
    pub description: String,
}

/// Create every group of a (bulk) request, all or nothing.
pub async fn create_groups(app: &App, ctx: &OpContext, items: Vec<CreateGroup>) -> HttpResult<Vec<SecurityGroup>> {
    let mut tx = app.store.begin().await?;
    let mut created = Vec::with_capacity(items.len());
    for (i, req) in super::in_project_order(app, ctx, items) {
        if !ctx.is_admin {
            let target = Value::Object(ctx.create_target(&req.given)?);
            ctx.enforce("create_security_group", &super::authorize::attributes_of(&req.given), &target)?;
        }
        if req.name.eq_ignore_ascii_case("default") {
            return Err(ApiError::conflict(
                "SecurityGroupDefaultAlreadyExists",
                "Default security group already exists.",
            )
            .into());
        }
        let project_id = project_for(app, ctx, &req.project_id);
        store::ensure_default_group(&mut tx, &project_id).await?;
        let now = store::now_timestamp();
        let id = uuid::Uuid::new_v4().to_string();
        let group = SecurityGroup {
            id: id.clone(),
            name: req.name,
            stateful: req.stateful,
            tenant_id: project_id.clone(),
            project_id,
            description: req.description,
            shared: false,
            security_group_rules: Vec::new(),
            tags: req.tags.clone(),
            created_at: now.clone(),
            updated_at: now,
            revision_number: 1,
        };
        let rules = store::template_rules(&mut tx, &id, false).await?;
        store::insert_group(&mut tx, &group, &rules).await?;
        store::insert_initial_tags(&mut tx, "security_groups", &id, &req.tags).await?;
        created.push((i, store::get_group(tx.conn(), &id).await?));
    }
    tx.commit().await?;
    Ok(super::in_request_order(created))
}

/// Neutron creates a project's `default` group when its groups or rules are first listed:
/// the project filtered on, or else the caller's.
async fn ensure_listed_default(app: &App, ctx: &OpContext, filters: &[Filter]) -> HttpResult<()> {
    let filtered = ["project_id", "tenant_id"]
        .iter()
        .find_map(|key| filters.iter().find(|f| f.attribute == *key).and_then(|f| f.values.first().cloned()))
        .filter(|p| !p.is_empty());
    let project = project_for(app, ctx, &filtered);
    let mut tx = app.store.begin().await?;
    store::ensure_default_group(&mut tx, &project).await?;
    tx.commit().await?;
    Ok(())
}

/// `shared`, as Neutron shows it: whether the group is shared with the caller's project (its
/// owner's too: a group shared with everyone is shared for its owner).
async fn mark_shared(ctx: &OpContext, c: &mut store::Connection, groups: &mut [SecurityGroup]) -> HttpResult<()> {
    let Some(project) = ctx.project_id() else { return Ok(()) };
    let shared = store::groups_shared_with(c, project).await?;
    for g in groups.iter_mut() {
        g.shared = shared.contains(&g.id);
    }
    Ok(())
}

pub async fn list_groups(
    app: &App,
    ctx: &OpContext,
    filters: &[Filter],
    page: &Page,
) -> HttpResult<Vec<SecurityGroup>> {
    ensure_listed_default(app, ctx, filters).await?;
    let mut c = app.store.reader().await?;
    let mut groups = store::list_groups(&mut c, filters, page, &ctx.visibility()).await?;
    mark_shared(ctx, &mut c, &mut groups).await?;
    Ok(groups)
}

pub async fn show_group(app: &App, ctx: &OpContext, id: &str) -> HttpResult<SecurityGroup> {
    let mut c = app.store.reader().await?;
    visible_group(ctx, &mut c, id).await
}

/// The group as the policy sees it (`shared` with the caller), loaded on `c`; a 404 when the
/// caller may not see it.
pub(super) async fn visible_group(ctx: &OpContext, c: &mut store::Connection, id: &str) -> HttpResult<SecurityGroup> {
    let mut groups = [store::get_group(c, id).await?];
    mark_shared(ctx, c, &mut groups).await?;
    let [group] = groups;
    if !ctx.may_see("security_group", &serde_json::to_value(&group).unwrap_or_default()) {
        return Err(HttpError(ApiError::not_found("security_group", id)));
    }
    Ok(group)
}

pub async fn update_group(app: &App, ctx: &OpContext, id: &str, req: UpdateGroup) -> HttpResult<SecurityGroup> {
    let mut tx = app.store.begin().await?;
    let mut g = visible_group(ctx, tx.conn(), id).await?;
    if !ctx.is_admin {
        ctx.enforce_update("security_group", &serde_json::to_value(&g).unwrap_or_default(), &req.given)?;
    }
    let expected = g.revision_number;
    store::check_revision(req.if_revision, expected)?;
    if let Some(name) = req.name {
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
    if let Some(d) = req.description {
        g.description = d;
    }
    if let Some(s) = req.stateful {
        if s != g.stateful && store::group_in_use(&mut tx, &g.id).await? {
            return Err(ApiError::conflict("SecurityGroupInUse", format!("Security Group {} in use.", g.id)).into());
        }
        g.stateful = s;
    }
    g.updated_at = store::now_timestamp();
    store::update_group(&mut tx, &g, expected).await?;
    tx.commit().await?;
    g.revision_number = expected + 1;
    Ok(g)
}

pub async fn delete_group(app: &App, ctx: &OpContext, id: &str) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    if !ctx.is_admin {
        let g = visible_group(ctx, tx.conn(), id).await?;
        ctx.enforce("delete_security_group", &[], &serde_json::to_value(&g).unwrap_or_default())?;
    }
    store::delete_group(&mut tx, id, ctx.is_admin).await?;
    tx.commit().await?;
    Ok(())
}

/// Create every rule of a (bulk) request, all or nothing.
pub async fn create_rules(app: &App, ctx: &OpContext, items: Vec<CreateRule>) -> HttpResult<Vec<SecurityGroupRule>> {
    check_bulk_rules(app, ctx, &items)?;
    let mut tx = app.store.begin().await?;
    let mut created = Vec::with_capacity(items.len());
    for req in items {
        if !ctx.is_admin {
            authorize_rule_create(ctx, &mut tx, &req).await?;
        }
        let project_id = project_for(app, ctx, &req.project_id);
        let id = uuid::Uuid::new_v4().to_string();
        let group = &req.security_group_id;
        created.push(
            store::insert_rule(&mut tx, &id, group, &project_id, &req.rule, &req.description, ctx.is_admin).await?,
        );
    }
    tx.commit().await?;
    Ok(created)
}

/// As Neutron's native bulk create: the rules of one request are of one group and one
/// project, and none repeats another.
fn check_bulk_rules(app: &App, ctx: &OpContext, items: &[CreateRule]) -> HttpResult<()> {
    let Some(first) = items.first() else { return Ok(()) };
    if items.iter().any(|r| r.security_group_id != first.security_group_id) {
        return Err(ApiError::bad_request_kind(
            "SecurityGroupNotSingleGroupRules",
            "Only allowed to update rules for one security profile at a time",
        )
        .into());
    }
    let project = project_for(app, ctx, &first.project_id);
    if items.iter().any(|r| project_for(app, ctx, &r.project_id) != project) {
        return Err(ApiError::bad_request_kind(
            "SecurityGroupRulesNotSingleProject",
            "Multiple project_ids in bulk security group rule create not allowed",
        )
        .into());
    }
    for (i, rule) in items.iter().enumerate() {
        if items[..i].iter().any(|r| r.rule.fingerprint() == rule.rule.fingerprint()) {
            return Err(ApiError::conflict(
                "DuplicateSecurityGroupRuleInPost",
                "Duplicate Security Group Rule in POST.",
            )
            .into());
        }
    }
    Ok(())
}

/// A rule goes into a group its project owns (Neutron's `sg_owner`: other groups are not
/// found), may name only groups and address groups the caller sees, and passes
/// `create_security_group_rule`.
async fn authorize_rule_create(ctx: &OpContext, tx: &mut Tx, req: &CreateRule) -> HttpResult<()> {
    let mut target = ctx.create_target(&req.given)?;
    let group_id = &req.security_group_id;
    let parent = store::get_group(tx.conn(), group_id).await?;
    if Some(parent.project_id.as_str()) != ctx.project_id() {
        return Err(HttpError(ApiError::not_found("security_group", group_id)));
    }
    if let Some(remote) = &req.rule.remote_group_id {
        match visible_group(ctx, tx.conn(), remote).await {
            Err(HttpError(e)) if e.status == 404 => {
                return Err(HttpError(ApiError::not_found("security_group", remote)))
            }
            other => other.map(|_| ())?,
        }
    }
    if let Some(ag) = &req.rule.remote_address_group_id {
        if let Ok(group) = store::get_address_group(tx.conn(), ag).await {
            if !ctx.may_see("address_group", &serde_json::to_value(&group).unwrap_or_default()) {
                return Err(HttpError(ApiError::not_found("address_group", ag)));
            }
        }
    }
    target.insert("security_group:project_id".into(), Value::String(parent.project_id));
    ctx.enforce("create_security_group_rule", &super::authorize::attributes_of(&req.given), &Value::Object(target))
}

pub async fn list_rules(
    app: &App,
    ctx: &OpContext,
    filters: &[Filter],
    page: &Page,
) -> HttpResult<Vec<SecurityGroupRule>> {
    ensure_listed_default(app, ctx, filters).await?;
    let mut c = app.store.reader().await?;
    Ok(store::list_rules(&mut c, filters, page, &ctx.visibility()).await?)
}

/// A rule the caller may see: a 404 otherwise.
async fn visible_rule(ctx: &OpContext, c: &mut store::Connection, id: &str) -> HttpResult<(SecurityGroupRule, Value)> {
    let rule = store::get_rule(c, id).await?;
    let mut target = serde_json::to_value(&rule).unwrap_or_default();
    if !ctx.is_admin {
        let owner = store::get_group(c, &rule.security_group_id).await.ok().map(|g| g.project_id);
        if let Value::Object(m) = &mut target {
            m.insert("security_group:project_id".into(), owner.map(Value::String).unwrap_or(Value::Null));
        }
        if !ctx.may_see("security_group_rule", &target) {
            return Err(HttpError(ApiError::not_found("security_group_rule", id)));
        }
    }
    Ok((rule, target))
}

pub async fn show_rule(app: &App, ctx: &OpContext, id: &str) -> HttpResult<SecurityGroupRule> {
    let mut c = app.store.reader().await?;
    Ok(visible_rule(ctx, &mut c, id).await?.0)
}

pub async fn delete_rule(app: &App, ctx: &OpContext, id: &str) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    if !ctx.is_admin {
        let (_, target) = visible_rule(ctx, tx.conn(), id).await?;
        ctx.enforce("delete_security_group_rule", &[], &target)?;
    }
    store::delete_rule(&mut tx, id).await?;
    tx.commit().await?;
    Ok(())
}
