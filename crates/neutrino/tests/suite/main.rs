//! The integration suite: one test binary, so the build stays small.
//!
//! - `api`: the REST API against an in-process server, on SQLite and on PostgreSQL.
//! - `conformance`: replies compared with the recorded Neutron 29 samples.
//! - `e2e`: the namespace lab with real agents and real packets (root only).
//! - `cli`: the real `openstack` CLI (needs `NEUTRINO_OPENSTACK_CLI`).
//! - `ha`: several server processes on a PostgreSQL of their own, under faults (root).
//! - `keystone`: a real Keystone (`scripts/keystone-harness`, installed by `scripts/test`).

mod api;
mod cli;
mod common;
mod conformance;
mod e2e;
mod ha;
mod keystone;
mod tls;
