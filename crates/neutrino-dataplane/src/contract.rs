//! The contract both data planes keep: the same scenarios run against the in-memory model
//! (always) and the kernel (as root, in a private network namespace), so what reconciler
//! tests learn from the model holds for the kernel.

use crate::{
    DataPlane, DataPlaneError, Fdb, FdbEntry, LinkEvent, LinkKind, Links, MacAddr, NeighEntry, Neighbours, VxlanSpec,
};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

pub mod routers;

const BRIDGE: &str = "brqcontract";
const VXLAN: &str = "vx-contract";
const TAP: &str = "tapcontract";

/// What the scenarios need beyond the data plane: a link someone else creates (a tap).
pub trait Outside {
    fn add_tap(&self, name: &str);
}

fn spec(vni: u32) -> VxlanSpec {
    VxlanSpec { name: VXLAN.into(), vni, local: Ipv4Addr::LOCALHOST, port: 4789 }
}

fn mac(last: u8) -> MacAddr {
    MacAddr([0xfa, 0x16, 0x3e, 0, 0, last])
}

fn fdb(last: u8, dst: [u8; 4]) -> FdbEntry {
    FdbEntry { device: VXLAN.into(), mac: mac(last), dst: IpAddr::from(dst) }
}

fn neighbours() -> [NeighEntry; 2] {
    [
        NeighEntry { device: VXLAN.into(), ip: Ipv4Addr::new(198, 51, 100, 5).into(), mac: mac(1) },
        NeighEntry { device: VXLAN.into(), ip: "2001:db8::5".parse().unwrap(), mac: mac(1) },
    ]
}

/// Every scenario, in order (they build on each other).
pub async fn run<D: DataPlane>(dp: &D, outside: &impl Outside) {
    let mut events = dp.links().events().await.unwrap();
    builds_a_network_and_reads_it_back(dp).await;
    ensuring_again_changes_nothing(dp).await;
    entries_replace_and_delete_by_key(dp).await;
    a_tap_from_outside_is_attached(dp, outside).await;
    a_mismatched_vxlan_is_recreated(dp).await;
    deleting_releases_and_missing_devices_are_errors(dp).await;
    link_events_report_the_bridge(&mut events).await;
}

async fn builds_a_network_and_reads_it_back<D: DataPlane>(dp: &D) {
    dp.links().ensure_bridge(BRIDGE, Some(1400)).await.unwrap();
    dp.links().ensure_vxlan(&spec(4242)).await.unwrap();
    dp.links().attach(VXLAN, BRIDGE).await.unwrap();
    dp.fdb().add(&fdb(1, [192, 0, 2, 10])).await.unwrap();
    for n in neighbours() {
        dp.neighbours().add(&n).await.unwrap();
    }
    let bridge = dp.links().get(BRIDGE).await.unwrap().expect("bridge");
    assert_eq!((&bridge.kind, bridge.up, bridge.mtu), (&LinkKind::Bridge, true, 1400));
    let vx = dp.links().get(VXLAN).await.unwrap().expect("vxlan");
    let kind = LinkKind::Vxlan { vni: 4242, local: Some(Ipv4Addr::LOCALHOST) };
    assert_eq!((&vx.kind, vx.master.as_deref(), vx.up), (&kind, Some(BRIDGE), true));
    assert!(dp.links().get("nosuch0").await.unwrap().is_none());

    assert_eq!(dp.fdb().list(VXLAN).await.unwrap(), vec![fdb(1, [192, 0, 2, 10])]);
    let mut listed = dp.neighbours().list(VXLAN).await.unwrap();
    listed.sort();
    let mut expected = neighbours().to_vec();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(dp.fdb().list(BRIDGE).await.unwrap().is_empty(), "only VXLAN devices have remote entries");
    assert!(dp.fdb().list("nosuch0").await.unwrap().is_empty());
    assert!(dp.neighbours().list("nosuch0").await.unwrap().is_empty());

    let all = dp.observe().await.unwrap();
    assert_eq!(all.link(VXLAN), Some(&vx));
    assert_eq!(all.fdb, vec![fdb(1, [192, 0, 2, 10])]);
    assert_eq!(all.neighbours.len(), 2);
}

/// What an agent restart does: everything is ensured again, and nothing is recreated.
async fn ensuring_again_changes_nothing<D: DataPlane>(dp: &D) {
    let before = dp.observe().await.unwrap();
    dp.links().ensure_bridge(BRIDGE, Some(1400)).await.unwrap();
    dp.links().ensure_vxlan(&spec(4242)).await.unwrap();
    dp.links().attach(VXLAN, BRIDGE).await.unwrap();
    dp.fdb().add(&fdb(1, [192, 0, 2, 10])).await.unwrap();
    let after = dp.observe().await.unwrap();
    assert_eq!(after.link(VXLAN).unwrap().index, before.link(VXLAN).unwrap().index);
    assert_eq!(after.link(BRIDGE).unwrap().index, before.link(BRIDGE).unwrap().index);
    assert_eq!(after.fdb, before.fdb, "entries survive because the device was kept");
}

async fn entries_replace_and_delete_by_key<D: DataPlane>(dp: &D) {
    // One destination per MAC: an add with another VTEP replaces (a port moved).
    dp.fdb().add(&fdb(1, [192, 0, 2, 11])).await.unwrap();
    assert_eq!(dp.fdb().list(VXLAN).await.unwrap(), vec![fdb(1, [192, 0, 2, 11])]);
    dp.fdb().del(&fdb(1, [192, 0, 2, 10])).await.unwrap();
    assert_eq!(dp.fdb().list(VXLAN).await.unwrap(), vec![fdb(1, [192, 0, 2, 11])], "another VTEP's delete is a no-op");
    for _ in 0..2 {
        dp.fdb().del(&fdb(1, [192, 0, 2, 11])).await.unwrap();
    }
    assert!(dp.fdb().list(VXLAN).await.unwrap().is_empty());
    // One MAC per IP: an add with another MAC replaces; a delete is by IP.
    let moved = NeighEntry { mac: mac(2), ..neighbours()[0].clone() };
    dp.neighbours().add(&moved).await.unwrap();
    assert!(dp.neighbours().list(VXLAN).await.unwrap().contains(&moved));
    assert_eq!(dp.neighbours().list(VXLAN).await.unwrap().len(), 2);
    for n in neighbours() {
        dp.neighbours().del(&n).await.unwrap();
        dp.neighbours().del(&n).await.unwrap();
    }
    assert!(dp.neighbours().list(VXLAN).await.unwrap().is_empty());
}

async fn a_tap_from_outside_is_attached<D: DataPlane>(dp: &D, outside: &impl Outside) {
    outside.add_tap(TAP);
    let tap = dp.links().get(TAP).await.unwrap().expect("tap");
    assert_eq!(tap.master, None);
    dp.links().attach(TAP, BRIDGE).await.unwrap();
    dp.links().attach(TAP, BRIDGE).await.unwrap();
    let tap = dp.links().get(TAP).await.unwrap().unwrap();
    assert_eq!((tap.master.as_deref(), tap.up, tap.isolated), (Some(BRIDGE), true, false));
    // An uplink's way: isolated, and so read back.
    dp.links().attach_isolated(TAP, BRIDGE).await.unwrap();
    dp.links().attach_isolated(TAP, BRIDGE).await.unwrap();
    let tap = dp.links().get(TAP).await.unwrap().unwrap();
    assert_eq!((tap.master.as_deref(), tap.up, tap.isolated), (Some(BRIDGE), true, true));
}

async fn a_mismatched_vxlan_is_recreated<D: DataPlane>(dp: &D) {
    let before = dp.links().get(VXLAN).await.unwrap().unwrap();
    dp.links().ensure_vxlan(&spec(4243)).await.unwrap();
    let vx = dp.links().get(VXLAN).await.unwrap().unwrap();
    assert_ne!(vx.index, before.index);
    assert_eq!(vx.kind, LinkKind::Vxlan { vni: 4243, local: Some(Ipv4Addr::LOCALHOST) });
    assert_eq!(vx.master, None, "a new device is not a port of the bridge");
}

async fn deleting_releases_and_missing_devices_are_errors<D: DataPlane>(dp: &D) {
    dp.links().attach(VXLAN, BRIDGE).await.unwrap();
    for _ in 0..2 {
        dp.links().delete(BRIDGE).await.unwrap();
    }
    assert!(dp.links().get(BRIDGE).await.unwrap().is_none());
    assert_eq!(dp.links().get(TAP).await.unwrap().unwrap().master, None, "the bridge's ports are released");
    assert_eq!(dp.links().get(VXLAN).await.unwrap().unwrap().master, None);
    dp.links().delete(VXLAN).await.unwrap();
    let missing = dp.fdb().add(&fdb(1, [192, 0, 2, 10])).await;
    assert!(matches!(&missing, Err(DataPlaneError::NoSuchLink(n)) if n == VXLAN), "{missing:?}");
    let missing = dp.neighbours().add(&neighbours()[0]).await;
    assert!(matches!(missing, Err(DataPlaneError::NoSuchLink(_))), "{missing:?}");
    let missing = dp.links().attach(TAP, BRIDGE).await;
    assert!(matches!(missing, Err(DataPlaneError::NoSuchLink(_))), "{missing:?}");
    dp.fdb().del(&fdb(1, [192, 0, 2, 10])).await.unwrap();
    dp.neighbours().del(&neighbours()[0]).await.unwrap();
    dp.links().delete(TAP).await.unwrap();
}

async fn link_events_report_the_bridge(events: &mut tokio::sync::mpsc::Receiver<LinkEvent>) {
    let (mut added, mut removed) = (false, false);
    while !(added && removed) {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("a link event within 5 s")
            .expect("the event channel stays open");
        match event {
            LinkEvent::Added(name) if name == BRIDGE => added = true,
            LinkEvent::Removed(name) if name == BRIDGE => removed = true,
            _ => {}
        }
    }
}

mod memory {
    use super::*;
    use crate::memory::MemoryDataPlane;

    impl Outside for MemoryDataPlane {
        fn add_tap(&self, name: &str) {
            self.add_external_link(name, LinkKind::Veth);
        }
    }

    #[tokio::test]
    async fn the_memory_model_keeps_the_contract() {
        let dp = MemoryDataPlane::new();
        run(&dp, &dp).await;
    }

    #[tokio::test]
    async fn the_memory_model_keeps_the_routers_contract() {
        let dp = MemoryDataPlane::with_namespace_prefix("ntdp-");
        routers::run(&dp, || Some(dp.mutations())).await;
    }
}
