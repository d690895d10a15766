//! Real DHCP clients in the lab's VMs: busybox `udhcpc` and ISC `dhclient`, each run once with
//! a script that applies the address (and default route) it got and records every variable
//! the client gave it.

use crate::cmd::{in_ns, LabError};
use crate::Lab;
use std::collections::BTreeMap;

/// Which client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpClient {
    /// busybox `udhcpc`: variables `ip`, `mask`, `router`, `dns`, `mtu`, `staticroutes`, ...
    Udhcpc,
    /// busybox `udhcpc` sending option 175, as iPXE does.
    UdhcpcIpxe,
    /// ISC `dhclient`: variables `new_ip_address`, `new_subnet_mask`, `new_routers`, ...
    Dhclient,
    /// ISC `dhclient -6`, stateful: variables `new_ip6_address`, `new_ip6_prefixlen`,
    /// `new_dhcp6_name_servers`, `new_dhcp6_domain_search`.
    Dhclient6,
    /// ISC `dhclient -6 -S`, stateless (Information-Request): the same options, no address.
    Dhclient6Stateless,
}

/// The variables a client's script saw for the lease it bound, and the reasons it was run.
#[derive(Debug, Clone, Default)]
pub struct DhcpResult {
    pub vars: BTreeMap<String, String>,
    /// `reason` (dhclient) or the first argument (udhcpc) of every run of the script.
    pub events: Vec<String>,
}

impl DhcpResult {
    pub fn get(&self, name: &str) -> &str {
        self.vars.get(name).map(String::as_str).unwrap_or_default()
    }
}

const DHCLIENT_CONF: &str = "option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;\n\
    option tftp-server-address code 150 = ip-address;\n\
    timeout 15;\nretry 1;\n\
    request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers, host-name, \
    interface-mtu, rfc3442-classless-static-routes, tftp-server-name, tftp-server-address;\n";

const DHCLIENT6_CONF: &str =
    "timeout 15;\nretry 1;\nrequest dhcp6.name-servers, dhcp6.domain-search, dhcp6.bootfile-url;\n";

impl Lab {
    /// Run `client` once in `vm` (on `eth0`): it asks for a lease, and its script applies the
    /// address. Fails when no lease came.
    pub fn dhcp(&self, vm: &str, client: DhcpClient) -> Result<DhcpResult, LabError> {
        let dir = self.dir().join(format!("dhcp-{vm}"));
        std::fs::create_dir_all(&dir)?;
        let out = dir.join("vars");
        let events = dir.join("events");
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_file(&events);
        let script = dir.join("script");
        // udhcpc's script also applies the classless routes (`dest/len gateway` pairs).
        let v4 = |address: &str| format!("  ip addr flush dev eth0 scope global\n  ip addr add {address} dev eth0\n");
        // IPv6: the address given (none when stateless) beside what SLAAC made.
        let v6 =
            "  [ -z \"$new_ip6_address\" ] || ip -6 addr replace $new_ip6_address/$new_ip6_prefixlen dev eth0 nodad\n";
        let (event, bound, apply) = match client {
            DhcpClient::Udhcpc | DhcpClient::UdhcpcIpxe => (
                "$1",
                "bound|renew",
                v4("$ip/${mask:-24}") + "  set -- $staticroutes\n  while [ $# -ge 2 ]; do [ \"$2\" = 0.0.0.0 ] || ip route replace $1 via $2 dev eth0; shift 2; done\n",
            ),
            DhcpClient::Dhclient => ("$reason", "BOUND|RENEW|REBIND|REBOOT", v4("$new_ip_address/$new_subnet_mask")),
            DhcpClient::Dhclient6 | DhcpClient::Dhclient6Stateless => {
                ("$reason", "BOUND6|RENEW6|REBIND6|REBOOT6|INFORM6", v6.to_string())
            }
        };
        let text = format!(
            "#!/bin/sh\necho \"{event}\" >> {events}\ncase \"{event}\" in {bound})\n  env > {out}\n{apply};;\nesac\nexit 0\n",
            events = events.display(),
            out = out.display(),
        );
        std::fs::write(&script, text)?;
        std::process::Command::new("chmod").arg("+x").arg(&script).status()?;
        let ns = self.netns(vm);
        let script = script.display().to_string();
        let ran = match client {
            DhcpClient::Udhcpc | DhcpClient::UdhcpcIpxe => {
                let mut args = vec![
                    "busybox",
                    "udhcpc",
                    "-i",
                    "eth0",
                    "-n",
                    "-q",
                    "-f",
                    "-t",
                    "4",
                    "-T",
                    "1",
                    "-s",
                    &script,
                    "-O",
                    "staticroutes",
                    "-O",
                    "mtu",
                    "-O",
                    "tftp",
                ];
                if client == DhcpClient::UdhcpcIpxe {
                    args.extend(["-x", "0xaf:010101"]);
                }
                in_ns(&ns, &args)
            }
            DhcpClient::Dhclient | DhcpClient::Dhclient6 | DhcpClient::Dhclient6Stateless => {
                let conf = dir.join("dhclient.conf");
                let v6 = client != DhcpClient::Dhclient;
                std::fs::write(&conf, if v6 { DHCLIENT6_CONF } else { DHCLIENT_CONF })?;
                let (conf, lease, pid) = (
                    conf.display().to_string(),
                    dir.join("leases").display().to_string(),
                    dir.join("pid").display().to_string(),
                );
                let files = ["-cf", conf.as_str(), "-lf", lease.as_str(), "-pf", pid.as_str()];
                let mut args = vec!["dhclient", "-1", "-sf", &script];
                match client {
                    DhcpClient::Dhclient6 => args.push("-6"),
                    DhcpClient::Dhclient6Stateless => args.extend(["-6", "-S"]),
                    _ => {}
                }
                args.extend(files);
                args.push("eth0");
                let ran = in_ns(&ns, &args);
                // dhclient stays to renew: stop it, as it is (`-x` would run the system's
                // script, which takes the address away).
                if let Ok(pid) = std::fs::read_to_string(&pid) {
                    let _ = std::process::Command::new("kill").args(["-KILL", pid.trim()]).status();
                }
                ran
            }
        };
        let seen = std::fs::read_to_string(&events).unwrap_or_default();
        let vars = std::fs::read_to_string(&out).map_err(|_| {
            LabError::Other(format!("{client:?} in {vm} got no lease ({ran:?}); script runs: {seen:?}"))
        })?;
        let vars =
            vars.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Ok(DhcpResult { vars, events: seen.lines().map(String::from).collect() })
    }
}
