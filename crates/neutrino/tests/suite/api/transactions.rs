//! Transactions that collide: bulk creates that mix projects, and a real deadlock on
//! PostgreSQL, which the server retries once, as a whole, before it answers.

use super::*;
use neutrino_domain::quotas::QuotaResource;
use sqlx::Connection;
use std::time::Duration;

const PROJECTS: [&str; 2] = ["mixed-a", "mixed-b"];

fn bulk_networks(order: [&str; 2], tag: &str) -> Value {
    json!({"networks": order.iter().map(|p| json!({"name": format!("{tag}-{p}"), "project_id": p})).collect::<Vec<_>>()})
}

async fn networks_of(s: &TestServer, project: &str) -> Vec<Value> {
    let listed = s.api.get(&format!("/v2.0/networks?project_id={project}")).await.unwrap();
    listed["networks"].as_array().unwrap().clone()
}

// Concurrent bulk creates naming the two projects in opposite orders take each project's
// quota lock: all succeed, and the reply keeps the request's order.
on_both_backends!(bulk_creates_mixing_projects_all_succeed, default_config(), |s: TestServer| async move {
    let mut tasks = Vec::new();
    for client in 0..8 {
        let api = s.api.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..5 {
                let order = if (client + round) % 2 == 0 { PROJECTS } else { [PROJECTS[1], PROJECTS[0]] };
                let made = api.post("/v2.0/networks", bulk_networks(order, &format!("c{client}r{round}"))).await?;
                let owners: Vec<&str> =
                    made["networks"].as_array().unwrap().iter().map(|n| n["project_id"].as_str().unwrap()).collect();
                assert_eq!(owners, order, "the reply is in the request's order");
            }
            Ok::<_, neutrino_lab::ApiError>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("every bulk create succeeds");
    }
    for p in PROJECTS {
        assert_eq!(networks_of(&s, p).await.len(), 40, "{p}: one network per bulk create");
    }
});

/// A deadlock made on purpose: the test's own transaction holds the second project's quota lock
/// while the server's bulk create holds the first's and waits for the second; then the test asks
/// for the first. PostgreSQL aborts the server's transaction (40P01; the test's session waits
/// longer before it looks for deadlocks), the server runs the request again once the test lets
/// go, and the client gets one 201 with both networks, made once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (NEUTRINO_TEST_PG); scripts/test runs it"]
async fn a_deadlocked_bulk_create_is_retried_whole() {
    let s = crate::common::start(crate::common::Backend::Postgres, default_config()).await.unwrap();
    let key = |project: &str| neutrino_store::quota_lock_key(QuotaResource::Network, project);
    let mut c = sqlx::PgConnection::connect(&s.connection).await.expect("connect");
    let mut tx = c.begin().await.unwrap();
    sqlx::query("SET LOCAL deadlock_timeout = '30s'").execute(&mut *tx).await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(key(PROJECTS[1])).execute(&mut *tx).await.unwrap();

    let api = s.api.clone();
    let create = tokio::spawn(async move { api.post("/v2.0/networks", bulk_networks(PROJECTS, "deadlock")).await });
    // Until the server's transaction waits for the lock the test holds.
    let mut watch = sqlx::PgConnection::connect(&s.connection).await.expect("connect");
    let waiting = async {
        loop {
            // Exactly that lock (a bigint key is classid/objid, its high and low halves), in
            // this test's database: other tests' locks do not count.
            let held = key(PROJECTS[1]);
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1",
            )
            .bind((held >> 32) & 0xffff_ffff)
            .bind(held & 0xffff_ffff)
            .fetch_one(&mut watch)
            .await
            .unwrap();
            if n > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), waiting).await.expect("the bulk create waits for the lock");
    // Now the cycle: the server's transaction is the one PostgreSQL ends.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key(PROJECTS[0]))
        .execute(&mut *tx)
        .await
        .expect("the test's transaction survives the deadlock");
    assert!(!create.is_finished(), "the request waits for its second attempt");
    tx.rollback().await.unwrap();

    let made = tokio::time::timeout(Duration::from_secs(20), create).await.expect("a reply").unwrap();
    let made = made.expect("the deadlocked request succeeds on its second attempt");
    assert_eq!(made["networks"].as_array().unwrap().len(), 2);
    for p in PROJECTS {
        assert_eq!(networks_of(&s, p).await.len(), 1, "{p}: made once");
    }
}
