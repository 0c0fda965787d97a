import TallyCore
import TallyEngine
import TallyProtocol
import TallyStorage

/// Credit methods.
extension MethodTable {
    static let creditMethods: [String: Dispatcher.Method] = [
        "grantCredits": .command { params throws(RPCFailure) in
            let command = try CreditMethods.grantCredits(params)
            return (.grantCredits(command), command.idempotencyKey)
        },
        "voidCreditGrant": .command { params throws(RPCFailure) in
            (.voidCreditGrant(grantId: try CreditMethods.grantID(params)), params["idempotencyKey"]?.stringValue)
        },
        "setAutoRecharge": .command { params throws(RPCFailure) in
            (.setAutoRecharge(try CreditMethods.setAutoRecharge(params)), params["idempotencyKey"]?.stringValue)
        },
        "getAutoRecharge": .query { dispatcher, params in
            let (customerId, currencyId) = try CreditMethods.customerAndCurrency(params)
            let store = dispatcher.ledger.store
            try CreditQueries.requireCustomer(customerId, currency: currencyId, in: store)
            guard let config = try Projections.autoRecharge(customerId: customerId, currencyId: currencyId, in: store) else {
                return .object(["customerId": .string(customerId), "currencyId": .string(currencyId), "isEnabled": false, "configured": false])
            }
            return CreditMethods.json(config)
        },
        "getCreditBalance": .queryPlaced({ dispatcher, params in
            if params["asOf"] != nil { return .heavy }  // a replay
            guard let q = try? CreditMethods.balanceParams(params) else { return .inline }  // refused inline
            return CreditQueries.readsManyGrants(q, in: dispatcher.ledger.store) ? .offLoop : .inline
        }) { dispatcher, params in
            let q = try CreditMethods.balanceParams(params)
            guard let asOf = q.asOf else {
                return try CreditQueries.balances(q, at: dispatcher.ledger.now, in: dispatcher.ledger.store)
            }
            // The ledger as it stood: a replay through that point, read by the same code.
            let (projections, instant, sequence) = try CreditQueries.replay(asOf, customerId: q.customerId, store: dispatcher.ledger.store, now: dispatcher.ledger.now)
            guard case .object(var result) = try CreditQueries.balances(q, at: instant, in: projections) else { return .null }
            result["asOf"] = .object(["sequence": .integer(sequence), "timestamp": .string(instant.rfc3339)])
            return .object(result)
        },
        "getCreditGrants": .slowQuery { dispatcher, params in
            let q = try CreditMethods.grantsParams(params)
            return try CreditQueries.grants(q, at: dispatcher.ledger.now, in: dispatcher.ledger.store)
        },
        "getCreditLedger": .slowQuery { dispatcher, params in
            try CreditQueries.ledger(try CreditMethods.ledgerParams(params), in: dispatcher.ledger.store)
        },
        "getCreditUsage": .slowQuery { dispatcher, params in
            try CreditQueries.usage(try CreditMethods.usageParams(params), now: dispatcher.ledger.now, in: dispatcher.ledger.store)
        },
    ]
}

/// Credit reads over any projection source that can scan: the live store, or a replay.
enum CreditQueries {
    /// A balance reads every open grant of each pool it covers, so it runs inline on the event
    /// loop only up to these; past them it runs off the loops, as a long read does.
    static let inlinePoolsMax = 16
    static let inlineGrantsMax = 64

    /// Whether the pool's balance reads more grants than an inline read may: decided from the
    /// pool's record alone (one point read). An unreadable record says no: the read itself
    /// then reports it.
    static func readsManyGrants(customerId: String, currencyId: String, resourceId: String?, in store: LedgerStore) -> Bool {
        guard let pool = try? Projections.creditPool(customerId: customerId, currencyId: currencyId, resourceId: resourceId, in: store) else { return false }
        return pool.openGrants.count + pool.awaitingActivation.count > inlineGrantsMax
    }

    /// The same for getCreditBalance: one pool when both the currency and the resource are named,
    /// else the customer's pool records, scanned only until a bound is passed.
    static func readsManyGrants(_ q: CreditMethods.BalanceQuery, in store: LedgerStore) -> Bool {
        if let currencyId = q.currencyId, let resourceId = q.resourceId {
            return readsManyGrants(customerId: q.customerId, currencyId: currencyId, resourceId: resourceId, in: store)
        }
        var (pools, grants, many) = (0, 0, false)
        try? store.scanProjections(prefix: KeyLayout.creditPoolPrefix(customerId: q.customerId)) { _, value in
            pools += 1
            if let pool = try? CreditPool.decode(value) { grants += pool.openGrants.count + pool.awaitingActivation.count }
            many = pools > inlinePoolsMax || grants > inlineGrantsMax
            return !many
        }
        return many
    }

    static func customerNotFound(_ id: String) -> RPCFailure {
        .rejected(Rejection(.customerNotFound, "customer \"\(id)\" does not exist"))
    }

    /// 1001 for an unknown customer, 1003 for an unknown currency (when one is named): every
    /// credit query answers them alike.
    static func requireCustomer(_ customerId: String, currency: String?, in source: some ProjectionSource) throws {
        guard try Projections.customer(customerId, in: source) != nil else { throw customerNotFound(customerId) }
        if let currency, try Projections.currency(currency, in: source) == nil {
            throw RPCFailure.rejected(Rejection(.currencyNotFound, "currency \"\(currency)\" does not exist"))
        }
    }

    static func balances(_ q: CreditMethods.BalanceQuery, at t: Timestamp, in source: some ProjectionScanner) throws -> JSONValue {
        try requireCustomer(q.customerId, currency: q.currencyId, in: source)
        var pools = try Projections.creditPools(customerId: q.customerId, in: source)
            .filter { pool in (q.currencyId.map { UTF8Exact.equal($0, pool.currencyId) } ?? true) && (q.resourceId.map { UTF8Exact.equal($0, pool.resourceId) } ?? true) }
        if pools.isEmpty, let currency = q.currencyId { pools = [(currency, q.resourceId)] }
        let balances: [JSONValue] = try pools.map { pool in
            let b = try Projections.balance(customerId: q.customerId, currencyId: pool.currencyId, resourceId: pool.resourceId, at: t, in: source)
            var o: JSONObject = ["currencyId": .string(b.currencyId)]
            if let resource = b.resourceId { o["resourceId"] = .string(resource) }
            o["balance"] = .string(b.balance.description)
            o["grantsRemaining"] = .string(b.grantsRemaining.description)
            o["overdraft"] = .string(b.overdraft.description)
            o["ledgerBalance"] = .string(b.ledgerBalance.description)
            return .object(o)
        }
        return .object(["customerId": .string(q.customerId), "balances": .array(balances)])
    }

    /// Replays the log through `asOf` (its sequence, or the last event recorded at or before its
    /// timestamp) for one customer: the catalog's events and that customer's, folded by the
    /// replay `tallyd replay --to-sequence` runs. A timestamp after `now` is refused: the ledger
    /// has not stood there yet (expiries and scheduled grants up to it would be counted as if they
    /// had happened, and later commands would change the answer).
    static func replay(_ asOf: CreditMethods.AsOf, customerId: String, store: LedgerStore, now: Timestamp) throws -> (MemoryProjections, Timestamp, UInt64) {
        let snapshot = store.snapshot()
        let through: UInt64
        let instant: Timestamp
        switch asOf {
        case .sequence(let n):
            through = n
            guard n > 0, let event = try store.events(after: n - 1, limit: 1, snapshot: snapshot).first, event.event.sequence == n else {
                throw RPCFailure.invalidParams(field: "asOf.sequence", "no event \(n) in the log")
            }
            instant = event.event.recordedAt
        case .timestamp(let t):
            if let problem = Audit.futureProblem(t, ledgerTime: now) {
                throw RPCFailure.invalidParams(field: "asOf", "\(problem); asOf answers how the ledger stood at a past instant: leave it out for the current answer")
            }
            instant = t
            through = try Audit.sequence(asOf: t, store: store, snapshot: snapshot)
        }
        let outcome = try Replay.run(store: store, snapshot: snapshot, through: through, customer: customerId)
        // What a broken chain folds is not what the ledger answered then: refused, as
        // `tallyd replay` refuses it, not served.
        if let problem = outcome.chainProblem { throw StorageError.corrupt("the log's hash chain is broken up to sequence \(through): \(problem)") }
        return (outcome.projections, instant, through)
    }

    static func grants(_ q: (customerId: String, currencyId: String?, resourceId: String?, status: GrantStatus?), at now: Timestamp, in store: LedgerStore) throws -> JSONValue {
        try requireCustomer(q.customerId, currency: q.currencyId, in: store)
        var grants: [CreditGrant] = []
        for (key, _) in try store.scan(prefix: KeyLayout.customerGrantPrefix(customerId: q.customerId)) {
            let id = String(decoding: key[KeyLayout.customerGrantPrefix(customerId: q.customerId).count...], as: UTF8.self)
            guard let grant = try Projections.grant(id, at: now, in: store) else { continue }
            if let c = q.currencyId, !UTF8Exact.equal(grant.currencyId, c) { continue }
            if let r = q.resourceId, !UTF8Exact.equal(grant.resourceId, r) { continue }
            if let s = q.status, grant.status(at: now) != s { continue }
            grants.append(grant)
        }
        grants.sort { $0.sequence < $1.sequence }
        return .object(["customerId": .string(q.customerId), "grants": .array(grants.map { CreditMethods.json($0, now: now) })])
    }

    static func ledger(_ q: CreditMethods.LedgerQuery, in store: LedgerStore) throws -> JSONValue {
        try requireCustomer(q.customerId, currency: q.currencyId, in: store)
        let prefix = KeyLayout.creditLedgerPrefix(customerId: q.customerId)
        var entries: [JSONValue] = []
        var last: UInt64?
        // Nothing follows the largest sequence (`after + 1` would wrap to the start of the ledger).
        guard q.after < UInt64.max else { return .object(["customerId": .string(q.customerId), "entries": [], "next": .null]) }
        try store.scanProjections(from: prefix + KeyLayout.bigEndian(q.after + 1), to: KeyLayout.prefixEnd(prefix)) { (_: [UInt8], value: [UInt8]) throws(StorageError) -> Bool in
            let entry: CreditLedgerEntry
            do throws(DecodingError) { entry = try CreditLedgerEntry.decode(value) } catch { throw .corrupt("credit ledger entry: \(error.reason)") }
            if let c = q.currencyId, !UTF8Exact.equal(entry.currencyId, c) { return true }
            if let r = q.resourceId, !UTF8Exact.equal(entry.resourceId, r) { return true }
            if let t = q.eventType, entry.eventType != t { return true }
            entries.append(CreditMethods.json(entry))
            last = entry.sequence
            return entries.count < q.limit
        }
        let next: JSONValue = entries.count == q.limit ? .integer(last ?? 0) : .null
        return .object(["customerId": .string(q.customerId), "entries": .array(entries), "next": next])
    }

    static func usage(_ q: CreditMethods.UsageQuery, now: Timestamp, in store: LedgerStore) throws -> JSONValue {
        try requireCustomer(q.customerId, currency: q.currencyId, in: store)
        // Without an endDate the range runs through now, including the hour now falls in.
        let requestedEnd = q.endDate ?? now.adding(microseconds: 1)
        let requestedStart: Timestamp
        var output: CalendarPeriod = .day
        if let s = q.startDate {
            // As with an explicit endDate (checked with the params): the range must not be empty.
            guard s < requestedEnd else { throw RPCFailure.invalidParams(field: "startDate", "must be before the endDate, which is now when none is given") }
            requestedStart = s
            if requestedEnd.microsecondsSinceEpoch - s.microsecondsSinceEpoch <= 2 * 86_400_000_000 { output = .hour }
        } else {
            // Back from the instant itself (now, or the endDate), not from the microsecond after
            // it: that can be the next hour, and the window would start an hour late.
            let last = q.endDate ?? now
            switch q.timeRange {
            case .lastDay: requestedStart = last.adding(microseconds: -86_400_000_000); output = .hour
            case .lastWeek: requestedStart = CalendarUTC.adding(-1, .week, to: last)
            case .lastMonth: requestedStart = CalendarUTC.adding(-1, .month, to: last)
            case .lastYear: requestedStart = CalendarUTC.adding(-1, .year, to: last); output = .month
            }
        }
        // Exact to the hour, the finest cells kept: the range widened to whole hours, read as hour
        // cells at its ragged ends and day cells for the whole days between (hour cells only when
        // the points are hours).
        let start = CalendarUTC.periodStart(.hour, containing: requestedStart)
        let endFloor = CalendarUTC.periodStart(.hour, containing: requestedEnd)
        let end = endFloor < requestedEnd ? CalendarUTC.adding(1, .hour, to: endFloor) : endFloor
        var ranges: [(CalendarPeriod, Timestamp, Timestamp)] = [(.hour, start, end)]
        let startDay = CalendarUTC.periodStart(.day, containing: start)
        let firstWholeDay = startDay < start ? CalendarUTC.adding(1, .day, to: startDay) : startDay
        let lastWholeDayEnd = CalendarUTC.periodStart(.day, containing: end)
        if output != .hour, firstWholeDay < lastWholeDayEnd {
            ranges = [(.hour, start, firstWholeDay), (.day, firstWholeDay, lastWholeDayEnd), (.hour, lastWholeDayEnd, end)]
        }
        var currencies = [q.currencyId].compactMap { $0 }
        if currencies.isEmpty {
            let ids = Set(try Projections.creditPools(customerId: q.customerId, in: store).map { ByteExactString($0.currencyId) })
            currencies = ids.map(\.string).sorted(by: UTF8Exact.less)
        }
        // By bytes, as the keys hold ids and tags ("é" and "e\u{301}" are two).
        struct Group: Hashable {
            var currency: ByteExactString
            var feature: ByteExactString?
            var tags: [ByteExactString]
            /// Currency, then feature (none first), then tags, each by bytes.
            static func precedes(_ a: Group, _ b: Group) -> Bool {
                func order(_ g: Group) -> [String] { [g.currency.string, g.feature.map { "\u{1}" + $0.string } ?? ""] + g.tags.map(\.string) }
                return order(a).lexicographicallyPrecedes(order(b)) { UTF8Exact.less($0, $1) }
            }
        }
        var groups: [Group: [Int64: UsageCell]] = [:]
        for currency in currencies {
            for (granularity, from, to) in ranges where from < to {
                let prefix = KeyLayout.creditUsagePrefix(customerId: q.customerId, currencyId: currency, granularity: granularity)
                try store.scanProjections(from: prefix + KeyLayout.sortable(from), to: prefix + KeyLayout.sortable(to)) { (key: [UInt8], value: [UInt8]) throws(StorageError) -> Bool in
                    guard let parts = KeyLayout.creditUsageParts(key, prefixCount: prefix.count) else { throw .corrupt("credit usage key does not parse") }
                    if let r = q.resourceId, !UTF8Exact.equal(parts.resourceId, r) { return true }
                    let cell: UsageCell
                    do throws(DecodingError) { cell = try UsageCell.decode(value) } catch { throw .corrupt("credit usage cell: \(error.reason)") }
                    let group = q.groupBy.isEmpty
                        ? Group(currency: ByteExactString(currency), feature: ByteExactString(parts.featureId), tags: [])
                        : Group(currency: ByteExactString(currency), feature: nil, tags: q.groupBy.map { ByteExactString($0 == "featureId" ? parts.featureId : (parts.dimensions[$0] ?? "")) })
                    let bucket = CalendarUTC.periodStart(output, containing: parts.start).microsecondsSinceEpoch
                    groups[group, default: [:]][bucket] = groups[group]?[bucket].map { $0.merged(with: cell, aggregation: .sum) } ?? cell
                    return true
                }
            }
        }
        let series: [JSONValue] = groups.sorted { Group.precedes($0.key, $1.key) }.map { group, points in
            var total = UsageCell()
            for cell in points.values { total = total.merged(with: cell, aggregation: .sum) }
            var o: JSONObject = ["currencyId": .string(group.currency.string)]
            if let feature = group.feature { o["featureId"] = .string(feature.string) }
            if !q.groupBy.isEmpty { o["tags"] = .array(zip(q.groupBy, group.tags).map { .object(["key": .string($0.0), "value": .string($0.1.string)]) }) }
            o["totalCredits"] = .string(total.value.description)
            o["eventCount"] = .integer(total.eventCount)
            o["points"] = .array(points.sorted { $0.key < $1.key }.map { start, cell in
                .object(["timestamp": .string(Timestamp(microsecondsSinceEpoch: start).rfc3339), "value": .string(cell.value.description), "eventCount": .integer(cell.eventCount)])
            })
            return .object(o)
        }
        // At the ends of the calendar the widened range reaches past what a 4-digit year names:
        // nothing lies before 0001-01-01, so the start is that; an end of 10000-01-01 (the last
        // hour of 9999) is left out, as `usagePeriodEnd` is.
        var result: JSONObject = ["customerId": .string(q.customerId), "startDate": .string(max(start, .distantPast).rfc3339)]
        if end.hasFourDigitYear { result["endDate"] = .string(end.rfc3339) }
        result["granularity"] = .string(output.rawValue)
        result["series"] = .array(series)
        return .object(result)
    }
}
