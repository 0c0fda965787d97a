/// Catalog, usage and entitlement events. Field order is the encoding order (docs/events.md).

public struct CurrencyDefined: Sendable, Equatable {
    public static let type = "CURRENCY_DEFINED"
    public static let schemaVersion: UInt16 = 1
    public var currency: Currency

    public init(currency: Currency) { self.currency = currency }
    func encode(into w: inout ByteWriter) { currency.encode(into: &w) }
    init(from r: inout ByteReader, schemaVersion: UInt16) throws(DecodingError) { currency = try Currency(from: &r) }
}

public struct FeatureDefined: Sendable, Equatable {
    public static let type = "FEATURE_DEFINED"
    public static let schemaVersion: UInt16 = 1
    public var feature: Feature

    public init(feature: Feature) { self.feature = feature }
    func encode(into w: inout ByteWriter) { feature.encode(into: &w) }
    init(from r: inout ByteReader, schemaVersion: UInt16) throws(DecodingError) { feature = try Feature(from: &r) }
}

public struct PlanDefined: Sendable, Equatable {
    public static let type = "PLAN_DEFINED"
    public static let schemaVersion: UInt16 = 1
    public var plan: Plan

    public init(plan: Plan) { self.plan = plan }
    func encode(into w: inout ByteWriter) { plan.encode(into: &w) }
    init(from r: inout ByteReader, schemaVersion: UInt16) throws(DecodingError) { plan = try Plan(from: &r) }
}

public struct SubscriptionProvisioned: Sendable, Equatable {
    public static let type = "SUBSCRIPTION_PROVISIONED"
    public static let schemaVersion: UInt16 = 1
    public var subscription: Subscription

    public init(subscription: Subscription) { self.subscription = subscription }
    func encode(into w: inout ByteWriter) { subscription.encode(into: &w) }
    init(from r: inout ByteReader, schemaVersion: UInt16) throws(DecodingError) { subscription = try Subscription(from: &r) }
}

public struct SubscriptionCanceled: Sendable, Equatable {
    public static let type = "SUBSCRIPTION_CANCELED"
    public static let schemaVersion: UInt16 = 1
    public var subscriptionId: String
    public var customerId: String

    public init(subscriptionId: String, customerId: String) {
        self.subscriptionId = subscriptionId
        self.customerId = customerId
    }

    func encode(into w: inout ByteWriter) {
        w.writeString(subscriptionId)
        w.writeString(customerId)
    }

    init(from r: inout ByteReader, schemaVersion: UInt16) throws(DecodingError) {
        subscriptionId = try r.readString()
        customerId = try r.readString()
    }
}

/// USAGE_REPORTED v1: calculated usage (reportUsage). `delta` is what it adds: the value for
/// DELTA, the difference to the current usage for SET.
public struct UsageReported: Sendable, Equatable {
    public static let type = "USAGE_REPORTED"
    public static let schemaVersion: UInt16 = 1
    public var customerId: String
    public var featureId: String
    public var resourceId: String?
    public var updateBehavior: UpdateBehavior
    public var value: Amount
    public var delta: Amount
    public var timestamp: Timestamp
    public var dimensions: Dimensions
    public var idempotencyKey: String?

    public init(customerId: String, featureId: String, resourceId: String?, updateBehavior: UpdateBehavior, value: Amount, delta: Amount, timestamp: Timestamp, dimensions: Dimensions, idempotencyKey: String?) {
        self.customerId = customerId
        self.featureId = featureId
        self.resourceId = resourceId
        self.updateBehavior = updateBehavior
        self.value = value
        self.delta = delta
        self.timestamp = timestamp
        self.dimensions = dimensions
        self.idempotencyKey = idempotencyKey
    }

    func encode(into w: inout ByteWriter) {
        w.writeString(customerId)
        w.writeString(featureId)
        w.writeOptional(resourceId) { $0.writeString($1) }
        w.writeString(updateBehavior.rawValue)
        w.writeAmount(value)
        w.writeAmount(delta)
        w.writeTimestamp(timestamp)
        w.writeStringMap(dimensions.pairs)
        w.writeOptional(idempotencyKey) { $0.writeString($1) }
    }

    init(from r: inout ByteReader, schemaVersion: UInt16) throws(DecodingError) {
        customerId = try r.readString()
        featureId = try r.readString()
        resourceId = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
        updateBehavior = try r.readEnum(UpdateBehavior.self)
        // Usage, not credits: a SET's delta from a large total may be beyond credit amounts' range.
        value = try r.readUsageTotal()
        delta = try r.readUsageTotal()
        timestamp = try r.readTimestamp()
        dimensions = Dimensions(try r.readStringMap())
        idempotencyKey = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
    }
}

/// EVENT_RECEIVED v1: one raw event (reportEvent); the meters of defined features turn it into usage.
public struct EventReceived: Sendable, Equatable {
    public static let type = "EVENT_RECEIVED"
    public static let schemaVersion: UInt16 = 1
    public var customerId: String
    public var eventName: String
    public var idempotencyKey: String
    public var resourceId: String?
    public var timestamp: Timestamp
    public var dimensions: Dimensions

    public init(customerId: String, eventName: String, idempotencyKey: String, resourceId: String?, timestamp: Timestamp, dimensions: Dimensions) {
        self.customerId = customerId
        self.eventName = eventName
        self.idempotencyKey = idempotencyKey
        self.resourceId = resourceId
        self.timestamp = timestamp
        self.dimensions = dimensions
    }

    func encode(into w: inout ByteWriter) {
        w.writeString(customerId)
        w.writeString(eventName)
        w.writeString(idempotencyKey)
        w.writeOptional(resourceId) { $0.writeString($1) }
        w.writeTimestamp(timestamp)
        w.writeStringMap(dimensions.pairs)
    }

    init(from r: inout ByteReader, schemaVersion: UInt16) throws(DecodingError) {
        customerId = try r.readString()
        eventName = try r.readString()
        idempotencyKey = try r.readString()
        resourceId = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
        timestamp = try r.readTimestamp()
        dimensions = Dimensions(try r.readStringMap())
    }
}

/// USAGE_RESET v1: the running totals of a customer's feature (and resource) start again from
/// zero at `timestamp` (Octane's reset_total). The time series keeps what was reported.
public struct UsageReset: Sendable, Equatable {
    public static let type = "USAGE_RESET"
    public static let schemaVersion: UInt16 = 1
    public var customerId: String
    public var featureId: String
    public var resourceId: String?
    public var timestamp: Timestamp

    public init(customerId: String, featureId: String, resourceId: String?, timestamp: Timestamp) {
        self.customerId = customerId
        self.featureId = featureId
        self.resourceId = resourceId
        self.timestamp = timestamp
    }

    func encode(into w: inout ByteWriter) {
        w.writeString(customerId)
        w.writeString(featureId)
        w.writeOptional(resourceId) { $0.writeString($1) }
        w.writeTimestamp(timestamp)
    }

    init(from r: inout ByteReader, schemaVersion: UInt16) throws(DecodingError) {
        customerId = try r.readString()
        featureId = try r.readString()
        resourceId = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
        timestamp = try r.readTimestamp()
    }
}

public struct PromotionalEntitlementGranted: Sendable, Equatable {
    public static let type = "PROMOTIONAL_ENTITLEMENT_GRANTED"
    public static let schemaVersion: UInt16 = 1
    public var entitlement: PromotionalEntitlement

    public init(entitlement: PromotionalEntitlement) { self.entitlement = entitlement }
    func encode(into w: inout ByteWriter) { entitlement.encode(into: &w) }
    init(from r: inout ByteReader, schemaVersion: UInt16) throws(DecodingError) { entitlement = try PromotionalEntitlement(from: &r) }
}

public struct PromotionalEntitlementRevoked: Sendable, Equatable {
    public static let type = "PROMOTIONAL_ENTITLEMENT_REVOKED"
    public static let schemaVersion: UInt16 = 1
    public var customerId: String
    public var featureId: String

    public init(customerId: String, featureId: String) {
        self.customerId = customerId
        self.featureId = featureId
    }

    func encode(into w: inout ByteWriter) {
        w.writeString(customerId)
        w.writeString(featureId)
    }

    init(from r: inout ByteReader, schemaVersion: UInt16) throws(DecodingError) {
        customerId = try r.readString()
        featureId = try r.readString()
    }
}
