//! Sockets the agent's own servers listen on, made by a thread inside a namespace (see
//! [`crate::Routers::in_namespace`]): they stay in the namespace they were made in.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

fn set_int(socket: &impl AsRawFd, level: libc::c_int, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the value is a c_int that lives for the call.
    let done = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            option,
            std::ptr::addr_of!(value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Only traffic of `device` reaches the socket, and what it sends leaves by `device`.
fn bind_to_device(socket: &impl AsRawFd, device: &str) -> io::Result<()> {
    // SAFETY: the name's bytes live for the call; the length excludes any NUL.
    let done = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            device.as_ptr().cast(),
            device.len() as libc::socklen_t,
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A DHCPv4 server's socket on `device`: bound to port 67 of every address (requests come to
/// the broadcast address), allowed to broadcast, non-blocking. Its UDP checksums are left
/// out (0, which RFC 768 allows): a veth computes them late, and clients reading raw frames
/// (ISC dhclient) would see them unfilled and drop the reply.
pub fn dhcp_v4_server(device: &str) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 67)))?;
    socket.set_broadcast(true)?;
    bind_to_device(&socket, device)?;
    set_int(&socket, libc::SOL_SOCKET, libc::SO_NO_CHECK, 1)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// The metadata proxy's listening socket: `address:80` (169.254.169.254), non-blocking.
pub fn metadata_listener(address: std::net::IpAddr) -> io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(SocketAddr::from((address, 80)))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The DNS responder's socket: UDP port 53 of every address of the namespace, non-blocking.
pub fn dns_server() -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 53)))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}
