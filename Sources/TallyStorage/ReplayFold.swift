public import TallyCore

/// A replay's fold of the log into `MemoryProjections`: `Projector.apply` for every event, except
/// that the usage cells (usage totals and series, the bulk of what a log of raw events builds)
/// are kept in a table keyed by small typed ids while the fold runs, and written out as the same
/// records at `finish`.
///
/// Why: a raw event updates 8 cells (3 series buckets, 5 period totals), and through
/// `MemoryProjections` each update builds a byte key of ~60–100 bytes, hashes it and compares it
/// with the stored one. Here a cell is found by (owner, period, start), and its byte key is built
/// once, when it is first touched. Every event that reads or writes usage cells (USAGE_REPORTED,
/// USAGE_RESET, EVENT_RECEIVED) is folded here, by `UsageProjector`'s rules; no other fold reads
/// them, so the table is their only home until `finish`. The meters of an event name are
/// resolved once and forgotten at every FEATURE_DEFINED; dimension keys already indexed are
/// remembered (their records are never removed).
public struct ReplayFold {
    private var projections: MemoryProjections
    private var cells: CellTable
    /// eventName → the features whose meter reads it, in `meteredFeatureIDs` order.
    private var meters: [ByteExactString: [Feature]] = [:]
    private var indexedDimensionKeys: Set<CustomerDimensionKey> = []

    /// An empty fold, with room for `expectedRecords` projection records.
    public init(expectedRecords: Int) {
        projections = MemoryProjections(expectedRecords: expectedRecords)
        // Usage cells are most of what a log of usage builds.
        cells = CellTable(expectedCells: expectedRecords)
    }

    /// Folds `event`, as `Projector.apply` would.
    /// - Throws: `StorageError` when a record cannot be read or decoded, or the log contradicts itself.
    public mutating func fold(_ event: Event) throws(StorageError) {
        switch event.payload {
        case .eventReceived(let e):
            try indexDimensionKeys(e.customerId, e.dimensions)
            for feature in try meteredFeatures(e.eventName) {
                guard let meter = feature.meter, meter.matches(e.dimensions), let reading = MeterReading(meter: meter, dimensions: e.dimensions) else { continue }
                cells.addUsage(
                    SeriesIdentity(customerId: e.customerId, featureId: feature.id, resourceId: e.resourceId, dimensions: reading.seriesDimensions),
                    Contribution(amount: reading.contribution, timestamp: e.timestamp, sequence: event.sequence, aggregation: meter.aggregation),
                    uniqueValue: reading.uniqueValue, members: &projections
                )
            }
        case .usageReported(let e):
            try indexDimensionKeys(e.customerId, e.dimensions)
            cells.addUsage(
                SeriesIdentity(customerId: e.customerId, featureId: e.featureId, resourceId: e.resourceId, dimensions: e.dimensions),
                Contribution(amount: e.delta, timestamp: e.timestamp, sequence: event.sequence, aggregation: .sum),
                uniqueValue: nil, members: &projections
            )
        case .usageReset(let e):
            cells.resetTotals(customerId: e.customerId, featureId: e.featureId, resourceId: e.resourceId, at: e.timestamp, sequence: event.sequence)
        case .featureDefined:
            meters.removeAll()
            try Projector.fold(event, into: &projections)
        default:
            try Projector.fold(event, into: &projections)
        }
    }

    /// Writes out the usage cells and hands back the projections; the fold is empty after it.
    public mutating func finish() -> MemoryProjections {
        cells.write(into: &projections)
        var result = MemoryProjections()
        swap(&result, &projections)
        return result
    }

    /// `UsageProjector.indexDimensionKeys`, skipping keys this fold has seen on the customer.
    private mutating func indexDimensionKeys(_ customerId: String, _ dimensions: Dimensions) throws(StorageError) {
        for (key, _) in dimensions.pairs {
            let known = CustomerDimensionKey(customerId: customerId, key: key)
            guard !indexedDimensionKeys.contains(known) else { continue }
            let indexKey = KeyLayout.dimensionKeyKey(customerId: customerId, key: key)
            if projections.projection(indexKey) == nil { projections.setProjection(indexKey, []) }
            indexedDimensionKeys.insert(known)
        }
    }

    private mutating func meteredFeatures(_ eventName: String) throws(StorageError) -> [Feature] {
        if let known = meters[ByteExactString(eventName)] { return known }
        var features: [Feature] = []
        for id in try Projections.meteredFeatureIDs(eventName: eventName, in: projections) {
            if let feature = try Projections.feature(id, in: projections) { features.append(feature) }
        }
        meters[ByteExactString(eventName)] = features
        return features
    }
}

// The keys below compare their strings by bytes (`UTF8Exact`), as the projections' byte keys do:
// by String's `==`, a customer "é" and a customer "e\u{301}" would share one table entry.

struct CustomerDimensionKey: Hashable {
    var customerId: String
    var key: String

    static func == (a: Self, b: Self) -> Bool { UTF8Exact.equal(a.customerId, b.customerId) && UTF8Exact.equal(a.key, b.key) }

    func hash(into hasher: inout Hasher) {
        UTF8Exact.hash(customerId, into: &hasher)
        UTF8Exact.hash(key, into: &hasher)
    }
}

/// What one raw event adds to each of its cells.
struct Contribution {
    var amount: Amount
    var timestamp: Timestamp
    var sequence: UInt64
    var aggregation: Aggregation
}

/// The cells of one metered series: a customer's feature, resource and (for the time series) dimensions.
struct SeriesIdentity: Hashable {
    var customerId: String
    var featureId: String
    var resourceId: String?
    var dimensions: Dimensions

    static func == (a: Self, b: Self) -> Bool {
        guard UTF8Exact.equal(a.customerId, b.customerId), UTF8Exact.equal(a.featureId, b.featureId),
              UTF8Exact.equal(a.resourceId, b.resourceId) else { return false }
        return a.dimensions.pairs.elementsEqual(b.dimensions.pairs) { UTF8Exact.equal($0.0, $1.0) && UTF8Exact.equal($0.1, $1.1) }
    }

    func hash(into hasher: inout Hasher) {
        UTF8Exact.hash(customerId, into: &hasher)
        UTF8Exact.hash(featureId, into: &hasher)
        if let resourceId {
            hasher.combine(true)
            UTF8Exact.hash(resourceId, into: &hasher)
        } else {
            hasher.combine(false)
        }
        hasher.combine(dimensions.pairs.count)
        for (key, value) in dimensions.pairs {
            UTF8Exact.hash(key, into: &hasher)
            UTF8Exact.hash(value, into: &hasher)
        }
    }
}

/// A cell: whose (an owner: a series' time buckets, or its customer/feature/resource's totals),
/// which bucket granularity or total period (nil: all time), and its start.
struct CellID: Hashable {
    var owner: Int32
    var period: CalendarPeriod?
    var start: Timestamp
}

/// Usage cells by `CellID`, with the byte key each is stored under.
struct CellTable {
    private enum Owner {
        /// A series and `Dimensions.canonicalBytes` of its dimensions.
        case series(SeriesIdentity, canonicalDimensions: [UInt8])
        /// Period totals have no dimensions.
        case totals(customerId: String, featureId: String, resourceId: String?)
        /// UNIQUE_COUNT's whole-bucket cells (every dimension set together).
        case whole(customerId: String, featureId: String, resourceId: String?)
    }

    private struct OwnerIDs {
        var series: Int32
        var totals: Int32
        var whole: Int32
    }

    private var seriesOwners: [SeriesIdentity: OwnerIDs] = [:]
    /// Keyed by a `SeriesIdentity` without dimensions.
    private var totalsOwners: [SeriesIdentity: (totals: Int32, whole: Int32)] = [:]
    private var owners: [Owner] = []
    private var slots: [CellID: Int] = [:]
    /// Per owner and period (`hintIndex`), the slot and start of the cell it touched last (slot
    /// -1 for none): a series' events come mostly in time order, so most touches are of that same
    /// cell, found without a probe of `slots` (a cache miss in a table of millions).
    private var lastSlots: [(slot: Int, start: Timestamp)] = []
    private var keys: [[UInt8]] = []
    private var values: [UsageCell] = []

    init(expectedCells: Int = 0) {
        slots.reserveCapacity(expectedCells)
        keys.reserveCapacity(expectedCells)
        values.reserveCapacity(expectedCells)
    }

    /// `UsageProjector.addUsage`: one contribution to every series bucket and period total it
    /// falls in (and UNIQUE_COUNT's whole buckets), the members of UNIQUE_COUNT in `members`.
    mutating func addUsage(_ series: SeriesIdentity, _ c: Contribution, uniqueValue: String?, members: inout MemoryProjections) {
        let ids = owners(of: series)
        for granularity in UsageBuckets.seriesGranularities {
            add(c, uniqueValue, to: CellID(owner: ids.series, period: granularity, start: CalendarUTC.periodStart(granularity, containing: c.timestamp)), &members)
        }
        for period in UsageBuckets.totalPeriods {
            add(c, uniqueValue, to: CellID(owner: ids.totals, period: period, start: UsageProjector.periodStart(period, c.timestamp)), &members)
        }
        if c.aggregation == .uniqueCount {
            for granularity in UsageBuckets.wholeGranularities {
                add(c, uniqueValue, to: CellID(owner: ids.whole, period: granularity, start: CalendarUTC.periodStart(granularity, containing: c.timestamp)), &members)
            }
        }
    }

    /// USAGE_RESET: the period totals containing `t` start again from zero.
    mutating func resetTotals(customerId: String, featureId: String, resourceId: String?, at t: Timestamp, sequence: UInt64) {
        guard let owner = totalsOwners[SeriesIdentity(customerId: customerId, featureId: featureId, resourceId: resourceId, dimensions: .none)]?.totals else { return }
        for period in UsageBuckets.totalPeriods {
            guard let slot = slots[CellID(owner: owner, period: period, start: UsageProjector.periodStart(period, t))] else { continue }
            // (No hint to update: a reset changes a cell, not which cell is touched.)
            values[slot].value = .zero
            values[slot].latestAt = t
            values[slot].latestSequence = sequence
        }
    }

    private mutating func owners(of series: SeriesIdentity) -> OwnerIDs {
        if let known = seriesOwners[series] { return known }
        let undimensioned = SeriesIdentity(customerId: series.customerId, featureId: series.featureId, resourceId: series.resourceId, dimensions: .none)
        let shared: (totals: Int32, whole: Int32)
        if let known = totalsOwners[undimensioned] {
            shared = known
        } else {
            shared = (Int32(owners.count), Int32(owners.count + 1))
            appendOwner(.totals(customerId: series.customerId, featureId: series.featureId, resourceId: series.resourceId))
            appendOwner(.whole(customerId: series.customerId, featureId: series.featureId, resourceId: series.resourceId))
            totalsOwners[undimensioned] = shared
        }
        let ids = OwnerIDs(series: Int32(owners.count), totals: shared.totals, whole: shared.whole)
        appendOwner(.series(series, canonicalDimensions: series.dimensions.canonicalBytes))
        seriesOwners[series] = ids
        return ids
    }

    private mutating func appendOwner(_ owner: Owner) {
        owners.append(owner)
        lastSlots.append(contentsOf: repeatElement((slot: -1, start: Timestamp(microsecondsSinceEpoch: 0)), count: Self.hintsPerOwner))
    }

    private static let hintsPerOwner = 8

    private static func hintIndex(_ id: CellID) -> Int {
        let period = switch id.period {
        case .minute?: 0
        case .hour?: 1
        case .day?: 2
        case .week?: 3
        case .month?: 4
        case .year?: 5
        case nil: 6
        }
        return Int(id.owner) * hintsPerOwner + period
    }

    private mutating func slot(of id: CellID) -> Int {
        let hint = Self.hintIndex(id)
        let last = lastSlots[hint]
        // The hint's owner and period are the id's: the start tells the rest.
        if last.slot >= 0, last.start == id.start { return last.slot }
        let slot: Int
        if let known = slots[id] {
            slot = known
        } else {
            slot = values.count
            slots[id] = slot
            keys.append(key(of: id))
            values.append(UsageCell())
        }
        lastSlots[hint] = (slot, id.start)
        return slot
    }

    /// `UsageProjector.addToCell`.
    private mutating func add(_ c: Contribution, _ uniqueValue: String?, to id: CellID, _ members: inout MemoryProjections) {
        let slot = slot(of: id)
        var amount = c.amount
        if let uniqueValue {
            let member = KeyLayout.uniqueMemberKey(cell: keys[slot], value: uniqueValue)
            if members.projection(member) != nil {
                amount = .zero
            } else {
                members.setProjection(member, [])
            }
        }
        // As UsageProjector: a sum beyond Int128 leaves the cell as it was.
        if let next = values[slot].adding(amount, at: c.timestamp, sequence: c.sequence, aggregation: c.aggregation) { values[slot] = next }
    }

    private func key(of id: CellID) -> [UInt8] {
        switch owners[Int(id.owner)] {
        case .series(let s, let canonicalDimensions):
            KeyLayout.usageSeriesKey(customerId: s.customerId, featureId: s.featureId, granularity: id.period!, start: id.start, resourceId: s.resourceId, canonicalDimensions: canonicalDimensions)
        case .totals(let customerId, let featureId, let resourceId):
            KeyLayout.usageTotalKey(customerId: customerId, featureId: featureId, resourceId: resourceId, period: id.period, start: id.start)
        case .whole(let customerId, let featureId, let resourceId):
            KeyLayout.usageSeriesKey(customerId: customerId, featureId: featureId, granularity: id.period!, start: id.start, resourceId: resourceId, canonicalDimensions: Dimensions.none.canonicalBytes, whole: true)
        }
    }

    /// Sets every cell in `projections` and empties the table.
    mutating func write(into projections: inout MemoryProjections) {
        // The lookup structures go first (~70 bytes a cell): the replay's peak memory is here,
        // when `projections` holds every record and the table still holds the cells.
        let keys = self.keys, values = self.values
        self = CellTable()
        for (key, value) in zip(keys, values) { projections.setProjection(key, decoded: .usageCell(value)) }
    }
}
