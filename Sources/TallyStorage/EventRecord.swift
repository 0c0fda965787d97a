import Crypto
public import TallyCore

/// The stored form of one event, and the hash chain over them.
///
/// Layout (docs/events.md): `format u8 = 1`, `type` (string), `schemaVersion` (varint),
/// `recordedAt` (zig-zag varint, µs since the epoch), `prevHash` (32 bytes), then the payload.
/// The event's hash is SHA-256 over `sequence (u64 BE) ‖ record`, so both the bytes and their
/// place in the log are covered; the next event carries it as its `prevHash`.
public struct EventRecord: Sendable {
    public static let format: UInt8 = 1
    public static let hashBytes = 32
    /// The `prevHash` of the first event.
    public static let genesisHash = [UInt8](repeating: 0, count: hashBytes)

    public let event: Event
    public let prevHash: [UInt8]
    /// This event's own hash (computed, not stored).
    public let hash: [UInt8]
    public let bytes: [UInt8]

    /// Encodes `payload` as event `sequence`, chained to `prevHash`.
    public init(sequence: UInt64, recordedAt: Timestamp, payload: EventPayload, prevHash: [UInt8]) {
        precondition(prevHash.count == Self.hashBytes)
        var w = ByteWriter(capacity: 96)
        w.writeByte(Self.format)
        w.writeString(payload.type)
        w.writeVarUInt(UInt64(payload.schemaVersion))
        w.writeTimestamp(recordedAt)
        w.writeRaw(prevHash)
        payload.encodePayload(into: &w)
        self.event = Event(sequence: sequence, recordedAt: recordedAt, payload: payload)
        self.prevHash = prevHash
        self.bytes = w.bytes
        self.hash = Self.hash(sequence: sequence, record: w.bytes)
    }

    /// Decodes a stored record.
    /// - Throws: `DecodingError` when the bytes are damaged or of a format this build does not read.
    public init(sequence: UInt64, bytes: [UInt8]) throws(DecodingError) {
        var r = ByteReader(bytes)
        let format = try r.readByte()
        guard format == Self.format else { throw DecodingError("event \(sequence): record format \(format) unknown") }
        let type = try r.readString()
        let version = try r.readVarUInt()
        guard version <= UInt64(UInt16.max) else { throw DecodingError("event \(sequence): schema version \(version) out of range") }
        let recordedAt = try r.readTimestamp()
        let prevHash = try r.readRaw(count: Self.hashBytes)
        let payload = try EventPayload.decode(type: type, schemaVersion: UInt16(version), payload: &r)
        try r.expectEnd()
        self.event = Event(sequence: sequence, recordedAt: recordedAt, payload: payload)
        self.prevHash = prevHash
        self.bytes = bytes
        self.hash = Self.hash(sequence: sequence, record: bytes)
    }

    public static func hash(sequence: UInt64, record: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: KeyLayout.bigEndian(sequence))
        hasher.update(data: record)
        return Array(hasher.finalize())
    }
}

extension Array where Element == UInt8 {
    /// Lowercase hex, for hashes in replies and logs.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension EventRecord {
    /// SHA-256 of arbitrary bytes (idempotency fingerprints use it too).
    public static func sha256(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }
}
