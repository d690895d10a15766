//! Booting a VM as Nova does: a port bound to the host, then its tap plugged.

use super::{Lab, VmSpec};
use crate::cmd::LabError;
use std::time::Duration;

/// A VM booted on a port.
#[derive(Debug, Clone)]
pub struct BootedVm {
    pub name: String,
    pub host: String,
    pub port_id: String,
    pub ip: String,
    pub mac: String,
}

impl Lab {
    /// What Nova does: create a port bound to the host, then plug the VM's tap. Waits until
    /// the port is ACTIVE.
    pub async fn boot_vm(
        &mut self,
        api: &crate::ApiClient,
        network: &serde_json::Value,
        name: &str,
        host: &str,
    ) -> Result<BootedVm, LabError> {
        self.boot(api, network, name, host, true).await
    }

    /// Like [`Lab::boot_vm`], but the VM has no address: it is to ask DHCP for it (the
    /// `ip` returned is the port's, which it should get).
    pub async fn boot_dhcp_vm(
        &mut self,
        api: &crate::ApiClient,
        network: &serde_json::Value,
        name: &str,
        host: &str,
    ) -> Result<BootedVm, LabError> {
        self.boot(api, network, name, host, false).await
    }

    async fn boot(
        &mut self,
        api: &crate::ApiClient,
        network: &serde_json::Value,
        name: &str,
        host: &str,
        addressed: bool,
    ) -> Result<BootedVm, LabError> {
        let host_id = self.host_id(host);
        let net_id = network["id"].as_str().unwrap_or_default();
        let port = api.create_port(net_id, name, &host_id).await.map_err(|e| LabError::Other(e.to_string()))?;
        let port_id = port["id"].as_str().unwrap_or_default().to_string();
        let ip = port["fixed_ips"][0]["ip_address"].as_str().unwrap_or_default().to_string();
        let subnet = api
            .get(&format!("/v2.0/subnets/{}", port["fixed_ips"][0]["subnet_id"].as_str().unwrap_or_default()))
            .await
            .map_err(|e| LabError::Other(e.to_string()))?;
        let prefix_len = subnet["subnet"]["cidr"]
            .as_str()
            .and_then(|c| c.split('/').nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(24);
        self.add_vm(VmSpec {
            name: name.to_string(),
            host: host.to_string(),
            port_id: port_id.clone(),
            mac: port["mac_address"].as_str().unwrap_or_default().to_string(),
            ip: if addressed { ip.clone() } else { String::new() },
            prefix_len,
            mtu: network["mtu"].as_u64().unwrap_or(1450) as u32,
        })?;
        let active = api
            .wait_port_status(&port_id, "ACTIVE", Duration::from_secs(15))
            .await
            .map_err(|e| LabError::Other(e.to_string()))?;
        if !active {
            return Err(LabError::Other(format!(
                "port {port_id} of {name} did not become ACTIVE; agent log:\n{}",
                self.log_tail(&format!("agent-{host}"), 30)
            )));
        }
        let mac = port["mac_address"].as_str().unwrap_or_default().to_string();
        Ok(BootedVm { name: name.to_string(), host: host.to_string(), port_id, ip, mac })
    }
}
