/// Credits: grants drawn in a fixed order, with consumption, expiry, voids and overdraft.

public enum GrantType: String, Sendable, CaseIterable { case paid = "PAID", promotional = "PROMOTIONAL" }
public enum GrantSource: String, Sendable, CaseIterable { case manual = "MANUAL", autoRecharge = "AUTO_RECHARGE", plan = "PLAN" }
public enum GrantStatus: String, Sendable, CaseIterable { case scheduled = "SCHEDULED", active = "ACTIVE", expired = "EXPIRED", voided = "VOIDED" }

public struct Money: Sendable, Equatable {
    public var amount: Amount
    public var currency: String
    public init(amount: Amount, currency: String) {
        self.amount = amount
        self.currency = currency
    }
}

/// A grant as the ledger knows it (the grant projection).
public struct CreditGrant: Sendable, Equatable {
    public var grantId: String
    public var customerId: String
    public var currencyId: String
    public var resourceId: String?
    public var grantType: GrantType
    public var sourceType: GrantSource
    public var amount: Amount
    public var priority: Int
    public var effectiveAt: Timestamp
    public var expireAt: Timestamp?
    public var displayName: String?
    public var cost: Money?
    public var metadata: [(String, String)]
    public var comment: String?
    public var createdAt: Timestamp
    public var sequence: UInt64
    /// Drawn by deductions.
    public var consumed: Amount = .zero
    /// Taken to repay the pool's overdraft: when granted, or (scheduled) when it became effective.
    public var repaid: Amount = .zero
    public var expiredAmount: Amount = .zero
    public var voidedAmount: Amount = .zero
    public var expiredAt: Timestamp?
    public var voidedAt: Timestamp?

    public init(grantId: String, customerId: String, currencyId: String, resourceId: String?, grantType: GrantType, sourceType: GrantSource, amount: Amount, priority: Int, effectiveAt: Timestamp, expireAt: Timestamp?, displayName: String?, cost: Money?, metadata: [(String, String)], comment: String?, createdAt: Timestamp, sequence: UInt64) {
        self.grantId = grantId
        self.customerId = customerId
        self.currencyId = currencyId
        self.resourceId = resourceId
        self.grantType = grantType
        self.sourceType = sourceType
        self.amount = amount
        self.priority = priority
        self.effectiveAt = effectiveAt
        self.expireAt = expireAt
        self.displayName = displayName
        self.cost = cost
        self.metadata = metadata
        self.comment = comment
        self.createdAt = createdAt
        self.sequence = sequence
    }

    public static func == (a: Self, b: Self) -> Bool { a.encoded() == b.encoded() }

    /// What is left to draw: never below zero, never above `amount`.
    public var remaining: Amount { amount - consumed - repaid - expiredAmount - voidedAmount }

    /// The status at time `t`: voided and expired (by event, or because expireAt ≤ t) win.
    public func status(at t: Timestamp) -> GrantStatus {
        if voidedAt != nil { return .voided }
        if expiredAt != nil { return .expired }
        if let expireAt, expireAt <= t { return .expired }
        if effectiveAt > t { return .scheduled }
        return .active
    }

    /// Scheduled for later when granted: it repays no overdraft then, but when it becomes effective
    /// (CREDITS_ACTIVATED). A grant effective when granted repays at once (`repaid` in its event).
    public var isScheduledWhenGranted: Bool { effectiveAt > createdAt }

    /// Whether a deduction recorded at `t` may draw this grant.
    public func isDrawable(at t: Timestamp) -> Bool { status(at: t) == .active && remaining.isPositive }

    /// The consumption order of the contract: priority, then earliest expireAt (none last), then
    /// PROMOTIONAL before PAID, then earliest effectiveAt, then the earlier grant.
    public static func drawsBefore(_ a: CreditGrant, _ b: CreditGrant) -> Bool {
        if a.priority != b.priority { return a.priority < b.priority }
        switch (a.expireAt, b.expireAt) {
        case let (x?, y?) where x != y: return x < y
        case (_?, nil): return true
        case (nil, _?): return false
        default: break
        }
        if a.grantType != b.grantType { return a.grantType == .promotional }
        if a.effectiveAt != b.effectiveAt { return a.effectiveAt < b.effectiveAt }
        return a.sequence < b.sequence
    }

    func encode(into w: inout ByteWriter) {
        w.writeString(grantId)
        w.writeString(customerId)
        w.writeString(currencyId)
        w.writeOptional(resourceId) { $0.writeString($1) }
        w.writeString(grantType.rawValue)
        w.writeString(sourceType.rawValue)
        w.writeAmount(amount)
        w.writeVarInt(Int64(priority))
        w.writeTimestamp(effectiveAt)
        w.writeOptional(expireAt) { $0.writeTimestamp($1) }
        w.writeOptional(displayName) { $0.writeString($1) }
        w.writeOptional(cost) { w, c in
            w.writeAmount(c.amount)
            w.writeString(c.currency)
        }
        w.writeStringMap(metadata)
        w.writeOptional(comment) { $0.writeString($1) }
        w.writeTimestamp(createdAt)
        w.writeVarUInt(sequence)
        w.writeAmount(consumed)
        w.writeAmount(repaid)
        w.writeAmount(expiredAmount)
        w.writeAmount(voidedAmount)
        w.writeOptional(expiredAt) { $0.writeTimestamp($1) }
        w.writeOptional(voidedAt) { $0.writeTimestamp($1) }
    }

    init(from r: inout ByteReader) throws(DecodingError) {
        grantId = try r.readString()
        customerId = try r.readString()
        currencyId = try r.readString()
        resourceId = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
        grantType = try r.readEnum(GrantType.self)
        sourceType = try r.readEnum(GrantSource.self)
        amount = try r.readAmount()
        priority = try r.readInt()
        effectiveAt = try r.readTimestamp()
        expireAt = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readTimestamp() }
        displayName = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
        cost = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in Money(amount: try r.readAmount(), currency: try r.readString()) }
        metadata = try r.readStringMap()
        comment = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
        createdAt = try r.readTimestamp()
        sequence = try r.readVarUInt()
        consumed = try r.readAmount()
        repaid = try r.readAmount()
        expiredAmount = try r.readAmount()
        voidedAmount = try r.readAmount()
        expiredAt = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readTimestamp() }
        voidedAt = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readTimestamp() }
    }

    public func encoded() -> [UInt8] { record { encode(into: &$0) } }
    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> CreditGrant { try decodeRecord(bytes) { (r: inout ByteReader) throws(DecodingError) in try CreditGrant(from: &r) } }
}

/// One pool (customer, currency, resource or global): its open grants and its overdraft.
public struct CreditPool: Sendable, Equatable {
    /// Grants with something left that were neither voided nor expired by event, in grant order.
    public var openGrants: [String]
    /// Uncovered consumption, repaid first by the next grant.
    public var overdraft: Amount
    /// The running ledger balance (Σ of the ledger entries' signed amounts).
    public var ledgerBalance: Amount
    /// Open grants that were scheduled when granted and have no CREDITS_ACTIVATED yet, in grant order.
    public var awaitingActivation: [String]

    public init(openGrants: [String] = [], overdraft: Amount = .zero, ledgerBalance: Amount = .zero, awaitingActivation: [String] = []) {
        self.openGrants = openGrants
        self.overdraft = overdraft
        self.ledgerBalance = ledgerBalance
        self.awaitingActivation = awaitingActivation
    }

    public func encoded() -> [UInt8] {
        record { w in
            w.writeArray(openGrants) { $0.writeString($1) }
            w.writeAmount(overdraft)
            w.writeAmount(ledgerBalance)
            w.writeArray(awaitingActivation) { $0.writeString($1) }
        }
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> CreditPool {
        try decodeRecord(bytes) { (r: inout ByteReader) throws(DecodingError) in
            CreditPool(
                openGrants: try r.readArray { (r: inout ByteReader) throws(DecodingError) in try r.readString() }, overdraft: try r.readAmount(),
                ledgerBalance: try r.readAmount(), awaitingActivation: try r.readArray { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
            )
        }
    }
}

public struct AutoRecharge: Sendable, Equatable {
    public var customerId: String
    public var currencyId: String
    public var isEnabled: Bool
    public var thresholdValue: Amount
    public var targetBalance: Amount
    public var maxSpendLimit: Amount?
    public var grantExpirationPeriod: CalendarPeriod?

    public init(customerId: String, currencyId: String, isEnabled: Bool, thresholdValue: Amount, targetBalance: Amount, maxSpendLimit: Amount?, grantExpirationPeriod: CalendarPeriod?) {
        self.customerId = customerId
        self.currencyId = currencyId
        self.isEnabled = isEnabled
        self.thresholdValue = thresholdValue
        self.targetBalance = targetBalance
        self.maxSpendLimit = maxSpendLimit
        self.grantExpirationPeriod = grantExpirationPeriod
    }

    func encode(into w: inout ByteWriter) {
        w.writeString(customerId)
        w.writeString(currencyId)
        w.writeBool(isEnabled)
        w.writeAmount(thresholdValue)
        w.writeAmount(targetBalance)
        w.writeOptional(maxSpendLimit) { $0.writeAmount($1) }
        w.writeOptional(grantExpirationPeriod) { $0.writeString($1.rawValue) }
    }

    init(from r: inout ByteReader) throws(DecodingError) {
        customerId = try r.readString()
        currencyId = try r.readString()
        isEnabled = try r.readBool()
        thresholdValue = try r.readAmount()
        targetBalance = try r.readAmount()
        maxSpendLimit = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readAmount() }
        grantExpirationPeriod = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readEnum(CalendarPeriod.self) }
    }

    public func encoded() -> [UInt8] { record { encode(into: &$0) } }
    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> AutoRecharge { try decodeRecord(bytes) { (r: inout ByteReader) throws(DecodingError) in try AutoRecharge(from: &r) } }
}

public enum CreditEntryType: String, Sendable, CaseIterable {
    case granted = "CREDITS_GRANTED", consumed = "CREDITS_CONSUMED", expired = "CREDITS_EXPIRED", voided = "CREDITS_VOIDED"
}

/// One entry of a customer's credit ledger (getCreditLedger).
public struct CreditLedgerEntry: Sendable, Equatable {
    public var sequence: UInt64
    public var eventType: CreditEntryType
    public var currencyId: String
    public var resourceId: String?
    /// The signed effect on the balance.
    public var amount: Amount
    public var balanceAfter: Amount
    public var grantId: String?
    public var featureId: String?
    public var idempotencyKey: String?
    public var timestamp: Timestamp
    public var breakdown: [(String, Amount)]
    /// The part of the breakdown that repaid an earlier overdraft (CREDITS_CONSUMED).
    public var overdraftRepaid: Amount

    public init(sequence: UInt64, eventType: CreditEntryType, currencyId: String, resourceId: String?, amount: Amount, balanceAfter: Amount, grantId: String?, featureId: String?, idempotencyKey: String?, timestamp: Timestamp, breakdown: [(String, Amount)], overdraftRepaid: Amount = .zero) {
        self.overdraftRepaid = overdraftRepaid
        self.sequence = sequence
        self.eventType = eventType
        self.currencyId = currencyId
        self.resourceId = resourceId
        self.amount = amount
        self.balanceAfter = balanceAfter
        self.grantId = grantId
        self.featureId = featureId
        self.idempotencyKey = idempotencyKey
        self.timestamp = timestamp
        self.breakdown = breakdown
    }

    public static func == (a: Self, b: Self) -> Bool { a.encoded() == b.encoded() }

    public func encoded() -> [UInt8] {
        record { w in
            w.writeVarUInt(sequence)
            w.writeString(eventType.rawValue)
            w.writeString(currencyId)
            w.writeOptional(resourceId) { $0.writeString($1) }
            w.writeAmount(amount)
            w.writeAmount(balanceAfter)
            w.writeOptional(grantId) { $0.writeString($1) }
            w.writeOptional(featureId) { $0.writeString($1) }
            w.writeOptional(idempotencyKey) { $0.writeString($1) }
            w.writeTimestamp(timestamp)
            w.writeArray(breakdown) { w, item in
                w.writeString(item.0)
                w.writeAmount(item.1)
            }
            w.writeAmount(overdraftRepaid)
        }
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> CreditLedgerEntry {
        try decodeRecord(bytes) { (r: inout ByteReader) throws(DecodingError) in
            CreditLedgerEntry(
                sequence: try r.readVarUInt(), eventType: try r.readEnum(CreditEntryType.self), currencyId: try r.readString(),
                resourceId: try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() },
                amount: try r.readAmount(), balanceAfter: try r.readAmount(),
                grantId: try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() },
                featureId: try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() },
                idempotencyKey: try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() },
                timestamp: try r.readTimestamp(),
                breakdown: try r.readArray { (r: inout ByteReader) throws(DecodingError) in (try r.readString(), try r.readAmount()) },
                overdraftRepaid: try r.readAmount()
            )
        }
    }
}
