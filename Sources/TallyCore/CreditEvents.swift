/// Credit events. Each carries what the ledger decided (breakdowns, repayments), so a replay
/// folds them without deciding anything again.

/// CREDITS_GRANTED v1: a new grant; `grant.repaid` is what it repaid of the pool's overdraft.
public struct CreditsGranted: Sendable, Equatable {
    public static let type = "CREDITS_GRANTED"
    public static let schemaVersion: UInt16 = 1
    public var grant: CreditGrant
    public var idempotencyKey: String?

    public init(grant: CreditGrant, idempotencyKey: String?) {
        self.grant = grant
        self.idempotencyKey = idempotencyKey
    }

    func encode(into w: inout ByteWriter) {
        grant.encode(into: &w)
        w.writeOptional(idempotencyKey) { $0.writeString($1) }
    }

    init(from r: inout ByteReader, schemaVersion: UInt16) throws(DecodingError) {
        grant = try CreditGrant(from: &r)
        idempotencyKey = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
    }
}

/// CREDITS_CONSUMED v1: a deduction of `amount`. The grants drawn (`breakdown`) first repaid the
/// pool's overdraft (`overdraftRepaid`), then covered the cost; what no grant covered
/// (`uncovered`) became overdraft. The balance changes by −amount either way.
public struct CreditsConsumed: Sendable, Equatable {
    public static let type = "CREDITS_CONSUMED"
    public static let schemaVersion: UInt16 = 1
    public var customerId: String
    public var currencyId: String
    public var resourceId: String?
    public var featureId: String
    public var amount: Amount
    public var breakdown: [(String, Amount)]
    public var uncovered: Amount
    public var overdraftRepaid: Amount
    /// When the usage happened (credit usage series are bucketed by it).
    public var timestamp: Timestamp
    public var dimensions: Dimensions
    public var idempotencyKey: String?

    public init(customerId: String, currencyId: String, resourceId: String?, featureId: String, amount: Amount, breakdown: [(String, Amount)], uncovered: Amount, overdraftRepaid: Amount = .zero, timestamp: Timestamp, dimensions: Dimensions, idempotencyKey: String?) {
        self.overdraftRepaid = overdraftRepaid
        self.customerId = customerId
        self.currencyId = currencyId
        self.resourceId = resourceId
        self.featureId = featureId
        self.amount = amount
        self.breakdown = breakdown
        self.uncovered = uncovered
        self.timestamp = timestamp
        self.dimensions = dimensions
        self.idempotencyKey = idempotencyKey
    }

    public static func == (a: Self, b: Self) -> Bool {
        var wa = ByteWriter(), wb = ByteWriter()
        a.encode(into: &wa)
        b.encode(into: &wb)
        return wa.bytes == wb.bytes
    }

    func encode(into w: inout ByteWriter) {
        w.writeString(customerId)
        w.writeString(currencyId)
        w.writeOptional(resourceId) { $0.writeString($1) }
        w.writeString(featureId)
        w.writeAmount(amount)
        w.writeArray(breakdown) { w, item in
            w.writeString(item.0)
            w.writeAmount(item.1)
        }
        w.writeAmount(uncovered)
        w.writeAmount(overdraftRepaid)
        w.writeTimestamp(timestamp)
        w.writeStringMap(dimensions.pairs)
        w.writeOptional(idempotencyKey) { $0.writeString($1) }
    }

    init(from r: inout ByteReader, schemaVersion: UInt16) throws(DecodingError) {
        customerId = try r.readString()
        currencyId = try r.readString()
        resourceId = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
        featureId = try r.readString()
        amount = try r.readAmount()
        breakdown = try r.readArray { (r: inout ByteReader) throws(DecodingError) in (try r.readString(), try r.readAmount()) }
        uncovered = try r.readAmount()
        overdraftRepaid = try r.readAmount()
        timestamp = try r.readTimestamp()
        dimensions = Dimensions(try r.readStringMap())
        idempotencyKey = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
    }
}

/// CREDITS_EXPIRED v1 / CREDITS_VOIDED v1: a grant's remaining `amount` left the balance.
public struct CreditsRemoved: Sendable, Equatable {
    public var grantId: String
    public var customerId: String
    public var currencyId: String
    public var resourceId: String?
    public var amount: Amount
    public var idempotencyKey: String?

    public init(grantId: String, customerId: String, currencyId: String, resourceId: String?, amount: Amount, idempotencyKey: String?) {
        self.grantId = grantId
        self.customerId = customerId
        self.currencyId = currencyId
        self.resourceId = resourceId
        self.amount = amount
        self.idempotencyKey = idempotencyKey
    }

    func encode(into w: inout ByteWriter) {
        w.writeString(grantId)
        w.writeString(customerId)
        w.writeString(currencyId)
        w.writeOptional(resourceId) { $0.writeString($1) }
        w.writeAmount(amount)
        w.writeOptional(idempotencyKey) { $0.writeString($1) }
    }

    init(from r: inout ByteReader) throws(DecodingError) {
        grantId = try r.readString()
        customerId = try r.readString()
        currencyId = try r.readString()
        resourceId = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
        amount = try r.readAmount()
        idempotencyKey = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
    }
}

public struct CreditsExpired: Sendable, Equatable {
    public static let type = "CREDITS_EXPIRED"
    public static let schemaVersion: UInt16 = 1
    public var removal: CreditsRemoved
    public init(removal: CreditsRemoved) { self.removal = removal }
    func encode(into w: inout ByteWriter) { removal.encode(into: &w) }
    init(from r: inout ByteReader, schemaVersion: UInt16) throws(DecodingError) { removal = try CreditsRemoved(from: &r) }
}

public struct CreditsVoided: Sendable, Equatable {
    public static let type = "CREDITS_VOIDED"
    public static let schemaVersion: UInt16 = 1
    public var removal: CreditsRemoved
    public init(removal: CreditsRemoved) { self.removal = removal }
    func encode(into w: inout ByteWriter) { removal.encode(into: &w) }
    init(from r: inout ByteReader, schemaVersion: UInt16) throws(DecodingError) { removal = try CreditsRemoved(from: &r) }
}

/// CREDITS_ACTIVATED v1: a grant scheduled for later became effective (its effectiveAt passed) and
/// repaid `overdraftRepaid` of its pool's overdraft, as a grant effective when granted does at once.
/// Appended for every grant that was scheduled when granted, whether it repaid anything or not.
public struct CreditsActivated: Sendable, Equatable {
    public static let type = "CREDITS_ACTIVATED"
    public static let schemaVersion: UInt16 = 1
    public var grantId: String
    public var customerId: String
    public var currencyId: String
    public var resourceId: String?
    public var overdraftRepaid: Amount

    public init(grantId: String, customerId: String, currencyId: String, resourceId: String?, overdraftRepaid: Amount) {
        self.grantId = grantId
        self.customerId = customerId
        self.currencyId = currencyId
        self.resourceId = resourceId
        self.overdraftRepaid = overdraftRepaid
    }

    func encode(into w: inout ByteWriter) {
        w.writeString(grantId)
        w.writeString(customerId)
        w.writeString(currencyId)
        w.writeOptional(resourceId) { $0.writeString($1) }
        w.writeAmount(overdraftRepaid)
    }

    init(from r: inout ByteReader, schemaVersion: UInt16) throws(DecodingError) {
        grantId = try r.readString()
        customerId = try r.readString()
        currencyId = try r.readString()
        resourceId = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
        overdraftRepaid = try r.readAmount()
    }
}

public struct AutoRechargeConfigured: Sendable, Equatable {
    public static let type = "AUTO_RECHARGE_CONFIGURED"
    public static let schemaVersion: UInt16 = 1
    public var config: AutoRecharge
    public init(config: AutoRecharge) { self.config = config }
    func encode(into w: inout ByteWriter) { config.encode(into: &w) }
    init(from r: inout ByteReader, schemaVersion: UInt16) throws(DecodingError) { config = try AutoRecharge(from: &r) }
}
