//! Network namespaces: named ones under `/run/netns` (as `ip netns` makes them), short-lived
//! threads that work inside one, and commands that run in one.
//!
//! A thread's network namespace is what its new sockets (netlink, packet), its child
//! processes and its reads and writes of `/proc/sys/net` belong to. So work in another
//! namespace goes to a thread of its own that enters it first and ends with the work: the
//! switch never leaks into a thread of the runtime.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use crate::{DataPlaneError, Result};

/// Where named network namespaces are mounted (iproute2's `NETNS_RUN_DIR`).
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// `statfs` type of the namespace file system (`NSFS_MAGIC`).
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// Runs `f` on a new thread, in the network namespace `netns` when one is given (else in the
/// creating thread's). The thread ends with `f`.
pub(crate) async fn on_thread<T, F>(netns: Option<Arc<File>>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("neutrino-netns".into()).spawn(move || {
        let entered = match &netns {
            Some(ns) => enter(ns),
            None => Ok(()),
        };
        let _ = tx.send(entered.and_then(|()| f()));
    })?;
    rx.await.map_err(|_| DataPlaneError::Io(io::Error::other("a namespace thread panicked")))?
}

/// Moves the calling thread into the network namespace `netns`.
fn enter(netns: &File) -> Result<()> {
    // SAFETY: setns on an open namespace fd changes only the calling thread.
    if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error().into());
    }
    Ok(())
}

/// A command whose process runs in the network namespace `netns` (the child enters it between
/// fork and exec). `netns` must stay open until the command is spawned.
pub(crate) fn command_in(netns: &File, program: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    let fd = netns.as_raw_fd();
    // SAFETY: between fork and exec only setns runs, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Opens an rtnetlink connection (strict checking, as the host's) inside `netns` and runs it
/// on the current tokio runtime. The socket stays in that namespace for good.
pub(crate) async fn netlink_in(netns: Arc<File>) -> Result<(rtnetlink::Handle, tokio::task::JoinHandle<()>)> {
    let runtime = tokio::runtime::Handle::current();
    let (connection, handle) = on_thread(Some(netns), move || {
        // The socket registers with the runtime's reactor when it is created.
        let _entered = runtime.enter();
        let (connection, handle, _) = rtnetlink::new_connection_with_strict_check()?;
        Ok((connection, handle))
    })
    .await?;
    Ok((handle, tokio::spawn(connection)))
}

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a namespace path").into())
}

/// The identity (device and inode) of the namespace mounted at `path`, or `None` when there is
/// none: no file, or a file nothing is mounted on (left by an agent that died half-way, or by
/// a mount namespace that went away).
pub(crate) fn identity(path: &Path) -> Option<(u64, u64)> {
    let c = c_path(path).ok()?;
    // SAFETY: statfs writes into the zeroed struct we own; the path is NUL-terminated.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut fs) } != 0 || fs.f_type as i64 != NSFS_MAGIC {
        return None;
    }
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.dev(), meta.ino()))
}

/// The identity of an open namespace file, to compare with [`identity`].
pub(crate) fn identity_of(file: &File) -> Result<(u64, u64)> {
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// Creates the named network namespace `path` as `ip netns add` does: the file, then a
/// thread that unshares a new network namespace and bind-mounts it onto the file (the mount
/// is what keeps the namespace alive). A leftover file without a namespace is mounted onto.
/// No mount namespace is made.
pub(crate) async fn create(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if identity(path).is_some() {
                return Ok(());
            }
        }
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display())).into()),
    }
    let target = c_path(path)?;
    on_thread(None, move || {
        // SAFETY: unshare(CLONE_NEWNET) changes only this thread, which ends after the mount.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error().into());
        }
        let source = c"/proc/thread-self/ns/net";
        let fstype = c"none";
        // SAFETY: all strings are NUL-terminated and outlive the call; no data argument.
        let mounted =
            unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), libc::MS_BIND, std::ptr::null()) };
        if mounted != 0 {
            return Err(io::Error::last_os_error().into());
        }
        Ok(())
    })
    .await
    .inspect_err(|_| {
        let _ = std::fs::remove_file(path);
    })
}

/// Deletes the named network namespace `path` as `ip netns delete` does: a lazy unmount, then
/// the file. The namespace goes when nothing else holds it (sockets, processes, open files).
/// A missing one is success.
pub(crate) fn remove(path: &Path) -> Result<()> {
    let c = c_path(path)?;
    // SAFETY: the path is NUL-terminated.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = io::Error::last_os_error();
        // EINVAL: nothing mounted there (a leftover file); ENOENT: no file.
        if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) {
            return Err(io::Error::new(e.kind(), format!("umount {}: {e}", path.display())).into());
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display())).into()),
    }
}

/// Sets each `(key, value)` under `/proc/sys/net` that differs, and says how many it wrote.
/// Keys of a kernel without IPv6 are missing, which is fine. It acts in the calling thread's
/// network namespace: run it on a thread in the right one ([`on_thread`]).
pub(crate) fn converge_sysctls(settings: &[(&str, &str)]) -> Result<usize> {
    let mut written = 0;
    for (key, value) in settings {
        let path = format!("/proc/sys/net/{key}");
        match std::fs::read_to_string(&path) {
            Ok(now) if now.trim() == *value => {}
            Ok(_) => {
                std::fs::write(&path, value).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
                written += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{path}: {e}")).into()),
        }
    }
    Ok(written)
}
