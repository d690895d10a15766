//! Router advertisements of one router leg (RFC 4861 §6.2): three at first, 3 s apart, then
//! one every random interval between the minimum and maximum, all to every node of the link;
//! one to each router solicitation's sender (at once: the leg's own VMs are the only ones that
//! hear it, so there is no one to flood); and a last one with a router lifetime of 0 when the
//! leg stops advertising.

use neutrino_domain::router_advert::RaSettings;
use rand::Rng;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// The first advertisements come this far apart (RFC 4861: at most 16 s, at least the 3 s
/// between any two multicast advertisements).
const INITIAL_SPACING: Duration = Duration::from_secs(3);
const INITIAL_ADVERTS: u32 = 3;
/// RFC 4861's MIN_DELAY_BETWEEN_RAS: multicast answers to solicitations come no closer.
const MIN_DELAY: Duration = Duration::from_secs(3);

/// Whether a send failed because the leg is gone (ENXIO, ENODEV on Linux; anything else is
/// tried again later).
fn leg_gone(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(6 | 19))
}

/// Advertise `advert` (an encoded router advertisement) on the leg with `index` through
/// `socket` (a raw ICMPv6 socket made in the router's namespace), until the leg is gone or
/// `stop` fires; then (when stopped) once more with a router lifetime of 0, so that the VMs drop
/// the route at once (as radvd does when it stops).
pub async fn advertise(
    leg: String,
    socket: tokio::net::UdpSocket,
    index: u32,
    advert: std::sync::Arc<Vec<u8>>,
    settings: RaSettings,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let everyone = SocketAddrV6::new(ALL_NODES, 0, 0, index);
    let (min, max) = (settings.min_interval.max(3), settings.max_interval.max(4));
    let mut sent = 0u32;
    let mut last_multicast = tokio::time::Instant::now();
    let mut buf = [0u8; 1500];
    loop {
        match socket.send_to(&advert, everyone).await {
            Err(e) if leg_gone(&e) => {
                tracing::info!(%leg, "the leg is gone; no more router advertisements");
                return;
            }
            // Not up yet, say: the next one comes soon during the first ones.
            Err(e) => tracing::debug!(%leg, error = %e, "router advertisement not sent"),
            Ok(_) => last_multicast = tokio::time::Instant::now(),
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
                _ = &mut stop => {
                    let mut last = advert.as_ref().clone();
                    if last.len() >= 8 {
                        last[6] = 0;
                        last[7] = 0;
                    }
                    let _ = socket.send_to(&last, everyone).await;
                    return;
                }
                got = socket.recv_from(&mut buf) => match got {
                    Ok((len, SocketAddr::V6(from))) if len >= 8 && buf[0] == 133 && buf[1] == 0 => {
                        // An unspecified source can be answered by multicast only, and
                        // multicast no more often than every 3 s.
                        let to = if from.ip().is_unspecified() {
                            if last_multicast.elapsed() < MIN_DELAY {
                                continue;
                            }
                            last_multicast = tokio::time::Instant::now();
                            everyone
                        } else {
                            SocketAddrV6::new(*from.ip(), 0, 0, index)
                        };
                        if let Err(e) = socket.send_to(&advert, to).await {
                            tracing::debug!(%leg, to = %to, error = %e, "solicited router advertisement not sent");
                        }
                    }
                    Ok(_) => {}
                    Err(e) if leg_gone(&e) => return,
                    Err(e) => tracing::debug!(%leg, error = %e, "router solicitation not read"),
                },
            }
        }
    }
}
