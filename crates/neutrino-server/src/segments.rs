//! `/v2.0/segments` (the segment extension) and `/v2.0/network_segment_ranges`.

use crate::app::authorize::{authorize_item, ItemAction};
use crate::auth::Caller;
use crate::create::create_all;
use crate::error::HttpResult;
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
use neutrino_api::resources::{NetworkSegmentRange, Segment};
use neutrino_api::ApiError;
use neutrino_domain::binding::SegmentView;
use neutrino_domain::changes::{Operation, Resource};
use neutrino_domain::resources;
use neutrino_domain::segments::{max_segmentation_id, plan_segment, ProviderRequest, VLAN};
use neutrino_store::{self as store, Tx};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2.0/segments", collection("segment", list_segments, create_segments))
        .route("/v2.0/segments/{id}", get(show_segment).put(update_segment).delete(delete_segment))
        .route("/v2.0/network_segment_ranges", collection("network_segment_range", list_ranges, create_ranges))
        .route("/v2.0/network_segment_ranges/{id}", get(show_range).put(update_range).delete(delete_range))
        // Neutron serves extension collections under their hyphenated names too.
        .route("/v2.0/network-segment-ranges", collection("network_segment_range", list_ranges, create_ranges))
        .route("/v2.0/network-segment-ranges/{id}", get(show_range).put(update_range).delete(delete_range))
}

async fn create_segments(
    State(app): State<App>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    create_all(&app, &ctx, &headers, &body, &resources::SEGMENT, create_segment).await
}

/// Add a segment to a network: validated and allocated like a provider segment (a missing
/// `segmentation_id` is allocated from the ranges).
async fn create_segment(app: &App, tx: &mut Tx, _headers: &HeaderMap, attrs: &Attrs) -> HttpResult<Segment> {
    attrs.required("network_id")?;
    attrs.required("network_type")?;
    let network_id = attrs.string("network_id", 36)?.unwrap_or_default();
    let network = store::get_network(tx.conn(), &network_id).await?;
    let request = ProviderRequest {
        network_type: attrs.string("network_type", 32)?,
        physical_network: attrs.nullable_string("physical_network")?.flatten().filter(|p| !p.is_empty()),
        segmentation_id: attrs.uint("segmentation_id")?.map(|v| v.min(u32::MAX as u64) as u32),
    };
    let plan = plan_segment(&app.config.type_drivers, &request)?;
    let owner = store::SegmentOwner { network_id: &network.id, project_id: &network.project_id };
    let names = (attrs.nullable_string("name")?.flatten(), attrs.nullable_string("description")?.flatten());
    let segment = store::add_segments(tx, &owner, &[plan], Some(names)).await?.remove(0);
    let views: Vec<SegmentView> =
        store::network_segments(tx.conn(), &network.id).await?.into_iter().map(SegmentView::from).collect();
    app.ml2.network_precommit(&views)?;
    tx.record_change(Resource::Network, &network.id, Operation::Update);
    Ok(segment)
}

async fn list_segments(State(app): State<App>, headers: HeaderMap, RawQuery(raw): RawQuery) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let mut c = app.store.reader().await?;
    let segments = store::list_segments(&mut c, &q.filters, &q.page, &q.visibility).await?;
    let info = PageInfo { headers: &headers, collection: "segments", raw_query: raw.as_deref(), page: &q.page };
    let links =
        info.links(segments.len(), segments.first().map(|s| s.id.as_str()), segments.last().map(|s| s.id.as_str()));
    Ok(many("segments", &segments, &q.fields, links))
}

async fn show_segment(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let mut c = app.store.reader().await?;
    authorize_item(&ctx, &mut c, "segment", &id, ItemAction::Read).await?;
    let segment = store::get_segment(&mut c, &id).await?;
    Ok(one(StatusCode::OK, "segment", &segment, &q.fields))
}

async fn update_segment(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::SEGMENT)?;
    let mut tx = app.store.begin().await?;
    authorize_item(&ctx, tx.conn(), "segment", &id, ItemAction::Update(attrs.given())).await?;
    let segment =
        store::update_segment(&mut tx, &id, attrs.nullable_string("name")?, attrs.nullable_string("description")?)
            .await?;
    tx.commit().await?;
    Ok(one(StatusCode::OK, "segment", &segment, &[]))
}

async fn delete_segment(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    let mut tx = app.store.begin().await?;
    authorize_item(&ctx, tx.conn(), "segment", &id, ItemAction::Delete).await?;
    store::delete_segment(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(no_content())
}

async fn create_ranges(
    State(app): State<App>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    create_all(&app, &ctx, &headers, &body, &resources::NETWORK_SEGMENT_RANGE, create_range).await
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

async fn create_range(app: &App, tx: &mut Tx, headers: &HeaderMap, attrs: &Attrs) -> HttpResult<NetworkSegmentRange> {
    for required in ["network_type", "minimum", "maximum"] {
        attrs.required(required)?;
    }
    let network_type = attrs.string("network_type", 32)?.unwrap_or_default();
    if !["vlan", "vxlan", "gre", "geneve"].contains(&network_type.as_str()) {
        return Err(ApiError::invalid_attribute(
            "network_type",
            format!("'{network_type}' is not in ['geneve', 'gre', 'vlan', 'vxlan']"),
        )
        .into());
    }
    if !app.config.type_drivers.type_drivers.contains(&network_type) {
        return Err(ApiError::invalid_input(format!("network_type value '{network_type}' not supported")).into());
    }
    let physical_network = attrs.nullable_string("physical_network")?.flatten().unwrap_or_default();
    match (network_type == VLAN, physical_network.is_empty()) {
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
    let minimum = attrs.uint("minimum")?.unwrap_or_default().min(u32::MAX as u64) as u32;
    let maximum = attrs.uint("maximum")?.unwrap_or_default().min(u32::MAX as u64) as u32;
    check_bounds(&network_type, minimum, maximum)?;
    let shared = attrs.boolean("shared")?.unwrap_or(true);
    let project_id = if shared {
        None
    } else {
        let explicit = attrs.has("project_id") || attrs.has("tenant_id");
        if !explicit {
            return Err(
                ApiError::invalid_input("project_id required for a network segment range that is not shared").into()
            );
        }
        Some(project_of(attrs, headers, &app.config.noauth_project)?)
    };
    let now = store::now_timestamp();
    let mut range = NetworkSegmentRange {
        id: uuid::Uuid::new_v4().to_string(),
        name: attrs.nullable_string("name")?.flatten(),
        default: false,
        shared,
        tenant_id: project_id.clone(),
        project_id,
        network_type,
        physical_network,
        minimum,
        maximum,
        revision_number: 0,
        created_at: now.clone(),
        updated_at: now,
        available: Vec::new(),
        used: Default::default(),
        description: attrs.nullable_string("description")?.flatten(),
        tags: Vec::new(),
    };
    store::insert_range(tx, &range).await?;
    range = store::get_range(tx.conn(), &range.id).await?;
    Ok(range)
}

async fn list_ranges(State(app): State<App>, headers: HeaderMap, RawQuery(raw): RawQuery) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let mut c = app.store.reader().await?;
    let ranges = store::list_ranges(&mut c, &q.filters, &q.page, &q.visibility).await?;
    let info =
        PageInfo { headers: &headers, collection: "network_segment_ranges", raw_query: raw.as_deref(), page: &q.page };
    let links = info.links(ranges.len(), ranges.first().map(|r| r.id.as_str()), ranges.last().map(|r| r.id.as_str()));
    Ok(many("network_segment_ranges", &ranges, &q.fields, links))
}

async fn show_range(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let mut c = app.store.reader().await?;
    authorize_item(&ctx, &mut c, "network_segment_range", &id, ItemAction::Read).await?;
    let range = store::get_range(&mut c, &id).await?;
    Ok(one(StatusCode::OK, "network_segment_range", &range, &q.fields))
}

async fn update_range(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::NETWORK_SEGMENT_RANGE)?;
    let mut tx = app.store.begin().await?;
    authorize_item(&ctx, tx.conn(), "network_segment_range", &id, ItemAction::Update(attrs.given())).await?;
    let mut range = store::get_range(tx.conn(), &id).await?;
    if if_match_revision(&headers)?.is_some_and(|r| r != range.revision_number) {
        return Err(store::StoreError::RevisionMismatch.into());
    }
    if range.default {
        return Err(store::default_read_only(&id).into());
    }
    if let Some(n) = attrs.nullable_string("name")? {
        range.name = n;
    }
    if let Some(d) = attrs.nullable_string("description")? {
        range.description = d;
    }
    // The ids in use in the range now (`get_range` fills them).
    let in_use: Vec<u32> = range.used.keys().filter_map(|k| k.parse().ok()).collect();
    if let Some(m) = attrs.uint("minimum")? {
        range.minimum = m.min(u32::MAX as u64) as u32;
    }
    if let Some(m) = attrs.uint("maximum")? {
        range.maximum = m.min(u32::MAX as u64) as u32;
    }
    check_bounds(&range.network_type, range.minimum, range.maximum)?;
    // As Neutron 29: the new bounds must still hold every id in use.
    let (lowest, highest) = (in_use.iter().min(), in_use.iter().max());
    if lowest.is_some_and(|l| range.minimum > *l) || highest.is_some_and(|h| range.maximum < *h) {
        return Err(store::range_in_use(&id).into());
    }
    range.updated_at = store::now_timestamp();
    store::update_range(&mut tx, &range).await?;
    let range = store::get_range(tx.conn(), &id).await?;
    tx.commit().await?;
    Ok(one(StatusCode::OK, "network_segment_range", &range, &[]))
}

async fn delete_range(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    let mut tx = app.store.begin().await?;
    authorize_item(&ctx, tx.conn(), "network_segment_range", &id, ItemAction::Delete).await?;
    store::delete_range(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(no_content())
}
