//! The metadata proxy: 169.254.169.254 answered on the VM's own host and passed on to Nova's
//! metadata API with Neutron's headers. The instance is the local port whose fixed IP the
//! request comes from, on this network: port security's anti-spoofing keeps a VM from sending
//! from another's address, as with Neutron (so a port without port security, or with another
//! VM's address as an allowed address pair, can ask as that VM). Nova's answers pass through;
//! Nova unreachable is a 503.

use super::{table_of, Tables};
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// `[DEFAULT] nova_metadata_protocol`, `nova_metadata_host`, `nova_metadata_port`,
/// `metadata_proxy_shared_secret`, and for HTTPS `auth_ca_cert`, `nova_client_cert`,
/// `nova_client_priv_key` and `nova_metadata_insecure`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataSettings {
    /// `http://host:port` or `https://host:port`.
    pub nova_url: String,
    pub shared_secret: String,
    pub tls: neutrino_tls::ClientTls,
}

pub struct Proxy {
    settings: MetadataSettings,
    client: reqwest::Client,
}

impl Proxy {
    pub fn new(settings: MetadataSettings) -> Proxy {
        // The options were checked when the configuration was read; should a file have gone
        // since, the client trusts no CA at all (HTTPS to Nova fails, none is downgraded).
        let client = settings.tls.client(Some(Duration::from_secs(30))).unwrap_or_else(|e| {
            tracing::error!(error = %e, "metadata proxy TLS options: Nova over HTTPS will fail");
            neutrino_tls::trusting_nothing(Duration::from_secs(30))
        });
        Proxy { settings, client }
    }
}

/// `X-Instance-ID-Signature`: the hex HMAC-SHA256 of the instance id, keyed with the secret.
pub fn sign(secret: &str, instance_id: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(instance_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub(crate) async fn serve(network_id: String, listener: tokio::net::TcpListener, tables: Tables, proxy: Arc<Proxy>) {
    let network = network_id.clone();
    let app = axum::Router::new().fallback(
        move |ConnectInfo(peer): ConnectInfo<SocketAddr>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (tables, proxy, network) = (tables.clone(), proxy.clone(), network.clone());
            async move { forward(&tables, &proxy, &network, peer, method, uri, headers, body).await }
        },
    );
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, service).await {
        tracing::warn!(network = %network_id, error = %e, "metadata proxy stopped");
    }
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    tables: &Tables,
    proxy: &Proxy,
    network_id: &str,
    peer: SocketAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let instance = table_of(tables, network_id).and_then(|t| t.instances.get(&peer.ip()).cloned());
    let Some(instance) = instance else {
        tracing::info!(network = %network_id, from = %peer.ip(), "metadata request from an address of no local port");
        return (StatusCode::NOT_FOUND, "no instance has this address here\n").into_response();
    };
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("{}{path}", proxy.settings.nova_url.trim_end_matches('/'));
    let mut request = proxy
        .client
        .request(method, &url)
        .header("X-Forwarded-For", peer.ip().to_string())
        .header("X-Instance-ID", &instance.device_id)
        .header("X-Tenant-ID", &instance.project_id)
        .header("X-Instance-ID-Signature", sign(&proxy.settings.shared_secret, &instance.device_id));
    for name in ["accept", "content-type"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value);
        }
    }
    match request.body(body).send().await {
        Ok(reply) => {
            let status = reply.status();
            let content_type = reply.headers().get("content-type").cloned();
            let bytes = reply.bytes().await.unwrap_or_default();
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            if let Some(value) = content_type {
                response.headers_mut().insert("content-type", value);
            }
            response
        }
        Err(e) => {
            tracing::warn!(network = %network_id, %url, error = %neutrino_tls::with_causes(&e), "Nova's metadata API is unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "the metadata service is unavailable\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signature_is_neutrons_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            super::sign("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
