/// An exact decimal number in fixed point: `units` counts 10^-12 of one.
///
/// Money and usage are never held in `Double`: every value the ledger stores, sums or prints is
/// an integer count of 10^-12, so `0.1 + 0.2` is exactly `0.3` and a balance read twice is the
/// same string twice. Parsing rejects what it cannot hold exactly instead of rounding.
public struct Amount: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Digits after the decimal point that an `Amount` holds exactly.
    public static let fractionDigits = 12
    /// `units` in one whole: 10^fractionDigits.
    public static let unitsPerOne: Int128 = 1_000_000_000_000
    /// Exclusive bound on the magnitude of one parsed value: 10^21 (21 integer digits, the
    /// contract requires at least 20). Sums may exceed it; they are overflow-checked against
    /// `Int128` separately.
    public static let maxMagnitude = Amount(units: maxMagnitudeUnits)
    /// Zero.
    public static let zero = Amount(units: 0)

    /// 10^33: 10^21 whole units of 10^12 units each. Far below `Int128.max` (about 1.7 × 10^38),
    /// so a parsed value always fits and a sum of two never overflows.
    static let maxIntegerDigits = 21
    static let maxMagnitudeUnits: Int128 = 1_000_000_000_000_000_000_000 * unitsPerOne

    /// The value in 10^-12 of one.
    public let units: Int128

    /// The amount `units` × 10^-12. Any `Int128` is accepted, also beyond `maxMagnitude`.
    public init(units: Int128) {
        self.units = units
    }

    /// The whole number `integer`. Cannot overflow: |Int.min| × 10^12 < 10^32.
    public init(_ integer: Int) {
        self.units = Int128(integer) * Amount.unitsPerOne
    }

    /// Parses a JSON number text or a decimal string: an optional `-`, an integer part without
    /// leading zeros (`0` alone is fine), an optional fraction of at least one digit, an optional
    /// exponent (`e`/`E`, optional sign, at least one digit). `"12.5"`, `"-3"`, `"1e3"`,
    /// `"1.5E-2"` and `"12.50"` are accepted.
    ///
    /// - Throws: `AmountError` with kind `.malformed` for anything else (`""`, `"+1"`, `" 1"`,
    ///   `"1."`, `".5"`, `"007"`, `"NaN"`, `"1e"`); `.tooManyFractionDigits` when the value needs
    ///   more than 12 fractional digits once the exponent is applied (trailing zeros do not
    ///   count); `.outOfRange` when the magnitude is 10^21 or more. Huge exponents are classified
    ///   without looping or allocating proportionally to them.
    public init(parsing text: some StringProtocol) throws(AmountError) {
        let result: ParseOutcome
        if let fast = text.utf8.withContiguousStorageIfAvailable({ Amount.parse($0) }) {
            result = fast
        } else {
            let bytes = Array(text.utf8)
            result = bytes.withUnsafeBufferPointer { Amount.parse($0) }
        }
        switch result {
        case .value(let units):
            self.units = units
        case .failure(let kind):
            throw AmountError(kind: kind, text: String(text))
        }
    }

    /// Canonical text: no exponent, no `+`, no trailing fractional zeros, `"0"` for zero (never
    /// `"-0"`). `Amount(parsing: a.description) == a` for every `a` within `maxMagnitude`.
    public var description: String {
        let magnitude = units.magnitude
        let one = UInt128(Amount.unitsPerOne)
        let whole = magnitude / one
        var fraction = magnitude % one
        var text = units < 0 ? "-" : ""
        text += String(whole)
        if fraction != 0 {
            var digits = Amount.fractionDigits
            while fraction % 10 == 0 {
                fraction /= 10
                digits -= 1
            }
            let fractionText = String(fraction)
            text += "."
            text += String(repeating: "0", count: digits - fractionText.utf8.count)
            text += fractionText
        }
        return text
    }

    // MARK: Arithmetic

    /// The sum. Traps on `Int128` overflow: amounts that large mean a broken invariant.
    public static func + (a: Amount, b: Amount) -> Amount {
        guard let sum = a.adding(b) else { preconditionFailure("Amount overflow: \(a) + \(b)") }
        return sum
    }

    /// The difference. Traps on `Int128` overflow.
    public static func - (a: Amount, b: Amount) -> Amount {
        guard let difference = a.subtracting(b) else {
            preconditionFailure("Amount overflow: \(a) - \(b)")
        }
        return difference
    }

    /// The negation. Traps only for `Int128.min` units, which no parsed value reaches.
    public static prefix func - (a: Amount) -> Amount {
        Amount(units: -a.units)
    }

    /// The sum, or nil when it overflows `Int128` units.
    public func adding(_ other: Amount) -> Amount? {
        let (sum, overflow) = units.addingReportingOverflow(other.units)
        return overflow ? nil : Amount(units: sum)
    }

    /// The difference, or nil when it overflows `Int128` units.
    public func subtracting(_ other: Amount) -> Amount? {
        let (difference, overflow) = units.subtractingReportingOverflow(other.units)
        return overflow ? nil : Amount(units: difference)
    }

    /// The exact product, or nil when it needs more than 12 fractional digits or its units do not
    /// fit `Int128`. Uses the full 256-bit product, so it never rounds and never traps.
    public func multipliedExactly(by other: Amount) -> Amount? {
        let negative = (units < 0) != (other.units < 0)
        let product = units.magnitude.multipliedFullWidth(by: other.units.magnitude)
        let divisor = UInt128(Amount.unitsPerOne)
        // The quotient fits in 128 bits exactly when the high half is below the divisor.
        guard product.high < divisor else { return nil }
        let (quotient, remainder) = divisor.dividingFullWidth(product)
        guard remainder == 0 else { return nil }
        if negative {
            guard quotient <= Int128.min.magnitude else { return nil }
            return Amount(units: quotient == Int128.min.magnitude ? .min : -Int128(quotient))
        }
        guard quotient <= UInt128(Int128.max) else { return nil }
        return Amount(units: Int128(quotient))
    }

    /// True when the magnitude is below `maxMagnitude` (10^21), the bound of one parsed value.
    /// A computed amount that is recorded as one value (a deduction's cost) is held to it too.
    public var isBelowMaxMagnitude: Bool { units.magnitude < Amount.maxMagnitudeUnits.magnitude }

    // MARK: Sign and order

    /// True below zero.
    public var isNegative: Bool { units < 0 }
    /// True at zero.
    public var isZero: Bool { units == 0 }
    /// True above zero.
    public var isPositive: Bool { units > 0 }
    /// -1, 0 or 1.
    public var signum: Int { units < 0 ? -1 : (units == 0 ? 0 : 1) }

    public static func < (a: Amount, b: Amount) -> Bool { a.units < b.units }

    /// The smaller of two amounts.
    public static func min(_ a: Amount, _ b: Amount) -> Amount { b.units < a.units ? b : a }
    /// The larger of two amounts.
    public static func max(_ a: Amount, _ b: Amount) -> Amount { b.units > a.units ? b : a }

    // MARK: Parsing

    private static func isDigit(_ byte: UInt8) -> Bool { byte &- UInt8(ascii: "0") < 10 }

    /// The grammar is JSON's number: `-? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?`.
    /// One pass finds the digit ranges and the exponent; the value is classified from digit
    /// counts alone, and only then are at most 33 significant digits accumulated.
    private enum ParseOutcome {
        case value(Int128)
        case failure(AmountError.Kind)
    }

    private static func parse(_ b: UnsafeBufferPointer<UInt8>) -> ParseOutcome {
        let count = b.count
        var i = 0
        var negative = false
        if i < count, b[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        // Integer part.
        let integerStart = i
        guard i < count, isDigit(b[i]) else { return .failure(.malformed) }
        if b[i] == UInt8(ascii: "0") {
            i += 1
            if i < count, isDigit(b[i]) { return .failure(.malformed) }  // leading zero
        } else {
            while i < count, isDigit(b[i]) { i += 1 }
        }
        let integerEnd = i
        // Fraction.
        var fractionStart = i
        var fractionEnd = i
        if i < count, b[i] == UInt8(ascii: ".") {
            i += 1
            fractionStart = i
            while i < count, isDigit(b[i]) { i += 1 }
            fractionEnd = i
            guard fractionEnd > fractionStart else { return .failure(.malformed) }
        }
        // Exponent, saturated: any exponent beyond ±2^50 classifies the same way as 2^50, since
        // digit counts (bounded by the input length) can never offset it.
        var exponent = 0
        if i < count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            var exponentNegative = false
            if i < count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
                exponentNegative = b[i] == UInt8(ascii: "-")
                i += 1
            }
            let exponentStart = i
            let saturation = 1 << 50
            while i < count, isDigit(b[i]) {
                if exponent < saturation { exponent = exponent * 10 + Int(b[i] &- UInt8(ascii: "0")) }
                i += 1
            }
            guard i > exponentStart else { return .failure(.malformed) }
            if exponentNegative { exponent = -exponent }
        }
        guard i == count else { return .failure(.malformed) }

        // Digits d_0 … d_{n-1} over the integer then fraction ranges; value = D × 10^(exponent -
        // fractionCount). Locate the first and last nonzero digits.
        let integerCount = integerEnd - integerStart
        let fractionCount = fractionEnd - fractionStart
        let totalDigits = integerCount + fractionCount
        @inline(__always) func digit(_ k: Int) -> UInt8 {
            k < integerCount ? b[integerStart + k] : b[fractionStart + k - integerCount]
        }
        var first = 0
        while first < totalDigits, digit(first) == UInt8(ascii: "0") { first += 1 }
        if first == totalDigits { return .value(0) }  // zero, whatever the exponent or sign
        var last = totalDigits - 1
        while digit(last) == UInt8(ascii: "0") { last -= 1 }
        let significant = last - first + 1
        // value = M × 10^power, M having `significant` digits and no trailing zero.
        let power = exponent - fractionCount + (totalDigits - 1 - last)
        if significant + power > maxIntegerDigits { return .failure(.outOfRange) }
        if power + fractionDigits < 0 { return .failure(.tooManyFractionDigits) }
        // Now significant + power + 12 ≤ 33 digits: fits Int128 with room to spare.
        var units: Int128 = 0
        for k in first...last { units = units * 10 + Int128(digit(k) &- UInt8(ascii: "0")) }
        for _ in 0..<(power + fractionDigits) { units *= 10 }
        return .value(negative ? -units : units)
    }
}

/// Why a text is not an `Amount`.
public struct AmountError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The rule the text broke.
    public enum Kind: Sendable {
        /// Not a decimal number in JSON syntax.
        case malformed
        /// More than 12 significant fractional digits after applying the exponent.
        case tooManyFractionDigits
        /// Magnitude 10^21 or more.
        case outOfRange
    }

    /// The rule the text broke.
    public let kind: Kind
    /// The offending input, truncated to its first 64 characters.
    public let text: String

    /// How many characters the input had (`text` holds at most 64 of them).
    public let characters: Int

    /// Records `kind` for `text`, truncating `text` to 64 characters.
    public init(kind: Kind, text: String) {
        self.kind = kind
        self.text = InputExcerpt.prefix(text)
        self.characters = text.count
    }

    /// A sentence naming the input and the rule it broke.
    public var description: String {
        let quoted = InputExcerpt.quoted(text, characters: characters)
        return switch kind {
        case .malformed:
            "\(quoted) is not a decimal number"
        case .tooManyFractionDigits:
            "\(quoted) has more than \(Amount.fractionDigits) fractional digits"
        case .outOfRange:
            "\(quoted) is out of range (magnitude must be below 10^\(Amount.maxIntegerDigits))"
        }
    }
}

/// Hostile input quoted in a message: whole when short, else its first 64 characters and an
/// ellipsis, with the whole length, so a message neither bloats nor misstates the input.
public enum InputExcerpt {
    public static let charactersMax = 64

    /// The first 64 characters of `text`.
    public static func prefix(_ text: String) -> String { String(text.prefix(charactersMax)) }

    /// `text`, or its first 64 characters and `…`.
    public static func cut(_ text: String) -> String {
        text.count > charactersMax ? prefix(text) + "…" : text
    }

    /// `"text"`, or `"first 64…" (2001 characters)` for a longer input of `characters`.
    public static func quoted(_ prefix: String, characters: Int) -> String {
        characters > charactersMax ? "\"\(prefix)…\" (\(characters) characters)" : "\"\(prefix)\""
    }
}
