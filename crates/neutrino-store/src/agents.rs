//! Agents (registration, liveness) and the per-host view the agent stream is built from.

use crate::rows::{boolean, opt_int, text};
use crate::{now_timestamp, Result, Store, Tx};
use neutrino_api::agent::{
    AgentConfigurations, AgentRegistration, HostNetwork, HostState, LocalPort, RemotePort, AGENT_TYPE_LINUXBRIDGE,
    AGENT_TYPE_OVS,
};
use neutrino_domain::changes::{Operation, Resource};
use neutrino_domain::topology::ObjectKind;
use sqlx::{AnyConnection, Executor, Row};
use std::collections::BTreeMap;

/// A registered agent as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    pub id: String,
    pub host: String,
    pub agent_type: String,
    pub tunnel_ip: String,
    pub admin_state_up: bool,
    pub created_at: String,
    pub started_at: String,
    pub heartbeat_at: String,
    pub availability_zone: String,
    pub description: Option<String>,
    pub configurations: AgentConfigurations,
}

/// Insert or refresh an agent's registration (also its heartbeat).
pub async fn register_agent(tx: &mut Tx, reg: &AgentRegistration, new_id: &str, starting: bool) -> Result<AgentRecord> {
    let now = now_timestamp();
    let previous = sqlx::query("SELECT tunnel_ip FROM agents WHERE host = $1 AND agent_type = $2")
        .bind(reg.host.clone())
        .bind(reg.agent_type.clone())
        .fetch_optional(tx.conn())
        .await?;
    let previous_vtep = previous.as_ref().map(|r| text(r, "tunnel_ip")).transpose()?;
    sqlx::query(
        "INSERT INTO agents (id, host, agent_type, tunnel_ip, admin_state_up, created_at, started_at, heartbeat_at, \
         availability_zone, configurations) VALUES ($1, $2, $3, $4, true, $5, $5, $5, $6, $7) \
         ON CONFLICT (host, agent_type) DO UPDATE SET tunnel_ip = excluded.tunnel_ip, heartbeat_at = excluded.heartbeat_at, \
         availability_zone = excluded.availability_zone, configurations = excluded.configurations",
    )
    .bind(new_id.to_string())
    .bind(reg.host.clone())
    .bind(reg.agent_type.clone())
    .bind(reg.tunnel_ip.clone())
    .bind(now.clone())
    .bind(reg.availability_zone.clone())
    .bind(serde_json::to_string(&reg.configurations)?)
    .execute(tx.conn())
    .await?;
    if starting {
        sqlx::query("UPDATE agents SET started_at = $1 WHERE host = $2 AND agent_type = $3")
            .bind(now)
            .bind(reg.host.clone())
            .bind(reg.agent_type.clone())
            .execute(tx.conn())
            .await?;
    }
    let row = sqlx::query("SELECT * FROM agents WHERE host = $1 AND agent_type = $2")
        .bind(reg.host.clone())
        .bind(reg.agent_type.clone())
        .fetch_one(tx.conn())
        .await?;
    let record = decode(&row)?;
    // A new agent, or a (re)started one that may have a new VTEP: hosts must hear of it. A
    // heartbeat changes nothing they see.
    if starting || previous_vtep.as_deref() != Some(reg.tunnel_ip.as_str()) {
        tx.touch(ObjectKind::Agent, &record.id);
    }
    Ok(record)
}

fn decode(row: &sqlx::any::AnyRow) -> Result<AgentRecord> {
    Ok(AgentRecord {
        id: text(row, "id")?,
        host: text(row, "host")?,
        agent_type: text(row, "agent_type")?,
        tunnel_ip: text(row, "tunnel_ip")?,
        admin_state_up: boolean(row, "admin_state_up")?,
        created_at: text(row, "created_at")?,
        started_at: text(row, "started_at")?,
        heartbeat_at: text(row, "heartbeat_at")?,
        availability_zone: text(row, "availability_zone")?,
        description: crate::rows::opt_text(row, "description")?,
        configurations: crate::rows::json(row, "configurations")?,
    })
}

pub async fn list_agents(c: &mut AnyConnection) -> Result<Vec<AgentRecord>> {
    let rows = sqlx::query("SELECT * FROM agents ORDER BY host, agent_type").fetch_all(&mut *c).await?;
    rows.iter().map(decode).collect()
}

/// The L3 agents that are up in `agent_mode` (gateway hosts: `dvr_snat`), by host.
pub async fn l3_agents_in_mode(c: &mut AnyConnection, mode: &str) -> Result<Vec<AgentRecord>> {
    let rows = sqlx::query("SELECT * FROM agents WHERE agent_type = $1 AND admin_state_up ORDER BY host")
        .bind(neutrino_api::agent::AGENT_TYPE_L3.to_string())
        .fetch_all(&mut *c)
        .await?;
    let agents: Vec<AgentRecord> = rows.iter().map(decode).collect::<Result<_>>()?;
    Ok(agents.into_iter().filter(|a| a.configurations.agent_mode.as_deref() == Some(mode)).collect())
}

/// Take the gateway hosts' lock until the transaction ends: shared by the schedulers of
/// routers' centralized SNAT (they read the gateway hosts), exclusive for a change of a
/// gateway host (which schedules every router after it commits). So a router scheduled
/// concurrently with such a change either sees it or is seen by the rescheduling after it.
/// On SQLite, where write transactions take turns, there is nothing to take.
pub async fn lock_gateway_hosts(tx: &mut Tx, exclusive: bool) -> Result<()> {
    if tx.backend() != crate::Backend::Postgres {
        return Ok(());
    }
    let function = if exclusive { "pg_advisory_xact_lock" } else { "pg_advisory_xact_lock_shared" };
    // A fixed key of Neutrino's ("NTSN").
    sqlx::query(&format!("SELECT {function}(1314149198)")).execute(tx.conn()).await?;
    Ok(())
}

pub async fn get_agent(c: &mut AnyConnection, id: &str) -> Result<AgentRecord> {
    let row = sqlx::query("SELECT * FROM agents WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| crate::StoreError::not_found("agent", id))?;
    decode(&row)
}

/// Change what an admin may change of an agent.
pub async fn update_agent(tx: &mut Tx, agent: &AgentRecord) -> Result<()> {
    sqlx::query("UPDATE agents SET admin_state_up = $1, description = $2 WHERE id = $3")
        .bind(agent.admin_state_up)
        .bind(agent.description.clone())
        .bind(agent.id.clone())
        .execute(tx.conn())
        .await?;
    tx.record_change(Resource::Agent, &agent.id, Operation::Update);
    Ok(())
}

/// Forget an agent (an alive one registers again with its next heartbeat).
pub async fn delete_agent(tx: &mut Tx, id: &str) -> Result<()> {
    let done = sqlx::query("DELETE FROM agents WHERE id = $1").bind(id.to_string()).execute(tx.conn()).await?;
    if done.rows_affected() == 0 {
        return Err(crate::StoreError::not_found("agent", id));
    }
    tx.record_change(Resource::Agent, id, Operation::Delete);
    Ok(())
}

/// Every agent registered on `host`.
pub async fn agents_on_host(c: &mut AnyConnection, host: &str) -> Result<Vec<AgentRecord>> {
    let rows = sqlx::query("SELECT * FROM agents WHERE host = $1 ORDER BY agent_type")
        .bind(host.to_string())
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(decode).collect()
}

pub async fn agent_on_host(c: &mut AnyConnection, host: &str, agent_type: &str) -> Result<Option<AgentRecord>> {
    let row = sqlx::query("SELECT * FROM agents WHERE host = $1 AND agent_type = $2")
        .bind(host.to_string())
        .bind(agent_type.to_string())
        .fetch_optional(&mut *c)
        .await?;
    row.as_ref().map(decode).transpose()
}

/// Record the status the agent observed for its ports. Returns how many changed.
pub async fn set_port_status(tx: &mut Tx, host: &str, statuses: &BTreeMap<String, String>) -> Result<u64> {
    let now = now_timestamp();
    let mut changed = 0;
    for (port_id, status) in statuses {
        let done = sqlx::query(
            "UPDATE ports SET status = $1, updated_at = $2, revision_number = revision_number + 1 \
             WHERE id = $3 AND host_id = $4 AND status <> $1",
        )
        .bind(status.clone())
        .bind(now.clone())
        .bind(port_id.clone())
        .bind(host.to_string())
        .execute(tx.conn())
        .await?;
        if done.rows_affected() > 0 {
            changed += 1;
            tx.record_change(Resource::Port, port_id, Operation::Status);
        }
    }
    Ok(changed)
}

impl Store {
    /// Everything `host` needs, computed from the tables in one consistent snapshot, and the
    /// log's head revision. Servers keep views from the change log instead; this is the
    /// reference those views are checked against, written independently of them.
    pub async fn host_state(&self, host: &str, l2population: bool) -> Result<(u64, HostState)> {
        let mut tx = self.pool_begin_read().await?;
        let c: &mut AnyConnection = &mut tx;
        let rev_row = sqlx::query("SELECT COALESCE(MAX(revision), 0) AS r FROM change_log").fetch_one(&mut *c).await?;
        let revision = rev_row.try_get::<i64, _>("r")? as u64;
        let mut state = HostState::default();

        let local = sqlx::query(
            "SELECT id, network_id, mac_address, admin_state_up, status, port_security_enabled, allowed_address_pairs, \
             extra_dhcp_opts, dns_name, device_id, project_id FROM ports WHERE host_id = $1 AND host_id <> ''",
        )
        .bind(host.to_string())
        .fetch_all(&mut *c)
        .await?;
        for r in &local {
            state.local_ports.insert(
                text(r, "id")?,
                LocalPort {
                    network_id: text(r, "network_id")?,
                    mac_address: text(r, "mac_address")?,
                    admin_state_up: boolean(r, "admin_state_up")?,
                    status: text(r, "status")?,
                    ip_addresses: Vec::new(),
                    port_security_enabled: boolean(r, "port_security_enabled")?,
                    security_groups: Vec::new(),
                    allowed_address_pairs: serde_json::from_str(&text(r, "allowed_address_pairs")?)?,
                    extra_dhcp_opts: serde_json::from_str(&text(r, "extra_dhcp_opts")?)?,
                    dns_name: text(r, "dns_name")?,
                    device_id: text(r, "device_id")?,
                    project_id: text(r, "project_id")?,
                },
            );
        }
        let local_ips = sqlx::query(
            "SELECT i.port_id, i.ip_address FROM ports p JOIN ip_allocations i ON i.port_id = p.id \
             WHERE p.host_id = $1 AND p.host_id <> '' ORDER BY i.port_id, i.position",
        )
        .bind(host.to_string())
        .fetch_all(&mut *c)
        .await?;
        for r in &local_ips {
            if let Some(p) = state.local_ports.get_mut(&text(r, "port_id")?) {
                p.ip_addresses.push(text(r, "ip_address")?);
            }
        }
        crate::group_reference::host_groups_reference(c, host, &mut state).await?;

        // Each network as the segment this host's ports are bound to (the lowest segment id
        // when they are bound to several).
        let nets = sqlx::query(
            "SELECT DISTINCT p.network_id, s.id AS segment_id, s.network_type, s.physical_network, s.segmentation_id, n.mtu \
             FROM ports p JOIN network_segments s ON s.id = p.segment_id JOIN networks n ON n.id = p.network_id \
             WHERE p.host_id = $1 AND p.host_id <> '' ORDER BY p.network_id, s.id",
        )
        .bind(host.to_string())
        .fetch_all(&mut *c)
        .await?;
        for r in &nets {
            let network = HostNetwork {
                network_type: text(r, "network_type")?,
                physical_network: crate::rows::opt_text(r, "physical_network")?,
                segmentation_id: opt_int(r, "segmentation_id")?.map(|v| v as u32),
                mtu: r.try_get::<i64, _>("mtu")? as u32,
                subnets: Default::default(),
                dhcp: None,
            };
            state.networks.entry(text(r, "network_id")?).or_insert(network);
        }
        let routed = crate::host_routing::host_routers_reference(c, host, &mut state).await?;
        crate::dhcp::fill_reference(c, &mut state).await?;
        if !l2population || local.is_empty() {
            tx.rollback().await?;
            return Ok((revision, state));
        }

        // L2 population: ports on other hosts bound to the segments this host's ports are on,
        // or that the routers it runs give it, behind the VTEP of their host's L2 agent (a Linux
        // bridge agent before an OVS agent).
        let routed_list = routed.iter().map(|s| format!("'{}'", s.replace('\'', "''"))).collect::<Vec<_>>().join(", ");
        let routed_clause =
            if routed.is_empty() { String::new() } else { format!(" OR p.segment_id IN ({routed_list})") };
        let on_our_segments = format!(
            "p.host_id <> $1 AND p.host_id <> '' \
             AND (p.segment_id IN (SELECT segment_id FROM ports WHERE host_id = $1 AND host_id <> ''){routed_clause})"
        );
        let on_our_segments = on_our_segments.as_str();
        let remote = sqlx::query(&format!(
            "SELECT p.id, p.network_id, p.mac_address, p.host_id, p.dns_name FROM ports p WHERE {on_our_segments}"
        ))
        .bind(host.to_string())
        .fetch_all(&mut *c)
        .await?;
        let vteps = sqlx::query(&format!(
            "SELECT a.host, a.tunnel_ip FROM agents a WHERE a.agent_type IN ($2, $3) \
             AND a.host IN (SELECT p.host_id FROM ports p WHERE {on_our_segments}) \
             ORDER BY a.host, CASE WHEN a.agent_type = $2 THEN 0 ELSE 1 END, a.id"
        ))
        .bind(host.to_string())
        .bind(AGENT_TYPE_LINUXBRIDGE)
        .bind(AGENT_TYPE_OVS)
        .fetch_all(&mut *c)
        .await?;
        let mut vtep_of: BTreeMap<String, String> = BTreeMap::new();
        for r in &vteps {
            vtep_of.entry(text(r, "host")?).or_insert(text(r, "tunnel_ip")?);
        }
        for r in &remote {
            let Some(tunnel_ip) = vtep_of.get(&text(r, "host_id")?) else {
                continue;
            };
            state.remote_ports.insert(
                text(r, "id")?,
                RemotePort {
                    network_id: text(r, "network_id")?,
                    mac_address: text(r, "mac_address")?,
                    ip_addresses: Vec::new(),
                    tunnel_ip: tunnel_ip.clone(),
                    dns_name: text(r, "dns_name")?,
                },
            );
        }
        let ips = sqlx::query(&format!(
            "SELECT i.port_id, i.ip_address FROM ports p JOIN ip_allocations i ON i.port_id = p.id \
             WHERE {on_our_segments} ORDER BY i.port_id, i.position"
        ))
        .bind(host.to_string())
        .fetch_all(&mut *c)
        .await?;
        for r in &ips {
            if let Some(p) = state.remote_ports.get_mut(&text(r, "port_id")?) {
                p.ip_addresses.push(text(r, "ip_address")?);
            }
        }
        tx.rollback().await?;
        Ok((revision, state))
    }

    /// A read-only transaction: one consistent snapshot, no write lock.
    async fn pool_begin_read(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let mut tx = self.pool.begin().await?;
        if self.backend == crate::Backend::Postgres {
            tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
        }
        Ok(tx)
    }
}
