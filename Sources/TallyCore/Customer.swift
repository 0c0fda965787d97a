/// The customer projection: a fold of CUSTOMER_* events. Shaped after the seed "Stigg Customer".
public struct Customer: Sendable, Equatable {
    public var id: String
    public var name: String?
    public var email: String?
    /// Key-value metadata, sorted by key.
    public var metadata: [(String, String)]
    public var createdAt: Timestamp
    public var updatedAt: Timestamp
    /// Sequence of the last event that changed this customer.
    public var lastSequence: UInt64

    public init(id: String, name: String?, email: String?, metadata: [(String, String)], createdAt: Timestamp, updatedAt: Timestamp, lastSequence: UInt64) {
        self.id = id
        self.name = name
        self.email = email
        self.metadata = metadata
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.lastSequence = lastSequence
    }

    public static func == (a: Customer, b: Customer) -> Bool {
        a.id == b.id && a.name == b.name && a.email == b.email
            && a.metadata.elementsEqual(b.metadata, by: { $0 == $1 })
            && a.createdAt == b.createdAt && a.updatedAt == b.updatedAt && a.lastSequence == b.lastSequence
    }

    static let recordVersion: UInt8 = 1

    /// The stored projection record.
    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.writeByte(Self.recordVersion)
        w.writeString(id)
        w.writeOptional(name) { $0.writeString($1) }
        w.writeOptional(email) { $0.writeString($1) }
        w.writeStringMap(metadata)
        w.writeTimestamp(createdAt)
        w.writeTimestamp(updatedAt)
        w.writeVarUInt(lastSequence)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> Customer {
        var r = ByteReader(bytes)
        let version = try r.readByte()
        guard version == recordVersion else { throw DecodingError("customer record version \(version) unknown") }
        let customer = Customer(
            id: try r.readString(),
            name: try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() },
            email: try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() },
            metadata: try r.readStringMap(),
            createdAt: try r.readTimestamp(),
            updatedAt: try r.readTimestamp(),
            lastSequence: try r.readVarUInt()
        )
        try r.expectEnd()
        return customer
    }
}
