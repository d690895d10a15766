//! Shared helpers: in-process servers on each backend.

use neutrino_domain::segments::TypeDriverConfig;
use neutrino_lab::ApiClient;
use neutrino_server::{App, ServerConfig};
use std::sync::atomic::{AtomicUsize, Ordering};

pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    pub api: ApiClient,
    pub base: String,
    /// A handle on the server's database (the same pool), for checks from the tables.
    pub store: neutrino_store::Store,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: Option<TempDir>,
    pg_db: Option<String>,
    /// The database's connection string (for a second server on it).
    pub connection: String,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(db) = self.pg_db.take() {
            // Best effort: drop the per-test database from a fresh thread and runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                rt.block_on(async {
                    use sqlx::Connection;
                    let mut c = sqlx::PgConnection::connect(&pg_admin_url()).await.ok()?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut c).await.ok()
                })
            })
            .join();
        }
    }
}

pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Held by the tests that load the machine most (the namespace e2e, the HA torture), so that
/// they never run at the same time on a 2-core machine.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn unique(name: &str) -> String {
    format!("{name}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

pub fn pg_admin_url() -> String {
    std::env::var("NEUTRINO_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh database for one test. PostgreSQL tests are `#[ignore]`d (run them with
/// `--include-ignored`, as `scripts/test` does); once asked for, PostgreSQL must be there.
async fn pg_database() -> Option<(String, String)> {
    use sqlx::Connection;
    let admin = pg_admin_url();
    let mut c = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) => panic!("PostgreSQL at {admin} (NEUTRINO_TEST_PG) is needed by this test: {e}"),
    };
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin.clone());
    let template = migrated_template(&mut c, &base).await;
    let db = unique("neutrino_test");
    sqlx::query(&format!("CREATE DATABASE {db} TEMPLATE {template}"))
        .execute(&mut c)
        .await
        .expect("create test database");
    Some((format!("{base}/{db}"), db))
}

async fn template_exists(c: &mut sqlx::PgConnection, name: &str) -> bool {
    sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name.to_string())
        .fetch_optional(c)
        .await
        .expect("look for the template")
        .is_some()
}

/// A database migrated to this build's schema, that test databases are copied from (made once
/// per schema version: migrated under a temporary name, then renamed, so that test binaries
/// running at once never copy a half-migrated one). Nobody stays connected to it.
async fn migrated_template(c: &mut sqlx::PgConnection, base: &str) -> String {
    static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let name = TEMPLATE
        .get_or_init(|| async {
            format!("neutrino_template_{}", neutrino_store::Store::schema_version())
                .chars()
                .map(|ch| if ch.is_ascii_alphanumeric() { ch.to_ascii_lowercase() } else { '_' })
                .take(63)
                .collect()
        })
        .await
        .clone();
    if template_exists(&mut *c, &name).await {
        return name;
    }
    // Templates of other schema versions are of no more use.
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'neutrino\\_template\\_%' AND datname <> $1 \
         AND datname NOT LIKE 'neutrino\\_template\\_new%'",
    )
    .bind(name.clone())
    .fetch_all(&mut *c)
    .await
    .unwrap_or_default();
    for old in stale {
        sqlx::query(&format!("DROP DATABASE IF EXISTS {old}")).execute(&mut *c).await.ok();
    }
    let scratch = unique("neutrino_template_new");
    sqlx::query(&format!("CREATE DATABASE {scratch}")).execute(&mut *c).await.expect("create the template");
    let store = neutrino_store::Store::connect(&format!("{base}/{scratch}"), 2).await.expect("migrate the template");
    store.close().await;
    drop(store);
    let renamed = sqlx::query(&format!("ALTER DATABASE {scratch} RENAME TO {name}")).execute(&mut *c).await;
    if renamed.is_err() {
        // Another test binary made it first.
        sqlx::query(&format!("DROP DATABASE IF EXISTS {scratch} WITH (FORCE)")).execute(&mut *c).await.ok();
        assert!(template_exists(&mut *c, &name).await, "the template {name}: {renamed:?}");
    }
    name
}

pub fn default_config() -> ServerConfig {
    ServerConfig { type_drivers: TypeDriverConfig::default(), ..ServerConfig::default() }
}

/// Start a server on 127.0.0.1 (random port) with `config` on `backend`.
pub async fn start(backend: Backend, mut config: ServerConfig) -> Option<TestServer> {
    let (connection, dir, pg_db) = match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(unique("neutrino-api"));
            std::fs::create_dir_all(&dir).unwrap();
            (format!("sqlite:///{}/db.sqlite", dir.display()), Some(TempDir(dir)), None)
        }
        Backend::Postgres => {
            let (url, db) = pg_database().await?;
            (url, None, Some(db))
        }
    };
    config.connection = connection.clone();
    let store = neutrino_store::Store::connect(&connection, 16).await.expect("connect store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(neutrino_server::serve(App::new(store.clone(), config).await.unwrap(), listener));
    Some(TestServer { api: ApiClient::new(&base), base, store, task, _dir: dir, pg_db, connection })
}

/// Run `body` once per backend. Declares `<name>_sqlite` and `<name>_postgres` tests.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $config:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let s = $crate::common::start($crate::common::Backend::Sqlite, $config).await.unwrap();
                ($body)(s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs PostgreSQL (NEUTRINO_TEST_PG); scripts/test runs it"]
            async fn postgres() {
                let s = $crate::common::start($crate::common::Backend::Postgres, $config).await.unwrap();
                ($body)(s).await;
            }
        }
    };
}

/// The status and Neutron error type of a failed call.
pub fn error_of(r: Result<serde_json::Value, neutrino_lab::ApiError>) -> (u16, String, String) {
    match r {
        Err(neutrino_lab::ApiError::Status { status, body }) => (
            status,
            body["NeutronError"]["type"].as_str().unwrap_or_default().to_string(),
            body["NeutronError"]["message"].as_str().unwrap_or_default().to_string(),
        ),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Another server process-equivalent (own store, own pool) on the same database as `first`.
pub async fn second_server(first: &TestServer) -> TestServer {
    second_server_with(first, default_config()).await
}

/// [`second_server`] with its own configuration.
pub async fn second_server_with(first: &TestServer, config: ServerConfig) -> TestServer {
    let connection = first.connection.clone();
    let config = ServerConfig { connection: connection.clone(), ..config };
    let store = neutrino_store::Store::connect(&connection, 8).await.expect("connect store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(neutrino_server::serve(App::new(store.clone(), config).await.unwrap(), listener));
    // The database belongs to `first`, which drops it.
    TestServer { api: ApiClient::new(&base), base, store, task, _dir: None, pg_db: None, connection }
}
