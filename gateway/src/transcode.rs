//! Transcoding between HTTP/JSON and protobuf messages.

pub mod request;
pub mod response;
