//! The relay's OAuth 2.1 server for MCP clients: the whole flow with the official MCP Python
//! SDK's OAuth client provider (discovery, registration, PKCE, consent, token, refresh), and
//! every way a code or refresh token is refused: replayed, wrong verifier, wrong redirect URI,
//! reused after rotation, revoked in the token list.

use std::{path::Path, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use fulcrum_tests::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const REDIRECT: &str = "http://127.0.0.1:33418/callback";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Registers a public client.
async fn register(base: &str) -> String {
    let r = http()
        .post(format!("{base}/oauth/register"))
        .json(&json!({
            "client_name": "Test client",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("client_secret").is_none(), "{body}");
    body["client_id"].as_str().unwrap().to_owned()
}

/// The PKCE S256 challenge of `verifier`.
fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The user approves `client` on the consent page: the code the client gets.
async fn approve(base: &str, user: &TestUser, client: &str, verifier: &str) -> String {
    let consent = Api::new(base)
        .with_token(&user.access)
        .post(
            "/api/v1/oauth/consent",
            json!({
                "client_id": client,
                "redirect_uri": REDIRECT,
                "response_type": "code",
                "code_challenge": challenge(verifier),
                "code_challenge_method": "S256",
                "scope": "read run",
                "state": "st",
                "approve": true,
            }),
        )
        .await
        .unwrap();
    let to = consent.data()["redirect_to"].as_str().unwrap().to_owned();
    assert!(to.starts_with(REDIRECT), "{to}");
    let url = url::Url::parse(&to).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "st");
    assert_eq!(q["iss"], base);
    q["code"].clone()
}

/// `POST /oauth/token` with this form.
async fn token(base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = http()
        .post(format!("{base}/oauth/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn exchange(base: &str, client: &str, code: &str, verifier: &str) -> (u16, Value) {
    token(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_and_authorize_redirects() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let base = relay.url();
    let get_json = |path: &str| {
        let url = format!("{base}{path}");
        async move {
            http()
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let meta = get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(meta["issuer"], base.as_str());
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        meta["registration_endpoint"],
        format!("{base}/oauth/register")
    );
    let resource = get_json("/.well-known/oauth-protected-resource/mcp").await;
    assert_eq!(resource["authorization_servers"], json!([base]));

    let client = register(&base).await;
    let authorize = |q: String| {
        let base = base.clone();
        async move {
            http()
                .get(format!("{base}/oauth/authorize?{q}"))
                .send()
                .await
                .unwrap()
        }
    };
    let good = format!(
        "response_type=code&client_id={client}&redirect_uri={}&code_challenge={}&code_challenge_method=S256&state=x",
        urlencode(REDIRECT),
        challenge(&"v".repeat(50))
    );
    let r = authorize(good.clone()).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], format!("/#/authorize?{good}"));
    // No PKCE, an unknown client, a redirect URI it did not register: explained on the relay's
    // page, never redirected (with open registration, an error redirect would make the relay
    // an open redirector).
    for q in [
        format!(
            "response_type=code&client_id={client}&redirect_uri={}&state=x",
            urlencode(REDIRECT)
        ),
        format!(
            "response_type=code&client_id=nope&redirect_uri={}",
            urlencode(REDIRECT)
        ),
        format!(
            "response_type=code&client_id={client}&redirect_uri={}",
            urlencode("https://evil.example/cb")
        ),
    ] {
        let r = authorize(q).await;
        assert_eq!(r.status(), 400);
        assert!(r.headers().get("location").is_none());
    }
    // Registration refuses what it cannot honour.
    let r = http()
        .post(format!("{base}/oauth/register"))
        .json(&json!({ "redirect_uris": ["http://evil.example/cb"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_redirect_uri");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_and_refresh_tokens_work_once_and_only_as_issued() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let base = relay.url();
    let alice = make_user(&relay, "alice").await;
    let client = register(&base).await;
    let verifier = "a".repeat(43) + "-good-verifier";

    // A wrong verifier, a wrong redirect URI, another client: refused (and the code is spent).
    let code = approve(&base, &alice, &client, &verifier).await;
    let (status, body) = exchange(&base, &client, &code, &"b".repeat(60)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let code = approve(&base, &alice, &client, &verifier).await;
    let (status, body) = token(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:1/other"),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    // Another client cannot use the code up: its owner still can.
    let other = register(&base).await;
    let code = approve(&base, &alice, &client, &verifier).await;
    let (_, body) = exchange(&base, &other, &code, &verifier).await;
    assert_eq!(body["error"], "invalid_grant", "{body}");

    // The right one: an MCP token with the scopes granted, listed among the user's tokens.
    let (status, grant) = exchange(&base, &client, &code, &verifier).await;
    assert_eq!(status, 200, "{grant}");
    assert_eq!(grant["scope"], "read run");
    assert_eq!(grant["token_type"], "Bearer");
    let access = grant["access_token"].as_str().unwrap().to_owned();
    let refresh = grant["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(mcp_initialize_status(&base, &access).await, 200);
    let api = Api::new(&base).with_token(&alice.access);
    let listed = api.get("/api/v1/tokens").await.unwrap();
    let row = listed
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["oauth_client_name"] == "Test client")
        .cloned()
        .expect("the grant is listed");
    assert_eq!(row["kind"], "mcp");
    assert_eq!(row["scopes"], json!(["read", "run"]));

    // A replayed code: refused, and the grant it became ends.
    let (_, body) = exchange(&base, &client, &code, &verifier).await;
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(mcp_initialize_status(&base, &access).await, 401);
    let (_, body) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client),
            ("refresh_token", &refresh),
        ],
    )
    .await;
    assert_eq!(body["error"], "invalid_grant", "{body}");

    // A fresh grant: refreshing rotates both tokens; the old access token stops working.
    let code = approve(&base, &alice, &client, &verifier).await;
    let (_, grant) = exchange(&base, &client, &code, &verifier).await;
    let (access_1, refresh_1) = (
        grant["access_token"].as_str().unwrap().to_owned(),
        grant["refresh_token"].as_str().unwrap().to_owned(),
    );
    let refresh_with = |r: String| {
        let (base, client) = (base.clone(), client.clone());
        async move {
            token(
                &base,
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", &client),
                    ("refresh_token", &r),
                ],
            )
            .await
        }
    };
    let (status, rotated) = refresh_with(refresh_1.clone()).await;
    assert_eq!(status, 200, "{rotated}");
    let access_2 = rotated["access_token"].as_str().unwrap().to_owned();
    let refresh_2 = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh_1, refresh_2);
    assert_eq!(mcp_initialize_status(&base, &access_2).await, 200);
    // The old refresh token again: someone replayed it. The grant ends.
    let (_, body) = refresh_with(refresh_1).await;
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(mcp_initialize_status(&base, &access_2).await, 401);
    let (_, body) = refresh_with(refresh_2).await;
    assert_eq!(body["error"], "invalid_grant");
    let _ = access_1;

    // Revoked from the token list: neither token works.
    let code = approve(&base, &alice, &client, &verifier).await;
    let (_, grant) = exchange(&base, &client, &code, &verifier).await;
    let access = grant["access_token"].as_str().unwrap().to_owned();
    let listed = api.get("/api/v1/tokens").await.unwrap();
    let live = listed
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["oauth_client_name"] == "Test client" && t["revoked_at"].is_null())
        .cloned()
        .unwrap();
    api.delete(&format!("/api/v1/tokens/{}", id(&live)))
        .await
        .unwrap();
    assert_eq!(mcp_initialize_status(&base, &access).await, 401);
    let (_, body) = refresh_with(grant["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(body["error"], "invalid_grant");

    // Another user cannot see or revoke the grant; a token cannot grant consent.
    let bob = make_user(&relay, "bob").await;
    let theirs = Api::new(&base)
        .with_token(&bob.access)
        .get("/api/v1/tokens")
        .await
        .unwrap();
    assert!(
        theirs
            .data()
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["oauth_client_name"].is_null())
    );
    let r = Api::new(&base)
        .with_token(&bob.access)
        .delete(&format!("/api/v1/tokens/{}", id(&live)))
        .await
        .unwrap();
    assert_eq!(r.error_code(), "not_found");

    // Another client presenting a refresh token neither uses it up nor ends its grant.
    let code = approve(&base, &alice, &client, &verifier).await;
    let (_, grant) = exchange(&base, &client, &code, &verifier).await;
    let refresh = grant["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let (_, body) = token(
            &base,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &other),
                ("refresh_token", &refresh),
            ],
        )
        .await;
        assert_eq!(body["error"], "invalid_grant");
    }
    assert_eq!(refresh_with(refresh).await.0, 200);

    // Dead rows are pruned: as if a month had passed, the revoked and expired grants, their
    // codes and refresh tokens, and the client that never got a grant all go.
    let later = chrono::Utc::now() + chrono::Duration::days(40);
    let gone = relay
        .state
        .store
        .prune_oauth(later, later, later)
        .await
        .unwrap();
    assert!(gone >= 5, "{gone}");
    let left = api.get("/api/v1/tokens").await.unwrap();
    assert!(
        left.data()
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["oauth_client_name"].is_null()),
        "{:?}",
        left.body
    );
    let r = http()
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", other.as_str()),
            ("refresh_token", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the unused client is gone");

    // What the OAuth server and the token checks did is in /metrics.
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"fulcrum_oauth_total{event="registered"} 2"#,
        r#"fulcrum_oauth_total{event="refreshed"} 2"#,
        r#"fulcrum_oauth_total{event="replayed"} 2"#,
        r#"fulcrum_token_checks_total{kind="mcp",outcome="ok"}"#,
        r#"fulcrum_token_checks_total{kind="mcp",outcome="invalid_token"}"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdk_signs_in_with_oauth_and_refreshes() {
    use tokio::io::AsyncWriteExt;
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let base = relay.url();
    let alice = make_user(&relay, "alice").await;
    let venv = std::env::var("FULCRUM_MCP_VENV")
        .unwrap_or_else(|_| format!("{}/.cache/fulcrum/mcp-venv", std::env::var("HOME").unwrap()));
    let python = Path::new(&venv).join("bin/python");
    assert!(
        python.exists(),
        "run scripts/setup.sh ({} is missing)",
        python.display()
    );
    let mut child = tokio::process::Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp/oauth_client.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let job = json!({ "base": base, "email": alice.email, "password": alice.password });
    stdin.write_all(job.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the SDK client failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();
    // One consent; the page named the client and the scopes it asked for.
    assert_eq!(out["consents"], 1);
    assert_eq!(out["consent_page"]["client_name"], "SDK test client");
    assert_eq!(
        out["consent_page"]["scopes"],
        json!(["read", "write", "run"])
    );
    assert_eq!(out["scope"], "read write run");
    for session in ["first", "second"] {
        assert_eq!(out[session]["is_error"], false, "{out}");
        assert!(
            out[session]["tools"]
                .as_array()
                .unwrap()
                .contains(&json!("run_task"))
        );
    }
    // The second session refreshed: both tokens rotated.
    assert_ne!(out["access_1"], out["access_2"]);
    assert_ne!(out["refresh_1"], out["refresh_2"]);
    assert_eq!(
        mcp_initialize_status(&base, out["access_1"].as_str().unwrap()).await,
        401
    );
    assert_eq!(
        mcp_initialize_status(&base, out["access_2"].as_str().unwrap()).await,
        200
    );
}
