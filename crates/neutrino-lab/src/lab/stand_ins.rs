//! What the lab's cloud talks to besides Neutrino: its PKI (a lab with `tls`) and Python
//! stand-ins for Nova's metadata API and an upstream resolver, beside the server.

use super::{Lab, METADATA_SECRET, NOVA_METADATA_PORT, SERVER_IP};
use crate::cmd::LabError;
use crate::pki::{Issued, TestCa};
use std::path::PathBuf;
use std::time::Duration;

/// The lab's CA and what it issued, in `<dir>/pki` (a lab with `tls`).
pub(super) struct LabPki {
    pub(super) ca: PathBuf,
    /// For the server's address: the API, and Nova's stand-in beside it.
    pub(super) server: Issued,
    /// The agents' client certificate (to the servers, and to Nova's metadata API).
    pub(super) agent: Issued,
    /// The certificate the lab's own API client presents.
    pub(super) operator: Issued,
}

impl Lab {
    /// With `tls`: the lab's CA and what it issued (made on first use).
    pub(super) fn pki(&self) -> Result<Option<LabPki>, LabError> {
        if !self.cfg.tls {
            return Ok(None);
        }
        let dir = self.cfg.dir.join("pki");
        let issued =
            |name: &str| Issued { cert: dir.join(format!("lab-{name}.pem")), key: dir.join(format!("lab-{name}.key")) };
        let pki = LabPki {
            ca: dir.join("lab-ca.pem"),
            server: issued("server"),
            agent: issued("agent"),
            operator: issued("operator"),
        };
        // The operator's certificate is made last: with it, all are there.
        if !pki.operator.cert.exists() {
            let made = TestCa::new(&dir, "lab").and_then(|ca| {
                ca.issue_for("server", 2, &[SERVER_IP])?;
                ca.issue("agent", 2)?;
                ca.issue("operator", 2)
            });
            made.map_err(|e| LabError::Other(e.to_string()))?;
        }
        Ok(Some(pki))
    }

    /// Start the stand-in for Nova's metadata API beside the server (it checks the headers and
    /// their signature as Nova does; see `nova_metadata.py`), knowing `instances` as
    /// `(instance id, project id)`. In a lab with TLS it serves HTTPS with the server's
    /// certificate and wants a client certificate of the lab's CA. Returns it, listening, with
    /// the file it logs every request to.
    pub fn start_nova_metadata(&self, instances: &[(&str, &str)]) -> Result<(std::process::Child, PathBuf), LabError> {
        let server = self.pki()?.map(|pki| pki.server);
        self.start_nova_metadata_as(instances, server.as_ref())
    }

    /// Like [`Lab::start_nova_metadata`], serving HTTPS with `cert` (one of another CA, say: an
    /// impostor the agents must refuse), or plain HTTP without. A `cert` needs a lab with TLS
    /// (its agents speak HTTPS to Nova, and the stand-in wants their certificates).
    pub fn start_nova_metadata_as(
        &self,
        instances: &[(&str, &str)],
        cert: Option<&Issued>,
    ) -> Result<(std::process::Child, PathBuf), LabError> {
        let port = NOVA_METADATA_PORT.to_string();
        let mut args: Vec<String> = [SERVER_IP, &port, METADATA_SECRET].map(String::from).into();
        if let Some(cert) = cert {
            let Some(pki) = self.pki()? else {
                return Err(LabError::Other("Nova over HTTPS needs a lab with tls".into()));
            };
            args.extend([&cert.cert, &cert.key, &pki.ca].map(|p| p.to_string_lossy().into_owned()));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (mut child, log) =
            self.start_stand_in("nova_metadata", include_str!("../nova_metadata.py"), instances, &args)?;
        if !self.wait_listening((SERVER_IP.parse::<std::net::IpAddr>().expect("an address"), NOVA_METADATA_PORT).into())
        {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LabError::Other(format!("Nova's stand-in did not listen on {SERVER_IP}:{port}")));
        }
        Ok((child, log))
    }

    /// Start the upstream resolver the agents' DNS responders forward to (beside the server, on
    /// port 53; see `upstream_dns.py`), answering A queries for `names` (`(name, address)`).
    /// Returns it with the file it logs every name asked to.
    pub fn start_upstream_dns(&self, names: &[(&str, &str)]) -> Result<(std::process::Child, PathBuf), LabError> {
        let started = self.start_stand_in("upstream_dns", include_str!("../upstream_dns.py"), names, &[SERVER_IP])?;
        // UDP: nothing to connect to; give it the moment it takes to bind.
        std::thread::sleep(Duration::from_millis(500));
        Ok(started)
    }

    /// A Python stand-in for a service the cloud talks to, in the underlay namespace: run as
    /// `python3 <name>.py ARGS… TABLE LOG`, with `table` written as a JSON object to TABLE.
    fn start_stand_in(
        &self,
        name: &str,
        script: &str,
        table: &[(&str, &str)],
        args: &[&str],
    ) -> Result<(std::process::Child, PathBuf), LabError> {
        let path = |ext: &str| self.cfg.dir.join(format!("{name}.{ext}"));
        std::fs::write(path("py"), script)?;
        let known: serde_json::Map<String, serde_json::Value> =
            table.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect();
        std::fs::write(path("json"), serde_json::Value::Object(known).to_string())?;
        let log = path("log");
        let _ = std::fs::remove_file(&log);
        let files = [path("py"), path("json"), log.clone()].map(|p| p.to_string_lossy().into_owned());
        let mut all = vec!["python3", files[0].as_str()];
        all.extend_from_slice(args);
        all.extend([files[1].as_str(), files[2].as_str()]);
        let child = self.spawn("ul", &all)?;
        Ok((child, log))
    }
}
