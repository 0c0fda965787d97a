public import TallyCore

/// Range reads over projection records, for sources that can scan (the live store, memory, and
/// the writer's group over the store).
public protocol ProjectionScanner: ProjectionSource {
    /// Records with keys in [lower, upper), in key order.
    func scan(from lower: [UInt8], to upper: [UInt8]) throws(StorageError) -> [(key: [UInt8], value: [UInt8])]
}

extension ProjectionScanner {
    public func scan(prefix: [UInt8]) throws(StorageError) -> [(key: [UInt8], value: [UInt8])] {
        try scan(from: prefix, to: KeyLayout.prefixEnd(prefix))
    }
}

extension MemoryProjections: ProjectionScanner {
    public func scan(from lower: [UInt8], to upper: [UInt8]) -> [(key: [UInt8], value: [UInt8])] {
        records(from: lower, to: upper)
    }
}

extension LedgerStore: ProjectionScanner {
    public func scan(from lower: [UInt8], to upper: [UInt8]) throws(StorageError) -> [(key: [UInt8], value: [UInt8])] {
        var result: [(key: [UInt8], value: [UInt8])] = []
        try scanProjections(from: lower, to: upper) { key, value in
            result.append((key, value))
            return true
        }
        return result
    }
}

/// The credit projections: folds of the credit events.
enum CreditProjector {
    static func apply(_ event: Event, to sink: inout some ProjectionSink) throws(StorageError) {
        switch event.payload {
        case .creditsGranted(let e):
            let grant = e.grant
            sink.setProjection(KeyLayout.grantKey(grant.grantId), decoded: .grant(grant))
            sink.setProjection(KeyLayout.customerGrantKey(customerId: grant.customerId, grantId: grant.grantId), [])
            var pool = try Projections.creditPool(customerId: grant.customerId, currencyId: grant.currencyId, resourceId: grant.resourceId, in: sink)
            pool.overdraft = pool.overdraft - grant.repaid
            if grant.remaining.isPositive {
                pool.openGrants.append(grant.grantId)
                if let expireAt = grant.expireAt { sink.setProjection(KeyLayout.expiryKey(expireAt: expireAt, sequence: grant.sequence, grantId: grant.grantId), []) }
                if grant.isScheduledWhenGranted {
                    pool.awaitingActivation.append(grant.grantId)
                    sink.setProjection(KeyLayout.activationKey(effectiveAt: grant.effectiveAt, sequence: grant.sequence, grantId: grant.grantId), [])
                }
            }
            pool.ledgerBalance = pool.ledgerBalance + grant.amount
            try save(pool, grant.customerId, grant.currencyId, grant.resourceId, &sink)
            if grant.sourceType == .autoRecharge {
                let key = KeyLayout.rechargeSpendKey(customerId: grant.customerId, currencyId: grant.currencyId, monthStart: CalendarUTC.periodStart(.month, containing: event.recordedAt))
                let spent = try Projections.amount(key, in: sink) ?? .zero
                sink.setProjection(key, Projections.encodeAmount(spent + grant.amount))
            }
            entry(event, .granted, grant.customerId, grant.currencyId, grant.resourceId, grant.amount, pool.ledgerBalance, grant.grantId, nil, e.idempotencyKey, [], &sink)

        case .creditsConsumed(let e):
            var pool = try Projections.creditPool(customerId: e.customerId, currencyId: e.currencyId, resourceId: e.resourceId, in: sink)
            for (grantId, amount) in e.breakdown {
                guard var grant = try Projections.grant(grantId, in: sink) else {
                    throw .inconsistentLog("event \(event.sequence): CREDITS_CONSUMED draws unknown grant \(grantId)")
                }
                grant.consumed = try checked { grant.consumed.adding(amount) }
                guard !grant.remaining.isNegative else { throw .inconsistentLog("event \(event.sequence): grant \(grantId) overdrawn") }
                if grant.remaining.isZero { close(grant, &pool, &sink) }
                sink.setProjection(KeyLayout.grantKey(grantId), decoded: .grant(grant))
            }
            pool.overdraft = try checked { pool.overdraft.subtracting(e.overdraftRepaid)?.adding(e.uncovered) }
            guard !pool.overdraft.isNegative else { throw .inconsistentLog("event \(event.sequence): overdraft below zero") }
            pool.ledgerBalance = pool.ledgerBalance - e.amount
            try save(pool, e.customerId, e.currencyId, e.resourceId, &sink)
            for granularity in [CalendarPeriod.hour, .day] {
                let key = KeyLayout.creditUsageKey(
                    customerId: e.customerId, currencyId: e.currencyId, granularity: granularity,
                    start: CalendarUTC.periodStart(granularity, containing: e.timestamp), resourceId: e.resourceId, featureId: e.featureId, dimensions: e.dimensions
                )
                try sink.updateUsageCell(key) { current in
                    let cell = current ?? UsageCell()
                    return cell.adding(e.amount, at: e.timestamp, sequence: event.sequence, aggregation: .sum) ?? cell
                }
            }
            try UsageProjector.indexDimensionKeys(e.customerId, e.dimensions, &sink)
            entry(event, .consumed, e.customerId, e.currencyId, e.resourceId, -e.amount, pool.ledgerBalance, nil, e.featureId, e.idempotencyKey, e.breakdown, &sink, overdraftRepaid: e.overdraftRepaid)

        case .creditsActivated(let e):
            guard var grant = try Projections.grant(e.grantId, in: sink) else {
                throw .inconsistentLog("event \(event.sequence): CREDITS_ACTIVATED for unknown grant \(e.grantId)")
            }
            var pool = try Projections.creditPool(customerId: e.customerId, currencyId: e.currencyId, resourceId: e.resourceId, in: sink)
            guard pool.awaitingActivation.contains(e.grantId) else {
                throw .inconsistentLog("event \(event.sequence): CREDITS_ACTIVATED for grant \(e.grantId), which awaits no activation")
            }
            grant.repaid = try checked { grant.repaid.adding(e.overdraftRepaid) }
            pool.overdraft = try checked { pool.overdraft.subtracting(e.overdraftRepaid) }
            guard !grant.remaining.isNegative, !pool.overdraft.isNegative else {
                throw .inconsistentLog("event \(event.sequence): CREDITS_ACTIVATED repays more than grant \(e.grantId) holds or its pool owes")
            }
            activated(grant, &pool, &sink)
            if grant.remaining.isZero { close(grant, &pool, &sink) }
            sink.setProjection(KeyLayout.grantKey(grant.grantId), decoded: .grant(grant))
            try save(pool, e.customerId, e.currencyId, e.resourceId, &sink)

        case .creditsExpired(let e):
            try remove(e.removal, event, .expired, &sink)
        case .creditsVoided(let e):
            try remove(e.removal, event, .voided, &sink)
        case .autoRechargeConfigured(let e):
            sink.setProjection(KeyLayout.autoRechargeKey(customerId: e.config.customerId, currencyId: e.config.currencyId), e.config.encoded())
        default:
            preconditionFailure("not a credit event: \(event.payload.type)")
        }
    }

    private static func remove(_ r: CreditsRemoved, _ event: Event, _ type: CreditEntryType, _ sink: inout some ProjectionSink) throws(StorageError) {
        guard var grant = try Projections.grant(r.grantId, in: sink) else {
            throw .inconsistentLog("event \(event.sequence): \(type.rawValue) for unknown grant \(r.grantId)")
        }
        var pool = try Projections.creditPool(customerId: r.customerId, currencyId: r.currencyId, resourceId: r.resourceId, in: sink)
        if type == .expired {
            grant.expiredAmount = r.amount
            grant.expiredAt = event.recordedAt
        } else {
            grant.voidedAmount = r.amount
            grant.voidedAt = event.recordedAt
        }
        guard grant.remaining.isZero else {
            throw .inconsistentLog("event \(event.sequence): \(type.rawValue) of \(r.amount) leaves grant \(r.grantId) with \(grant.remaining)")
        }
        close(grant, &pool, &sink)
        sink.setProjection(KeyLayout.grantKey(grant.grantId), decoded: .grant(grant))
        pool.ledgerBalance = pool.ledgerBalance - r.amount
        try save(pool, r.customerId, r.currencyId, r.resourceId, &sink)
        entry(event, type, r.customerId, r.currencyId, r.resourceId, -r.amount, pool.ledgerBalance, r.grantId, nil, r.idempotencyKey, [], &sink)
    }

    /// A grant with nothing left leaves its pool's open list and the expiry and activation schedules.
    private static func close(_ grant: CreditGrant, _ pool: inout CreditPool, _ sink: inout some ProjectionSink) {
        pool.openGrants.removeAll { $0 == grant.grantId }
        if let expireAt = grant.expireAt { sink.setProjection(KeyLayout.expiryKey(expireAt: expireAt, sequence: grant.sequence, grantId: grant.grantId), nil) }
        if pool.awaitingActivation.contains(grant.grantId) { activated(grant, &pool, &sink) }
    }

    /// The grant leaves the activation schedule (activated, or closed before it was).
    private static func activated(_ grant: CreditGrant, _ pool: inout CreditPool, _ sink: inout some ProjectionSink) {
        pool.awaitingActivation.removeAll { $0 == grant.grantId }
        sink.setProjection(KeyLayout.activationKey(effectiveAt: grant.effectiveAt, sequence: grant.sequence, grantId: grant.grantId), nil)
    }

    private static func save(_ pool: CreditPool, _ customerId: String, _ currencyId: String, _ resourceId: String?, _ sink: inout some ProjectionSink) throws(StorageError) {
        sink.setProjection(KeyLayout.creditPoolKey(customerId: customerId, currencyId: currencyId, resourceId: resourceId), decoded: .pool(pool))
    }

    private static func entry(
        _ event: Event, _ type: CreditEntryType, _ customerId: String, _ currencyId: String, _ resourceId: String?, _ amount: Amount,
        _ balanceAfter: Amount, _ grantId: String?, _ featureId: String?, _ idempotencyKey: String?, _ breakdown: [(String, Amount)],
        _ sink: inout some ProjectionSink, overdraftRepaid: Amount = .zero
    ) {
        let entry = CreditLedgerEntry(
            sequence: event.sequence, eventType: type, currencyId: currencyId, resourceId: resourceId, amount: amount, balanceAfter: balanceAfter,
            grantId: grantId, featureId: featureId, idempotencyKey: idempotencyKey, timestamp: event.recordedAt, breakdown: breakdown,
            overdraftRepaid: overdraftRepaid
        )
        sink.setProjection(KeyLayout.creditLedgerKey(customerId: customerId, sequence: event.sequence), entry.encoded())
    }
}

/// A customer's balance in one pool at one instant.
public struct PoolBalance: Sendable, Equatable {
    public var currencyId: String
    public var resourceId: String?
    /// What can be spent: the open grants counted at the instant, less the overdraft.
    public var balance: Amount
    public var grantsRemaining: Amount
    public var overdraft: Amount
    /// The running sum of the ledger's entries.
    public var ledgerBalance: Amount
}

extension Projections {
    public static func grant(_ id: String, in source: some ProjectionSource) throws(StorageError) -> CreditGrant? {
        try decoded(KeyLayout.grantKey(id), in: source, "grant \(id)", DecodedProjection.grant) { (b: [UInt8]) throws(DecodingError) in try CreditGrant.decode(b) } extract: {
            if case .grant(let value) = $0 { value } else { nil }
        }
    }

    public static func creditPool(customerId: String, currencyId: String, resourceId: String?, in source: some ProjectionSource) throws(StorageError) -> CreditPool {
        try decoded(KeyLayout.creditPoolKey(customerId: customerId, currencyId: currencyId, resourceId: resourceId), in: source, "credit pool \(customerId)/\(currencyId)", DecodedProjection.pool) { (b: [UInt8]) throws(DecodingError) in try CreditPool.decode(b) } extract: {
            if case .pool(let value) = $0 { value } else { nil }
        } ?? CreditPool()
    }

    public static func autoRecharge(customerId: String, currencyId: String, in source: some ProjectionSource) throws(StorageError) -> AutoRecharge? {
        try decoded(KeyLayout.autoRechargeKey(customerId: customerId, currencyId: currencyId), in: source, "auto-recharge \(customerId)/\(currencyId)") { (b: [UInt8]) throws(DecodingError) in try AutoRecharge.decode(b) }
    }

    public static func rechargedThisMonth(customerId: String, currencyId: String, at t: Timestamp, in source: some ProjectionSource) throws(StorageError) -> Amount {
        try amount(KeyLayout.rechargeSpendKey(customerId: customerId, currencyId: currencyId, monthStart: CalendarUTC.periodStart(.month, containing: t)), in: source) ?? .zero
    }

    /// The open grants of a pool, in consumption order.
    public static func openGrants(_ pool: CreditPool, in source: some ProjectionSource) throws(StorageError) -> [CreditGrant] {
        var grants: [CreditGrant] = []
        for id in pool.openGrants {
            guard let grant = try grant(id, in: source) else { throw .corrupt("pool lists grant \(id), which has no record") }
            grants.append(grant)
        }
        return grants.sorted(by: CreditGrant.drawsBefore)
    }

    /// The activations due at `t` in a pool: the grants awaiting activation whose effectiveAt ≤ t,
    /// in the order they became effective (then granted), each with what it repays of the
    /// overdraft left by the ones before it. The writer appends them as CREDITS_ACTIVATED before
    /// anything else touches the pool; reads at `t` apply them ahead of the events (`settled`).
    public static func activationsDue(_ pool: CreditPool, at t: Timestamp, in source: some ProjectionSource) throws(StorageError) -> [(grant: CreditGrant, repays: Amount)] {
        guard !pool.awaitingActivation.isEmpty else { return [] }
        var due: [CreditGrant] = []
        for id in pool.awaitingActivation {
            guard let grant = try grant(id, in: source) else { throw .corrupt("pool awaits the activation of grant \(id), which has no record") }
            if grant.effectiveAt <= t { due.append(grant) }
        }
        due.sort { ($0.effectiveAt, $0.sequence) < ($1.effectiveAt, $1.sequence) }
        var owed = pool.overdraft
        return due.map { grant in
            let repays = Amount.min(owed, grant.remaining)
            owed = owed - repays
            return (grant, repays)
        }
    }

    /// A pool and its open grants (in consumption order) as they stand at `t`, with the
    /// activations due by then (also returned) applied, whether or not their CREDITS_ACTIVATED
    /// was written yet.
    public static func settled(customerId: String, currencyId: String, resourceId: String?, at t: Timestamp, in source: some ProjectionSource) throws(StorageError) -> (pool: CreditPool, grants: [CreditGrant], activations: [(grant: CreditGrant, repays: Amount)]) {
        var pool = try creditPool(customerId: customerId, currencyId: currencyId, resourceId: resourceId, in: source)
        var grants = try openGrants(pool, in: source)
        let activations = try activationsDue(pool, at: t, in: source)
        for (activated, repays) in activations {
            pool.overdraft = pool.overdraft - repays
            pool.awaitingActivation.removeAll { $0 == activated.grantId }
            if let i = grants.firstIndex(where: { $0.grantId == activated.grantId }) { grants[i].repaid = grants[i].repaid + repays }
        }
        return (pool, grants, activations)
    }

    /// A grant as it stands at `t`: with what it repaid when it became effective, if its
    /// CREDITS_ACTIVATED is due by then but not written yet.
    public static func grant(_ id: String, at t: Timestamp, in source: some ProjectionSource) throws(StorageError) -> CreditGrant? {
        guard let stored = try grant(id, in: source) else { return nil }
        guard stored.isScheduledWhenGranted, stored.effectiveAt <= t, stored.remaining.isPositive else { return stored }
        let pool = try settled(customerId: stored.customerId, currencyId: stored.currencyId, resourceId: stored.resourceId, at: t, in: source)
        return pool.grants.first { $0.grantId == id } ?? stored
    }

    /// The balance of one pool as it stands at `t`: grants expired (expireAt ≤ t) or not yet
    /// effective are not counted, and grants effective by `t` have repaid the overdraft, whether or
    /// not their events were written yet.
    public static func balance(customerId: String, currencyId: String, resourceId: String?, at t: Timestamp, in source: some ProjectionSource) throws(StorageError) -> PoolBalance {
        let (pool, grants, _) = try settled(customerId: customerId, currencyId: currencyId, resourceId: resourceId, at: t, in: source)
        var remaining = Amount.zero
        for grant in grants where grant.status(at: t) == .active {
            remaining = try checked { remaining.adding(grant.remaining) }
        }
        let balance = try checked { remaining.subtracting(pool.overdraft) }
        return PoolBalance(currencyId: currencyId, resourceId: resourceId, balance: balance, grantsRemaining: remaining, overdraft: pool.overdraft, ledgerBalance: pool.ledgerBalance)
    }

    /// Every pool of a customer (currency, resource).
    public static func creditPools(customerId: String, in source: some ProjectionScanner) throws(StorageError) -> [(currencyId: String, resourceId: String?)] {
        let prefix = KeyLayout.creditPoolPrefix(customerId: customerId)
        return try source.scan(prefix: prefix).compactMap { key, _ in
            let parts = key[prefix.count...].split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
            guard let currency = parts.first else { return nil }
            let resource = parts.count > 1 ? String(decoding: parts[1], as: UTF8.self) : ""
            return (String(decoding: currency, as: UTF8.self), resource.isEmpty ? nil : resource)
        }
    }

    static func amount(_ key: [UInt8], in source: some ProjectionSource) throws(StorageError) -> Amount? {
        try decoded(key, in: source, "amount") { (b: [UInt8]) throws(DecodingError) in
            var r = ByteReader(b)
            let a = try r.readAmount()
            try r.expectEnd()
            return a
        }
    }

    static func encodeAmount(_ a: Amount) -> [UInt8] {
        var w = ByteWriter()
        w.writeAmount(a)
        return w.bytes
    }
}

/// An amount the log's events add up to; nil (out of `Int128`) only in a damaged log.
private func checked(_ amount: () -> Amount?) throws(StorageError) -> Amount {
    guard let amount = amount() else { throw .inconsistentLog("amounts beyond the ledger's range") }
    return amount
}
