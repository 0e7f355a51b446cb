"""A greeter outside Agora's contracts, served by Python's grpcio with gRPC server reflection, so
the gateway can route REST calls to it from its reflection alone.

    python tests/polyglot/greeter_server.py PORT

Generates its stubs at start (grpc_tools.protoc, `-I tests/polyglot -I proto`) into a temporary
directory, binds 127.0.0.1:PORT (0 picks a free port), prints
`greeter listening on 127.0.0.1:<port>` once it serves, and stops on SIGTERM or SIGINT.

Serves grpc.health.v1 (SERVING) beside it, like every service behind the edge.

Needs grpcio, grpcio-tools, grpcio-reflection and grpcio-health-checking (scripts/lib/python-env.sh installs them);
`google/api/annotations.proto` comes from googleapis-common-protos, a grpcio-status dependency,
so the descriptors reflection serves are complete.
"""

import importlib.resources
import signal
import sys
import tempfile
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2
from grpc_tools import protoc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PROTO = "greeter/v1/greeter.proto"
SERVICE = "polyglot.greeter.v1.GreeterService"
# grpcio-reflection registers only v1alpha; v1 has the same messages on the wire, so the same
# servicer answers it with the v1alpha message classes.
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def generate_stubs():
    """Compiles greeter.proto and imports its modules; the generated files are removed once
    loaded, since the running process keeps what it imported."""
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory(prefix="greeter-stubs-") as out:
        args = [
            "grpc_tools.protoc",
            f"-I{HERE}",
            f"-I{ROOT / 'proto'}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            PROTO,
        ]
        if protoc.main(args) != 0:
            sys.exit(f"greeter: protoc could not compile {PROTO}")
        sys.path.insert(0, out)
        try:
            from greeter.v1 import greeter_pb2, greeter_pb2_grpc
        finally:
            sys.path.remove(out)
    return greeter_pb2, greeter_pb2_grpc


def greeter_servicer(pb2, pb2_grpc):
    """The GreeterService implementation over the generated modules."""

    class Greeter(pb2_grpc.GreeterServiceServicer):
        def __init__(self):
            # Requests run on a thread pool; ids must stay unique across them.
            self._lock = threading.Lock()
            self._greetings = {}

        def Greet(self, request, context):
            times = request.times or 1
            if not 1 <= times <= 10:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "times must be between 1 and 10")
            return pb2.GreetResponse(
                greeting=" ".join([f"Hello, {request.name}!"] * times),
                times=times,
                served_by=f"python-grpcio/{grpc.__version__}",
            )

        def RecordGreeting(self, request, context):
            if not request.name or not request.text:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name and text are required")
            with self._lock:
                greeting_id = f"g-{len(self._greetings) + 1}"
                greeting = pb2.Greeting(
                    greeting_id=greeting_id, name=request.name, text=request.text
                )
                self._greetings[greeting_id] = greeting
            return pb2.RecordGreetingResponse(greeting=greeting)

        def GetGreeting(self, request, context):
            with self._lock:
                greeting = self._greetings.get(request.greeting_id)
            if greeting is None:
                context.abort(
                    grpc.StatusCode.NOT_FOUND, f"no greeting with id {request.greeting_id}"
                )
            return pb2.GetGreetingResponse(greeting=greeting)

    return Greeter()


def add_reflection_v1(server):
    """Serves grpc.reflection.v1 for the greeter (and for reflection itself)."""
    servicer = reflection.ReflectionServicer([SERVICE, REFLECTION_V1])
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": handler}),)
    )


def main():
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: greeter_server.py PORT")
    pb2, pb2_grpc = generate_stubs()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb2_grpc.add_GreeterServiceServicer_to_server(greeter_servicer(pb2, pb2_grpc), server)
    add_reflection_v1(server)
    # grpc.health.v1, as every service behind the edge has: the edge checks it in the background
    # (its /readyz/upstreams report) and refuses calls at once while it cannot be reached.
    health_servicer = health.HealthServicer()
    for name in (SERVICE, ""):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
    if port == 0:
        sys.exit(f"greeter: cannot bind 127.0.0.1:{sys.argv[1]}")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    print(f"greeter listening on 127.0.0.1:{port}", flush=True)
    stop.wait()
    # In-flight calls get a second to finish.
    server.stop(grace=1).wait()


if __name__ == "__main__":
    main()
