/// Rules for the ids every method takes (customerId, featureId, idempotencyKey, dimension keys…):
/// non-empty UTF-8, at most `Identifier.bytesMax` bytes.
public enum Identifier {
    public static let bytesMax = 256

    /// Why `text` is not a valid id, or nil when it is.
    public static func problem(with text: String) -> String? {
        let count = text.utf8.count
        if count == 0 { return "must not be empty" }
        if count > bytesMax { return "must be at most \(bytesMax) bytes (got \(count))" }
        // A NUL byte would collide with the separator in composite storage keys.
        if text.utf8.contains(0) { return "must not contain NUL characters" }
        return nil
    }
}

/// Tells whether two values differ; used by upserts to append nothing when nothing changes.
public enum FieldChange<Value: Sendable & Equatable>: Sendable, Equatable {
    case unchanged
    case set(Value)
    case cleared

    /// `.cleared` when the field was an explicit null, else `.set(value)`, or `.unchanged` for nil.
    public init(_ value: Value?, cleared: Bool) {
        self = cleared ? .cleared : value.map { .set($0) } ?? .unchanged
    }

    public func applied(to current: Value?) -> Value? {
        switch self {
        case .unchanged: current
        case .set(let value): value
        case .cleared: nil
        }
    }

    /// The change that takes `current` to `requested` (nil requested = leave as is).
    public static func from(current: Value?, requested: FieldChange<Value>) -> FieldChange<Value> {
        switch requested {
        case .unchanged: .unchanged
        case .set(let value): current == value ? .unchanged : .set(value)
        case .cleared: current == nil ? .unchanged : .cleared
        }
    }

    public var isUnchanged: Bool { if case .unchanged = self { true } else { false } }
}

extension ByteWriter {
    public mutating func writeChange<T>(_ change: FieldChange<T>, _ write: (inout ByteWriter, T) -> Void) {
        switch change {
        case .unchanged: writeByte(0)
        case .set(let value):
            writeByte(1)
            write(&self, value)
        case .cleared: writeByte(2)
        }
    }
}

extension ByteReader {
    public mutating func readChange<T>(_ read: (inout ByteReader) throws(DecodingError) -> T) throws(DecodingError) -> FieldChange<T> {
        switch try readByte() {
        case 0: return .unchanged
        case 1: return .set(try read(&self))
        case 2: return .cleared
        case let other: throw DecodingError("bad field-change byte \(other)")
        }
    }
}
