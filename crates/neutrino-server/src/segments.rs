//! `/v2.0/segments` (the segment extension) and `/v2.0/network_segment_ranges`: requests
//! parsed, handed to [`crate::app::segments`], results rendered.

use crate::app::segments::{self as ops, CreateRange, CreateSegment, UpdateRange};
use crate::auth::Caller;
use crate::error::HttpResult;
use crate::meta::collection;
use crate::request::{if_match_revision, parse_body, parse_create, parse_query, Attrs};
use crate::response::{self, no_content, one};
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use neutrino_api::ApiError;
use neutrino_domain::resources;
use neutrino_domain::segments::ProviderRequest;

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

fn create_segment_request(attrs: &Attrs) -> Result<CreateSegment, ApiError> {
    attrs.required("network_id")?;
    attrs.required("network_type")?;
    Ok(CreateSegment {
        given: attrs.given().clone(),
        network_id: attrs.uuid("network_id")?.unwrap_or_default(),
        request: ProviderRequest {
            network_type: attrs.string("network_type", 32)?,
            physical_network: attrs.nullable_string("physical_network")?.flatten().filter(|p| !p.is_empty()),
            segmentation_id: attrs.uint("segmentation_id")?.map(|v| v.min(u32::MAX as u64) as u32),
        },
        name: attrs.nullable_string("name")?.flatten(),
        description: attrs.nullable_string("description")?.flatten(),
    })
}

async fn create_segments(State(app): State<App>, Caller(ctx): Caller, body: Bytes) -> HttpResult<Response> {
    let request = parse_create(&body, &resources::SEGMENT)?;
    let items = request.items.iter().map(create_segment_request).collect::<Result<_, _>>()?;
    let created = ops::create_segments(&app, &ctx, items).await?;
    Ok(response::created("segment", "segments", &created, request.bulk))
}

async fn list_segments(
    State(app): State<App>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let segments = ops::list_segments(&app, &ctx, &q.filters, &q.page).await?;
    Ok(response::list_page(&resources::SEGMENT, &headers, raw.as_deref(), &q, &segments, |x| x.id.as_str()))
}

async fn show_segment(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let segment = ops::show_segment(&app, &ctx, &id).await?;
    Ok(one(StatusCode::OK, "segment", &segment, &q.fields))
}

async fn update_segment(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> HttpResult<Response> {
    let attrs = parse_body(&body, &resources::SEGMENT)?;
    let (name, description) = (attrs.nullable_string("name")?, attrs.nullable_string("description")?);
    let segment = ops::update_segment(&app, &ctx, &id, attrs.given(), name, description).await?;
    Ok(one(StatusCode::OK, "segment", &segment, &[]))
}

async fn delete_segment(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    ops::delete_segment(&app, &ctx, &id).await?;
    Ok(no_content())
}

fn bound(attrs: &Attrs, key: &str) -> Result<Option<u32>, ApiError> {
    Ok(attrs.uint(key)?.map(|v| v.min(u32::MAX as u64) as u32))
}

fn create_range_request(attrs: &Attrs) -> Result<CreateRange, ApiError> {
    for required in ["network_type", "minimum", "maximum"] {
        attrs.required(required)?;
    }
    let network_type = attrs.string("network_type", 32)?.unwrap_or_default();
    if !["vlan", "vxlan", "gre", "geneve"].contains(&network_type.as_str()) {
        return Err(ApiError::invalid_attribute(
            "network_type",
            format!("'{network_type}' is not in ['geneve', 'gre', 'vlan', 'vxlan']"),
        ));
    }
    Ok(CreateRange {
        given: attrs.given().clone(),
        project_id: attrs.named_project()?,
        network_type,
        physical_network: attrs.nullable_string("physical_network")?.flatten().unwrap_or_default(),
        minimum: bound(attrs, "minimum")?.unwrap_or_default(),
        maximum: bound(attrs, "maximum")?.unwrap_or_default(),
        shared: attrs.boolean("shared")?.unwrap_or(true),
        name: attrs.nullable_string("name")?.flatten(),
        description: attrs.nullable_string("description")?.flatten(),
    })
}

async fn create_ranges(State(app): State<App>, Caller(ctx): Caller, body: Bytes) -> HttpResult<Response> {
    let request = parse_create(&body, &resources::NETWORK_SEGMENT_RANGE)?;
    let items = request.items.iter().map(create_range_request).collect::<Result<_, _>>()?;
    let created = ops::create_ranges(&app, &ctx, items).await?;
    Ok(response::created("network_segment_range", "network_segment_ranges", &created, request.bulk))
}

async fn list_ranges(
    State(app): State<App>,
    Caller(ctx): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(raw.as_deref())?;
    let ranges = ops::list_ranges(&app, &ctx, &q.filters, &q.page).await?;
    Ok(response::list_page(&resources::NETWORK_SEGMENT_RANGE, &headers, raw.as_deref(), &q, &ranges, |x| x.id.as_str()))
}

async fn show_range(
    State(app): State<App>,
    Caller(ctx): Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> HttpResult<Response> {
    let q = parse_query(q.as_deref())?;
    let range = ops::show_range(&app, &ctx, &id).await?;
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
    let request = UpdateRange {
        given: attrs.given().clone(),
        name: attrs.nullable_string("name")?,
        description: attrs.nullable_string("description")?,
        minimum: bound(&attrs, "minimum")?,
        maximum: bound(&attrs, "maximum")?,
        if_revision: if_match_revision(&headers)?,
    };
    let range = ops::update_range(&app, &ctx, &id, request).await?;
    Ok(one(StatusCode::OK, "network_segment_range", &range, &[]))
}

async fn delete_range(State(app): State<App>, Caller(ctx): Caller, Path(id): Path<String>) -> HttpResult<Response> {
    ops::delete_range(&app, &ctx, &id).await?;
    Ok(no_content())
}
