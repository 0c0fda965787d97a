#!/usr/bin/env python3
"""A minimal tallyd client: JSON-RPC 2.0 over a Unix socket, one message per line.

Standard library only. Examples:

    python3 tally_client.py --socket ./tally-data/tallyd.sock provision acme --name "Acme Inc" \
        --email ops@acme.io --metadata plan=pro
    python3 tally_client.py --socket ./tally-data/tallyd.sock get acme
    python3 tally_client.py call getStatus
    python3 tally_client.py call listCustomers '{"limit": 10}'

The socket is --socket PATH, else $TALLY_SOCKET, else ./tally-data/tallyd.sock.
Results are printed as JSON on stdout. Exit status: 0 on success, 1 when the daemon answers with
an error (printed to stderr as `error CODE REASON: message`), 2 when it cannot be reached.
"""

import argparse
import json
import os
import socket
import sys

DEFAULT_SOCKET = "./tally-data/tallyd.sock"


class RPCError(Exception):
    """The daemon answered a request with a JSON-RPC error object."""

    def __init__(self, error):
        self.code = error.get("code")
        self.message = error.get("message", "")
        self.data = error.get("data") or {}
        super().__init__(f"{self.code}: {self.message}")

    def __str__(self):
        text = f"error {self.code}"
        if "reason" in self.data:
            text += f" {self.data['reason']}"
        text += f": {self.message}"
        if "field" in self.data:
            text += f" (field {self.data['field']})"
        return text


class TallyClient:
    """One connection to tallyd. Requests are answered in order, one JSON line each."""

    def __init__(self, path, timeout=30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buffer = b""
        self.next_id = 1

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read_line(self):
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("tallyd closed the connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def call(self, method, params=None):
        """Sends one request and returns its result; raises RPCError on an error reply."""
        request_id = self.next_id
        self.next_id += 1
        request = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
        line = json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
        self.sock.sendall(line)
        response = json.loads(self._read_line().decode("utf-8"))
        if "error" in response:
            # id null: the daemon refused the frame itself (too long, unparsable).
            raise RPCError(response["error"])
        if response.get("id") != request_id:
            raise ConnectionError(f"expected the response to request {request_id}, got {response.get('id')!r}")
        return response["result"]

    def provision_customer(self, customer_id, name=None, email=None, metadata=None):
        params = {"customerId": customer_id}
        if name is not None:
            params["name"] = name
        if email is not None:
            params["email"] = email
        if metadata:
            params["metadata"] = metadata
        return self.call("provisionCustomer", params)

    def get_customer(self, customer_id):
        return self.call("getCustomer", {"customerId": customer_id})


def parse_metadata(entries):
    metadata = {}
    for entry in entries or []:
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise SystemExit(f"--metadata takes key=value, got {entry!r}")
        metadata[key] = value
    return metadata


def main(argv=None):
    parser = argparse.ArgumentParser(description="A minimal tallyd client (JSON-RPC over a Unix socket).")
    parser.add_argument("--socket", help="the daemon's socket (default: $TALLY_SOCKET, then %s)" % DEFAULT_SOCKET)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the daemon")
    commands = parser.add_subparsers(dest="command", required=True)

    provision = commands.add_parser("provision", help="provisionCustomer, then getCustomer; prints both")
    provision.add_argument("customer_id")
    provision.add_argument("--name")
    provision.add_argument("--email")
    provision.add_argument("--metadata", action="append", metavar="KEY=VALUE")

    get = commands.add_parser("get", help="getCustomer")
    get.add_argument("customer_id")

    call = commands.add_parser("call", help="any method with JSON params")
    call.add_argument("method")
    call.add_argument("params", nargs="?", default="{}")

    args = parser.parse_args(argv)
    path = args.socket or os.environ.get("TALLY_SOCKET") or DEFAULT_SOCKET

    try:
        client = TallyClient(path, timeout=args.timeout)
    except OSError as error:
        print(f"error: cannot connect to tallyd at {path}: {error.strerror or error}", file=sys.stderr)
        print("hint: is tallyd running? start it with `tallyd serve`", file=sys.stderr)
        return 2

    with client:
        try:
            if args.command == "provision":
                provisioned = client.provision_customer(
                    args.customer_id, name=args.name, email=args.email, metadata=parse_metadata(args.metadata))
                fetched = client.get_customer(args.customer_id)
                print(json.dumps({"provisioned": provisioned, "customer": fetched}, ensure_ascii=False))
            elif args.command == "get":
                print(json.dumps(client.get_customer(args.customer_id), ensure_ascii=False))
            else:
                params = json.loads(args.params)
                if not isinstance(params, dict):
                    print("error: params must be a JSON object", file=sys.stderr)
                    return 2
                print(json.dumps(client.call(args.method, params), ensure_ascii=False))
        except RPCError as error:
            print(str(error), file=sys.stderr)
            return 1
        except (OSError, ConnectionError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
