/// A failure reported by RocksDB through one of its `char** errptr` out-parameters.
///
/// The text is RocksDB's own `Status::ToString()`, copied into Swift before the C
/// string is released with `rocksdb_free`, so the error can outlive the call and
/// cross isolation boundaries.
public struct RocksDBError: Error, Sendable, CustomStringConvertible {
    /// The RocksDB status code, recovered from the message prefix because the C
    /// API only hands back the formatted string, not the code.
    public enum Kind: Sendable {
        case notFound, corruption, notSupported, invalidArgument, ioError, busy, timedOut, incomplete, other
    }

    /// The status code RocksDB reported, derived from the message prefix.
    public let kind: Kind
    /// Which wrapper operation failed, e.g. `"open"`, `"write"`, `"get"`, `"checkpoint"`.
    public let operation: String
    /// RocksDB's own error text, e.g. `"IO error: While lock file: …"`.
    public let message: String

    /// `"rocksdb <operation> failed: <message>"`.
    public var description: String { "rocksdb \(operation) failed: \(message)" }

    init(operation: String, message: String) {
        self.operation = operation
        self.message = message
        self.kind = Self.kind(ofMessage: message)
    }

    /// Prefixes are those written by `rocksdb::Status::ToString()` (status.cc).
    /// Matching is anchored at the start so a path or key inside the message
    /// cannot change the classification.
    private static let prefixes: [(String, Kind)] = [
        ("NotFound", .notFound),
        ("Corruption", .corruption),
        ("Not implemented", .notSupported),
        ("Invalid argument", .invalidArgument),
        ("IO error", .ioError),
        ("Resource busy", .busy),
        ("Operation failed. Try again.", .busy),
        ("Operation timed out", .timedOut),
        ("Result incomplete", .incomplete),
    ]

    static func kind(ofMessage message: String) -> Kind {
        for (prefix, kind) in prefixes where message.hasPrefix(prefix) {
            return kind
        }
        return .other
    }
}
