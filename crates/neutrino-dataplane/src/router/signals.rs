//! What a router tells others when an address moves: a gratuitous ARP to its neighbours, and
//! the removal of the connection tracking (NAT) state of the address.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;

use super::ports::get_port_link;
use super::RouterNs;
use crate::netns;
use crate::{DataPlaneError, MacAddr, Result};

/// Sends the announcement of `ip` out of `device` in the router's namespace, from a packet
/// socket opened there (packet sockets and interface indexes belong to a namespace).
pub(super) async fn announce(router: &RouterNs, device: &str, ip: Ipv4Addr) -> Result<()> {
    let port =
        get_port_link(&router.netlink, device).await?.ok_or_else(|| DataPlaneError::NoSuchLink(device.into()))?;
    let packet = gratuitous_arp(port.mac, ip);
    let index = port.link.index;
    let name = device.to_string();
    netns::on_thread(Some(router.netns.clone()), move || {
        send_broadcast_arp(index, &packet)
            .map_err(|e| io::Error::new(e.kind(), format!("announce {ip} on {name}: {e}")).into())
    })
    .await?;
    // Twice more, later and off the caller's path (as Neutron's `send_arp_for_ha = 3`): one
    // announcement may go before a new leg's bridge port forwards, and a neighbour that
    // misses it would keep the old MAC until its entry goes stale. A leg gone by then is no
    // error of anyone's.
    let netns = router.netns.clone();
    tokio::spawn(async move {
        for delay in REPEATS {
            tokio::time::sleep(delay).await;
            let _ = netns::on_thread(Some(netns.clone()), move || Ok(send_broadcast_arp(index, &packet)?)).await;
        }
    });
    Ok(())
}

/// When an announcement is sent again, each after the one before.
const REPEATS: [std::time::Duration; 2] = [std::time::Duration::from_millis(300), std::time::Duration::from_secs(1)];

/// An ARP announcement (RFC 5227): a request whose sender and target IP are both `ip`, from
/// `mac`, with a zero target MAC. Every neighbour with an entry for `ip` updates it.
pub(super) fn gratuitous_arp(mac: MacAddr, ip: Ipv4Addr) -> [u8; 28] {
    let mut packet = [0u8; 28];
    packet[0..2].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    packet[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    packet[4] = 6; // hardware address length
    packet[5] = 4; // protocol address length
    packet[6..8].copy_from_slice(&1u16.to_be_bytes()); // operation: request
    packet[8..14].copy_from_slice(&mac.0);
    packet[14..18].copy_from_slice(&ip.octets());
    packet[24..28].copy_from_slice(&ip.octets());
    packet
}

/// Sends `packet` as an ARP frame to the Ethernet broadcast address out of the link `index`,
/// in the calling thread's namespace. The kernel writes the Ethernet header (SOCK_DGRAM), with
/// the device's MAC as source.
fn send_broadcast_arp(index: u32, packet: &[u8]) -> io::Result<()> {
    let arp = (libc::ETH_P_ARP as u16).to_be();
    // Protocol 0: the socket only sends, it receives nothing.
    // SAFETY: socket has no memory preconditions; the fd is owned right after.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new, valid descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; all zeros is a valid value.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = arp;
    to.sll_ifindex = i32::try_from(index).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    // SAFETY: the buffer and the address are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            std::ptr::addr_of!(to).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `conntrack -D` in the router's namespace for each direction `ip` may appear in: as the
/// original source or destination (traffic from or to it) and as the reply source or
/// destination (after DNAT to it or SNAT from it). Nothing to delete is fine.
pub(super) async fn flush_conntrack(router: &RouterNs, ip: IpAddr) -> Result<()> {
    let family = if ip.is_ipv4() { "ipv4" } else { "ipv6" };
    let ip = ip.to_string();
    for direction in ["--orig-src", "--orig-dst", "--reply-src", "--reply-dst"] {
        let out = netns::command_in(&router.netns, "conntrack")
            .args(["-D", "-f", family, direction, &ip])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(DataPlaneError::Unsupported(format!("conntrack (conntrack-tools) is not installed: {e}")));
            }
            Err(e) => return Err(DataPlaneError::Conntrack(format!("cannot run conntrack: {e}"))),
        };
        let errors = String::from_utf8_lossy(&out.stderr);
        // conntrack exits 1 when it deleted nothing.
        if out.status.success() || errors.contains("0 flow entries have been deleted") {
            continue;
        }
        let detail = errors.lines().take(4).collect::<Vec<_>>().join(" | ");
        return Err(DataPlaneError::Conntrack(format!("delete {direction} {ip} in {}: {detail}", router.name)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_is_a_request_for_the_senders_own_address() {
        let mac = MacAddr([0xfa, 0x16, 0x3e, 0, 0, 1]);
        let packet = gratuitous_arp(mac, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(&packet[..8], &[0, 1, 8, 0, 6, 4, 0, 1], "Ethernet/IPv4, request");
        assert_eq!(&packet[8..14], &mac.0, "sender MAC");
        assert_eq!(&packet[14..18], &[192, 0, 2, 1], "sender IP");
        assert_eq!(&packet[18..24], &[0; 6], "target MAC unknown");
        assert_eq!(&packet[24..28], &[192, 0, 2, 1], "target IP = sender IP");
    }
}
