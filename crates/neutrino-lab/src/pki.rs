//! A throwaway certificate authority for tests, made at run time with the `openssl` command
//! (no key is ever committed): a CA, server certificates for 127.0.0.1 and localhost, client
//! certificates, and on purpose an expired one.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("openssl {args}: {stderr}")]
    Openssl { args: String, stderr: String },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA in a directory of the caller's.
pub struct TestCa {
    dir: PathBuf,
    name: String,
    pub cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), PkiError> {
    let out = Command::new("openssl").args(args).current_dir(dir).output()?;
    if !out.status.success() {
        return Err(PkiError::Openssl {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl TestCa {
    /// A new CA `name` (its files are `<name>-ca.pem` and `<name>-ca.key` in `dir`).
    pub fn new(dir: &Path, name: &str) -> Result<TestCa, PkiError> {
        std::fs::create_dir_all(dir)?;
        let cert = dir.join(format!("{name}-ca.pem"));
        let key = dir.join(format!("{name}-ca.key"));
        let (c, k) = (cert.to_string_lossy().to_string(), key.to_string_lossy().to_string());
        let subject = format!("/CN=Neutrino test CA {name}");
        let mut args = vec!["req", "-x509", "-nodes", "-days", "2", "-subj", &subject, "-keyout", &k, "-out", &c];
        args.extend(EC);
        args.extend([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(dir, &args)?;
        Ok(TestCa { dir: dir.to_path_buf(), name: name.to_string(), cert, key })
    }

    /// A certificate for `cn`, valid for 127.0.0.1 and localhost, as a server and as a client.
    /// `days` below zero makes one that has already expired.
    pub fn issue(&self, cn: &str, days: i32) -> Result<Issued, PkiError> {
        self.issue_for(cn, days, &[])
    }

    /// Like [`TestCa::issue`], also valid for the addresses `ips`.
    pub fn issue_for(&self, cn: &str, days: i32, ips: &[&str]) -> Result<Issued, PkiError> {
        let base = format!("{}-{cn}", self.name);
        let cert = self.dir.join(format!("{base}.pem"));
        let key = self.dir.join(format!("{base}.key"));
        let csr = self.dir.join(format!("{base}.csr"));
        let ext = self.dir.join(format!("{base}.ext"));
        let extra: String = ips.iter().map(|ip| format!(",IP:{ip}")).collect();
        std::fs::write(
            &ext,
            format!(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost{extra}\n"
            ),
        )?;
        let s = |p: &Path| p.to_string_lossy().to_string();
        let subject = format!("/CN={cn}");
        let mut args = vec!["req", "-nodes", "-subj", &subject];
        let (k, r) = (s(&key), s(&csr));
        args.extend(EC);
        args.extend(["-keyout", &k, "-out", &r]);
        openssl(&self.dir, &args)?;
        let days = days.to_string();
        let (c, ca, cakey, e) = (s(&cert), s(&self.cert), s(&self.key), s(&ext));
        openssl(
            &self.dir,
            &["x509", "-req", "-in", &r, "-CA", &ca, "-CAkey", &cakey, "-days", &days, "-extfile", &e, "-out", &c],
        )?;
        Ok(Issued { cert, key })
    }
}
