//! Who a client connection is and what it may ask: the credential its
//! HELLO presented, looked up among the node's tokens without a timing
//! side channel, and the gate every request passes before it is handled
//! (the scope it needs, and the connection's window of requests in flight).

use quire_client::protocol::{Access, ErrorCode, Frame, Scope, ScopeSet};

use crate::config::{ConfigError, NetworkSection};

/// The credential name of the node's `network.admin_token`.
pub(crate) const ADMIN: &str = "admin";
/// The credential name of a connection that presented none.
pub(crate) const ANONYMOUS: &str = "anonymous";

/// The tokens a node takes, by the BLAKE3 hash of their secrets.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    tokens: Vec<Known>,
    anonymous: ScopeSet,
}

#[derive(Debug, Clone)]
struct Known {
    name: String,
    secret: blake3::Hash,
    scopes: ScopeSet,
}

impl Credentials {
    /// From a validated `[network]` section (scope names it does not know
    /// are left out; validation has refused them already), reading each
    /// `secret_file`; a file that cannot be read, is empty, or holds a
    /// secret another token has is an error naming the token.
    pub fn from_config(net: &NetworkSection) -> Result<Self, ConfigError> {
        let scopes = |names: &[String]| -> ScopeSet {
            names.iter().filter_map(|n| Scope::from_name(n)).collect()
        };
        let mut tokens: Vec<Known> = net
            .admin_token
            .iter()
            .map(|secret| Known {
                name: ADMIN.into(),
                secret: blake3::hash(secret.as_bytes()),
                scopes: ScopeSet::all(),
            })
            .collect();
        for t in &net.tokens {
            let secret = match &t.secret_file {
                None => blake3::hash(t.secret.as_bytes()),
                Some(path) => blake3::hash(read_secret(&t.name, path)?.as_bytes()),
            };
            if tokens.iter().any(|k| k.secret == secret) {
                return Err(ConfigError::Invalid {
                    key: "network.tokens",
                    problem: format!("token {:?} has the same secret as another token", t.name),
                });
            }
            tokens.push(Known {
                name: t.name.clone(),
                secret,
                scopes: scopes(&t.scopes),
            });
        }
        Ok(Self {
            tokens,
            anonymous: scopes(&net.anonymous_scopes),
        })
    }

    /// What `presented` grants; `None` when it is none of the node's
    /// tokens. Every token is compared, each in constant time
    /// (`blake3::Hash`'s equality), and hashes have one length: the time
    /// taken says nothing of which token, if any, came close.
    pub fn grant(&self, presented: Option<&str>) -> Option<Access> {
        let Some(presented) = presented else {
            return Some(Access {
                credential: ANONYMOUS.into(),
                scopes: self.anonymous,
            });
        };
        let presented = blake3::hash(presented.as_bytes());
        let mut found = None;
        for known in &self.tokens {
            if known.secret == presented && found.is_none() {
                found = Some(known);
            }
        }
        found.map(|known| Access {
            credential: known.name.clone(),
            scopes: known.scopes,
        })
    }
}

/// A token's secret from its file, one trailing newline dropped.
fn read_secret(name: &str, path: &std::path::Path) -> Result<String, ConfigError> {
    let invalid = |problem: String| ConfigError::Invalid {
        key: "network.tokens",
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        invalid(format!(
            "token {name:?}: cannot read its secret_file {}: {e}",
            path.display()
        ))
    })?;
    let secret = text
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&text);
    if secret.is_empty() {
        return Err(invalid(format!(
            "token {name:?}: its secret_file {} is empty",
            path.display()
        )));
    }
    Ok(secret.to_string())
}

/// The refusal of `frame` on a connection granted `access` with
/// `in_flight` of its `window` requests unanswered; `None`: handle it.
///
/// Out of scope: `UNAUTHORIZED` naming the scope it needed. Beyond the
/// window: `WINDOW_FULL`. Neither is acted on, and neither closes the
/// connection, but for a fire-and-forget `SEND` (req 0) out of scope: it
/// has no request to answer, so its refusal (req 0) is the connection's
/// closing error rather than a loss no one hears of. The window does not
/// count such sends: they owe no answer.
pub(super) fn refusal(
    access: &Access,
    in_flight: usize,
    window: usize,
    frame: &Frame,
) -> Option<Frame> {
    let req = frame.request_number()?;
    if let Some(needed) = Scope::needed_by(frame) {
        if !access.scopes.contains(needed) {
            return Some(Frame::Error {
                req,
                code: ErrorCode::Unauthorized,
                message: format!(
                    "{} needs the {needed} scope; this connection's credential ({}) grants {}",
                    frame.name(),
                    access.credential,
                    access.scopes
                ),
                detail: Some(needed.as_str().into()),
            });
        }
    }
    if req != 0 && in_flight >= window && !matches!(frame, Frame::Ping { .. }) {
        return Some(Frame::Error {
            req,
            code: ErrorCode::WindowFull,
            message: format!(
                "{} not taken: this connection has {in_flight} requests unanswered, \
                 its window (max_requests_in_flight) is {window}",
                frame.name()
            ),
            detail: None,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenEntry;

    fn credentials() -> Credentials {
        // A directory of each call's own: tests run in parallel, and a
        // file another test is rewriting reads empty.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dash.secret");
        std::fs::write(&file, "dash-secret\n").unwrap();
        Credentials::from_config(&NetworkSection {
            admin_token: Some("root-secret".into()),
            tokens: vec![
                TokenEntry {
                    name: "ingest".into(),
                    secret: "ingest-secret".into(),
                    secret_file: None,
                    scopes: vec!["message".into()],
                },
                TokenEntry {
                    name: "dashboard".into(),
                    secret: String::new(),
                    secret_file: Some(file),
                    scopes: vec!["read".into()],
                },
            ],
            anonymous_scopes: vec![],
            ..NetworkSection::default()
        })
        .unwrap()
    }

    #[test]
    fn a_secret_file_that_cannot_be_used_is_named() {
        let missing = NetworkSection {
            tokens: vec![TokenEntry {
                name: "ops".into(),
                secret: String::new(),
                secret_file: Some("/nonexistent/ops.secret".into()),
                scopes: vec!["admin".into()],
            }],
            ..NetworkSection::default()
        };
        let err = Credentials::from_config(&missing).unwrap_err().to_string();
        assert!(
            err.contains("token \"ops\"") && err.contains("/nonexistent/ops.secret"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let same = dir.join("same");
        std::fs::write(&same, "root-secret").unwrap();
        for (file, named) in [(empty, "is empty"), (same, "same secret")] {
            let net = NetworkSection {
                admin_token: Some("root-secret".into()),
                tokens: vec![TokenEntry {
                    name: "ops".into(),
                    secret: String::new(),
                    secret_file: Some(file),
                    scopes: vec!["admin".into()],
                }],
                ..NetworkSection::default()
            };
            let err = Credentials::from_config(&net).unwrap_err().to_string();
            assert!(err.contains(named), "{err}");
        }
    }

    #[test]
    fn each_secret_grants_its_own_scopes_and_a_wrong_one_nothing() {
        let c = credentials();
        let ingest = c.grant(Some("ingest-secret")).unwrap();
        assert_eq!(ingest.credential, "ingest");
        assert_eq!(ingest.scopes, ScopeSet::NONE.with(Scope::Message));
        assert_eq!(
            c.grant(Some("root-secret")).unwrap().scopes,
            ScopeSet::all()
        );
        assert_eq!(c.grant(Some("root-secret")).unwrap().credential, ADMIN);
        assert_eq!(c.grant(None).unwrap().scopes, ScopeSet::NONE);
        assert_eq!(c.grant(None).unwrap().credential, ANONYMOUS);
        assert_eq!(c.grant(Some("ingest-secre")), None);
        assert_eq!(c.grant(Some("")), None);
    }

    fn call(req: u64) -> Frame {
        Frame::Call {
            req,
            to: "echo".into(),
            payload: bytes::Bytes::new(),
            priority: quire_client::Priority::Normal,
            timeout_ms: 0,
        }
    }

    #[test]
    fn a_request_outside_the_scopes_is_refused_naming_the_scope() {
        let reader = credentials().grant(Some("dash-secret")).unwrap();
        let Some(Frame::Error {
            req,
            code,
            message,
            detail,
        }) = refusal(&reader, 0, 8, &call(3))
        else {
            panic!("a CALL on a read-only connection was let through");
        };
        assert_eq!((req, code), (3, ErrorCode::Unauthorized));
        assert_eq!(detail.as_deref(), Some("message"));
        assert!(
            message.contains("CALL needs the message scope") && message.contains("dashboard"),
            "{message}"
        );
        assert_eq!(refusal(&reader, 0, 8, &Frame::Stats { req: 4 }), None);
        assert_eq!(refusal(&reader, 0, 8, &Frame::Ping { req: 5 }), None);
    }

    #[test]
    fn the_window_refuses_requests_beyond_it_but_not_pings_or_unanswered_sends() {
        let admin = credentials().grant(Some("root-secret")).unwrap();
        assert_eq!(refusal(&admin, 7, 8, &call(1)), None);
        let Some(Frame::Error { req, code, .. }) = refusal(&admin, 8, 8, &call(2)) else {
            panic!("the ninth request in a window of 8 was let through");
        };
        assert_eq!((req, code), (2, ErrorCode::WindowFull));
        assert_eq!(refusal(&admin, 8, 8, &Frame::Ping { req: 3 }), None);
        let fire_and_forget = Frame::Send {
            req: 0,
            to: "echo".into(),
            payload: bytes::Bytes::new(),
            priority: quire_client::Priority::Normal,
            ttl_ms: None,
            durable_key: None,
        };
        assert_eq!(refusal(&admin, 8, 8, &fire_and_forget), None);
    }
}
