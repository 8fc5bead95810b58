//! Secrets at rest: sealed under master keys that never reach the database, readable only by
//! their owner, checked at start, rotated by `fulcrum-relay keys rotate`.

use fulcrum_relay::{
    domain::{Caller, DomainError, Door, secrets},
    secrets::{KeyRing, Plain},
    store,
};
use fulcrum_tests::*;

const PLAINTEXT: &[u8] = b"sk-PLAINTEXT-0123456789";

fn caller(user: &TestUser) -> Caller {
    Caller::new(user.id.parse().unwrap(), Door::Api)
}

/// Every byte the database holds for the test: the SQLite files, or PostgreSQL's rows as text.
async fn database_bytes(db: &TestDb) -> Vec<u8> {
    if let Some(path) = db.url.strip_prefix("sqlite://") {
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                all.extend(bytes);
            }
        }
        return all;
    }
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let rows: Vec<(Vec<u8>, String)> =
        sqlx::query_as("SELECT sealed, sealed_secrets::text FROM sealed_secrets")
            .fetch_all(&pool)
            .await
            .unwrap();
    rows.into_iter()
        .flat_map(|(sealed, text)| sealed.into_iter().chain(text.into_bytes()))
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

both_backends!(secrets_are_sealed_at_rest_and_open_only_for_their_owner);

async fn secrets_are_sealed_at_rest_and_open_only_for_their_owner(b: Backend) {
    let db = TestDb::new(b).await;
    let k1 = KeyRing::generate_entry("k1");
    let opts = RelayOptions {
        master_keys: Some(k1.clone()),
        ..Default::default()
    };
    let relay = start_relay(&db, &opts).await;
    let alice = make_user(&relay, "alice").await;
    let bob = make_user(&relay, "bob").await;
    let s = &relay.state.domain.secrets;
    s.put(caller(&alice), "openai", Plain::new(PLAINTEXT.to_vec()))
        .await
        .unwrap();
    assert_eq!(
        s.get(caller(&alice), "openai").await.unwrap().expose(),
        PLAINTEXT
    );
    assert_eq!(s.names(caller(&alice)).await.unwrap(), ["openai"]);
    // Bob has none of that name, and lists nothing.
    assert!(matches!(
        s.get(caller(&bob), "openai").await,
        Err(DomainError::NotFound(_))
    ));
    assert!(s.names(caller(&bob)).await.unwrap().is_empty());
    assert!(matches!(
        s.put(caller(&bob), "bad name!", Plain::new(b"x".to_vec()))
            .await,
        Err(DomainError::Invalid(_))
    ));
    // Alice's ciphertext copied into Bob's row does not open for him.
    let alice_id: uuid::Uuid = alice.id.parse().unwrap();
    let bob_id: uuid::Uuid = bob.id.parse().unwrap();
    let sealed = relay
        .state
        .store
        .sealed(alice_id, "openai")
        .await
        .unwrap()
        .unwrap();
    relay
        .state
        .store
        .put_sealed(bob_id, "openai", &sealed, chrono::Utc::now())
        .await
        .unwrap();
    let e = s.get(caller(&bob), "openai").await.unwrap_err();
    assert!(
        matches!(e, DomainError::Internal(_)) && !format!("{e:?}").contains("PLAINTEXT"),
        "{e:?}"
    );
    // The key's id is stored, never the key, and never the plaintext.
    let key = k1.split_once(':').unwrap().1.as_bytes().to_vec();
    relay.shutdown().await.unwrap();
    let bytes = database_bytes(&db).await;
    assert!(!bytes.is_empty(), "the database was read");
    assert!(
        !contains(&bytes, PLAINTEXT),
        "the database holds the plaintext"
    );
    assert!(!contains(&bytes, &key), "the database holds the master key");
}

both_backends!(rotation_keeps_every_secret_readable_and_none_under_the_old_key);

async fn rotation_keeps_every_secret_readable_and_none_under_the_old_key(b: Backend) {
    let db = TestDb::new(b).await;
    let (k1, k2) = (KeyRing::generate_entry("k1"), KeyRing::generate_entry("k2"));
    let relay = start_relay(
        &db,
        &RelayOptions {
            master_keys: Some(k1.clone()),
            ..Default::default()
        },
    )
    .await;
    let alice = make_user(&relay, "alice").await;
    let bob = make_user(&relay, "bob").await;
    let s = &relay.state.domain.secrets;
    for (who, name, value) in [
        (&alice, "openai", "a-1"),
        (&alice, "github", "a-2"),
        (&bob, "openai", "b-1"),
    ] {
        s.put(caller(who), name, Plain::new(value.as_bytes().to_vec()))
            .await
            .unwrap();
    }
    relay.shutdown().await.unwrap();

    // `keys rotate` with k2 first: everything moves to k2.
    let out = tokio::process::Command::new(workspace_binary("fulcrum-relay"))
        .args(["keys", "rotate", "--database", &db.url])
        .env("FULCRUM_MASTER_KEYS", format!("{k2},{k1}"))
        .env_remove("FULCRUM_MASTER_KEYS_FILE")
        .env_remove("FULCRUM_CONFIG")
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("re-sealed 3 secrets under k2"), "{said}");
    let store = store::open(&db.url).await.unwrap();
    assert_eq!(
        store.sealed_key_counts().await.unwrap(),
        [("k2".to_owned(), 3)]
    );
    // k2 alone now opens every one, and the relay starts with it alone.
    let relay = start_relay(
        &db,
        &RelayOptions {
            master_keys: Some(k2.clone()),
            ..Default::default()
        },
    )
    .await;
    let s = &relay.state.domain.secrets;
    for (who, name, value) in [
        (&alice, "openai", "a-1"),
        (&alice, "github", "a-2"),
        (&bob, "openai", "b-1"),
    ] {
        assert_eq!(
            s.get(caller(who), name).await.unwrap().expose(),
            value.as_bytes()
        );
    }
    // Running it again has nothing left to do.
    assert_eq!(
        secrets::rotate(&store, &KeyRing::parse(&k2).unwrap())
            .await
            .unwrap(),
        secrets::Rotation::default()
    );
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_will_not_start_without_the_keys_that_open_its_secrets() {
    let db = TestDb::new(Backend::Sqlite).await;
    let k1 = KeyRing::generate_entry("k1");
    let with = |keys: Option<String>| RelayOptions {
        master_keys: keys,
        ..Default::default()
    };
    // No secrets yet: no key needed, and a relay without one refuses to seal.
    let relay = start_relay(&db, &with(None)).await;
    let alice = make_user(&relay, "alice").await;
    let refused = relay
        .state
        .domain
        .secrets
        .put(caller(&alice), "openai", Plain::new(PLAINTEXT.to_vec()))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("no master key"), "{refused}");
    relay.shutdown().await.unwrap();
    let relay = start_relay(&db, &with(Some(k1.clone()))).await;
    relay
        .state
        .domain
        .secrets
        .put(caller(&alice), "openai", Plain::new(PLAINTEXT.to_vec()))
        .await
        .unwrap();
    relay.shutdown().await.unwrap();

    for (keys, says) in [
        (None, "no master key is configured"),
        (
            Some(KeyRing::generate_entry("k2")),
            "\"k1\", which is not configured",
        ),
        (
            Some(KeyRing::generate_entry("k1")),
            "does not open with the configured key",
        ),
        (Some("k1:short".to_owned()), "invalid master key list"),
    ] {
        let e = fulcrum_relay::Relay::start(relay_config(&db, &with(keys)))
            .await
            .err()
            .expect("the relay refuses to start");
        let e = format!("{e:#}");
        assert!(e.contains(says), "{e}");
        assert!(!e.contains("PLAINTEXT"), "{e}");
    }
}
