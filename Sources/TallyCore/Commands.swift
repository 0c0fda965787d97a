/// A request to change the ledger, already validated for shape by the protocol layer.
public enum Command: Sendable {
    case provisionCustomer(ProvisionCustomer)

    /// The idempotency scope: keys are unique per method family and customer.
    public var idempotencyScope: (family: String, customerId: String) {
        switch self {
        case .provisionCustomer(let c): ("customer", c.customerId)
        }
    }
}

/// provisionCustomer: create the customer, or update the given fields of an existing one.
public struct ProvisionCustomer: Sendable {
    public var customerId: String
    public var name: FieldChange<String>
    public var email: FieldChange<String>
    /// nil = leave as is; a map replaces the whole metadata.
    public var metadata: [(String, String)]?
    public var idempotencyKey: String?

    public init(customerId: String, name: FieldChange<String> = .unchanged, email: FieldChange<String> = .unchanged, metadata: [(String, String)]? = nil, idempotencyKey: String? = nil) {
        self.customerId = customerId
        self.name = name
        self.email = email
        self.metadata = metadata.map { $0.sorted { $0.0 < $1.0 } }
        self.idempotencyKey = idempotencyKey
    }
}

/// What a successful command answers. Stored with its idempotency record, so a retry gets the
/// original answer.
public enum CommandResult: Sendable, Equatable {
    case customer(Customer)

    static let recordVersion: UInt8 = 1

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.writeByte(Self.recordVersion)
        switch self {
        case .customer(let customer):
            w.writeByte(1)
            w.writeRaw(customer.encoded())
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> CommandResult {
        var r = ByteReader(bytes)
        let version = try r.readByte()
        guard version == recordVersion else { throw DecodingError("result record version \(version) unknown") }
        switch try r.readByte() {
        case 1: return .customer(try Customer.decode(r.readRest()))
        case let tag: throw DecodingError("result tag \(tag) unknown")
        }
    }
}
