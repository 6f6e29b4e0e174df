//! The Quire wire protocol (docs/protocol.md): frames and their codec, with
//! no I/O, so that it is tested and fuzzed on its own.

mod decode;
mod encode;
mod envelope;
mod frame;
pub mod msgpack;

pub use decode::{decode, decode_body};
pub use encode::encode;
pub use envelope::encode_envelope;
pub use frame::{
    body_len, code, AgentRow, DecodeError, ErrorCode, Frame, MemberRow, Role, StatsRow,
    DEFAULT_MAX_FRAME_BYTES, MAGIC, PREFIX_BYTES, VERSION,
};
