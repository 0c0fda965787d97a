public import TallyProtocol

/// A JSON-RPC error answered by the daemon: the request reached it and was refused.
///
/// `code` is a JSON-RPC standard code (-32700…-32603) or a domain code from the protocol's error
/// table (1001 CUSTOMER_NOT_FOUND, 1010 INSUFFICIENT_CREDITS, …); domain errors carry a stable
/// `data.reason` string, invalid-params errors a `data.field` naming the offending field.
public struct RPCError: Error, Sendable, CustomStringConvertible {
    /// The numeric error code, stable across releases.
    public let code: Int
    /// A human-readable message; not stable, do not match on it.
    public let message: String
    /// The `data` member of the error object, if any.
    public let data: JSONValue?

    /// Creates an error value (for tests and fakes; the connection builds these from responses).
    public init(code: Int, message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    /// The stable `data.reason` string of a domain error (`"CUSTOMER_NOT_FOUND"`), if present.
    public var reason: String? { data?["reason"]?.stringValue }

    /// The `data.field` of an invalid-params error (-32602), if present.
    public var field: String? { data?["field"]?.stringValue }

    /// `message (code C, REASON)`; invalid-params errors name the field instead of a reason.
    public var description: String {
        var detail = "code \(code)"
        if let reason { detail += ", \(reason)" }
        if let field { detail += ", field \(field)" }
        return "\(message) (\(detail))"
    }
}

/// A failure of the transport: the daemon could not be reached, or the conversation broke.
///
/// Unlike ``RPCError`` the outcome of an in-flight command is unknown after `.io`, `.closed` or
/// `.protocolViolation`: retry it with the same idempotency key.
public enum ClientError: Error, Sendable, CustomStringConvertible {
    /// `connect(2)` on the socket failed; `hint` says what to do about it in words.
    case connectFailed(path: String, errno: Int32, hint: String)
    /// A read or write failed, or timed out.
    case io(String)
    /// The daemon sent something that is not a JSON-RPC response to what was asked.
    case protocolViolation(String)
    /// The connection is closed (by the daemon, or by ``TallyConnection/close()``).
    case closed

    public var description: String {
        switch self {
        case .connectFailed(let path, let errno, let hint):
            return "cannot connect to tallyd at \(path): \(errorDescription(errno)) (\(hint))"
        case .io(let detail):
            return "I/O error talking to tallyd: \(detail)"
        case .protocolViolation(let detail):
            return "protocol violation from tallyd: \(detail)"
        case .closed:
            return "the connection to tallyd is closed"
        }
    }
}
