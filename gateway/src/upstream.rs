//! Calls to the services behind the edge: a lazily connected channel per upstream and unary or
//! server-streaming calls of any method, with `DynamicMessage`s encoded by their descriptors.

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
        Self { channel }
    }

    /// The channel, for calls the edge passes through untranscoded.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    fn path(method: &MethodDescriptor) -> Result<PathAndQuery, tonic::Status> {
        format!("/{}/{}", method.parent_service().full_name(), method.name())
            .parse()
            .map_err(|e| tonic::Status::internal(format!("method path: {e}")))
    }

    /// Calls a unary `method` with `request` (its metadata and deadline included).
    ///
    /// # Errors
    /// The upstream's status, or UNAVAILABLE when it cannot be reached.
    pub async fn unary(
        &self,
        method: &MethodDescriptor,
        request: tonic::Request<DynamicMessage>,
    ) -> Result<tonic::Response<DynamicMessage>, tonic::Status> {
        let mut client = tonic::client::Grpc::new(self.channel.clone());
        client
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("upstream not ready: {e}")))?;
        client
            .unary(
                request,
                Self::path(method)?,
                DynamicCodec::new(method.output()),
            )
            .await
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
        let mut client = tonic::client::Grpc::new(self.channel.clone());
        client
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("upstream not ready: {e}")))?;
        client
            .server_streaming(
                request,
                Self::path(method)?,
                DynamicCodec::new(method.output()),
            )
            .await
    }
}
