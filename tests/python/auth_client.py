"""A client generated from proto/ in another language (Python grpcio) against a running auth
service: proof that the contracts are usable outside Rust, rich errors included.

Run by scripts/e2e-python-client.sh, which generates the stubs and starts the mesh."""

import os
import sys
import uuid

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from agora.auth.v1 import auth_pb2, auth_pb2_grpc

passed = 0


def check(condition, what):
    global passed
    if not condition:
        print(f"python: FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    passed += 1
    print(f"python: ok: {what}")


channel = grpc.insecure_channel(os.environ["AGORA_AUTH_ADDR"])
auth = auth_pb2_grpc.AuthServiceStub(channel)
email = f"py.{uuid.uuid4().hex}@example.com"

registered = auth.Register(auth_pb2.RegisterRequest(email=email, password="correct horse 7"))
check(len(registered.user_id) == 36 and registered.tokens.token_type == "Bearer", "register")

login = auth.Login(auth_pb2.LoginRequest(email=email, password="correct horse 7"))
check(login.user_id == registered.user_id, "login returns the same account")

sessions = auth.ListSessions(
    auth_pb2.ListSessionsRequest(),
    metadata=[("authorization", f"Bearer {login.tokens.access_token}")],
)
check(len(sessions.sessions) == 2, "a signed-in call lists both sessions")

jwks = auth.GetJwks(auth_pb2.GetJwksRequest())
check(jwks.keys[0].kty == "OKP" and jwks.keys[0].crv == "Ed25519", "JWKS")

try:
    auth.Register(auth_pb2.RegisterRequest(email="nope", password="short"))
    check(False, "invalid registration is refused")
except grpc.RpcError as error:
    check(error.code() == grpc.StatusCode.INVALID_ARGUMENT, "invalid registration is INVALID_ARGUMENT")
    status = rpc_status.from_call(error)
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            fields = [v.field for v in bad_request.field_violations]
    check(fields == ["email", "password"], "field violations decode in Python")

try:
    auth.ListSessions(auth_pb2.ListSessionsRequest())
    check(False, "no token is refused")
except grpc.RpcError as error:
    check(error.code() == grpc.StatusCode.UNAUTHENTICATED, "no token is UNAUTHENTICATED")

print(f"python: {passed} passed, 0 failed")
