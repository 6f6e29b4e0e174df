//! The client commands (`send`, `call`, `deploy`, ...): one connection
//! to a running node, errors in plain words.

use quire_client::{ClientError, RemoteClient};
use quire_runtime::protocol::ErrorCode;

use crate::args::Target;

/// Connects to `to` and runs `f`; errors in plain words.
pub fn remote(
    to: &Target,
    f: impl FnOnce(&mut RemoteClient) -> Result<(), ClientError>,
) -> Result<(), String> {
    let mut client =
        RemoteClient::connect(to.node.as_str(), to.token.as_deref()).map_err(|e| e.to_string())?;
    f(&mut client).map_err(|e| match &e {
        ClientError::Node {
            detail: Some(d), ..
        } if e.code() == Some(ErrorCode::Rejected) => format!("{e} ({d})"),
        _ => e.to_string(),
    })
}

/// JSON becomes MessagePack of the same value; anything else a string.
pub fn encode_payload(text: &str) -> Vec<u8> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => rmp_serde::to_vec(&value).unwrap_or_else(|_| text.as_bytes().to_vec()),
        Err(_) => rmp_serde::to_vec(text).unwrap_or_else(|_| text.as_bytes().to_vec()),
    }
}

/// MessagePack as JSON, else the bytes as text.
pub fn decode_payload(bytes: &[u8]) -> String {
    match rmp_serde::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => value.to_string(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}
