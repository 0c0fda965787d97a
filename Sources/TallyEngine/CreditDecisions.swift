import TallyCore
import TallyStorage

extension GroupState: ProjectionScanner {
    /// The store's records in range with the group's own changes laid over them.
    func scan(from lower: [UInt8], to upper: [UInt8]) throws(StorageError) -> [(key: [UInt8], value: [UInt8])] {
        var merged: [[UInt8]: [UInt8]] = [:]
        for (key, value) in try store.scan(from: lower, to: upper) { merged[key] = value }
        for (key, value) in overlayEntries where !key.lexicographicallyPrecedes(lower) && key.lexicographicallyPrecedes(upper) {
            merged[key] = value
        }
        return merged.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { ($0.key, $0.value) }
    }
}

/// What a deduction would do, computed before anything is appended: the activations due in its
/// pool (appended first), then the consumption.
struct Deduction {
    var activations: [CreditsActivated]
    var consumed: CreditsConsumed
    var availableAfter: Amount
}

extension GroupState {
    /// A pool's running ledger balance stays below 10^21, like its overdraft (see
    /// `deductionRangeProblem`) and every single amount: each balance the ledger shows parses back
    /// as an amount, and every credit sum the projections keep stays far inside `Int128` (about
    /// 1.7 × 10^26 of 10^-12 units), so none can overflow.
    static let poolBalanceMax = Amount.maxMagnitude

    /// Why a deduction of `cost` from a pool cannot be recorded, or nil: a cost of 10^21 or more
    /// (no single amount may be that large), or a pool whose overdraft would reach 10^21.
    func deductionRangeProblem(customerId: String, currencyId: String, resourceId: String?, cost: Amount) throws(StorageError) -> String? {
        guard cost.isBelowMaxMagnitude else {
            return "costs \(cost) \(currencyId), beyond the \(Amount.maxMagnitude) one deduction may be"
        }
        let pool = try Projections.creditPool(customerId: customerId, currencyId: currencyId, resourceId: resourceId, in: self)
        guard let reach = pool.overdraft.adding(cost), reach.isBelowMaxMagnitude else {
            return "costs \(cost) \(currencyId), which could take the overdraft of \(pool.overdraft) beyond \(Amount.maxMagnitude)"
        }
        return nil
    }

    /// Whether granting `amount` keeps the pool's ledger balance below `poolBalanceMax`.
    func grantFits(_ amount: Amount, customerId: String, currencyId: String, resourceId: String?) throws(StorageError) -> Bool {
        let pool = try Projections.creditPool(customerId: customerId, currencyId: currencyId, resourceId: resourceId, in: self)
        return pool.ledgerBalance.adding(amount).map { $0 < Self.poolBalanceMax } ?? false
    }

    mutating func grantCredits(_ c: GrantCredits, now: Timestamp, sourceType: GrantSource = .manual) throws(StorageError) -> Result<CommandResult, Rejection> {
        guard try Projections.customer(c.customerId, in: self) != nil else {
            return .failure(Rejection(.customerNotFound, "customer \"\(c.customerId)\" does not exist"))
        }
        guard try Projections.currency(c.currencyId, in: self) != nil else {
            return .failure(Rejection(.currencyNotFound, "currency \"\(c.currencyId)\" does not exist; define it with defineCurrency"))
        }
        let effectiveAt = c.effectiveAt ?? now
        if let expireAt = c.expireAt, expireAt <= now {
            return .failure(Rejection(.invalidParams, "must be in the future", field: "expireAt"))
        }
        guard try grantFits(c.amount, customerId: c.customerId, currencyId: c.currencyId, resourceId: c.resourceId) else {
            return .failure(Rejection(.invalidParams, "would take the pool's balance beyond \(Self.poolBalanceMax) \(c.currencyId)", field: "amount"))
        }
        // Grants that became effective before this one repay the overdraft before it does.
        try settleActivations(customerId: c.customerId, currencyId: c.currencyId, resourceId: c.resourceId, now: now)
        let grant = newGrant(c, effectiveAt: effectiveAt, sourceType: sourceType, now: now)
        try append([.creditsGranted(CreditsGranted(grant: grant, idempotencyKey: c.idempotencyKey))], now: now)
        return .success(.grant(try Projections.grant(grant.grantId, in: self)!))
    }

    /// A grant numbered by the event that will create it; a grant effective when granted repays the
    /// pool's overdraft first (one scheduled for later repays when it becomes effective:
    /// `settleActivations`).
    private func newGrant(_ c: GrantCredits, effectiveAt: Timestamp, sourceType: GrantSource, now: Timestamp) -> CreditGrant {
        let sequence = head.sequence + 1
        var grant = CreditGrant(
            grantId: store.generatedId("grant", sequence: sequence), customerId: c.customerId, currencyId: c.currencyId, resourceId: c.resourceId,
            grantType: c.grantType, sourceType: sourceType, amount: c.amount, priority: c.priority, effectiveAt: effectiveAt,
            expireAt: c.expireAt, displayName: c.displayName, cost: c.cost, metadata: c.metadata, comment: c.comment,
            createdAt: max(now, head.recordedAt), sequence: sequence
        )
        if !grant.isScheduledWhenGranted, let pool = try? Projections.creditPool(customerId: c.customerId, currencyId: c.currencyId, resourceId: c.resourceId, in: self) {
            grant.repaid = Amount.min(c.amount, pool.overdraft)
        }
        return grant
    }

    mutating func voidGrant(_ grantId: String, idempotencyKey: String?, now: Timestamp) throws(StorageError) -> Result<CommandResult, Rejection> {
        guard let grant = try Projections.grant(grantId, in: self) else {
            return .failure(Rejection(.grantNotFound, "credit grant \"\(grantId)\" does not exist"))
        }
        let status = grant.status(at: now)
        guard status == .active || status == .scheduled else {
            return .failure(Rejection(.grantNotActive, "credit grant \"\(grantId)\" is \(status.rawValue)"))
        }
        // Effective already, it repaid the overdraft first; what is left of it is voided.
        try settleActivations(customerId: grant.customerId, currencyId: grant.currencyId, resourceId: grant.resourceId, now: now)
        guard let grant = try Projections.grant(grantId, in: self) else { preconditionFailure("grant \(grantId) vanished") }
        try append([.creditsVoided(CreditsVoided(removal: CreditsRemoved(
            grantId: grantId, customerId: grant.customerId, currencyId: grant.currencyId, resourceId: grant.resourceId,
            amount: grant.remaining, idempotencyKey: idempotencyKey
        )))], now: now)
        return .success(.grant(try Projections.grant(grantId, in: self)!))
    }

    /// Appends CREDITS_ACTIVATED for every grant that became effective by now (see
    /// `settleActivations`), then CREDITS_EXPIRED, in expireAt order, for every open grant whose
    /// expireAt ≤ now. Returns how many grants expired.
    mutating func expireCredits(now: Timestamp) throws(StorageError) -> Int {
        let activations = try scan(from: KeyLayout.activationPrefix, to: KeyLayout.activationPrefix + KeyLayout.sortable(now.adding(microseconds: 1)))
        for (key, _) in activations {
            guard let grantId = KeyLayout.grantId(fromActivationKey: key) else { throw .corrupt("activation schedule key of \(key.count) bytes does not parse") }
            // The first grant of a pool settles the pool's others too; they are then no longer due.
            guard let grant = try Projections.grant(grantId, in: self) else { continue }
            try settleActivations(customerId: grant.customerId, currencyId: grant.currencyId, resourceId: grant.resourceId, now: now)
        }
        let due = try scan(from: KeyLayout.expiryPrefix, to: KeyLayout.expiryPrefix + KeyLayout.sortable(now.adding(microseconds: 1)))
        var count = 0
        for (key, _) in due {
            guard let grantId = KeyLayout.grantId(fromExpiryKey: key) else { throw .corrupt("expiry schedule key of \(key.count) bytes does not parse") }
            guard let grant = try Projections.grant(grantId, in: self), grant.expiredAt == nil, grant.voidedAt == nil else { continue }
            try append([.creditsExpired(CreditsExpired(removal: CreditsRemoved(
                grantId: grantId, customerId: grant.customerId, currencyId: grant.currencyId, resourceId: grant.resourceId,
                amount: grant.remaining, idempotencyKey: nil
            )))], now: now)
            count += 1
        }
        return count
    }

    /// Appends CREDITS_ACTIVATED for each grant of the pool that was scheduled when granted and is
    /// effective by now, in the order they became effective: each repays what it can of the
    /// overdraft, as a grant effective when granted does at once. Called before anything else
    /// touches the pool (a grant, a void, a deduction) and by the daemon's timer.
    mutating func settleActivations(customerId: String, currencyId: String, resourceId: String?, now: Timestamp) throws(StorageError) {
        let pool = try Projections.creditPool(customerId: customerId, currencyId: currencyId, resourceId: resourceId, in: self)
        try append(try Projections.activationsDue(pool, at: now, in: self).map { .creditsActivated(Self.activation($0.grant, repays: $0.repays)) }, now: now)
    }

    private static func activation(_ grant: CreditGrant, repays: Amount) -> CreditsActivated {
        CreditsActivated(grantId: grant.grantId, customerId: grant.customerId, currencyId: grant.currencyId, resourceId: grant.resourceId, overdraftRepaid: repays)
    }

    /// The deduction of `cost` from a pool, drawing grants in the contract's order; nothing
    /// appended. It starts from the pool as the activations due now leave it (they are appended
    /// with the deduction). An overdraft left even so (a log written before activations repaid)
    /// is repaid first from what the grants hold, so the balance moves by exactly −cost.
    func planDeduction(customerId: String, currencyId: String, resourceId: String?, featureId: String, cost: Amount, timestamp: Timestamp, dimensions: Dimensions, idempotencyKey: String?, now: Timestamp) throws(StorageError) -> Deduction {
        let (pool, grants, due) = try Projections.settled(customerId: customerId, currencyId: currencyId, resourceId: resourceId, at: now, in: self)
        var left = pool.overdraft + cost
        var available = Amount.zero
        var breakdown: [(String, Amount)] = []
        for grant in grants where grant.isDrawable(at: now) {
            available = available + grant.remaining
            guard left.isPositive else { continue }
            let draw = Amount.min(left, grant.remaining)
            breakdown.append((grant.grantId, draw))
            left = left - draw
        }
        let drawn = pool.overdraft + cost - left
        let repaid = Amount.min(drawn, pool.overdraft)
        let consumed = CreditsConsumed(
            customerId: customerId, currencyId: currencyId, resourceId: resourceId, featureId: featureId, amount: cost,
            breakdown: breakdown, uncovered: left - (pool.overdraft - repaid), overdraftRepaid: repaid,
            timestamp: timestamp, dimensions: dimensions, idempotencyKey: idempotencyKey
        )
        return Deduction(activations: due.map { Self.activation($0.grant, repays: $0.repays) }, consumed: consumed, availableAfter: available - pool.overdraft - cost)
    }

    /// Appends a planned deduction and, when it leaves the balance below the auto-recharge
    /// threshold, the top-up grant in the same commit. Returns the credit outcome.
    mutating func applyDeduction(_ d: Deduction, now: Timestamp) throws(StorageError) -> CreditOutcome {
        try append(d.activations.map { .creditsActivated($0) } + [.creditsConsumed(d.consumed)], now: now)
        var balance = d.availableAfter
        var recharged: Amount?
        let c = d.consumed
        if let config = try Projections.autoRecharge(customerId: c.customerId, currencyId: c.currencyId, in: self), config.isEnabled,
           c.resourceId == nil, balance < config.thresholdValue, let amount = config.targetBalance.subtracting(balance), amount.isPositive {
            // The month the top-up is recorded in (`recordedAt` never goes back, even when the
            // clock does): the month whose total the projections add it to.
            let spent = try Projections.rechargedThisMonth(customerId: c.customerId, currencyId: c.currencyId, at: head.recordedAt, in: self)
            // A top-up is one amount (below 10^21) and so is a month's sum of them, with or
            // without a maxSpendLimit: the projections keep that sum.
            if amount.isBelowMaxMagnitude, let monthTotal = spent.adding(amount), monthTotal.isBelowMaxMagnitude,
               config.maxSpendLimit.map({ monthTotal <= $0 }) ?? true,
               try grantFits(amount, customerId: c.customerId, currencyId: c.currencyId, resourceId: nil) {
                // Past 9999-12-31 (a clock in 9999) it expires at the last instant a timestamp names;
                // made at that very instant, it has no expiry (it would be expired when made).
                let expireAt = config.grantExpirationPeriod.map { min(CalendarUTC.adding(1, $0, to: now), .distantFuture) }.flatMap { $0 > now ? $0 : nil }
                let request = GrantCredits(
                    customerId: c.customerId, currencyId: c.currencyId, amount: amount, grantType: .paid, displayName: "Auto-recharge",
                    priority: 50, effectiveAt: now, expireAt: expireAt, resourceId: nil, cost: nil, metadata: [], comment: nil, idempotencyKey: nil
                )
                try append([.creditsGranted(CreditsGranted(grant: newGrant(request, effectiveAt: now, sourceType: .autoRecharge, now: now), idempotencyKey: nil))], now: now)
                balance = balance + amount
                recharged = amount
            }
        }
        return CreditOutcome(currencyId: c.currencyId, consumed: c.amount, balance: balance, autoRecharged: recharged)
    }
}
