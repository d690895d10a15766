//! The lab: real agents in "host" network namespaces joined by an underlay bridge, "VMs" as
//! namespaces whose veth peer is the tap in their host, and the server as a real process.
//! This is test harness code: it drives `ip`, `tcpdump` and `ping` as a person would.
//! Everything it creates carries its prefix and is removed on drop, even after a failure.

mod api;
mod capture;
mod cmd;
mod dhcp;
pub mod follower;
pub mod ha;
mod keystone;
mod lab;
mod netns;
pub mod pki;
pub mod roaming;
pub mod workload;

pub use api::{ApiClient, ApiError};
pub use capture::{Capture, CaptureCounts};
pub use cmd::{run, LabError};
pub use dhcp::{DhcpClient, DhcpResult};
pub use keystone::{keystone_harness, keystone_installed, Keystone, KeystoneUser};
pub use lab::{
    check_tools, cleanup_prefix, AgentRole, BootedVm, Lab, LabConfig, PingRun, VmSpec, METADATA_SECRET,
    NOVA_METADATA_PORT, PHYSICAL_INTERFACE, PHYSICAL_NETWORK, SERVER_IP,
};
pub use netns::{join_netns, NsRuntime};
