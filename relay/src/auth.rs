//! Credentials: password hashing, opaque tokens, and signed access tokens.
//!
//! - Passwords are hashed with Argon2id (the `argon2` crate's defaults, per OWASP).
//! - Agent and refresh tokens are 256-bit random secrets with a recognisable prefix (`fca_`,
//!   `fcr_`). Only their SHA-256 is stored: they are high-entropy, so a slow hash adds nothing.
//! - Access tokens and event-socket tickets are short-lived HS256 JWTs signed with a key kept in
//!   the database (generated on first start, shared by every relay node). A `typ` claim keeps the
//!   two from standing in for each other.

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Prefix of agent tokens.
pub const AGENT_TOKEN_PREFIX: &str = "fca_";
/// Prefix of MCP tokens.
pub const MCP_TOKEN_PREFIX: &str = "fcm_";
/// Prefix of API tokens.
pub const API_TOKEN_PREFIX: &str = "fck_";
/// Prefix of ingest tokens.
pub const INGEST_TOKEN_PREFIX: &str = "fci_";
/// Prefix of refresh tokens.
pub const REFRESH_TOKEN_PREFIX: &str = "fcr_";
/// Prefix of one-time password reset links' tokens.
pub const RESET_TOKEN_PREFIX: &str = "fpr_";
/// Characters of a token kept as its recognisable prefix.
const SHOWN_PREFIX_LEN: usize = 8;

/// The token in an `Authorization: Bearer …` header.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Hashes a password with Argon2id. Slow on purpose: call it off the async runtime.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Checks a password against a stored hash. Slow on purpose: call it off the async runtime.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to verify against when the user does not exist, so that the answer takes as long
/// either way and does not tell which e-mails have accounts.
pub fn dummy_password_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("fulcrum-dummy-password").unwrap_or_default())
}

/// A freshly generated opaque token.
pub struct NewToken {
    /// The secret, shown to its holder once.
    pub secret: String,
    /// What is stored: hex SHA-256 of the secret.
    pub hash: String,
    /// The first characters of the secret, stored to recognise it by.
    pub shown_prefix: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("shown_prefix", &self.shown_prefix)
            .finish_non_exhaustive()
    }
}

/// Generates a random token with the given prefix.
pub fn new_token(prefix: &str) -> NewToken {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    NewToken {
        hash: token_hash(&secret),
        shown_prefix: secret.chars().take(SHOWN_PREFIX_LEN).collect(),
        secret,
    }
}

/// The stored form of a token: hex SHA-256.
pub fn token_hash(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 64 random bytes for a signing key.
pub fn generate_signing_key() -> Vec<u8> {
    let mut key = vec![0u8; 64];
    rand::rng().fill_bytes(&mut key);
    key
}

/// What a signed token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenUse {
    /// API access (`Authorization: Bearer`).
    Access,
    /// Opening the dashboard event socket.
    Events,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    typ: TokenUse,
    iat: i64,
    exp: i64,
    /// The token's own id (an events ticket is accepted once).
    #[serde(default)]
    jti: Uuid,
    /// The login (refresh-token family) it was issued under, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<Uuid>,
}

/// What a valid signed token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The user it was issued to.
    pub user: Uuid,
    /// The login it was issued under (absent in tokens from before logins were named).
    pub login: Option<Uuid>,
    /// Its own id.
    pub id: Uuid,
    /// When it expires (Unix seconds).
    pub expires_at: i64,
}

/// Signs and checks access tokens and event tickets.
#[derive(Clone)]
pub struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl Signer {
    /// A signer with the given HMAC key.
    pub fn new(key: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
        }
    }

    /// Issues a token for `user`, good for `ttl` from `now`.
    pub fn issue(&self, user: Uuid, use_: TokenUse, now: DateTime<Utc>, ttl: Duration) -> String {
        self.issue_in(user, None, use_, now, ttl)
    }

    /// Issues a token for `user` under `login`, good for `ttl` from `now`.
    pub fn issue_in(
        &self,
        user: Uuid,
        login: Option<Uuid>,
        use_: TokenUse,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> String {
        let claims = Claims {
            sub: user,
            typ: use_,
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
            jti: Uuid::new_v4(),
            sid: login,
        };
        // HS256 encoding of a plain struct cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default()
    }

    /// Returns the user a valid, unexpired token of the given use was issued to.
    pub fn verify(&self, token: &str, use_: TokenUse) -> Option<Uuid> {
        self.check(token, use_).map(|v| v.user)
    }

    /// Checks a token of the given use and returns what it says.
    pub fn check(&self, token: &str, use_: TokenUse) -> Option<Verified> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).ok()?;
        (data.claims.typ == use_).then_some(Verified {
            user: data.claims.sub,
            login: data.claims.sid,
            id: data.claims.jti,
            expires_at: data.claims.exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_with_the_right_one() {
        let h = hash_password("correct horse").unwrap();
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "wrong"));
        assert!(!verify_password("not a hash", "correct horse"));
    }

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let a = new_token(AGENT_TOKEN_PREFIX);
        let b = new_token(AGENT_TOKEN_PREFIX);
        assert!(a.secret.starts_with("fca_") && a.secret.len() > 40);
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.hash, token_hash(&a.secret));
        assert!(!format!("{a:?}").contains(&a.secret));
    }

    #[test]
    fn signed_tokens_check_use_expiry_and_key() {
        let s = Signer::new(b"k1");
        let user = Uuid::new_v4();
        let now = Utc::now();
        let t = s.issue(user, TokenUse::Access, now, Duration::minutes(15));
        assert_eq!(s.verify(&t, TokenUse::Access), Some(user));
        assert_eq!(s.verify(&t, TokenUse::Events), None);
        assert_eq!(Signer::new(b"k2").verify(&t, TokenUse::Access), None);
        let old = s.issue(
            user,
            TokenUse::Access,
            now - Duration::hours(1),
            Duration::minutes(15),
        );
        assert_eq!(s.verify(&old, TokenUse::Access), None);
        let login = Uuid::new_v4();
        let t = s.issue_in(
            user,
            Some(login),
            TokenUse::Events,
            now,
            Duration::seconds(30),
        );
        let v = s.check(&t, TokenUse::Events).unwrap();
        assert_eq!((v.user, v.login), (user, Some(login)));
        let again = s.issue_in(
            user,
            Some(login),
            TokenUse::Events,
            now,
            Duration::seconds(30),
        );
        assert_ne!(v.id, s.check(&again, TokenUse::Events).unwrap().id);
    }
}

/// Event tickets already used, kept until they expire: a ticket opens one socket.
#[derive(Default)]
pub struct UsedTickets(std::sync::Mutex<std::collections::HashMap<Uuid, i64>>);

/// Most unexpired tickets remembered; past that, tickets are refused until some expire.
const MAX_USED_TICKETS: usize = 100_000;

impl UsedTickets {
    /// Marks a ticket used; false if it was used before (or too many are remembered).
    pub fn take(&self, ticket: &Verified, now: DateTime<Utc>) -> bool {
        let mut used = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if used.len() >= MAX_USED_TICKETS / 2 {
            let now = now.timestamp();
            used.retain(|_, exp| *exp >= now);
        }
        if used.len() >= MAX_USED_TICKETS || used.contains_key(&ticket.id) {
            return false;
        }
        used.insert(ticket.id, ticket.expires_at);
        true
    }
}
