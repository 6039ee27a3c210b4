"""Interop test: Python's standard grpcio against pemis-server's gRPC over HTTP/2 listener.

Stubs come from Protos/ at run time (run.sh). The server must already hold a kindergarten with at
least one enrolled child whose ID number is given; the Swift test HTTP2InteropTests seeds one.

Checks: Health; login; ListChildren of the caller's kindergarten with every ID number and record
number masked; the same call without a session refused with UNAUTHENTICATED; another
kindergarten's children refused with PERMISSION_DENIED; a deadline travels as grpc-timeout.
With --ca-file the channel is TLS (grpc.ssl_channel_credentials), the server verified against that
CA, and a plaintext channel to the same listener must not become ready.
Prints one line per check and exits 1 if any failed.
"""

import argparse
import sys

import grpc

from pemis.v1 import children_pb2, children_pb2_grpc
from pemis.v1 import health_pb2, health_pb2_grpc
from pemis.v1 import session_pb2, session_pb2_grpc

failures = []


def check(name, condition, detail=""):
    print(("ok    " if condition else "FAIL  ") + name + ("" if condition else f": {detail}"))
    if not condition:
        failures.append(name)


def mask(number):
    """What the server shows in lists: at most a third of the characters, from the two ends
    (the end gets the larger half), '*' between."""
    shown = len(number) // 3
    tail = (shown + 1) // 2
    head = shown - tail
    return number[:head] + "*" * (len(number) - shown) + (number[-tail:] if tail else "")


def refused(call, *args, **kwargs):
    """The grpc.RpcError a call ends with, or None if it succeeded."""
    try:
        call(*args, **kwargs)
    except grpc.RpcError as error:
        return error
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="HOST:PORT of the HTTP/2 listener")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--kindergarten", required=True, help="the user's kindergarten")
    parser.add_argument("--other-kindergarten", required=True, help="a kindergarten the user may not read")
    parser.add_argument("--enrolled-id", required=True, help="full ID number of a child enrolled there")
    parser.add_argument("--ca-file", help="TLS: verify the server against this CA (PEM); default plaintext")
    args = parser.parse_args()

    # Loopback only: never let an http_proxy in the environment carry the call elsewhere.
    options = [("grpc.enable_http_proxy", 0)]
    if args.ca_file:
        with open(args.ca_file, "rb") as pem:
            credentials = grpc.ssl_channel_credentials(root_certificates=pem.read())
        # A plaintext channel to the TLS listener never becomes ready.
        with grpc.insecure_channel(args.server, options=options) as plain:
            try:
                grpc.channel_ready_future(plain).result(timeout=3)
                check("a plaintext channel to the TLS listener is refused", False, "it became ready")
            except grpc.FutureTimeoutError:
                check("a plaintext channel to the TLS listener is refused", True)
        channel = grpc.secure_channel(args.server, credentials, options=options)
    else:
        channel = grpc.insecure_channel(args.server, options=options)
    with channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        health = health_pb2_grpc.HealthStub(channel)
        session = session_pb2_grpc.SessionStub(channel)
        children = children_pb2_grpc.ChildRecordsStub(channel)

        status = health.Check(health_pb2.HealthCheckRequest(), timeout=30)
        check("Health over HTTP/2 is SERVING", status.status == health_pb2.HealthCheckResponse.SERVING, str(status))
        check("Health reports protocol 0 (not PEMIS wire)", status.protocol_version == 0, str(status))

        login = session.Login(session_pb2.LoginRequest(username=args.user, password=args.password), timeout=30)
        check("Login returns a session token", len(login.token) > 0)
        check("Login needs no password change", not login.password_change_required)
        auth = [("authorization", "Bearer " + login.token)]

        listed = children.ListChildren(
            children_pb2.ListChildrenRequest(kindergarten_code=args.kindergarten), metadata=auth, timeout=30
        )
        numbers = [child.id_document_number for child in listed.children]
        check("ListChildren returns the enrolled child", mask(args.enrolled_id) in numbers, f"got {numbers}")
        check("page info counts the children", listed.page.total_count == len(listed.children), str(listed.page))
        leaked = [
            child for child in listed.children
            if args.enrolled_id in child.id_document_number or args.enrolled_id in child.record_number
        ]
        check("no full ID number in the list", not leaked, f"{len(leaked)} children unmasked")
        check(
            "every ID number is masked (at most a third shows)",
            all("*" in n and 3 * sum(c != "*" for c in n) <= len(n) for n in numbers),
            f"got {numbers}",
        )
        records = [child.record_number for child in listed.children]
        check(
            "record numbers are masked too",
            mask("G" + args.enrolled_id) in records,
            f"got {records}",
        )

        own = children.ListChildren(children_pb2.ListChildrenRequest(), metadata=auth, timeout=30)
        check(
            "an empty kindergarten_code means the caller's own",
            [c.id_document_number for c in own.children] == numbers,
            f"got {[c.id_document_number for c in own.children]}",
        )

        error = refused(
            children.ListChildren, children_pb2.ListChildrenRequest(kindergarten_code=args.kindergarten), timeout=30
        )
        check(
            "without a session: UNAUTHENTICATED",
            error is not None and error.code() == grpc.StatusCode.UNAUTHENTICATED,
            error and f"{error.code()} {error.details()}",
        )
        check(
            "the refusal says what is missing",
            error is not None and "missing session token" in (error.details() or ""),
            error and error.details(),
        )

        error = refused(
            children.ListChildren,
            children_pb2.ListChildrenRequest(kindergarten_code=args.other_kindergarten),
            metadata=auth,
            timeout=30,
        )
        check(
            "another kindergarten's children: PERMISSION_DENIED",
            error is not None and error.code() == grpc.StatusCode.PERMISSION_DENIED,
            error and f"{error.code()} {error.details()}",
        )
        check(
            "the refusal names the method and the scope",
            error is not None
            and "/pemis.v1.ChildRecords/ListChildren" in (error.details() or "")
            and "scope" in (error.details() or ""),
            error and error.details(),
        )

        error = refused(
            children.ListChildren,
            children_pb2.ListChildrenRequest(kindergarten_code="not-a-code"),
            metadata=[("authorization", "Bearer not-a-session")],
            timeout=30,
        )
        check(
            "an unknown session token: UNAUTHENTICATED",
            error is not None and error.code() == grpc.StatusCode.UNAUTHENTICATED,
            error and f"{error.code()} {error.details()}",
        )

        session.Logout(session_pb2.LogoutRequest(), metadata=auth, timeout=30)
        error = refused(children.ListChildren, children_pb2.ListChildrenRequest(), metadata=auth, timeout=30)
        check(
            "after Logout the token is refused: UNAUTHENTICATED",
            error is not None and error.code() == grpc.StatusCode.UNAUTHENTICATED,
            error and f"{error.code()} {error.details()}",
        )

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
