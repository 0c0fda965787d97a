/// What happened, as appended to the log. Each case has a stable type string and a schema version;
/// docs/events.md lists them and the rules for changing them.
public enum EventPayload: Sendable, Equatable {
    case customerProvisioned(CustomerProvisioned)
    case customerUpdated(CustomerUpdated)
    case currencyDefined(CurrencyDefined)
    case featureDefined(FeatureDefined)
    case planDefined(PlanDefined)
    case subscriptionProvisioned(SubscriptionProvisioned)
    case subscriptionCanceled(SubscriptionCanceled)
    case usageReported(UsageReported)
    case eventReceived(EventReceived)
    case usageReset(UsageReset)
    case promotionalEntitlementGranted(PromotionalEntitlementGranted)
    case promotionalEntitlementRevoked(PromotionalEntitlementRevoked)
    case creditsGranted(CreditsGranted)
    case creditsConsumed(CreditsConsumed)
    case creditsExpired(CreditsExpired)
    case creditsVoided(CreditsVoided)
    case creditsActivated(CreditsActivated)
    case autoRechargeConfigured(AutoRechargeConfigured)

    /// The stable type string stored with the event and shown by readLedger.
    public var type: String {
        switch self {
        case .customerProvisioned: CustomerProvisioned.type
        case .customerUpdated: CustomerUpdated.type
        case .currencyDefined: CurrencyDefined.type
        case .featureDefined: FeatureDefined.type
        case .planDefined: PlanDefined.type
        case .subscriptionProvisioned: SubscriptionProvisioned.type
        case .subscriptionCanceled: SubscriptionCanceled.type
        case .usageReported: UsageReported.type
        case .eventReceived: EventReceived.type
        case .usageReset: UsageReset.type
        case .promotionalEntitlementGranted: PromotionalEntitlementGranted.type
        case .promotionalEntitlementRevoked: PromotionalEntitlementRevoked.type
        case .creditsGranted: CreditsGranted.type
        case .creditsConsumed: CreditsConsumed.type
        case .creditsExpired: CreditsExpired.type
        case .creditsVoided: CreditsVoided.type
        case .creditsActivated: CreditsActivated.type
        case .autoRechargeConfigured: AutoRechargeConfigured.type
        }
    }

    /// The schema version this build writes for the case.
    public var schemaVersion: UInt16 {
        switch self {
        case .customerProvisioned: CustomerProvisioned.schemaVersion
        case .customerUpdated: CustomerUpdated.schemaVersion
        case .currencyDefined: CurrencyDefined.schemaVersion
        case .featureDefined: FeatureDefined.schemaVersion
        case .planDefined: PlanDefined.schemaVersion
        case .subscriptionProvisioned: SubscriptionProvisioned.schemaVersion
        case .subscriptionCanceled: SubscriptionCanceled.schemaVersion
        case .usageReported: UsageReported.schemaVersion
        case .eventReceived: EventReceived.schemaVersion
        case .usageReset: UsageReset.schemaVersion
        case .promotionalEntitlementGranted: PromotionalEntitlementGranted.schemaVersion
        case .promotionalEntitlementRevoked: PromotionalEntitlementRevoked.schemaVersion
        case .creditsGranted: CreditsGranted.schemaVersion
        case .creditsConsumed: CreditsConsumed.schemaVersion
        case .creditsExpired: CreditsExpired.schemaVersion
        case .creditsVoided: CreditsVoided.schemaVersion
        case .creditsActivated: CreditsActivated.schemaVersion
        case .autoRechargeConfigured: AutoRechargeConfigured.schemaVersion
        }
    }

    /// The customer the event belongs to, if any (catalog definitions belong to none).
    public var customerId: String? {
        switch self {
        case .customerProvisioned(let e): e.customerId
        case .customerUpdated(let e): e.customerId
        case .currencyDefined, .featureDefined, .planDefined: nil
        case .subscriptionProvisioned(let e): e.subscription.customerId
        case .subscriptionCanceled(let e): e.customerId
        case .usageReported(let e): e.customerId
        case .eventReceived(let e): e.customerId
        case .usageReset(let e): e.customerId
        case .promotionalEntitlementGranted(let e): e.entitlement.customerId
        case .promotionalEntitlementRevoked(let e): e.customerId
        case .creditsGranted(let e): e.grant.customerId
        case .creditsConsumed(let e): e.customerId
        case .creditsExpired(let e): e.removal.customerId
        case .creditsVoided(let e): e.removal.customerId
        case .creditsActivated(let e): e.customerId
        case .autoRechargeConfigured(let e): e.config.customerId
        }
    }

    public func encodePayload(into w: inout ByteWriter) {
        switch self {
        case .customerProvisioned(let e): e.encode(into: &w)
        case .customerUpdated(let e): e.encode(into: &w)
        case .currencyDefined(let e): e.encode(into: &w)
        case .featureDefined(let e): e.encode(into: &w)
        case .planDefined(let e): e.encode(into: &w)
        case .subscriptionProvisioned(let e): e.encode(into: &w)
        case .subscriptionCanceled(let e): e.encode(into: &w)
        case .usageReported(let e): e.encode(into: &w)
        case .eventReceived(let e): e.encode(into: &w)
        case .usageReset(let e): e.encode(into: &w)
        case .promotionalEntitlementGranted(let e): e.encode(into: &w)
        case .promotionalEntitlementRevoked(let e): e.encode(into: &w)
        case .creditsGranted(let e): e.encode(into: &w)
        case .creditsConsumed(let e): e.encode(into: &w)
        case .creditsExpired(let e): e.encode(into: &w)
        case .creditsVoided(let e): e.encode(into: &w)
        case .creditsActivated(let e): e.encode(into: &w)
        case .autoRechargeConfigured(let e): e.encode(into: &w)
        }
    }

    /// Decodes a payload of a known type and any schema version up to the one this build writes.
    /// - Throws: `DecodingError` for an unknown type, a newer schema version, or damaged bytes.
    public static func decode(type: String, schemaVersion: UInt16, payload reader: inout ByteReader) throws(DecodingError) -> EventPayload {
        switch type {
        case CustomerProvisioned.type:
            try check(schemaVersion, max: CustomerProvisioned.schemaVersion, type)
            return .customerProvisioned(try CustomerProvisioned(from: &reader, schemaVersion: schemaVersion))
        case CustomerUpdated.type:
            try check(schemaVersion, max: CustomerUpdated.schemaVersion, type)
            return .customerUpdated(try CustomerUpdated(from: &reader, schemaVersion: schemaVersion))
        case CurrencyDefined.type:
            try check(schemaVersion, max: CurrencyDefined.schemaVersion, type)
            return .currencyDefined(try CurrencyDefined(from: &reader, schemaVersion: schemaVersion))
        case FeatureDefined.type:
            try check(schemaVersion, max: FeatureDefined.schemaVersion, type)
            return .featureDefined(try FeatureDefined(from: &reader, schemaVersion: schemaVersion))
        case PlanDefined.type:
            try check(schemaVersion, max: PlanDefined.schemaVersion, type)
            return .planDefined(try PlanDefined(from: &reader, schemaVersion: schemaVersion))
        case SubscriptionProvisioned.type:
            try check(schemaVersion, max: SubscriptionProvisioned.schemaVersion, type)
            return .subscriptionProvisioned(try SubscriptionProvisioned(from: &reader, schemaVersion: schemaVersion))
        case SubscriptionCanceled.type:
            try check(schemaVersion, max: SubscriptionCanceled.schemaVersion, type)
            return .subscriptionCanceled(try SubscriptionCanceled(from: &reader, schemaVersion: schemaVersion))
        case UsageReported.type:
            try check(schemaVersion, max: UsageReported.schemaVersion, type)
            return .usageReported(try UsageReported(from: &reader, schemaVersion: schemaVersion))
        case EventReceived.type:
            try check(schemaVersion, max: EventReceived.schemaVersion, type)
            return .eventReceived(try EventReceived(from: &reader, schemaVersion: schemaVersion))
        case UsageReset.type:
            try check(schemaVersion, max: UsageReset.schemaVersion, type)
            return .usageReset(try UsageReset(from: &reader, schemaVersion: schemaVersion))
        case PromotionalEntitlementGranted.type:
            try check(schemaVersion, max: PromotionalEntitlementGranted.schemaVersion, type)
            return .promotionalEntitlementGranted(try PromotionalEntitlementGranted(from: &reader, schemaVersion: schemaVersion))
        case PromotionalEntitlementRevoked.type:
            try check(schemaVersion, max: PromotionalEntitlementRevoked.schemaVersion, type)
            return .promotionalEntitlementRevoked(try PromotionalEntitlementRevoked(from: &reader, schemaVersion: schemaVersion))
        case CreditsGranted.type:
            try check(schemaVersion, max: CreditsGranted.schemaVersion, type)
            return .creditsGranted(try CreditsGranted(from: &reader, schemaVersion: schemaVersion))
        case CreditsConsumed.type:
            try check(schemaVersion, max: CreditsConsumed.schemaVersion, type)
            return .creditsConsumed(try CreditsConsumed(from: &reader, schemaVersion: schemaVersion))
        case CreditsExpired.type:
            try check(schemaVersion, max: CreditsExpired.schemaVersion, type)
            return .creditsExpired(try CreditsExpired(from: &reader, schemaVersion: schemaVersion))
        case CreditsVoided.type:
            try check(schemaVersion, max: CreditsVoided.schemaVersion, type)
            return .creditsVoided(try CreditsVoided(from: &reader, schemaVersion: schemaVersion))
        case CreditsActivated.type:
            try check(schemaVersion, max: CreditsActivated.schemaVersion, type)
            return .creditsActivated(try CreditsActivated(from: &reader, schemaVersion: schemaVersion))
        case AutoRechargeConfigured.type:
            try check(schemaVersion, max: AutoRechargeConfigured.schemaVersion, type)
            return .autoRechargeConfigured(try AutoRechargeConfigured(from: &reader, schemaVersion: schemaVersion))
        default:
            throw DecodingError("unknown event type \(type) (written by a newer tallyd?)")
        }
    }

    private static func check(_ version: UInt16, max: UInt16, _ type: String) throws(DecodingError) {
        guard version >= 1, version <= max else {
            throw DecodingError("\(type) schema version \(version) is not one this build reads (1…\(max))")
        }
    }
}

/// An event as it stands in the log.
public struct Event: Sendable, Equatable {
    public var sequence: UInt64
    public var recordedAt: Timestamp
    public var payload: EventPayload

    public init(sequence: UInt64, recordedAt: Timestamp, payload: EventPayload) {
        self.sequence = sequence
        self.recordedAt = recordedAt
        self.payload = payload
    }
}

/// CUSTOMER_PROVISIONED v1: a customer id seen for the first time.
public struct CustomerProvisioned: Sendable, Equatable {
    public static let type = "CUSTOMER_PROVISIONED"
    public static let schemaVersion: UInt16 = 1

    public var customerId: String
    public var name: String?
    public var email: String?
    public var metadata: [(String, String)]
    public var idempotencyKey: String?

    public init(customerId: String, name: String?, email: String?, metadata: [(String, String)], idempotencyKey: String?) {
        self.customerId = customerId
        self.name = name
        self.email = email
        self.metadata = metadata
        self.idempotencyKey = idempotencyKey
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.customerId == b.customerId && a.name == b.name && a.email == b.email
            && a.metadata.elementsEqual(b.metadata, by: { $0 == $1 }) && a.idempotencyKey == b.idempotencyKey
    }

    func encode(into w: inout ByteWriter) {
        w.writeString(customerId)
        w.writeOptional(name) { $0.writeString($1) }
        w.writeOptional(email) { $0.writeString($1) }
        w.writeStringMap(metadata)
        w.writeOptional(idempotencyKey) { $0.writeString($1) }
    }

    init(from r: inout ByteReader, schemaVersion: UInt16) throws(DecodingError) {
        customerId = try r.readString()
        name = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
        email = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
        metadata = try r.readStringMap()
        idempotencyKey = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
    }
}

/// CUSTOMER_UPDATED v1: the fields of an existing customer that a provision changed.
public struct CustomerUpdated: Sendable, Equatable {
    public static let type = "CUSTOMER_UPDATED"
    public static let schemaVersion: UInt16 = 1

    public var customerId: String
    public var name: FieldChange<String>
    public var email: FieldChange<String>
    /// The whole new metadata map, when it changed.
    public var metadata: [(String, String)]?
    public var idempotencyKey: String?

    public init(customerId: String, name: FieldChange<String>, email: FieldChange<String>, metadata: [(String, String)]?, idempotencyKey: String?) {
        self.customerId = customerId
        self.name = name
        self.email = email
        self.metadata = metadata
        self.idempotencyKey = idempotencyKey
    }

    public static func == (a: Self, b: Self) -> Bool {
        let metadataEqual: Bool = switch (a.metadata, b.metadata) {
        case (nil, nil): true
        case let (x?, y?): x.elementsEqual(y, by: { $0 == $1 })
        default: false
        }
        return a.customerId == b.customerId && a.name == b.name && a.email == b.email && metadataEqual
            && a.idempotencyKey == b.idempotencyKey
    }

    func encode(into w: inout ByteWriter) {
        w.writeString(customerId)
        w.writeChange(name) { $0.writeString($1) }
        w.writeChange(email) { $0.writeString($1) }
        w.writeOptional(metadata) { $0.writeStringMap($1) }
        w.writeOptional(idempotencyKey) { $0.writeString($1) }
    }

    init(from r: inout ByteReader, schemaVersion: UInt16) throws(DecodingError) {
        customerId = try r.readString()
        name = try r.readChange { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
        email = try r.readChange { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
        metadata = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readStringMap() }
        idempotencyKey = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
    }
}
