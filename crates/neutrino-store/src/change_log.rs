//! The change log: every write transaction appends, in the transaction, the images of the
//! objects hosts care about that it touched (see `neutrino_domain::topology`), all under one
//! revision. Servers read it in revision order to keep their host views current; agents
//! resume from a revision of it.
//!
//! **Revisions are commit order.** On SQLite writers take turns (one write transaction at a
//! time), so a transaction takes the next revision when it appends. On PostgreSQL concurrent
//! transactions commit in any order, so a sequence value taken inside a transaction is not
//! commit order: a reader could see revision 11 before revision 10 commits, and skip 10.
//! Instead, writers append rows without a revision, and a *sequencer* numbers committed rows
//! after the fact: in a transaction holding an advisory lock (so sequencer runs take turns),
//! it gives every transaction's rows found without a revision the next revisions, in the
//! order the rows were written. A reader therefore always sees a gap-free prefix of
//! revisions. Two transactions that touch the same object take its row lock when they read
//! its image (`FOR NO KEY UPDATE`), so the later one appends after the earlier one committed and gets
//! the later revision. Any server may run the sequencer; each runs it after its own commits
//! and sweeps periodically for rows of a server that died before numbering its own.
//!
//! **Compaction** keeps every revision after a horizon (`keep` revisions back) and, before it,
//! only each object's latest image (and no deleted object at all). So the log folds into the
//! current state, and any view at a revision after the horizon can be rebuilt from it.

use crate::rows::placeholders;
use crate::rows::text;
use crate::{Backend, Result, Store, StoreError, Tx};
use neutrino_api::agent::{Direction, EtherType, HostSecurityRule};
use neutrino_domain::security_groups::protocol_number;
use neutrino_domain::topology::{
    AddressGroupImage, AgentImage, FloatingIpImage, ForwardingImage, Image, NetworkImage, ObjectChange, ObjectKind,
    PortImage, Revision, RouterImage, RouterPortImage, SecurityGroupImage, SegmentImage,
};
use sqlx::{AnyConnection, Executor, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Advisory lock (one-key space) held by a sequencer or compaction run on PostgreSQL.
#[cfg_attr(not(test), allow(dead_code))] // spelled out in SEQUENCER_RUN; a test checks they agree
const SEQUENCER_LOCK_KEY: i64 = 4243;
/// The advisory lock servers take turns on to compact the log.
const COMPACTION_LOCK_KEY: i64 = 4244;
/// Servers LISTEN here; a sequencer run that numbered revisions NOTIFYs with the new head.
pub(crate) const LOG_CHANNEL: &str = "neutrino_log";
/// One sequencer run (see `Store::sequence_pending`); the lock key is
/// [`SEQUENCER_LOCK_KEY`] and the channel [`LOG_CHANNEL`] (a test checks both).
const SEQUENCER_RUN: &str = "BEGIN; \
     SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(4243)) l; \
     WITH head AS (SELECT COALESCE(MAX(revision), 0) AS h FROM change_log), \
          pending AS (SELECT id, MIN(id) OVER (PARTITION BY txn) AS first FROM change_log \
                      WHERE revision IS NULL), \
          ranked AS (SELECT id, DENSE_RANK() OVER (ORDER BY first) AS r FROM pending), \
          numbered AS (UPDATE change_log SET revision = head.h + ranked.r FROM ranked, head \
                       WHERE change_log.id = ranked.id RETURNING change_log.revision), \
          top AS (SELECT MAX(revision) AS new_head FROM numbered) \
     SELECT top.new_head FROM top, LATERAL (SELECT pg_notify('neutrino_log', top.new_head::text) \
                                           WHERE top.new_head IS NOT NULL) notified; \
     COMMIT";

/// How many ids one `IN (...)` list binds.
const CHUNK: usize = 500;
/// How often each server sweeps for committed rows nobody numbered (PostgreSQL).
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);

/// Read the current image of every touched object and append them to the log under one
/// revision. Returns the revision on SQLite (PostgreSQL numbers them after commit).
pub(crate) async fn append(tx: &mut Tx, touched: &BTreeSet<(ObjectKind, String)>) -> Result<Option<u64>> {
    let backend = tx.backend();
    // A network's image shows its DHCP port: the port changing records the network again.
    let mut extra = BTreeSet::new();
    let ports: Vec<&str> = touched.iter().filter(|(k, _)| *k == ObjectKind::Port).map(|(_, id)| id.as_str()).collect();
    for chunk in ports.chunks(CHUNK) {
        let sql = format!(
            "SELECT DISTINCT network_id FROM ports WHERE id IN ({}) AND device_owner = '{}'",
            placeholders(chunk.len()),
            neutrino_domain::dhcp::DEVICE_OWNER_DHCP
        );
        for r in rows_for(tx.conn(), &sql, chunk).await? {
            extra.insert((ObjectKind::Network, text(&r, "network_id")?));
        }
    }
    let touched: BTreeSet<(ObjectKind, String)> =
        if extra.is_empty() { touched.clone() } else { touched.iter().cloned().chain(extra).collect() };
    let mut changes: Vec<ObjectChange> = Vec::with_capacity(touched.len());
    for kind in ObjectKind::ALL {
        let ids: Vec<&str> = touched.iter().filter(|(k, _)| *k == kind).map(|(_, id)| id.as_str()).collect();
        for chunk in ids.chunks(CHUNK) {
            let mut images = read_images(tx.conn(), backend, kind, chunk).await?;
            for id in chunk {
                changes.push(ObjectChange { kind, id: id.to_string(), image: images.remove(*id) });
            }
        }
    }
    let (revision, txn) = match backend {
        Backend::Sqlite => {
            let row =
                sqlx::query("SELECT COALESCE(MAX(revision), 0) + 1 AS r FROM change_log").fetch_one(tx.conn()).await?;
            (Some(row.try_get::<i64, _>("r")?), String::new())
        }
        Backend::Postgres => (None, uuid::Uuid::new_v4().simple().to_string()),
    };
    insert_rows(tx.conn(), revision, &txn, &changes).await?;
    Ok(revision.map(|r| r as u64))
}

async fn insert_rows(c: &mut AnyConnection, revision: Option<i64>, txn: &str, changes: &[ObjectChange]) -> Result<()> {
    for chunk in changes.chunks(CHUNK / 6) {
        let mut sql = String::from("INSERT INTO change_log (revision, txn, kind, object_id, scopes, image) VALUES ");
        for i in 0..chunk.len() {
            let b = i * 6;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("(${}, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6));
        }
        let mut q = sqlx::query(&sql);
        for c in chunk {
            let scopes: Vec<String> =
                c.image.as_ref().map(|i| i.scopes(&c.id)).unwrap_or_default().iter().map(ToString::to_string).collect();
            q = q
                .bind(revision)
                .bind(txn.to_string())
                .bind(c.kind.as_str())
                .bind(c.id.clone())
                .bind(scopes.join(" "))
                .bind(c.image.as_ref().map(Image::to_json));
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

/// The rows of `sql`, whose placeholders are the `ids`, in order.
pub(crate) async fn rows_for(c: &mut AnyConnection, sql: &str, ids: &[&str]) -> Result<Vec<sqlx::any::AnyRow>> {
    let mut q = sqlx::query(sql);
    for id in ids {
        q = q.bind(id.to_string());
    }
    Ok(q.fetch_all(&mut *c).await?)
}

/// The current images of `ids` of one kind (absent ids are deleted objects). On PostgreSQL
/// the rows are locked, so two writers of one object append in commit order.
async fn read_images(
    c: &mut AnyConnection,
    backend: Backend,
    kind: ObjectKind,
    ids: &[&str],
) -> Result<BTreeMap<String, Image>> {
    // NO KEY UPDATE still orders two writers of one object, without waiting for (or
    // blocking) the foreign-key checks of rows that refer to it, such as a network's ports.
    let lock = if backend == Backend::Postgres { " FOR NO KEY UPDATE" } else { "" };
    let list = placeholders(ids.len());
    let sql = match kind {
        ObjectKind::Network => format!("SELECT id, mtu FROM networks WHERE id IN ({list}) ORDER BY id{lock}"),
        ObjectKind::Segment => format!(
            "SELECT id, network_id, network_type, physical_network, segmentation_id FROM network_segments \
             WHERE id IN ({list}) ORDER BY id{lock}"
        ),
        ObjectKind::Port => format!(
            "SELECT id, network_id, host_id, segment_id, mac_address, admin_state_up, status, port_security_enabled, \
             allowed_address_pairs, device_owner, device_id, extra_dhcp_opts, dns_name, project_id FROM ports \
             WHERE id IN ({list}) ORDER BY id{lock}"
        ),
        ObjectKind::SecurityGroup => {
            format!("SELECT id, stateful FROM security_groups WHERE id IN ({list}) ORDER BY id{lock}")
        }
        ObjectKind::AddressGroup => {
            format!("SELECT id FROM address_groups WHERE id IN ({list}) ORDER BY id{lock}")
        }
        ObjectKind::Agent => {
            format!("SELECT id, host, agent_type, tunnel_ip FROM agents WHERE id IN ({list}) ORDER BY id{lock}")
        }
        ObjectKind::Router => {
            format!("SELECT id, admin_state_up FROM routers WHERE id IN ({list}) ORDER BY id{lock}")
        }
        ObjectKind::FloatingIp => format!(
            "SELECT id, floating_ip_address, floating_network_id, router_id, fixed_port_id, fixed_ip_address \
             FROM floatingips WHERE id IN ({list}) ORDER BY id{lock}"
        ),
    };
    let rows = rows_for(c, &sql, ids).await?;
    let mut out = BTreeMap::new();
    match kind {
        ObjectKind::Network => {
            let mut parts = crate::dhcp::network_dhcp_parts(c, ids).await?;
            for r in &rows {
                let id = text(r, "id")?;
                let mtu = r.try_get::<i64, _>("mtu")? as u32;
                let (subnets, dhcp) = parts.remove(&id).unwrap_or_default();
                out.insert(id, Image::Network(Arc::new(NetworkImage { mtu, subnets, dhcp })));
            }
        }
        ObjectKind::Segment => {
            for r in &rows {
                let image = SegmentImage {
                    network_id: text(r, "network_id")?,
                    network_type: text(r, "network_type")?,
                    physical_network: crate::rows::opt_text(r, "physical_network")?,
                    segmentation_id: crate::rows::opt_int(r, "segmentation_id")?.map(|v| v as u32),
                };
                out.insert(text(r, "id")?, Image::Segment(Arc::new(image)));
            }
        }
        ObjectKind::Router => {
            let mut routes: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
            if !rows.is_empty() {
                let sql = format!(
                    "SELECT router_id, destination, nexthop FROM router_routes WHERE router_id IN ({list}) \
                     ORDER BY router_id, destination, nexthop"
                );
                for r in rows_for(c, &sql, ids).await? {
                    routes
                        .entry(text(&r, "router_id")?)
                        .or_default()
                        .push((text(&r, "destination")?, text(&r, "nexthop")?));
                }
            }
            for r in &rows {
                let id = text(r, "id")?;
                let image = RouterImage {
                    admin_state_up: crate::rows::boolean(r, "admin_state_up")?,
                    routes: routes.remove(&id).unwrap_or_default(),
                };
                out.insert(id, Image::Router(Arc::new(image)));
            }
        }
        ObjectKind::FloatingIp => {
            let mut forwardings: BTreeMap<String, Vec<ForwardingImage>> = BTreeMap::new();
            if !rows.is_empty() {
                let sql = format!(
                    "SELECT id, floatingip_id, protocol, internal_port_id, internal_ip_address, internal_port_start, \
                     internal_port_end, external_port_start, external_port_end FROM port_forwardings \
                     WHERE floatingip_id IN ({list}) ORDER BY floatingip_id, id"
                );
                let port = |r: &sqlx::any::AnyRow, c: &str| -> Result<u32> { Ok(r.try_get::<i64, _>(c)? as u32) };
                for r in rows_for(c, &sql, ids).await? {
                    forwardings.entry(text(&r, "floatingip_id")?).or_default().push(ForwardingImage {
                        id: text(&r, "id")?,
                        protocol: text(&r, "protocol")?,
                        internal_port_id: text(&r, "internal_port_id")?,
                        internal_ip_address: text(&r, "internal_ip_address")?,
                        internal: (port(&r, "internal_port_start")?, port(&r, "internal_port_end")?),
                        external: (port(&r, "external_port_start")?, port(&r, "external_port_end")?),
                    });
                }
            }
            for r in &rows {
                let id = text(r, "id")?;
                let image = FloatingIpImage {
                    floating_ip_address: text(r, "floating_ip_address")?,
                    floating_network_id: text(r, "floating_network_id")?,
                    router_id: crate::rows::opt_text(r, "router_id")?,
                    port_id: crate::rows::opt_text(r, "fixed_port_id")?,
                    fixed_ip_address: crate::rows::opt_text(r, "fixed_ip_address")?,
                    port_forwardings: forwardings.remove(&id).unwrap_or_default(),
                };
                out.insert(id, Image::FloatingIp(Arc::new(image)));
            }
        }
        ObjectKind::Agent => {
            for r in &rows {
                let image = AgentImage {
                    host: text(r, "host")?,
                    agent_type: text(r, "agent_type")?,
                    tunnel_ip: text(r, "tunnel_ip")?,
                };
                out.insert(text(r, "id")?, Image::Agent(Arc::new(image)));
            }
        }
        ObjectKind::AddressGroup => {
            let mut addresses: BTreeMap<String, Vec<String>> = BTreeMap::new();
            if !rows.is_empty() {
                let sql = format!(
                    "SELECT address_group_id, address FROM address_group_addresses WHERE address_group_id IN ({list}) \
                     ORDER BY address_group_id, address"
                );
                for r in rows_for(c, &sql, ids).await? {
                    addresses.entry(text(&r, "address_group_id")?).or_default().push(text(&r, "address")?);
                }
            }
            for r in &rows {
                let id = text(r, "id")?;
                let image = AddressGroupImage { addresses: addresses.remove(&id).unwrap_or_default() };
                out.insert(id, Image::AddressGroup(Arc::new(image)));
            }
        }
        ObjectKind::SecurityGroup => {
            let mut rules: BTreeMap<String, Vec<HostSecurityRule>> = BTreeMap::new();
            if !rows.is_empty() {
                let sql = format!(
                    "SELECT id, security_group_id, direction, ethertype, protocol, port_range_min, port_range_max, \
                     normalized_cidr, remote_group_id, remote_address_group_id FROM security_group_rules \
                     WHERE security_group_id IN ({list}) \
                     ORDER BY security_group_id, id"
                );
                for r in rows_for(c, &sql, ids).await? {
                    rules.entry(text(&r, "security_group_id")?).or_default().push(rule_image(&r)?);
                }
            }
            for r in &rows {
                let id = text(r, "id")?;
                let stateful = crate::rows::boolean(r, "stateful")?;
                let image = SecurityGroupImage { stateful, rules: rules.remove(&id).unwrap_or_default() };
                out.insert(id, Image::SecurityGroup(Arc::new(image)));
            }
        }
        ObjectKind::Port => {
            let mut addresses: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut cidrs: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
            let mut snat: BTreeSet<String> = BTreeSet::new();
            if !rows.is_empty() {
                let sql = format!("SELECT gw_port_id, enable_snat FROM routers WHERE gw_port_id IN ({list})");
                for r in rows_for(c, &sql, ids).await? {
                    if crate::rows::boolean(&r, "enable_snat")? {
                        snat.insert(text(&r, "gw_port_id")?);
                    }
                }
            }
            if !rows.is_empty() {
                let sql = format!(
                    "SELECT port_id, security_group_id FROM port_security_groups WHERE port_id IN ({list}) \
                     ORDER BY port_id, security_group_id"
                );
                for r in rows_for(c, &sql, ids).await? {
                    groups.entry(text(&r, "port_id")?).or_default().push(text(&r, "security_group_id")?);
                }
            }
            if !rows.is_empty() {
                let sql = format!(
                    "SELECT a.port_id, a.ip_address, s.cidr, s.gateway_ip FROM ip_allocations a \
                     JOIN subnets s ON s.id = a.subnet_id \
                     WHERE a.port_id IN ({list}) ORDER BY a.port_id, a.position"
                );
                for r in rows_for(c, &sql, ids).await? {
                    let port = text(&r, "port_id")?;
                    addresses.entry(port.clone()).or_default().push(text(&r, "ip_address")?);
                    let gateway = crate::rows::opt_text(&r, "gateway_ip")?.unwrap_or_default();
                    cidrs.entry(port).or_default().push((text(&r, "cidr")?, gateway));
                }
            }
            for r in &rows {
                let id = text(r, "id")?;
                let image = PortImage {
                    network_id: text(r, "network_id")?,
                    host: text(r, "host_id")?,
                    segment_id: crate::rows::opt_text(r, "segment_id")?,
                    mac_address: text(r, "mac_address")?,
                    admin_state_up: crate::rows::boolean(r, "admin_state_up")?,
                    status: text(r, "status")?,
                    ip_addresses: addresses.remove(&id).unwrap_or_default(),
                    port_security_enabled: crate::rows::boolean(r, "port_security_enabled")?,
                    security_groups: groups.remove(&id).unwrap_or_default(),
                    allowed_address_pairs: serde_json::from_str(&text(r, "allowed_address_pairs")?)?,
                    router: router_of(
                        &text(r, "device_owner")?,
                        &text(r, "device_id")?,
                        cidrs.remove(&id),
                        snat.contains(&id),
                    ),
                    extra_dhcp_opts: serde_json::from_str(&text(r, "extra_dhcp_opts")?)?,
                    dns_name: text(r, "dns_name")?,
                    device_id: text(r, "device_id")?,
                    project_id: text(r, "project_id")?,
                };
                out.insert(id, Image::Port(Arc::new(image)));
            }
        }
    }
    Ok(out)
}

/// What a port's image says of the router it belongs to: its interfaces (with their subnets'
/// CIDRs, in the order of the port's addresses) and gateways.
fn router_of(
    owner: &str,
    device_id: &str,
    subnets: Option<Vec<(String, String)>>,
    snat: bool,
) -> Option<RouterPortImage> {
    use neutrino_domain::routers::{DEVICE_OWNER_ROUTER_GW, DEVICE_OWNER_ROUTER_SNAT, ROUTER_INTERFACE_OWNERS};
    let gateway = owner == DEVICE_OWNER_ROUTER_GW;
    let centralized_snat = owner == DEVICE_OWNER_ROUTER_SNAT;
    let (cidrs, gateways): (Vec<String>, Vec<String>) = subnets.unwrap_or_default().into_iter().unzip();
    (gateway || centralized_snat || ROUTER_INTERFACE_OWNERS.contains(&owner)).then(|| RouterPortImage {
        router_id: device_id.to_string(),
        gateway,
        cidrs,
        gateways: if gateway { gateways } else { Vec::new() },
        snat: gateway && snat,
        centralized_snat,
    })
}

/// A rule as hosts enforce it: the protocol as its number, the prefix normalized.
pub(crate) fn rule_image(r: &sqlx::any::AnyRow) -> Result<HostSecurityRule> {
    let direction = match text(r, "direction")?.as_str() {
        "egress" => Direction::Egress,
        _ => Direction::Ingress,
    };
    let ethertype = match text(r, "ethertype")?.as_str() {
        "IPv6" => EtherType::IPv6,
        _ => EtherType::IPv4,
    };
    let protocol = crate::rows::opt_text(r, "protocol")?.and_then(|p| protocol_number(&p));
    let port = |name: &str| -> Result<Option<u32>> { Ok(crate::rows::opt_int(r, name)?.map(|v| v as u32)) };
    Ok(HostSecurityRule {
        id: text(r, "id")?,
        direction,
        ethertype,
        protocol,
        port_range_min: port("port_range_min")?,
        port_range_max: port("port_range_max")?,
        remote_ip_prefix: crate::rows::opt_text(r, "normalized_cidr")?,
        remote_group_id: crate::rows::opt_text(r, "remote_group_id")?,
        remote_address_group_id: crate::rows::opt_text(r, "remote_address_group_id")?,
    })
}

/// The table each kind's objects live in (for seeding the log).
fn table_of(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Network => "networks",
        ObjectKind::Segment => "network_segments",
        ObjectKind::Port => "ports",
        ObjectKind::Agent => "agents",
        ObjectKind::SecurityGroup => "security_groups",
        ObjectKind::AddressGroup => "address_groups",
        ObjectKind::FloatingIp => "floatingips",
        ObjectKind::Router => "routers",
    }
}

/// What the seeding records per kind in `change_log_kinds`: a kind whose image gained
/// attributes gets a new tag, so a database logged before records its objects again.
fn seed_tag(kind: ObjectKind) -> &'static str {
    match kind {
        // Version 2 carries the security groups, port security and address pairs.
        // Version 3 carries what routers' ports add; version 4 DHCP options, DNS name,
        // device and project.
        ObjectKind::Port => "port@4",
        // Version 2 carries the subnets and the DHCP port.
        ObjectKind::Network => "network@2",
        other => other.as_str(),
    }
}

/// Give the log an image of every existing object of each kind it has not recorded yet (a
/// database from before the log, or before a kind was added). Runs in the migration's
/// transaction; on PostgreSQL writers wait meanwhile, so no image can be older than a write.
pub(crate) async fn seed(tx: &mut Tx) -> Result<()> {
    let seeded = crate::settings::get(tx.conn(), "change_log_kinds").await?.unwrap_or_default();
    let seeded: BTreeSet<&str> = seeded.split(',').filter(|k| !k.is_empty()).collect();
    let missing: Vec<ObjectKind> = ObjectKind::ALL.into_iter().filter(|k| !seeded.contains(seed_tag(*k))).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if tx.backend() == Backend::Postgres {
        tx.conn()
            .execute(
                "LOCK TABLE networks, subnets, network_segments, ports, ip_allocations, agents, security_groups, \
                 security_group_rules, port_security_groups, address_groups, address_group_addresses IN SHARE MODE",
            )
            .await?;
    }
    let mut count = 0;
    for kind in &missing {
        let rows = sqlx::query(&format!("SELECT id FROM {} ORDER BY id", table_of(*kind))).fetch_all(tx.conn()).await?;
        for r in &rows {
            tx.touch(*kind, &text(r, "id")?);
        }
        count += rows.len();
    }
    tracing::info!(objects = count, kinds = ?missing, "recording the current state in the change log");
    let all: Vec<&str> = ObjectKind::ALL.iter().map(|k| seed_tag(*k)).collect();
    crate::settings::set(tx.conn(), "change_log_kinds", &all.join(",")).await
}

/// Rows as revisions (rows arrive ordered by revision, then id).
fn group(rows: &[sqlx::any::AnyRow]) -> Result<Vec<Revision>> {
    let mut out: Vec<Revision> = Vec::new();
    for r in rows {
        let revision = r.try_get::<i64, _>("revision")? as u64;
        let kind_text = text(r, "kind")?;
        let kind = ObjectKind::parse(&kind_text)
            .ok_or_else(|| StoreError::Config(format!("change log: unknown kind '{kind_text}'")))?;
        let id = text(r, "object_id")?;
        let image = match crate::rows::opt_text(r, "image")? {
            Some(json) => Some(Image::from_json(kind, &json)?),
            None => None,
        };
        let change = ObjectChange { kind, id, image };
        match out.last_mut() {
            Some(last) if last.revision == revision => last.changes.push(change),
            _ => out.push(Revision { revision, changes: vec![change] }),
        }
    }
    Ok(out)
}

impl Store {
    /// The highest numbered revision.
    pub async fn log_head(&self) -> Result<u64> {
        let row =
            sqlx::query("SELECT COALESCE(MAX(revision), 0) AS r FROM change_log").fetch_one(&self.log_pool).await?;
        Ok(row.try_get::<i64, _>("r")? as u64)
    }

    /// Whole revisions after `after`, in order: those holding the first `max_rows` rows
    /// (the last revision complete, however many rows it has). Revisions are sparse before
    /// the compaction horizon, so the read is bounded by rows, not by revision numbers.
    pub async fn log_since(&self, after: u64, max_rows: u64) -> Result<Vec<Revision>> {
        let rows = sqlx::query(
            "SELECT revision, kind, object_id, image FROM change_log WHERE revision > $1 AND revision <= ( \
                SELECT MAX(revision) FROM (SELECT revision FROM change_log WHERE revision > $1 \
                ORDER BY revision LIMIT $2) page) \
             ORDER BY revision, id",
        )
        .bind(after as i64)
        .bind(max_rows.clamp(1, i64::MAX as u64) as i64)
        .fetch_all(&self.log_pool)
        .await?;
        group(&rows)
    }

    /// The compaction horizon: views before it cannot be rebuilt from the log.
    pub async fn log_horizon(&self) -> Result<u64> {
        let mut c = self.log_pool.acquire().await?;
        Ok(crate::settings::get(&mut c, "change_log_horizon").await?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// Number the committed rows no sequencer has numbered yet (PostgreSQL; a no-op on
    /// SQLite). Returns the new head when it numbered any.
    pub async fn sequence(&self) -> Result<Option<u64>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let pending = sqlx::query("SELECT 1 AS x FROM change_log WHERE revision IS NULL LIMIT 1")
            .fetch_optional(&self.log_pool)
            .await?;
        if pending.is_none() {
            return Ok(None);
        }
        self.sequence_pending().await
    }

    /// One sequencer run, in one round trip: the lock is taken by a statement of its own, so
    /// the numbering statement's snapshot sees every run before it. A run that numbered
    /// revisions NOTIFYs the new head.
    async fn sequence_pending(&self) -> Result<Option<u64>> {
        let mut c = self.log_pool.acquire().await?;
        match c.fetch_all(SEQUENCER_RUN).await {
            Ok(rows) => {
                let head = rows.iter().find_map(|r| r.try_get::<i64, _>("new_head").ok());
                Ok(head.map(|h| h as u64))
            }
            Err(e) => {
                // Leave the connection outside any transaction.
                let _ = c.execute("ROLLBACK").await;
                Err(e.into())
            }
        }
    }

    /// Number committed rows for as long as the process runs: after each local commit, and
    /// every half second for rows other servers left (PostgreSQL only).
    pub async fn run_sequencer(&self) {
        if self.backend != Backend::Postgres {
            return std::future::pending().await;
        }
        loop {
            let numbered = tokio::select! {
                // A local commit appended rows: number them.
                _ = self.signals.appended.notified() => self.sequence_pending().await,
                // Rows another server may have left.
                _ = tokio::time::sleep(SWEEP_INTERVAL) => self.sequence().await,
            };
            match numbered {
                Ok(Some(head)) => self.signals.advance(head),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "numbering the change log failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Drop what the log no longer needs: before the horizon `head - keep`, every image but
    /// each object's latest, and deleted objects altogether. Only rows made obsolete since
    /// the last horizon are looked at. Returns the rows removed.
    ///
    /// Servers take turns on a lock of its own (not the sequencer's, so numbering and
    /// fan-out never wait for a compaction).
    pub async fn compact_log(&self, keep: u64) -> Result<u64> {
        let mut tx = self.begin().await?;
        if self.backend == Backend::Postgres {
            tx.conn().execute(format!("SELECT pg_advisory_xact_lock({COMPACTION_LOCK_KEY})").as_str()).await?;
        }
        let head = sqlx::query("SELECT COALESCE(MAX(revision), 0) AS r FROM change_log").fetch_one(tx.conn()).await?;
        let head = head.try_get::<i64, _>("r")? as u64;
        let current: u64 =
            crate::settings::get(tx.conn(), "change_log_horizon").await?.and_then(|v| v.parse().ok()).unwrap_or(0);
        let horizon = head.saturating_sub(keep);
        if horizon <= current {
            return Ok(0);
        }
        let done = sqlx::query(
            "DELETE FROM change_log WHERE revision <= $2 AND ((image IS NULL AND revision > $1) OR EXISTS ( \
                SELECT 1 FROM change_log later WHERE later.kind = change_log.kind \
                AND later.object_id = change_log.object_id AND later.revision > change_log.revision \
                AND later.revision > $1 AND later.revision <= $2))",
        )
        .bind(current as i64)
        .bind(horizon as i64)
        .execute(tx.conn())
        .await?;
        crate::settings::set(tx.conn(), "change_log_horizon", &horizon.to_string()).await?;
        tx.commit().await?;
        tracing::debug!(horizon, removed = done.rows_affected(), "change log compacted");
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequencer_run_uses_the_lock_key_and_the_channel() {
        assert!(SEQUENCER_RUN.contains(&format!("pg_advisory_xact_lock({SEQUENCER_LOCK_KEY})")));
        assert!(SEQUENCER_RUN.contains(&format!("pg_notify('{LOG_CHANNEL}'")));
    }
}
