import Testing
import TallyCore

/// SplitMix64 (named uniquely so other test files may define their own): a tiny seeded generator so property loops are reproducible.
struct CoreValueTestRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct AmountTests {
    @Test(arguments: [
        ("12.5", Int128(12_500_000_000_000)),
        ("-3", -3_000_000_000_000),
        ("0", 0),
        ("-0", 0),
        ("0.0", 0),
        ("-0.000", 0),
        ("0.5", 500_000_000_000),
        ("0.000000000001", 1),
        ("-0.000000000001", -1),
        ("12.50", 12_500_000_000_000),
        ("1e3", 1_000_000_000_000_000),
        ("1E3", 1_000_000_000_000_000),
        ("1e+3", 1_000_000_000_000_000),
        ("1.5E-2", 15_000_000_000),
        ("1e-12", 1),
        ("100e-14", 1),
        ("0.1000000000000", 100_000_000_000),
        ("0.100000000000000000000", 100_000_000_000),
        ("123456789.123456789012", 123_456_789_123_456_789_012),
        ("999999999999999999999.999999999999", 999_999_999_999_999_999_999_999_999_999_999),
        ("-999999999999999999999.999999999999", -999_999_999_999_999_999_999_999_999_999_999),
        ("99999999999999999999", 99_999_999_999_999_999_999_000_000_000_000),
        ("1e20", 100_000_000_000_000_000_000_000_000_000_000),
        ("0.00000000000000000001e8", 1),
        ("0e999999999", 0),
        ("0e-999999999", 0),
        ("0.0000000000000e5", 0),
        ("12345e-3", 12_345_000_000_000),
    ])
    func parses(text: String, units: Int128) throws {
        #expect(try Amount(parsing: text) == Amount(units: units))
        #expect(try Amount(parsing: text[...]) == Amount(units: units))  // Substring
    }

    @Test(arguments: [
        "", "-", "+1", " 1", "1 ", "1.", ".5", "-.5", "0x10", "NaN", "Infinity", "-Infinity", "1e",
        "1e+", "1e-", "1.e3", "007", "00", "-01", "01.5", "1..2", "1.2.3", "1,5", "1_000", "--1",
        "1e3.5", "e3", "١", "1e3e3", "12a", "0.5 ",
    ])
    func rejectsMalformed(text: String) {
        #expect(throws: AmountError(kind: .malformed, text: text)) { try Amount(parsing: text) }
    }

    @Test(arguments: [
        "0.0000000000001", "-0.0000000000001", "1e-13", "1.5e-12", "0.1234567890123",
        "123.0000000000001", "1000000000000e-25", "1e-999999999", "1e-99999999999999999999999",
    ])
    func rejectsTooManyFractionDigits(text: String) {
        #expect(throws: AmountError(kind: .tooManyFractionDigits, text: text)) {
            try Amount(parsing: text)
        }
    }

    @Test(arguments: [
        "1000000000000000000000", "-1000000000000000000000", "1e21", "1e999999999",
        "1e99999999999999999999999999", "10e20", "1000000000000000000000.5",
        "0.001e24", "123456789012345678901234567890",
    ])
    func rejectsOutOfRange(text: String) {
        #expect(throws: AmountError(kind: .outOfRange, text: text)) { try Amount(parsing: text) }
    }

    @Test func maxMagnitudeEdges() throws {
        #expect(Amount.maxMagnitude.description == "1000000000000000000000")
        let largest = try Amount(parsing: "999999999999999999999.999999999999")
        #expect(largest.units == Amount.maxMagnitude.units - 1)
        #expect(largest < Amount.maxMagnitude)
        #expect(try Amount(parsing: "-999999999999999999999.999999999999") == -largest)
        // Sums of parsed values never overflow Int128 but may exceed maxMagnitude.
        #expect(largest + largest == Amount(units: 2 * Amount.maxMagnitude.units - 2))
    }

    @Test func errorDescriptions() {
        #expect(AmountError(kind: .tooManyFractionDigits, text: "0.0000000000001").description
            == "\"0.0000000000001\" has more than 12 fractional digits")
        #expect(AmountError(kind: .malformed, text: "abc").description == "\"abc\" is not a decimal number")
        #expect(AmountError(kind: .outOfRange, text: "1e21").description
            == "\"1e21\" is out of range (magnitude must be below 10^21)")
        let long = String(repeating: "9", count: 100)
        #expect(throws: AmountError(kind: .outOfRange, text: long)) {
            try Amount(parsing: long)
        }
        // A long input is quoted by its start, marked as cut, with its whole length: not misstated.
        #expect(AmountError(kind: .outOfRange, text: long).description
            == "\"\(String(repeating: "9", count: 64))…\" (100 characters) is out of range (magnitude must be below 10^21)")
        do {
            _ = try Amount(parsing: String(repeating: "x", count: 200))
            Issue.record("expected an error")
        } catch {
            #expect(error.text.count == 64)
            #expect(error.kind == .malformed)
        }
    }

    @Test(arguments: [
        (Int128(0), "0"),
        (1, "0.000000000001"),
        (-1, "-0.000000000001"),
        (12_500_000_000_000, "12.5"),
        (-3_000_000_000_000, "-3"),
        (100_000_000_000, "0.1"),
        (1_010_000_000_000, "1.01"),
        (123_456_789_012, "0.123456789012"),
        (1_000_000_000_000_000, "1000"),
        (Int128.max, "170141183460469231731687303.715884105727"),
        (Int128.min, "-170141183460469231731687303.715884105728"),
    ])
    func canonicalDescription(units: Int128, text: String) {
        #expect(Amount(units: units).description == text)
    }

    @Test func integerInitAndConstants() {
        #expect(Amount(5).description == "5")
        #expect(Amount(-42).units == -42 * Amount.unitsPerOne)
        #expect(Amount(Int.max).description == String(Int.max))
        #expect(Amount(Int.min).description == String(Int.min))
        #expect(Amount.zero.isZero && Amount.zero.signum == 0 && !Amount.zero.isNegative && !Amount.zero.isPositive)
        #expect(Amount(-1).isNegative && Amount(-1).signum == -1)
        #expect(Amount(units: 1).isPositive && Amount(units: 1).signum == 1)
        #expect(Amount.fractionDigits == 12)
    }

    @Test func arithmetic() throws {
        let a = try Amount(parsing: "0.1")
        let b = try Amount(parsing: "0.2")
        #expect(a + b == (try Amount(parsing: "0.3")))
        #expect(a - b == (try Amount(parsing: "-0.1")))
        #expect(-a == (try Amount(parsing: "-0.1")))
        #expect(-Amount.zero == Amount.zero)
        #expect((-Amount.zero).description == "0")
        #expect(a.adding(b) == (try Amount(parsing: "0.3")))
        #expect(a.subtracting(b) == (try Amount(parsing: "-0.1")))
    }

    @Test func overflowIsNil() {
        let max = Amount(units: .max)
        let min = Amount(units: .min)
        #expect(max.adding(Amount(units: 1)) == nil)
        #expect(max.adding(Amount.zero) == max)
        #expect(min.adding(Amount(units: -1)) == nil)
        #expect(min.subtracting(Amount(units: 1)) == nil)
        #expect(max.subtracting(Amount(units: -1)) == nil)
        #expect(Amount.zero.subtracting(min) == nil)
        #expect(Amount(units: -1).subtracting(max) == min)
        #expect(max.adding(min) == Amount(units: -1))
    }

    @Test func multipliedExactly() throws {
        func p(_ s: String) throws -> Amount { try Amount(parsing: s) }
        #expect(try p("0.000001").multipliedExactly(by: p("0.000001")) == p("0.000000000001"))
        #expect(try p("0.0000001").multipliedExactly(by: p("0.0000001")) == nil)
        #expect(try p("12.5").multipliedExactly(by: p("4")) == p("50"))
        #expect(try p("-1.5").multipliedExactly(by: p("0.2")) == p("-0.3"))
        #expect(try p("-1.5").multipliedExactly(by: p("-0.2")) == p("0.3"))
        #expect(try p("0").multipliedExactly(by: p("-123.456")) == Amount.zero)
        #expect(try (p("0").multipliedExactly(by: p("-123.456"))?.description) == "0")
        #expect(try p("0.333333333333").multipliedExactly(by: p("3")) == p("0.999999999999"))
        #expect(try p("0.333333333333").multipliedExactly(by: p("0.3")) == nil)
        #expect(try p("999999999999999999999").multipliedExactly(by: p("999999999999999999999")) == nil)
        // Exact products whose units exceed 128 bits before the division still work.
        let big = try p("100000000000000000000")  // 10^20 → 10^32 units
        #expect(try big.multipliedExactly(by: p("0.000001")) == p("100000000000000"))
        #expect(try big.multipliedExactly(by: p("1000000")) == Amount(units: 100_000_000_000_000_000_000_000_000_000_000_000_000))
        #expect(try big.multipliedExactly(by: p("10000000")) == nil)  // 10^39 units overflows Int128
        // Int128.min edge: exact negative result equal to Int128.min.
        #expect(Amount(units: .min).multipliedExactly(by: Amount(1)) == Amount(units: .min))
        #expect(Amount(units: .min).multipliedExactly(by: Amount(-1)) == nil)
        #expect(Amount(units: .max).multipliedExactly(by: Amount(-1)) == Amount(units: -.max))
    }

    @Test func comparison() throws {
        let values = try ["-10", "-0.000000000001", "0", "0.000000000001", "0.1", "1", "12.5", "1e3"]
            .map { try Amount(parsing: $0) }
        #expect(values == values.sorted())
        #expect(values.sorted(by: >) == values.reversed())
        #expect(Amount.min(Amount(1), Amount(2)) == Amount(1))
        #expect(Amount.max(Amount(1), Amount(2)) == Amount(2))
        #expect(Amount.min(Amount(-1), Amount(-2)) == Amount(-2))
        #expect(Amount.max(Amount(-1), Amount(-2)) == Amount(-1))
        #expect(try Amount(parsing: "12.50") == Amount(parsing: "12.5"))
        #expect(try Set([Amount(parsing: "1"), Amount(parsing: "1.000"), Amount(parsing: "1e0")]).count == 1)
    }

    /// Random values within maxMagnitude: description parses back to the same value and is
    /// canonical; exponent forms of the same digits parse to the same value.
    @Test func roundTripProperty() throws {
        var rng = CoreValueTestRNG(seed: 0x7A11_7A11)
        let bound = Amount.maxMagnitude.units
        for iteration in 0..<20_000 {
            // Mix magnitudes: small, 12-digit fractions, near the bound.
            let units: Int128
            switch iteration % 4 {
            case 0: units = Int128(Int64.random(in: -1_000_000 ... 1_000_000, using: &rng))
            case 1: units = Int128(Int64.random(in: .min ... .max, using: &rng))
            case 2: units = Int128.random(in: -bound + 1 ... bound - 1, using: &rng)
            default: units = (bound - 1 - Int128(UInt16.random(in: 0 ... .max, using: &rng))) * (rng.next() & 1 == 0 ? 1 : -1)
            }
            let amount = Amount(units: units)
            let text = amount.description
            #expect(try Amount(parsing: text) == amount, "\(text)")
            #expect(!text.hasPrefix("+") && !text.contains("e") && !text.hasSuffix("."))
            if text.contains(".") { #expect(!text.hasSuffix("0"), "\(text)") }
            // Shifting the point into an exponent gives the same value.
            let integer = units.magnitude
            let sign = units < 0 ? "-" : ""
            #expect(try Amount(parsing: "\(sign)\(integer)e-12") == amount, "\(sign)\(integer)e-12")
        }
    }

    /// Sums and differences of random parsed values agree with Int128 arithmetic on units.
    @Test func additionProperty() throws {
        var rng = CoreValueTestRNG(seed: 42)
        for _ in 0..<5_000 {
            let a = Amount(units: Int128(Int64.random(in: .min ... .max, using: &rng)))
            let b = Amount(units: Int128(Int64.random(in: .min ... .max, using: &rng)))
            #expect((a + b) - b == a)
            #expect(a + b == b + a)
            #expect(a.adding(-b) == a - b)
            // (a × 10^6) × 10^-6 exact round trip
            let million = Amount(1_000_000)
            let micro = try Amount(parsing: "0.000001")
            #expect(a.multipliedExactly(by: million)?.multipliedExactly(by: micro) == a)
        }
    }
}
