//! Storage: one schema on SQLite (embedded default) and PostgreSQL (HA).
//!
//! Every API write runs in one [`Tx`]. Races are settled by the database: unique keys for
//! IP-per-network, MAC-per-network and segment ids, foreign keys for parents deleted under a
//! child's create, and `revision_number` compare-and-swap. SQLite allows one writer at a time,
//! so writes there are queued on an in-process lock instead of failing with `SQLITE_BUSY`.

mod address_groups;
mod agents;
pub mod attempt;
mod change_log;
mod default_rules;
mod dhcp;
pub use dhcp::networks_without_dhcp_port;
mod error;
mod filters;
mod floating_ips;
mod group_reference;
mod host_routing;
mod networks;
mod ports;
mod quotas;
mod rbac;
mod routers;
mod rows;
mod schema;
mod security_groups;
mod segment_ranges;
mod segments;
mod settings;
mod subnet_pools;
mod subnets;
mod tags;
mod visibility;

pub use address_groups::{
    change_addresses, delete_address_group, get_address_group, insert_address_group, list_address_groups,
    update_address_group,
};
pub use agents::{
    agent_on_host, agents_on_host, delete_agent, get_agent, l3_agents_in_mode, list_agents, lock_gateway_hosts,
    register_agent, set_port_status, update_agent, AgentRecord,
};
pub use default_rules::{
    delete_default_rule, get_default_rule, insert_default_rule, list_default_rules, template_rules, PARENT,
};
pub use error::{check_revision, StoreError};
pub use filters::{Filter, SqlValue};
pub use floating_ips::{
    delete_floatingip_row, delete_forwarding, delete_port_forwardings_of, dissociate_port_floatingips,
    floating_ips_through, floatingips_where, forwarding_rows, get_floatingip, get_floatingip_row, get_forwarding,
    insert_floatingip, list_floatingips, list_forwardings, lock_floatingip, network_external_to, port_has_forwardings,
    update_floatingip, upsert_forwarding, FloatingIpRow, ForwardingRow,
};
pub use networks::{
    delete_network, get_network, insert_network, list_networks, lock_network_for_use, network_access, set_network_mtu,
    update_network, NetworkAccess, NetworkPatch, NetworkUse,
};
pub use ports::{
    allocate_any_ip, allocate_specific_ip, delete_port, get_port, insert_port, list_ports, list_ports_json,
    network_allocations, refresh_port_body, release_port_ips, set_port_segment, store_port_body, update_port_row,
};
pub use quotas::{
    delete_project_limits, enforce_quota, project_limit, project_limits, projects_with_limits, quota_lock_key,
    quota_usage, set_project_limits,
};
pub use rbac::{
    delete_object_policies, delete_rbac_policy, get_rbac_policy, insert_rbac_policy, list_rbac_policies,
    networks_external_to, networks_shared_with, retarget_rbac_policy, set_network_default, set_network_external,
    set_network_shared, RbacPolicy, NETWORK_ACTIONS,
};
pub use routers::{
    bump_router, delete_host_gateway_ports, delete_router, get_router, host_gateway_port, host_has_snat_ports,
    insert_router, is_gateway_port, list_routers, lock_router, ports_of_device, router_gateway, router_interface_ports,
    router_port_holding, routers_on_subnet, routers_with_gateway_or_snat_ports, set_router_gateway, set_router_routes,
    snat_device_id, update_router,
};
pub use rows::Page;
pub use security_groups::{
    delete_group, delete_rule, ensure_default_group, get_group, get_rule, group_in_use, group_shared_with,
    groups_shared_with, insert_group, insert_rule, list_groups, list_rules, set_port_groups, update_group,
};
pub use segment_ranges::{
    default_read_only, delete_range, get_range, insert_range, list_ranges, range_in_use, sync_default_ranges,
    update_range,
};
pub use segments::{
    add_segments, delete_segment, get_segment, list_segments, network_segments, update_segment, SegmentOwner,
};
pub use subnet_pools::{
    default_pool, delete_pool, delete_scope, get_pool, get_scope, insert_pool, insert_scope, list_pools, list_scopes,
    lock_pool_for_allocation, pool_spec, update_pool, update_scope, PoolAllocations,
};
pub use subnets::{delete_subnet, get_subnet, insert_subnet, list_subnets, network_subnets, update_subnet};
pub use tags::{add_tag, clear_tags, insert_initial_tags, is_taggable, remove_tag, set_tags, tags_of, MAX_TAG_LENGTH};
pub use visibility::Visibility;

use neutrino_api::resources::{Network, Port};
use neutrino_domain::changes::{ChangeEvent, Operation, Resource};
use neutrino_domain::quotas::QuotaDefaults;
use neutrino_domain::topology::ObjectKind;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions, Executor, Row, Transaction};
use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Mutex, Notify, OwnedMutexGuard};

pub type Result<T> = std::result::Result<T, StoreError>;

/// One committed change, as the postcommit hooks are told.
pub type Change = ChangeEvent;
/// A database connection (a reader, or a transaction's).
pub type Connection = AnyConnection;

/// The PostgreSQL advisory lock (one-key space) that serializes migrations of several servers.
const MIGRATION_LOCK_KEY: i64 = 4242;

/// How long a request waits for a pooled connection. While the database is down, acquiring
/// one keeps trying to connect until this runs out: the request then gets a 503, well before
/// a client's own timeout.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the database, cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Connections for the change log's sequencer and readers.
    log_pool: AnyPool,
    backend: Backend,
    /// `[DEFAULT] dns_domain` when DNS integration is on (it shapes port bodies).
    dns_domain: Option<Arc<str>>,
    /// `[quotas]`: the limits of projects without overrides (creates check them).
    quota_defaults: Arc<QuotaDefaults>,
    write_lock: Arc<Mutex<()>>,
    signals: Arc<LogSignals>,
    /// Where committed transactions send what they changed (the postcommit hooks).
    committed: Option<mpsc::UnboundedSender<Vec<Change>>>,
}

/// How commits make themselves known to the readers of the change log.
struct LogSignals {
    /// The highest revision known to be numbered, here or by another server.
    head: watch::Sender<u64>,
    /// Rows were appended that await numbering (PostgreSQL).
    appended: Notify,
}

impl LogSignals {
    fn advance(&self, head: u64) {
        self.head.send_if_modified(|h| {
            let moved = head > *h;
            if moved {
                *h = head;
            }
            moved
        });
    }
}

/// Turn a Neutron-style `[database] connection` into a sqlx URL.
///
/// `sqlite:///relative/path`, `sqlite:////absolute/path` and `sqlite://` + `:memory:` as in
/// SQLAlchemy; `postgresql+driver://...` loses its driver suffix.
pub fn normalize_url(connection: &str) -> std::result::Result<(String, Backend), StoreError> {
    if let Some(rest) = connection.strip_prefix("sqlite:///") {
        let path = if rest.is_empty() { ":memory:" } else { rest };
        return Ok((format!("sqlite://{path}?mode=rwc"), Backend::Sqlite));
    }
    if connection == "sqlite://" || connection == "sqlite::memory:" {
        return Ok(("sqlite::memory:".into(), Backend::Sqlite));
    }
    if let Some((scheme, rest)) = connection.split_once("://") {
        let base = scheme.split('+').next().unwrap_or(scheme);
        if base == "postgresql" || base == "postgres" {
            return Ok((format!("postgres://{rest}"), Backend::Postgres));
        }
    }
    Err(StoreError::Config(format!(
        "[database] connection '{connection}': expected sqlite:///path or postgresql://..."
    )))
}

impl Store {
    /// Connect, create the schema if needed and apply pending migrations.
    pub async fn connect(connection: &str, max_connections: u32) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (url, backend) = normalize_url(connection)?;
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Config(format!("[database] connection: {e}")))?
            .log_statements(tracing::log::LevelFilter::Trace);
        let in_memory = url.contains(":memory:");
        let pool = Self::pool_options(backend, in_memory, if in_memory { 1 } else { max_connections })
            .connect_with(options.clone())
            .await?;
        if backend == Backend::Sqlite && !in_memory {
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        // The change log's sequencer and readers have connections of their own, so that API
        // load queueing for the main pool never delays the fan-out.
        let log_pool = match in_memory {
            true => pool.clone(),
            false => Self::pool_options(backend, false, 2).connect_with(options).await?,
        };
        let (head, _) = watch::channel(0);
        let store = Store {
            pool,
            log_pool,
            backend,
            dns_domain: None,
            quota_defaults: Arc::new(QuotaDefaults::default()),
            write_lock: Arc::new(Mutex::new(())),
            signals: Arc::new(LogSignals { head, appended: Notify::new() }),
            committed: None,
        };
        store.migrate().await?;
        store.sequence().await?;
        store.signals.advance(store.log_head().await?);
        Ok(store)
    }

    fn pool_options(backend: Backend, in_memory: bool, max_connections: u32) -> AnyPoolOptions {
        AnyPoolOptions::new()
            // An in-memory SQLite database exists per connection: keep exactly one.
            .max_connections(max_connections)
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(if in_memory { None } else { Some(Duration::from_secs(600)) })
            // SQLite reads planner statistics when a connection opens (see after_connect), so
            // its connections are recycled often enough for lists to follow a growing table.
            .max_lifetime(match (in_memory, backend) {
                (true, _) => None,
                (false, Backend::Sqlite) => Some(Duration::from_secs(20)),
                (false, Backend::Postgres) => Some(Duration::from_secs(1800)),
            })
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        // Refresh table statistics where tables have grown (bounded work), so
                        // filtered lists use their indexes (SQLite >= 3.46 semantics).
                        conn.execute("PRAGMA analysis_limit = 1000").await?;
                        conn.execute("PRAGMA optimize = 0x10002").await?;
                    }
                    Ok(())
                })
            })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The schema's version: the number of migrations and a hash of their text (a database
    /// migrated by this build has exactly this schema).
    pub fn schema_version() -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for (name, sql) in schema::MIGRATIONS {
            for byte in name.bytes().chain(sql.bytes()) {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        format!("{}_{hash:016x}", schema::MIGRATIONS.len())
    }

    /// Close every connection (the store's pools are done with).
    pub async fn close(&self) {
        self.pool.close().await;
        self.log_pool.close().await;
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self.begin().await?;
        if self.backend == Backend::Postgres {
            // Several servers may start at once on one database: one migrates, the others wait.
            tx.inner.execute(format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})").as_str()).await?;
        }
        tx.inner.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY)").await?;
        for (name, sql) in schema::MIGRATIONS {
            let done = sqlx::query("SELECT name FROM schema_migrations WHERE name = $1")
                .bind(*name)
                .fetch_optional(&mut *tx.inner)
                .await?;
            if done.is_some() {
                continue;
            }
            tracing::info!(migration = name, "applying migration");
            for stmt in schema::statements(&schema::render(sql, self.backend)) {
                tx.inner.execute(stmt).await?;
            }
            sqlx::query("INSERT INTO schema_migrations (name) VALUES ($1)").bind(*name).execute(&mut *tx.inner).await?;
        }
        change_log::seed(&mut tx).await?;
        tx.commit().await
    }

    /// Start a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        let guard = match self.backend {
            Backend::Sqlite => Some(self.write_lock.clone().lock_owned().await),
            Backend::Postgres => None,
        };
        // On SQLite take the write lock at BEGIN, so a transaction never has to upgrade from
        // reader to writer (which can fail with SQLITE_BUSY instead of waiting).
        let inner = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(Tx {
            inner,
            backend: self.backend,
            dns_domain: self.dns_domain.clone(),
            quota_defaults: self.quota_defaults.clone(),
            signals: self.signals.clone(),
            committed: self.committed.clone(),
            events: Vec::new(),
            touched: BTreeSet::new(),
            revised: BTreeSet::new(),
            stale_port_bodies: BTreeSet::new(),
            _guard: guard,
        })
    }

    /// Receive, in commit order, the changes of every transaction this handle commits.
    pub fn on_commit(&mut self) -> mpsc::UnboundedReceiver<Vec<Change>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.committed = Some(tx);
        rx
    }

    /// A pooled connection for read-only queries outside a transaction.
    pub async fn reader(&self) -> Result<PoolConnection<Any>> {
        Ok(self.pool.acquire().await?)
    }

    /// Turn DNS integration on (`Some(domain)`) or off. Stored port bodies carry the DNS
    /// attributes or not, so they are rendered again when the setting differs from the one
    /// they were rendered with.
    pub async fn set_dns_domain(&mut self, domain: Option<String>) -> Result<()> {
        self.dns_domain = domain.map(Arc::from);
        let wanted = self.dns_domain.as_deref().unwrap_or("").to_string();
        let mut tx = self.begin().await?;
        let current = settings::get(tx.conn(), "port_body_dns").await?.unwrap_or_default();
        if current != wanted {
            let ids = sqlx::query("SELECT id FROM ports").fetch_all(tx.conn()).await?;
            tracing::info!(ports = ids.len(), "DNS integration changed: rendering port bodies again");
            for r in &ids {
                ports::refresh_port_body(&mut tx, &r.try_get::<String, _>("id")?).await?;
            }
            settings::set(tx.conn(), "port_body_dns", &wanted).await?;
        }
        tx.commit().await
    }

    /// The quota limits of projects without overrides (`[quotas]`).
    pub fn set_quota_defaults(&mut self, defaults: QuotaDefaults) {
        self.quota_defaults = Arc::new(defaults);
    }

    pub fn quota_defaults(&self) -> &QuotaDefaults {
        &self.quota_defaults
    }

    /// Shape a port for a reply (DNS attributes only when DNS integration is on).
    pub fn finish_port(&self, port: &mut Port) {
        ports::finish_port(port, self.dns_domain.as_deref());
    }

    /// Shape a network for a reply.
    pub fn finish_network(&self, net: &mut Network) {
        if self.dns_domain.is_none() {
            net.dns_domain = None;
        }
    }

    /// A receiver of the log's head revision: it changes whenever a commit here (or, on
    /// PostgreSQL, on any server, once [`Store::follow_other_servers`] runs) numbered one.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.signals.head.subscribe()
    }

    /// On PostgreSQL, learn of revisions other servers numbered (`LISTEN/NOTIFY`). Runs until
    /// the process ends; reconnects on failure (readers also poll, so nothing is lost meanwhile).
    pub async fn follow_other_servers(&self, connection: &str) {
        if self.backend != Backend::Postgres {
            return;
        }
        let Ok((url, _)) = normalize_url(connection) else {
            return;
        };
        loop {
            match sqlx::postgres::PgListener::connect(&url).await {
                Ok(mut listener) => {
                    if listener.listen(change_log::LOG_CHANNEL).await.is_ok() {
                        if let Ok(head) = self.log_head().await {
                            self.signals.advance(head);
                        }
                        while let Ok(n) = listener.recv().await {
                            if let Ok(head) = n.payload().parse() {
                                self.signals.advance(head);
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "LISTEN connection failed; retrying"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// One transaction. Dropping it without [`Tx::commit`] rolls back.
pub struct Tx {
    pub(crate) inner: Transaction<'static, Any>,
    backend: Backend,
    pub(crate) dns_domain: Option<Arc<str>>,
    pub(crate) quota_defaults: Arc<QuotaDefaults>,
    signals: Arc<LogSignals>,
    committed: Option<mpsc::UnboundedSender<Vec<Change>>>,
    /// What the postcommit hooks are told.
    events: Vec<Change>,
    /// The objects whose images go into the change log at commit.
    touched: BTreeSet<(ObjectKind, String)>,
    /// Rows whose `revision_number` this transaction already moved (or set, creating them).
    revised: BTreeSet<(&'static str, String)>,
    /// Ports whose rendered body (`ports.body`) may no longer match their rows: rendered
    /// again at commit, once each.
    stale_port_bodies: BTreeSet<String>,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl Tx {
    /// Record that this transaction changed a resource: the postcommit hooks hear of it, and
    /// the change log gets the object's image (if hosts care about that kind of object).
    pub fn record_change(&mut self, resource: Resource, id: &str, operation: Operation) {
        if let (Some(kind), false) = (resource.object_kind(), operation == Operation::Tags) {
            self.touch(kind, id);
        }
        if self.committed.is_some() {
            self.events.push(Change { resource, id: id.into(), operation });
        }
    }

    /// Record the object's image in the change log at commit: whatever it is then, or its
    /// absence if it was deleted.
    pub fn touch(&mut self, kind: ObjectKind, id: &str) {
        if kind == ObjectKind::Port {
            self.port_body_stale(id);
        }
        if !self.touched.contains(&(kind, id.to_string())) {
            self.touched.insert((kind, id.to_string()));
        }
    }

    /// Something a port's body shows changed: it is rendered again at commit (unless this
    /// transaction stores a body it rendered itself afterwards).
    pub(crate) fn port_body_stale(&mut self, id: &str) {
        if !self.stale_port_bodies.contains(id) {
            self.stale_port_bodies.insert(id.to_string());
        }
    }

    /// This transaction stored the port's body from the port as it now is.
    pub(crate) fn port_body_fresh(&mut self, id: &str) {
        self.stale_port_bodies.remove(id);
    }

    pub async fn commit(mut self) -> Result<()> {
        for id in std::mem::take(&mut self.stale_port_bodies) {
            match ports::refresh_port_body(&mut self, &id).await {
                // Deleted in this transaction: nothing to render.
                Err(StoreError::NotFound { .. }) => {}
                other => other?,
            }
        }
        let touched = std::mem::take(&mut self.touched);
        let revision = if touched.is_empty() { None } else { Some(change_log::append(&mut self, &touched).await?) };
        crate::attempt::note_commit_sent();
        self.inner.commit().await?;
        crate::attempt::note_commit_done();
        match revision {
            Some(Some(r)) => self.signals.advance(r),
            Some(None) => self.signals.appended.notify_one(),
            None => {}
        }
        // Still under SQLite's write lock here, so hooks see commits in their order.
        if let (Some(tx), false) = (&self.committed, self.events.is_empty()) {
            let _ = tx.send(std::mem::take(&mut self.events));
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection, for the query functions of this crate.
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }

    /// The end of a compare-and-swap update: no matched row means the revision moved.
    pub(crate) fn updated(&mut self, rows_affected: u64, resource: Resource, id: &str) -> Result<()> {
        if rows_affected == 0 {
            return Err(StoreError::RevisionMismatch);
        }
        self.record_change(resource, id, Operation::Update);
        Ok(())
    }

    /// Note that this transaction created or revised the row `id` of `table` itself.
    pub(crate) fn revised(&mut self, table: &'static str, id: &str) {
        self.revised.insert((table, id.to_string()));
    }

    /// A change of something that belongs to the row `id` of `table` (a network's subnets or
    /// RBAC policies) revises it, as Neutron's `revises_on_change`: its `revision_number` moves
    /// by one and `updated_at` is now, once per transaction.
    pub(crate) async fn revise(&mut self, table: &'static str, id: &str) -> Result<()> {
        if !self.revised.insert((table, id.to_string())) {
            return Ok(());
        }
        if table == "ports" {
            // Its body shows the revision and the update time.
            self.port_body_stale(id);
        }
        sqlx::query(&format!(
            "UPDATE {table} SET revision_number = revision_number + 1, updated_at = $1 WHERE id = $2"
        ))
        .bind(now_timestamp())
        .bind(id.to_string())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Whether `sql`, with `id` bound to `$1`, finds a row (for "still in use" checks).
    pub(crate) async fn any_row(&mut self, sql: &str, id: &str) -> Result<bool> {
        Ok(sqlx::query(sql).bind(id.to_string()).fetch_optional(&mut *self.inner).await?.is_some())
    }

    /// Lock a parent row (PostgreSQL; SQLite's writers take turns anyway) before reading
    /// its children to delete them: rows that refer to it wait for this transaction (their
    /// foreign-key check), so none is added between the read and the delete.
    pub(crate) async fn lock_parent(&mut self, table: &str, id: &str) -> Result<()> {
        if self.backend() == Backend::Postgres {
            sqlx::query(&format!("SELECT id FROM {table} WHERE id = $1 FOR UPDATE"))
                .bind(id.to_string())
                .fetch_optional(&mut *self.inner)
                .await?;
        }
        Ok(())
    }
}

/// Neutron's timestamp format: `2026-11-26T09:28:04Z`.
pub fn now_timestamp() -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc().format(&fmt).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutron_connection_strings_are_understood() {
        assert_eq!(
            normalize_url("sqlite:////var/lib/neutrino/db.sqlite").unwrap(),
            ("sqlite:///var/lib/neutrino/db.sqlite?mode=rwc".to_string(), Backend::Sqlite)
        );
        assert_eq!(
            normalize_url("postgresql+psycopg2://neutron:secret@db/neutron").unwrap(),
            ("postgres://neutron:secret@db/neutron".to_string(), Backend::Postgres)
        );
        assert!(normalize_url("mysql+pymysql://x@y/z").is_err());
    }

    #[tokio::test]
    async fn a_commit_appends_one_revision_and_wakes_readers() {
        let store = Store::connect("sqlite://", 4).await.unwrap();
        let before = store.log_head().await.unwrap();
        let rx = store.subscribe();
        let mut tx = store.begin().await.unwrap();
        tx.record_change(Resource::Network, "n1", Operation::Create);
        tx.record_change(Resource::Port, "p1", Operation::Delete);
        tx.record_change(Resource::Port, "p2", Operation::Tags);
        tx.record_change(Resource::Subnet, "s1", Operation::Create);
        tx.commit().await.unwrap();
        assert_eq!(store.log_head().await.unwrap(), before + 1);
        assert!(rx.has_changed().unwrap(), "readers are woken by a commit");
        let revisions = store.log_since(before, 10).await.unwrap();
        assert_eq!(revisions.len(), 1);
        let logged: Vec<(ObjectKind, &str, bool)> =
            revisions[0].changes.iter().map(|c| (c.kind, c.id.as_str(), c.image.is_some())).collect();
        assert_eq!(logged, [(ObjectKind::Network, "n1", false), (ObjectKind::Port, "p1", false)]);
        let tx = store.begin().await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(store.log_head().await.unwrap(), before + 1, "a transaction that touched nothing adds no revision");
    }

    #[tokio::test]
    async fn reads_cross_a_compacted_gap_of_any_length() {
        let store = Store::connect("sqlite://", 4).await.unwrap();
        let start = store.log_head().await.unwrap();
        for i in 0..300 {
            let mut tx = store.begin().await.unwrap();
            tx.record_change(Resource::Port, &format!("gone-{i}"), Operation::Delete);
            tx.commit().await.unwrap();
        }
        let head = store.log_head().await.unwrap();
        assert_eq!(head, start + 300);
        assert!(store.compact_log(1).await.unwrap() >= 299, "deleted objects before the horizon go");
        assert_eq!(store.log_horizon().await.unwrap(), head - 1);
        // 299 empty revisions, then one left: a read of a few rows still reaches it.
        let read = store.log_since(start, 5).await.unwrap();
        assert_eq!(read.iter().map(|r| r.revision).collect::<Vec<_>>(), [head]);
        assert!(store.log_since(head, 5).await.unwrap().is_empty());
        // A second compaction only looks past the last horizon.
        assert_eq!(store.compact_log(1).await.unwrap(), 0);
    }
}
