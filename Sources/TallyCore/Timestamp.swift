/// A UTC instant with microsecond precision: microseconds since 1970-01-01T00:00:00Z.
///
/// TallyCore never reads a clock; instants are parsed from requests or passed in by the engine.
/// Parsing and formatting are hand-written over UTF-8 bytes because every event carries one.
public struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    static let microsPerSecond: Int64 = 1_000_000
    static let microsPerDay: Int64 = 86_400_000_000

    /// Microseconds since 1970-01-01T00:00:00Z (negative before).
    public let microsecondsSinceEpoch: Int64

    /// The instant `microsecondsSinceEpoch` after the Unix epoch.
    public init(microsecondsSinceEpoch: Int64) {
        self.microsecondsSinceEpoch = microsecondsSinceEpoch
    }

    /// The instant `secondsSinceEpoch` after the Unix epoch. Traps if it overflows Int64
    /// microseconds (about ±292,000 years).
    public init(secondsSinceEpoch: Int64) {
        self.microsecondsSinceEpoch = secondsSinceEpoch * Timestamp.microsPerSecond
    }

    /// 0001-01-01T00:00:00Z, the earliest instant RFC 3339 text can name.
    public static let distantPast = Timestamp(microsecondsSinceEpoch: -62_135_596_800_000_000)
    /// 9999-12-31T23:59:59.999999Z, the latest instant RFC 3339 text can name.
    public static let distantFuture = Timestamp(microsecondsSinceEpoch: 253_402_300_799_999_999)

    /// Parses RFC 3339: `YYYY-MM-DD('T'|'t')hh:mm:ss(.fraction)?('Z'|'z'|±hh:mm)`.
    ///
    /// The year has exactly 4 digits (0001–9999), the day must exist in its month (leap years
    /// included), hour 00–23, minute and second 00–59, a fraction has 1 or more digits (digits
    /// beyond microseconds are truncated) and the offset is required (`-00:00` means UTC).
    ///
    /// - Throws: `TimestampError` naming the first rule broken: a short or long field, a missing
    ///   separator, a value out of range, a leap second (`60`), a missing time zone, trailing
    ///   characters, or an instant outside `distantPast`…`distantFuture` once the offset is applied.
    public init(parsingRFC3339 text: some StringProtocol) throws(TimestampError) {
        let result: Result<Int64, Timestamp.ParseFailure>
        if let fast = text.utf8.withContiguousStorageIfAvailable({ Timestamp.parse($0) }) {
            result = fast
        } else {
            let bytes = Array(text.utf8)
            result = bytes.withUnsafeBufferPointer { Timestamp.parse($0) }
        }
        switch result {
        case .success(let micros):
            self.microsecondsSinceEpoch = micros
        case .failure(let failure):
            throw TimestampError(text: String(text), reason: failure.reason)
        }
    }

    /// True for instants of the years 0001–9999 (UTC): what params accept, and what `rfc3339` writes
    /// with a 4-digit year.
    public var hasFourDigitYear: Bool { self >= .distantPast && self <= .distantFuture }

    /// RFC 3339 in UTC with a `Z`: `2026-11-20T10:00:00.000Z`. Always 3 fractional digits, or 6
    /// when the instant has sub-millisecond microseconds. Years outside 0001–9999 (reachable only
    /// through `init(microsecondsSinceEpoch:)`) print with as many digits as they need.
    public var rfc3339: String {
        let days = CalendarUTC.floorDivide(microsecondsSinceEpoch, Timestamp.microsPerDay)
        let microsOfDay = CalendarUTC.floorModulo(microsecondsSinceEpoch, Timestamp.microsPerDay)
        let (year, month, day) = CalendarUTC.civilFromDays(days)
        let secondsOfDay = Int(microsOfDay / Timestamp.microsPerSecond)
        let micros = Int(microsOfDay % Timestamp.microsPerSecond)
        let sixDigits = micros % 1000 != 0
        guard (0...9999).contains(year) else {
            return slowFormat(year: year, month: month, day: day, secondsOfDay: secondsOfDay,
                              micros: micros, sixDigits: sixDigits)
        }
        let length = sixDigits ? 27 : 24
        return String(unsafeUninitializedCapacity: length) { buffer in
            @inline(__always) func put(_ value: Int, at offset: Int, digits: Int) {
                var value = value
                var position = offset + digits - 1
                while position >= offset {
                    buffer[position] = UInt8(truncatingIfNeeded: value % 10) &+ UInt8(ascii: "0")
                    value /= 10
                    position -= 1
                }
            }
            put(year, at: 0, digits: 4)
            buffer[4] = UInt8(ascii: "-")
            put(month, at: 5, digits: 2)
            buffer[7] = UInt8(ascii: "-")
            put(day, at: 8, digits: 2)
            buffer[10] = UInt8(ascii: "T")
            put(secondsOfDay / 3600, at: 11, digits: 2)
            buffer[13] = UInt8(ascii: ":")
            put(secondsOfDay / 60 % 60, at: 14, digits: 2)
            buffer[16] = UInt8(ascii: ":")
            put(secondsOfDay % 60, at: 17, digits: 2)
            buffer[19] = UInt8(ascii: ".")
            if sixDigits {
                put(micros, at: 20, digits: 6)
            } else {
                put(micros / 1000, at: 20, digits: 3)
            }
            buffer[length - 1] = UInt8(ascii: "Z")
            return length
        }
    }

    /// Same as `rfc3339`.
    public var description: String { rfc3339 }

    /// The instant `microseconds` later (earlier when negative). Traps on Int64 overflow.
    public func adding(microseconds: Int64) -> Timestamp {
        Timestamp(microsecondsSinceEpoch: microsecondsSinceEpoch + microseconds)
    }

    public static func < (a: Timestamp, b: Timestamp) -> Bool {
        a.microsecondsSinceEpoch < b.microsecondsSinceEpoch
    }

    private func slowFormat(
        year: Int, month: Int, day: Int, secondsOfDay: Int, micros: Int, sixDigits: Bool
    ) -> String {
        func padded(_ value: Int, _ digits: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: Swift.max(0, digits - text.count)) + text
        }
        let yearText = year < 0 ? "-" + padded(-year, 4) : padded(year, 4)
        let fraction = sixDigits ? padded(micros, 6) : padded(micros / 1000, 3)
        return "\(yearText)-\(padded(month, 2))-\(padded(day, 2))T\(padded(secondsOfDay / 3600, 2)):"
            + "\(padded(secondsOfDay / 60 % 60, 2)):\(padded(secondsOfDay % 60, 2)).\(fraction)Z"
    }

    // MARK: Parsing

    /// The reasons `init(parsingRFC3339:)` reports; each is a stable sentence fragment.
    struct ParseFailure: Error {
        let reason: String
        static let year = ParseFailure(reason: "expected a 4-digit year")
        static let yearTooLong = ParseFailure(reason: "the year must have exactly 4 digits")
        static let yearZero = ParseFailure(reason: "year 0000 does not exist (years are 0001–9999)")
        static let dateSeparator = ParseFailure(reason: "expected '-' between year, month and day")
        static let month = ParseFailure(reason: "expected a 2-digit month")
        static let monthRange = ParseFailure(reason: "month must be 01–12")
        static let day = ParseFailure(reason: "expected a 2-digit day")
        static let dayRange = ParseFailure(reason: "day does not exist in that month")
        static let timeSeparator = ParseFailure(reason: "expected 'T' between date and time")
        static let hour = ParseFailure(reason: "expected a 2-digit hour")
        static let hourRange = ParseFailure(reason: "hour must be 00–23")
        static let colon = ParseFailure(reason: "expected ':' between hour, minute and second")
        static let minute = ParseFailure(reason: "expected a 2-digit minute")
        static let minuteRange = ParseFailure(reason: "minute must be 00–59")
        static let second = ParseFailure(reason: "expected a 2-digit second")
        static let leapSecond = ParseFailure(reason: "leap second 60 is not supported")
        static let secondRange = ParseFailure(reason: "second must be 00–59")
        static let fraction = ParseFailure(reason: "expected a fractional digit after '.'")
        static let missingZone = ParseFailure(reason: "missing time zone (Z or ±hh:mm)")
        static let zone = ParseFailure(reason: "expected a time zone Z or ±hh:mm")
        static let zoneRange = ParseFailure(reason: "time zone offset must be within ±23:59")
        static let trailing = ParseFailure(reason: "unexpected characters after the time zone")
        static let instantRange = ParseFailure(
            reason: "the instant is outside 0001-01-01T00:00:00Z…9999-12-31T23:59:59.999999Z")
    }

    private static func parse(_ b: UnsafeBufferPointer<UInt8>) -> Result<Int64, ParseFailure> {
        let count = b.count
        @inline(__always) func digit(_ i: Int) -> Int? {
            guard i < count else { return nil }
            let d = b[i] &- UInt8(ascii: "0")
            return d < 10 ? Int(d) : nil
        }
        @inline(__always) func twoDigits(_ i: Int) -> Int? {
            guard let high = digit(i), let low = digit(i + 1) else { return nil }
            return high * 10 + low
        }
        @inline(__always) func byte(_ i: Int) -> UInt8? { i < count ? b[i] : nil }

        // Date.
        guard let y1 = digit(0), let y2 = digit(1), let y3 = digit(2), let y4 = digit(3) else {
            return .failure(.year)
        }
        if digit(4) != nil { return .failure(.yearTooLong) }
        let year = y1 * 1000 + y2 * 100 + y3 * 10 + y4
        if year == 0 { return .failure(.yearZero) }
        guard byte(4) == UInt8(ascii: "-") else { return .failure(.dateSeparator) }
        guard let month = twoDigits(5), digit(7) == nil else { return .failure(.month) }
        guard (1...12).contains(month) else { return .failure(.monthRange) }
        guard byte(7) == UInt8(ascii: "-") else { return .failure(.dateSeparator) }
        guard let day = twoDigits(8), digit(10) == nil else { return .failure(.day) }
        guard day >= 1, day <= CalendarUTC.daysInMonth(year: year, month: month) else {
            return .failure(.dayRange)
        }
        guard byte(10) == UInt8(ascii: "T") || byte(10) == UInt8(ascii: "t") else {
            return .failure(.timeSeparator)
        }
        // Time.
        guard let hour = twoDigits(11), digit(13) == nil else { return .failure(.hour) }
        guard hour < 24 else { return .failure(.hourRange) }
        guard byte(13) == UInt8(ascii: ":") else { return .failure(.colon) }
        guard let minute = twoDigits(14), digit(16) == nil else { return .failure(.minute) }
        guard minute < 60 else { return .failure(.minuteRange) }
        guard byte(16) == UInt8(ascii: ":") else { return .failure(.colon) }
        guard let second = twoDigits(17), digit(19) == nil else { return .failure(.second) }
        if second == 60 { return .failure(.leapSecond) }
        guard second < 60 else { return .failure(.secondRange) }
        var i = 19
        var micros = 0
        if byte(i) == UInt8(ascii: ".") {
            i += 1
            let start = i
            var scale = 100_000
            while let d = digit(i) {
                micros += d * scale  // beyond six digits scale is 0: truncated
                scale /= 10
                i += 1
            }
            // RFC 3339's `time-secfrac = "." 1*DIGIT`: any number of digits.
            guard i > start else { return .failure(.fraction) }
        }
        // Offset.
        var offsetMinutes = 0
        switch byte(i) {
        case nil:
            return .failure(.missingZone)
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            i += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            let sign = byte(i) == UInt8(ascii: "-") ? -1 : 1
            guard let offsetHour = twoDigits(i + 1), byte(i + 3) == UInt8(ascii: ":"),
                let offsetMinute = twoDigits(i + 4)
            else { return .failure(.zone) }
            guard offsetHour < 24, offsetMinute < 60 else { return .failure(.zoneRange) }
            offsetMinutes = sign * (offsetHour * 60 + offsetMinute)
            i += 6
        default:
            return .failure(.zone)
        }
        guard i == count else { return .failure(.trailing) }

        let days = Int64(CalendarUTC.daysFromCivil(year: year, month: month, day: day))
        let seconds = Int64(hour * 3600 + (minute - offsetMinutes) * 60 + second)
        let total = days * microsPerDay + seconds * microsPerSecond + Int64(micros)
        guard total >= distantPast.microsecondsSinceEpoch,
            total <= distantFuture.microsecondsSinceEpoch
        else { return .failure(.instantRange) }
        return .success(total)
    }
}

/// Why a text is not an RFC 3339 timestamp.
public struct TimestampError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The offending input, truncated to its first 64 characters.
    public let text: String
    /// The first rule the text broke, e.g. `missing time zone (Z or ±hh:mm)`.
    public let reason: String

    /// How many characters the input had (`text` holds at most 64 of them).
    public let characters: Int

    /// Records `reason` for `text`, truncating `text` to 64 characters.
    public init(text: String, reason: String) {
        self.text = InputExcerpt.prefix(text)
        self.characters = text.count
        self.reason = reason
    }

    /// `"<text>" is not an RFC 3339 timestamp: <reason>`.
    public var description: String { "\(InputExcerpt.quoted(text, characters: characters)) is not an RFC 3339 timestamp: \(reason)" }
}
