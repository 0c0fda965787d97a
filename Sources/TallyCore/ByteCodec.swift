/// The compact binary encoding used for event payloads, projection records and stored results.
///
/// Unsigned integers are LEB128 varints, signed ones zig-zag varints, strings a varint byte count
/// then UTF-8, optionals a presence byte. Fields are written in a fixed order per schema version;
/// docs/events.md gives the rules for evolving them.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func writeByte(_ value: UInt8) { bytes.append(value) }

    public mutating func writeRaw(_ raw: some Sequence<UInt8>) { bytes.append(contentsOf: raw) }

    public mutating func writeVarUInt(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    public mutating func writeVarInt(_ value: Int64) {
        writeVarUInt(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    public mutating func writeVarUInt128(_ value: UInt128) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: v))
    }

    public mutating func writeString(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            writeVarUInt(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    /// Length-prefixed bytes (a nested record).
    public mutating func writeBytes(_ value: [UInt8]) {
        writeVarUInt(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func writeBool(_ value: Bool) { bytes.append(value ? 1 : 0) }

    public mutating func writeAmount(_ value: Amount) {
        let u = value.units
        writeVarUInt128(UInt128(bitPattern: (u << 1) ^ (u >> 127)))
    }

    public mutating func writeTimestamp(_ value: Timestamp) { writeVarInt(value.microsecondsSinceEpoch) }

    public mutating func writeOptional<T>(_ value: T?, _ write: (inout ByteWriter, T) -> Void) {
        if let value {
            bytes.append(1)
            write(&self, value)
        } else {
            bytes.append(0)
        }
    }

    public mutating func writeArray<T>(_ values: [T], _ write: (inout ByteWriter, T) -> Void) {
        writeVarUInt(UInt64(values.count))
        for value in values { write(&self, value) }
    }

    public mutating func writeStringMap(_ pairs: [(String, String)]) {
        writeVarUInt(UInt64(pairs.count))
        for (key, value) in pairs {
            writeString(key)
            writeString(value)
        }
    }
}

/// A record's bytes did not decode: truncated, malformed, or of a version this build does not know.
public struct DecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "undecodable record: \(reason)" }
}

/// Reads what `ByteWriter` wrote. Every read throws `DecodingError` rather than trapping, because
/// the bytes come from disk and may be damaged.
public struct ByteReader {
    private let bytes: [UInt8]
    public private(set) var offset: Int

    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    public var isAtEnd: Bool { offset >= bytes.count }
    public var remaining: Int { bytes.count - offset }

    public mutating func readByte() throws(DecodingError) -> UInt8 {
        guard offset < bytes.count else { throw DecodingError("truncated at byte \(offset)") }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func readRaw(count: Int) throws(DecodingError) -> [UInt8] {
        guard count >= 0, count <= remaining else { throw DecodingError("truncated: \(count) bytes wanted at \(offset)") }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// What `writeBytes` wrote.
    public mutating func readBytes() throws(DecodingError) -> [UInt8] {
        let count = try readVarUInt()
        guard count <= UInt64(remaining) else { throw DecodingError("byte string length \(count) beyond record end") }
        return try readRaw(count: Int(count))
    }

    public mutating func readRest() -> [UInt8] {
        defer { offset = bytes.count }
        return Array(bytes[offset...])
    }

    public mutating func readVarUInt() throws(DecodingError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try readByte()
            guard shift < 64 else { throw DecodingError("varint too long at byte \(offset)") }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    public mutating func readVarInt() throws(DecodingError) -> Int64 {
        let raw = try readVarUInt()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    public mutating func readVarUInt128() throws(DecodingError) -> UInt128 {
        var result: UInt128 = 0
        var shift: UInt128 = 0
        while true {
            let byte = try readByte()
            guard shift < 128 else { throw DecodingError("varint too long at byte \(offset)") }
            result |= UInt128(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    public mutating func readInt() throws(DecodingError) -> Int {
        let value = try readVarInt()
        guard let int = Int(exactly: value) else { throw DecodingError("integer out of range") }
        return int
    }

    public mutating func readString() throws(DecodingError) -> String {
        let count = try readVarUInt()
        guard count <= UInt64(remaining) else { throw DecodingError("string length \(count) beyond record end") }
        let start = offset
        offset += Int(count)
        // Ids and dimension values are nearly always ASCII, which is valid UTF-8 as it is: the
        // buffer goes to String unchecked (one non-generic copy). Anything else is validated.
        let end = offset
        let string: String? = bytes.withUnsafeBufferPointer { buffer in
            let slice = UnsafeBufferPointer(rebasing: buffer[start..<end])
            if Self.isASCII(slice) { return String(decoding: slice, as: UTF8.self) }
            return String(validating: slice, as: UTF8.self)
        }
        guard let string else { throw DecodingError("invalid UTF-8 in string at byte \(start)") }
        return string
    }

    private static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var high: UInt8 = 0
        for byte in bytes { high |= byte }
        return high < 0x80
    }

    public mutating func readBool() throws(DecodingError) -> Bool {
        switch try readByte() {
        case 0: return false
        case 1: return true
        case let other: throw DecodingError("bad boolean byte \(other)")
        }
    }

    /// Amounts the ledger's rules bound (credits, limits, costs, reported values, each below 10^21
    /// and their balances near it): beyond 10^24 the record is damaged. The bound keeps every sum
    /// the projections make of a few such amounts far inside `Int128`, so none can trap.
    public mutating func readAmount() throws(DecodingError) -> Amount {
        let amount = try readUsageTotal()
        guard amount.units.magnitude <= Self.amountUnitsMax else { throw DecodingError("amount \(amount) out of the ledger's range") }
        return amount
    }

    static let amountUnitsMax = UInt128(1_000_000_000_000_000_000_000_000) * UInt128(Amount.unitsPerOne.magnitude)

    /// A usage total, which may be any `Int128` (sums of usage are not bounded like credits).
    public mutating func readUsageTotal() throws(DecodingError) -> Amount {
        let raw = try readVarUInt128()
        return Amount(units: Int128(bitPattern: (raw >> 1) ^ (0 &- (raw & 1))))
    }

    /// A count (`Int`), from an unsigned varint.
    public mutating func readCount() throws(DecodingError) -> Int {
        guard let count = Int(exactly: try readVarUInt()) else { throw DecodingError("count out of range") }
        return count
    }

    /// A definition's version (`UInt32`), below its maximum so the next version still fits.
    public mutating func readVersion() throws(DecodingError) -> UInt32 {
        guard let version = UInt32(exactly: try readVarUInt()), version < .max else { throw DecodingError("version out of range") }
        return version
    }

    public mutating func readTimestamp() throws(DecodingError) -> Timestamp {
        Timestamp(microsecondsSinceEpoch: try readVarInt())
    }

    public mutating func readOptional<T>(_ read: (inout ByteReader) throws(DecodingError) -> T) throws(DecodingError) -> T? {
        switch try readByte() {
        case 0: return nil
        case 1: return try read(&self)
        case let other: throw DecodingError("bad presence byte \(other)")
        }
    }

    public mutating func readArray<T>(_ read: (inout ByteReader) throws(DecodingError) -> T) throws(DecodingError) -> [T] {
        let count = try readVarUInt()
        // Every element takes at least one byte, so a count beyond what is left is damage, not data.
        guard count <= UInt64(remaining) else { throw DecodingError("array count \(count) beyond record end") }
        var values: [T] = []
        values.reserveCapacity(Int(count))
        for _ in 0..<count { values.append(try read(&self)) }
        return values
    }

    /// Pairs with distinct keys (metadata, dimensions): a repeated key is damage.
    public mutating func readStringMap() throws(DecodingError) -> [(String, String)] {
        let count = try readVarUInt()
        // Not through readArray: a generic over a tuple type looks up its metadata on every call.
        guard count <= UInt64(remaining) else { throw DecodingError("array count \(count) beyond record end") }
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(Int(count))
        for _ in 0..<count { pairs.append((try readString(), try readString())) }
        // By bytes (String's == is canonical equivalence, and "é" and "e\u{301}" are two JSON keys),
        // pair by pair: maps hold a few keys (at most 64), and replay decodes one per event.
        for i in pairs.indices.dropFirst() {
            for j in 0..<i where pairs[i].0.utf8.elementsEqual(pairs[j].0.utf8) { throw DecodingError("key \"\(pairs[i].0)\" repeated in a map") }
        }
        return pairs
    }

    /// Throws unless every byte was consumed: trailing bytes mean the writer and reader disagree.
    public func expectEnd() throws(DecodingError) {
        guard isAtEnd else { throw DecodingError("\(remaining) unexpected trailing bytes") }
    }
}
