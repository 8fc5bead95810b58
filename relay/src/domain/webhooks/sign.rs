//! Signatures as the Standard Webhooks specification defines them: a secret is `whsec_` and
//! the base64 of 32 random bytes; a message's signature is `v1,` and the base64 of
//! HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`; while a rotated secret still
//! signs, the `webhook-signature` header holds both, space-separated.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use rand::RngCore;
use ring::hmac;

/// The prefix of a signing secret.
const PREFIX: &str = "whsec_";

/// A new signing secret, as shown to its owner once.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("{PREFIX}{}", STANDARD.encode(key))
}

/// The key of secret `secret` (`whsec_…`); none if it is not one.
pub fn key(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix(PREFIX)?)
        .ok()
        .filter(|k| !k.is_empty())
}

/// The `webhook-signature` header of a message: one `v1,…` signature per key, the current key
/// first.
pub fn header(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| {
            let key = hmac::Key::new(hmac::HMAC_SHA256, k);
            let mut ctx = hmac::Context::with_key(&key);
            ctx.update(format!("{id}.{timestamp}.").as_bytes());
            ctx.update(body);
            format!("v1,{}", STANDARD.encode(ctx.sign().as_ref()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_specification_example() {
        // The example of the Standard Webhooks specification (and its libraries' tests).
        let key = key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            header(&[key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(super::key("whsec_").is_none() && super::key("nope").is_none());
        let s = new_secret();
        assert_eq!(super::key(&s).unwrap().len(), 32);
    }
}
