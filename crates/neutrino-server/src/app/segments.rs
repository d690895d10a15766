//! Segment operations (the segment extension) and network segment range operations.

use super::authorize::{authorize_item, ItemAction};
use super::{create_each, CreateItem, OpContext};
use crate::error::HttpResult;
use crate::App;
use neutrino_api::resources::{NetworkSegmentRange, Segment};
use neutrino_api::ApiError;
use neutrino_domain::binding::SegmentView;
use neutrino_domain::changes::{Operation, Resource};
use neutrino_domain::segments::{max_segmentation_id, plan_segment, ProviderRequest, VLAN};
use neutrino_store::{self as store, Filter, Page, Tx};
use serde_json::{Map, Value};

/// One segment to add to a network, as parsed from its body.
pub struct CreateSegment {
    pub given: Map<String, Value>,
    pub network_id: String,
    pub request: ProviderRequest,
    pub name: Option<String>,
    pub description: Option<String>,
}

impl CreateItem for CreateSegment {
    fn given(&self) -> &Map<String, Value> {
        &self.given
    }
}

/// One range to create, as parsed from its body.
pub struct CreateRange {
    pub given: Map<String, Value>,
    /// The project named explicitly (`project_id`/`tenant_id`), needed when not shared.
    pub project_id: Option<String>,
    pub network_type: String,
    pub physical_network: String,
    pub minimum: u32,
    pub maximum: u32,
    pub shared: bool,
    pub name: Option<String>,
    pub description: Option<String>,
}

impl CreateItem for CreateRange {
    fn given(&self) -> &Map<String, Value> {
        &self.given
    }
}

/// Changes to a range (`None`: unchanged; `Some(None)`: cleared).
pub struct UpdateRange {
    pub given: Map<String, Value>,
    pub name: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub minimum: Option<u32>,
    pub maximum: Option<u32>,
    pub if_revision: Option<u64>,
}

pub async fn create_segments(app: &App, ctx: &OpContext, items: Vec<CreateSegment>) -> HttpResult<Vec<Segment>> {
    create_each(app, ctx, "segment", items, create_segment).await
}

/// Add a segment to a network: validated and allocated like a provider segment (a missing
/// `segmentation_id` is allocated from the ranges).
async fn create_segment(app: &App, _ctx: &OpContext, tx: &mut Tx, req: CreateSegment) -> HttpResult<Segment> {
    let network = store::get_network(tx.conn(), &req.network_id).await?;
    let plan = plan_segment(&app.config.type_drivers, &req.request)?;
    let owner = store::SegmentOwner { network_id: &network.id, project_id: &network.project_id };
    let segment = store::add_segments(tx, &owner, &[plan], Some((req.name, req.description))).await?.remove(0);
    let views: Vec<SegmentView> =
        store::network_segments(tx.conn(), &network.id).await?.into_iter().map(SegmentView::from).collect();
    app.ml2.network_precommit(&views)?;
    tx.record_change(Resource::Network, &network.id, Operation::Update);
    Ok(segment)
}

pub async fn list_segments(app: &App, ctx: &OpContext, filters: &[Filter], page: &Page) -> HttpResult<Vec<Segment>> {
    let mut c = app.store.reader().await?;
    Ok(store::list_segments(&mut c, filters, page, &ctx.visibility()).await?)
}

pub async fn show_segment(app: &App, ctx: &OpContext, id: &str) -> HttpResult<Segment> {
    let mut c = app.store.reader().await?;
    authorize_item(ctx, &mut c, "segment", id, ItemAction::Read).await?;
    Ok(store::get_segment(&mut c, id).await?)
}

/// Rename or describe a segment (`Some(None)` clears).
pub async fn update_segment(
    app: &App,
    ctx: &OpContext,
    id: &str,
    given: &Map<String, Value>,
    name: Option<Option<String>>,
    description: Option<Option<String>>,
) -> HttpResult<Segment> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "segment", id, ItemAction::Update(given)).await?;
    let segment = store::update_segment(&mut tx, id, name, description).await?;
    tx.commit().await?;
    Ok(segment)
}

pub async fn delete_segment(app: &App, ctx: &OpContext, id: &str) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "segment", id, ItemAction::Delete).await?;
    store::delete_segment(&mut tx, id).await?;
    tx.commit().await?;
    Ok(())
}

/// Check a range's bounds for its type.
fn check_bounds(network_type: &str, minimum: u32, maximum: u32) -> Result<(), ApiError> {
    let max = max_segmentation_id(network_type).unwrap_or(0);
    if minimum == 0 || minimum > maximum || maximum > max {
        return Err(ApiError::invalid_input(format!(
            "Network segment range minimum {minimum} and maximum {maximum} must satisfy 1 <= minimum <= maximum <= {max} for {network_type}"
        )));
    }
    Ok(())
}

pub async fn create_ranges(
    app: &App,
    ctx: &OpContext,
    items: Vec<CreateRange>,
) -> HttpResult<Vec<NetworkSegmentRange>> {
    create_each(app, ctx, "network_segment_range", items, create_range).await
}

async fn create_range(app: &App, _ctx: &OpContext, tx: &mut Tx, req: CreateRange) -> HttpResult<NetworkSegmentRange> {
    let network_type = req.network_type;
    if !app.config.type_drivers.type_drivers.contains(&network_type) {
        return Err(ApiError::invalid_input(format!("network_type value '{network_type}' not supported")).into());
    }
    match (network_type == VLAN, req.physical_network.is_empty()) {
        (true, true) => {
            return Err(ApiError::invalid_input("physical_network required for VLAN network segment range").into())
        }
        (false, false) => {
            return Err(ApiError::invalid_input(format!(
                "physical_network is not allowed for {network_type} network segment range"
            ))
            .into())
        }
        _ => {}
    }
    check_bounds(&network_type, req.minimum, req.maximum)?;
    let project_id = match (req.shared, req.project_id) {
        (true, _) => None,
        (false, Some(project)) => Some(project),
        (false, None) => {
            return Err(
                ApiError::invalid_input("project_id required for a network segment range that is not shared").into()
            )
        }
    };
    let now = store::now_timestamp();
    let range = NetworkSegmentRange {
        id: uuid::Uuid::new_v4().to_string(),
        name: req.name,
        default: false,
        shared: req.shared,
        tenant_id: project_id.clone(),
        project_id,
        network_type,
        physical_network: req.physical_network,
        minimum: req.minimum,
        maximum: req.maximum,
        revision_number: 0,
        created_at: now.clone(),
        updated_at: now,
        available: Vec::new(),
        used: Default::default(),
        description: req.description,
        tags: Vec::new(),
    };
    store::insert_range(tx, &range).await?;
    Ok(store::get_range(tx.conn(), &range.id).await?)
}

pub async fn list_ranges(
    app: &App,
    ctx: &OpContext,
    filters: &[Filter],
    page: &Page,
) -> HttpResult<Vec<NetworkSegmentRange>> {
    let mut c = app.store.reader().await?;
    Ok(store::list_ranges(&mut c, filters, page, &ctx.visibility()).await?)
}

pub async fn show_range(app: &App, ctx: &OpContext, id: &str) -> HttpResult<NetworkSegmentRange> {
    let mut c = app.store.reader().await?;
    authorize_item(ctx, &mut c, "network_segment_range", id, ItemAction::Read).await?;
    Ok(store::get_range(&mut c, id).await?)
}

pub async fn update_range(app: &App, ctx: &OpContext, id: &str, req: UpdateRange) -> HttpResult<NetworkSegmentRange> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "network_segment_range", id, ItemAction::Update(&req.given)).await?;
    let mut range = store::get_range(tx.conn(), id).await?;
    store::check_revision(req.if_revision, range.revision_number)?;
    if range.default {
        return Err(store::default_read_only(id).into());
    }
    if let Some(n) = req.name {
        range.name = n;
    }
    if let Some(d) = req.description {
        range.description = d;
    }
    // The ids in use in the range now (`get_range` fills them).
    let in_use: Vec<u32> = range.used.keys().filter_map(|k| k.parse().ok()).collect();
    if let Some(m) = req.minimum {
        range.minimum = m;
    }
    if let Some(m) = req.maximum {
        range.maximum = m;
    }
    check_bounds(&range.network_type, range.minimum, range.maximum)?;
    // As Neutron 29: the new bounds must still hold every id in use.
    let (lowest, highest) = (in_use.iter().min(), in_use.iter().max());
    if lowest.is_some_and(|l| range.minimum > *l) || highest.is_some_and(|h| range.maximum < *h) {
        return Err(store::range_in_use(id).into());
    }
    range.updated_at = store::now_timestamp();
    store::update_range(&mut tx, &range).await?;
    let range = store::get_range(tx.conn(), id).await?;
    tx.commit().await?;
    Ok(range)
}

pub async fn delete_range(app: &App, ctx: &OpContext, id: &str) -> HttpResult<()> {
    let mut tx = app.store.begin().await?;
    authorize_item(ctx, tx.conn(), "network_segment_range", id, ItemAction::Delete).await?;
    store::delete_range(&mut tx, id).await?;
    tx.commit().await?;
    Ok(())
}
