//! Which frames are requests and which are answers, and the request
//! number each carries: what a client matches answers by and what a node's
//! access gate reads. Both matches are written without a wildcard, so a new
//! frame cannot be left out of either.

use super::frame::Frame;

impl Frame {
    /// The request a node's answer answers (`Some(0)`: an `ERROR` about
    /// the connection); `None` for a frame that is no answer. Matched
    /// without a wildcard, so a new answer frame cannot be forgotten by a
    /// client waiting for it.
    pub fn answer_to(&self) -> Option<u64> {
        match self {
            Frame::Reply { req, .. }
            | Frame::Ok { req, .. }
            | Frame::Deployed { req, .. }
            | Frame::Agents { req, .. }
            | Frame::StatsReply { req, .. }
            | Frame::Members { req, .. }
            | Frame::Location { req, .. }
            | Frame::Patterns { req, .. }
            | Frame::Pong { req }
            | Frame::Error { req, .. } => Some(*req),
            Frame::Hello { .. }
            | Frame::Welcome { .. }
            | Frame::Send { .. }
            | Frame::Call { .. }
            | Frame::Deploy { .. }
            | Frame::DeployMany { .. }
            | Frame::Undeploy { .. }
            | Frame::ListAgents { .. }
            | Frame::Stats { .. }
            | Frame::Cluster { .. }
            | Frame::Where { .. }
            | Frame::Reload { .. }
            | Frame::Stop { .. }
            | Frame::Start { .. }
            | Frame::AgentInfo { .. }
            | Frame::ListPatterns { .. }
            | Frame::Ping { .. } => None,
        }
    }

    /// A client request's number (0 for a fire-and-forget `SEND`); `None`
    /// for frames that are not client requests. A node's access gate takes
    /// the number from here; matched without a wildcard, so a new request
    /// frame must be placed here or it would pass that gate unchecked.
    ///
    /// ```
    /// use quire_client::protocol::Frame;
    /// assert_eq!(Frame::Ping { req: 7 }.request_number(), Some(7));
    /// assert_eq!(Frame::Pong { req: 7 }.request_number(), None);
    /// ```
    pub fn request_number(&self) -> Option<u64> {
        match self {
            Frame::Send { req, .. }
            | Frame::Call { req, .. }
            | Frame::Deploy { req, .. }
            | Frame::DeployMany { req, .. }
            | Frame::Undeploy { req, .. }
            | Frame::Reload { req, .. }
            | Frame::Stop { req, .. }
            | Frame::Start { req, .. }
            | Frame::AgentInfo { req, .. }
            | Frame::ListPatterns { req }
            | Frame::ListAgents { req }
            | Frame::Stats { req }
            | Frame::Cluster { req }
            | Frame::Where { req, .. }
            | Frame::Ping { req } => Some(*req),
            Frame::Hello { .. }
            | Frame::Welcome { .. }
            | Frame::Reply { .. }
            | Frame::Ok { .. }
            | Frame::Deployed { .. }
            | Frame::Agents { .. }
            | Frame::StatsReply { .. }
            | Frame::Members { .. }
            | Frame::Location { .. }
            | Frame::Patterns { .. }
            | Frame::Pong { .. }
            | Frame::Error { .. } => None,
        }
    }
}
