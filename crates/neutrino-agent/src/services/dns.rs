//! The internal DNS responder (`dns-integration` inside the cloud): on the DHCP port's address
//! in each network's namespace, it answers A, AAAA and PTR queries for the names of the
//! network's ports (their `dns_assignment`: `dns_name`, or `host-<address>`, in the DHCP
//! domain), and passes other queries to the upstream resolvers (`[DEFAULT]
//! dnsmasq_dns_servers`), or refuses them when there are none. Over UDP and TCP.

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How long answers from the port table may be cached by clients.
const TTL: u32 = 60;
/// Queries forwarded at once per network; more are dropped (their clients ask again), so a VM
/// asking for unknown names in a loop cannot use up the agent's sockets.
const FORWARDS_IN_FLIGHT: usize = 64;

/// A network's names: each port's fully qualified name (lower case, no final dot) with its
/// addresses, and each address with its name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub forward: HashMap<String, Vec<IpAddr>>,
    pub reverse: HashMap<IpAddr, String>,
}

impl Names {
    /// Add a port's name (`hostname` in `domain`) for its addresses.
    pub fn add(&mut self, hostname: &str, domain: &str, addresses: &[IpAddr]) {
        let fqdn = format!("{}.{}", hostname.to_ascii_lowercase(), domain.trim_end_matches('.').to_ascii_lowercase());
        self.forward.entry(fqdn.clone()).or_default().extend(addresses);
        for ip in addresses {
            self.reverse.insert(*ip, fqdn.clone());
        }
    }
}

/// What to do with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Send these bytes back.
    Answer(Vec<u8>),
    /// Not ours: ask the upstream resolvers.
    Forward,
}

/// The name a query asks for, as the table keys it: a bare host name is taken in `domain`.
fn key(name: &Name, domain: &str) -> String {
    let text = name.to_ascii().trim_end_matches('.').to_ascii_lowercase();
    if text.contains('.') {
        text
    } else {
        format!("{text}.{}", domain.trim_end_matches('.').to_ascii_lowercase())
    }
}

/// The address a reverse name (`5.2.0.192.in-addr.arpa.`) stands for (a whole address only).
fn reverse_address(name: &Name) -> Option<IpAddr> {
    let net = name.parse_arpa_name().ok()?;
    (net.prefix_len() == net.max_prefix_len()).then(|| net.addr())
}

/// Answer a query from the network's names, or say it is to be forwarded.
pub fn answer(query: &[u8], names: &Names, domain: &str) -> Option<Reply> {
    let request = Message::from_bytes(query).ok()?;
    if request.message_type() != MessageType::Query || request.op_code() != OpCode::Query {
        return None;
    }
    let question = request.queries().first()?.clone();
    let name = question.name().clone();
    let mut records = Vec::new();
    let ours = match question.query_type() {
        RecordType::A | RecordType::AAAA => {
            let wanted_v4 = question.query_type() == RecordType::A;
            match names.forward.get(&key(&name, domain)) {
                Some(addresses) => {
                    for ip in addresses {
                        match ip {
                            IpAddr::V4(v4) if wanted_v4 => {
                                records.push(Record::from_rdata(name.clone(), TTL, RData::A(A(*v4))))
                            }
                            IpAddr::V6(v6) if !wanted_v4 => {
                                records.push(Record::from_rdata(name.clone(), TTL, RData::AAAA(AAAA(*v6))))
                            }
                            _ => {}
                        }
                    }
                    true
                }
                None => false,
            }
        }
        RecordType::PTR => match reverse_address(&name).and_then(|ip| names.reverse.get(&ip)) {
            Some(fqdn) => {
                let target = Name::from_ascii(format!("{fqdn}.")).ok()?;
                records.push(Record::from_rdata(name.clone(), TTL, RData::PTR(PTR(target))));
                true
            }
            None => false,
        },
        _ => false,
    };
    if !ours {
        return Some(Reply::Forward);
    }
    let mut response = Message::new();
    response
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_authoritative(true)
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .set_response_code(ResponseCode::NoError)
        .add_query(question);
    response.add_answers(records);
    response.to_bytes().ok().map(Reply::Answer)
}

/// A REFUSED answer to `query` (no upstream resolver).
fn refused(query: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_bytes(query).ok()?;
    let mut response = Message::error_msg(request.id(), request.op_code(), ResponseCode::Refused);
    response.add_queries(request.queries().to_vec());
    response.to_bytes().ok()
}

/// Ask the upstream resolvers in turn (from the agent's own namespace) and relay the answer.
async fn forward(query: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    for server in upstream {
        let bind: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let Ok(socket) = tokio::net::UdpSocket::bind(bind).await else { continue };
        if socket.send_to(query, server).await.is_err() {
            continue;
        }
        // Only the server asked, with the query's id, answers (a forged datagram is dropped).
        let id = query.get(..2)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let mut buf = vec![0u8; 4096];
        while let Ok(Ok((len, from))) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
            if from == *server && buf.get(..2) == Some(id) {
                buf.truncate(len);
                return Some(buf);
            }
        }
    }
    None
}

/// What a query gets, from the names or the upstream resolvers (none: nothing is sent back).
async fn reply(query: &[u8], names: &Names, domain: &str, upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    match answer(query, names, domain)? {
        Reply::Answer(bytes) => Some(bytes),
        Reply::Forward => upstream_reply(query, upstream).await,
    }
}

/// The upstream resolvers' answer to a query that is not ours (REFUSED without any).
async fn upstream_reply(query: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    if upstream.is_empty() {
        refused(query)
    } else {
        forward(query, upstream).await
    }
}

/// TCP connections served at once per network (more are closed at once), and how long one
/// may stay idle.
const TCP_CONNECTIONS: usize = 64;
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Answer queries over TCP (RFC 7766: each message after its 2-byte length, several per
/// connection) on `listener` (in the network's namespace) until it fails.
pub(crate) async fn serve_tcp(
    network_id: String,
    listener: tokio::net::TcpListener,
    tables: super::Tables,
    domain: String,
    upstream: std::sync::Arc<Vec<SocketAddr>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connections = std::sync::Arc::new(tokio::sync::Semaphore::new(TCP_CONNECTIONS));
    loop {
        let (mut stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(network = %network_id, error = %e, "DNS TCP listener failed");
                return;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else { continue };
        let (tables, network_id, domain, upstream) =
            (tables.clone(), network_id.clone(), domain.clone(), upstream.clone());
        tokio::spawn(async move {
            let _permit = permit;
            loop {
                let mut len = [0u8; 2];
                if !matches!(tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await, Ok(Ok(_))) {
                    return;
                }
                let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
                if !matches!(tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query)).await, Ok(Ok(_))) {
                    return;
                }
                let table = super::table_of(&tables, &network_id).unwrap_or_default();
                let Some(bytes) = reply(&query, &table.names, &domain, &upstream).await else { return };
                let Ok(size) = u16::try_from(bytes.len()) else { return };
                let framed = [&size.to_be_bytes()[..], &bytes].concat();
                if stream.write_all(&framed).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Answer queries on `socket` (in the network's namespace) until it fails.
pub(crate) async fn serve(
    network_id: String,
    socket: tokio::net::UdpSocket,
    tables: super::Tables,
    domain: String,
    upstream: std::sync::Arc<Vec<SocketAddr>>,
) {
    let socket = std::sync::Arc::new(socket);
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(FORWARDS_IN_FLIGHT));
    let mut buf = vec![0u8; 4096];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                tracing::warn!(network = %network_id, error = %e, "DNS socket failed");
                return;
            }
        };
        let query = buf[..len].to_vec();
        let table = super::table_of(&tables, &network_id).unwrap_or_default();
        match answer(&query, &table.names, &domain) {
            Some(Reply::Answer(bytes)) => {
                let _ = socket.send_to(&bytes, from).await;
            }
            Some(Reply::Forward) => {
                let Ok(permit) = in_flight.clone().try_acquire_owned() else { continue };
                let (socket, upstream) = (socket.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Some(bytes) = upstream_reply(&query, &upstream).await {
                        let _ = socket.send_to(&bytes, from).await;
                    }
                });
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn names() -> Names {
        let mut n = Names::default();
        n.add("web-1", "openstacklocal.", &["192.0.2.5".parse().unwrap(), "2001:db8::5".parse().unwrap()]);
        n
    }

    fn query(name: &str, kind: RecordType) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(7).set_recursion_desired(true).add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        m.to_bytes().unwrap()
    }

    fn decode(reply: Option<Reply>) -> Message {
        match reply {
            Some(Reply::Answer(bytes)) => Message::from_bytes(&bytes).unwrap(),
            other => panic!("not answered: {other:?}"),
        }
    }

    #[test]
    fn port_names_are_answered_and_others_forwarded() {
        let a = decode(answer(&query("web-1.openstacklocal.", RecordType::A), &names(), "openstacklocal"));
        assert_eq!(a.id(), 7);
        assert_eq!(a.answers().len(), 1);
        assert_eq!(a.answers()[0].data(), &RData::A(A("192.0.2.5".parse().unwrap())));
        // A bare host name is taken in the domain; AAAA gets the IPv6 address.
        let aaaa = decode(answer(&query("WEB-1.", RecordType::AAAA), &names(), "openstacklocal"));
        assert_eq!(aaaa.answers().len(), 1);
        let ptr = decode(answer(&query("5.2.0.192.in-addr.arpa.", RecordType::PTR), &names(), "openstacklocal"));
        assert_eq!(ptr.answers()[0].data(), &RData::PTR(PTR(Name::from_ascii("web-1.openstacklocal.").unwrap())));
        let v6 = "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.";
        assert_eq!(decode(answer(&query(v6, RecordType::PTR), &names(), "openstacklocal")).answers().len(), 1);
        assert_eq!(answer(&query("example.org.", RecordType::A), &names(), "openstacklocal"), Some(Reply::Forward));
        assert!(refused(&query("example.org.", RecordType::A)).is_some());
    }
}
