//! Router advertisements of one router leg (RFC 4861 §6.2): three at first, a few seconds
//! apart, then one every random interval between the minimum and maximum, all to every node
//! of the link; and one to each router solicitation's sender (at once: the leg's own VMs are
//! the only ones that hear it, so there is no one to flood).

use neutrino_domain::dhcp::v6::RaSettings;
use rand::Rng;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// The first advertisements come this far apart (within RFC 4861's 16 s).
const INITIAL_SPACING: Duration = Duration::from_secs(2);
const INITIAL_ADVERTS: u32 = 3;

/// Advertise `advert` (an encoded router advertisement) on the leg with `index` through
/// `socket` (a raw ICMPv6 socket made in the router's namespace), until a send fails (the
/// leg went) or the task is stopped.
pub async fn advertise(
    leg: String,
    socket: tokio::net::UdpSocket,
    index: u32,
    advert: std::sync::Arc<Vec<u8>>,
    settings: RaSettings,
) {
    let everyone = SocketAddrV6::new(ALL_NODES, 0, 0, index);
    let (min, max) = (settings.min_interval.max(3), settings.max_interval.max(4));
    let mut sent = 0u32;
    let mut buf = [0u8; 1500];
    loop {
        if let Err(e) = socket.send_to(&advert, everyone).await {
            tracing::warn!(%leg, error = %e, "router advertisement not sent; stopping");
            return;
        }
        sent += 1;
        let mut wait =
            Duration::from_millis(rand::thread_rng().gen_range(u64::from(min) * 1000..=u64::from(max) * 1000));
        if sent < INITIAL_ADVERTS {
            wait = wait.min(INITIAL_SPACING);
        }
        let next = tokio::time::Instant::now() + wait;
        // Solicitations until it is time for the next periodic one.
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => break,
                got = socket.recv_from(&mut buf) => match got {
                    Ok((len, SocketAddr::V6(from))) if len >= 8 && buf[0] == 133 && buf[1] == 0 => {
                        // An unspecified source cannot be answered but by multicast.
                        let to = if from.ip().is_unspecified() { everyone } else { SocketAddrV6::new(*from.ip(), 0, 0, index) };
                        if let Err(e) = socket.send_to(&advert, to).await {
                            tracing::debug!(%leg, to = %to, error = %e, "solicited router advertisement not sent");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(%leg, error = %e, "router advertisement socket failed; stopping");
                        return;
                    }
                },
            }
        }
    }
}
