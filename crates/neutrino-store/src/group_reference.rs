//! The security group part of `Store::host_state` (the reference the servers' incremental
//! views are checked against), computed from the tables independently of the change log.

use crate::Result;
use neutrino_api::agent::{GroupMember, HostSecurityGroup};
use sqlx::AnyConnection;

/// The security group part of a host's state, from the tables (the reference
/// `Store::host_state` checks the servers' views against): the groups of the host's ports,
/// their rules, and the members of the groups those rules name.
pub(crate) async fn host_groups_reference(
    c: &mut AnyConnection,
    host: &str,
    state: &mut neutrino_api::agent::HostState,
) -> Result<()> {
    const HOST_GROUPS: &str = "SELECT DISTINCT psg.security_group_id FROM port_security_groups psg \
        JOIN ports p ON p.id = psg.port_id WHERE p.host_id = $1 AND p.host_id <> ''";
    let memberships = sqlx::query(
        "SELECT psg.port_id, psg.security_group_id FROM port_security_groups psg JOIN ports p ON p.id = psg.port_id \
         WHERE p.host_id = $1 AND p.host_id <> '' ORDER BY psg.port_id, psg.security_group_id",
    )
    .bind(host.to_string())
    .fetch_all(&mut *c)
    .await?;
    for r in &memberships {
        if let Some(p) = state.local_ports.get_mut(&crate::rows::text(r, "port_id")?) {
            p.security_groups.push(crate::rows::text(r, "security_group_id")?);
        }
    }
    let groups = sqlx::query(&format!("SELECT id, stateful FROM security_groups WHERE id IN ({HOST_GROUPS})"))
        .bind(host.to_string())
        .fetch_all(&mut *c)
        .await?;
    for r in &groups {
        let group = HostSecurityGroup { stateful: crate::rows::boolean(r, "stateful")?, rules: Vec::new() };
        state.security_groups.insert(crate::rows::text(r, "id")?, group);
    }
    let rules = sqlx::query(&format!(
        "SELECT id, security_group_id, direction, ethertype, protocol, port_range_min, port_range_max, \
         normalized_cidr, remote_group_id, remote_address_group_id FROM security_group_rules \
         WHERE security_group_id IN ({HOST_GROUPS}) \
         ORDER BY security_group_id, id"
    ))
    .bind(host.to_string())
    .fetch_all(&mut *c)
    .await?;
    for r in &rules {
        if let Some(g) = state.security_groups.get_mut(&crate::rows::text(r, "security_group_id")?) {
            g.rules.push(crate::change_log::rule_image(r)?);
        }
    }
    let addresses = sqlx::query(&format!(
        "SELECT address_group_id, address FROM address_group_addresses WHERE address_group_id IN \
         (SELECT remote_address_group_id FROM security_group_rules WHERE security_group_id IN ({HOST_GROUPS})) \
         ORDER BY address_group_id, address"
    ))
    .bind(host.to_string())
    .fetch_all(&mut *c)
    .await?;
    let groups_named = sqlx::query(&format!(
        "SELECT id FROM address_groups WHERE id IN \
         (SELECT remote_address_group_id FROM security_group_rules WHERE security_group_id IN ({HOST_GROUPS}))"
    ))
    .bind(host.to_string())
    .fetch_all(&mut *c)
    .await?;
    for r in &groups_named {
        let entry = neutrino_api::agent::HostAddressGroup { addresses: Vec::new() };
        state.address_groups.insert(crate::rows::text(r, "id")?, entry);
    }
    for r in &addresses {
        if let Some(g) = state.address_groups.get_mut(&crate::rows::text(r, "address_group_id")?) {
            g.addresses.push(crate::rows::text(r, "address")?);
        }
    }
    let members = sqlx::query(&format!(
        "SELECT psg.security_group_id, p.id, p.allowed_address_pairs FROM port_security_groups psg \
         JOIN ports p ON p.id = psg.port_id WHERE psg.security_group_id IN \
         (SELECT remote_group_id FROM security_group_rules WHERE security_group_id IN ({HOST_GROUPS}))"
    ))
    .bind(host.to_string())
    .fetch_all(&mut *c)
    .await?;
    let mut pairs_of: std::collections::BTreeMap<String, Vec<neutrino_api::agent::AddressPair>> =
        std::collections::BTreeMap::new();
    for r in &members {
        let port = crate::rows::text(r, "id")?;
        let pairs = serde_json::from_str(&crate::rows::text(r, "allowed_address_pairs")?)?;
        pairs_of.insert(port.clone(), pairs);
        let group = crate::rows::text(r, "security_group_id")?;
        let member = GroupMember { group_id: group.clone(), addresses: Vec::new() };
        state.group_members.insert(GroupMember::key(&group, &port), member);
    }
    if pairs_of.is_empty() {
        return Ok(());
    }
    let ports: Vec<&String> = pairs_of.keys().collect();
    let mut fixed: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
    for chunk in ports.chunks(500) {
        let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT port_id, ip_address FROM ip_allocations WHERE port_id IN ({list}) ORDER BY port_id, position"
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            fixed.entry(crate::rows::text(&r, "port_id")?).or_default().push(crate::rows::text(&r, "ip_address")?);
        }
    }
    for (key, member) in state.group_members.iter_mut() {
        let port = key.split_once('/').map(|(_, p)| p).unwrap_or_default();
        member.addresses = fixed.get(port).cloned().unwrap_or_default();
        member.addresses.extend(pairs_of.get(port).into_iter().flatten().map(|p| p.ip_address.clone()));
    }
    Ok(())
}
