import TallyCore

/// A strict RFC 8259 JSON parser working directly on UTF-8 bytes.
///
/// Rejects invalid UTF-8, duplicate object keys, nesting deeper than `depthMax`, any number
/// outside the JSON grammar, bad escapes, unpaired surrogates, unescaped control characters,
/// and anything after the value. Numbers keep their exact text.
public enum JSONParser {
    public static let defaultDepthMax = 128

    /// Parses exactly one JSON value (surrounding whitespace allowed: space, tab, CR, LF only).
    /// Nesting is handled by recursion bounded by `depthMax`; keep it modest (hundreds, not millions).
    public static func parse(
        _ bytes: UnsafeRawBufferPointer, depthMax: Int = defaultDepthMax
    ) throws(JSONError) -> JSONValue {
        guard let raw = bytes.baseAddress, bytes.count > 0 else {
            throw JSONError(kind: .empty, offset: 0)
        }
        var parser = Parser(base: raw.assumingMemoryBound(to: UInt8.self), count: bytes.count, depthMax: depthMax)
        return try parser.parseDocument()
    }

    /// A JSON-RPC line: one value, or the elements of a top-level array each on its own.
    public enum Line {
        case value(JSONValue)
        /// An element holding an object with a duplicate key is that error; the others are values.
        case batch([Result<JSONValue, JSONError>])
    }

    /// Parses a line like `parse`, except that a duplicate key inside an element of a top-level
    /// array fails only that element (JSON-RPC 2.0 answers a batch element by element). Any other
    /// error, or a duplicate key outside a batch, fails the line.
    public static func parseLine(_ bytes: UnsafeRawBufferPointer, depthMax: Int = defaultDepthMax) throws(JSONError) -> Line {
        guard let raw = bytes.baseAddress, bytes.count > 0 else {
            throw JSONError(kind: .empty, offset: 0)
        }
        var parser = Parser(base: raw.assumingMemoryBound(to: UInt8.self), count: bytes.count, depthMax: depthMax)
        return try parser.parseLine()
    }

    public static func parse(_ bytes: [UInt8], depthMax: Int = defaultDepthMax) throws(JSONError) -> JSONValue {
        let result: Result<JSONValue, JSONError> = bytes.withUnsafeBytes { raw in
            do throws(JSONError) {
                return .success(try parse(raw, depthMax: depthMax))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    public static func parse(_ text: String, depthMax: Int = defaultDepthMax) throws(JSONError) -> JSONValue {
        var text = text
        let result: Result<JSONValue, JSONError> = text.withUTF8 { p in
            do throws(JSONError) {
                return .success(try parse(UnsafeRawBufferPointer(p), depthMax: depthMax))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}

// MARK: - Byte constants

private let quote: UInt8 = 0x22  // "
private let backslash: UInt8 = 0x5C  // \
private let comma: UInt8 = 0x2C
private let colon: UInt8 = 0x3A
private let openBracket: UInt8 = 0x5B
private let closeBracket: UInt8 = 0x5D
private let openBrace: UInt8 = 0x7B
private let closeBrace: UInt8 = 0x7D
private let minus: UInt8 = 0x2D
private let plus: UInt8 = 0x2B
private let dot: UInt8 = 0x2E
private let zero: UInt8 = 0x30
private let nine: UInt8 = 0x39

@inline(__always) private func isDigit(_ c: UInt8) -> Bool { c &- zero < 10 }

/// Length of the well-formed UTF-8 sequence starting at `p` (lead byte ≥ 0x80), or 0 if it is
/// ill-formed: bad/missing continuation, overlong, surrogate (ED A0..BF), above U+10FFFF, truncated.
@inline(__always)
private func utf8SequenceLength(_ base: UnsafePointer<UInt8>, _ p: Int, _ end: Int) -> Int {
    let b0 = base[p]
    @inline(__always) func cont(_ k: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool {
        guard p + k < end else { return false }
        let b = base[p + k]
        return b >= lo && b <= hi
    }
    switch b0 {
    case 0xC2...0xDF:
        return cont(1) ? 2 : 0
    case 0xE0:
        return cont(1, 0xA0, 0xBF) && cont(2) ? 3 : 0
    case 0xE1...0xEC, 0xEE...0xEF:
        return cont(1) && cont(2) ? 3 : 0
    case 0xED:
        return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0
    case 0xF0:
        return cont(1, 0x90, 0xBF) && cont(2) && cont(3) ? 4 : 0
    case 0xF1...0xF3:
        return cont(1) && cont(2) && cont(3) ? 4 : 0
    case 0xF4:
        return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0
    default:
        return 0
    }
}

private func hexByte(_ b: UInt8) -> String {
    let digits: [Character] = Array("0123456789ABCDEF")
    return "0x" + String(digits[Int(b >> 4)]) + String(digits[Int(b & 0x0F)])
}

@inline(__always)
private func hexValue(_ c: UInt8) -> UInt32 {
    switch c {
    case 0x30...0x39: return UInt32(c - 0x30)
    case 0x41...0x46: return UInt32(c - 0x41 + 10)
    case 0x61...0x66: return UInt32(c - 0x61 + 10)
    default: return 0xFFFF_FFFF
    }
}

// MARK: - Parser

private struct Parser {
    let base: UnsafePointer<UInt8>
    let end: Int
    let depthMax: Int
    var i = 0
    /// Reused buffer for strings that contain escapes.
    var scratch: [UInt8] = []
    /// For `parseLine`: a duplicate key is recorded (the first one) instead of thrown, and its later
    /// value is parsed and dropped; after each element of a top-level array, what it recorded
    /// moves to `elementDuplicates` under the element's index.
    var recordsDuplicates = false
    var duplicate: JSONError? = nil
    var elementDuplicates: [Int: JSONError] = [:]

    init(base: UnsafePointer<UInt8>, count: Int, depthMax: Int) {
        self.base = base
        self.end = count
        self.depthMax = depthMax
    }

    mutating func parseDocument() throws(JSONError) -> JSONValue {
        skipWhitespace()
        if i >= end { throw JSONError(kind: .empty, offset: i) }
        let value = try parseValue(depth: 0)
        skipWhitespace()
        if i < end {
            let c = base[i]
            if c >= 0x80 && utf8SequenceLength(base, i, end) == 0 {
                throw JSONError(kind: .invalidUTF8, offset: i, detail: "byte \(hexByte(c))")
            }
            throw JSONError(kind: .trailingData, offset: i)
        }
        return value
    }

    /// `parseDocument`, recording duplicate keys instead of throwing them: one in an element of a
    /// top-level array fails that element; anywhere else it fails the line.
    mutating func parseLine() throws(JSONError) -> JSONParser.Line {
        recordsDuplicates = true
        let value = try parseDocument()
        guard case .array(let elements) = value else {
            if let duplicate { throw duplicate }
            return .value(value)
        }
        return .batch(elements.indices.map { elementDuplicates[$0].map { .failure($0) } ?? .success(elements[$0]) })
    }

    @inline(__always)
    mutating func skipWhitespace() {
        while i < end {
            let c = base[i]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 {
                i += 1
            } else {
                return
            }
        }
    }

    // MARK: errors

    /// An error for the byte at `offset`, which is not what the grammar allows there.
    func unexpected(at offset: Int, expected: String) -> JSONError {
        let c = base[offset]
        if c >= 0x80 {
            let n = utf8SequenceLength(base, offset, end)
            if n == 0 {
                return JSONError(kind: .invalidUTF8, offset: offset, detail: "byte \(hexByte(c))")
            }
            let scalarText = String(decoding: UnsafeBufferPointer(start: base + offset, count: n), as: UTF8.self)
            let u = scalarText.unicodeScalars.first.map { String($0.value, radix: 16, uppercase: true) } ?? "?"
            let padded = String(repeating: "0", count: max(0, 4 - u.count)) + u
            return JSONError(kind: .unexpectedCharacter, offset: offset, detail: "\(expected), found U+\(padded)")
        }
        let shown: String
        if c >= 0x21 && c < 0x7F {
            shown = "'\(Character(Unicode.Scalar(c)))'"
        } else {
            shown = "byte \(hexByte(c))"
        }
        return JSONError(kind: .unexpectedCharacter, offset: offset, detail: "\(expected), found \(shown)")
    }

    func unexpectedEnd(_ expected: String) -> JSONError {
        JSONError(kind: .unexpectedEnd, offset: end, detail: expected)
    }

    // MARK: values

    mutating func parseValue(depth: Int) throws(JSONError) -> JSONValue {
        guard i < end else { throw unexpectedEnd("expected a value") }
        switch base[i] {
        case quote:
            return .string(try parseString())
        case openBrace:
            return try parseObject(depth: depth)
        case openBracket:
            return try parseArray(depth: depth)
        case minus, zero...nine:
            return .number(try parseNumber())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case plus:
            throw JSONError(kind: .invalidNumber, offset: i, detail: "a leading '+' is not allowed")
        case dot:
            throw JSONError(kind: .invalidNumber, offset: i, detail: "a digit is required before '.'")
        case UInt8(ascii: "N"), UInt8(ascii: "I"):
            throw JSONError(kind: .invalidNumber, offset: i, detail: "NaN and Infinity are not JSON numbers")
        default:
            throw unexpected(at: i, expected: "expected a value")
        }
    }

    mutating func literal(_ word: StaticString) throws(JSONError) {
        let p = word.utf8Start
        let n = word.utf8CodeUnitCount
        for k in 0..<n {
            guard i + k < end else { throw unexpectedEnd("expected '\(word)'") }
            if base[i + k] != p[k] {
                throw unexpected(at: i + k, expected: "expected '\(word)'")
            }
        }
        i += n
    }

    mutating func parseNumber() throws(JSONError) -> String {
        let start = i
        if base[i] == minus {
            i += 1
            guard i < end, isDigit(base[i]) else {
                throw JSONError(kind: .invalidNumber, offset: i, detail: "expected a digit after '-'")
            }
        }
        if base[i] == zero {
            i += 1
            if i < end && isDigit(base[i]) {
                throw JSONError(kind: .invalidNumber, offset: i, detail: "leading zeros are not allowed")
            }
        } else {
            i += 1
            while i < end && isDigit(base[i]) { i += 1 }
        }
        if i < end && base[i] == dot {
            i += 1
            guard i < end, isDigit(base[i]) else {
                throw JSONError(kind: .invalidNumber, offset: i, detail: "expected a digit after '.'")
            }
            i += 1
            while i < end && isDigit(base[i]) { i += 1 }
        }
        if i < end && (base[i] | 0x20) == UInt8(ascii: "e") {
            i += 1
            if i < end && (base[i] == plus || base[i] == minus) { i += 1 }
            guard i < end, isDigit(base[i]) else {
                throw JSONError(kind: .invalidNumber, offset: i, detail: "expected a digit in the exponent")
            }
            i += 1
            while i < end && isDigit(base[i]) { i += 1 }
        }
        return String(decoding: UnsafeBufferPointer(start: base + start, count: i - start), as: UTF8.self)
    }

    mutating func parseArray(depth: Int) throws(JSONError) -> JSONValue {
        if depth >= depthMax {
            throw JSONError(kind: .depthExceeded, offset: i, detail: String(depthMax))
        }
        i += 1  // [
        skipWhitespace()
        var elements: [JSONValue] = []
        guard i < end else { throw unexpectedEnd("expected a value or ']'") }
        if base[i] == closeBracket {
            i += 1
            return .array(elements)
        }
        elements.reserveCapacity(4)
        while true {
            elements.append(try parseValue(depth: depth + 1))
            if depth == 0, let found = duplicate {
                elementDuplicates[elements.count - 1] = found
                duplicate = nil
            }
            skipWhitespace()
            guard i < end else { throw unexpectedEnd("expected ',' or ']'") }
            let c = base[i]
            if c == comma {
                i += 1
                skipWhitespace()
            } else if c == closeBracket {
                i += 1
                return .array(elements)
            } else {
                throw unexpected(at: i, expected: "expected ',' or ']'")
            }
        }
    }

    mutating func parseObject(depth: Int) throws(JSONError) -> JSONValue {
        if depth >= depthMax {
            throw JSONError(kind: .depthExceeded, offset: i, detail: String(depthMax))
        }
        i += 1  // {
        skipWhitespace()
        var entries: [JSONObject.Element] = []
        var index: [ByteExactString: Int]? = nil
        guard i < end else { throw unexpectedEnd("expected a string key or '}'") }
        if base[i] == closeBrace {
            i += 1
            return .object(JSONObject(uncheckedEntries: entries, index: nil))
        }
        entries.reserveCapacity(8)
        while true {
            guard i < end else { throw unexpectedEnd("expected a string key") }
            guard base[i] == quote else {
                throw unexpected(at: i, expected: entries.isEmpty ? "expected a string key or '}'" : "expected a string key")
            }
            let keyOffset = i
            let key = try parseString()
            // Duplicate check by UTF-8 bytes of the decoded key.
            let isDuplicate = index.map { $0[ByteExactString(key)] != nil } ?? entries.contains { UTF8Exact.equal($0.key, key) }
            if isDuplicate {
                let error = JSONError(kind: .duplicateKey, offset: keyOffset, detail: key)
                guard recordsDuplicates else { throw error }
                if duplicate == nil { duplicate = error }
            }
            skipWhitespace()
            guard i < end else { throw unexpectedEnd("expected ':'") }
            guard base[i] == colon else { throw unexpected(at: i, expected: "expected ':'") }
            i += 1
            skipWhitespace()
            let value = try parseValue(depth: depth + 1)
            if !isDuplicate {
                entries.append((key: key, value: value))
                if index != nil {
                    index![ByteExactString(key)] = entries.count - 1
                } else if entries.count > JSONObject.indexThreshold {
                    var d = [ByteExactString: Int](minimumCapacity: entries.count * 2)
                    for (n, e) in entries.enumerated() { d[ByteExactString(e.key)] = n }
                    index = d
                }
            }
            skipWhitespace()
            guard i < end else { throw unexpectedEnd("expected ',' or '}'") }
            let c = base[i]
            if c == comma {
                i += 1
                skipWhitespace()
            } else if c == closeBrace {
                i += 1
                return .object(JSONObject(uncheckedEntries: entries, index: index))
            } else {
                throw unexpected(at: i, expected: "expected ',' or '}'")
            }
        }
    }

    // MARK: strings

    /// `base[i]` is the opening quote. Leaves `i` after the closing quote.
    mutating func parseString() throws(JSONError) -> String {
        let open = i
        i += 1
        let start = i
        // Fast path: no escapes. Validate, then decode the slice directly.
        while i < end {
            let c = base[i]
            if c == quote {
                let s = String(decoding: UnsafeBufferPointer(start: base + start, count: i - start), as: UTF8.self)
                i += 1
                return s
            }
            if c == backslash {
                return try parseEscapedString(open: open, start: start)
            }
            if c < 0x20 { throw controlCharacter(c) }
            if c < 0x80 {
                i += 1
            } else {
                let n = utf8SequenceLength(base, i, end)
                if n == 0 { throw JSONError(kind: .invalidUTF8, offset: i, detail: "byte \(hexByte(c))") }
                i += n
            }
        }
        throw unexpectedEnd("unterminated string starting at byte \(open)")
    }

    func controlCharacter(_ c: UInt8) -> JSONError {
        let h = String(c, radix: 16, uppercase: true)
        return JSONError(
            kind: .controlCharacterInString, offset: i,
            detail: "U+" + String(repeating: "0", count: 4 - h.count) + h)
    }

    /// Slow path: `base[start..<i]` has been validated and `base[i]` is a backslash.
    mutating func parseEscapedString(open: Int, start: Int) throws(JSONError) -> String {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(start: base + start, count: i - start))
        var runStart = i
        while i < end {
            let c = base[i]
            if c == quote || c == backslash {
                if runStart < i {
                    scratch.append(contentsOf: UnsafeBufferPointer(start: base + runStart, count: i - runStart))
                }
                if c == quote {
                    i += 1
                    return String(decoding: scratch, as: UTF8.self)
                }
                try decodeEscape()
                runStart = i
                continue
            }
            if c < 0x20 { throw controlCharacter(c) }
            if c < 0x80 {
                i += 1
            } else {
                let n = utf8SequenceLength(base, i, end)
                if n == 0 { throw JSONError(kind: .invalidUTF8, offset: i, detail: "byte \(hexByte(c))") }
                i += n
            }
        }
        throw unexpectedEnd("unterminated string starting at byte \(open)")
    }

    /// `base[i]` is a backslash. Appends the decoded character to `scratch`.
    mutating func decodeEscape() throws(JSONError) {
        let escStart = i
        i += 1
        guard i < end else { throw unexpectedEnd("incomplete escape sequence") }
        let e = base[i]
        let out: UInt8
        switch e {
        case quote: out = quote
        case backslash: out = backslash
        case UInt8(ascii: "/"): out = UInt8(ascii: "/")
        case UInt8(ascii: "b"): out = 0x08
        case UInt8(ascii: "f"): out = 0x0C
        case UInt8(ascii: "n"): out = 0x0A
        case UInt8(ascii: "r"): out = 0x0D
        case UInt8(ascii: "t"): out = 0x09
        case UInt8(ascii: "u"):
            i += 1
            let cp = try readHex4(escStart: escStart)
            if cp >= 0xD800 && cp <= 0xDBFF {
                // Must be followed by \uDC00–\uDFFF.
                guard i + 1 < end else {
                    if i >= end || base[i] == backslash { throw unexpectedEnd("expected a low surrogate escape") }
                    throw invalidSurrogate(escStart, count: 6)
                }
                guard base[i] == backslash && base[i + 1] == UInt8(ascii: "u") else {
                    throw invalidSurrogate(escStart, count: 6)
                }
                let lowStart = i
                i += 2
                let low = try readHex4(escStart: lowStart)
                guard low >= 0xDC00 && low <= 0xDFFF else { throw invalidSurrogate(escStart, count: 12) }
                appendUTF8(0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00))
            } else if cp >= 0xDC00 && cp <= 0xDFFF {
                throw invalidSurrogate(escStart, count: 6)
            } else {
                appendUTF8(cp)
            }
            return
        default:
            var shown = "\\"
            if e >= 0x21 && e < 0x7F {
                shown.append(Character(Unicode.Scalar(e)))
            } else {
                shown += " followed by byte \(hexByte(e))"
            }
            throw JSONError(kind: .invalidEscape, offset: escStart, detail: shown)
        }
        scratch.append(out)
        i += 1
    }

    func invalidSurrogate(_ at: Int, count: Int) -> JSONError {
        let n = min(count, end - at)
        let text = String(decoding: UnsafeBufferPointer(start: base + at, count: n), as: UTF8.self)
        return JSONError(kind: .invalidSurrogate, offset: at, detail: text)
    }

    /// Reads four hex digits at `i` (just after `\u`).
    mutating func readHex4(escStart: Int) throws(JSONError) -> UInt32 {
        var v: UInt32 = 0
        for k in 0..<4 {
            guard i + k < end else { throw unexpectedEnd("incomplete \\u escape") }
            let h = hexValue(base[i + k])
            if h > 0xF {
                let n = min(end - escStart, i + k + 1 - escStart)
                let text = String(decoding: UnsafeBufferPointer(start: base + escStart, count: n), as: UTF8.self)
                throw JSONError(kind: .invalidEscape, offset: escStart, detail: text)
            }
            v = v << 4 | h
        }
        i += 4
        return v
    }

    @inline(__always)
    mutating func appendUTF8(_ cp: UInt32) {
        if cp < 0x80 {
            scratch.append(UInt8(cp))
        } else if cp < 0x800 {
            scratch.append(UInt8(0xC0 | (cp >> 6)))
            scratch.append(UInt8(0x80 | (cp & 0x3F)))
        } else if cp < 0x10000 {
            scratch.append(UInt8(0xE0 | (cp >> 12)))
            scratch.append(UInt8(0x80 | ((cp >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (cp & 0x3F)))
        } else {
            scratch.append(UInt8(0xF0 | (cp >> 18)))
            scratch.append(UInt8(0x80 | ((cp >> 12) & 0x3F)))
            scratch.append(UInt8(0x80 | ((cp >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (cp & 0x3F)))
        }
    }
}
