import Testing
import TallyCore

@Suite struct CalendarUTCTests {
    static func ts(_ text: String) -> Timestamp {
        do { return try Timestamp(parsingRFC3339: text) } catch { fatalError("\(error)") }
    }

    @Test func periodRawValues() {
        #expect(CalendarPeriod.allCases.map(\.rawValue) == ["MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "YEAR"])
        #expect(CalendarPeriod(rawValue: "WEEK") == .week)
        #expect(CalendarPeriod(rawValue: "week") == nil)
    }

    @Test(arguments: [
        // (period, instant, start, end)
        (CalendarPeriod.minute, "2026-11-20T10:17:42.123456Z", "2026-11-20T10:17:00Z", "2026-11-20T10:18:00Z"),
        (.minute, "2026-11-20T10:17:00Z", "2026-11-20T10:17:00Z", "2026-11-20T10:18:00Z"),
        (.minute, "1969-12-31T23:59:59.5Z", "1969-12-31T23:59:00Z", "1970-01-01T00:00:00Z"),
        (.hour, "2026-11-20T10:17:42Z", "2026-11-20T10:00:00Z", "2026-11-20T11:00:00Z"),
        (.hour, "2026-12-31T23:30:00Z", "2026-12-31T23:00:00Z", "2027-01-01T00:00:00Z"),
        (.hour, "1969-12-31T23:00:00.000001Z", "1969-12-31T23:00:00Z", "1970-01-01T00:00:00Z"),
        (.day, "2026-11-20T10:17:42Z", "2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z"),
        (.day, "2024-02-28T23:59:59.999999Z", "2024-02-28T00:00:00Z", "2024-02-29T00:00:00Z"),
        (.day, "2026-11-20T01:00:00+05:00", "2026-11-19T00:00:00Z", "2026-11-20T00:00:00Z"),
        (.day, "1969-12-31T12:00:00Z", "1969-12-31T00:00:00Z", "1970-01-01T00:00:00Z"),
        // Weeks start on Monday. 2026-11-20 is a Friday; 2026-11-16 a Monday.
        (.week, "2026-11-20T10:00:00Z", "2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z"),
        (.week, "2026-11-16T00:00:00Z", "2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z"),
        (.week, "2026-11-15T23:59:59.999999Z", "2026-11-09T00:00:00Z", "2026-11-16T00:00:00Z"),
        (.week, "2026-11-22T12:00:00Z", "2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z"),
        (.week, "1970-01-01T00:00:00Z", "1969-12-29T00:00:00Z", "1970-01-05T00:00:00Z"),
        (.week, "2026-12-31T00:00:00Z", "2026-12-28T00:00:00Z", "2027-01-04T00:00:00Z"),
        (.week, "2024-02-29T00:00:00Z", "2024-02-26T00:00:00Z", "2024-03-04T00:00:00Z"),
        (.week, "1900-01-01T00:00:00Z", "1900-01-01T00:00:00Z", "1900-01-08T00:00:00Z"),
        (.month, "2026-11-20T10:00:00Z", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"),
        (.month, "2026-12-31T23:59:59Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        (.month, "2024-02-10T00:00:00Z", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"),
        (.month, "2024-02-29T23:00:00Z", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"),
        (.month, "2026-02-28T23:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"),
        (.month, "2026-01-31T12:00:00Z", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"),
        (.month, "1969-12-15T00:00:00Z", "1969-12-01T00:00:00Z", "1970-01-01T00:00:00Z"),
        (.year, "2026-11-20T10:00:00Z", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        (.year, "2024-02-29T10:00:00Z", "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"),
        (.year, "1969-06-01T00:00:00Z", "1969-01-01T00:00:00Z", "1970-01-01T00:00:00Z"),
        (.year, "9999-12-31T23:59:59.999999Z", "9999-01-01T00:00:00Z", "10000-01-01T00:00:00.000Z"),
    ])
    func periodBounds(period: CalendarPeriod, instant: String, start: String, end: String) {
        let t = Self.ts(instant)
        #expect(CalendarUTC.periodStart(period, containing: t) == Self.ts(start))
        let expectedEnd = end.hasPrefix("10000")
            ? Timestamp(microsecondsSinceEpoch: Timestamp.distantFuture.microsecondsSinceEpoch + 1)
            : Self.ts(end)
        #expect(CalendarUTC.periodEnd(period, containing: t) == expectedEnd)
    }

    @Test(arguments: [
        (1, CalendarPeriod.month, "2026-01-31T10:00:00Z", "2026-02-28T10:00:00Z"),
        (1, .month, "2024-01-31T10:00:00Z", "2024-02-29T10:00:00Z"),
        (1, .month, "2026-03-31T10:00:00Z", "2026-04-30T10:00:00Z"),
        (1, .month, "2026-12-15T10:00:00Z", "2027-01-15T10:00:00Z"),
        (-1, .month, "2026-01-15T10:00:00Z", "2025-12-15T10:00:00Z"),
        (-1, .month, "2026-03-31T00:00:00Z", "2026-02-28T00:00:00Z"),
        (13, .month, "2026-01-31T00:00:00Z", "2027-02-28T00:00:00Z"),
        (-25, .month, "2026-01-31T00:00:00Z", "2023-12-31T00:00:00Z"),
        (0, .month, "2026-01-31T00:00:00.5Z", "2026-01-31T00:00:00.5Z"),
        (1, .year, "2024-02-29T08:00:00Z", "2025-02-28T08:00:00Z"),
        (4, .year, "2024-02-29T08:00:00Z", "2028-02-29T08:00:00Z"),
        (-124, .year, "2024-02-29T08:00:00Z", "1900-02-28T08:00:00Z"),
        (2, .week, "2026-11-20T10:00:00Z", "2026-12-04T10:00:00Z"),
        (-1, .day, "2026-03-01T10:00:00Z", "2026-02-28T10:00:00Z"),
        (1, .day, "2024-02-28T10:00:00Z", "2024-02-29T10:00:00Z"),
        (3, .hour, "2026-12-31T22:00:00Z", "2027-01-01T01:00:00Z"),
        (90, .minute, "2026-11-20T10:00:00Z", "2026-11-20T11:30:00Z"),
    ])
    func adding(count: Int, period: CalendarPeriod, from: String, to: String) {
        #expect(CalendarUTC.adding(count, period, to: Self.ts(from)) == Self.ts(to))
    }

    @Test func civilConversions() {
        let c = CalendarUTC.civil(from: Self.ts("2026-11-20T10:17:42.123456Z"))
        #expect(c == CalendarUTC.Civil(year: 2026, month: 11, day: 20, hour: 10, minute: 17, second: 42, microsecond: 123_456))
        #expect(CalendarUTC.civil(from: Timestamp(microsecondsSinceEpoch: -1))
            == CalendarUTC.Civil(year: 1969, month: 12, day: 31, hour: 23, minute: 59, second: 59, microsecond: 999_999))
        #expect(CalendarUTC.timestamp(from: CalendarUTC.Civil(year: 1970, month: 1, day: 1)).microsecondsSinceEpoch == 0)
        // Out-of-range fields carry.
        #expect(CalendarUTC.timestamp(from: CalendarUTC.Civil(year: 2026, month: 13, day: 1)) == Self.ts("2027-01-01T00:00:00Z"))
        #expect(CalendarUTC.timestamp(from: CalendarUTC.Civil(year: 2026, month: 0, day: 1)) == Self.ts("2025-12-01T00:00:00Z"))
        #expect(CalendarUTC.timestamp(from: CalendarUTC.Civil(year: 2024, month: 3, day: 0)) == Self.ts("2024-02-29T00:00:00Z"))
        #expect(CalendarUTC.timestamp(from: CalendarUTC.Civil(year: 2026, month: 11, day: 20, hour: 24)) == Self.ts("2026-11-21T00:00:00Z"))
    }

    @Test func leapYears() {
        #expect(CalendarUTC.isLeapYear(2000))
        #expect(!CalendarUTC.isLeapYear(1900))
        #expect(CalendarUTC.isLeapYear(2024))
        #expect(!CalendarUTC.isLeapYear(2026))
        #expect(!CalendarUTC.isLeapYear(2100))
        #expect(CalendarUTC.daysInMonth(year: 2000, month: 2) == 29)
        #expect(CalendarUTC.daysInMonth(year: 1900, month: 2) == 28)
        #expect(CalendarUTC.daysInMonth(year: 2024, month: 2) == 29)
        #expect(CalendarUTC.daysInMonth(year: 2026, month: 4) == 30)
        #expect(CalendarUTC.daysInMonth(year: 2026, month: 12) == 31)
    }

    /// Day-by-day walk over 0001…9999 boundaries and random instants: civil ↔ timestamp agree,
    /// and every period's start ≤ t < end with start aligned as the period requires.
    @Test func consecutiveDaysProperty() {
        // Walk days across several centuries checking civil dates advance one day at a time.
        var previous = CalendarUTC.civil(from: Self.ts("1599-12-25T00:00:00Z"))
        var t = Self.ts("1599-12-26T00:00:00Z")
        for _ in 0..<200_000 {
            let c = CalendarUTC.civil(from: t)
            if previous.day == CalendarUTC.daysInMonth(year: previous.year, month: previous.month) {
                #expect(c.day == 1)
                #expect(c.month == previous.month % 12 + 1)
                #expect(c.year == previous.year + (previous.month == 12 ? 1 : 0))
            } else {
                #expect(c.day == previous.day + 1 && c.month == previous.month && c.year == previous.year)
            }
            previous = c
            t = CalendarUTC.adding(1, .day, to: t)
        }
    }

    @Test func periodProperty() {
        var rng = CoreValueTestRNG(seed: 2026)
        let low = Timestamp.distantPast.microsecondsSinceEpoch
        let high = CalendarUTC.adding(-1, .year, to: Timestamp.distantFuture).microsecondsSinceEpoch
        for _ in 0..<10_000 {
            let t = Timestamp(microsecondsSinceEpoch: Int64.random(in: low...high, using: &rng))
            for period in CalendarPeriod.allCases {
                let start = CalendarUTC.periodStart(period, containing: t)
                let end = CalendarUTC.periodEnd(period, containing: t)
                #expect(start <= t && t < end)
                #expect(CalendarUTC.periodStart(period, containing: start) == start)
                #expect(CalendarUTC.periodStart(period, containing: end) == end)
                #expect(CalendarUTC.periodStart(period, containing: end.adding(microseconds: -1)) == start)
                let c = CalendarUTC.civil(from: start)
                #expect(c.microsecond == 0)
                switch period {
                case .minute: #expect(c.second == 0)
                case .hour: #expect(c.minute == 0 && c.second == 0)
                case .day: #expect(c.hour == 0 && c.minute == 0)
                case .week:
                    #expect(c.hour == 0)
                    // Monday: days since 1970-01-05 (a Monday) divisible by 7.
                    let days = (start.microsecondsSinceEpoch / 86_400_000_000) - 4
                    #expect(days % 7 == 0)
                    #expect(end.microsecondsSinceEpoch - start.microsecondsSinceEpoch == 604_800_000_000)
                case .month: #expect(c.day == 1 && c.hour == 0)
                case .year: #expect(c.month == 1 && c.day == 1 && c.hour == 0)
                }
            }
        }
    }
}
