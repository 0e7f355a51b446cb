//! One attempt of CreateOrder or CancelOrder, over each way a shopper reaches the order
//! service, and the retried cancel.

use agora_contracts::agora::order::v1::{
    self as order_pb, order_service_client::OrderServiceClient,
};
use agora_testkit::authed;
use tonic::{Code, Status, transport::Channel};

use crate::{
    ATTEMPT_TIMEOUT, KeyRecord,
    load::Plan,
    retry::{retryable, with_retries},
};

/// How a shopper reaches the order service.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Via {
    /// gRPC, straight to the order service.
    Order,
    /// gRPC through the edge's passthrough.
    EdgeGrpc,
    /// JSON over HTTP through the edge.
    Rest,
}

impl Via {
    /// The channel of a gRPC way in; `None` for REST.
    fn channel(self, plan: &Plan) -> Option<&Channel> {
        match self {
            Via::Order => Some(&plan.order),
            Via::EdgeGrpc => Some(&plan.gateway),
            Via::Rest => None,
        }
    }

    /// The name records carry.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Via::Order => "order",
            Via::EdgeGrpc => "edge-grpc",
            Via::Rest => "rest",
        }
    }
}

/// An order as the client was told about it.
pub(crate) struct Placed {
    pub(crate) id: String,
    pub(crate) user_id: String,
    pub(crate) status: String,
}

impl From<order_pb::Order> for Placed {
    fn from(order: order_pb::Order) -> Self {
        Self {
            status: status_name(order.status),
            id: order.id,
            user_id: order.user_id,
        }
    }
}

/// One attempt of CreateOrder.
pub(crate) async fn create(
    plan: &Plan,
    via: Via,
    token: &str,
    request: &order_pb::CreateOrderRequest,
) -> Result<Placed, Status> {
    let Some(channel) = via.channel(plan) else {
        let lines: Vec<_> = request
            .lines
            .iter()
            .map(|l| serde_json::json!({"productId": l.product_id, "quantity": l.quantity.to_string()}))
            .collect();
        let body = serde_json::json!({"idempotencyKey": request.idempotency_key, "lines": lines});
        return rest(plan, token, "/v1/orders".into(), body).await;
    };
    let answer = OrderServiceClient::new(channel.clone())
        .create_order(attempt(request.clone(), token))
        .await?;
    placed(answer.into_inner().order)
}

/// One attempt of CancelOrder.
async fn cancel_once(plan: &Plan, via: Via, token: &str, order_id: &str) -> Result<Placed, Status> {
    let reason = "changed my mind";
    let Some(channel) = via.channel(plan) else {
        let path = format!("/v1/orders/{order_id}:cancel");
        return rest(plan, token, path, serde_json::json!({"reason": reason})).await;
    };
    let request = order_pb::CancelOrderRequest {
        order_id: order_id.into(),
        reason: reason.into(),
    };
    let answer = OrderServiceClient::new(channel.clone())
        .cancel_order(attempt(request, token))
        .await?;
    placed(answer.into_inner().order)
}

/// `message` as one attempt: signed with `token`, and bounded by [`ATTEMPT_TIMEOUT`].
fn attempt<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut call = authed(message, token);
    call.set_timeout(ATTEMPT_TIMEOUT);
    call
}

/// The order a gRPC answer carries, as the client was told about it.
fn placed(order: Option<order_pb::Order>) -> Result<Placed, Status> {
    order
        .map(Placed::from)
        .ok_or_else(|| Status::internal("an answer without its order"))
}

/// One POST through the edge, its answer read as an order, its error as a gRPC status (from
/// the `google.rpc.Status` body; a lost connection is UNKNOWN, a refused one UNAVAILABLE).
async fn rest(
    plan: &Plan,
    token: &str,
    path: String,
    body: serde_json::Value,
) -> Result<Placed, Status> {
    let lost = |e: reqwest::Error| {
        if e.is_connect() {
            Status::unavailable(format!("REST: {e}"))
        } else if e.is_timeout() {
            Status::deadline_exceeded(format!("REST: {e}"))
        } else {
            Status::unknown(format!("REST: {e}"))
        }
    };
    let response = plan
        .http
        .post(format!("{}{path}", plan.rest))
        .bearer_auth(token)
        .timeout(ATTEMPT_TIMEOUT)
        .json(&body)
        .send()
        .await
        .map_err(lost)?;
    let ok = response.status().is_success();
    let json: serde_json::Value = response.json().await.map_err(lost)?;
    if !ok {
        let code = json["code"]
            .as_i64()
            .and_then(|c| i32::try_from(c).ok())
            .map_or(Code::Unknown, Code::from_i32);
        return Err(Status::new(
            code,
            json["message"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let order = &json["order"];
    let text = |field: &str| order[field].as_str().unwrap_or_default().to_owned();
    Ok(Placed {
        id: text("id"),
        user_id: text("userId"),
        status: text("status")
            .trim_start_matches("ORDER_STATUS_")
            .to_lowercase(),
    })
}

/// Cancels an order (retried), noting the outcome in `record`.
pub(crate) async fn cancel(
    plan: &Plan,
    via: Via,
    token: &str,
    order_id: &str,
    record: &mut KeyRecord,
) {
    match with_retries(plan.attempts, || cancel_once(plan, via, token, order_id)).await {
        Ok(order) => {
            record.cancel = Some("done".into());
            record.status = Some(order.status);
        }
        Err((status, _)) if retryable(status.code()) => record.cancel = Some("unknown".into()),
        Err(_) => record.cancel = Some("refused".into()),
    }
}

/// The lower-case name of an order status (`confirmed`, ...).
pub(crate) fn status_name(status: i32) -> String {
    order_pb::OrderStatus::try_from(status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("ORDER_STATUS_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| format!("unknown-{status}"))
}
