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
    /// `days` below zero makes one that has really expired: it was valid for a day in January
    /// 2020 (not one whose validity ends before it begins, which verifiers report otherwise).
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
        let (c, ca, cakey, e) = (s(&cert), s(&self.cert), s(&self.key), s(&ext));
        if days >= 0 {
            let days = days.to_string();
            let args = ["x509", "-req", "-in", &r, "-CA", &ca, "-CAkey", &cakey, "-days", &days, "-extfile", &e];
            openssl(&self.dir, &[&args[..], &["-out", &c]].concat())?;
        } else {
            // `x509 -req` cannot backdate (OpenSSL 3.0): `openssl ca` can, with a throwaway
            // database of its own.
            let config = self.dir.join(format!("{base}.ca.cnf"));
            let (index, serial) = (self.dir.join(format!("{base}.index")), self.dir.join(format!("{base}.serial")));
            std::fs::write(&index, "")?;
            std::fs::write(&serial, "1000\n")?;
            std::fs::write(
                &config,
                format!(
                    "[ca]\ndefault_ca = test\n[test]\ndatabase = {}\nserial = {}\nnew_certs_dir = {}\n\
                     default_md = sha256\npolicy = anything\nunique_subject = no\n\
                     [anything]\ncommonName = supplied\n",
                    index.display(),
                    serial.display(),
                    self.dir.display()
                ),
            )?;
            let cnf = s(&config);
            let args = ["ca", "-batch", "-notext", "-config", &cnf, "-cert", &ca, "-keyfile", &cakey];
            let dates = ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"];
            openssl(&self.dir, &[&args[..], &dates, &["-in", &r, "-extfile", &e, "-out", &c]].concat())?;
        }
        Ok(Issued { cert, key })
    }
}

#[cfg(test)]
mod tests {
    /// The expired certificate's dates are in the past and in order (`not_before < not_after`).
    #[test]
    fn an_expired_certificate_was_valid_once() {
        let dir = std::env::temp_dir().join(format!("neutrino-pki-unit-{}", std::process::id()));
        let ca = super::TestCa::new(&dir, "unit").unwrap();
        let old = ca.issue("old", -1).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-dates", "-ext", "subjectAltName", "-in"])
            .arg(&old.cert)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(text.contains("notBefore=Jan  1 00:00:00 2020 GMT"), "{text}");
        assert!(text.contains("notAfter=Jan  2 00:00:00 2020 GMT"), "{text}");
        assert!(text.contains("IP Address:127.0.0.1"), "the extensions are kept: {text}");
    }
}
