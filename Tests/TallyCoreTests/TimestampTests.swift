import Testing
import TallyCore

@Suite struct TimestampTests {
    static func micros(_ civil: CalendarUTC.Civil) -> Int64 {
        CalendarUTC.timestamp(from: civil).microsecondsSinceEpoch
    }

    @Test(arguments: [
        ("1970-01-01T00:00:00Z", Int64(0)),
        ("1970-01-01T00:00:00.000001Z", 1),
        ("1969-12-31T23:59:59.999999Z", -1),
        ("2026-11-20T10:00:00Z", 1_795_168_800_000_000),
        ("2026-11-20T10:00:00.000Z", 1_795_168_800_000_000),
        ("2026-11-20t10:00:00z", 1_795_168_800_000_000),
        ("2026-11-20T15:30:00+05:30", 1_795_168_800_000_000),
        ("2026-11-20T04:15:00-05:45", 1_795_168_800_000_000),
        ("2026-11-20T10:00:00-00:00", 1_795_168_800_000_000),
        ("2026-11-20T10:00:00+00:00", 1_795_168_800_000_000),
        ("2026-11-21T09:59:00+23:59", 1_795_168_800_000_000),
        ("2026-11-20T10:00:00.5Z", 1_795_168_800_500_000),
        ("2026-11-20T10:00:00.123456789Z", 1_795_168_800_123_456),
        ("2026-11-20T10:00:00.999999999Z", 1_795_168_800_999_999),
        ("2026-11-20T10:00:00.1234567+01:00", 1_795_165_200_123_456),
        // RFC 3339's time-secfrac is "." 1*DIGIT: any number of digits, truncated to microseconds.
        ("2026-11-20T10:00:00.1234567890Z", 1_795_168_800_123_456),
        ("2026-11-20T10:00:00.00000199999999999999999999Z", 1_795_168_800_000_001),
        ("2000-02-29T00:00:00Z", 951_782_400_000_000),
        ("2024-02-29T12:00:00Z", 1_709_208_000_000_000),
        ("0001-01-01T00:00:00Z", -62_135_596_800_000_000),
        ("9999-12-31T23:59:59.999999Z", 253_402_300_799_999_999),
        ("9999-12-31T23:59:59.9999999Z", 253_402_300_799_999_999),
        ("1900-03-01T00:00:00Z", -2_203_891_200_000_000),
        ("0001-01-01T05:00:00+05:00", -62_135_596_800_000_000),
        ("9999-12-31T18:59:59.999999-05:00", 253_402_300_799_999_999),
    ])
    func parses(text: String, micros: Int64) throws {
        #expect(try Timestamp(parsingRFC3339: text).microsecondsSinceEpoch == micros)
        #expect(try Timestamp(parsingRFC3339: text[...]).microsecondsSinceEpoch == micros)
    }

    @Test(arguments: [
        ("", "expected a 4-digit year"),
        ("26-11-20T10:00:00Z", "expected a 4-digit year"),
        ("x026-11-20T10:00:00Z", "expected a 4-digit year"),
        ("20261-11-20T10:00:00Z", "the year must have exactly 4 digits"),
        ("0000-01-01T00:00:00Z", "year 0000 does not exist (years are 0001–9999)"),
        ("2026/11/20T10:00:00Z", "expected '-' between year, month and day"),
        ("2026-11/20T10:00:00Z", "expected '-' between year, month and day"),
        ("2026-1-05T10:00:00Z", "expected a 2-digit month"),
        ("2026-011-05T10:00:00Z", "expected a 2-digit month"),
        ("2026-00-05T10:00:00Z", "month must be 01–12"),
        ("2026-13-05T10:00:00Z", "month must be 01–12"),
        ("2026-11-5T10:00:00Z", "expected a 2-digit day"),
        ("2026-11", "expected '-' between year, month and day"),
        ("2026-11-", "expected a 2-digit day"),
        ("2026-11-00T10:00:00Z", "day does not exist in that month"),
        ("2026-11-31T10:00:00Z", "day does not exist in that month"),
        ("2026-02-29T10:00:00Z", "day does not exist in that month"),
        ("1900-02-29T10:00:00Z", "day does not exist in that month"),
        ("2023-02-29T10:00:00Z", "day does not exist in that month"),
        ("2026-11-20", "expected 'T' between date and time"),
        ("2026-11-20 10:00:00Z", "expected 'T' between date and time"),
        ("2026-11-20T1:00:00Z", "expected a 2-digit hour"),
        ("2026-11-20T24:00:00Z", "hour must be 00–23"),
        ("2026-11-20T10-00:00Z", "expected ':' between hour, minute and second"),
        ("2026-11-20T10:00", "expected ':' between hour, minute and second"),
        ("2026-11-20T10:0:00Z", "expected a 2-digit minute"),
        ("2026-11-20T10:60:00Z", "minute must be 00–59"),
        ("2026-11-20T10:00:0Z", "expected a 2-digit second"),
        ("2026-11-20T10:00:000Z", "expected a 2-digit second"),
        ("2026-11-20T10:00:60Z", "leap second 60 is not supported"),
        ("2016-12-31T23:59:60Z", "leap second 60 is not supported"),
        ("2026-11-20T10:00:61Z", "second must be 00–59"),
        ("2026-11-20T10:00:00.Z", "expected a fractional digit after '.'"),
        ("2026-11-20T10:00:00.+01:00", "expected a fractional digit after '.'"),
        ("2026-11-20T10:00:00", "missing time zone (Z or ±hh:mm)"),
        ("2026-11-20T10:00:00.123", "missing time zone (Z or ±hh:mm)"),
        ("2026-11-20T10:00:00 Z", "expected a time zone Z or ±hh:mm"),
        ("2026-11-20T10:00:00UTC", "expected a time zone Z or ±hh:mm"),
        ("2026-11-20T10:00:00+0530", "expected a time zone Z or ±hh:mm"),
        ("2026-11-20T10:00:00+05", "expected a time zone Z or ±hh:mm"),
        ("2026-11-20T10:00:00+5:30", "expected a time zone Z or ±hh:mm"),
        ("2026-11-20T10:00:00+24:00", "time zone offset must be within ±23:59"),
        ("2026-11-20T10:00:00+05:60", "time zone offset must be within ±23:59"),
        ("2026-11-20T10:00:00Zjunk", "unexpected characters after the time zone"),
        ("2026-11-20T10:00:00Z ", "unexpected characters after the time zone"),
        ("2026-11-20T10:00:00+05:30:00", "unexpected characters after the time zone"),
        ("0001-01-01T00:00:00+00:01",
         "the instant is outside 0001-01-01T00:00:00Z…9999-12-31T23:59:59.999999Z"),
        ("9999-12-31T23:59:59-00:01",
         "the instant is outside 0001-01-01T00:00:00Z…9999-12-31T23:59:59.999999Z"),
    ])
    func rejects(text: String, reason: String) {
        #expect(throws: TimestampError(text: text, reason: reason)) {
            try Timestamp(parsingRFC3339: text)
        }
    }

    @Test func errorDescription() {
        #expect(throws: TimestampError.self) { try Timestamp(parsingRFC3339: "2026-11-20T10:00:00") }
        do {
            _ = try Timestamp(parsingRFC3339: "2026-11-20T10:00:00")
        } catch {
            #expect(error.description
                == "\"2026-11-20T10:00:00\" is not an RFC 3339 timestamp: missing time zone (Z or ±hh:mm)")
        }
        do {
            _ = try Timestamp(parsingRFC3339: "2026-11-20T10:00:00Z" + String(repeating: "!", count: 100))
        } catch {
            #expect(error.text.count == 64)
        }
    }

    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00.000Z"),
        (1_795_168_800_000_000, "2026-11-20T10:00:00.000Z"),
        (1_795_168_800_123_000, "2026-11-20T10:00:00.123Z"),
        (1_795_168_800_123_456, "2026-11-20T10:00:00.123456Z"),
        (1_795_168_800_000_001, "2026-11-20T10:00:00.000001Z"),
        (-1, "1969-12-31T23:59:59.999999Z"),
        (-1_000, "1969-12-31T23:59:59.999Z"),
        (951_782_400_000_000, "2000-02-29T00:00:00.000Z"),
        (-62_135_596_800_000_000, "0001-01-01T00:00:00.000Z"),
        (253_402_300_799_999_999, "9999-12-31T23:59:59.999999Z"),
        (-62_135_596_800_000_001, "0000-12-31T23:59:59.999999Z"),
        (253_402_300_800_000_000, "10000-01-01T00:00:00.000Z"),
        (-62_198_755_200_000_000, "-0001-01-01T00:00:00.000Z"),
    ])
    func formats(micros: Int64, text: String) {
        let t = Timestamp(microsecondsSinceEpoch: micros)
        #expect(t.rfc3339 == text)
        #expect(t.description == text)
    }

    @Test func extremesFormatWithoutTrapping() {
        #expect(!Timestamp(microsecondsSinceEpoch: .max).rfc3339.isEmpty)
        #expect(!Timestamp(microsecondsSinceEpoch: .min).rfc3339.isEmpty)
    }

    @Test func constantsAndArithmetic() throws {
        #expect(Timestamp.distantPast == (try Timestamp(parsingRFC3339: "0001-01-01T00:00:00Z")))
        #expect(Timestamp.distantFuture == (try Timestamp(parsingRFC3339: "9999-12-31T23:59:59.999999Z")))
        #expect(Timestamp(secondsSinceEpoch: 1_795_168_800).rfc3339 == "2026-11-20T10:00:00.000Z")
        let t = Timestamp(secondsSinceEpoch: 10)
        #expect(t.adding(microseconds: 5).microsecondsSinceEpoch == 10_000_005)
        #expect(t.adding(microseconds: -10_000_000) == Timestamp(microsecondsSinceEpoch: 0))
        #expect(Timestamp.distantPast < t && t < Timestamp.distantFuture)
        #expect([Timestamp(secondsSinceEpoch: 3), Timestamp(secondsSinceEpoch: 1)].sorted()
            == [Timestamp(secondsSinceEpoch: 1), Timestamp(secondsSinceEpoch: 3)])
    }

    /// Every instant in range formats, parses back to itself, and matches CalendarUTC.civil.
    @Test func roundTripProperty() throws {
        var rng = CoreValueTestRNG(seed: 0x5EED)
        let low = Timestamp.distantPast.microsecondsSinceEpoch
        let high = Timestamp.distantFuture.microsecondsSinceEpoch
        for iteration in 0..<20_000 {
            var micros = Int64.random(in: low...high, using: &rng)
            if iteration % 3 == 0 { micros -= micros % 1_000 }  // millisecond-precise
            if iteration % 3 == 1 { micros -= micros % 1_000_000 }  // whole seconds
            micros = Swift.max(low, micros)
            let t = Timestamp(microsecondsSinceEpoch: micros)
            let text = t.rfc3339
            #expect(text.utf8.count == (micros % 1_000 == 0 ? 24 : 27), "\(text)")
            #expect(try Timestamp(parsingRFC3339: text) == t, "\(text)")
            let c = CalendarUTC.civil(from: t)
            #expect(CalendarUTC.timestamp(from: c) == t)
            // The same instant written with a random offset parses to the same value.
            let offsetMinutes = Int.random(in: -(23 * 60 + 59) ... (23 * 60 + 59), using: &rng)
            let local = t.adding(microseconds: Int64(offsetMinutes) * 60_000_000)
            guard local >= Timestamp.distantPast, local <= Timestamp.distantFuture else { continue }
            let localText = String(local.rfc3339.dropLast())
            let sign = offsetMinutes < 0 ? "-" : "+"
            let h = abs(offsetMinutes) / 60
            let m = abs(offsetMinutes) % 60
            let zone = "\(sign)\(h < 10 ? "0" : "")\(h):\(m < 10 ? "0" : "")\(m)"
            #expect(try Timestamp(parsingRFC3339: localText + zone) == t, "\(localText + zone)")
        }
    }
}
