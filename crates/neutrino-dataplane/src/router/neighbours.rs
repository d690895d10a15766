//! Permanent neighbour entries on a link inside a namespace (a DHCP namespace knows the MAC
//! of every local port it answers, so its replies never wait for ARP: a client without an
//! address yet would not answer it).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use crate::kernel::{parse_neighbour, Netlink};
use crate::{MacAddr, NeighEntry, Result};
use rtnetlink::packet_route::neighbour::{NeighbourAttribute, NeighbourState};
use rtnetlink::packet_route::AddressFamily;

/// Make the permanent entries on `device` exactly `entries`, writing only the difference.
pub(super) async fn converge(nl: &Netlink, device: &str, entries: &[(IpAddr, MacAddr)]) -> Result<()> {
    let index = nl.device_index(device).await?;
    let names: HashMap<u32, &str> = HashMap::from([(index, device)]);
    let have: BTreeMap<IpAddr, MacAddr> = {
        let _turn = nl.dump_lock.lock().await;
        let mut msgs = nl.dump_neighbours(AddressFamily::Inet, Some(index)).await?;
        msgs.extend(nl.dump_neighbours(AddressFamily::Inet6, Some(index)).await?);
        msgs.iter().filter_map(|m| parse_neighbour(m, &names)).map(|e: NeighEntry| (e.ip, e.mac)).collect()
    };
    let want: BTreeMap<IpAddr, MacAddr> = entries.iter().copied().collect();
    for (ip, mac) in &want {
        if have.get(ip) == Some(mac) {
            continue;
        }
        nl.handle
            .neighbours()
            .add(index, *ip)
            .link_layer_address(&mac.0)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(|e| crate::kernel::nl_error(&format!("add neighbour {ip}"), device, e))?;
    }
    for ip in have.keys().filter(|ip| !want.contains_key(ip)) {
        let family = if ip.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
        let Some(mut msg) = nl.neighbour_message(device, family).await? else { return Ok(()) };
        msg.attributes = vec![NeighbourAttribute::Destination((*ip).into())];
        nl.delete_neighbour(&format!("delete neighbour {ip}"), device, msg).await?;
    }
    Ok(())
}
