//! Authentication of HTTP clients: a bearer token or a user and password, compared in constant
//! time (the `subtle` crate), so that the time an answer takes says nothing of the secret.

use super::settings::ListenAuth;
use base64::Engine;
use subtle::ConstantTimeEq;

/// Whether the `Authorization` header `given` is what `auth` asks for.
pub fn allows(auth: &ListenAuth, given: Option<&str>) -> bool {
    let Some(given) = given else {
        return false;
    };
    let mut ok = false;
    if let (Some(token), Some(sent)) = (&auth.bearer_token, given.strip_prefix("Bearer ")) {
        ok |= bool::from(sent.trim().as_bytes().ct_eq(token.as_bytes()));
    }
    if let (Some(user), Some(sent)) = (&auth.user, given.strip_prefix("Basic ")) {
        let want = format!("{user}:{}", auth.password.as_deref().unwrap_or(""));
        let sent = base64::engine::general_purpose::STANDARD
            .decode(sent.trim())
            .unwrap_or_default();
        ok |= bool::from(sent.ct_eq(want.as_bytes()));
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_passwords_are_checked() {
        let auth = ListenAuth {
            bearer_token: Some("t0k".into()),
            user: Some("u".into()),
            password: Some("p".into()),
        };
        assert!(allows(&auth, Some("Bearer t0k")));
        assert!(!allows(&auth, Some("Bearer t0")));
        assert!(allows(&auth, Some("Basic dTpw")));
        assert!(!allows(&auth, Some("Basic dTpx")));
        assert!(!allows(&auth, None));
    }
}
