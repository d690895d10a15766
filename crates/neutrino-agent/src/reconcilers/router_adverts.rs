//! The router advertisement reconciler: every router leg on this host with an IPv6 address
//! advertises itself to the leg's VMs (periodically and to each solicitation), with the flags,
//! prefixes, MTU and DNS servers its subnets' `ipv6_ra_mode` asks (Neutron's radvd
//! configuration, see `neutrino_domain::router_advert::router_advert`). Each host advertises on its
//! own legs (the routing reconciler makes them, the same MAC and link-local address on every
//! host), so VMs learn a router that is always on their own host and nothing crosses a tunnel.
//!
//! Level-triggered: the advertisers are what the state says, one task per leg; one whose
//! advertisement changed, whose leg was made again or whose task ended starts again, and one
//! whose leg no longer advertises (its interface or router gone or down) says so last.

use super::{leg_name, PassOutcome, Reconciler, Scope};
use crate::services::router_adverts::advertise;
use futures::future::BoxFuture;
use neutrino_api::agent::HostState;
use neutrino_dataplane::{DataPlane, LinkEvent, Routers};
use neutrino_domain::mac::parse_mac;
use neutrino_domain::router_advert::{router_advert, RaSettings};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A leg: its router and its name in the router's namespace.
type Leg = (String, String);

pub struct RouterAdvertReconciler {
    settings: RaSettings,
    running: BTreeMap<Leg, Advertiser>,
}

/// One leg's advertiser task.
struct Advertiser {
    advert: Arc<Vec<u8>>,
    /// Tells the task to send its last advertisement and end (none once told).
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Advertiser {
    /// The leg no longer advertises: its last advertisement says so, then the task ends.
    fn retire(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Advertiser {
    /// Replaced (or the agent stops): the task goes at once.
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}

impl RouterAdvertReconciler {
    pub fn new(settings: RaSettings) -> RouterAdvertReconciler {
        RouterAdvertReconciler { settings, running: BTreeMap::new() }
    }
}

/// The advertisement of every router leg of this host that sends one.
pub fn wanted_adverts(state: &HostState, settings: &RaSettings) -> BTreeMap<Leg, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (router_id, router) in state.routers.iter().filter(|(_, r)| r.admin_state_up) {
        for (port_id, interface) in &router.interfaces {
            let Some(network) = state.networks.get(&interface.network_id) else { continue };
            let Some(mac) = parse_mac(&interface.mac_address) else { continue };
            if let Some(advert) = router_advert(network, &interface.addresses, settings) {
                out.insert((router_id.clone(), leg_name("qr-", port_id)), advert.encode(mac));
            }
        }
    }
    out
}

impl<D: DataPlane> Reconciler<D> for RouterAdvertReconciler {
    fn name(&self) -> &'static str {
        "router_adverts"
    }

    fn wants_link_event(&self, event: &LinkEvent) -> bool {
        // A router leg made again (its outside end is in this namespace).
        let name = event.name();
        name.starts_with("rq-")
    }

    fn reconcile<'a>(
        &'a mut self,
        dp: &'a D,
        state: &'a HostState,
        scope: &'a Scope,
    ) -> BoxFuture<'a, neutrino_dataplane::Result<PassOutcome>> {
        Box::pin(async move {
            let mut outcome = PassOutcome::default();
            let wanted = wanted_adverts(state, &self.settings);
            let remade: Vec<String> = match scope {
                Scope::Changes(events) => {
                    events.iter().filter_map(|e| e.name().strip_prefix("rq-").map(String::from)).collect()
                }
                Scope::Full => Vec::new(),
            };
            for leg in self.running.keys().filter(|l| !wanted.contains_key(*l)).cloned().collect::<Vec<_>>() {
                if let Some(gone) = self.running.remove(&leg) {
                    gone.retire();
                }
            }
            self.running.retain(|leg, running| {
                let same = wanted.get(leg).is_some_and(|w| w == running.advert.as_ref());
                let leg_remade = remade.iter().any(|r| leg.1.strip_prefix("qr-") == Some(r.as_str()));
                same && !leg_remade && !running.task.is_finished()
            });
            for ((router_id, leg), advert) in wanted {
                let key = (router_id.clone(), leg.clone());
                if self.running.contains_key(&key) {
                    continue;
                }
                let device = leg.clone();
                let made = dp
                    .routers()
                    .in_namespace(&router_id, move || neutrino_dataplane::sockets::router_advert_socket(&device))
                    .await;
                let (socket, index) = match made {
                    Ok(made) => made,
                    Err(e) => {
                        outcome
                            .problems
                            .insert(format!("router {router_id} leg {leg}"), format!("no advertiser yet: {e}"));
                        continue;
                    }
                };
                let socket = tokio::net::UdpSocket::from_std(socket).map_err(neutrino_dataplane::DataPlaneError::Io)?;
                let advert = Arc::new(advert);
                let (stop, stopped) = tokio::sync::oneshot::channel();
                let task = tokio::spawn(advertise(leg.clone(), socket, index, advert.clone(), self.settings, stopped));
                tracing::info!(router = %router_id, %leg, "advertising");
                self.running.insert(key, Advertiser { advert, stop: Some(stop), task });
                outcome.changes += 1;
            }
            Ok(outcome)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neutrino_api::agent::{HostNetwork, HostRouter, HostSubnet, RouterInterface};

    #[test]
    fn each_router_leg_with_an_ipv6_subnet_advertises() {
        let mut state = HostState::default();
        let subnet = |cidr: &str| HostSubnet {
            cidr: cidr.into(),
            ipv6_ra_mode: Some("slaac".into()),
            ipv6_address_mode: Some("slaac".into()),
            ..HostSubnet::default()
        };
        let network = HostNetwork {
            mtu: 1450,
            subnets: BTreeMap::from([("s6".into(), subnet("2001:db8::/64")), ("s4".into(), subnet("192.0.2.0/24"))]),
            ..HostNetwork::default()
        };
        state.networks.insert("n1".into(), network);
        let interface = |addresses: &[&str]| RouterInterface {
            network_id: "n1".into(),
            mac_address: "fa:16:3e:00:00:01".into(),
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
        };
        let mut router = HostRouter::default();
        router.interfaces.insert("p6-0123456789".into(), interface(&["2001:db8::1/64"]));
        router.interfaces.insert("p4-0123456789".into(), interface(&["192.0.2.1/24"]));
        state.routers.insert("r1".into(), router.clone());
        router.admin_state_up = false;
        state.routers.insert("r2".into(), router);
        let wanted = wanted_adverts(&state, &RaSettings::default());
        assert_eq!(wanted.keys().collect::<Vec<_>>(), vec![&("r1".to_string(), "qr-p6-01234567".to_string())]);
        let advert = &wanted[&("r1".to_string(), "qr-p6-01234567".to_string())];
        assert_eq!(advert[0], 134);
    }
}
