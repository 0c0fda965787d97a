import Testing
import TallyProtocol

/// Parses `bytes` and returns the error, failing the test if parsing succeeds.
private func parseError(_ bytes: [UInt8], depthMax: Int = JSONParser.defaultDepthMax) -> JSONError? {
    do {
        let v = try JSONParser.parse(bytes, depthMax: depthMax)
        Issue.record("expected an error, parsed \(v.jsonText)")
        return nil
    } catch {
        return error
    }
}

private func parseError(_ text: String, depthMax: Int = JSONParser.defaultDepthMax) -> JSONError? {
    parseError(Array(text.utf8), depthMax: depthMax)
}

@Suite("JSON parser")
struct JSONParserTests {
    // MARK: valid input

    @Test func parsesScalarsAndContainers() throws {
        #expect(try JSONParser.parse("null") == .null)
        #expect(try JSONParser.parse("true") == .bool(true))
        #expect(try JSONParser.parse("false") == .bool(false))
        #expect(try JSONParser.parse("\"hi\"") == .string("hi"))
        #expect(try JSONParser.parse("0") == .number("0"))
        #expect(try JSONParser.parse("[]") == .array([]))
        #expect(try JSONParser.parse("{}") == .object(JSONObject()))
        let v = try JSONParser.parse(#" { "a" : [1, 2.5, {"b": null}] , "c":"d" } "#)
        #expect(v == ["a": [1, .number("2.5"), ["b": nil]], "c": "d"])
        #expect(v.objectValue?.keys == ["a", "c"])
    }

    @Test func entryPointsAgree() throws {
        let text = #"{"k":[true,false,null,"é😀",-0.5e-7]}"#
        let a = try JSONParser.parse(text)
        let b = try JSONParser.parse(Array(text.utf8))
        let c = try Array(text.utf8).withUnsafeBytes { raw throws(JSONError) in try JSONParser.parse(raw) }
        #expect(a == b)
        #expect(b == c)
    }

    @Test func allowsOnlyJSONWhitespace() throws {
        #expect(try JSONParser.parse(" \t\r\n[ 1 ,\t2\r\n]\n ") == [1, 2])
        #expect(parseError("\u{0C}1")?.kind == .unexpectedCharacter)  // form feed
        #expect(parseError("\u{0B}1")?.kind == .unexpectedCharacter)  // vertical tab
        #expect(parseError("\u{A0}1")?.kind == .unexpectedCharacter)  // NBSP (valid UTF-8)
    }

    @Test(arguments: [
        "0", "-0", "12.50", "-1e3", "1E+2", "1e-2", "0.0e-0", "123456789012345678901234567890",
        "-0.000001", "3.14159265358979323846264338327950288419716939937510",
    ])
    func keepsExactNumberText(_ text: String) throws {
        #expect(try JSONParser.parse(text) == .number(text))
        #expect(try JSONParser.parse("[\(text)]") == .array([.number(text)]))
        #expect(try JSONParser.parse(text).jsonText == text)
    }

    @Test func hugeNumberKeepsFullText() throws {
        let digits = "9" + String(repeating: "1234567890", count: 1000) + ".5e-999999"
        let v = try JSONParser.parse("{\"n\":\(digits)}")
        #expect(v["n"]?.numberText == digits)
        #expect(v["n"]?.numberText?.utf8.count == 10_011)
    }

    @Test func decodesEscapes() throws {
        let v = try JSONParser.parse(#""a\"b\\c\/d\be\ff\ng\rh\ti\u0041\u00e9\u20AC\u0000""#)
        #expect(v == .string("a\"b\\c/d\u{8}e\u{C}f\ng\rh\ti" + "A" + "é" + "€" + "\u{0}"))
    }

    @Test func decodesSurrogatePairs() throws {
        #expect(try JSONParser.parse(#""\uD83D\uDE00""#) == .string("😀"))
        #expect(try JSONParser.parse(#""x\ud83d\ude00y""#) == .string("x😀y"))
        #expect(try JSONParser.parse(#""\uDBFF\uDFFF""#) == .string("\u{10FFFF}"))
        #expect(try JSONParser.parse(#""\uD800\uDC00""#) == .string("\u{10000}"))
    }

    @Test func acceptsRawUTF8InStrings() throws {
        let s = "héllo wörld — 日本語 😀 \u{10FFFF} \u{7F}"
        #expect(try JSONParser.parse("\"\(s)\"") == .string(s))
    }

    @Test func twoMebibyteStrings() throws {
        let big = String(repeating: "abcdefgh", count: 2 * 1024 * 1024 / 8)
        let v = try JSONParser.parse("[\"\(big)\"]")
        #expect(v.arrayValue?.first?.stringValue?.utf8.count == 2 * 1024 * 1024)
        // With escapes and non-ASCII throughout (slow path).
        let chunk = "ab\\n\\u00e9😀"
        let escaped = String(repeating: chunk, count: 2 * 1024 * 1024 / chunk.utf8.count)
        let w = try JSONParser.parse("\"\(escaped)\"")
        let expected = String(repeating: "ab\né😀", count: 2 * 1024 * 1024 / chunk.utf8.count)
        #expect(w == .string(expected))
        #expect(try JSONParser.parse(w.serialized()) == w)
    }

    @Test func distinctKeysThatSwiftConsidersEqual() throws {
        // "é" (U+00E9) and "e" + U+0301 are canonically equivalent but different JSON keys.
        let v = try JSONParser.parse("{\"\u{E9}\":1,\"e\u{301}\":2}")
        #expect(v.objectValue?.count == 2)
        #expect(v["\u{E9}"] == 1)
        #expect(v["e\u{301}"] == 2)
    }

    @Test func largeObjectLookupAndNoFalseDuplicates() throws {
        let members = (0..<1000).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        let v = try JSONParser.parse("{\(members)}")
        #expect(v.objectValue?.count == 1000)
        #expect(v["k0"] == 0)
        #expect(v["k999"] == .integer(999))
        #expect(v["k1000"] == nil)
    }

    // MARK: depth

    @Test func depthLimit() throws {
        let ok = String(repeating: "[", count: 128) + String(repeating: "]", count: 128)
        #expect(throws: Never.self) { try JSONParser.parse(ok) }
        let tooDeep = String(repeating: "[", count: 129) + String(repeating: "]", count: 129)
        let e = parseError(tooDeep)
        #expect(e == JSONError(kind: .depthExceeded, offset: 128, detail: "128"))
        #expect(e?.description == "nesting deeper than 128 levels at byte 128")
        // Objects and arrays both count.
        #expect(parseError(#"{"a":[{"b":[1]}]}"#, depthMax: 3)?.kind == .depthExceeded)
        #expect(parseError(#"{"a":[{"b":[1]}]}"#, depthMax: 3)?.offset == 11)
        #expect(throws: Never.self) { try JSONParser.parse(#"{"a":[{"b":[1]}]}"#, depthMax: 4) }
        #expect(parseError("[]", depthMax: 0)?.kind == .depthExceeded)
        #expect(try JSONParser.parse("1", depthMax: 0) == 1)
    }

    @Test(arguments: [600, 100_000])
    func deepNestingRejectedWithoutCrashing(_ levels: Int) {
        let arrays = [UInt8](repeating: UInt8(ascii: "["), count: levels)
        #expect(parseError(arrays) == JSONError(kind: .depthExceeded, offset: 128, detail: "128"))
        var objects: [UInt8] = []
        for _ in 0..<levels { objects += Array(#"{"a":"#.utf8) }
        #expect(parseError(objects) == JSONError(kind: .depthExceeded, offset: 128 * 5, detail: "128"))
    }

    // MARK: errors

    @Test func emptyInput() {
        #expect(parseError("") == JSONError(kind: .empty, offset: 0))
        #expect(parseError(" \n\t\r ") == JSONError(kind: .empty, offset: 5))
        #expect(parseError("")?.description == "empty input: no JSON value found")
        #expect(throws: JSONError(kind: .empty, offset: 0)) {
            try JSONParser.parse(UnsafeRawBufferPointer(start: nil, count: 0))
        }
    }

    @Test func trailingData() {
        #expect(parseError("1 2") == JSONError(kind: .trailingData, offset: 2))
        #expect(parseError("{} x") == JSONError(kind: .trailingData, offset: 3))
        #expect(parseError("nulll") == JSONError(kind: .trailingData, offset: 4))
        #expect(parseError("[1]]") == JSONError(kind: .trailingData, offset: 3))
        #expect(parseError("1.5.3") == JSONError(kind: .trailingData, offset: 3))
        #expect(parseError("\"a\"\"b\"")?.kind == .trailingData)
        #expect(parseError("1 2")?.description == "unexpected data after the JSON value at byte 2")
    }

    @Test(arguments: [
        ("[", 1), ("[1", 2), ("[1,", 3), ("{", 1), ("{\"a\"", 4), ("{\"a\":", 5), ("{\"a\":1", 6),
        ("{\"a\":1,", 7), ("\"abc", 4), ("\"ab\\", 4), ("\"\\u12", 5), ("tru", 3), ("nul", 3), ("f", 1),
        ("\"\\uD83D", 7), ("\"\\uD83D\\", 8),
    ])
    func unexpectedEnd(_ text: String, offset: Int) {
        let e = parseError(text)
        #expect(e?.kind == .unexpectedEnd, "\(text)")
        #expect(e?.offset == offset, "\(text)")
    }

    @Test func unexpectedCharacters() {
        #expect(parseError("[1 2]") == JSONError(kind: .unexpectedCharacter, offset: 3, detail: "expected ',' or ']', found '2'"))
        #expect(parseError("[1,]")?.offset == 3)
        #expect(parseError("[1,]")?.kind == .unexpectedCharacter)
        #expect(parseError("{\"a\":1,}")?.kind == .unexpectedCharacter)
        #expect(parseError("{a:1}") == JSONError(kind: .unexpectedCharacter, offset: 1, detail: "expected a string key or '}', found 'a'"))
        #expect(parseError("{\"a\" 1}")?.offset == 5)
        #expect(parseError("{\"a\":1 \"b\":2}")?.offset == 7)
        #expect(parseError("trux") == JSONError(kind: .unexpectedCharacter, offset: 3, detail: "expected 'true', found 'x'"))
        #expect(parseError("True")?.kind == .unexpectedCharacter)
        #expect(parseError("nUll")?.offset == 1)
        #expect(parseError("fals e")?.offset == 4)
        #expect(parseError("'a'")?.kind == .unexpectedCharacter)
        #expect(parseError("]")?.description == "unexpected character at byte 0: expected a value, found ']'")
    }

    @Test func byteOrderMarkIsUnexpected() {
        let e = parseError([0xEF, 0xBB, 0xBF] + Array("{}".utf8))
        #expect(e == JSONError(kind: .unexpectedCharacter, offset: 0, detail: "expected a value, found U+FEFF"))
    }

    @Test(arguments: [
        ("01", 1), ("-01", 2), ("00", 1), ("+1", 0), (".5", 0), ("1.", 2), ("-", 1), ("-a", 1), ("1e", 2),
        ("1e+", 3), ("1E-x", 3), ("1.e5", 2), ("NaN", 0), ("Infinity", 0), ("-Infinity", 1), ("[1.]", 3),
        ("[-]", 2), ("{\"a\":01}", 6), ("[.5]", 1), ("[+1]", 1),
    ])
    func invalidNumbers(_ text: String, offset: Int) {
        let e = parseError(text)
        #expect(e?.kind == .invalidNumber, "\(text)")
        #expect(e?.offset == offset, "\(text)")
    }

    @Test func invalidNumberDescription() {
        #expect(parseError("01")?.description == "invalid number at byte 1: leading zeros are not allowed")
    }

    @Test func duplicateKeys() {
        let e = parseError(#"{"amount":1,"x":2,"amount":3}"#)
        #expect(e == JSONError(kind: .duplicateKey, offset: 18, detail: "amount"))
        #expect(e?.description == "duplicate key \"amount\" in object at byte 18")
        // Compared after decoding escapes.
        #expect(parseError(#"{"a":1,"\u0061":2}"#) == JSONError(kind: .duplicateKey, offset: 7, detail: "a"))
        #expect(parseError(#"{"😀":1,"\ud83d\ude00":2}"#)?.detail == "😀")
        // Nested objects are independent; duplicates inside a nested one are still found.
        #expect(throws: Never.self) { try JSONParser.parse(#"{"a":{"a":1},"b":{"a":2}}"#) }
        #expect(parseError(#"[{"a":1},{"b":1,"b":2}]"#)?.offset == 16)
        // Large objects (hash-indexed path).
        let members = (0..<100).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        let big = "{\(members),\"k57\":0}"
        let be = parseError(big)
        #expect(be?.kind == .duplicateKey)
        #expect(be?.detail == "k57")
        #expect(be?.offset == big.utf8.count - 8)
        // Control characters in the key are shown escaped in the description.
        #expect(parseError(#"{"a\nb":1,"a\nb":2}"#)?.description == #"duplicate key "a\nb" in object at byte 10"#)
    }

    @Test func controlCharactersInStrings() {
        #expect(parseError("\"a\nb\"") == JSONError(kind: .controlCharacterInString, offset: 2, detail: "U+000A"))
        #expect(parseError("\"a\u{0}\"") == JSONError(kind: .controlCharacterInString, offset: 2, detail: "U+0000"))
        #expect(parseError("\"\\n\u{1F}\"") == JSONError(kind: .controlCharacterInString, offset: 3, detail: "U+001F"))
        #expect(parseError("{\"k\u{9}\":1}")?.kind == .controlCharacterInString)
        #expect(parseError("\"a\nb\"")?.description == "unescaped control character U+000A in string at byte 2")
        // DEL is not a control character for JSON.
        #expect(throws: Never.self) { try JSONParser.parse("\"\u{7F}\"") }
    }

    @Test(arguments: [
        (#""\x""#, 1, #"\x"#), (#""ab\'""#, 3, #"\'"#), (#""\U0041""#, 1, #"\U"#), (#""\u12G4""#, 1, #"\u12G"#),
        (#""\u-123""#, 1, #"\u-"#), (#""\uD83D\uZZZZ""#, 7, #"\uZ"#), ("\"\\\u{1}\"", 1, "\\ followed by byte 0x01"),
    ])
    func invalidEscapes(_ text: String, offset: Int, detail: String) {
        #expect(parseError(text) == JSONError(kind: .invalidEscape, offset: offset, detail: detail), "\(text)")
    }

    @Test(arguments: [
        (#""\uD800""#, 1, #"\uD800"#),  // lone high at end of string
        (#""\uDC00""#, 1, #"\uDC00"#),  // lone low
        (#""a\uDFFFb""#, 2, #"\uDFFF"#),
        (#""\uD83Dx""#, 1, #"\uD83D"#),  // high followed by a character
        (#""\uD83D\n""#, 1, #"\uD83D"#),  // high followed by another escape
        (#""\uD83D\uD83D""#, 1, #"\uD83D\uD83D"#),  // high followed by high
        (#""\uD83D\u0041""#, 1, #"\uD83D\u0041"#),  // high followed by a non-surrogate
        (#"{"\uDE00":1}"#, 2, #"\uDE00"#),
    ])
    func invalidSurrogates(_ text: String, offset: Int, detail: String) {
        #expect(parseError(text) == JSONError(kind: .invalidSurrogate, offset: offset, detail: detail), "\(text)")
    }

    @Test(arguments: [
        ([0x22, 0xC3, 0x28, 0x22], 1),  // bad continuation
        ([0x22, 0x61, 0x80, 0x22], 2),  // lone continuation byte
        ([0x22, 0xC0, 0x80, 0x22], 1),  // overlong NUL
        ([0x22, 0xC1, 0xBF, 0x22], 1),  // overlong
        ([0x22, 0xE0, 0x80, 0xAF, 0x22], 1),  // overlong 3-byte
        ([0x22, 0xF0, 0x80, 0x80, 0xAF, 0x22], 1),  // overlong 4-byte
        ([0x22, 0xED, 0xA0, 0x80, 0x22], 1),  // encoded surrogate U+D800
        ([0x22, 0xED, 0xBF, 0xBF, 0x22], 1),  // encoded surrogate U+DFFF
        ([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], 1),  // U+110000
        ([0x22, 0xF5, 0x80, 0x80, 0x80, 0x22], 1),  // invalid lead byte
        ([0x22, 0xFF, 0x22], 1),
        ([0x22, 0xE2, 0x82, 0x22], 1),  // truncated before the closing quote
        ([0x22, 0xF0, 0x9F, 0x98], 1),  // truncated at end of input
        ([0x22, 0x5C, 0x6E, 0xC3, 0x22], 3),  // in the escaped (slow) path
        ([0x5B, 0x31, 0x2C, 0xFF, 0x5D], 3),  // outside a string
        ([0x31, 0x20, 0xC3], 2),  // after the value
        ([0x7B, 0x22, 0x61, 0x22, 0x3A, 0x31, 0x80, 0x7D], 6),
    ] as [([UInt8], Int)])
    func invalidUTF8(_ bytes: [UInt8], offset: Int) {
        let e = parseError(bytes)
        #expect(e?.kind == .invalidUTF8, "\(bytes)")
        #expect(e?.offset == offset, "\(bytes)")
    }

    @Test func invalidUTF8Description() {
        #expect(parseError([0x22, 0x61, 0x62, 0x63, 0xFF, 0x22])?.description == "invalid UTF-8 at byte 4 (byte 0xFF)")
    }

    @Test func maximalValidUTF8Boundaries() throws {
        // U+0080, U+07FF, U+0800, U+D7FF, U+E000, U+FFFF, U+10000, U+10FFFF.
        let s = "\u{80}\u{7FF}\u{800}\u{D7FF}\u{E000}\u{FFFF}\u{10000}\u{10FFFF}"
        #expect(try JSONParser.parse("\"\(s)\"").stringValue == s)
    }

    @Test("parseLine: a duplicate key fails only its own element of a top-level array, anywhere else the line")
    func lineDuplicates() throws {
        func line(_ text: String) throws(JSONError) -> JSONParser.Line {
            var text = text
            let result: Result<JSONParser.Line, JSONError> = text.withUTF8 { p in
                do throws(JSONError) { return .success(try JSONParser.parseLine(UnsafeRawBufferPointer(p))) } catch { return .failure(error) }
            }
            return try result.get()
        }
        guard case .batch(let elements) = try line(#"[{"a":1},{"b":1,"b":2},{"c":{"d":1,"d":2}},[{"e":1,"e":1}],2]"#) else {
            Issue.record("a batch expected")
            return
        }
        #expect(elements.map { (try? $0.get()) != nil } == [true, false, false, false, true])
        #expect(throws: JSONError.self) { try line(#"{"a":1,"a":2}"#) }
        do {
            _ = try line(#"[{"a":1,"a":2}] x"#)
            Issue.record("trailing data must fail the line")
        } catch {
            #expect(error.kind == .trailingData)
        }
        guard case .value(let value) = try line(#"{"a":[{"b":1}]}"#) else {
            Issue.record("a single value expected")
            return
        }
        #expect(value["a"] != nil)
    }
}
