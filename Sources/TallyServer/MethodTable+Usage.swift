import TallyCore
import TallyEngine
import TallyProtocol
import TallyStorage

/// Catalog, usage and entitlement methods.
extension MethodTable {
    static let usageMethods: [String: Dispatcher.Method] = [
        "defineCurrency": .command { params throws(RPCFailure) in
            (.defineCurrency(try UsageMethods.defineCurrency(params)), params["idempotencyKey"]?.stringValue)
        },
        "defineFeature": .command { params throws(RPCFailure) in
            (.defineFeature(try UsageMethods.defineFeature(params)), params["idempotencyKey"]?.stringValue)
        },
        "definePlan": .command { params throws(RPCFailure) in
            (.definePlan(try UsageMethods.definePlan(params)), params["idempotencyKey"]?.stringValue)
        },
        "provisionSubscription": .command { params throws(RPCFailure) in
            (.provisionSubscription(try UsageMethods.provisionSubscription(params)), params["idempotencyKey"]?.stringValue)
        },
        "cancelSubscription": .command { params throws(RPCFailure) in
            (.cancelSubscription(subscriptionId: try UsageMethods.cancelSubscription(params)), params["idempotencyKey"]?.stringValue)
        },
        "reportUsage": .command { params throws(RPCFailure) in
            let command = try UsageMethods.reportUsage(params)
            return (.reportUsage(command), command.idempotencyKey)
        },
        "reportEvent": .command { params throws(RPCFailure) in
            (.reportEvents(try UsageMethods.reportEvents(params, fingerprint: EventRecord.sha256)), nil)
        },
        "grantPromotionalEntitlement": .command { params throws(RPCFailure) in
            (.grantPromotional(try UsageMethods.grantPromotional(params)), params["idempotencyKey"]?.stringValue)
        },
        "revokePromotionalEntitlement": .command { params throws(RPCFailure) in
            let (customerId, featureId) = try UsageMethods.customerAndFeature(params)
            return (.revokePromotional(customerId: customerId, featureId: featureId), params["idempotencyKey"]?.stringValue)
        },
        "reportUsageBulk": .fanOut { params throws(RPCFailure) in
            var p = Params(params)
            guard let usages = try p.optionalArray("usages") else { throw .invalidParams(field: "usages", "is required") }
            try p.finish()
            guard !usages.isEmpty, usages.count <= UsageMethods.bulkItemsMax else {
                throw .invalidParams(field: "usages", "must hold 1 to \(UsageMethods.bulkItemsMax) items")
            }
            let items = usages.enumerated().map { index, item -> Result<(command: Command, key: String?, method: String, params: JSONObject), RPCFailure> in
                guard case .object(let object) = item else { return .failure(.invalidParams(field: "usages[\(index)]", "must be an object")) }
                do throws(RPCFailure) {
                    let command = try UsageMethods.reportUsage(object, path: "usages[\(index)]")
                    return .success((.reportUsage(command), command.idempotencyKey, "reportUsage", object))
                } catch {
                    return .failure(error)
                }
            }
            return Dispatcher.FanOut(items: items) { results in
                .object(["results": .array(results.enumerated().map { index, result in
                    switch result {
                    case .success(let value): return value
                    // A refusal by the ledger's rules names the item's field as the params' checks do.
                    case .failure(let failure): return .object(["index": .integer(index), "error": RPCResponse.errorObject(failure.under("usages[\(index)]"))])
                    }
                })])
            }
        },
        "importRecords": .fanOut { params throws(RPCFailure) in
            try ImportRecords.plan(params)
        },
        "getUsageHistory": .queryPlaced({ _, params in params["asOf"] != nil ? .heavy : .offLoop }) { dispatcher, params in
            var params = params
            let asOf = try UsageQueries.asOf(&params)
            let q = try UsageMethods.historyParams(params)
            guard let asOf else { return try UsageQueries.history(q, in: dispatcher.ledger.store) }
            // As the ledger stood then: a replay, read by the same code as the live answer.
            let (projections, instant, sequence) = try CreditQueries.replay(asOf, customerId: q.customerId, store: dispatcher.ledger.store, now: dispatcher.ledger.now)
            guard case .object(var result) = try UsageQueries.history(q, in: projections) else { return .null }
            result["asOf"] = .object(["sequence": .integer(sequence), "timestamp": .string(instant.rfc3339)])
            return .object(result)
        },
        // The answer reads every subscription of the customer, and for a credit-backed feature
        // its pool's balance: off the loops past the inline bounds, as getCustomer and
        // getCreditBalance (10,000 subscriptions held a loop ~60 ms).
        "getEntitlement": .queryPlaced({ dispatcher, params in
            let store = dispatcher.ledger.store
            guard let p = try? UsageMethods.entitlementParams(params) else { return .inline }  // refused inline
            if MethodTable.hasManySubscriptions(p.customerId, in: store) { return .offLoop }
            guard let feature = try? Projections.feature(p.featureId, in: store), let cost = feature.creditCost else { return .inline }
            return CreditQueries.readsManyGrants(customerId: p.customerId, currencyId: cost.currencyId, resourceId: p.resourceId, in: store) ? .offLoop : .inline
        }) { dispatcher, params in
            let p = try UsageMethods.entitlementParams(params)
            return try UsageQueries.entitlement(customerId: p.customerId, featureId: p.featureId, requested: p.requestedUsage, resourceId: p.resourceId, at: dispatcher.ledger.now, store: dispatcher.ledger.store)
        },
        // A list: one answer per entitled feature, each maybe reading a balance.
        "getEntitlements": .slowQuery { dispatcher, params in
            let id = try CustomerMethods.customerID(params)
            return try UsageQueries.entitlements(customerId: id, at: dispatcher.ledger.now, store: dispatcher.ledger.store)
        },
        "listDimensionKeys": .slowQuery { dispatcher, params in
            let p = try UsageMethods.dimensionKeyParams(params)
            return try UsageQueries.dimensionKeys(customerId: p.customerId, search: p.search, store: dispatcher.ledger.store)
        },
    ]
}

/// Reads of the usage projections, for any store (live now; a replay for time travel later).
enum UsageQueries {
    /// Takes `asOf` (a timestamp or `{sequence}`) out of the params.
    static func asOf(_ params: inout JSONObject) throws(RPCFailure) -> CreditMethods.AsOf? {
        let value = params["asOf"]
        params["asOf"] = nil
        return try CreditMethods.asOf(value)
    }

    static func history(_ q: UsageMethods.HistoryQuery, in store: some ProjectionScanner & MemberCursors) throws -> JSONValue {
        guard try Projections.customer(q.customerId, in: store) != nil else {
            throw RPCFailure.rejected(Rejection(.customerNotFound, "customer \"\(q.customerId)\" does not exist"))
        }
        guard let feature = try Projections.feature(q.featureId, in: store) else {
            throw RPCFailure.rejected(Rejection(.featureNotFound, "feature \"\(q.featureId)\" does not exist"))
        }
        let aggregation = feature.aggregation
        // MONTH is summed from day cells; the rest are stored as they are asked for. Ungrouped
        // UNIQUE_COUNT reads its whole-bucket cells, which count each value once per bucket — its
        // whole-month cells only when the range is whole months, so that a range starting or
        // ending mid-month counts what the grouped query and the other aggregations count.
        let unique = aggregation == .uniqueCount
        let whole = unique && q.groupBy.isEmpty
        let monthAligned = [q.startDate, q.endDate].allSatisfy { t in t.map { CalendarUTC.periodStart(.month, containing: $0) == $0 } ?? true }
        let stored: CalendarPeriod = q.granularity == .month && !(whole && monthAligned) ? .day : q.granularity
        let prefix = KeyLayout.usageSeriesPrefix(customerId: q.customerId, featureId: q.featureId, granularity: stored, whole: whole)
        let first = CalendarUTC.periodStart(stored, containing: q.startDate)
        let end = q.endDate ?? Timestamp.distantFuture  // endDate is exclusive
        // Groups by the tags' bytes, as the series keys hold them ("é" and "e\u{301}" are two).
        var groups: [[ByteExactString]: [Int64: UsageCell]] = [:]
        // UNIQUE_COUNT: the cells behind each point, whose counted values are merged exactly.
        var cellsOf: [[ByteExactString]: [Int64: [[UInt8]]]] = [:]
        for (key, value) in try store.scan(from: prefix + KeyLayout.sortable(first), to: prefix + KeyLayout.sortable(end)) {
            guard let parts = KeyLayout.usageSeriesParts(key, prefixCount: prefix.count) else {
                throw StorageError.corrupt("usage series key of \(key.count) bytes does not parse")
            }
            if let resource = q.resourceId, !UTF8Exact.equal(parts.resourceId, resource) { continue }
            let cell: UsageCell
            do throws(DecodingError) { cell = try UsageCell.decode(value) } catch { throw StorageError.corrupt("usage cell: \(error.reason)") }
            let tags = q.groupBy.map { ByteExactString(parts.dimensions[$0] ?? "") }
            let bucket = CalendarUTC.periodStart(q.granularity, containing: parts.start).microsecondsSinceEpoch
            let merged = groups[tags]?[bucket].map { $0.merged(with: cell, aggregation: aggregation) } ?? cell
            groups[tags, default: [:]][bucket] = merged
            if unique { cellsOf[tags, default: [:]][bucket, default: []].append(key) }
        }
        if groups.isEmpty, q.groupBy.isEmpty { groups[[]] = [:] }
        var series: [JSONValue] = []
        for (tags, var points) in groups.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) { UTF8Exact.less($0.string, $1.string) } }) {
            var total = UsageCell()
            for cell in points.values { total = total.merged(with: cell, aggregation: aggregation) }
            if unique, let cells = cellsOf[tags] {
                // A value seen in several of a point's cells (dimension sets, days of a month,
                // resources) counts once; the series total counts each value once over the range.
                for (bucket, keys) in cells where keys.count > 1 {
                    points[bucket]?.value = Amount(Int(try store.distinctMembers(of: keys)))
                }
                let all = cells.values.flatMap { $0 }
                if all.count > 1 { total.value = Amount(Int(try store.distinctMembers(of: all))) }
            }
            series.append(.object([
                "tags": .array(zip(q.groupBy, tags).map { .object(["key": .string($0.0), "value": .string($0.1.string)]) }),
                "points": .array(points.sorted { $0.key < $1.key }.map { start, cell in
                    .object([
                        "timestamp": .string(Timestamp(microsecondsSinceEpoch: start).rfc3339),
                        "value": .string(cell.value.description),
                        "eventCount": .integer(cell.eventCount),
                    ])
                }),
                "total": .string(total.value.description),
                "eventCount": .integer(total.eventCount),
            ]))
        }
        return .object([
            "customerId": .string(q.customerId), "featureId": .string(q.featureId), "granularity": .string(q.granularity.rawValue),
            "aggregation": .string(aggregation.rawValue), "series": .array(series),
        ])
    }

    static func entitlement(customerId: String, featureId: String, requested: Amount, resourceId: String?, at now: Timestamp, store: LedgerStore) throws -> JSONValue {
        var o: JSONObject = ["customerId": .string(customerId), "featureId": .string(featureId)]
        func denied(_ reason: String) -> JSONValue {
            o["hasAccess"] = false
            o["accessDeniedReason"] = .string(reason)
            o["isUnlimited"] = false
            o["currentUsage"] = "0"
            o["requestedUsage"] = .string(requested.description)
            return .object(o)
        }
        guard try Projections.customer(customerId, in: store) != nil else { return denied("CUSTOMER_NOT_FOUND") }
        guard let feature = try Projections.feature(featureId, in: store) else { return denied("FEATURE_NOT_FOUND") }
        var resolved = try EntitlementReader.resolve(customerId: customerId, featureId: featureId, at: now, in: store)
        if resolved == nil, feature.creditCost != nil {
            // A credit-backed feature without a plan entitlement is governed by the balance alone.
            resolved = ResolvedEntitlement(hasAccess: true, isUnlimited: true, usageLimit: nil, resetPeriod: nil, source: "CREDITS")
        }
        guard let entitlement = resolved else {
            let answer = denied("NO_FEATURE_ENTITLEMENT")
            guard feature.type == .metered, case .object(var denial) = answer else { return answer }
            // No reset period without an entitlement: the usage of all time, as reportUsage answers.
            let total = try Projections.usageTotal(customerId: customerId, featureId: featureId, resourceId: resourceId, period: nil, at: now, in: store)
            denial["currentUsage"] = .string(total.value.description)
            return .object(denial)
        }
        let period = entitlement.resetPeriod
        let current = feature.type == .metered
            ? try Projections.usageTotal(customerId: customerId, featureId: featureId, resourceId: resourceId, period: period, at: now, in: store).value
            : .zero
        var hasAccess = entitlement.hasAccess
        if feature.type == .metered, !entitlement.isUnlimited {
            let limit = entitlement.usageLimit ?? .zero
            hasAccess = (current.adding(requested).map { $0 <= limit }) ?? false
        }
        var reason: JSONValue? = hasAccess ? nil : "USAGE_LIMIT_EXCEEDED"
        if let cost = feature.creditCost {
            let balance = try Projections.balance(customerId: customerId, currencyId: cost.currencyId, resourceId: resourceId, at: now, in: store)
            o["creditBalance"] = .object(["currencyId": .string(cost.currencyId), "balance": .string(balance.balance.description)])
            // As strict reportUsage refuses such a value: a cost that is not an amount is bad
            // input, not a lack of credits.
            guard let price = requested.multipliedExactly(by: cost.amountPerUnit), price.isBelowMaxMagnitude else {
                throw RPCFailure.invalidParams(field: "requestedUsage", "× amountPerUnit \(cost.amountPerUnit) of feature \"\(featureId)\" has more than 12 fractional digits or is out of range (a cost must be below \(Amount.maxMagnitude))")
            }
            o["requestedCost"] = .string(price.description)
            // Like strict reportUsage: what costs nothing is never refused, even at a negative balance.
            if hasAccess, price.isPositive, price > balance.balance {
                hasAccess = false
                reason = "INSUFFICIENT_CREDITS"
            }
        }
        o["hasAccess"] = .bool(hasAccess)
        if let reason { o["accessDeniedReason"] = reason }
        o["isUnlimited"] = .bool(entitlement.isUnlimited)
        if !entitlement.isUnlimited, let limit = entitlement.usageLimit ?? (feature.type == .metered ? .zero : nil) {
            // A limited METERED entitlement without a limit has a limit of 0: shown, not implied.
            o["usageLimit"] = .string(limit.description)
        }
        o["currentUsage"] = .string(current.description)
        o["requestedUsage"] = .string(requested.description)
        if let period {
            o["resetPeriod"] = .string(period.rawValue)
            o["usagePeriodStart"] = .string(CalendarUTC.periodStart(period, containing: now).rfc3339)
            // The last periods of 9999 end at 10000-01-01, which RFC 3339 with a 4-digit year cannot say.
            let end = CalendarUTC.periodEnd(period, containing: now)
            if end.hasFourDigitYear { o["usagePeriodEnd"] = .string(end.rfc3339) }
        }
        o["source"] = .string(entitlement.source)
        return .object(o)
    }

    static func entitlements(customerId: String, at now: Timestamp, store: LedgerStore) throws -> JSONValue {
        guard try Projections.customer(customerId, in: store) != nil else {
            throw RPCFailure.rejected(Rejection(.customerNotFound, "customer \"\(customerId)\" does not exist"))
        }
        var featureIds: Set<ByteExactString> = []  // ids by bytes: "é" and "e\u{301}" are two features
        for plan in try Projections.entitlingPlans(customerId: customerId, at: now, in: store) {
            for e in plan.entitlements { featureIds.insert(ByteExactString(e.featureId)) }
        }
        try store.scanProjections(prefix: KeyLayout.promotionalPrefix(customerId: customerId)) { _, value in
            if let p = try? PromotionalEntitlement.decode(value), p.isActive(at: now) { featureIds.insert(ByteExactString(p.featureId)) }
            return true
        }
        let entries = try featureIds.map(\.string).sorted(by: UTF8Exact.less).map { id in
            try entitlement(customerId: customerId, featureId: id, requested: .zero, resourceId: nil, at: now, store: store)
        }
        return .object(["customerId": .string(customerId), "entitlements": .array(entries)])
    }

    static func dimensionKeys(customerId: String, search: String?, store: LedgerStore) throws -> JSONValue {
        guard try Projections.customer(customerId, in: store) != nil else {
            throw RPCFailure.rejected(Rejection(.customerNotFound, "customer \"\(customerId)\" does not exist"))
        }
        let prefix = KeyLayout.dimensionKeyPrefix(customerId: customerId)
        let needle = search?.lowercased()
        var keys: [JSONValue] = []
        try store.scanProjections(prefix: prefix) { key, _ in
            let name = String(decoding: key[prefix.count...], as: UTF8.self)
            if needle.map({ $0.isEmpty || name.lowercased().contains($0) }) ?? true { keys.append(.string(name)) }
            return true
        }
        return .object(["customerId": .string(customerId), "keys": .array(keys)])
    }
}

/// importRecords: each record converted by its format (ImportFormats), then run as reportUsage
/// (one command each) or as raw events (one reportEvent command for all of them).
enum ImportRecords {
    static let recordsMax = ImportFormats.recordsMax

    /// A rejection by the ledger's rules (after the record's own fields were checked) names the
    /// record and the vendor's field it is about, as the field checks do: `value` or
    /// `dimensions.<key>` in Tally's terms become, say, Paigo's `recordValue` or Octane's
    /// `labels.<key>`.
    static func ofRecord(_ index: Int, format: ImportFormat, field: String? = nil, _ message: String) -> String {
        guard !message.contains("records[") else { return message }
        func vendor(_ field: Substring) -> String {
            if field == "value" { return format == .paigo ? "recordValue" : "value" }
            guard field.hasPrefix("dimensions.") else { return String(field) }
            let key = field.dropFirst("dimensions.".count)
            switch format {
            case .stigg: return "dimensions.\(key)"
            case .octane: return "labels.\(key)"
            case .paigo: return "metadata.\(key)"
            case .cloudEvents: return "data.\(key)"
            }
        }
        let prefix = "Invalid params: "
        // A raw event's rejection by the meters names it as reportEvent does: `events[i].<field>`
        // (the record's index), or `events[i]: ` for the event as a whole.
        let event = prefix + "events[\(index)]"
        if message.hasPrefix(event + ".") {
            let rest = message.dropFirst(event.count + 1)  // "dimensions.tokens must …"
            let space = rest.firstIndex(of: " ") ?? rest.endIndex
            return prefix + "records[\(index)].\(vendor(rest[..<space]))" + rest[space...]
        }
        if message.hasPrefix(event + ": ") { return prefix + "records[\(index)]: " + message.dropFirst(event.count + 2) }
        if let field, message.hasPrefix(prefix + field + " ") {
            return prefix + "records[\(index)].\(vendor(Substring(field))) " + message.dropFirst(prefix.count + field.count + 1)
        }
        if message.hasPrefix("dimensions."), let space = message.firstIndex(of: " ") {
            return "records[\(index)].\(vendor(message[..<space]))" + message[space...]
        }
        return "records[\(index)]: \(message)"
    }

    static func plan(_ params: JSONObject) throws(RPCFailure) -> Dispatcher.FanOut {
        var p = Params(params)
        let format = try p.requiredEnum("format", ImportFormat.self)
        guard let records = try p.optionalArray("records") else { throw .invalidParams(field: "records", "is required") }
        try p.finish()
        guard !records.isEmpty, records.count <= recordsMax else {
            throw .invalidParams(field: "records", "must hold 1 to \(recordsMax) records")
        }
        var items: [Result<(command: Command, key: String?, method: String, params: JSONObject), RPCFailure>] = []
        var itemRecord: [Int] = []  // the record index of each item
        var events: [(index: Int, event: RawEvent)] = []
        var rejected: [EventRejection] = []
        for (index, record) in records.enumerated() {
            do throws(RPCFailure) {
                var resetFirst = false
                for converted in try ImportFormats.convert(record, format: format, index: index) {
                    switch converted {
                    case .reset:
                        // Applied in the same command as the record's usage, so a re-import (a
                        // duplicate of its idempotency key) does not reset the total again.
                        resetFirst = true
                    case .usage(let object):
                        var command = try UsageMethods.reportUsage(object, path: "records[\(index)]")
                        command.resetTotalFirst = resetFirst
                        // The reset is part of what the key stands for: the same record with and
                        // without reset_total is another payload (IDEMPOTENCY_CONFLICT), not a duplicate.
                        var fingerprinted = object
                        if resetFirst { fingerprinted["resetTotalFirst"] = true }
                        items.append(.success((.reportUsage(command), command.idempotencyKey, "importRecords.\(format.rawValue)", fingerprinted)))
                        itemRecord.append(index)
                    case .event(let object):
                        events.append((index, try UsageMethods.rawEvent(.object(object), path: "records[\(index)]", fingerprint: EventRecord.sha256)))
                    }
                }
            } catch {
                rejected.append(EventRejection(index: index, code: error.code, message: error.message))
            }
        }
        let eventsItem = events.isEmpty ? -1 : items.count
        let eventIndexes = events.map(\.index)
        let rejectedBeforeRun = rejected
        let itemRecords = itemRecord
        if !events.isEmpty {
            items.append(.success((.reportEvents(ReportEvents(events: events, rejected: [])), nil, "reportEvent", [:])))
        }
        return Dispatcher.FanOut(items: items) { results in
            var accepted = 0, duplicates = 0
            var allRejected = rejectedBeforeRun
            var measurements: [JSONValue] = []  // of usage records, in record order
            for (i, result) in results.enumerated() {
                if i == eventsItem {
                    if case .success(let value) = result {
                        accepted += Int(value["accepted"]?.numberText ?? "0") ?? 0
                        duplicates += Int(value["duplicates"]?.numberText ?? "0") ?? 0
                        for r in value["rejected"]?.arrayValue ?? [] {
                            let index = Int(r["index"]?.numberText ?? "0") ?? 0
                            allRejected.append(EventRejection(index: index, code: Int(r["code"]?.numberText ?? "0") ?? 0, message: Self.ofRecord(index, format: format, r["message"]?.stringValue ?? "")))
                        }
                    } else if case .failure(let failure) = result {
                        for index in eventIndexes { allRejected.append(EventRejection(index: index, code: failure.code, message: failure.message)) }
                    }
                    continue
                }
                switch result {
                case .success(let value):
                    if value["duplicate"] == true { duplicates += 1 } else { accepted += 1 }
                    if let measurement = value["measurement"] {
                        measurements.append(.object(["index": .integer(Int64(itemRecords[i])), "measurement": measurement]))
                    }
                case .failure(let failure): allRejected.append(EventRejection(index: itemRecords[i], code: failure.code, message: Self.ofRecord(itemRecords[i], format: format, field: failure.data?["field"]?.stringValue, failure.message)))
                }
            }
            allRejected.sort { $0.index < $1.index }
            guard case .object(var outcome) = UsageMethods.json(EventsOutcome(accepted: accepted, duplicates: duplicates, rejected: allRejected)) else { return .null }
            // What each usage record became, in the seed UsageMeasurement shape (as reportUsage answers).
            outcome["measurements"] = .array(measurements)
            return .object(outcome)
        }
    }
}
