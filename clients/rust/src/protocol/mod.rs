//! The Quire wire protocol (docs/protocol.md): frames and their codec, with
//! no I/O, so that it is tested and fuzzed on its own and any transport can
//! carry it.

mod decode;
mod deploy_options;
mod encode;
mod frame;
pub mod msgpack;
mod numbering;
mod priority;
mod scope;

pub use decode::MAX_AGENT_NAME_BYTES;
pub use decode::{agent_name, decode, decode_body, frame_type, priority, split_frame};
pub use deploy_options::{DeployOptions, OptionValue};
pub use encode::encode;
pub use frame::{
    begin, body_len, code, finish, AgentLocation, AgentRow, DecodeError, ErrorCode, Frame, Limits,
    MemberRow, Role, StatsRow, DEFAULT_MAX_FRAME_BYTES, MAGIC, PREFIX_BYTES, VERSION,
};
pub use priority::Priority;
pub use scope::{Access, Scope, ScopeSet};
