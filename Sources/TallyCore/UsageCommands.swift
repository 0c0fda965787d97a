/// Catalog, usage and entitlement commands, validated for shape by the protocol layer.

public struct DefineCurrency: Sendable {
    public var currencyId: String
    public var displayName: String
    public var symbol: String?
    public init(currencyId: String, displayName: String, symbol: String?) {
        self.currencyId = currencyId
        self.displayName = displayName
        self.symbol = symbol
    }
}

public struct DefineFeature: Sendable {
    public var featureId: String
    public var displayName: String?
    public var type: FeatureType
    public var unit: String?
    public var meter: Meter?
    public var creditCost: CreditCost?
    public init(featureId: String, displayName: String?, type: FeatureType, unit: String?, meter: Meter?, creditCost: CreditCost?) {
        self.featureId = featureId
        self.displayName = displayName
        self.type = type
        self.unit = unit
        self.meter = meter
        self.creditCost = creditCost
    }
}

public struct DefinePlan: Sendable {
    public var planId: String
    public var displayName: String
    public var entitlements: [PlanEntitlement]
    public var trialDays: Int?
    public init(planId: String, displayName: String, entitlements: [PlanEntitlement], trialDays: Int?) {
        self.planId = planId
        self.displayName = displayName
        self.entitlements = entitlements
        self.trialDays = trialDays
    }
}

public struct ProvisionSubscription: Sendable {
    public var customerId: String
    public var planId: String
    public var subscriptionId: String?
    public var status: SubscriptionStatus
    public var startDate: Timestamp?
    public init(customerId: String, planId: String, subscriptionId: String?, status: SubscriptionStatus, startDate: Timestamp?) {
        self.customerId = customerId
        self.planId = planId
        self.subscriptionId = subscriptionId
        self.status = status
        self.startDate = startDate
    }
}

public struct ReportUsage: Sendable {
    public var customerId: String
    public var featureId: String
    public var value: Amount
    public var updateBehavior: UpdateBehavior
    public var resourceId: String?
    public var idempotencyKey: String?
    public var timestamp: Timestamp?
    public var dimensions: Dimensions
    public var strict: Bool
    /// Octane's reset_total: the running totals start again from zero before this usage.
    public var resetTotalFirst: Bool
    public init(customerId: String, featureId: String, value: Amount, updateBehavior: UpdateBehavior, resourceId: String?, idempotencyKey: String?, timestamp: Timestamp?, dimensions: Dimensions, strict: Bool, resetTotalFirst: Bool = false) {
        self.customerId = customerId
        self.featureId = featureId
        self.value = value
        self.updateBehavior = updateBehavior
        self.resourceId = resourceId
        self.idempotencyKey = idempotencyKey
        self.timestamp = timestamp
        self.dimensions = dimensions
        self.strict = strict
        self.resetTotalFirst = resetTotalFirst
    }
}

/// One raw event of a reportEvent call, with the fingerprint its idempotency key is bound to.
public struct RawEvent: Sendable {
    public var customerId: String
    public var eventName: String
    public var idempotencyKey: String
    public var resourceId: String?
    public var timestamp: Timestamp?
    public var dimensions: Dimensions
    public var fingerprint: [UInt8]
    public init(customerId: String, eventName: String, idempotencyKey: String, resourceId: String?, timestamp: Timestamp?, dimensions: Dimensions, fingerprint: [UInt8]) {
        self.customerId = customerId
        self.eventName = eventName
        self.idempotencyKey = idempotencyKey
        self.resourceId = resourceId
        self.timestamp = timestamp
        self.dimensions = dimensions
        self.fingerprint = fingerprint
    }
}

/// An item of a reportEvent call the protocol layer already refused (its index and why).
public struct EventRejection: Sendable, Equatable {
    public var index: Int
    public var code: Int
    public var message: String
    public init(index: Int, code: Int, message: String) {
        self.index = index
        self.code = code
        self.message = message
    }
}

public struct ReportEvents: Sendable {
    /// (index in the call, event) for the events that passed shape validation.
    public var events: [(index: Int, event: RawEvent)]
    public var rejected: [EventRejection]
    public init(events: [(index: Int, event: RawEvent)], rejected: [EventRejection]) {
        self.events = events
        self.rejected = rejected
    }
}

public struct GrantPromotional: Sendable {
    public var customerId: String
    public var featureId: String
    public var usageLimit: Amount?
    public var hasUnlimitedUsage: Bool
    public var resetPeriod: CalendarPeriod?
    public var endDate: Timestamp?
    public init(customerId: String, featureId: String, usageLimit: Amount?, hasUnlimitedUsage: Bool, resetPeriod: CalendarPeriod?, endDate: Timestamp?) {
        self.customerId = customerId
        self.featureId = featureId
        self.usageLimit = usageLimit
        self.hasUnlimitedUsage = hasUnlimitedUsage
        self.resetPeriod = resetPeriod
        self.endDate = endDate
    }
}

/// The recorded measurement and what it did, as reportUsage answers.
public struct UsageOutcome: Sendable, Equatable {
    public var measurementId: String
    public var event: UsageReported
    public var createdAt: Timestamp
    public var currentUsage: Amount
    public var usageLimit: Amount?
    public var usagePeriodEnd: Timestamp?
    public var credit: CreditOutcome?

    public init(measurementId: String, event: UsageReported, createdAt: Timestamp, currentUsage: Amount, usageLimit: Amount?, usagePeriodEnd: Timestamp?, credit: CreditOutcome? = nil) {
        self.credit = credit
        self.measurementId = measurementId
        self.event = event
        self.createdAt = createdAt
        self.currentUsage = currentUsage
        self.usageLimit = usageLimit
        self.usagePeriodEnd = usagePeriodEnd
    }
}

public struct EventsOutcome: Sendable, Equatable {
    public var accepted: Int
    public var duplicates: Int
    public var rejected: [EventRejection]
    public init(accepted: Int, duplicates: Int, rejected: [EventRejection]) {
        self.accepted = accepted
        self.duplicates = duplicates
        self.rejected = rejected
    }
}

/// The entitlement a customer has to a feature right now: the most generous of the active
/// promotional grant and the active subscriptions' plans.
public struct ResolvedEntitlement: Sendable, Equatable {
    public var hasAccess: Bool
    public var isUnlimited: Bool
    public var usageLimit: Amount?
    public var resetPeriod: CalendarPeriod?
    public var source: String

    public init(hasAccess: Bool, isUnlimited: Bool, usageLimit: Amount?, resetPeriod: CalendarPeriod?, source: String) {
        self.hasAccess = hasAccess
        self.isUnlimited = isUnlimited
        self.usageLimit = usageLimit
        self.resetPeriod = resetPeriod
        self.source = source
    }

    /// Picks the entitlement: an active promotional grant competes with the plans as one more
    /// plan (the more generous wins, as in Stigg); unlimited wins, then the highest limit, and the
    /// first candidate — the promotion, then the plans in order — wins a tie.
    public static func resolve(featureId: String, plans: [Plan], promotional: PromotionalEntitlement?, at t: Timestamp) -> ResolvedEntitlement? {
        var candidates: [ResolvedEntitlement] = []
        if let p = promotional, p.isActive(at: t) {
            candidates.append(ResolvedEntitlement(hasAccess: true, isUnlimited: p.hasUnlimitedUsage, usageLimit: p.hasUnlimitedUsage ? nil : p.usageLimit, resetPeriod: p.resetPeriod, source: "PROMOTIONAL"))
        }
        for plan in plans {
            for e in plan.entitlements where UTF8Exact.equal(e.featureId, featureId) && e.hasAccess {
                candidates.append(ResolvedEntitlement(hasAccess: true, isUnlimited: e.hasUnlimitedUsage, usageLimit: e.hasUnlimitedUsage ? nil : e.usageLimit, resetPeriod: e.resetPeriod, source: "PLAN:\(plan.id)"))
            }
        }
        var best: ResolvedEntitlement?
        for candidate in candidates {
            guard let current = best else { best = candidate; continue }
            if candidate.isUnlimited && !current.isUnlimited { best = candidate; continue }
            // No limit (and not unlimited) is a limit of 0: it beats nothing and ties with 0.
            if !current.isUnlimited, !candidate.isUnlimited, (candidate.usageLimit ?? .zero) > (current.usageLimit ?? .zero) { best = candidate }
        }
        return best
    }
}

public struct GrantCredits: Sendable {
    public var customerId: String
    public var currencyId: String
    public var amount: Amount
    public var grantType: GrantType
    public var displayName: String?
    public var priority: Int
    public var effectiveAt: Timestamp?
    public var expireAt: Timestamp?
    public var resourceId: String?
    public var cost: Money?
    public var metadata: [(String, String)]
    public var comment: String?
    public var idempotencyKey: String?

    public init(customerId: String, currencyId: String, amount: Amount, grantType: GrantType, displayName: String?, priority: Int, effectiveAt: Timestamp?, expireAt: Timestamp?, resourceId: String?, cost: Money?, metadata: [(String, String)], comment: String?, idempotencyKey: String?) {
        self.customerId = customerId
        self.currencyId = currencyId
        self.amount = amount
        self.grantType = grantType
        self.displayName = displayName
        self.priority = priority
        self.effectiveAt = effectiveAt
        self.expireAt = expireAt
        self.resourceId = resourceId
        self.cost = cost
        self.metadata = metadata
        self.comment = comment
        self.idempotencyKey = idempotencyKey
    }
}

/// The credit side of a usage report: what it cost and the exact balance after the commit.
public struct CreditOutcome: Sendable, Equatable {
    public var currencyId: String
    public var consumed: Amount
    public var balance: Amount
    public var autoRecharged: Amount?

    public init(currencyId: String, consumed: Amount, balance: Amount, autoRecharged: Amount?) {
        self.currencyId = currencyId
        self.consumed = consumed
        self.balance = balance
        self.autoRecharged = autoRecharged
    }
}

/// setAutoRecharge: fields left out keep their configured values, so `{isEnabled: false}` alone
/// disables recharging without losing the configuration; the optional limit and expiry period
/// can also be cleared.
public struct SetAutoRecharge: Sendable {
    public var customerId: String
    public var currencyId: String
    public var isEnabled: Bool
    public var thresholdValue: Amount?
    public var targetBalance: Amount?
    public var maxSpendLimit: FieldChange<Amount>
    public var grantExpirationPeriod: FieldChange<CalendarPeriod>

    public init(customerId: String, currencyId: String, isEnabled: Bool, thresholdValue: Amount?, targetBalance: Amount?,
                maxSpendLimit: FieldChange<Amount>, grantExpirationPeriod: FieldChange<CalendarPeriod>) {
        self.customerId = customerId
        self.currencyId = currencyId
        self.isEnabled = isEnabled
        self.thresholdValue = thresholdValue
        self.targetBalance = targetBalance
        self.maxSpendLimit = maxSpendLimit
        self.grantExpirationPeriod = grantExpirationPeriod
    }
}
