public import TallyCore
public import TallyStorage

/// Decisions for the catalog, usage and entitlement commands. Each checks the state through the
/// group (so it sees what earlier commands of the group decided), appends its events, and builds
/// the answer from the projections after them. A rejection appends nothing.
extension GroupState {
    mutating func decideCatalogOrUsage(_ command: Command, idempotencyKey: String?, now: Timestamp) throws(StorageError) -> Result<CommandResult, Rejection> {
        switch command {
        case .provisionCustomer:
            preconditionFailure("decided in GroupState.decide")

        case .defineCurrency(let c):
            let version = (try Projections.currency(c.currencyId, in: self)?.version ?? 0) + 1
            let currency = Currency(id: c.currencyId, displayName: c.displayName, symbol: c.symbol, version: version)
            try append([.currencyDefined(CurrencyDefined(currency: currency))], now: now)
            return .success(.currency(currency))

        case .defineFeature(let c):
            if let cost = c.creditCost, try Projections.currency(cost.currencyId, in: self) == nil {
                return .failure(Rejection(.currencyNotFound, "currency \"\(cost.currencyId)\" does not exist; define it with defineCurrency"))
            }
            let current = try Projections.feature(c.featureId, in: self)
            let feature = Feature(id: c.featureId, displayName: c.displayName, type: c.type, unit: c.unit, meter: c.meter, creditCost: c.creditCost, version: (current?.version ?? 0) + 1)
            if let problem = current?.redefinitionProblem(feature) { return .failure(Rejection(.invalidState, problem)) }
            try append([.featureDefined(FeatureDefined(feature: feature))], now: now)
            return .success(.feature(feature))

        case .definePlan(let c):
            for (index, entitlement) in c.entitlements.enumerated() {
                guard let feature = try Projections.feature(entitlement.featureId, in: self) else {
                    return .failure(Rejection(.featureNotFound, "feature \"\(entitlement.featureId)\" does not exist"))
                }
                if let problem = Self.booleanLimitProblem(feature, usageLimit: entitlement.usageLimit, unlimited: entitlement.hasUnlimitedUsage, resetPeriod: entitlement.resetPeriod) {
                    return .failure(Rejection(.invalidParams, problem.message, field: "entitlements[\(index)].\(problem.field)"))
                }
            }
            let version = (try Projections.plan(c.planId, in: self)?.version ?? 0) + 1
            let plan = Plan(id: c.planId, displayName: c.displayName, entitlements: c.entitlements, trialDays: c.trialDays, version: version)
            try append([.planDefined(PlanDefined(plan: plan))], now: now)
            return .success(.plan(plan))

        case .provisionSubscription(let c):
            if let rejection = try requireCustomer(c.customerId) { return .failure(rejection) }
            guard try Projections.plan(c.planId, in: self) != nil else {
                return .failure(Rejection(.planNotFound, "plan \"\(c.planId)\" does not exist"))
            }
            let id: String
            if let given = c.subscriptionId { id = given } else { id = try newSubscriptionId() }
            if let existing = try Projections.subscription(id, in: self), !UTF8Exact.equal(existing.customerId, c.customerId) {
                return .failure(Rejection(.invalidState, "subscription \"\(id)\" belongs to another customer"))
            }
            // One provisioned as CANCELED was canceled when it was recorded, as cancelSubscription says.
            let subscription = Subscription(
                id: id, customerId: c.customerId, planId: c.planId, status: c.status, startDate: c.startDate ?? now,
                canceledAt: c.status == .canceled ? now : nil)
            try append([.subscriptionProvisioned(SubscriptionProvisioned(subscription: subscription))], now: now)
            return .success(.subscription(subscription))

        case .cancelSubscription(let id):
            guard let subscription = try Projections.subscription(id, in: self) else {
                return .failure(Rejection(.invalidState, "subscription \"\(id)\" does not exist"))
            }
            guard subscription.status != .canceled else {
                return .failure(Rejection(.invalidState, "subscription \"\(id)\" is already canceled"))
            }
            try append([.subscriptionCanceled(SubscriptionCanceled(subscriptionId: id, customerId: subscription.customerId))], now: now)
            return .success(.subscription(try Projections.subscription(id, in: self)!))

        case .reportUsage(let c):
            return try reportUsage(c, now: now)

        case .reportEvents(let c):
            return .success(.events(try reportEvents(c, now: now)))

        case .grantPromotional(let c):
            if let rejection = try requireCustomer(c.customerId) { return .failure(rejection) }
            guard let feature = try Projections.feature(c.featureId, in: self) else {
                return .failure(Rejection(.featureNotFound, "feature \"\(c.featureId)\" does not exist"))
            }
            if let problem = Self.booleanLimitProblem(feature, usageLimit: c.usageLimit, unlimited: c.hasUnlimitedUsage, resetPeriod: c.resetPeriod) {
                return .failure(Rejection(.invalidParams, problem.message, field: problem.field))
            }
            // Like a grant's expireAt: a promotion that has already ended would replace the
            // current one and grant nothing (revokePromotionalEntitlement ends one now).
            if let endDate = c.endDate, endDate <= now {
                return .failure(Rejection(.invalidParams, "must be in the future (to end the current promotion now, revoke it)", field: "endDate"))
            }
            let entitlement = PromotionalEntitlement(
                customerId: c.customerId, featureId: c.featureId, usageLimit: c.usageLimit, hasUnlimitedUsage: c.hasUnlimitedUsage,
                resetPeriod: c.resetPeriod, endDate: c.endDate, grantedAt: now
            )
            try append([.promotionalEntitlementGranted(PromotionalEntitlementGranted(entitlement: entitlement))], now: now)
            return .success(.promotional(entitlement))

        case .revokePromotional(let customerId, let featureId):
            if let rejection = try requireCustomer(customerId) { return .failure(rejection) }
            guard try Projections.feature(featureId, in: self) != nil else {
                return .failure(Rejection(.featureNotFound, "feature \"\(featureId)\" does not exist"))
            }
            guard try Projections.promotional(customerId: customerId, featureId: featureId, in: self) != nil else {
                return .failure(Rejection(.invalidState, "customer \"\(customerId)\" has no promotional entitlement to \"\(featureId)\""))
            }
            try append([.promotionalEntitlementRevoked(PromotionalEntitlementRevoked(customerId: customerId, featureId: featureId))], now: now)
            return .success(.revoked(customerId: customerId, featureId: featureId))

        case .grantCredits(let c):
            return try grantCredits(c, now: now)

        case .voidCreditGrant(let grantId):
            return try voidGrant(grantId, idempotencyKey: idempotencyKey, now: now)

        case .setAutoRecharge(let c):
            if let rejection = try requireCustomer(c.customerId) { return .failure(rejection) }
            guard try Projections.currency(c.currencyId, in: self) != nil else {
                return .failure(Rejection(.currencyNotFound, "currency \"\(c.currencyId)\" does not exist"))
            }
            let existing = try Projections.autoRecharge(customerId: c.customerId, currencyId: c.currencyId, in: self)
            guard let threshold = c.thresholdValue ?? existing?.thresholdValue else {
                return .failure(Rejection(.invalidParams, "is required: there is no configuration to keep", field: "thresholdValue"))
            }
            guard let target = c.targetBalance ?? existing?.targetBalance else {
                return .failure(Rejection(.invalidParams, "is required: there is no configuration to keep", field: "targetBalance"))
            }
            guard target > threshold else {
                return .failure(Rejection(.invalidParams, "must be greater than thresholdValue (\(threshold))", field: "targetBalance"))
            }
            let config = AutoRecharge(
                customerId: c.customerId, currencyId: c.currencyId, isEnabled: c.isEnabled, thresholdValue: threshold, targetBalance: target,
                maxSpendLimit: c.maxSpendLimit.applied(to: existing?.maxSpendLimit),
                grantExpirationPeriod: c.grantExpirationPeriod.applied(to: existing?.grantExpirationPeriod)
            )
            try append([.autoRechargeConfigured(AutoRechargeConfigured(config: config))], now: now)
            return .success(.autoRecharge(config))

        case .expireCredits:
            return .success(.expired(count: try expireCredits(now: now)))
        }
    }

    func requireCustomer(_ id: String) throws(StorageError) -> Rejection? {
        try Projections.customer(id, in: self) == nil ? Rejection(.customerNotFound, "customer \"\(id)\" does not exist") : nil
    }

    private mutating func reportUsage(_ c: ReportUsage, now: Timestamp) throws(StorageError) -> Result<CommandResult, Rejection> {
        if let rejection = try requireCustomer(c.customerId) { return .failure(rejection) }
        guard let feature = try Projections.feature(c.featureId, in: self) else {
            return .failure(Rejection(.featureNotFound, "feature \"\(c.featureId)\" does not exist"))
        }
        guard feature.type == .metered else {
            return .failure(Rejection(.invalidState, "feature \"\(c.featureId)\" is BOOLEAN; only METERED features take usage"))
        }
        // A delta added to the period totals of a MAX/MIN/LATEST/UNIQUE_COUNT meter would make them
        // disagree with the history, which aggregates the raw events.
        if let aggregation = feature.meter?.aggregation, !aggregation.isAdditive {
            return .failure(Rejection(.invalidState, "feature \"\(c.featureId)\"'s usage is computed from raw events with \(aggregation.rawValue); send them with reportEvent"))
        }
        let timestamp = c.timestamp ?? now
        let entitlement = try EntitlementReader.resolve(customerId: c.customerId, featureId: c.featureId, at: now, in: self)
        let period = entitlement?.resetPeriod
        var events: [EventPayload] = []
        var current = try Projections.usageTotal(customerId: c.customerId, featureId: c.featureId, resourceId: c.resourceId, period: period, at: timestamp, in: self).value
        if c.resetTotalFirst {
            events.append(.usageReset(UsageReset(customerId: c.customerId, featureId: c.featureId, resourceId: c.resourceId, timestamp: timestamp)))
            current = .zero
        }
        let delta: Amount
        switch c.updateBehavior {
        case .delta: delta = c.value
        case .set:
            guard let difference = c.value.subtracting(current) else {
                return .failure(Rejection(.invalidState, "the difference between \(c.value) and the current usage \(current) is out of range"))
            }
            delta = difference
        }
        // Every cell the usage lands in stays in range, `current` among them (after a reset the
        // totals start from 0).
        guard try !Projections.usageExceedsRange(
            customerId: c.customerId, featureId: c.featureId, resourceId: c.resourceId, timestamp: timestamp, dimensions: c.dimensions,
            contribution: delta, totals: !c.resetTotalFirst, in: self)
        else {
            return .failure(Rejection(.invalidState, "usage would exceed the representable range"))
        }
        let reported = UsageReported(
            customerId: c.customerId, featureId: c.featureId, resourceId: c.resourceId, updateBehavior: c.updateBehavior,
            value: c.value, delta: delta, timestamp: timestamp, dimensions: c.dimensions, idempotencyKey: c.idempotencyKey
        )
        // A credit-backed feature deducts in the same commit; strict refuses (appending nothing)
        // what the balance does not cover.
        var deduction: Deduction?
        if let cost = feature.creditCost {
            if c.updateBehavior == .delta, delta.isNegative {
                return .failure(Rejection(.invalidParams, "must not be negative for the credit-backed feature \"\(c.featureId)\": refunds are grants", field: "value"))
            }
            if delta.isPositive {
                guard let price = delta.multipliedExactly(by: cost.amountPerUnit) else {
                    return .failure(Rejection(.invalidParams, "× amountPerUnit \(cost.amountPerUnit) has more than 12 fractional digits or is out of range", field: "value"))
                }
                if let problem = try deductionRangeProblem(customerId: c.customerId, currencyId: cost.currencyId, resourceId: c.resourceId, cost: price) {
                    return .failure(Rejection(.invalidParams, problem, field: "value"))
                }
                let planned = try planDeduction(
                    customerId: c.customerId, currencyId: cost.currencyId, resourceId: c.resourceId, featureId: c.featureId, cost: price,
                    timestamp: timestamp, dimensions: c.dimensions, idempotencyKey: c.idempotencyKey, now: now
                )
                // Strict: the balance (grants counted now, less any overdraft) must cover the cost.
                if c.strict, planned.availableAfter.isNegative {
                    let balance = planned.availableAfter + price
                    return .failure(Rejection(.insufficientCredits, "the usage costs \(price) \(cost.currencyId) but the balance is \(balance)"))
                }
                deduction = planned
            }
        }
        events.append(.usageReported(reported))
        try append(events, now: now)
        let usageSequence = head.sequence
        var credit: CreditOutcome?
        if let deduction {
            credit = try applyDeduction(deduction, now: now)
        } else if let cost = feature.creditCost {
            let balance = try Projections.balance(customerId: c.customerId, currencyId: cost.currencyId, resourceId: c.resourceId, at: now, in: self)
            credit = CreditOutcome(currencyId: cost.currencyId, consumed: .zero, balance: balance.balance, autoRecharged: nil)
        }
        let after = try Projections.usageTotal(customerId: c.customerId, featureId: c.featureId, resourceId: c.resourceId, period: period, at: now, in: self)
        return .success(.usage(UsageOutcome(
            measurementId: "m_\(usageSequence)",
            event: reported,
            createdAt: head.recordedAt,
            currentUsage: after.value,
            // As getEntitlement shows it: a limited entitlement without a limit has a limit of 0.
            usageLimit: entitlement.flatMap { $0.isUnlimited ? nil : ($0.usageLimit ?? .zero) },
            usagePeriodEnd: period.map { CalendarUTC.periodEnd($0, containing: now) },
            credit: credit
        )))
    }

    /// The id of a subscription provisioned without one: `sub_<sequence>`, or, when a client
    /// already gave that id to a subscription of its own, `sub_<sequence>.2`, `.3`…: a made-up id
    /// never names (and so replaces) an existing subscription.
    private func newSubscriptionId() throws(StorageError) -> String {
        let base = store.generatedId("sub", sequence: head.sequence + 1)
        var id = base
        var n = 2
        while try projection(KeyLayout.subscriptionKey(id)) != nil {
            id = "\(base).\(n)"
            n += 1
        }
        return id
    }

    /// A BOOLEAN feature has no usage: an entitlement to it is access or none, so a usage limit,
    /// unlimited usage or a reset period given for it is a mistake to say, not to keep.
    static func booleanLimitProblem(_ feature: Feature, usageLimit: Amount?, unlimited: Bool, resetPeriod: CalendarPeriod?) -> (field: String, message: String)? {
        guard feature.type == .boolean else { return nil }
        let field = usageLimit != nil ? "usageLimit" : unlimited ? "hasUnlimitedUsage" : resetPeriod != nil ? "resetPeriod" : nil
        return field.map { ($0, "feature \"\(feature.id)\" is BOOLEAN (access, no usage): it takes no \($0); give hasAccess only") }
    }

    /// Raw events: each is accepted, a duplicate of its idempotency key, or rejected on its own.
    private mutating func reportEvents(_ c: ReportEvents, now: Timestamp) throws(StorageError) -> EventsOutcome {
        var outcome = EventsOutcome(accepted: 0, duplicates: 0, rejected: c.rejected)
        for (index, raw) in c.events {
            guard try Projections.customer(raw.customerId, in: self) != nil else {
                outcome.rejected.append(EventRejection(index: index, code: Rejection.Code.customerNotFound.rawValue, message: "customer \"\(raw.customerId)\" does not exist"))
                continue
            }
            if let seen = try idempotencyRecord(family: IdempotencyFamily.event, customerId: raw.customerId, key: raw.idempotencyKey) {
                if seen.fingerprint == raw.fingerprint {
                    outcome.duplicates += 1
                } else {
                    outcome.rejected.append(EventRejection(index: index, code: Rejection.Code.idempotencyConflict.rawValue, message: "idempotency key \"\(raw.idempotencyKey)\" was already used with a different event"))
                }
                continue
            }
            switch try meterProblem(raw, timestamp: raw.timestamp ?? now) {
            case nil:
                break
            case .invalid(let field, let message)?:
                // Named as the shape checks name an event's fields: `events[i].dimensions.<key>`.
                let place = field.map { "events[\(index)].\($0) " } ?? "events[\(index)]: "
                outcome.rejected.append(EventRejection(index: index, code: -32602, message: "Invalid params: " + place + message))
                continue
            case .outOfRange(let featureId)?:
                outcome.rejected.append(EventRejection(
                    index: index, code: Rejection.Code.invalidState.rawValue,
                    message: "the usage of feature \"\(featureId)\" would exceed the representable range"))
                continue
            }
            let received = EventReceived(
                customerId: raw.customerId, eventName: raw.eventName, idempotencyKey: raw.idempotencyKey,
                resourceId: raw.resourceId, timestamp: raw.timestamp ?? now, dimensions: raw.dimensions
            )
            try append([.eventReceived(received)], now: now)
            try deductForMeters(received, now: now)
            remember(IdempotencyRecord(fingerprint: raw.fingerprint, result: .events(EventsOutcome(accepted: 1, duplicates: 0, rejected: []))),
                     family: IdempotencyFamily.event, customerId: raw.customerId, key: raw.idempotencyKey)
            outcome.accepted += 1
        }
        outcome.rejected.sort { $0.index < $1.index }
        return outcome
    }

    /// Credit-backed features metered with COUNT or SUM deduct what the event adds, in the same
    /// commit (never strict: raw events are not refused for want of credits).
    private mutating func deductForMeters(_ e: EventReceived, now: Timestamp) throws(StorageError) {
        for featureId in try Projections.meteredFeatureIDs(eventName: e.eventName, in: self) {
            guard let feature = try Projections.feature(featureId, in: self), let cost = feature.creditCost, let meter = feature.meter,
                  meter.aggregation == .count || meter.aggregation == .sum, meter.matches(e.dimensions),
                  let reading = MeterReading(meter: meter, dimensions: e.dimensions), reading.contribution.isPositive,
                  let price = reading.contribution.multipliedExactly(by: cost.amountPerUnit)
            else { continue }
            let planned = try planDeduction(
                customerId: e.customerId, currencyId: cost.currencyId, resourceId: e.resourceId, featureId: featureId, cost: price,
                timestamp: e.timestamp, dimensions: reading.seriesDimensions, idempotencyKey: e.idempotencyKey, now: now
            )
            _ = try applyDeduction(planned, now: now)
        }
    }

    /// Why a meter that would count this event cannot read it (a non-numeric value where it sums),
    /// or why a credit-backed meter cannot deduct for it: the rules of reportUsage on such a
    /// feature (no negative usage: refunds are grants; a cost exact in 12 fractional digits and in
    /// range). An event is never accepted without the deduction it owes. `field` is the dimension
    /// it is about (`dimensions.<key>`), nil for the event as a whole (a COUNT). Else the first SUM
    /// feature whose usage the event would take beyond what an amount holds (in any cell: a series
    /// bucket or a period total), as reportUsage refuses such a delta. (COUNT and UNIQUE_COUNT add
    /// 1: past 10^26 events, never met.)
    private func meterProblem(_ raw: RawEvent, timestamp: Timestamp) throws(StorageError) -> MeterProblem? {
        // The event's deductions so far, by currency: several features may charge one pool, and
        // their costs together must stay in range. (Ids by bytes, as the projections' keys hold them.)
        var costs: [ByteExactString: Amount] = [:]
        // Said only when no feature finds the event invalid.
        var outOfRange: String?
        for featureId in try Projections.meteredFeatureIDs(eventName: raw.eventName, in: self) {
            guard let feature = try Projections.feature(featureId, in: self), let meter = feature.meter, meter.matches(raw.dimensions) else { continue }
            if [.sum, .max, .min, .latest].contains(meter.aggregation), let field = meter.field, let text = raw.dimensions[field] {
                do {
                    _ = try Amount(parsing: text)
                } catch {
                    // Why: not a number, too many fractional digits, or out of range.
                    return .invalid(field: "dimensions.\(field)", message: "must be a decimal number for feature \"\(featureId)\", which aggregates it with \(meter.aggregation.rawValue): \(error.description)")
                }
            }
            guard meter.aggregation == .count || meter.aggregation == .sum, let reading = MeterReading(meter: meter, dimensions: raw.dimensions) else { continue }
            if outOfRange == nil, meter.aggregation == .sum, try Projections.usageExceedsRange(
                customerId: raw.customerId, featureId: featureId, resourceId: raw.resourceId, timestamp: timestamp,
                dimensions: reading.seriesDimensions, contribution: reading.contribution, in: self)
            {
                outOfRange = featureId
            }
            guard let cost = feature.creditCost else { continue }
            let field = meter.field.map { "dimensions.\($0)" }
            func problem(_ text: String) -> MeterProblem { .invalid(field: field, message: field == nil ? "the event " + text : text) }
            if reading.contribution.isNegative {
                return problem("must not be negative: feature \"\(featureId)\" is credit-backed (refunds are grants)")
            }
            guard let price = reading.contribution.multipliedExactly(by: cost.amountPerUnit) else {
                return problem("× amountPerUnit \(cost.amountPerUnit) of feature \"\(featureId)\" has more than 12 fractional digits or is out of range")
            }
            guard let total = (costs[ByteExactString(cost.currencyId)] ?? .zero).adding(price) else {
                return problem("of feature \"\(featureId)\" costs more than the ledger can hold")
            }
            costs[ByteExactString(cost.currencyId)] = total
            if let range = try deductionRangeProblem(customerId: raw.customerId, currencyId: cost.currencyId, resourceId: raw.resourceId, cost: total) {
                return problem("of feature \"\(featureId)\" \(range)")
            }
        }
        return outOfRange.map { .outOfRange(featureId: $0) }
    }

    /// Why a raw event is refused by the features that meter it.
    private enum MeterProblem {
        /// It cannot be read or charged: -32602, about `field` (`dimensions.<key>`, nil: the event).
        case invalid(field: String?, message: String)
        /// It would take this SUM feature's usage beyond what an amount holds: 1013.
        case outOfRange(featureId: String)
    }
}

/// Resolves a customer's entitlement to a feature from any projection source (the writer's group,
/// the live store, or a replay).
public enum EntitlementReader {
    public static func resolve(customerId: String, featureId: String, at t: Timestamp, in source: some ProjectionSource) throws(StorageError) -> ResolvedEntitlement? {
        let plans = try Projections.entitlingPlans(customerId: customerId, at: t, in: source)
        let promotional = try Projections.promotional(customerId: customerId, featureId: featureId, in: source)
        return ResolvedEntitlement.resolve(featureId: featureId, plans: plans, promotional: promotional, at: t)
    }
}
