/// A calendar period used for usage resets and history buckets. Raw values are the protocol's.
public enum CalendarPeriod: String, Sendable, CaseIterable {
    case minute = "MINUTE"
    case hour = "HOUR"
    case day = "DAY"
    case week = "WEEK"
    case month = "MONTH"
    case year = "YEAR"
}

/// The proleptic Gregorian calendar in UTC, with no time zones and no leap seconds.
///
/// Day arithmetic uses Howard Hinnant's `days_from_civil` / `civil_from_days`
/// (https://howardhinnant.github.io/date_algorithms.html): exact for every Int64 instant, no
/// tables, no loops.
public enum CalendarUTC {
    /// A broken-down UTC date and time.
    public struct Civil: Sendable, Hashable {
        public var year: Int
        public var month: Int
        public var day: Int
        public var hour: Int
        public var minute: Int
        public var second: Int
        public var microsecond: Int

        /// A civil date and time; the time defaults to midnight.
        public init(
            year: Int, month: Int, day: Int,
            hour: Int = 0, minute: Int = 0, second: Int = 0, microsecond: Int = 0
        ) {
            self.year = year
            self.month = month
            self.day = day
            self.hour = hour
            self.minute = minute
            self.second = second
            self.microsecond = microsecond
        }
    }

    static let microsPerMinute: Int64 = 60_000_000
    static let microsPerHour: Int64 = 3_600_000_000
    static let microsPerDay: Int64 = 86_400_000_000
    static let microsPerWeek: Int64 = 604_800_000_000

    /// The start of the calendar period containing `t`, in UTC. Weeks start on Monday (ISO 8601).
    public static func periodStart(_ period: CalendarPeriod, containing t: Timestamp) -> Timestamp {
        let micros = t.microsecondsSinceEpoch
        switch period {
        case .minute:
            return Timestamp(microsecondsSinceEpoch: floorDivide(micros, microsPerMinute) * microsPerMinute)
        case .hour:
            return Timestamp(microsecondsSinceEpoch: floorDivide(micros, microsPerHour) * microsPerHour)
        case .day:
            return Timestamp(microsecondsSinceEpoch: floorDivide(micros, microsPerDay) * microsPerDay)
        case .week:
            // 1970-01-01 was a Thursday: day 0 is 3 days after Monday.
            let days = floorDivide(micros, microsPerDay)
            let sinceMonday = floorModulo(days + 3, 7)
            return Timestamp(microsecondsSinceEpoch: (days - sinceMonday) * microsPerDay)
        case .month:
            let (year, month, _) = civilFromDays(floorDivide(micros, microsPerDay))
            return startOfDay(year: year, month: month, day: 1)
        case .year:
            let (year, _, _) = civilFromDays(floorDivide(micros, microsPerDay))
            return startOfDay(year: year, month: 1, day: 1)
        }
    }

    /// The start of the period after the one containing `t`: the exclusive end of `t`'s period.
    public static func periodEnd(_ period: CalendarPeriod, containing t: Timestamp) -> Timestamp {
        adding(1, period, to: periodStart(period, containing: t))
    }

    /// `t` moved by `count` periods (backwards when negative). Minutes to weeks are fixed
    /// lengths; months and years keep the time of day and clamp the day to the target month
    /// (Jan 31 + 1 month = Feb 28 or 29; Feb 29 + 1 year = Feb 28). Traps on Int64 overflow.
    public static func adding(_ count: Int, _ period: CalendarPeriod, to t: Timestamp) -> Timestamp {
        let micros = t.microsecondsSinceEpoch
        switch period {
        case .minute: return Timestamp(microsecondsSinceEpoch: micros + Int64(count) * microsPerMinute)
        case .hour: return Timestamp(microsecondsSinceEpoch: micros + Int64(count) * microsPerHour)
        case .day: return Timestamp(microsecondsSinceEpoch: micros + Int64(count) * microsPerDay)
        case .week: return Timestamp(microsecondsSinceEpoch: micros + Int64(count) * microsPerWeek)
        case .month: return addingMonths(count, to: t)
        case .year: return addingMonths(count * 12, to: t)
        }
    }

    /// The UTC civil date and time of `t`.
    public static func civil(from t: Timestamp) -> Civil {
        let micros = t.microsecondsSinceEpoch
        let days = floorDivide(micros, microsPerDay)
        let ofDay = floorModulo(micros, microsPerDay)
        let (year, month, day) = civilFromDays(days)
        let seconds = Int(ofDay / 1_000_000)
        return Civil(
            year: year, month: month, day: day,
            hour: seconds / 3600, minute: seconds / 60 % 60, second: seconds % 60,
            microsecond: Int(ofDay % 1_000_000))
    }

    /// The instant of `c` in UTC. Fields out of their usual range are carried arithmetically
    /// (month 13 is January of the next year, day 0 the last day of the previous month, hour 24
    /// the next midnight), so this is total. Traps on Int64 overflow.
    public static func timestamp(from c: Civil) -> Timestamp {
        let monthIndex = c.month - 1
        let year = c.year + floorDivide(monthIndex, 12)
        let month = floorModulo(monthIndex, 12) + 1
        let days = Int64(daysFromCivil(year: year, month: month, day: 1) + (c.day - 1))
        let seconds = Int64(c.hour) * 3600 + Int64(c.minute) * 60 + Int64(c.second)
        return Timestamp(
            microsecondsSinceEpoch: days * microsPerDay + seconds * 1_000_000 + Int64(c.microsecond))
    }

    /// True for Gregorian leap years: divisible by 4, except centuries not divisible by 400.
    public static func isLeapYear(_ year: Int) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    /// Days in `month` (1–12) of `year`.
    public static func daysInMonth(year: Int, month: Int) -> Int {
        precondition((1...12).contains(month), "month \(month) out of 1...12")
        switch month {
        case 2: return isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // MARK: Internals

    private static func startOfDay(year: Int, month: Int, day: Int) -> Timestamp {
        Timestamp(microsecondsSinceEpoch: Int64(daysFromCivil(year: year, month: month, day: day)) * microsPerDay)
    }

    private static func addingMonths(_ count: Int, to t: Timestamp) -> Timestamp {
        let days = floorDivide(t.microsecondsSinceEpoch, microsPerDay)
        let ofDay = floorModulo(t.microsecondsSinceEpoch, microsPerDay)
        let (year, month, day) = civilFromDays(days)
        let monthIndex = year * 12 + (month - 1) + count
        let newYear = floorDivide(monthIndex, 12)
        let newMonth = floorModulo(monthIndex, 12) + 1
        let newDay = Swift.min(day, daysInMonth(year: newYear, month: newMonth))
        let newDays = Int64(daysFromCivil(year: newYear, month: newMonth, day: newDay))
        return Timestamp(microsecondsSinceEpoch: newDays * microsPerDay + ofDay)
    }

    /// Days since 1970-01-01 of the proleptic Gregorian date (Hinnant's `days_from_civil`).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400  // [0, 399]
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1  // [0, 365]
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear  // [0, 146096]
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The proleptic Gregorian date `days` after 1970-01-01 (Hinnant's `civil_from_days`).
    static func civilFromDays(_ days: Int64) -> (year: Int, month: Int, day: Int) {
        let z = Int(days) + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097  // [0, 146096]
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365  // [0, 399]
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)  // [0, 365]
        let mp = (5 * dayOfYear + 2) / 153  // [0, 11], March-based
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    static func floorDivide(_ a: Int, _ b: Int) -> Int {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    /// The remainder with the sign of `b`; never overflows, unlike `a - floorDivide(a, b) * b`
    /// near `Int64.min`.
    static func floorModulo(_ a: Int64, _ b: Int64) -> Int64 {
        let r = a % b
        return (r != 0 && (r < 0) != (b < 0)) ? r + b : r
    }

    static func floorModulo(_ a: Int, _ b: Int) -> Int {
        let r = a % b
        return (r != 0 && (r < 0) != (b < 0)) ? r + b : r
    }
}
