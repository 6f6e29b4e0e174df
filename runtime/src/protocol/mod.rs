//! The Quire wire protocol (docs/protocol.md): frames and their codec, with
//! no I/O, so that it is tested and fuzzed on its own.

mod frame;
pub mod msgpack;

pub use frame::{
    body_len, code, decode, decode_body, encode, encode_envelope, AgentRow, DecodeError, ErrorCode,
    Frame, MemberRow, Role, StatsRow, DEFAULT_MAX_FRAME_BYTES, MAGIC, PREFIX_BYTES, VERSION,
};
