//! Echo probes (ICMP echo requests) to other hosts' underlay addresses, from the calling
//! thread's network namespace. A host's kernel answers them, so a host counts as alive while
//! its kernel and its underlay link are, whatever its agent is doing (an agent restarting
//! must not look like a dead host).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// A raw ICMP socket that sends echo requests with one identifier and receives the replies
/// to them (needs `CAP_NET_RAW`).
pub struct EchoSocket {
    fd: AsyncFd<OwnedFd>,
    id: u16,
}

impl EchoSocket {
    /// Open the socket; `id` tells our replies from those to anyone else's pings.
    pub fn open(id: u16) -> io::Result<EchoSocket> {
        // SAFETY: socket has no memory preconditions; the fd is owned right after.
        let fd = unsafe {
            libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, libc::IPPROTO_ICMP)
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new, valid descriptor that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the AsyncFd owns the descriptor, so it stays open while it is registered.
        let fd = unsafe { AsyncFd::register(owned)? };
        Ok(EchoSocket { fd, id })
    }

    /// Send one echo request to `to` with sequence number `seq`.
    pub fn send(&self, to: Ipv4Addr, seq: u16) -> io::Result<()> {
        let packet = echo_request(self.id, seq);
        // SAFETY: sockaddr_in is plain data; all zeros is a valid value.
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(to).to_be();
        // SAFETY: the buffer and the address are valid for the lengths given.
        let sent = unsafe {
            libc::sendto(
                self.fd.get_ref().as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                std::ptr::addr_of!(addr).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next echo reply to one of our requests: who answered, and the sequence number.
    pub async fn recv(&self) -> io::Result<(Ipv4Addr, u16)> {
        let mut buf = [0u8; 1500];
        loop {
            let mut guard = self.fd.readable().await?;
            let read = guard.try_io(|fd| {
                // SAFETY: the buffer is valid for its length.
                let n = unsafe { libc::recv(fd.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            let n = match read {
                Ok(result) => result?,
                Err(_would_block) => continue,
            };
            if let Some(reply) = parse_reply(&buf[..n], self.id) {
                return Ok(reply);
            }
        }
    }
}

/// An ICMP echo request (type 8) with an 8-byte payload, its checksum set.
fn echo_request(id: u16, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = 8;
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(b"neutrino");
    let sum = checksum(&p);
    p[2..4].copy_from_slice(&sum.to_be_bytes());
    p
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A raw socket reads whole IPv4 packets: an echo reply (type 0) with our identifier gives
/// its source and sequence number.
fn parse_reply(packet: &[u8], id: u16) -> Option<(Ipv4Addr, u16)> {
    let header = usize::from(packet.first()? & 0x0f) * 4;
    let icmp = packet.get(header..)?;
    if packet.len() < 20 || icmp.len() < 8 || icmp[0] != 0 || u16::from_be_bytes([icmp[4], icmp[5]]) != id {
        return None;
    }
    let source = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    Some((source, u16::from_be_bytes([icmp[6], icmp[7]])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_checksum_to_zero_and_only_our_replies_parse() {
        let request = echo_request(0x1234, 7);
        assert_eq!(checksum(&request), 0, "a packet with its checksum sums to zero");
        let mut reply = vec![0x45u8, 0, 0, 36, 0, 0, 0, 0, 64, 1, 0, 0, 192, 0, 2, 11, 192, 0, 2, 10];
        reply.extend_from_slice(&request);
        reply[20] = 0;
        assert_eq!(parse_reply(&reply, 0x1234), Some((Ipv4Addr::new(192, 0, 2, 11), 7)));
        assert_eq!(parse_reply(&reply, 0x4321), None, "someone else's ping");
        reply[20] = 8;
        assert_eq!(parse_reply(&reply, 0x1234), None, "a request is no reply");
    }

    #[tokio::test]
    #[ignore = "needs root (CI runs it)"]
    async fn loopback_answers_an_echo() {
        let socket = EchoSocket::open(0x4e4e).unwrap();
        socket.send(Ipv4Addr::LOCALHOST, 1).unwrap();
        let reply = tokio::time::timeout(std::time::Duration::from_secs(2), socket.recv()).await;
        assert_eq!(reply.unwrap().unwrap(), (Ipv4Addr::LOCALHOST, 1));
    }
}
