//! Several real server processes on one PostgreSQL of their own, for tests and benchmarks of
//! faults: a server killed with SIGKILL (or stopped with SIGTERM) and started again, and the
//! database itself stopped and started. Everything is a child process of the caller's, killed
//! by PID and removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum HaError {
    #[error("{0}")]
    Setup(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

type Result<T> = std::result::Result<T, HaError>;

/// A port free on 127.0.0.1 now.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn wait_for_port(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn kill_child(child: &mut Child, signal: i32) {
    // SAFETY: kill(2) on the PID of a child this process started and has not reaped yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    }
}

/// A PostgreSQL cluster made for the caller (initdb in a fresh directory, trust auth, on a free
/// port of 127.0.0.1), run as the `postgres` user. Needs root and PostgreSQL's server binaries.
pub struct PgCluster {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
    uid: u32,
    gid: u32,
    child: Option<Child>,
}

/// The directory of PostgreSQL's server binaries (the newest installed), if any.
pub fn postgres_binaries() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists() && p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn user_ids(name: &str) -> Result<(u32, u32)> {
    let ids = |flag: &str| -> Result<u32> {
        let out = Command::new("id").arg(flag).arg(name).output()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| HaError::Setup(format!("no user {name} (id {flag})")))
    };
    Ok((ids("-u")?, ids("-g")?))
}

impl PgCluster {
    /// initdb and start. `prefix` names the directory under the system's temporary one.
    pub fn create(prefix: &str) -> Result<PgCluster> {
        let bin =
            postgres_binaries().ok_or_else(|| HaError::Setup("PostgreSQL's server binaries are missing".into()))?;
        let (uid, gid) = user_ids("postgres")?;
        let dir = std::env::temp_dir().join(format!("{prefix}-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
        let mut cluster = PgCluster { dir, bin, port: free_port()?, uid, gid, child: None };
        let out = cluster
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "-D"])
            .arg(cluster.data())
            .output()?;
        if !out.status.success() {
            return Err(HaError::Setup(format!("initdb: {}", String::from_utf8_lossy(&out.stderr))));
        }
        cluster.start()?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(self.bin.join(program));
        c.uid(self.uid).gid(self.gid).current_dir(&self.dir).stdin(Stdio::null());
        c
    }

    /// The connection string of database `db` (`postgres` always exists).
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Start the server (after [`PgCluster::stop`]); returns once it accepts connections.
    pub fn start(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("postgres.log"))?;
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c"])
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            .args(["-c", "fsync=off", "-c", "max_connections=300", "-c", "shared_buffers=64MB"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        if !wait_for_port(self.port, Duration::from_secs(30)) {
            return Err(HaError::Setup(format!("PostgreSQL did not start; see {}", self.dir.display())));
        }
        // Accepting TCP is not yet accepting sessions: wait for pg_isready.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(HaError::Setup("PostgreSQL does not accept sessions".into()))
    }

    /// Stop the server as an operator's restart does (fast shutdown: sessions are ended).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_child(&mut child, libc::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            kill_child(&mut child, libc::SIGKILL);
            let _ = child.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Create database `name` (through `psql`-less SQL: the caller's client connects to it).
    pub fn create_database(&self, name: &str) -> Result<()> {
        let out = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", name])
            .output()?;
        if !out.status.success() {
            return Err(HaError::Setup(format!("createdb {name}: {}", String::from_utf8_lossy(&out.stderr))));
        }
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_child(&mut child, libc::SIGKILL);
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One `neutrino server` process on 127.0.0.1, restartable on its port.
pub struct ServerProcess {
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    pub port: u16,
    child: Option<Child>,
    /// Times it was started.
    pub starts: u32,
}

impl ServerProcess {
    /// Write its config (`extra` is appended: INI sections of the caller's) into `dir` and
    /// start it; returns once it listens.
    pub fn start(binary: &Path, dir: &Path, name: &str, connection: &str, extra: &str) -> Result<ServerProcess> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let config = dir.join(format!("{name}.conf"));
        std::fs::write(
            &config,
            format!(
                "[DEFAULT]\nbind_host = 127.0.0.1\nbind_port = {port}\nhost = {name}\n\
                 graceful_shutdown_timeout = 10\n\n[database]\nconnection = {connection}\n\n{extra}\n"
            ),
        )?;
        let mut s = ServerProcess {
            binary: binary.to_path_buf(),
            config,
            log: dir.join(format!("{name}.log")),
            port,
            child: None,
            starts: 0,
        };
        s.spawn()?;
        if !s.wait_listening(Duration::from_secs(60)) {
            return Err(HaError::Setup(format!("{name} did not start; see {}", s.log.display())));
        }
        Ok(s)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Start it again (after a kill); does not wait for it to listen.
    pub fn spawn(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new(&self.binary)
            .arg("server")
            .arg("--config-file")
            .arg(&self.config)
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    pub fn wait_listening(&self, within: Duration) -> bool {
        wait_for_port(self.port, within)
    }

    /// SIGKILL: the process ends at once, mid-request.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_child(&mut child, libc::SIGKILL);
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for it to exit (at most `within`, then SIGKILL). Returns how long it
    /// took.
    pub fn terminate(&mut self, within: Duration) -> Duration {
        let started = Instant::now();
        if let Some(mut child) = self.child.take() {
            kill_child(&mut child, libc::SIGTERM);
            while started.elapsed() < within {
                if let Ok(Some(_)) = child.try_wait() {
                    return started.elapsed();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            kill_child(&mut child, libc::SIGKILL);
            let _ = child.wait();
        }
        started.elapsed()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Lines of its log that show a panic or an internal error.
    pub fn log_problems(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("panicked") || (l.contains("request failed") && l.contains("error=500")))
            .map(String::from)
            .collect()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
