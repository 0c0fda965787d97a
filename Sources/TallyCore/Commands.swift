/// A request to change the ledger, already validated for shape by the protocol layer.
public enum Command: Sendable {
    case provisionCustomer(ProvisionCustomer)
    case defineCurrency(DefineCurrency)
    case defineFeature(DefineFeature)
    case definePlan(DefinePlan)
    case provisionSubscription(ProvisionSubscription)
    case cancelSubscription(subscriptionId: String)
    case reportUsage(ReportUsage)
    /// Per-event idempotency: each raw event carries its own key.
    case reportEvents(ReportEvents)
    case grantPromotional(GrantPromotional)
    case revokePromotional(customerId: String, featureId: String)
    case grantCredits(GrantCredits)
    case voidCreditGrant(grantId: String)
    case setAutoRecharge(SetAutoRecharge)
    /// Appends CREDITS_ACTIVATED for every scheduled grant whose effectiveAt has passed, then
    /// CREDITS_EXPIRED for every grant whose expireAt has (the daemon's timer).
    case expireCredits

    /// The idempotency scope: keys are unique per method family and customer (catalog commands
    /// belong to no customer).
    public var idempotencyScope: (family: String, customerId: String) {
        typealias F = IdempotencyFamily
        return switch self {
        case .provisionCustomer(let c): (F.customer, c.customerId)
        case .defineCurrency, .defineFeature, .definePlan: (F.catalog, "")
        case .provisionSubscription(let c): (F.subscription, c.customerId)
        case .cancelSubscription: (F.subscription, "")
        case .reportUsage(let c): (F.usage, c.customerId)
        case .reportEvents: (F.event, "")
        case .grantPromotional(let c): (F.entitlement, c.customerId)
        case .revokePromotional(let customerId, _): (F.entitlement, customerId)
        case .grantCredits(let c): (F.credits, c.customerId)
        case .voidCreditGrant: (F.credits, "")
        case .setAutoRecharge(let c): (F.credits, c.customerId)
        case .expireCredits: (F.system, "")
        }
    }
}

/// The method families that scope idempotency keys: the first part of an idempotency record's
/// key. Stored, so never renamed; verification derives from the log which records must exist.
public enum IdempotencyFamily {
    public static let customer = "customer"
    public static let catalog = "catalog"
    public static let subscription = "subscription"
    public static let usage = "usage"
    /// Each raw event of reportEvent has its own key, scoped by the event's customer.
    public static let event = "event"
    public static let entitlement = "entitlement"
    public static let credits = "credits"
    public static let system = "system"
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
    /// The customer with its subscriptions as they stood (nil in records written before they
    /// were kept: the reply then shows the current ones).
    case customer(Customer, subscriptions: [CustomerSubscription]?)
    case currency(Currency)
    case feature(Feature)
    case plan(Plan)
    case subscription(Subscription)
    case usage(UsageOutcome)
    case events(EventsOutcome)
    case promotional(PromotionalEntitlement)
    case revoked(customerId: String, featureId: String)
    case grant(CreditGrant)
    case autoRecharge(AutoRecharge)
    case expired(count: Int)

    static let recordVersion: UInt8 = 1

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.writeByte(Self.recordVersion)
        switch self {
        case .customer(let customer, nil):
            w.writeByte(1)
            w.writeRaw(customer.encoded())
        case .customer(let customer, let subscriptions?):
            w.writeByte(13)
            w.writeBytes(customer.encoded())
            w.writeArray(subscriptions) { w, s in
                s.subscription.encode(into: &w)
                w.writeOptional(s.planName) { $0.writeString($1) }
            }
        case .currency(let c):
            w.writeByte(2)
            c.encode(into: &w)
        case .feature(let f):
            w.writeByte(3)
            f.encode(into: &w)
        case .plan(let p):
            w.writeByte(4)
            p.encode(into: &w)
        case .subscription(let s):
            w.writeByte(5)
            s.encode(into: &w)
        case .usage(let u):
            w.writeByte(6)
            w.writeString(u.measurementId)
            u.event.encode(into: &w)
            w.writeTimestamp(u.createdAt)
            w.writeAmount(u.currentUsage)
            w.writeOptional(u.usageLimit) { $0.writeAmount($1) }
            w.writeOptional(u.usagePeriodEnd) { $0.writeTimestamp($1) }
            w.writeOptional(u.credit) { w, c in
                w.writeString(c.currencyId)
                w.writeAmount(c.consumed)
                w.writeAmount(c.balance)
                w.writeOptional(c.autoRecharged) { $0.writeAmount($1) }
            }
        case .events(let e):
            w.writeByte(7)
            w.writeVarUInt(UInt64(e.accepted))
            w.writeVarUInt(UInt64(e.duplicates))
            w.writeArray(e.rejected) { w, r in
                w.writeVarUInt(UInt64(r.index))
                w.writeVarInt(Int64(r.code))
                w.writeString(r.message)
            }
        case .promotional(let p):
            w.writeByte(8)
            p.encode(into: &w)
        case .revoked(let customerId, let featureId):
            w.writeByte(9)
            w.writeString(customerId)
            w.writeString(featureId)
        case .grant(let g):
            w.writeByte(10)
            g.encode(into: &w)
        case .autoRecharge(let a):
            w.writeByte(11)
            a.encode(into: &w)
        case .expired(let count):
            w.writeByte(12)
            w.writeVarUInt(UInt64(count))
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> CommandResult {
        var r = ByteReader(bytes)
        let version = try r.readByte()
        guard version == recordVersion else { throw DecodingError("result record version \(version) unknown") }
        let result: CommandResult
        switch try r.readByte() {
        case 1: return .customer(try Customer.decode(r.readRest()), subscriptions: nil)
        case 13:
            result = .customer(try Customer.decode(r.readBytes()), subscriptions: try r.readArray { (r: inout ByteReader) throws(DecodingError) in
                CustomerSubscription(subscription: try Subscription(from: &r), planName: try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() })
            })
        case 2: result = .currency(try Currency(from: &r))
        case 3: result = .feature(try Feature(from: &r))
        case 4: result = .plan(try Plan(from: &r))
        case 5: result = .subscription(try Subscription(from: &r))
        case 6:
            result = .usage(UsageOutcome(
                measurementId: try r.readString(),
                event: try UsageReported(from: &r, schemaVersion: UsageReported.schemaVersion),
                createdAt: try r.readTimestamp(),
                currentUsage: try r.readUsageTotal(),
                usageLimit: try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readAmount() },
                usagePeriodEnd: try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readTimestamp() },
                credit: try r.readOptional { (r: inout ByteReader) throws(DecodingError) in
                    CreditOutcome(currencyId: try r.readString(), consumed: try r.readAmount(), balance: try r.readAmount(),
                                  autoRecharged: try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readAmount() })
                }
            ))
        case 7:
            result = .events(EventsOutcome(
                accepted: try r.readCount(),
                duplicates: try r.readCount(),
                rejected: try r.readArray { (r: inout ByteReader) throws(DecodingError) in
                    EventRejection(index: try r.readCount(), code: try r.readInt(), message: try r.readString())
                }
            ))
        case 8: result = .promotional(try PromotionalEntitlement(from: &r))
        case 9: result = .revoked(customerId: try r.readString(), featureId: try r.readString())
        case 10: result = .grant(try CreditGrant(from: &r))
        case 11: result = .autoRecharge(try AutoRecharge(from: &r))
        case 12: result = .expired(count: try r.readCount())
        case let tag: throw DecodingError("result tag \(tag) unknown")
        }
        try r.expectEnd()
        return result
    }
}

/// A subscription as a customer's answer shows it: with its plan's display name at the time.
public struct CustomerSubscription: Sendable, Equatable {
    public var subscription: Subscription
    public var planName: String?

    public init(subscription: Subscription, planName: String?) {
        self.subscription = subscription
        self.planName = planName
    }
}
