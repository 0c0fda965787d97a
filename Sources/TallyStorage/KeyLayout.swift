import TallyCore

/// Every key Tally stores, in one place.
///
/// Column families:
/// - `events`: `seq (u64 big-endian)` → event record. The log; append-only.
/// - `projections`: derived state, rebuilt from the log when missing or behind.
///   - `c\0<customerId>` → Customer record
/// - `idempotency`: `<family>\0<customerId>\0<key>` → fingerprint (32 bytes) + result record. Kept forever.
/// - `meta` (the default CF): `projection.sequence` → u64 BE, the last event folded into the
///   projections; `projection.version` → u32 BE, the projection layout version.
public enum KeyLayout {
    public static let eventsFamily = "events"
    public static let projectionsFamily = "projections"
    public static let idempotencyFamily = "idempotency"
    public static let metaFamily = "default"
    public static let columnFamilies = [eventsFamily, projectionsFamily, idempotencyFamily]

    /// Bump when the projection records or keys change: the next start rebuilds them from the log.
    public static let projectionVersion: UInt32 = 1

    public static let projectionSequenceKey = Array("projection.sequence".utf8)
    public static let projectionVersionKey = Array("projection.version".utf8)

    public static func eventKey(_ sequence: UInt64) -> [UInt8] { bigEndian(sequence) }

    public static func sequence(fromEventKey key: [UInt8]) -> UInt64? {
        guard key.count == 8 else { return nil }
        return key.reduce(0) { $0 << 8 | UInt64($1) }
    }

    static let customerPrefix: [UInt8] = [UInt8(ascii: "c"), 0]

    public static func customerKey(_ customerId: String) -> [UInt8] { customerPrefix + Array(customerId.utf8) }

    /// The half-open range of all customer keys.
    public static let customerRange: (lower: [UInt8], upper: [UInt8]) = (customerPrefix, [UInt8(ascii: "c"), 1])

    public static func customerId(fromKey key: [UInt8]) -> String? {
        guard key.starts(with: customerPrefix) else { return nil }
        return String(validating: key[customerPrefix.count...], as: UTF8.self)
    }

    public static func idempotencyKey(family: String, customerId: String, key: String) -> [UInt8] {
        Array(family.utf8) + [0] + Array(customerId.utf8) + [0] + Array(key.utf8)
    }

    public static func bigEndian(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) }
    }

    public static func uint64(bigEndian bytes: [UInt8]) -> UInt64? {
        guard bytes.count == 8 else { return nil }
        return bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }
}
