//! Calls to the services behind the edge: a lazily connected channel per upstream and unary or
//! server-streaming calls of any method, with `DynamicMessage`s encoded by their descriptors.

use agora_platform::client::Metered;
use http::uri::PathAndQuery;
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor, MethodDescriptor};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder, Streaming};
use tonic::transport::Channel;

/// A codec for one method: encodes any `DynamicMessage`, decodes the method's output type.
#[derive(Debug, Clone)]
pub struct DynamicCodec {
    output: MessageDescriptor,
}

impl DynamicCodec {
    /// A codec decoding `output` messages.
    pub fn new(output: MessageDescriptor) -> Self {
        Self { output }
    }
}

/// Encodes request messages of any type.
#[derive(Debug, Clone, Default)]
pub struct DynamicEncoder;

/// Decodes response messages of one type.
#[derive(Debug, Clone)]
pub struct DynamicDecoder(MessageDescriptor);

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = tonic::Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(dst)
            .map_err(|e| tonic::Status::internal(format!("encoding the request: {e}")))
    }
}

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        DynamicMessage::decode(self.0.clone(), src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("decoding the response: {e}")))
    }
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder(self.output.clone())
    }
}

/// One upstream service's channel.
#[derive(Debug, Clone)]
pub struct Upstream {
    channel: Channel,
    /// The same channel, each call timed in `rpc.client.call.duration`: what calls go through.
    metered: Metered<Channel>,
}

impl Upstream {
    /// A channel to `url` that connects on first use, so the edge starts while upstreams are
    /// still starting; a refused connection fails the call quickly (UNAVAILABLE), never hangs.
    /// A `dns:///host:port` URL spreads calls over every address the name resolves to (the
    /// platform's client-side balancing), since one HTTP/2 connection would pin every call to
    /// one pod.
    ///
    /// # Errors
    /// A URL that is not a valid URI.
    pub fn lazy(url: &str) -> anyhow::Result<Self> {
        Ok(Self::from_channel(agora_platform::client::lazy_channel(
            url,
        )?))
    }

    /// An upstream over an existing channel.
    pub fn from_channel(channel: Channel) -> Self {
        Self {
            metered: Metered::new(channel.clone()),
            channel,
        }
    }

    /// The channel, for its probes and reflection.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The channel with every call timed, for calls the edge passes through untranscoded.
    pub fn metered(&self) -> Metered<Channel> {
        self.metered.clone()
    }

    /// A client on the channel once it can take a call (else UNAVAILABLE), `method`'s path,
    /// and a codec for its answers.
    async fn prepare(
        &self,
        method: &MethodDescriptor,
    ) -> Result<
        (
            tonic::client::Grpc<Metered<Channel>>,
            PathAndQuery,
            DynamicCodec,
        ),
        tonic::Status,
    > {
        let mut client = tonic::client::Grpc::new(self.metered.clone());
        client
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("upstream not ready: {e}")))?;
        let path = format!("/{}/{}", method.parent_service().full_name(), method.name())
            .parse()
            .map_err(|e| tonic::Status::internal(format!("method path: {e}")))?;
        Ok((client, path, DynamicCodec::new(method.output())))
    }

    /// Calls a unary `method` with `request` (its metadata and deadline included).
    ///
    /// # Errors
    /// The upstream's status, or UNAVAILABLE when it cannot be reached or its connection is lost
    /// before it answers.
    pub async fn unary(
        &self,
        method: &MethodDescriptor,
        request: tonic::Request<DynamicMessage>,
    ) -> Result<tonic::Response<DynamicMessage>, tonic::Status> {
        let (mut client, path, codec) = self.prepare(method).await?;
        client
            .unary(request, path, codec)
            .await
            .map_err(lost_mid_call)
    }

    /// Calls a server-streaming `method`; the stream yields each response message.
    ///
    /// # Errors
    /// The upstream's status, or UNAVAILABLE when it cannot be reached.
    pub async fn server_streaming(
        &self,
        method: &MethodDescriptor,
        request: tonic::Request<DynamicMessage>,
    ) -> Result<tonic::Response<Streaming<DynamicMessage>>, tonic::Status> {
        let (mut client, path, codec) = self.prepare(method).await?;
        client
            .server_streaming(request, path, codec)
            .await
            .map_err(lost_mid_call)
    }
}

/// The message of a call whose upstream connection was lost before the answer came.
pub const OUTCOME_UNKNOWN: &str = "the connection to the service was lost before it answered; the outcome is unknown: \
     retry with the same idempotency key, or read the state back";

/// `status` as the client should see it: a call whose HTTP/2 connection was reset or closed
/// before a gRPC status arrived is UNAVAILABLE, saying that its outcome is unknown (the upstream
/// may or may not have acted on it), so that a client retrying UNAVAILABLE retries it. Every
/// status the upstream itself sent passes unchanged.
///
/// tonic reports a lost connection as UNKNOWN, either "transport error" with the channel's
/// error (and hyper's under it) as source, or as "h2 protocol error: ..." for an I/O error of
/// the connection (an h2 error without a reason code).
pub fn lost_mid_call(status: tonic::Status) -> tonic::Status {
    if status.code() != tonic::Code::Unknown {
        return status;
    }
    let transport =
        std::iter::successors(std::error::Error::source(&status), |error| error.source())
            .any(|error| error.is::<tonic::transport::Error>());
    if !transport && !status.message().starts_with("h2 protocol error") {
        return status;
    }
    tracing::warn!(error = %status, "the upstream connection was lost mid-call");
    tonic::Status::unavailable(OUTCOME_UNKNOWN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_status_sent_by_the_upstream_itself_passes_unchanged() {
        let status = lost_mid_call(tonic::Status::unknown("the handler failed"));
        assert_eq!(status.code(), tonic::Code::Unknown);
        assert_eq!(status.message(), "the handler failed");
        let status = lost_mid_call(tonic::Status::internal("h2 protocol error: reset"));
        assert_eq!(status.code(), tonic::Code::Internal);
    }

    #[test]
    fn an_h2_connection_error_without_a_reason_is_unavailable_with_the_outcome_unknown() {
        let status = lost_mid_call(tonic::Status::unknown(
            "h2 protocol error: error reading a body from connection",
        ));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(status.message(), OUTCOME_UNKNOWN);
    }
}
