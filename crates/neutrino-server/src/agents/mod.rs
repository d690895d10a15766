//! Everything agents talk to: the agents API, registration and status reports (`api`), the
//! per-host state stream (`stream`) and the hub that feeds it from the change log (`hub`).

mod api;
pub mod hub;
mod stream;

pub use api::routes;
