/// One aggregated usage value: a time-series bucket or a period total.
public struct UsageCell: Sendable, Equatable {
    public var value: Amount
    public var eventCount: UInt64
    /// The usage timestamp that set `value` (LATEST keeps the newest).
    public var latestAt: Timestamp?
    /// The log sequence of the event that set `value` with `latestAt`: of two readings with the same
    /// timestamp, the one recorded later is the latest (in one cell, and when cells are combined).
    public var latestSequence: UInt64

    public init(value: Amount = .zero, eventCount: UInt64 = 0, latestAt: Timestamp? = nil, latestSequence: UInt64 = 0) {
        self.value = value
        self.eventCount = eventCount
        self.latestAt = latestAt
        self.latestSequence = latestSequence
    }

    /// Folds in one contribution of the event at `sequence`. For UNIQUE_COUNT the caller passes 1
    /// for a value new to this cell and 0 for one already counted. Returns nil when the sum would
    /// overflow.
    public func adding(_ contribution: Amount, at timestamp: Timestamp, sequence: UInt64, aggregation: Aggregation) -> UsageCell? {
        var next = self
        next.eventCount &+= 1  // a count near 2^64 exists only in a damaged cell: wrap, never trap
        switch aggregation {
        case .count, .sum, .uniqueCount:
            guard let sum = value.adding(contribution) else { return nil }
            next.value = sum
        case .max:
            next.value = eventCount == 0 ? contribution : Amount.max(value, contribution)
        case .min:
            next.value = eventCount == 0 ? contribution : Amount.min(value, contribution)
        case .latest:
            if latestAt.map({ (timestamp, sequence) >= ($0, latestSequence) }) ?? true {
                next.value = contribution
                next.latestAt = timestamp
                next.latestSequence = sequence
            }
        }
        return next
    }

    /// Combines two cells of the same aggregation (regrouping series by fewer dimensions).
    /// UNIQUE_COUNT cells cannot be combined exactly and are summed: see docs/protocol.md.
    public func merged(with other: UsageCell, aggregation: Aggregation) -> UsageCell {
        guard eventCount > 0 else { return other }
        guard other.eventCount > 0 else { return self }
        var next = self
        let (count, overflow) = eventCount.addingReportingOverflow(other.eventCount)
        next.eventCount = overflow ? .max : count  // only a damaged cell gets near 2^64
        switch aggregation {
        // Beyond Int128 (over 10^26 of usage): the sum saturates instead of trapping, like a cell
        // that leaves a contribution out rather than overflow (queries never crash the daemon).
        case .count, .sum, .uniqueCount: next.value = value.adding(other.value) ?? (other.value.isNegative ? Amount(units: .min) : Amount(units: .max))
        case .max: next.value = Amount.max(value, other.value)
        case .min: next.value = Amount.min(value, other.value)
        case .latest:
            if let theirs = other.latestAt, latestAt.map({ (theirs, other.latestSequence) >= ($0, latestSequence) }) ?? true {
                next.value = other.value
                next.latestAt = theirs
                next.latestSequence = other.latestSequence
            }
        }
        return next
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 24)
        w.writeAmount(value)
        w.writeVarUInt(eventCount)
        w.writeOptional(latestAt) { w, t in
            w.writeTimestamp(t)
            w.writeVarUInt(latestSequence)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> UsageCell {
        var r = ByteReader(bytes)
        let value = try r.readUsageTotal()
        let eventCount: UInt64 = try r.readVarUInt()
        let latest = try r.readOptional { (r: inout ByteReader) throws(DecodingError) in (try r.readTimestamp(), try r.readVarUInt() as UInt64) }
        try r.expectEnd()
        return UsageCell(value: value, eventCount: eventCount, latestAt: latest?.0, latestSequence: latest?.1 ?? 0)
    }
}

/// The buckets every usage contribution lands in.
public enum UsageBuckets {
    /// Time-series granularities stored per dimension set (MONTH is summed from days at query time).
    public static let seriesGranularities: [CalendarPeriod] = [.minute, .hour, .day]
    /// Whole-bucket cells (no dimensions) kept for UNIQUE_COUNT, so ungrouped history is exact.
    public static let wholeGranularities: [CalendarPeriod] = [.minute, .hour, .day, .month]
    /// Period totals (no dimensions) kept for entitlement checks; `nil` = all time.
    public static let totalPeriods: [CalendarPeriod?] = [.day, .week, .month, .year, nil]
}

public enum UpdateBehavior: String, Sendable, CaseIterable { case delta = "DELTA", set = "SET" }
