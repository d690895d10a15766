//! Wire types shared by the server, the agent and clients. Serde only, no IO.

pub mod agent;
pub mod error;
pub mod keystone;
pub mod resources;

pub use error::{ApiError, NeutronErrorBody};
