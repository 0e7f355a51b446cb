//! One `ServerReflectionInfo` stream, over `grpc.reflection.v1` or `v1alpha`, its answers read
//! as the v1 messages (the two versions share fields and numbers).

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic_reflection::pb::{v1, v1alpha};
use v1::server_reflection_request::MessageRequest;
use v1::server_reflection_response::MessageResponse;

use super::failed;

/// The version of the reflection service a stream speaks.
#[derive(Clone, Copy)]
pub(super) enum Version {
    /// `grpc.reflection.v1`.
    V1,
    /// `grpc.reflection.v1alpha`, which servers built before v1 answer.
    V1Alpha,
}

/// One open `ServerReflectionInfo` stream, answers converted to the v1 messages.
pub(super) struct Session {
    requests: mpsc::Sender<MessageRequest>,
    answers: BoxStream<'static, Result<v1::ServerReflectionResponse, tonic::Status>>,
}

impl Session {
    /// Opens the stream with `list_services` already queued and returns its answer: a server
    /// may hold back its response headers until the first request arrives.
    pub(super) async fn open(
        channel: Channel,
        version: Version,
    ) -> Result<(Self, v1::ServerReflectionResponse), tonic::Status> {
        let (requests, queue) = mpsc::channel(4);
        requests
            .send(MessageRequest::ListServices(String::new()))
            .await
            .map_err(|_| tonic::Status::internal("the request queue closed"))?;
        let queue = ReceiverStream::new(queue);
        let mut answers = match version {
            Version::V1 => {
                let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel);
                let sent = queue.map(|request| v1::ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(request),
                });
                client
                    .server_reflection_info(sent)
                    .await?
                    .into_inner()
                    .boxed()
            }
            Version::V1Alpha => {
                let mut client =
                    v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
                let sent = queue.map(|request| v1alpha::ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(to_v1alpha(request)),
                });
                let answers = client.server_reflection_info(sent).await?.into_inner();
                answers
                    .map(|answer| {
                        // Same fields and numbers: re-reading the bytes is the conversion.
                        let bytes = answer?.encode_to_vec();
                        v1::ServerReflectionResponse::decode(bytes.as_slice())
                            .map_err(|e| tonic::Status::internal(format!("a v1alpha answer: {e}")))
                    })
                    .boxed()
            }
        };
        let first = answers
            .next()
            .await
            .ok_or_else(|| tonic::Status::unavailable("the stream closed without an answer"))??;
        Ok((Self { requests, answers }, first))
    }

    /// The encoded files sent for `request`, or `None` when the server has no such file.
    pub(super) async fn files(
        &mut self,
        request: MessageRequest,
    ) -> anyhow::Result<Option<Vec<Bytes>>> {
        let asked = match &request {
            MessageRequest::FileContainingSymbol(symbol) => format!("the file of {symbol}"),
            MessageRequest::FileByFilename(name) => format!("the file {name}"),
            _ => "a request".to_owned(),
        };
        // The queue's receiver lives as long as the call: a failed send means the call ended.
        self.requests.send(request).await.map_err(|_| {
            anyhow::anyhow!("the reflection stream closed before asking for {asked}")
        })?;
        let answer = self
            .answers
            .next()
            .await
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the upstream's reflection closed the stream instead of sending {asked}"
                )
            })?
            .map_err(|status| failed(&format!("asking for {asked}"), &status))?;
        if let Some(MessageResponse::ErrorResponse(e)) = &answer.message_response
            && e.error_code == tonic::Code::NotFound as i32
        {
            return Ok(None);
        }
        let MessageResponse::FileDescriptorResponse(sent) = content(answer, &asked)? else {
            anyhow::bail!(
                "the upstream's reflection answered {asked} with something other than files"
            );
        };
        Ok(Some(
            sent.file_descriptor_proto
                .into_iter()
                .map(Bytes::from)
                .collect(),
        ))
    }
}

/// The answer's content; an error answer to `asked` as an error.
pub(super) fn content(
    answer: v1::ServerReflectionResponse,
    asked: &str,
) -> anyhow::Result<MessageResponse> {
    match answer.message_response {
        Some(MessageResponse::ErrorResponse(e)) => anyhow::bail!(
            "the upstream's reflection refused {asked}: {:?}: {}",
            tonic::Code::from_i32(e.error_code),
            e.error_message
        ),
        Some(content) => Ok(content),
        None => anyhow::bail!("the upstream's reflection answered {asked} with nothing"),
    }
}

/// A v1 request in v1alpha's types.
fn to_v1alpha(request: MessageRequest) -> v1alpha::server_reflection_request::MessageRequest {
    use v1alpha::server_reflection_request::MessageRequest as Alpha;
    match request {
        MessageRequest::FileByFilename(name) => Alpha::FileByFilename(name),
        MessageRequest::FileContainingSymbol(symbol) => Alpha::FileContainingSymbol(symbol),
        MessageRequest::FileContainingExtension(e) => {
            Alpha::FileContainingExtension(v1alpha::ExtensionRequest {
                containing_type: e.containing_type,
                extension_number: e.extension_number,
            })
        }
        MessageRequest::AllExtensionNumbersOfType(t) => Alpha::AllExtensionNumbersOfType(t),
        MessageRequest::ListServices(s) => Alpha::ListServices(s),
    }
}
