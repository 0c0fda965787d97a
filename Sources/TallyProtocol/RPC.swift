public import TallyCore

/// A JSON-RPC 2.0 request id: a string, a number (its exact text) or null. Absent = notification.
public enum RPCID: Sendable, Hashable {
    case string(String)
    case number(String)
    case null

    public var json: JSONValue {
        switch self {
        case .string(let s): .string(s)
        case .number(let n): .number(n)
        case .null: .null
        }
    }
}

/// An error reply: a JSON-RPC error object with a stable code, a message and `data`.
public struct RPCFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: Int
    public var message: String
    public var data: JSONObject?

    public init(code: Int, message: String, data: JSONObject? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public var description: String { "\(code): \(message)" }

    public static let parseErrorCode = -32700
    public static let invalidRequestCode = -32600
    public static let methodNotFoundCode = -32601
    public static let invalidParamsCode = -32602
    public static let internalErrorCode = -32603
    public static let storageUnavailableCode = 2001
    public static let overloadedCode = 2002
    public static let permissionDeniedCode = 2003

    public static func parseError(_ message: String) -> RPCFailure {
        RPCFailure(code: parseErrorCode, message: "Parse error: \(message)")
    }

    public static func invalidRequest(_ message: String) -> RPCFailure {
        RPCFailure(code: invalidRequestCode, message: "Invalid Request: \(message)")
    }

    public static func methodNotFound(_ method: String) -> RPCFailure {
        RPCFailure(code: methodNotFoundCode, message: "Method not found: \(method)", data: ["method": .string(method)])
    }

    /// -32602 naming the offending field (a dotted path such as `metadata.plan` or `usages[3].value`).
    public static func invalidParams(field: String, _ message: String) -> RPCFailure {
        RPCFailure(code: invalidParamsCode, message: "Invalid params: \(field) \(message)", data: ["field": .string(field)])
    }

    /// This -32602 with its field put under `path` (`value` becomes `usages[3].value`), for an
    /// item of a call that carries several; any other failure, or a field already under `path`,
    /// is returned as it is.
    public func under(_ path: String) -> RPCFailure {
        guard code == Self.invalidParamsCode, case .string(let field)? = data?["field"], field != path, !field.hasPrefix(path + ".") else { return self }
        let prefix = "Invalid params: \(field) "
        return .invalidParams(field: "\(path).\(field)", message.hasPrefix(prefix) ? String(message.dropFirst(prefix.count)) : message)
    }

    public static func internalError(_ message: String) -> RPCFailure {
        RPCFailure(code: internalErrorCode, message: "Internal error: \(message)")
    }

    public static func storageUnavailable(_ message: String) -> RPCFailure {
        RPCFailure(code: storageUnavailableCode, message: message, data: ["reason": "STORAGE_UNAVAILABLE"])
    }

    public static func overloaded(_ message: String) -> RPCFailure {
        RPCFailure(code: overloadedCode, message: message, data: ["reason": "OVERLOADED"])
    }

    public static func rejected(_ rejection: Rejection) -> RPCFailure {
        if rejection.code == .invalidParams {
            return .invalidParams(field: rejection.field ?? "params", rejection.message)
        }
        return RPCFailure(code: rejection.code.rawValue, message: rejection.message, data: ["reason": .string(rejection.code.reason)])
    }
}

/// One element of a request line, checked against JSON-RPC 2.0.
public struct RPCRequest: Sendable {
    public var id: RPCID?
    public var method: String
    /// `params` as given, or empty when absent.
    public var params: JSONObject

    public var isNotification: Bool { id == nil }

    /// Validates the envelope. On failure returns the error and the id to answer it with (null
    /// when the id itself is unusable).
    public static func parse(_ value: JSONValue) -> Result<RPCRequest, EnvelopeError> {
        guard case .object(let object) = value else {
            return .failure(EnvelopeError(failure: .invalidRequest("a request must be a JSON object, not \(value.typeName)"), id: .null))
        }
        var id: RPCID?
        switch object["id"] {
        case nil: id = nil
        case .string(let s)?: id = .string(s)
        case .number(let n)?: id = .number(n)
        case .null?: id = .null
        case let other?:
            return .failure(EnvelopeError(failure: .invalidRequest("id must be a string, a number or null, not \(other.typeName)"), id: .null))
        }
        let replyID = id ?? .null
        for key in object.keys where !["jsonrpc", "id", "method", "params"].contains(key) {
            return .failure(EnvelopeError(failure: .invalidRequest("unknown member \"\(key)\""), id: replyID))
        }
        guard object["jsonrpc"] == .string("2.0") else {
            return .failure(EnvelopeError(failure: .invalidRequest("jsonrpc must be \"2.0\""), id: replyID))
        }
        guard let methodValue = object["method"] else {
            return .failure(EnvelopeError(failure: .invalidRequest("method is missing"), id: replyID))
        }
        guard case .string(let method) = methodValue else {
            return .failure(EnvelopeError(failure: .invalidRequest("method must be a string, not \(methodValue.typeName)"), id: replyID))
        }
        var params = JSONObject()
        switch object["params"] {
        case nil: break
        case .object(let p)?: params = p
        case let other?:
            // A well-formed notification is never answered, even when its params are unusable.
            return .failure(EnvelopeError(failure: RPCFailure.invalidParams(field: "params", "must be an object (named params), not \(other.typeName)"), id: replyID, isNotification: id == nil))
        }
        return .success(RPCRequest(id: id, method: method, params: params))
    }
}

/// An envelope that is not a valid request, and the id to answer it with.
public struct EnvelopeError: Error, Sendable {
    public var failure: RPCFailure
    public var id: RPCID
    /// The element is a valid notification (no id) whose params are unusable: it gets no reply.
    public var isNotification = false
}

/// Response encoding: one compact JSON object per reply.
public enum RPCResponse {
    public static func success(id: RPCID, result: JSONValue) -> JSONValue {
        .object(JSONObject([("jsonrpc", "2.0"), ("id", id.json), ("result", result)]))
    }

    public static func failure(id: RPCID, error: RPCFailure) -> JSONValue {
        .object(JSONObject([("jsonrpc", "2.0"), ("id", id.json), ("error", errorObject(error))]))
    }

    /// The JSON-RPC error object `{code, message, data?}`.
    public static func errorObject(_ error: RPCFailure) -> JSONValue {
        var object = JSONObject([("code", .integer(error.code)), ("message", .string(error.message))])
        if let data = error.data { object["data"] = .object(data) }
        return .object(object)
    }
}
