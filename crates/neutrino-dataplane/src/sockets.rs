//! Sockets the agent's own servers listen on, made by a thread inside a namespace (see
//! [`crate::Routers::in_namespace`]): they stay in the namespace they were made in.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd};

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

/// The metadata proxy's IPv6 listening socket: `[fe80::a9fe:a9fe]:80` on `device`
/// (link-local, so bound in the device's scope), non-blocking.
pub fn metadata_listener_v6(address: Ipv6Addr, device: &str) -> io::Result<std::net::TcpListener> {
    let index = device_index(device)?;
    let listener = std::net::TcpListener::bind(std::net::SocketAddrV6::new(address, 80, 0, index))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The DNS responder's socket: UDP port 53 of every address of the namespace, non-blocking.
pub fn dns_server() -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 53)))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// The index of `device` in the calling thread's namespace.
fn device_index(device: &str) -> io::Result<u32> {
    let name = std::ffi::CString::new(device).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the name is a NUL-terminated string that lives for the call.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        index => Ok(index),
    }
}

/// Join the IPv6 multicast group `group` on the device with `index`.
fn join_v6(socket: &impl AsRawFd, group: Ipv6Addr, index: u32) -> io::Result<()> {
    let request =
        libc::ipv6_mreq { ipv6mr_multiaddr: libc::in6_addr { s6_addr: group.octets() }, ipv6mr_interface: index };
    // SAFETY: the request lives for the call and has the size given.
    let done = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_ADD_MEMBERSHIP,
            std::ptr::addr_of!(request).cast(),
            std::mem::size_of::<libc::ipv6_mreq>() as libc::socklen_t,
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// All DHCPv6 relay agents and servers (RFC 8415).
pub const ALL_DHCP_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// All routers (router solicitations come here).
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// A DHCPv6 server's socket on `device`: UDP port 547 of every IPv6 address, in the group of
/// all DHCP servers on that device, non-blocking. Returns the device's index too (the scope
/// of the link-local addresses it answers).
pub fn dhcp_v6_server(device: &str) -> io::Result<(UdpSocket, u32)> {
    let index = device_index(device)?;
    let socket = UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 547)))?;
    bind_to_device(&socket, device)?;
    join_v6(&socket, ALL_DHCP_SERVERS, index)?;
    socket.set_nonblocking(true)?;
    Ok((socket, index))
}

/// The DNS responder's TCP listener: port 53 of every address, IPv4 and IPv6 (one socket,
/// not IPv6-only), non-blocking.
pub fn dns_tcp_listener() -> io::Result<std::net::TcpListener> {
    // SAFETY: a plain socket call; the descriptor is owned by the listener made from it below.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, libc::IPPROTO_TCP) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new socket nothing else owns.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    set_int(&listener, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    set_int(&listener, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0)?;
    bind_v6(&listener, Ipv6Addr::UNSPECIFIED, 53)?;
    // SAFETY: listen on the socket owned above.
    if unsafe { libc::listen(listener.as_raw_fd(), 64) } != 0 {
        return Err(io::Error::last_os_error());
    }
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The DNS responder's IPv6 socket: UDP port 53 of every IPv6 address, non-blocking.
pub fn dns_server_v6() -> io::Result<UdpSocket> {
    // SAFETY: a plain socket call; the descriptor is owned by the socket made from it below.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::IPPROTO_UDP) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new socket nothing else owns.
    let socket = unsafe { UdpSocket::from_raw_fd(fd) };
    // IPv6 only: the IPv4 socket answers IPv4 (its replies keep their IPv4 form).
    set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    bind_v6(&socket, Ipv6Addr::UNSPECIFIED, 53)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bind_v6(socket: &impl AsRawFd, address: Ipv6Addr, port: u16) -> io::Result<()> {
    let sa = libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: port.to_be(),
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr { s6_addr: address.octets() },
        sin6_scope_id: 0,
    };
    // SAFETY: the address lives for the call and has the size given.
    let done = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            std::ptr::addr_of!(sa).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A router leg's socket for router advertisements: raw ICMPv6 on `device`, hop limit 255 (a
/// host takes no advertisement with less), receiving only router solicitations (to the group
/// of all routers, joined), non-blocking. It is handed out as a `UdpSocket` (datagrams with
/// IPv6 addresses: `send_to` and `recv_from` are the same calls); the kernel fills the ICMPv6
/// checksum. Returns the device's index too.
pub fn router_advert_socket(device: &str) -> io::Result<(UdpSocket, u32)> {
    let index = device_index(device)?;
    // SAFETY: a plain socket call; the descriptor is owned by the socket made from it below.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_ICMPV6) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new socket nothing else owns.
    let socket = unsafe { UdpSocket::from_raw_fd(fd) };
    bind_to_device(&socket, device)?;
    set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, 255)?;
    set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, 255)?;
    set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, index as libc::c_int)?;
    set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, 0)?;
    // ICMP6_FILTER: block every type but router solicitation (133).
    let mut filter = [u32::MAX; 8];
    filter[133 / 32] &= !(1u32 << (133 % 32));
    // SAFETY: the filter lives for the call and has the size given.
    let done = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_ICMPV6,
            1, // ICMP6_FILTER
            filter.as_ptr().cast(),
            std::mem::size_of_val(&filter) as libc::socklen_t,
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    join_v6(&socket, ALL_ROUTERS, index)?;
    socket.set_nonblocking(true)?;
    Ok((socket, index))
}
