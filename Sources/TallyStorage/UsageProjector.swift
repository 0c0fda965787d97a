public import TallyCore

/// The catalog, usage and entitlement projections: folds of their events over records.
enum UsageProjector {
    static func apply(_ event: Event, to sink: inout some ProjectionSink) throws(StorageError) {
        switch event.payload {
        case .customerProvisioned, .customerUpdated:
            preconditionFailure("customer events are folded by Projector")
        case .currencyDefined(let e):
            sink.setProjection(KeyLayout.currencyKey(e.currency.id), e.currency.encoded())
        case .featureDefined(let e):
            let previous = try Projections.feature(e.feature.id, in: sink)
            if let old = previous?.meter?.eventName, !UTF8Exact.equal(old, e.feature.meter?.eventName) {
                try updateMeterIndex(old, remove: e.feature.id, &sink)
            }
            if let new = e.feature.meter?.eventName {
                try updateMeterIndex(new, add: e.feature.id, &sink)
            }
            sink.setProjection(KeyLayout.featureKey(e.feature.id), decoded: .feature(e.feature))
        case .planDefined(let e):
            sink.setProjection(KeyLayout.planKey(e.plan.id), e.plan.encoded())
        case .subscriptionProvisioned(let e):
            let subscription = e.subscription
            let key = KeyLayout.subscriptionKey(subscription.id)
            // A subscription id is the customer's for good (the decision refuses another's), so a
            // known one is already in the customer's list, where it stays; a new one is added at
            // the end: a few small records whatever the list's length.
            let previous = try Projections.subscription(subscription.id, in: sink)
            sink.setProjection(key, subscription.encoded())
            if previous == nil { try Projections.customerSubscriptions(customerId: subscription.customerId).insert(subscription.id, into: &sink) }
            try updateEntitling(from: previous, to: subscription, &sink)
        case .subscriptionCanceled(let e):
            guard let previous = try Projections.subscription(e.subscriptionId, in: sink) else {
                throw .inconsistentLog("event \(event.sequence): SUBSCRIPTION_CANCELED for unknown subscription \(e.subscriptionId)")
            }
            var subscription = previous
            subscription.status = .canceled
            subscription.canceledAt = event.recordedAt
            sink.setProjection(KeyLayout.subscriptionKey(subscription.id), subscription.encoded())
            try updateEntitling(from: previous, to: subscription, &sink)
        case .usageReported(let e):
            try indexDimensionKeys(e.customerId, e.dimensions, &sink)
            try addUsage(
                customerId: e.customerId, featureId: e.featureId, resourceId: e.resourceId, timestamp: e.timestamp, sequence: event.sequence,
                dimensions: e.dimensions, contribution: e.delta, uniqueValue: nil, aggregation: .sum, &sink
            )
        case .eventReceived(let e):
            try indexDimensionKeys(e.customerId, e.dimensions, &sink)
            for featureId in try Projections.meteredFeatureIDs(eventName: e.eventName, in: sink) {
                guard let feature = try Projections.feature(featureId, in: sink), let meter = feature.meter,
                      meter.matches(e.dimensions), let reading = MeterReading(meter: meter, dimensions: e.dimensions)
                else { continue }
                try addUsage(
                    customerId: e.customerId, featureId: featureId, resourceId: e.resourceId, timestamp: e.timestamp, sequence: event.sequence,
                    dimensions: reading.seriesDimensions, contribution: reading.contribution, uniqueValue: reading.uniqueValue,
                    aggregation: meter.aggregation, &sink
                )
            }
        case .usageReset(let e):
            for period in UsageBuckets.totalPeriods {
                let key = KeyLayout.usageTotalKey(customerId: e.customerId, featureId: e.featureId, resourceId: e.resourceId, period: period, start: periodStart(period, e.timestamp))
                guard var cell = try Projections.usageCell(key, in: sink) else { continue }
                cell.value = .zero
                cell.latestAt = e.timestamp
                cell.latestSequence = event.sequence
                sink.setProjection(key, cell.encoded())
            }
        case .promotionalEntitlementGranted(let e):
            sink.setProjection(KeyLayout.promotionalKey(customerId: e.entitlement.customerId, featureId: e.entitlement.featureId), e.entitlement.encoded())
        case .promotionalEntitlementRevoked(let e):
            sink.setProjection(KeyLayout.promotionalKey(customerId: e.customerId, featureId: e.featureId), nil)
        case .creditsGranted, .creditsConsumed, .creditsExpired, .creditsVoided, .creditsActivated, .autoRechargeConfigured:
            try CreditProjector.apply(event, to: &sink)
        }
    }

    static func periodStart(_ period: CalendarPeriod?, _ t: Timestamp) -> Timestamp {
        period.map { CalendarUTC.periodStart($0, containing: t) } ?? Timestamp.distantPast
    }

    /// One contribution to every series bucket and period total it falls in.
    static func addUsage(
        customerId: String, featureId: String, resourceId: String?, timestamp: Timestamp, sequence: UInt64, dimensions: Dimensions,
        contribution: Amount, uniqueValue: String?, aggregation: Aggregation, _ sink: inout some ProjectionSink
    ) throws(StorageError) {
        let keys = cellKeys(customerId: customerId, featureId: featureId, resourceId: resourceId, timestamp: timestamp, dimensions: dimensions, aggregation: aggregation)
        for key in keys {
            try addToCell(key, contribution, uniqueValue, timestamp, sequence, aggregation, &sink)
        }
    }

    /// The cells one reading lands in: its series cells (per granularity, its dimension set), its
    /// period totals (no dimensions), and for UNIQUE_COUNT the whole-bucket cells — distinct
    /// counts cannot be summed across dimension sets or buckets, so those serve ungrouped history,
    /// MONTH included. With `totals: false`, the series cells only.
    static func cellKeys(
        customerId: String, featureId: String, resourceId: String?, timestamp: Timestamp, dimensions: Dimensions, aggregation: Aggregation, totals: Bool = true
    ) -> [[UInt8]] {
        let canonicalDimensions = dimensions.canonicalBytes
        var keys: [[UInt8]] = []
        keys.reserveCapacity(UsageBuckets.seriesGranularities.count + UsageBuckets.totalPeriods.count + UsageBuckets.wholeGranularities.count)
        for granularity in UsageBuckets.seriesGranularities {
            keys.append(KeyLayout.usageSeriesKey(
                customerId: customerId, featureId: featureId, granularity: granularity,
                start: CalendarUTC.periodStart(granularity, containing: timestamp), resourceId: resourceId, canonicalDimensions: canonicalDimensions
            ))
        }
        if totals {
            for period in UsageBuckets.totalPeriods {
                keys.append(KeyLayout.usageTotalKey(customerId: customerId, featureId: featureId, resourceId: resourceId, period: period, start: periodStart(period, timestamp)))
            }
        }
        if aggregation == .uniqueCount {
            for granularity in UsageBuckets.wholeGranularities {
                keys.append(KeyLayout.usageSeriesKey(
                    customerId: customerId, featureId: featureId, granularity: granularity,
                    start: CalendarUTC.periodStart(granularity, containing: timestamp), resourceId: resourceId, canonicalDimensions: Dimensions.none.canonicalBytes, whole: true
                ))
            }
        }
        return keys
    }

    private static func addToCell(
        _ key: [UInt8], _ contribution: Amount, _ uniqueValue: String?, _ timestamp: Timestamp, _ sequence: UInt64, _ aggregation: Aggregation,
        _ sink: inout some ProjectionSink
    ) throws(StorageError) {
        var amount = contribution
        if let uniqueValue {
            // UNIQUE_COUNT keeps its members in RocksDB, one record per distinct value per cell, so
            // memory does not grow with the number of distinct values.
            let member = KeyLayout.uniqueMemberKey(cell: key, value: uniqueValue)
            if try sink.projection(member) != nil {
                amount = .zero
            } else {
                sink.setProjection(member, [])
            }
        }
        // A sum beyond Int128 (over 10^26 units of usage) leaves the cell as it was: replay does
        // the same, so the projections stay equal to the log. The decisions refuse usage that would
        // do so (`Projections.usageExceedsRange`); only a log written before they did holds any.
        try sink.updateUsageCell(key) { current in
            let cell = current ?? UsageCell()
            return cell.adding(amount, at: timestamp, sequence: sequence, aggregation: aggregation) ?? cell
        }
    }

    /// Records the dimension keys of a customer's usage (listDimensionKeys), usage and credit usage alike.
    static func indexDimensionKeys(_ customerId: String, _ dimensions: Dimensions, _ sink: inout some ProjectionSink) throws(StorageError) {
        for (key, _) in dimensions.pairs {
            let indexKey = KeyLayout.dimensionKeyKey(customerId: customerId, key: key)
            if try sink.projection(indexKey) == nil { sink.setProjection(indexKey, []) }
        }
    }

    /// Keeps the customer's entitling plans and subscriptions (ACTIVE or TRIAL) in step with a
    /// subscription's change of status or plan: a few small records, whatever the customer's count.
    private static func updateEntitling(from old: Subscription?, to new: Subscription, _ sink: inout some ProjectionSink) throws(StorageError) {
        let before = old.flatMap { $0.status.grantsEntitlements ? $0.planId : nil }
        let after = new.status.grantsEntitlements ? new.planId : nil
        if let before, let after, UTF8Exact.equal(before, after) { return }
        if let before, try Projections.entitlingSubscriptions(customerId: new.customerId, planId: before).remove(new.id, from: &sink) {
            try Projections.entitlingPlans(customerId: new.customerId).remove(before, from: &sink)
        }
        if let after, try Projections.entitlingSubscriptions(customerId: new.customerId, planId: after).insert(new.id, into: &sink) {
            try Projections.entitlingPlans(customerId: new.customerId).insert(after, into: &sink)
        }
    }

    private static func updateMeterIndex(_ eventName: String, add featureId: String? = nil, remove removed: String? = nil, _ sink: inout some ProjectionSink) throws(StorageError) {
        var ids = try Projections.meteredFeatureIDs(eventName: eventName, in: sink)
        // Ids by bytes, as their keys: "é" and "e\u{301}" are two features (String's == would merge them).
        if let removed { ids.removeAll { UTF8Exact.equal($0, removed) } }
        if let featureId, !ids.contains(where: { UTF8Exact.equal($0, featureId) }) { ids.append(featureId) }
        if ids.isEmpty {
            sink.setProjection(KeyLayout.meterIndexKey(eventName: eventName), nil)
        } else {
            sink.setProjection(KeyLayout.meterIndexKey(eventName: eventName), decoded: .strings(ids.sorted()))
        }
    }
}

/// What one raw event contributes to a metered feature.
public struct MeterReading: Sendable {
    public var contribution: Amount
    /// For UNIQUE_COUNT: the value counted once per bucket.
    public var uniqueValue: String?
    /// The event's dimensions without the meter's field: a field that varies with every event
    /// (a user id, a token count) would otherwise make every event a series of its own.
    public var seriesDimensions: Dimensions

    /// nil when the event lacks the field, or its value is not a number where one is needed.
    public init?(meter: Meter, dimensions: Dimensions) {
        let others = meter.field.map { field in Dimensions(dimensions.pairs.filter { $0.0 != field }) } ?? dimensions
        seriesDimensions = others
        switch meter.aggregation {
        case .count:
            contribution = Amount(1)
            uniqueValue = nil
        case .uniqueCount:
            guard let field = meter.field, let value = dimensions[field] else { return nil }
            contribution = Amount(1)
            uniqueValue = value
        case .sum, .max, .min, .latest:
            guard let field = meter.field, let text = dimensions[field], let amount = try? Amount(parsing: text) else { return nil }
            contribution = amount
            uniqueValue = nil
        }
    }
}

extension Projections {
    /// Whether adding `contribution` (a SUM's or a reportUsage delta) would take any cell it lands
    /// in beyond what an amount holds: a usage the decisions refuse, so that every granularity, the
    /// period totals and the entitlements keep counting the same events.
    public static func usageExceedsRange(
        customerId: String, featureId: String, resourceId: String?, timestamp: Timestamp, dimensions: Dimensions, contribution: Amount,
        totals: Bool = true, in source: some ProjectionSource
    ) throws(StorageError) -> Bool {
        let keys = UsageProjector.cellKeys(
            customerId: customerId, featureId: featureId, resourceId: resourceId, timestamp: timestamp, dimensions: dimensions, aggregation: .sum, totals: totals)
        for key in keys {
            let value = try usageCell(key, in: source)?.value ?? .zero
            if value.adding(contribution) == nil { return true }
        }
        return false
    }

    public static func feature(_ id: String, in source: some ProjectionSource) throws(StorageError) -> Feature? {
        try decoded(KeyLayout.featureKey(id), in: source, "feature \(id)", DecodedProjection.feature) { (b: [UInt8]) throws(DecodingError) in try Feature.decode(b) } extract: {
            if case .feature(let value) = $0 { value } else { nil }
        }
    }

    public static func currency(_ id: String, in source: some ProjectionSource) throws(StorageError) -> Currency? {
        try decoded(KeyLayout.currencyKey(id), in: source, "currency \(id)") { (b: [UInt8]) throws(DecodingError) in try Currency.decode(b) }
    }

    public static func plan(_ id: String, in source: some ProjectionSource) throws(StorageError) -> Plan? {
        try decoded(KeyLayout.planKey(id), in: source, "plan \(id)") { (b: [UInt8]) throws(DecodingError) in try Plan.decode(b) }
    }

    public static func subscription(_ id: String, in source: some ProjectionSource) throws(StorageError) -> Subscription? {
        try decoded(KeyLayout.subscriptionKey(id), in: source, "subscription \(id)") { (b: [UInt8]) throws(DecodingError) in try Subscription.decode(b) }
    }

    /// The customer's subscriptions, canceled ones included. Never removed from, so in the order
    /// they were first provisioned.
    static func customerSubscriptions(customerId: String) -> NumberedSet { NumberedSet(tag: "cs", scope: [customerId]) }

    /// How many subscriptions the customer was ever provisioned (canceled ones included).
    public static func subscriptionCount(customerId: String, in source: some ProjectionSource) throws(StorageError) -> UInt64 {
        try customerSubscriptions(customerId: customerId).count(in: source)
    }

    public static func subscriptions(customerId: String, in source: some ProjectionSource) throws(StorageError) -> [Subscription] {
        var result: [Subscription] = []
        for id in try customerSubscriptions(customerId: customerId).members(in: source) {
            if let subscription = try subscription(id, in: source) { result.append(subscription) }
        }
        return result
    }

    /// The plans the customer has an ACTIVE or TRIAL subscription to.
    static func entitlingPlans(customerId: String) -> NumberedSet { NumberedSet(tag: "ep", scope: [customerId]) }
    /// The customer's ACTIVE or TRIAL subscriptions to the plan.
    static func entitlingSubscriptions(customerId: String, planId: String) -> NumberedSet { NumberedSet(tag: "es", scope: [customerId, planId]) }

    /// The plans whose entitlements the customer has at `t`: those it has an ACTIVE subscription
    /// to, or a TRIAL one not yet ended, started by `t`. In plan id order (byte order), so that
    /// which of two equal entitlements answers does not depend on the order of the subscriptions.
    /// Reads the customer's entitling plans and, per plan, its subscriptions only until one grants:
    /// canceled and paused subscriptions cost nothing.
    public static func entitlingPlans(customerId: String, at t: Timestamp, in source: some ProjectionSource) throws(StorageError) -> [Plan] {
        var plans: [Plan] = []
        for planId in try entitlingPlans(customerId: customerId).members(in: source).sorted(by: UTF8Exact.less) {
            guard let plan = try plan(planId, in: source) else { throw .corrupt("entitling plans of \(customerId): plan \(planId) missing") }
            let subscriptions = entitlingSubscriptions(customerId: customerId, planId: planId)
            for position in 0..<(try subscriptions.count(in: source)) {
                let id = try subscriptions.member(at: position, in: source)
                guard let subscription = try subscription(id, in: source) else { throw .corrupt("entitling subscriptions of \(customerId): \(id) missing") }
                if subscription.grantsEntitlements(of: plan, at: t) {
                    plans.append(plan)
                    break
                }
            }
        }
        return plans
    }

    public static func promotional(customerId: String, featureId: String, in source: some ProjectionSource) throws(StorageError) -> PromotionalEntitlement? {
        try decoded(KeyLayout.promotionalKey(customerId: customerId, featureId: featureId), in: source, "promotional entitlement \(customerId)/\(featureId)") { (b: [UInt8]) throws(DecodingError) in try PromotionalEntitlement.decode(b) }
    }

    public static func meteredFeatureIDs(eventName: String, in source: some ProjectionSource) throws(StorageError) -> [String] {
        try decoded(KeyLayout.meterIndexKey(eventName: eventName), in: source, "meter index \(eventName)", DecodedProjection.strings) { (b: [UInt8]) throws(DecodingError) in try decodeStrings(b) } extract: {
            if case .strings(let value) = $0 { value } else { nil }
        } ?? []
    }

    public static func usageCell(_ key: [UInt8], in source: some ProjectionSource) throws(StorageError) -> UsageCell? {
        try decoded(key, in: source, "usage cell", DecodedProjection.usageCell) { (b: [UInt8]) throws(DecodingError) in try UsageCell.decode(b) } extract: {
            if case .usageCell(let value) = $0 { value } else { nil }
        }
    }

    /// The total of a customer's feature in the period (nil = all time) containing `t`.
    public static func usageTotal(customerId: String, featureId: String, resourceId: String?, period: CalendarPeriod?, at t: Timestamp, in source: some ProjectionSource) throws(StorageError) -> UsageCell {
        let key = KeyLayout.usageTotalKey(customerId: customerId, featureId: featureId, resourceId: resourceId, period: period, start: UsageProjector.periodStart(period, t))
        return try usageCell(key, in: source) ?? UsageCell()
    }

    static func decoded<T>(_ key: [UInt8], in source: some ProjectionSource, _ what: String, _ decode: ([UInt8]) throws(DecodingError) -> T) throws(StorageError) -> T? {
        guard let bytes = try source.projection(key) else { return nil }
        do {
            return try decode(bytes)
        } catch {
            throw .corrupt("\(what): \(error.reason)")
        }
    }

    /// A record the source may hold decoded (`DecodedProjection`): taken as it is when it does;
    /// otherwise decoded from bytes and offered back to the source's read cache.
    static func decoded<T>(
        _ key: [UInt8], in source: some ProjectionSource, _ what: String, _ wrap: (T) -> DecodedProjection,
        _ decode: ([UInt8]) throws(DecodingError) -> T, extract: (DecodedProjection) -> T?
    ) throws(StorageError) -> T? {
        let bytes: [UInt8]
        switch try source.projectionRecord(key) {
        case nil:
            return nil
        case .decoded(let value)?:
            if let typed = extract(value) { return typed }
            bytes = value.encoded()
        case .bytes(let raw)?:
            bytes = raw
        }
        do {
            let value = try decode(bytes)
            source.rememberDecoded(key, wrap(value))
            return value
        } catch {
            throw .corrupt("\(what): \(error.reason)")
        }
    }

    static func encodeStrings(_ strings: [String]) -> [UInt8] {
        var w = ByteWriter()
        w.writeArray(strings) { $0.writeString($1) }
        return w.bytes
    }

    static func decodeStrings(_ bytes: [UInt8]) throws(DecodingError) -> [String] {
        var r = ByteReader(bytes)
        let strings = try r.readArray { (r: inout ByteReader) throws(DecodingError) in try r.readString() }
        try r.expectEnd()
        return strings
    }
}
