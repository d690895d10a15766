//! TLS for Neutrino's links, with rustls (ring; no OpenSSL):
//! - [`ClientTls`]: how a client checks the server it calls and proves itself (Keystone's
//!   `[keystone_authtoken] cafile/certfile/keyfile/insecure`, the agent's `[agent] ssl_*`, the
//!   metadata proxy's `auth_ca_cert/nova_client_*`), applied to a reqwest builder;
//! - [`ServerTls`] and [`TlsListener`]: the API served over TLS (`[ssl] cert_file/key_file`),
//!   with client certificates required when `[ssl] ca_file` is set (mutual TLS).
//!
//! A handshake that fails (an unknown CA, an expired certificate, a client without its
//! certificate, plaintext on the TLS port) is logged with the peer and the reason, and nothing
//! is served on that connection.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {why}", path.display())]
    File { path: PathBuf, why: String },
    #[error("{0}")]
    Config(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File { path: path.to_path_buf(), why: e.to_string() })
}

fn file_error(path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::File { path: path.to_path_buf(), why: why.to_string() }
}

/// How a client checks the server it calls, and proves itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// CA certificates (PEM) to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// The client's certificate (PEM), for servers that ask for one.
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM; may also be in `cert_file`).
    pub key_file: Option<PathBuf>,
    /// Do not verify the server's certificate (keystonemiddleware's `insecure`).
    pub insecure: bool,
}

impl ClientTls {
    /// A reqwest builder that speaks TLS as configured: rustls, the system's trust store unless
    /// `ca_file` is given (then only its CAs), the client certificate if any.
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, TlsError> {
        // Redirects are not followed: each link goes only where it is configured to, and its
        // headers (tokens, the metadata signature) to no one else, nor over plain HTTP.
        let mut b = builder.use_rustls_tls().redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &self.ca_file {
            let certs = reqwest::Certificate::from_pem_bundle(&read(ca)?).map_err(|e| file_error(ca, e))?;
            if certs.is_empty() {
                return Err(file_error(ca, "no PEM certificate in it"));
            }
            b = b.tls_built_in_root_certs(false);
            for cert in certs {
                b = b.add_root_certificate(cert);
            }
        }
        let identity = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let mut pem = read(cert)?;
                pem.push(b'\n');
                pem.extend(read(key)?);
                Some((cert, pem))
            }
            (Some(cert), None) => Some((cert, read(cert)?)),
            (None, Some(key)) => return Err(file_error(key, "a private key without its certificate file")),
            (None, None) => None,
        };
        if let Some((path, pem)) = identity {
            b = b.identity(reqwest::Identity::from_pem(&pem).map_err(|e| file_error(path, e))?);
        }
        if self.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        Ok(b)
    }

    /// A client with these options and `timeout` per request.
    pub fn client(&self, timeout: Option<Duration>) -> Result<reqwest::Client, TlsError> {
        let mut b = reqwest::Client::builder();
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        self.apply(b)?.build().map_err(|e| TlsError::Config(format!("TLS client: {e}")))
    }
}

/// An error with its causes, `outer: cause: root cause`, so that a log line says why a
/// request failed (reqwest's own message stops at "error sending request for url (…)"; the
/// reason, such as "invalid peer certificate: UnknownIssuer", is in its sources). A cause
/// whose text its parent already contains is not repeated.
pub fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

/// A client that trusts no CA (every HTTPS request fails): what a link whose TLS options
/// cannot be used falls back to, so that nothing is sent with less verification than asked.
pub fn trusting_nothing(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .unwrap_or_default()
}

/// The API's own TLS (`[ssl]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// With it, clients must present a certificate this CA signed (mutual TLS).
    pub ca_file: Option<PathBuf>,
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in it"));
    }
    Ok(certs)
}

impl ServerTls {
    /// The acceptor, with every file read and checked now (a bad file stops the server at
    /// start, rather than serving plaintext or nothing).
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.ca_file {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certificates(ca)? {
                    roots.add(cert).map_err(|e| file_error(ca, e))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| file_error(ca, e))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let key = PrivateKeyDer::from_pem_file(&self.key_file).map_err(|e| file_error(&self.key_file, e))?;
        let mut config = builder
            .with_single_cert(certificates(&self.cert_file)?, key)
            .map_err(|e| file_error(&self.cert_file, e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// How long a client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP listener whose connections are served only once their TLS handshake succeeded.
/// Handshakes run concurrently (a thousand agents reconnecting at once do not queue behind
/// each other); failures are logged and their connections closed.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(1024);
        let accepting = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors, say: wait rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&acceptor, tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(Refusal::Probe)) => tracing::debug!(%peer, "connection closed before sending anything"),
                        Ok(Err(Refusal::Failed(e))) => {
                            tracing::warn!(%peer, error = %e, "TLS handshake failed; connection closed")
                        }
                        Err(_) => tracing::warn!(%peer, "TLS handshake timed out; connection closed"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local, accepting })
    }
}

/// Why a connection was not served.
enum Refusal {
    /// Closed or reset before its first byte: a TCP health check (haproxy's `check`, a
    /// readiness probe), not a client whose handshake failed.
    Probe,
    Failed(std::io::Error),
}

async fn handshake(acceptor: &TlsAcceptor, tcp: TcpStream) -> Result<TlsStream<TcpStream>, Refusal> {
    let _ = tcp.set_nodelay(true);
    match tcp.peek(&mut [0u8; 1]).await {
        Ok(0) => return Err(Refusal::Probe),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Err(Refusal::Probe),
        Err(e) => return Err(Refusal::Failed(e)),
        Ok(_) => {}
    }
    acceptor.accept(tcp).await.map_err(Refusal::Failed)
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accepting task is gone (only on drop): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        cause: Option<Box<Layer>>,
    }

    fn layer(text: &'static str, cause: Option<Layer>) -> Layer {
        Layer { text, cause: cause.map(Box::new) }
    }

    /// A redirect is handed back, not followed (its target here would be refused).
    #[tokio::test]
    async fn redirects_are_not_followed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let answering = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let _ = tcp.read(&mut [0u8; 4096]).await.unwrap();
            let reply = "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/stolen\r\nContent-Length: 0\r\n\r\n";
            tcp.write_all(reply.as_bytes()).await.unwrap();
        });
        let client = super::ClientTls::default().client(Some(std::time::Duration::from_secs(5))).unwrap();
        let resp = client.get(&url).header("X-Auth-Token", "secret").send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 302);
        answering.await.unwrap();
    }

    #[test]
    fn causes_are_joined_and_not_repeated() {
        let root = layer("invalid peer certificate: UnknownIssuer", None);
        let mid = layer("client error (Connect)", Some(root));
        let top = layer("error sending request for url (https://192.0.2.1/)", Some(mid));
        assert_eq!(
            super::with_causes(&top),
            "error sending request for url (https://192.0.2.1/): client error (Connect): \
             invalid peer certificate: UnknownIssuer"
        );
        let repeating = layer("keystone request failed: timed out", Some(layer("timed out", None)));
        assert_eq!(super::with_causes(&repeating), "keystone request failed: timed out");
    }
}
